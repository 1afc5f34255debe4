//! `[[sources]] kind = "nats"`: a NATS JetStream durable pull consumer (MinIO publishes
//! bucket events to NATS). Each message is one notification body; it is acknowledged
//! only after the [`Ingestor`] committed it, so a crash between receipt and commit means the
//! server delivers it again (after `ack_wait_s`). A message that can never be accepted (not a
//! notification, too large) is published to `dead_letter_subject` and then acknowledged, or,
//! without one, terminated (a limits stream keeps it; JetStream publishes a
//! `MSG_TERMINATED` advisory) and logged: never silently dropped, never blocking the next.
//! A message on the dead-letter subject itself is never taken (no loop through a stream that
//! captures both).

use super::{Handled, Statuses};
use crate::app::Ingestor;
use crate::secret::SecretSource;
use crate::validate::{self, Problems};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNats {
    kind: String,
    name: Option<String>,
    url: Option<String>,
    stream: Option<String>,
    subject: Option<String>,
    durable: Option<String>,
    dead_letter_subject: Option<String>,
    ack_wait_s: Option<u64>,
    max_in_flight: Option<usize>,
    deliver: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    pub name: String,
    /// `nats://host:port` (or `tls://`); several servers separated by commas.
    pub url: String,
    pub stream: String,
    /// Only messages on this subject (a filter within the stream); all when `None`.
    pub subject: Option<String>,
    pub durable: String,
    pub dead_letter_subject: Option<String>,
    /// How long JetStream waits for an acknowledgement before delivering a message again.
    pub ack_wait: Duration,
    /// Messages being committed at once.
    pub max_in_flight: usize,
    /// A new durable consumer starts from the stream's first message (`deliver = "all"`), not
    /// from the next one published (`"new"`, the default: an existing stream's history is not
    /// purged again).
    pub deliver_all: bool,
    /// The webhook's `server.max_body_bytes`: larger messages are dead-lettered.
    pub max_body_bytes: usize,
    pub token: Option<SecretSource>,
}

/// At most this many bytes of messages are pulled at once (a slow commit must not leave the
/// server with a full buffer for us: it would drop the connection as a slow consumer).
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The longest `ack_wait_s` (12 hours).
const MAX_ACK_WAIT_S: u64 = 12 * 3600;

/// Whether `subject` is a valid NATS subject: dot-separated non-empty tokens, no blanks, and
/// (when `wildcards`) `*` tokens and a last `>` token.
fn valid_subject(subject: &str, wildcards: bool) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    !subject.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.chars().any(char::is_whitespace)
                && match *t {
                    "*" => wildcards,
                    ">" => wildcards && i == tokens.len() - 1,
                    _ => !t.contains(['*', '>']),
                }
        })
}

/// Whether the filter `pattern` (with `*` and `>`) matches the literal `subject`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `host[:port]` names this machine.
pub(crate) fn is_loopback_host(hostport: &str) -> bool {
    let host = match hostport.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => hostport,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A JetStream name: no whitespace, dots, wildcards or path separators.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

pub fn check(table: toml::Table, at: &str, p: &mut Problems) -> Option<NatsConfig> {
    let raw: RawNats = validate::section(table, at, p)?;
    let url = match raw.url {
        Some(u) if u.contains('@') => {
            p.push(
                format!("{at}.url"),
                "holds a user or password; give the token with token_env or token_file instead",
            );
            None
        }
        Some(u)
            if u.split(',').all(|one| {
                let one = one.trim();
                ["nats://", "tls://"].iter().any(|s| one.starts_with(s))
                    && one.len() > 7
                    && !one.chars().any(char::is_whitespace)
            }) =>
        {
            Some(u)
        }
        Some(u) => {
            p.push(
                format!("{at}.url"),
                format!("{u:?} is not nats://host:port (or tls://; several: comma-separated)"),
            );
            None
        }
        None => {
            p.push(
                format!("{at}.url"),
                "required, e.g. \"nats://127.0.0.1:4222\"",
            );
            None
        }
    };
    let stream = match raw.stream {
        Some(s) if valid_name(&s) => Some(s),
        Some(s) => {
            p.push(
                format!("{at}.stream"),
                format!("{s:?} is not a stream name (no spaces, dots, * or >)"),
            );
            None
        }
        None => {
            p.push(
                format!("{at}.stream"),
                "required: the JetStream stream to read",
            );
            None
        }
    };
    let durable = raw.durable.unwrap_or_else(|| "edgepurge".to_owned());
    if !valid_name(&durable) {
        p.push(
            format!("{at}.durable"),
            format!("{durable:?} is not a consumer name (no spaces, dots, * or >)"),
        );
    }
    if let Some(s) = raw.subject.as_deref().filter(|s| !valid_subject(s, true)) {
        p.push(
            format!("{at}.subject"),
            format!(
                "{s:?} is not a NATS subject (dot-separated tokens, `*`, a last `>`); leave it \
                 out to read the whole stream"
            ),
        );
    }
    if let Some(d) = raw.dead_letter_subject.as_deref() {
        if !valid_subject(d, false) {
            p.push(
                format!("{at}.dead_letter_subject"),
                format!("{d:?} is not a NATS subject without wildcards"),
            );
        } else if raw
            .subject
            .as_deref()
            .is_some_and(|s| subject_matches(s, d))
        {
            p.push(
                format!("{at}.dead_letter_subject"),
                format!(
                    "{d:?} is within the subject this source reads ({:?}); give dead letters a \
                     subject of their own",
                    raw.subject.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if raw.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        p.push(format!("{at}.name"), "empty; leave it out for the default");
    }
    let deliver_all = match raw.deliver.as_deref() {
        None | Some("new") => false,
        Some("all") => true,
        Some(other) => {
            p.push(
                format!("{at}.deliver"),
                format!("{other:?} is not \"new\" (the default) or \"all\""),
            );
            false
        }
    };
    let ack_wait = Duration::from_secs(match raw.ack_wait_s {
        Some(v) if v == 0 || v > MAX_ACK_WAIT_S => {
            p.push(format!("{at}.ack_wait_s"), "must be 1 to 43200 (12 hours)");
            30
        }
        v => v.unwrap_or(30),
    });
    let max_in_flight = validate::within(
        raw.max_in_flight,
        64,
        10_000,
        &format!("{at}.max_in_flight"),
        p,
    );
    let token = validate::secret("token", raw.token_env, raw.token_file, None, at, p).flatten();
    if let (Some(_), Some(u)) = (&token, &url) {
        if let Some(remote) = u.split(',').map(str::trim).find(|one| {
            one.strip_prefix("nats://")
                .is_some_and(|hostport| !is_loopback_host(hostport))
        }) {
            p.push(
                format!("{at}.url"),
                format!(
                    "{remote:?} would send the token in the clear; use tls:// (plain nats:// is \
                     for loopback)"
                ),
            );
        }
    }
    let (url, stream) = (url?, stream?);
    let name = raw
        .name
        .unwrap_or_else(|| format!("nats:{stream}/{durable}"));
    debug_assert_eq!(raw.kind, "nats");
    Some(NatsConfig {
        name,
        url,
        stream,
        subject: raw.subject,
        durable,
        dead_letter_subject: raw.dead_letter_subject,
        ack_wait,
        max_in_flight,
        deliver_all,
        // Set from [server] by the caller.
        max_body_bytes: crate::config::DEFAULT_MAX_BODY as usize,
        token,
    })
}

/// Runs the consumer until `shutdown`, connecting again after any failure (1 s doubling to
/// 30 s between attempts).
pub async fn run(
    cfg: NatsConfig,
    ingestor: Arc<Ingestor>,
    statuses: Statuses,
    shutdown: CancellationToken,
) {
    super::keep_connected(
        &cfg.name,
        &statuses,
        &shutdown,
        "the message stream ended",
        || {
            let (cfg, ingestor, statuses, shutdown) = (&cfg, &ingestor, &statuses, &shutdown);
            async move {
                let mut consumed = false;
                let result = run_once(cfg, ingestor, statuses, shutdown, &mut consumed).await;
                (consumed, result)
            }
        },
    )
    .await;
}

async fn run_once(
    cfg: &NatsConfig,
    ingestor: &Arc<Ingestor>,
    statuses: &Statuses,
    shutdown: &CancellationToken,
    consumed: &mut bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut options = async_nats::ConnectOptions::new().name("edgepurge");
    if let Some(src) = &cfg.token {
        let token = src
            .load()
            .await
            .map_err(|e| anyhow::anyhow!("token: {e}"))?;
        options = options.token(token.expose().to_owned());
    }
    let client = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        c = options.connect(cfg.url.as_str()) => c.with_context(|| format!("cannot connect to {}", cfg.url))?,
    };
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(&cfg.stream)
        .await
        .with_context(|| format!("stream {:?}", cfg.stream))?;
    let retention = stream.cached_info().config.retention;
    if cfg.dead_letter_subject.is_none() && retention != jetstream::stream::RetentionPolicy::Limits
    {
        tracing::warn!(
            source = %cfg.name, stream = %cfg.stream,
            "the stream is not a limits stream: a message edgepurge cannot take is removed when \
             terminated; set dead_letter_subject to keep such messages"
        );
    }
    let wanted = pull::Config {
        durable_name: Some(cfg.durable.clone()),
        filter_subject: cfg.subject.clone().unwrap_or_default(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: cfg.ack_wait,
        max_deliver: -1,
        deliver_policy: if cfg.deliver_all {
            jetstream::consumer::DeliverPolicy::All
        } else {
            jetstream::consumer::DeliverPolicy::New
        },
        ..Default::default()
    };
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(&cfg.durable, wanted.clone())
        .await
        .with_context(|| format!("durable consumer {:?}", cfg.durable))?;
    let existing = &consumer.cached_info().config;
    if existing.ack_wait != wanted.ack_wait || existing.filter_subject != wanted.filter_subject {
        tracing::warn!(
            source = %cfg.name, durable = %cfg.durable,
            "the durable consumer exists with another ack wait or subject ({:?}, {:?}); it is \
             used as it is (delete it to apply the config's)",
            existing.ack_wait, existing.filter_subject
        );
    }
    // Never more pulled at once than can be stored at once: the rest stays in the stream
    // (and is not redelivered while waiting in this process).
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(cfg.max_in_flight)
        .max_bytes_per_batch(BATCH_BYTES)
        .messages()
        .await
        .context("cannot start pulling messages")?;
    *consumed = true;
    super::update(statuses, &cfg.name, |s| {
        s.connected = true;
        s.last_error = None;
    });
    tracing::info!(source = %cfg.name, stream = %cfg.stream, durable = %cfg.durable, "consuming");
    let mut inflight: JoinSet<Handled> = JoinSet::new();
    let mut lag_every = tokio::time::interval(Duration::from_secs(5));
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = messages.next(), if inflight.len() < cfg.max_in_flight => match next {
                None => break Ok(()),
                Some(Err(e)) => break Err(anyhow::anyhow!("pulling messages: {e}")),
                Some(Ok(msg)) => {
                    super::update(statuses, &cfg.name, |s| s.received += 1);
                    let (ingestor, js, cfg) = (Arc::clone(ingestor), js.clone(), cfg.clone());
                    inflight.spawn(async move { handle(msg, &ingestor, &js, &cfg).await });
                }
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                super::record(statuses, &cfg.name, done);
            }
            _ = lag_every.tick() => {
                let connected =
                    client.connection_state() == async_nats::connection::State::Connected;
                super::update(statuses, &cfg.name, |s| {
                    s.connected = connected;
                    if !connected {
                        s.lag = None;
                        s.last_error = Some("the connection to NATS is lost; reconnecting".into());
                    }
                });
                if connected {
                    if let Ok(info) = consumer.info().await {
                        let lag = info.num_pending + info.num_ack_pending as u64;
                        super::update(statuses, &cfg.name, |s| {
                            s.lag = Some(lag);
                            s.last_error = None;
                        });
                    }
                }
            }
        }
    };
    // What is being committed finishes and is acknowledged (or delivered again later).
    while let Some(done) = inflight.join_next().await {
        super::record(statuses, &cfg.name, done);
    }
    outcome
}

async fn handle(
    msg: jetstream::Message,
    ingestor: &Ingestor,
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Handled {
    let subject = msg.subject.to_string();
    if cfg.dead_letter_subject.as_deref() == Some(subject.as_str()) {
        // One of our own dead letters, in a stream this consumer reads: left where it is.
        let _ = msg.ack().await;
        return Handled::Acked;
    }
    if msg.payload.len() > cfg.max_body_bytes {
        let error = format!(
            "{} bytes, over server.max_body_bytes ({})",
            msg.payload.len(),
            cfg.max_body_bytes
        );
        return dead_letter(msg, &subject, &error, js, cfg).await;
    }
    // While a slow commit runs, JetStream is told the work is in progress (`+WPI`).
    let result = super::accept_keeping_alive(ingestor, &msg.payload, cfg.ack_wait / 2, || async {
        if let Err(e) = msg.ack_with(AckKind::Progress).await {
            tracing::warn!(source = %cfg.name, subject, "cannot report progress: {e}");
        }
    })
    .await;
    match result {
        Ok(_) => match msg.ack().await {
            Ok(()) => Handled::Acked,
            // Committed but not acknowledged: it comes again, and the second commit merges
            // with the first while pending (a purge twice is harmless).
            Err(e) => Handled::Retried(format!("ack failed: {e}")),
        },
        Err(e) if super::never_accepted(&e) => {
            dead_letter(msg, &subject, &e.to_string(), js, cfg).await
        }
        Err(e) => {
            // The store cannot take it now: ask for it again in a second.
            let why = format!("not stored yet, delivered again: {e}");
            tracing::warn!(source = %cfg.name, subject, "{why}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            Handled::Retried(why)
        }
    }
}

async fn dead_letter(
    msg: jetstream::Message,
    subject: &str,
    error: &str,
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Handled {
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    match &cfg.dead_letter_subject {
        Some(dlq) => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Edgepurge-Source", cfg.name.as_str());
            headers.insert("Edgepurge-Subject", subject);
            headers.insert("Edgepurge-Stream-Sequence", seq.to_string().as_str());
            headers.insert(
                "Edgepurge-Error",
                crate::purgers::snippet(error, 300).as_str(),
            );
            let published = match js
                .publish_with_headers(dlq.clone(), headers, msg.payload.clone())
                .await
            {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match published {
                Ok(()) => {
                    tracing::error!(
                        source = %cfg.name, subject, stream_sequence = seq, dead_letter = %dlq,
                        "not a notification edgepurge can take; moved to the dead-letter subject: {error}"
                    );
                    let _ = msg.ack().await;
                    Handled::DeadLettered
                }
                Err(e) => {
                    let why = format!(
                        "cannot publish to the dead-letter subject {dlq:?} ({e}); the message \
                         stays and comes again"
                    );
                    tracing::error!(source = %cfg.name, subject, stream_sequence = seq, "{why}");
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(30))))
                        .await;
                    Handled::Retried(why)
                }
            }
        }
        None => {
            tracing::error!(
                source = %cfg.name, subject, stream_sequence = seq,
                "not a notification edgepurge can take; terminated (a limits stream keeps it, a \
                 work-queue or interest stream drops it; set dead_letter_subject to move such \
                 messages aside): {error}"
            );
            let _ = msg.ack_with(AckKind::Term).await;
            Handled::DeadLettered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_goes_over_tls_unless_the_server_is_this_machine() {
        for local in [
            "127.0.0.1:4222",
            "localhost:4222",
            "[::1]:4222",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in ["10.0.0.1:4222", "nats.example.com:4222", "nats.example.com"] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
        let table: toml::Table = toml::from_str(
            "kind = \"nats\"\nurl = \"nats://127.0.0.1:4222,nats://nats.example.com:4222\"\n\
             stream = \"S\"\ntoken_env = \"T\"",
        )
        .unwrap();
        let mut p = Problems::default();
        assert!(check(table, "sources[0]", &mut p).is_none() || !p.is_empty());
        let all: Vec<String> = p.into_vec().iter().map(ToString::to_string).collect();
        assert!(all[0].contains("in the clear"), "{all:?}");
    }

    #[test]
    fn subjects_and_their_wildcards() {
        assert!(valid_subject("minio.events", false));
        assert!(valid_subject("minio.*.events", true));
        assert!(valid_subject("minio.>", true));
        for bad in ["", "a..b", "a b", "minio.>", "a.*"] {
            assert!(!valid_subject(bad, false), "{bad:?}");
        }
        assert!(!valid_subject("a.>.b", true));
        assert!(subject_matches("minio.>", "minio.dead"));
        assert!(subject_matches("minio.*", "minio.dead"));
        assert!(subject_matches("minio.dead", "minio.dead"));
        assert!(!subject_matches("minio.*", "minio.dead.x"));
        assert!(!subject_matches("minio.events", "minio.dead"));
    }
}
