//! Sources: what turns the ways buckets deliver events into calls on the application layer.
//! The webhook lives with the HTTP server (`server/webhook.rs`); the rest are here.
//!
//! * [`function`]: edgepurge as a serverless function (Tencent SCF, AWS Lambda) or a one-shot
//!   command (`edgepurge handle`): each body purged directly, or relayed to a server.
//! * [`nats`]: `[[sources]] kind = "nats"`, a JetStream durable pull consumer that
//!   `edgepurge serve` runs beside the webhook.
//! * [`amqp`]: `[[sources]] kind = "amqp"`, a RabbitMQ queue (MinIO and Ceph RGW publish there).
//! * [`poll`]: `[[sources]] kind = "poll"`, a bucket listed every `interval_s` (for stores
//!   that send no events); its last listing is kept in the store.
//! * [`sqs`]: `[[sources]] kind = "sqs"`, an Amazon SQS queue (S3 and SNS deliver there).
//! * [`cfqueue`]: `[[sources]] kind = "cf-queue"`, a Cloudflare Queue pulled over HTTP (R2
//!   event notifications deliver there).
//!
//! A queue source acknowledges a message only after `Ingestor::accept` committed it
//! (invariant 1), and moves a message that can never be accepted out of the way instead of
//! dropping it or retrying it forever.

pub mod amqp;
pub mod cfqueue;
pub mod function;
pub mod nats;
pub mod poll;
pub mod sqs;

use crate::app::Ingestor;
use crate::validate::Problems;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A checked `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    Amqp(Box<amqp::AmqpConfig>),
    CfQueue(Box<cfqueue::CfQueueConfig>),
    Nats(Box<nats::NatsConfig>),
    Poll(Box<poll::PollConfig>),
    Sqs(Box<sqs::SqsConfig>),
}

impl SourceConfig {
    /// Its `kind` key.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Amqp(_) => "amqp",
            SourceConfig::CfQueue(_) => "cf-queue",
            SourceConfig::Nats(_) => "nats",
            SourceConfig::Poll(_) => "poll",
            SourceConfig::Sqs(_) => "sqs",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Amqp(c) => &c.name,
            SourceConfig::CfQueue(c) => &c.name,
            SourceConfig::Nats(c) => &c.name,
            SourceConfig::Poll(c) => &c.name,
            SourceConfig::Sqs(c) => &c.name,
        }
    }

    /// Of those, the ones that must be there for it to work (checked at start).
    pub fn required_secrets(&self) -> Vec<&crate::secret::SecretSource> {
        match self {
            SourceConfig::Amqp(c) => c.password.iter().collect(),
            SourceConfig::CfQueue(c) => vec![&c.api_token],
            SourceConfig::Nats(c) => c.token.iter().collect(),
            SourceConfig::Poll(c) => c.keys.required(),
            SourceConfig::Sqs(c) => c.keys.required(),
        }
    }

    /// Where its secrets are read from (checked for loose file permissions).
    pub fn secrets(&self) -> Vec<&crate::secret::SecretSource> {
        match self {
            SourceConfig::Amqp(c) => c.password.iter().collect(),
            SourceConfig::CfQueue(c) => vec![&c.api_token],
            SourceConfig::Nats(c) => c.token.iter().collect(),
            SourceConfig::Poll(c) => c.keys.all(),
            SourceConfig::Sqs(c) => c.keys.all(),
        }
    }
}

/// Checks the `[[sources]]` entries, each by its `kind`.
pub fn check(tables: Vec<toml::Table>, p: &mut Problems) -> Vec<SourceConfig> {
    let mut out: Vec<SourceConfig> = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let at = format!("sources[{i}]");
        let kind = table
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_owned);
        let checked = match kind.as_deref() {
            Some("amqp") => amqp::check(table, &at, p).map(|c| SourceConfig::Amqp(Box::new(c))),
            Some("cf-queue") => {
                cfqueue::check(table, &at, p).map(|c| SourceConfig::CfQueue(Box::new(c)))
            }
            Some("nats") => nats::check(table, &at, p).map(|c| SourceConfig::Nats(Box::new(c))),
            Some("poll") => poll::check(table, &at, p).map(|c| SourceConfig::Poll(Box::new(c))),
            Some("sqs") => sqs::check(table, &at, p).map(|c| SourceConfig::Sqs(Box::new(c))),
            Some(other) => {
                p.push(
                    format!("{at}.kind"),
                    format!(
                        "{other:?} is not a source kind edgepurge runs (known: amqp, cf-queue, \
                         nats, poll, sqs)"
                    ),
                );
                None
            }
            None => {
                p.push(
                    format!("{at}.kind"),
                    "required (known: amqp, cf-queue, nats, poll, sqs)",
                );
                None
            }
        };
        if let Some(c) = checked {
            if out.iter().any(|o| o.name() == c.name()) {
                p.push(
                    format!("{at}.name"),
                    format!("{:?} names another source too; names are unique", c.name()),
                );
            }
            out.push(c);
        }
    }
    out
}

/// What a running source is doing, for `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub kind: &'static str,
    pub connected: bool,
    /// Messages waiting in the broker for this consumer (or delivered, not yet acknowledged).
    pub lag: Option<u64>,
    pub received: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    /// Left unacknowledged (or refused for now) to be delivered again.
    pub retried: u64,
    pub last_error: Option<String>,
}

/// The statuses of the running sources, by name.
pub type Statuses = Arc<Mutex<BTreeMap<String, SourceStatus>>>;

pub(crate) fn update(statuses: &Statuses, name: &str, f: impl FnOnce(&mut SourceStatus)) {
    let mut map = match statuses.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(s) = map.get_mut(name) {
        f(s);
    }
}

/// What became of one queue message.
pub(crate) enum Handled {
    /// Stored, then acknowledged (deleted).
    Acked,
    /// Could never be accepted: moved aside.
    DeadLettered,
    /// Left to be delivered again, with why.
    Retried(String),
}

/// Counts a message's outcome in its source's status.
pub(crate) fn record(
    statuses: &Statuses,
    name: &str,
    done: Result<Handled, tokio::task::JoinError>,
) {
    update(statuses, name, |s| match done {
        Ok(Handled::Acked) => s.acked += 1,
        Ok(Handled::DeadLettered) => s.dead_lettered += 1,
        Ok(Handled::Retried(why)) => {
            s.retried += 1;
            s.last_error = Some(why);
        }
        Err(e) => s.last_error = Some(format!("a message task failed: {e}")),
    });
}

/// Accepts one message's body; while the commit runs longer than `every`, calls `keep_alive`
/// each `every` (the broker is told the message is still being worked on, so it does not
/// deliver it again meanwhile).
pub(crate) async fn accept_keeping_alive<F, Fut>(
    ingestor: &Ingestor,
    body: &[u8],
    every: std::time::Duration,
    mut keep_alive: F,
) -> Result<crate::app::Accepted, crate::app::IngestError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let options = crate::app::IngestOptions::default();
    let accept = ingestor.accept(body, every, &options);
    tokio::pin!(accept);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            r = &mut accept => return r,
            _ = ticks.tick() => keep_alive().await,
        }
    }
}

/// Accepts one message's body, asking again (0.5 s doubling to 10 s) while the store cannot
/// take it now (busy, disk full, locked), until `until` or `shutdown`: a message kept here is
/// not handed back to the broker, where each redelivery would count toward its delivery limit
/// and a store outage would push good messages toward a dead-letter queue (or deletion).
/// Returns the last answer.
pub(crate) async fn accept_retrying(
    ingestor: &Ingestor,
    body: &[u8],
    until: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> Result<crate::app::Accepted, crate::app::IngestError> {
    let options = crate::app::IngestOptions::default();
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let result = ingestor
            .accept(body, left.min(std::time::Duration::from_secs(30)), &options)
            .await;
        match result {
            Err(e)
                if !never_accepted(&e)
                    && !shutdown.is_cancelled()
                    && tokio::time::Instant::now() + wait < until =>
            {
                tracing::debug!("not stored yet, asking again in {wait:?}: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(e),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

/// Whether a message refused this way can never be accepted (it is dead-lettered); any
/// other refusal is the store's for now (the message comes again).
pub(crate) fn never_accepted(e: &crate::app::IngestError) -> bool {
    use crate::app::IngestError;
    matches!(
        e,
        IngestError::Parse(_) | IngestError::TooLarge(_) | IngestError::Refused(_)
    )
}

/// Runs `attempt` (one connection's life) until `shutdown`, connecting again after each end
/// or failure: 1 s doubling to 30 s between attempts, back to 1 s once an attempt got going
/// (it returns `true` with its result). Each failure is logged and shown in the status.
pub(crate) async fn keep_connected<F, Fut>(
    name: &str,
    statuses: &Statuses,
    shutdown: &CancellationToken,
    ended: &str,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, anyhow::Result<()>)>,
{
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let (worked, result) = attempt().await;
        if worked {
            wait = std::time::Duration::from_secs(1);
        }
        if shutdown.is_cancelled() {
            update(statuses, name, |s| s.connected = false);
            return;
        }
        let error = match result {
            Ok(()) => ended.to_owned(),
            Err(e) => format!("{e:#}"),
        };
        tracing::warn!(source = %name, "{error}; connecting again in {wait:?}");
        update(statuses, name, |s| {
            s.connected = false;
            s.lag = None;
            s.last_error = Some(error.clone());
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(30));
    }
}

/// The HTTP client of an HTTP-API source: redirects are not followed (a signed request is
/// never sent elsewhere), connecting gives up after 5 s. `None` (shown in the status) when it
/// cannot be built.
pub(crate) fn http_client(name: &str, statuses: &Statuses) -> Option<reqwest::Client> {
    match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(c) => Some(c),
        Err(e) => {
            update(statuses, name, |s| {
                s.last_error = Some(format!("cannot build the HTTP client: {e}"))
            });
            None
        }
    }
}

/// A snapshot of every source's status.
pub fn snapshot(statuses: &Statuses) -> Vec<SourceStatus> {
    let map = match statuses.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.values().cloned().collect()
}

/// Starts every configured source; each runs until `shutdown`.
pub fn spawn_all(
    sources: &[SourceConfig],
    ingestor: &Arc<Ingestor>,
    store: &Arc<dyn crate::store::Store>,
    statuses: &Statuses,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    for source in sources {
        if let Ok(mut map) = statuses.lock() {
            map.insert(
                source.name().to_owned(),
                SourceStatus {
                    name: source.name().to_owned(),
                    kind: source.kind(),
                    ..SourceStatus::default()
                },
            );
        }
        let (source, ingestor, store, statuses, shutdown) = (
            source.clone(),
            Arc::clone(ingestor),
            Arc::clone(store),
            Arc::clone(statuses),
            shutdown.clone(),
        );
        let name = source.name().to_owned();
        let start = {
            let statuses = Arc::clone(&statuses);
            let shutdown = shutdown.clone();
            move || {
                tokio::spawn(run_source(
                    source.clone(),
                    Arc::clone(&ingestor),
                    Arc::clone(&store),
                    Arc::clone(&statuses),
                    shutdown.clone(),
                ))
            }
        };
        tasks.spawn(supervise(name, statuses, shutdown, start));
    }
}

/// Runs a source in a task of its own and starts it again (after 5 s) if it panics (a bug, or
/// a client library's on a hostile server's answer): one source's failure shows in its status
/// and never ends it for good.
async fn supervise(
    name: String,
    statuses: Statuses,
    shutdown: CancellationToken,
    start: impl Fn() -> tokio::task::JoinHandle<()>,
) {
    loop {
        let error = match start().await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                format!(
                    "the source stopped on an internal error ({text}); starting it again in 5 s"
                )
            }
            Err(e) => format!("the source's task ended ({e}); starting it again in 5 s"),
        };
        tracing::error!(source = %name, "{error}");
        update(&statuses, &name, |s| {
            s.connected = false;
            s.lag = None;
            s.last_error = Some(error.clone());
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}

async fn run_source(
    source: SourceConfig,
    ingestor: Arc<Ingestor>,
    store: Arc<dyn crate::store::Store>,
    statuses: Statuses,
    shutdown: CancellationToken,
) {
    match source {
        SourceConfig::Amqp(c) => amqp::run(*c, ingestor, statuses, shutdown).await,
        SourceConfig::CfQueue(c) => cfqueue::run(*c, ingestor, statuses, shutdown).await,
        SourceConfig::Nats(c) => nats::run(*c, ingestor, statuses, shutdown).await,
        SourceConfig::Poll(c) => poll::run(*c, ingestor, store, statuses, shutdown).await,
        SourceConfig::Sqs(c) => sqs::run(*c, ingestor, statuses, shutdown).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> (Vec<SourceConfig>, Vec<String>) {
        let raw = crate::config::parse(text).unwrap();
        let mut p = Problems::default();
        let out = check(raw.sources, &mut p);
        (out, p.into_vec().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_nats_source_is_checked_field_by_field() {
        let (sources, problems) = check_text(
            r#"
            [[sources]]
            kind = "nats"
            url = "nats://127.0.0.1:4222"
            stream = "EVENTS"
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let SourceConfig::Nats(n) = &sources[0] else {
            panic!("{sources:?}");
        };
        assert_eq!(n.name, "nats:EVENTS/edgepurge");
        assert_eq!(n.ack_wait, std::time::Duration::from_secs(30));
        assert_eq!(n.max_in_flight, 64);

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "nats"
            url = "http://127.0.0.1:4222"
            stream = "my.stream"
            durable = "a b"
            ack_wait_s = 0
            colour = "red"
            [[sources]]
            kind = "kafka"
            [[sources]]
            url = "nats://x:4222"
            "#,
        );
        let all = problems.join("\n");
        assert!(
            all.contains("sources[0]") && all.contains("colour"),
            "{all}"
        );
        assert!(
            all.contains("sources[1].kind: \"kafka\" is not a source kind"),
            "{all}"
        );
        assert!(all.contains("sources[2].kind: required"), "{all}");

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "nats"
            url = "http://127.0.0.1:4222"
            stream = "my.stream"
            durable = "a b"
            ack_wait_s = 0
            "#,
        );
        let all = problems.join("\n");
        for field in ["url", "stream", "durable", "ack_wait_s"] {
            assert!(
                all.contains(&format!("sources[0].{field}")),
                "{field}: {all}"
            );
        }

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "nats"
            url = "nats://user:pw@127.0.0.1:4222"
            stream = "A"
            subject = "minio.>"
            dead_letter_subject = "minio.dead"
            deliver = "everything"
            ack_wait_s = 100000
            name = " "
            "#,
        );
        let all = problems.join("\n");
        for want in [
            "sources[0].url: holds a user or password",
            "sources[0].dead_letter_subject: \"minio.dead\" is within the subject",
            "sources[0].deliver",
            "sources[0].ack_wait_s",
            "sources[0].name",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        assert!(!all.contains("pw"), "the password is not repeated: {all}");

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "nats"
            name = "q"
            url = "nats://a:4222"
            stream = "A"
            [[sources]]
            kind = "nats"
            name = "q"
            url = "nats://b:4222"
            stream = "B"
            "#,
        );
        assert!(
            problems.join("\n").contains("names another source"),
            "{problems:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_panics_is_started_again_and_says_why() {
        let statuses: Statuses = Default::default();
        statuses.lock().unwrap().insert(
            "q".into(),
            SourceStatus {
                name: "q".into(),
                ..SourceStatus::default()
            },
        );
        let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&starts);
        let start = move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if n == 0 {
                    panic!("hostile broker answer");
                }
            })
        };
        supervise(
            "q".into(),
            Arc::clone(&statuses),
            CancellationToken::new(),
            start,
        )
        .await;
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
        let status = snapshot(&statuses).remove(0);
        let error = status.last_error.unwrap();
        assert!(error.contains("hostile broker answer"), "{error}");
        assert!(error.contains("starting it again"), "{error}");
    }

    #[test]
    fn an_amqp_source_is_checked_field_by_field() {
        let (sources, problems) = check_text(
            r#"
            [[sources]]
            kind = "amqp"
            url = "amqp://127.0.0.1"
            queue = "bucket-events"
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let SourceConfig::Amqp(a) = &sources[0] else {
            panic!("{sources:?}");
        };
        assert_eq!(a.name, "amqp:bucket-events");
        assert_eq!((a.port, a.vhost.as_str(), a.tls), (5672, "/", false));
        assert_eq!((a.prefetch, a.username.as_str()), (64, "guest"));
        assert_eq!((a.exchange.as_deref(), a.routing_key.as_str()), (None, "#"));

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "amqp"
            url = "amqp://mq.example.com/prod"
            queue = "amq.gen-1"
            routing_key = "minio.#"
            dead_letter_queue = ""
            username = "edgepurge"
            password_env = "MQ_PASSWORD"
            ca_file = "/etc/ca.pem"
            prefetch = 0
            [[sources]]
            kind = "amqp"
            url = "amqp://user:secret@127.0.0.1"
            queue = "q"
            dead_letter_queue = "q"
            password_env = "P"
            "#,
        );
        let all = problems.join("\n");
        for want in [
            "sources[0].queue",
            "sources[0].routing_key: only used with exchange",
            "sources[0].dead_letter_queue",
            "sources[0].url: \"mq.example.com\" would get the password in the clear",
            "sources[0].ca_file: only used with amqps://",
            "sources[0].prefetch",
            "sources[1].url: holds a user or password",
            "sources[1].dead_letter_queue: is the queue this source reads",
            "sources[1].username: username and password_env",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        assert!(
            !all.contains("secret"),
            "the password is not repeated: {all}"
        );
    }

    #[test]
    fn an_sqs_source_is_checked_field_by_field() {
        let (sources, problems) = check_text(
            r#"
            [[sources]]
            kind = "sqs"
            queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3-events"
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let SourceConfig::Sqs(q) = &sources[0] else {
            panic!("{sources:?}");
        };
        assert_eq!(q.name, "sqs:s3-events");
        assert_eq!(q.region, "eu-west-1");
        assert_eq!(q.endpoint.as_str(), "https://sqs.eu-west-1.amazonaws.com/");
        assert_eq!(
            (q.wait_time_s, q.max_messages, q.visibility_timeout_s),
            (20, 10, 60)
        );
        assert_eq!(
            q.keys.access_key_id,
            crate::secret::SecretSource::Env("AWS_ACCESS_KEY_ID".into())
        );

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "sqs"
            queue_url = "http://queue.example.com/1/q"
            wait_time_s = 21
            max_messages = 11
            visibility_timeout_s = 1
            [[sources]]
            kind = "sqs"
            queue_url = "http://127.0.0.1:5000/1/q"
            [[sources]]
            kind = "sqs"
            "#,
        );
        let all = problems.join("\n");
        for want in [
            "sources[0].queue_url",
            "sources[0].wait_time_s",
            "sources[0].max_messages",
            "sources[0].visibility_timeout_s",
            "sources[1].region: required",
            "sources[2].queue_url: required",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
    }

    #[test]
    fn a_cf_queue_source_is_checked_field_by_field() {
        let (sources, problems) = check_text(
            r#"
            [[sources]]
            kind = "cf-queue"
            account_id = "023e105f4ecef8ad9ca31a8372d0c353"
            queue_id = "0A3E105F4ECEF8AD9CA31A8372D0C354"
            api_token_env = "CF_QUEUES_TOKEN"
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let SourceConfig::CfQueue(q) = &sources[0] else {
            panic!("{sources:?}");
        };
        assert_eq!(q.name, "cf-queue:0a3e105f4ecef8ad9ca31a8372d0c354");
        assert_eq!(q.endpoint.as_str(), "https://api.cloudflare.com/client/v4");
        assert_eq!(
            (q.batch_size, q.visibility_timeout_s, q.poll_interval),
            (100, 60, std::time::Duration::from_secs(1))
        );
        assert_eq!(q.dead_letter_queue_id, None);
        assert_eq!(
            q.api_token,
            crate::secret::SecretSource::Env("CF_QUEUES_TOKEN".into())
        );
        assert_eq!(sources[0].kind(), "cf-queue");
        assert_eq!(sources[0].required_secrets(), [&q.api_token]);

        let (_, problems) = check_text(
            r#"
            [[sources]]
            kind = "cf-queue"
            account_id = "my-account"
            queue_id = "r2-events"
            endpoint = "http://api.example.com/client/v4"
            batch_size = 101
            visibility_timeout_s = 43201
            poll_interval_ms = 10
            api_token_env = "T"
            api_token_file = "/etc/t"
            [[sources]]
            kind = "cf-queue"
            account_id = "023e105f4ecef8ad9ca31a8372d0c353"
            queue_id = "023e105f4ecef8ad9ca31a8372d0c354"
            dead_letter_queue_id = "023e105f4ecef8ad9ca31a8372d0c354"
            [[sources]]
            kind = "cf-queue"
            "#,
        );
        let all = problems.join("\n");
        for want in [
            "sources[0].account_id: \"my-account\" is not a Cloudflare account id",
            "sources[0].queue_id: \"r2-events\" is not a Cloudflare queue id",
            "wrangler queues list",
            "sources[0].endpoint: \"http://api.example.com/client/v4\": plain http",
            "sources[0].batch_size: must be 1 to 100",
            "sources[0].visibility_timeout_s",
            "sources[0].poll_interval_ms",
            "set either api_token_env or api_token_file",
            "sources[1].dead_letter_queue_id: is the queue this source reads",
            "sources[1].api_token_env: required",
            "Queues Edit",
            "sources[2].account_id: required",
            "sources[2].queue_id: required",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
    }
}
