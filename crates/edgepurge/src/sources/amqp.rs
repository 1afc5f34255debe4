//! `[[sources]] kind = "amqp"`: a RabbitMQ (AMQP 0-9-1) queue that MinIO or Ceph RGW publish
//! bucket events to. Each message is one notification body; it is acknowledged only after the
//! [`Ingestor`] committed it, so a crash between receipt and commit means the broker delivers
//! it again (at once: the connection's unacknowledged messages go back to the queue when it
//! closes). A message that can never be accepted (not a notification, too large) is published
//! to `dead_letter_queue` (with publisher confirms) and then acknowledged, or, without one,
//! rejected without requeueing (the queue's own dead-letter exchange takes it, if it has one)
//! and logged with its first bytes: never silently dropped, never blocking the next.
//!
//! With `exchange`, edgepurge declares `queue` (durable) and binds it to that exchange (the
//! one MinIO's `MINIO_NOTIFY_AMQP_EXCHANGE` or Ceph's `amqp-exchange` names), creating a
//! durable topic exchange when there is none; without it the queue must exist.

use super::{Handled, Statuses};
use crate::app::Ingestor;
use crate::secret::SecretSource;
use crate::validate::{self, Problems};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicNackArguments, BasicPublishArguments,
    BasicQosArguments, BasicRejectArguments, Channel, ConfirmSelectArguments,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the queue's depth is asked for (`/healthz`'s `lag`).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// How long a message the store could not take waits before it goes back to the queue (so a
/// store that is down is not asked again thousands of times a second).
const REQUEUE_AFTER: Duration = Duration::from_secs(1);

/// How long a message is kept (unacknowledged, asked again) while the store cannot take it,
/// before it goes back to the queue: well within RabbitMQ's default `consumer_timeout` (30
/// min), and each requeue counts toward a quorum queue's delivery limit.
const KEEP_WHILE_STORE_DOWN: Duration = Duration::from_secs(300);

/// How long the broker may take to confirm a dead letter.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

/// How many bytes of a rejected message are logged when there is no `dead_letter_queue`.
const LOGGED_BYTES: usize = 2048;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmqp {
    kind: String,
    name: Option<String>,
    url: Option<String>,
    queue: Option<String>,
    exchange: Option<String>,
    routing_key: Option<String>,
    dead_letter_queue: Option<String>,
    prefetch: Option<usize>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AmqpConfig {
    pub name: String,
    /// `amqp://host[:port][/vhost]` or `amqps://`.
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub vhost: String,
    pub queue: String,
    /// Declare `queue` and bind it to this exchange with `routing_key`.
    pub exchange: Option<String>,
    pub routing_key: String,
    pub dead_letter_queue: Option<String>,
    /// Messages delivered and not yet acknowledged at once (AMQP `basic.qos` prefetch).
    pub prefetch: u16,
    pub username: String,
    /// `None`: RabbitMQ's default `guest` account (which it accepts from loopback only).
    pub password: Option<SecretSource>,
    /// Trust this CA (PEM) for `amqps://` instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// The webhook's `server.max_body_bytes`: larger messages are dead-lettered.
    pub max_body_bytes: usize,
}

/// The parts of an AMQP URL: (tls, host, port, vhost).
fn parse_url(text: &str) -> Result<(bool, String, u16, String), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    let tls = match url.scheme() {
        "amqp" => false,
        "amqps" => true,
        other => {
            return Err(format!(
                "{text:?}: scheme {other} is not amqp:// or amqps://"
            ))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "holds a user or password; give them with username and password_env or \
             password_file instead"
                .to_owned(),
        );
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{text:?} names no host")),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?}: query parameters are not read; use the source's own fields"
        ));
    }
    let port = url.port().unwrap_or(if tls { 5671 } else { 5672 });
    // The path is the virtual host, percent-encoded (`/` itself is `%2f`); none means `/`.
    let path = url.path().strip_prefix('/').unwrap_or_default();
    let vhost = if path.is_empty() {
        "/".to_owned()
    } else {
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| format!("{text:?}: the virtual host is not UTF-8"))?
            .into_owned()
    };
    Ok((tls, host, port, vhost))
}

/// An AMQP short string (queue, exchange, routing key): at most 255 bytes, printable.
fn valid_short(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control)
}

pub fn check(table: toml::Table, at: &str, p: &mut Problems) -> Option<AmqpConfig> {
    let raw: RawAmqp = validate::section(table, at, p)?;
    debug_assert_eq!(raw.kind, "amqp");
    let url = match raw.url.as_deref().map(parse_url) {
        Some(Ok(parts)) => Some(parts),
        Some(Err(e)) => {
            p.push(format!("{at}.url"), e);
            None
        }
        None => {
            p.push(
                format!("{at}.url"),
                "required, e.g. \"amqp://127.0.0.1:5672/%2f\" (amqps:// for TLS)",
            );
            None
        }
    };
    let queue = match raw.queue {
        Some(q) if valid_short(&q) && !q.starts_with("amq.") => Some(q),
        Some(q) => {
            p.push(
                format!("{at}.queue"),
                format!(
                    "{q:?} is not a queue name edgepurge can read (1 to 255 bytes, no control \
                     characters, not a server-named amq.* queue)"
                ),
            );
            None
        }
        None => {
            p.push(format!("{at}.queue"), "required: the queue to consume");
            None
        }
    };
    for (field, value) in [
        ("exchange", raw.exchange.as_deref()),
        ("routing_key", raw.routing_key.as_deref()),
        ("dead_letter_queue", raw.dead_letter_queue.as_deref()),
    ] {
        if value.is_some_and(|v| !valid_short(v)) {
            p.push(
                format!("{at}.{field}"),
                "must be 1 to 255 bytes with no control characters",
            );
        }
    }
    if raw.exchange.as_deref() == Some("") || raw.exchange.as_deref() == Some("amq.default") {
        p.push(
            format!("{at}.exchange"),
            "the default exchange routes by queue name already; leave exchange out",
        );
    }
    if raw.routing_key.is_some() && raw.exchange.is_none() {
        p.push(
            format!("{at}.routing_key"),
            "only used with exchange (the binding edgepurge declares)",
        );
    }
    if raw.dead_letter_queue.is_some() && raw.dead_letter_queue == queue {
        p.push(
            format!("{at}.dead_letter_queue"),
            "is the queue this source reads; give dead letters a queue of their own",
        );
    }
    if raw.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        p.push(format!("{at}.name"), "empty; leave it out for the default");
    }
    // Each delivered message is held in memory until it is stored: at most this many.
    let prefetch = validate::within(raw.prefetch, 64, 1_000, &format!("{at}.prefetch"), p);
    let password =
        validate::secret("password", raw.password_env, raw.password_file, None, at, p).flatten();
    let username = match raw.username {
        Some(u) if u.is_empty() || u.chars().any(char::is_control) => {
            p.push(
                format!("{at}.username"),
                "empty or holds control characters",
            );
            None
        }
        Some(u) => Some(u),
        None => None,
    };
    if username.is_some() != password.is_some() {
        p.push(
            format!("{at}.username"),
            "username and password_env (or password_file) go together; leave both out for \
             RabbitMQ's loopback-only guest account",
        );
    }
    if let (Some(_), Some((false, host, _, _))) = (&password, &url) {
        if !super::nats::is_loopback_host(host) {
            p.push(
                format!("{at}.url"),
                format!(
                    "{host:?} would get the password in the clear; use amqps:// (plain amqp:// \
                     is for loopback)"
                ),
            );
        }
    }
    if raw.ca_file.is_some() && url.as_ref().is_some_and(|u| !u.0) {
        p.push(format!("{at}.ca_file"), "only used with amqps://");
    }
    if url.as_ref().is_some_and(|u| u.3.len() > 255) {
        p.push(
            format!("{at}.url"),
            "the virtual host is longer than 255 bytes (AMQP's limit)",
        );
    }
    if username.as_ref().is_some_and(|u| u.len() > 255) {
        p.push(format!("{at}.username"), "longer than 255 bytes");
    }
    let ((tls, host, port, vhost), queue, url_text) = (url?, queue?, raw.url?);
    let name = raw.name.unwrap_or_else(|| format!("amqp:{queue}"));
    Some(AmqpConfig {
        name,
        url: url_text,
        tls,
        host,
        port,
        vhost,
        queue,
        exchange: raw.exchange,
        routing_key: raw.routing_key.unwrap_or_else(|| "#".to_owned()),
        dead_letter_queue: raw.dead_letter_queue,
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
        username: username.unwrap_or_else(|| "guest".to_owned()),
        password,
        ca_file: raw.ca_file,
        // Set from [server] by the caller.
        max_body_bytes: crate::config::DEFAULT_MAX_BODY as usize,
    })
}

/// Runs the consumer until `shutdown`, connecting again after any failure (1 s doubling to
/// 30 s between attempts).
pub async fn run(
    cfg: AmqpConfig,
    ingestor: Arc<Ingestor>,
    statuses: Statuses,
    shutdown: CancellationToken,
) {
    super::keep_connected(
        &cfg.name,
        &statuses,
        &shutdown,
        "the broker ended the consumer",
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

async fn connect(cfg: &AmqpConfig) -> anyhow::Result<Connection> {
    let password = match &cfg.password {
        Some(src) => src
            .load()
            .await
            .map_err(|e| anyhow::anyhow!("password: {e}"))?
            .expose()
            .to_owned(),
        None => "guest".to_owned(),
    };
    let mut args = OpenConnectionArguments::new(&cfg.host, cfg.port, &cfg.username, &password);
    args.virtual_host(&cfg.vhost)
        .connection_name(&format!("edgepurge {}", cfg.name));
    if cfg.tls {
        args.tls_adaptor(tls_adaptor(cfg)?);
    }
    Connection::open(&args)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", cfg.url))
}

fn tls_adaptor(cfg: &AmqpConfig) -> anyhow::Result<amqprs::tls::TlsAdaptor> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                anyhow::bail!("ca_file {}: holds no usable certificate", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(amqprs::tls::TlsAdaptor::new(
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        cfg.host.clone(),
    ))
}

/// Declares the queue (and binds it) when `exchange` is set, else checks that it exists.
/// Returns the number of messages ready in it.
async fn prepare_queue(conn: &Connection, cfg: &AmqpConfig) -> anyhow::Result<u64> {
    let Some(exchange) = &cfg.exchange else {
        return queue_depth(conn, cfg).await.map_err(|e| {
            anyhow::anyhow!(
                "queue {:?}: {e} (create it and bind it to the exchange the bucket publishes to, \
                 or set exchange and edgepurge declares it)",
                cfg.queue
            )
        });
    };
    // A passive declare that fails closes its channel: each check gets one of its own.
    let probe = conn.open_channel(None).await?;
    let exists = probe
        .exchange_declare(
            ExchangeDeclareArguments::new(exchange, "topic")
                .passive(true)
                .finish(),
        )
        .await
        .is_ok();
    let channel = conn.open_channel(None).await?;
    if !exists {
        channel
            .exchange_declare(
                ExchangeDeclareArguments::new(exchange, "topic")
                    .durable(true)
                    .finish(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot declare the exchange {exchange:?}: {e}"))?;
        tracing::info!(source = %cfg.name, exchange, "declared a durable topic exchange");
    }
    let declared = channel
        .queue_declare(QueueDeclareArguments::durable_client_named(&cfg.queue))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot declare the queue {:?} ({e}); if it exists with other settings, bind it \
                 yourself and leave exchange out",
                cfg.queue
            )
        })?;
    channel
        .queue_bind(QueueBindArguments::new(
            &cfg.queue,
            exchange,
            &cfg.routing_key,
        ))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot bind the queue {:?} to {exchange:?} with {:?}: {e}",
                cfg.queue,
                cfg.routing_key
            )
        })?;
    if let Some(dlq) = &cfg.dead_letter_queue {
        declare_dead_letter_queue(&channel, dlq).await?;
    }
    let _ = channel.close().await;
    Ok(declared.map_or(0, |(_, ready, _)| u64::from(ready)))
}

async fn declare_dead_letter_queue(channel: &Channel, dlq: &str) -> anyhow::Result<()> {
    channel
        .queue_declare(QueueDeclareArguments::durable_client_named(dlq))
        .await
        .map_err(|e| anyhow::anyhow!("cannot declare the dead-letter queue {dlq:?}: {e}"))?;
    Ok(())
}

/// Messages ready in the queue (a passive declare on a channel of its own).
async fn queue_depth(conn: &Connection, cfg: &AmqpConfig) -> anyhow::Result<u64> {
    let channel = conn.open_channel(None).await?;
    let declared = channel
        .queue_declare(
            QueueDeclareArguments::new(&cfg.queue)
                .passive(true)
                .finish(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = channel.close().await;
    Ok(declared.map_or(0, |(_, ready, _)| u64::from(ready)))
}

async fn run_once(
    cfg: &AmqpConfig,
    ingestor: &Arc<Ingestor>,
    statuses: &Statuses,
    shutdown: &CancellationToken,
    consumed: &mut bool,
) -> anyhow::Result<()> {
    let conn = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        c = connect(cfg) => c?,
    };
    let ready = prepare_queue(&conn, cfg).await?;
    let dead = match &cfg.dead_letter_queue {
        Some(dlq) => Some(Arc::new(DeadLetters::open(&conn, dlq).await?)),
        None => None,
    };
    let channel = conn.open_channel(None).await?;
    channel
        .basic_qos(BasicQosArguments::new(0, cfg.prefetch, false))
        .await?;
    let (_tag, mut deliveries) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(&cfg.queue, "")
                .manual_ack(true)
                .finish(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot consume the queue {:?}: {e}", cfg.queue))?;
    *consumed = true;
    super::update(statuses, &cfg.name, |s| {
        s.connected = true;
        s.lag = Some(ready);
        s.last_error = None;
    });
    tracing::info!(source = %cfg.name, queue = %cfg.queue, "consuming");
    let mut inflight: JoinSet<Handled> = JoinSet::new();
    let mut lag_every =
        tokio::time::interval_at(tokio::time::Instant::now() + LAG_EVERY, LAG_EVERY);
    let watched = conn.clone();
    let io_failure = watched.listen_network_io_failure();
    tokio::pin!(io_failure);
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = &mut io_failure => break Err(anyhow::anyhow!("the connection to the broker is lost")),
            next = deliveries.recv() => match next {
                None => break Err(anyhow::anyhow!(
                    "the broker closed the consumer (queue {:?} deleted, or the channel closed)",
                    cfg.queue
                )),
                Some(msg) => {
                    let (Some(deliver), Some(body)) = (msg.deliver, msg.content) else {
                        continue;
                    };
                    super::update(statuses, &cfg.name, |s| s.received += 1);
                    let (ingestor, channel, cfg, dead, shutdown) = (
                        Arc::clone(ingestor),
                        channel.clone(),
                        cfg.clone(),
                        dead.clone(),
                        shutdown.clone(),
                    );
                    inflight.spawn(async move {
                        let delivery = Delivery {
                            tag: deliver.delivery_tag(),
                            routing_key: deliver.routing_key().clone(),
                            exchange: deliver.exchange().clone(),
                            redelivered: deliver.redelivered(),
                            body,
                        };
                        handle(delivery, &ingestor, &channel, &cfg, dead.as_deref(), &shutdown)
                            .await
                    });
                }
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                super::record(statuses, &cfg.name, done);
            }
            _ = lag_every.tick() => match queue_depth(&conn, cfg).await {
                Ok(ready) => {
                    let unacked = inflight.len() as u64;
                    super::update(statuses, &cfg.name, |s| {
                        s.lag = Some(ready + unacked);
                        s.last_error = None;
                    });
                }
                Err(e) => break Err(anyhow::anyhow!("queue {:?}: {e}", cfg.queue)),
            },
        }
    };
    // What is being committed finishes and is acknowledged (or goes back to the queue when
    // the connection closes).
    while let Some(done) = inflight.join_next().await {
        super::record(statuses, &cfg.name, done);
    }
    let _ = conn.close().await;
    outcome
}

/// One delivered message.
struct Delivery {
    tag: u64,
    exchange: String,
    routing_key: String,
    redelivered: bool,
    body: Vec<u8>,
}

async fn handle(
    msg: Delivery,
    ingestor: &Ingestor,
    channel: &Channel,
    cfg: &AmqpConfig,
    dead: Option<&DeadLetters>,
    shutdown: &CancellationToken,
) -> Handled {
    if msg.body.len() > cfg.max_body_bytes {
        let error = format!(
            "{} bytes, over server.max_body_bytes ({})",
            msg.body.len(),
            cfg.max_body_bytes
        );
        return dead_letter(&msg, &error, channel, cfg, dead).await;
    }
    let until = tokio::time::Instant::now() + KEEP_WHILE_STORE_DOWN;
    match super::accept_retrying(ingestor, &msg.body, until, shutdown).await {
        Ok(_) => match channel
            .basic_ack(BasicAckArguments::new(msg.tag, false))
            .await
        {
            Ok(()) => Handled::Acked,
            // Committed but not acknowledged: it comes again, and the second commit merges
            // with the first while pending (a purge twice is harmless).
            Err(e) => Handled::Retried(format!("ack failed: {e}")),
        },
        Err(e) if super::never_accepted(&e) => {
            dead_letter(&msg, &e.to_string(), channel, cfg, dead).await
        }
        Err(e) => {
            let why = format!("not stored yet, delivered again: {e}");
            tracing::warn!(source = %cfg.name, routing_key = %msg.routing_key, "{why}");
            tokio::time::sleep(REQUEUE_AFTER).await;
            let _ = channel
                .basic_nack(BasicNackArguments::new(msg.tag, false, true))
                .await;
            Handled::Retried(why)
        }
    }
}

async fn dead_letter(
    msg: &Delivery,
    error: &str,
    channel: &Channel,
    cfg: &AmqpConfig,
    dead: Option<&DeadLetters>,
) -> Handled {
    let Some(dead) = dead else {
        let shown = String::from_utf8_lossy(&msg.body[..msg.body.len().min(LOGGED_BYTES)]);
        tracing::error!(
            source = %cfg.name, exchange = %msg.exchange, routing_key = %msg.routing_key,
            bytes = msg.body.len(), body = %crate::purgers::snippet(&shown, LOGGED_BYTES),
            "not a notification edgepurge can take; rejected (the queue's dead-letter exchange \
             takes it if it has one, else the broker drops it; set dead_letter_queue to keep \
             such messages): {error}"
        );
        let _ = channel
            .basic_reject(BasicRejectArguments::new(msg.tag, false))
            .await;
        return Handled::DeadLettered;
    };
    match dead.publish(msg, error, cfg).await {
        Ok(()) => {
            tracing::error!(
                source = %cfg.name, routing_key = %msg.routing_key, dead_letter_queue = %dead.queue,
                "not a notification edgepurge can take; moved to the dead-letter queue: {error}"
            );
            match channel
                .basic_ack(BasicAckArguments::new(msg.tag, false))
                .await
            {
                Ok(()) => Handled::DeadLettered,
                Err(e) => Handled::Retried(format!("dead-lettered, but the ack failed: {e}")),
            }
        }
        Err(e) => {
            let why = format!(
                "cannot publish to the dead-letter queue {:?} ({e:#}); the message stays and \
                 comes again",
                dead.queue
            );
            tracing::error!(source = %cfg.name, routing_key = %msg.routing_key, "{why}");
            tokio::time::sleep(REQUEUE_AFTER).await;
            let _ = channel
                .basic_nack(BasicNackArguments::new(msg.tag, false, true))
                .await;
            Handled::Retried(why)
        }
    }
}

/// A channel in confirm mode that publishes dead letters to their queue, one at a time, each
/// confirmed by the broker before the original is acknowledged.
struct DeadLetters {
    queue: String,
    channel: Channel,
    /// The broker's confirms, and the delivery tag of the last publish (the broker numbers a
    /// confirm channel's publishes 1, 2, 3 ...).
    confirms: Mutex<(mpsc::UnboundedReceiver<Confirm>, u64)>,
}

/// What the broker said about published messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    /// `basic.ack` (`ok`) or `basic.nack` of `tag`, or of every tag up to it (`multiple`).
    Settled { tag: u64, multiple: bool, ok: bool },
    /// `basic.return`: a mandatory publish could not be routed (its ack follows).
    Returned,
}

impl Confirm {
    /// Whether this settles the publish tagged `tag` (an earlier one's late confirm does not).
    fn settles(self, tag: u64) -> Option<bool> {
        match self {
            Confirm::Settled {
                tag: t,
                multiple,
                ok,
            } if t == tag || (multiple && t > tag) => Some(ok),
            _ => None,
        }
    }
}

struct ConfirmCallback(mpsc::UnboundedSender<Confirm>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for ConfirmCallback {
    async fn close(
        &mut self,
        _: &Channel,
        close: amqprs::CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!("the dead-letter channel was closed by the broker: {close}");
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: amqprs::Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: amqprs::Ack) {
        let _ = self.0.send(Confirm::Settled {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
            ok: true,
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: amqprs::Nack) {
        let _ = self.0.send(Confirm::Settled {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
            ok: false,
        });
    }
    async fn publish_return(
        &mut self,
        _: &Channel,
        _: amqprs::Return,
        _: BasicProperties,
        _: Vec<u8>,
    ) {
        // Mandatory publishes that cannot be routed are returned before their confirm.
        let _ = self.0.send(Confirm::Returned);
    }
}

impl DeadLetters {
    async fn open(conn: &Connection, queue: &str) -> anyhow::Result<DeadLetters> {
        let channel = conn.open_channel(None).await?;
        declare_dead_letter_queue(&channel, queue).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        channel.register_callback(ConfirmCallback(tx)).await?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok(DeadLetters {
            queue: queue.to_owned(),
            channel,
            confirms: Mutex::new((rx, 0)),
        })
    }

    async fn publish(&self, msg: &Delivery, error: &str, cfg: &AmqpConfig) -> anyhow::Result<()> {
        let mut headers = FieldTable::new();
        for (k, v) in [
            ("edgepurge-source", cfg.name.clone()),
            ("edgepurge-queue", cfg.queue.clone()),
            ("edgepurge-exchange", msg.exchange.clone()),
            ("edgepurge-routing-key", msg.routing_key.clone()),
            ("edgepurge-error", crate::purgers::snippet(error, 300)),
        ] {
            headers.insert(
                k.try_into()
                    .map_err(|_| anyhow::anyhow!("header name {k}"))?,
                FieldValue::S(v.try_into().map_err(|_| anyhow::anyhow!("header {k}"))?),
            );
        }
        headers.insert(
            "edgepurge-redelivered"
                .try_into()
                .map_err(|_| anyhow::anyhow!("header name"))?,
            FieldValue::t(msg.redelivered),
        );
        let mut props = BasicProperties::default();
        props.with_persistence(true).with_headers(headers);
        // One publish and its confirm at a time.
        let mut guard = self.confirms.lock().await;
        let (confirms, last_tag) = &mut *guard;
        *last_tag += 1;
        let tag = *last_tag;
        self.channel
            .basic_publish(
                props,
                msg.body.clone(),
                BasicPublishArguments::new("", &self.queue)
                    .mandatory(true)
                    .finish(),
            )
            .await?;
        let mut returned = false;
        let deadline = tokio::time::Instant::now() + CONFIRM_WITHIN;
        loop {
            // A confirm for an earlier publish that timed out may still come: skipped.
            match tokio::time::timeout_at(deadline, confirms.recv()).await {
                Ok(Some(Confirm::Returned)) => returned = true,
                Ok(Some(c)) => match c.settles(tag) {
                    Some(true) if !returned => return Ok(()),
                    Some(true) => anyhow::bail!("the broker could not route it to the queue"),
                    Some(false) => anyhow::bail!("the broker refused it"),
                    // An earlier publish's late confirm: a return seen so far was its own.
                    None => returned = false,
                },
                Ok(None) => anyhow::bail!("the channel closed"),
                Err(_) => anyhow::bail!("no confirm within {CONFIRM_WITHIN:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_confirm_of_this_publish_settles_it() {
        let ack = |tag, multiple| Confirm::Settled {
            tag,
            multiple,
            ok: true,
        };
        assert_eq!(ack(3, false).settles(3), Some(true));
        assert_eq!(
            ack(2, false).settles(3),
            None,
            "a late confirm of an earlier one"
        );
        assert_eq!(ack(5, true).settles(3), Some(true));
        assert_eq!(ack(3, true).settles(3), Some(true));
        assert_eq!(ack(2, true).settles(3), None);
        let nack = Confirm::Settled {
            tag: 3,
            multiple: false,
            ok: false,
        };
        assert_eq!(nack.settles(3), Some(false));
        assert_eq!(Confirm::Returned.settles(3), None);
    }

    #[test]
    fn urls_name_host_port_and_virtual_host() {
        assert_eq!(
            parse_url("amqp://127.0.0.1").unwrap(),
            (false, "127.0.0.1".into(), 5672, "/".into())
        );
        assert_eq!(
            parse_url("amqps://mq.example.com/%2f").unwrap(),
            (true, "mq.example.com".into(), 5671, "/".into())
        );
        assert_eq!(
            parse_url("amqp://[::1]:5673/events").unwrap(),
            (false, "::1".into(), 5673, "events".into())
        );
        for bad in [
            "http://127.0.0.1",
            "amqp://guest:guest@127.0.0.1",
            "amqp://127.0.0.1/?heartbeat=10",
            "127.0.0.1:5672",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
