//! `[[sources]] kind = "cf-queue"`: a Cloudflare Queue read over Cloudflare's HTTP API (an
//! HTTP pull consumer), which is how Cloudflare R2 event notifications reach a consumer that is
//! not a Worker. `messages/pull` leases a batch for `visibility_timeout_s`; each message is
//! accepted by the [`Ingestor`], and the whole batch is settled with one `messages/ack` call
//! after its commits: stored messages are acknowledged, the rest marked for retry.
//!
//! Pulls are short polls (Cloudflare answers at once, empty or not), so an empty queue is
//! asked again only after `poll_interval_ms`. Cloudflare has no call to extend a lease: a
//! commit slower than the visibility timeout lets the message come again (to any consumer),
//! and its second commit merges with the first while pending (a purge twice is harmless).
//! The default timeout (60 s) is far above a normal commit.
//!
//! A message that can never be accepted (not a notification, too large, or published as
//! `v8`, which only Workers can read) is pushed to `dead_letter_queue_id` and then
//! acknowledged or, without one, marked for retry 12 hours later and logged with its first
//! bytes: after the consumer's `max_retries` deliveries Cloudflare moves it to the consumer's
//! own dead-letter queue. Never dropped by edgepurge, never blocking the next.
//!
//! `/healthz`'s `lag` is the queue's backlog as each pull reports it (`message_backlog_count`).

use super::{Handled, Statuses};
use crate::app::Ingestor;
use crate::secret::SecretSource;
use crate::validate::{self, Problems};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Cloudflare's API.
const API: &str = "https://api.cloudflare.com/client/v4";

/// The most messages one pull may lease.
const MAX_BATCH: usize = 100;

/// The longest lease, and the longest retry delay, Cloudflare allows (12 hours).
const MAX_DELAY_S: u64 = 12 * 3600;

/// How long a message the store could not take waits before it is delivered again.
const STORE_RETRY_S: u64 = 5;

/// How long a message waits when its dead-letter push failed.
const DEAD_LETTER_RETRY_S: u64 = 300;

/// How many bytes of a message that can never be accepted are logged when there is no
/// `dead_letter_queue_id`.
const LOGGED_BYTES: usize = 2048;

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCfQueue {
    kind: String,
    name: Option<String>,
    account_id: Option<String>,
    queue_id: Option<String>,
    endpoint: Option<String>,
    dead_letter_queue_id: Option<String>,
    batch_size: Option<usize>,
    visibility_timeout_s: Option<u64>,
    poll_interval_ms: Option<u64>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CfQueueConfig {
    pub name: String,
    pub account_id: String,
    pub queue_id: String,
    /// Cloudflare's API root (`https://api.cloudflare.com/client/v4`).
    pub endpoint: url::Url,
    /// A queue of the same account that messages edgepurge can never accept are pushed to.
    pub dead_letter_queue_id: Option<String>,
    /// Messages leased per pull (1 to 100).
    pub batch_size: usize,
    /// How long a pulled message stays leased (hidden from other pulls).
    pub visibility_timeout_s: u64,
    /// How long to wait before pulling an empty queue again.
    pub poll_interval: Duration,
    /// An API token with the Queues Edit (read and write) permission.
    pub api_token: SecretSource,
    /// The webhook's `server.max_body_bytes`: larger messages are dead-lettered.
    pub max_body_bytes: usize,
}

/// A Cloudflare account or queue id: 32 hex digits (they go into the request path).
fn is_cloudflare_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_id(
    value: Option<String>,
    field: &str,
    what: &str,
    at: &str,
    p: &mut Problems,
) -> Option<String> {
    match value {
        Some(v) if is_cloudflare_id(&v) => Some(v.to_ascii_lowercase()),
        Some(v) => {
            p.push(
                format!("{at}.{field}"),
                format!(
                    "{:?} is not a Cloudflare {what} id (32 hex digits; {})",
                    crate::purgers::snippet(&v, 80),
                    if what == "account" {
                        "the dashboard's account home shows it, or `wrangler whoami`"
                    } else {
                        "a queue's name is not its id: `wrangler queues list` shows the id"
                    }
                ),
            );
            None
        }
        None => {
            p.push(
                format!("{at}.{field}"),
                format!("required: the {what} id (32 hex digits)"),
            );
            None
        }
    }
}

pub fn check(table: toml::Table, at: &str, p: &mut Problems) -> Option<CfQueueConfig> {
    let raw: RawCfQueue = validate::section(table, at, p)?;
    debug_assert_eq!(raw.kind, "cf-queue");
    let account_id = check_id(raw.account_id, "account_id", "account", at, p);
    let queue_id = check_id(raw.queue_id, "queue_id", "queue", at, p);
    let dead_letter_queue_id = match raw.dead_letter_queue_id {
        Some(d) => {
            let d = check_id(Some(d), "dead_letter_queue_id", "queue", at, p);
            if d.is_some() && d == queue_id {
                p.push(
                    format!("{at}.dead_letter_queue_id"),
                    "is the queue this source reads; give dead letters a queue of their own",
                );
            }
            d
        }
        None => None,
    };
    let endpoint = validate::endpoint(
        raw.endpoint.as_deref().unwrap_or(API),
        &format!("{at}.endpoint"),
        p,
    );
    if let Some(e) = &endpoint {
        if e.query().is_some() || e.fragment().is_some() {
            p.push(
                format!("{at}.endpoint"),
                "holds a query or fragment; give the API root, e.g. \"https://api.cloudflare.com/client/v4\"",
            );
        }
    }
    let batch_size = validate::within(
        raw.batch_size,
        MAX_BATCH,
        MAX_BATCH,
        &format!("{at}.batch_size"),
        p,
    );
    let visibility_timeout_s = match raw.visibility_timeout_s {
        Some(v) if !(1..=MAX_DELAY_S).contains(&v) => {
            p.push(
                format!("{at}.visibility_timeout_s"),
                "must be 1 to 43200 (12 hours, Cloudflare's maximum)",
            );
            60
        }
        v => v.unwrap_or(60),
    };
    let poll_interval_ms = match raw.poll_interval_ms {
        Some(ms) if !(100..=60_000).contains(&ms) => {
            p.push(
                format!("{at}.poll_interval_ms"),
                "must be 100 to 60000 (a pull answers at once; an empty queue is asked again \
                 after this long)",
            );
            1000
        }
        ms => ms.unwrap_or(1000),
    };
    if raw.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        p.push(format!("{at}.name"), "empty; leave it out for the default");
    }
    let api_token = match validate::secret(
        "api_token",
        raw.api_token_env,
        raw.api_token_file,
        None,
        at,
        p,
    ) {
        Some(Some(s)) => Some(s),
        Some(None) => {
            p.push(
                format!("{at}.api_token_env"),
                "required (or api_token_file): a Cloudflare API token with the Queues Edit \
                 (read and write) permission on the account",
            );
            None
        }
        None => None,
    };
    let (account_id, queue_id, endpoint, api_token) =
        (account_id?, queue_id?, endpoint?, api_token?);
    let name = raw.name.unwrap_or_else(|| format!("cf-queue:{queue_id}"));
    Some(CfQueueConfig {
        name,
        account_id,
        queue_id,
        endpoint,
        dead_letter_queue_id,
        batch_size,
        visibility_timeout_s,
        poll_interval: Duration::from_millis(poll_interval_ms),
        api_token,
        // Set from [server] by the caller.
        max_body_bytes: crate::config::DEFAULT_MAX_BODY as usize,
    })
}

/// A failed API call: what failed and what to do, never the token.
#[derive(Debug)]
struct CfError {
    message: String,
    /// Cloudflare's `Retry-After` on a 429.
    retry_after: Option<Duration>,
}

impl std::fmt::Display for CfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl CfError {
    fn new(message: String) -> CfError {
        CfError {
            message,
            retry_after: None,
        }
    }
}

/// `errors` of a Cloudflare answer, as `code message; code message`.
fn cloudflare_errors(v: &Value) -> Option<String> {
    let list = v.get("errors")?.as_array()?;
    let parts: Vec<String> = list
        .iter()
        .map(|e| {
            let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            crate::purgers::snippet(&format!("{code} {message}"), 200)
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What an HTTP status means for this source, said so the operator can act.
fn advice(status: u16, cfg: &CfQueueConfig) -> String {
    match status {
        401 | 403 => format!(
            "Cloudflare refused the API token: it needs the Queues Edit (read and write) \
             permission on account {}, and must not be expired or revoked (check {})",
            cfg.account_id, cfg.api_token
        ),
        404 => format!(
            "no queue {} in account {} (queue_id is the queue's id, not its name: `wrangler \
             queues list` shows it)",
            cfg.queue_id, cfg.account_id
        ),
        405 => "HTTP pull is not enabled on the queue: run `wrangler queues consumer http add \
                <queue name>` (a queue with a Worker consumer must drop it first)"
            .to_owned(),
        429 => "Cloudflare rate-limited the call".to_owned(),
        s if s >= 500 => "Cloudflare had an internal error; trying again".to_owned(),
        _ => "Cloudflare refused the call".to_owned(),
    }
}

/// A Cloudflare Queues API client for one queue.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    cfg: Arc<CfQueueConfig>,
}

/// One pulled message.
struct Pulled {
    id: String,
    lease_id: String,
    attempts: u64,
    /// The message body, decoded; `Err` when it cannot be (a `v8` body, broken base64).
    body: Result<Vec<u8>, String>,
    /// The `body` field as pulled (for a dead letter that could not be decoded).
    raw_body: String,
}

/// A pull's messages and the queue's backlog, when Cloudflare reports it.
struct PullAnswer {
    messages: Vec<Pulled>,
    backlog: Option<u64>,
}

impl Client {
    fn url(&self, queue_id: &str, tail: &str) -> String {
        format!(
            "{}/accounts/{}/queues/{queue_id}/{tail}",
            self.cfg.endpoint.as_str().trim_end_matches('/'),
            self.cfg.account_id
        )
    }

    /// POSTs `body` to `url` (named `what` in errors); the answer's `result`.
    async fn call(&self, what: &str, url: String, body: Value) -> Result<Value, CfError> {
        let token = self
            .cfg
            .api_token
            .load()
            .await
            .map_err(|e| CfError::new(format!("{what}: the API token: {e}")))?;
        let resp = self
            .http
            .post(url)
            .timeout(CALL_TIMEOUT)
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                CfError::new(format!(
                    "{what}: no answer from {}: {}",
                    self.cfg.endpoint,
                    // reqwest's text names the URL, never the headers.
                    e.without_url()
                ))
            })?;
        let status = resp.status().as_u16();
        let retry_after = crate::purgers::retry_after(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| CfError::new(format!("{what}: reading the answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let success = value.get("success").and_then(Value::as_bool);
        if (200..300).contains(&status) && success == Some(true) {
            return Ok(value.get("result").cloned().unwrap_or(Value::Null));
        }
        let detail = cloudflare_errors(&value).unwrap_or_else(|| {
            if text.trim().is_empty() {
                "no error text".to_owned()
            } else {
                crate::purgers::snippet(&text, 200)
            }
        });
        let mut message = format!(
            "{what}: HTTP {status} ({detail}): {}",
            advice(status, &self.cfg)
        );
        if let Some(after) = retry_after.filter(|_| status == 429) {
            message.push_str(&format!("; Retry-After {} s", after.as_secs()));
        }
        Err(CfError {
            message,
            retry_after: retry_after.filter(|_| status == 429),
        })
    }

    async fn pull(&self) -> Result<PullAnswer, CfError> {
        let result = self
            .call(
                "messages/pull",
                self.url(&self.cfg.queue_id, "messages/pull"),
                json!({
                    "batch_size": self.cfg.batch_size,
                    "visibility_timeout_ms": self.cfg.visibility_timeout_s * 1000,
                }),
            )
            .await?;
        let backlog = result
            .get("message_backlog_count")
            .or_else(|| result.pointer("/metadata/metrics/backlog_count"))
            .and_then(Value::as_f64)
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64);
        let messages = result
            .get("messages")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(pulled).collect())
            .unwrap_or_default();
        Ok(PullAnswer { messages, backlog })
    }

    /// One `messages/ack` call for a pull's settlements, tried up to 3 times (Cloudflare
    /// accepts an acknowledgement after the lease ran out too).
    async fn settle(&self, acks: &[&str], retries: &[(&str, u64)]) -> Result<(), CfError> {
        if acks.is_empty() && retries.is_empty() {
            return Ok(());
        }
        let body = json!({
            "acks": acks.iter().map(|l| json!({"lease_id": l})).collect::<Vec<_>>(),
            "retries": retries
                .iter()
                .map(|(l, d)| json!({"lease_id": l, "delay_seconds": d}))
                .collect::<Vec<_>>(),
        });
        let mut wait = Duration::from_secs(1);
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .call(
                    "messages/ack",
                    self.url(&self.cfg.queue_id, "messages/ack"),
                    body.clone(),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if tries >= 3 => return Err(e),
                Err(e) => {
                    let pause = e.retry_after.unwrap_or(wait).min(Duration::from_secs(10));
                    tracing::warn!(source = %self.cfg.name, "{e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    wait *= 2;
                }
            }
        }
    }

    /// Pushes a message edgepurge cannot take to the dead-letter queue.
    async fn push_dead_letter(&self, dlq: &str, msg: &Pulled) -> Result<(), CfError> {
        let (content_type, body) = dead_letter_body(msg);
        self.call(
            "dead letter (messages)",
            self.url(dlq, "messages"),
            json!({"content_type": content_type, "body": body}),
        )
        .await
        .map(drop)
    }
}

/// A message of a pull answer (those without a lease id cannot be settled and are skipped:
/// they come again when their lease, if any, runs out).
fn pulled(m: &Value) -> Option<Pulled> {
    let lease_id = m.get("lease_id")?.as_str()?.to_owned();
    let id = m
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned();
    let attempts = m.get("attempts").and_then(Value::as_f64).unwrap_or(0.0) as u64;
    let content_type = m
        .pointer("/metadata/CF-Content-Type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (body, raw_body) = match m.get("body") {
        Some(Value::String(s)) => (decode_body(content_type.as_deref(), s), s.clone()),
        // Not a string: a JSON value given as is.
        Some(v @ (Value::Object(_) | Value::Array(_))) => {
            (Ok(v.to_string().into_bytes()), v.to_string())
        }
        Some(other) => (
            Err(format!("the body is {other}, not a string")),
            other.to_string(),
        ),
        None => (Err("the message has no body".to_owned()), String::new()),
    };
    Some(Pulled {
        id,
        lease_id,
        attempts,
        body,
        raw_body,
    })
}

/// A pulled body as bytes, by its `CF-Content-Type`: `json` and `bytes` bodies are base64
/// (RFC 4648), `text` is the text itself, `v8` only Workers can read.
fn decode_body(content_type: Option<&str>, body: &str) -> Result<Vec<u8>, String> {
    match content_type {
        Some("text") => Ok(body.as_bytes().to_vec()),
        Some(ct @ ("json" | "bytes")) => base64_decode(body)
            .map_err(|e| format!("CF-Content-Type {ct}: the body is not base64 ({e})")),
        Some("v8") => Err(
            "published with content type v8, which only a Worker can read; publish with json, \
             text or bytes"
                .to_owned(),
        ),
        Some(other) => Err(format!(
            "CF-Content-Type {:?} is not json, text or bytes",
            crate::purgers::snippet(other, 40)
        )),
        // No content type: JSON as it is, else base64 if it decodes, else the text.
        None => {
            let t = body.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                Ok(body.as_bytes().to_vec())
            } else {
                Ok(base64_decode(body).unwrap_or_else(|_| body.as_bytes().to_vec()))
            }
        }
    }
}

/// Standard base64 (RFC 4648 §4) with padding, as Cloudflare writes pulled bodies.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| e.to_string())
}

/// What a dead letter carries: the body as it was published where the push API can say it
/// (JSON as `json`, other UTF-8 as `text`), else the pulled `body` field as text.
fn dead_letter_body(msg: &Pulled) -> (&'static str, Value) {
    if let Ok(bytes) = &msg.body {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            return ("json", v);
        }
        if let Ok(s) = std::str::from_utf8(bytes) {
            return ("text", Value::String(s.to_owned()));
        }
    }
    ("text", Value::String(msg.raw_body.clone()))
}

/// How a message is settled in the pull's `messages/ack` call.
enum Settle {
    Ack,
    Retry { delay_s: u64 },
}

/// One message handled: how to settle it, and its outcome once settled.
struct Done {
    lease_id: String,
    settle: Settle,
    handled: Handled,
    /// The store refused it for now (the next pull waits).
    store_busy: bool,
}

/// Runs the consumer until `shutdown`; failing pulls are retried after 1 s, doubling to
/// 30 s (or after Cloudflare's `Retry-After`, up to 5 minutes).
pub async fn run(
    cfg: CfQueueConfig,
    ingestor: Arc<Ingestor>,
    statuses: Statuses,
    shutdown: CancellationToken,
) {
    let Some(http) = super::http_client(&cfg.name, &statuses) else {
        return;
    };
    let client = Client {
        http,
        cfg: Arc::new(cfg),
    };
    let name = client.cfg.name.clone();
    let mut wait = Duration::from_secs(1);
    let mut store_wait = Duration::from_secs(1);
    loop {
        let answer = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = client.pull() => a,
        };
        let pause = match answer {
            Ok(PullAnswer { messages, backlog }) => {
                wait = Duration::from_secs(1);
                super::update(&statuses, &name, |s| {
                    s.connected = true;
                    s.last_error = None;
                    s.lag = backlog;
                });
                if messages.is_empty() {
                    client.cfg.poll_interval
                } else {
                    let busy = handle_batch(&client, &ingestor, &statuses, messages).await;
                    if busy {
                        // The store is refusing: pulling more would only spend their attempts.
                        let p = store_wait;
                        store_wait = (store_wait * 2).min(Duration::from_secs(30));
                        p
                    } else {
                        store_wait = Duration::from_secs(1);
                        Duration::ZERO
                    }
                }
            }
            Err(e) => {
                let error = e.to_string();
                let pause = match e.retry_after {
                    Some(after) => after.min(MAX_RETRY_AFTER).max(wait),
                    None => wait,
                };
                tracing::warn!(source = %name, "{error}; trying again in {pause:?}");
                super::update(&statuses, &name, |s| {
                    s.connected = false;
                    s.last_error = Some(error.clone());
                });
                wait = (wait * 2).min(Duration::from_secs(30));
                pause
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
    super::update(&statuses, &name, |s| s.connected = false);
}

/// Accepts a pull's messages at once, then settles them all in one `messages/ack` call.
/// Returns whether the store refused any for now.
async fn handle_batch(
    client: &Client,
    ingestor: &Arc<Ingestor>,
    statuses: &Statuses,
    messages: Vec<Pulled>,
) -> bool {
    let name = &client.cfg.name;
    let mut inflight: JoinSet<Done> = JoinSet::new();
    for msg in messages {
        super::update(statuses, name, |s| s.received += 1);
        let (client, ingestor) = (client.clone(), Arc::clone(ingestor));
        inflight.spawn(async move { handle(&client, &ingestor, msg).await });
    }
    let mut done: Vec<Done> = Vec::new();
    while let Some(d) = inflight.join_next().await {
        match d {
            Ok(d) => done.push(d),
            // Its lease runs out and it comes again.
            Err(e) => super::record(statuses, name, Err(e)),
        }
    }
    let acks: Vec<&str> = done
        .iter()
        .filter(|d| matches!(d.settle, Settle::Ack))
        .map(|d| d.lease_id.as_str())
        .collect();
    let retries: Vec<(&str, u64)> = done
        .iter()
        .filter_map(|d| match d.settle {
            Settle::Retry { delay_s } => Some((d.lease_id.as_str(), delay_s)),
            Settle::Ack => None,
        })
        .collect();
    let settled = client.settle(&acks, &retries).await;
    let busy = done.iter().any(|d| d.store_busy);
    for d in done {
        let handled = match (&settled, d.settle, d.handled) {
            (Err(e), Settle::Ack, Handled::Acked) => {
                // Stored but not acknowledged: it comes again and merges with what is pending.
                Handled::Retried(format!(
                    "stored, not acknowledged ({e}); it comes again when its lease ends"
                ))
            }
            (Err(e), Settle::Ack, Handled::DeadLettered) => Handled::Retried(format!(
                "dead-lettered, not acknowledged ({e}); it comes again when its lease ends"
            )),
            (_, _, handled) => handled,
        };
        super::record(statuses, name, Ok(handled));
    }
    busy
}

async fn handle(client: &Client, ingestor: &Ingestor, msg: Pulled) -> Done {
    let cfg = &client.cfg;
    let lease_id = msg.lease_id.clone();
    let body = match &msg.body {
        Ok(b) if b.len() > cfg.max_body_bytes => Err(format!(
            "{} bytes, over server.max_body_bytes ({})",
            b.len(),
            cfg.max_body_bytes
        )),
        Ok(b) => Ok(b.as_slice()),
        Err(e) => Err(e.clone()),
    };
    let body = match body {
        Ok(b) => b,
        Err(error) => return dead_letter(client, &msg, &error).await,
    };
    let visibility = Duration::from_secs(cfg.visibility_timeout_s);
    let started = Instant::now();
    // While the store cannot take it, asked again within the lease (at most 20 s, so a
    // stopping server is not held long): each redelivery counts toward max_retries.
    let until = tokio::time::Instant::now()
        + visibility
            .saturating_sub(Duration::from_secs(5))
            .min(Duration::from_secs(20));
    let result = super::accept_retrying(ingestor, body, until, &CancellationToken::new()).await;
    if started.elapsed() >= visibility {
        tracing::warn!(
            source = %cfg.name, message_id = %msg.id,
            "the commit took {:?}, longer than the lease (visibility_timeout_s = {}): the \
             message may be delivered again (its purges merge while pending)",
            started.elapsed(), cfg.visibility_timeout_s
        );
    }
    match result {
        Ok(_) => Done {
            lease_id,
            settle: Settle::Ack,
            handled: Handled::Acked,
            store_busy: false,
        },
        Err(e) if super::never_accepted(&e) => dead_letter(client, &msg, &e.to_string()).await,
        Err(e) => {
            let why = format!("not stored yet, delivered again in {STORE_RETRY_S} s: {e}");
            tracing::warn!(source = %cfg.name, message_id = %msg.id, "{why}");
            Done {
                lease_id,
                settle: Settle::Retry {
                    delay_s: STORE_RETRY_S,
                },
                handled: Handled::Retried(why),
                store_busy: true,
            }
        }
    }
}

async fn dead_letter(client: &Client, msg: &Pulled, error: &str) -> Done {
    let cfg = &client.cfg;
    let lease_id = msg.lease_id.clone();
    let Some(dlq) = &cfg.dead_letter_queue_id else {
        let shown = match &msg.body {
            Ok(b) => String::from_utf8_lossy(&b[..b.len().min(LOGGED_BYTES)]).into_owned(),
            Err(_) => msg.raw_body.clone(),
        };
        tracing::error!(
            source = %cfg.name, message_id = %msg.id, attempts = msg.attempts,
            body = %crate::purgers::snippet(&shown, LOGGED_BYTES),
            "not a notification edgepurge can take; marked for retry in 12 hours (after the \
             consumer's max_retries deliveries Cloudflare moves it to the consumer's dead \
             letter queue, or deletes it when the consumer has none; set dead_letter_queue_id \
             to move it at once): {error}"
        );
        return Done {
            lease_id,
            settle: Settle::Retry {
                delay_s: MAX_DELAY_S,
            },
            handled: Handled::DeadLettered,
            store_busy: false,
        };
    };
    match client.push_dead_letter(dlq, msg).await {
        Ok(()) => {
            tracing::error!(
                source = %cfg.name, message_id = %msg.id, dead_letter_queue = %dlq,
                "not a notification edgepurge can take; moved to the dead-letter queue: {error}"
            );
            Done {
                lease_id,
                settle: Settle::Ack,
                handled: Handled::DeadLettered,
                store_busy: false,
            }
        }
        Err(e) => {
            let why = format!(
                "cannot push to the dead-letter queue {dlq} ({e}); the message stays and comes \
                 again in {DEAD_LETTER_RETRY_S} s"
            );
            tracing::error!(source = %cfg.name, message_id = %msg.id, "{why}");
            Done {
                lease_id,
                settle: Settle::Retry {
                    delay_s: DEAD_LETTER_RETRY_S,
                },
                handled: Handled::Retried(why),
                store_busy: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_decoded_by_their_content_type() {
        let json = r#"{"action":"PutObject"}"#;
        let b64 = "eyJhY3Rpb24iOiJQdXRPYmplY3QifQ==";
        assert_eq!(decode_body(Some("json"), b64).unwrap(), json.as_bytes());
        assert_eq!(decode_body(Some("bytes"), "AP8=").unwrap(), [0u8, 255]);
        assert_eq!(decode_body(Some("text"), json).unwrap(), json.as_bytes());
        assert_eq!(decode_body(None, json).unwrap(), json.as_bytes());
        assert_eq!(decode_body(None, b64).unwrap(), json.as_bytes());
        assert_eq!(decode_body(None, "not base64!").unwrap(), b"not base64!");
        let v8 = decode_body(Some("v8"), "AAAA").unwrap_err();
        assert!(v8.contains("only a Worker can read"), "{v8}");
        let bad = decode_body(Some("json"), "eyJhI").unwrap_err();
        assert!(
            bad.starts_with("CF-Content-Type json: the body is not base64"),
            "{bad}"
        );
    }

    #[test]
    fn base64_follows_rfc_4648() {
        // RFC 4648 §10 test vectors.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes(), "{coded}");
        }
        for bad in ["Zg=", "Zg==Zg==", "Z===", "Zm9v!A==", "Zm-v"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pulled_message_needs_a_lease_and_keeps_its_raw_body() {
        let m = pulled(&json!({
            "id": "m1", "attempts": 2, "lease_id": "L1", "body": "aGk=",
            "metadata": {"CF-Content-Type": "bytes"}
        }))
        .unwrap();
        assert_eq!(
            (m.id.as_str(), m.attempts, m.lease_id.as_str()),
            ("m1", 2, "L1")
        );
        assert_eq!(m.body.as_deref().unwrap(), b"hi");
        assert_eq!(dead_letter_body(&m), ("text", json!("hi")));
        assert!(pulled(&json!({"id": "m2", "body": "x"})).is_none());
        let broken = pulled(&json!({
            "lease_id": "L3", "body": "%%%%", "metadata": {"CF-Content-Type": "json"}
        }))
        .unwrap();
        assert!(broken.body.is_err());
        assert_eq!(dead_letter_body(&broken), ("text", json!("%%%%")));
        let obj = pulled(&json!({"lease_id": "L4", "body": {"a": 1}})).unwrap();
        assert_eq!(dead_letter_body(&obj), ("json", json!({"a": 1})));
    }

    #[test]
    fn cloudflare_errors_are_read_and_advice_names_the_fix() {
        let v = json!({"success": false, "errors": [
            {"code": 10000, "message": "Authentication error"}]});
        assert_eq!(
            cloudflare_errors(&v).as_deref(),
            Some("10000 Authentication error")
        );
        assert_eq!(cloudflare_errors(&json!({"errors": []})), None);
        let cfg = CfQueueConfig {
            name: "q".into(),
            account_id: "a".repeat(32),
            queue_id: "b".repeat(32),
            endpoint: url::Url::parse(API).unwrap(),
            dead_letter_queue_id: None,
            batch_size: 100,
            visibility_timeout_s: 60,
            poll_interval: Duration::from_secs(1),
            api_token: SecretSource::Env("CF_QUEUES_TOKEN".into()),
            max_body_bytes: 1000,
        };
        assert!(advice(403, &cfg).contains("Queues Edit"));
        assert!(advice(403, &cfg).contains("environment variable CF_QUEUES_TOKEN"));
        assert!(advice(404, &cfg).contains("wrangler queues list"));
        assert!(advice(405, &cfg).contains("wrangler queues consumer http add"));
    }
}
