//! `[[sources]] kind = "sqs"`: an Amazon SQS queue that S3 (directly, or through SNS) sends
//! bucket events to. Long polling (`ReceiveMessage`, JSON protocol, SigV4); a message is
//! deleted only after the [`Ingestor`] committed it, and its visibility is extended while a
//! slow commit runs. One that can never be accepted is sent to `dead_letter_queue_url` and
//! deleted or, without one, hidden for 12 hours (a redrive policy on the queue then moves it
//! to the queue's own dead-letter queue) and logged: never dropped, never blocking the next.

use super::{Handled, Statuses};
use crate::app::Ingestor;
use crate::aws::sigv4::{self, Credentials};
use crate::validate::{self, Problems};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the queue's depth is asked for (`/healthz`'s `lag`).
const LAG_EVERY: Duration = Duration::from_secs(15);

/// The longest SQS lets a message stay hidden.
const MAX_VISIBILITY_S: u64 = 12 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqs {
    kind: String,
    name: Option<String>,
    queue_url: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    dead_letter_queue_url: Option<String>,
    wait_time_s: Option<u64>,
    max_messages: Option<usize>,
    visibility_timeout_s: Option<u64>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    session_token_env: Option<String>,
    session_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqsConfig {
    pub name: String,
    pub queue_url: url::Url,
    pub region: String,
    /// Where requests go: `endpoint`, else the queue URL's scheme and host.
    pub endpoint: url::Url,
    pub dead_letter_queue_url: Option<url::Url>,
    pub wait_time_s: u64,
    pub max_messages: usize,
    pub visibility_timeout_s: u64,
    pub keys: crate::aws::KeySources,
}

/// The region of `sqs.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
fn region_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    let rest = host.strip_prefix("sqs.")?;
    let (region, domain) = rest.split_once('.')?;
    domain
        .starts_with("amazonaws.com")
        .then(|| region.to_owned())
}

pub fn check(table: toml::Table, at: &str, p: &mut Problems) -> Option<SqsConfig> {
    let raw: RawSqs = validate::section(table, at, p)?;
    debug_assert_eq!(raw.kind, "sqs");
    let queue_url = match &raw.queue_url {
        Some(u) => validate::endpoint(u, &format!("{at}.queue_url"), p),
        None => {
            p.push(
                format!("{at}.queue_url"),
                "required, e.g. \"https://sqs.us-east-1.amazonaws.com/123456789012/s3-events\"",
            );
            None
        }
    };
    let endpoint = match &raw.endpoint {
        Some(e) => validate::endpoint(e, &format!("{at}.endpoint"), p),
        None => queue_url.as_ref().map(|q| {
            let mut e = q.clone();
            e.set_path("/");
            e
        }),
    };
    let dead_letter_queue_url = raw
        .dead_letter_queue_url
        .as_deref()
        .and_then(|u| validate::endpoint(u, &format!("{at}.dead_letter_queue_url"), p));
    let region = raw
        .region
        .clone()
        .or_else(|| queue_url.as_ref().and_then(region_of));
    if region.is_none() && queue_url.is_some() {
        p.push(
            format!("{at}.region"),
            "required (the queue URL does not say it), e.g. \"us-east-1\"",
        );
    }
    let wait_time_s = match raw.wait_time_s {
        Some(w) if w > 20 => {
            p.push(
                format!("{at}.wait_time_s"),
                "must be 0 to 20 (SQS's long-poll maximum)",
            );
            20
        }
        w => w.unwrap_or(20),
    };
    let max_messages = match raw.max_messages {
        Some(n) if n == 0 || n > 10 => {
            p.push(
                format!("{at}.max_messages"),
                "must be 1 to 10 (SQS's maximum)",
            );
            10
        }
        n => n.unwrap_or(10),
    };
    let visibility_timeout_s = match raw.visibility_timeout_s {
        Some(v) if !(2..=MAX_VISIBILITY_S).contains(&v) => {
            p.push(
                format!("{at}.visibility_timeout_s"),
                "must be 2 to 43200 (12 hours)",
            );
            60
        }
        v => v.unwrap_or(60),
    };
    let keys = crate::aws::KeySources::check(
        crate::aws::RawKeys {
            access_key_id: (raw.access_key_id_env, raw.access_key_id_file),
            secret_access_key: (raw.secret_access_key_env, raw.secret_access_key_file),
            session_token: (raw.session_token_env, raw.session_token_file),
        },
        at,
        p,
    );
    let (queue_url, endpoint, region) = (queue_url?, endpoint?, region?);
    let name = raw.name.unwrap_or_else(|| {
        let queue = queue_url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("queue");
        format!("sqs:{queue}")
    });
    Some(SqsConfig {
        name,
        queue_url,
        region,
        endpoint,
        dead_letter_queue_url,
        wait_time_s,
        max_messages,
        visibility_timeout_s,
        keys: keys?,
    })
}

/// A signed JSON-protocol SQS client for one queue.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    cfg: Arc<SqsConfig>,
}

/// An SQS error answer, or no answer.
#[derive(Debug)]
struct SqsError(String);

impl std::fmt::Display for SqsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Client {
    async fn credentials(&self) -> Result<Credentials, SqsError> {
        self.cfg.keys.load().await.map_err(SqsError)
    }

    /// Calls `AmazonSQS.<action>` with `body`; the answer's JSON.
    async fn call(&self, action: &str, body: Value, timeout: Duration) -> Result<Value, SqsError> {
        let creds = self.credentials().await?;
        let payload = body.to_string();
        let endpoint = &self.cfg.endpoint;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(SqsError(format!("endpoint {endpoint} has no host"))),
        };
        let target = format!("AmazonSQS.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: endpoint.path(),
                query: &[],
                headers: &headers,
                host: &host,
                body: payload.as_bytes(),
            },
            &creds,
            &self.cfg.region,
            "sqs",
            &sigv4::amz_date(chrono::Utc::now().timestamp_millis()),
        );
        let mut req = self
            .http
            .post(endpoint.clone())
            .timeout(timeout)
            .body(payload);
        for (k, v) in headers.iter() {
            req = req.header(*k, *v);
        }
        for (k, v) in &signed.headers {
            req = req.header(*k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SqsError(format!("{action}: no answer from {endpoint}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| SqsError(format!("{action}: reading the answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let code = value
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| crate::purgers::snippet(&text, 200));
        Err(SqsError(format!("{action}: {code}: {message}")))
    }

    fn queue(&self) -> &str {
        self.cfg.queue_url.as_str()
    }

    async fn hide(&self, handle: &str, seconds: u64) -> Result<(), SqsError> {
        self.call(
            "ChangeMessageVisibility",
            json!({"QueueUrl": self.queue(), "ReceiptHandle": handle, "VisibilityTimeout": seconds}),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    /// Messages waiting plus messages received and not yet deleted.
    async fn lag(&self) -> Result<u64, SqsError> {
        let v = self
            .call(
                "GetQueueAttributes",
                json!({"QueueUrl": self.queue(), "AttributeNames": [
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
                Duration::from_secs(10),
            )
            .await?;
        let count = |k: &str| {
            v.pointer(&format!("/Attributes/{k}"))
                .and_then(Value::as_str)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(count("ApproximateNumberOfMessages") + count("ApproximateNumberOfMessagesNotVisible"))
    }

    async fn delete(&self, handle: &str) -> Result<(), SqsError> {
        self.call(
            "DeleteMessage",
            json!({"QueueUrl": self.queue(), "ReceiptHandle": handle}),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }
}

/// Runs the consumer until `shutdown`; failures are retried after 1 s, doubling to 30 s.
pub async fn run(
    cfg: SqsConfig,
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
    let mut inflight: JoinSet<Handled> = JoinSet::new();
    let mut lag_checked: Option<tokio::time::Instant> = None;
    loop {
        let receive = client.call(
            "ReceiveMessage",
            json!({
                "QueueUrl": client.queue(),
                "MaxNumberOfMessages": client.cfg.max_messages,
                "WaitTimeSeconds": client.cfg.wait_time_s,
                "VisibilityTimeout": client.cfg.visibility_timeout_s,
                "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            }),
            Duration::from_secs(client.cfg.wait_time_s + 10),
        );
        let answer = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = receive => a,
        };
        match answer {
            Ok(v) => {
                wait = Duration::from_secs(1);
                super::update(&statuses, &name, |s| {
                    s.connected = true;
                    s.last_error = None;
                });
                let messages = v
                    .get("Messages")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for m in messages {
                    let (Some(body), Some(receipt)) = (
                        m.get("Body").and_then(Value::as_str).map(str::to_owned),
                        m.get("ReceiptHandle")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    ) else {
                        continue;
                    };
                    let id = m
                        .get("MessageId")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .to_owned();
                    super::update(&statuses, &name, |s| s.received += 1);
                    let (client, ingestor) = (client.clone(), Arc::clone(&ingestor));
                    inflight
                        .spawn(async move { handle(&client, &ingestor, &id, body, receipt).await });
                }
                // One receive's messages are stored before the next receive.
                while let Some(done) = inflight.join_next().await {
                    super::record(&statuses, &name, done);
                }
                if lag_checked.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
                    lag_checked = Some(tokio::time::Instant::now());
                    match client.lag().await {
                        Ok(lag) => super::update(&statuses, &name, |s| s.lag = Some(lag)),
                        Err(e) => tracing::debug!(source = %name, "queue depth: {e}"),
                    }
                }
            }
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(source = %name, "{error}; trying again in {wait:?}");
                super::update(&statuses, &name, |s| {
                    s.connected = false;
                    s.last_error = Some(error.clone());
                });
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
    super::update(&statuses, &name, |s| s.connected = false);
}

async fn handle(
    client: &Client,
    ingestor: &Ingestor,
    id: &str,
    body: String,
    receipt: String,
) -> Handled {
    let cfg = &client.cfg;
    let visibility = Duration::from_secs(cfg.visibility_timeout_s);
    // While a slow commit runs, the message stays hidden.
    let result = super::accept_keeping_alive(ingestor, body.as_bytes(), visibility / 2, || async {
        if let Err(e) = client.hide(&receipt, cfg.visibility_timeout_s).await {
            tracing::warn!(source = %cfg.name, message_id = id, "cannot extend visibility: {e}");
        }
    })
    .await;
    match result {
        Ok(_) => match client.delete(&receipt).await {
            Ok(()) => Handled::Acked,
            // Stored but not deleted: it comes again and merges with what is pending.
            Err(e) => Handled::Retried(format!("stored, not deleted: {e}")),
        },
        Err(e) if super::never_accepted(&e) => {
            dead_letter(client, id, &body, &receipt, &e.to_string()).await
        }
        Err(e) => {
            let why = format!("not stored yet, shown again in 5 s: {e}");
            tracing::warn!(source = %cfg.name, message_id = id, "{why}");
            let _ = client.hide(&receipt, 5).await;
            Handled::Retried(why)
        }
    }
}

async fn dead_letter(client: &Client, id: &str, body: &str, receipt: &str, error: &str) -> Handled {
    let cfg = &client.cfg;
    match &cfg.dead_letter_queue_url {
        Some(dlq) => {
            let sent = client
                .call(
                    "SendMessage",
                    json!({"QueueUrl": dlq.as_str(), "MessageBody": body}),
                    Duration::from_secs(10),
                )
                .await;
            match sent {
                Ok(_) => {
                    tracing::error!(
                        source = %cfg.name, message_id = id, dead_letter = %dlq,
                        "not a notification edgepurge can take; moved to the dead-letter queue: {error}"
                    );
                    let _ = client.delete(receipt).await;
                    Handled::DeadLettered
                }
                Err(e) => {
                    let why = format!(
                        "cannot send to the dead-letter queue ({e}); the message stays and \
                         comes again in 5 minutes"
                    );
                    tracing::error!(source = %cfg.name, message_id = id, "{why}");
                    let _ = client.hide(receipt, 300).await;
                    Handled::Retried(why)
                }
            }
        }
        None => {
            tracing::error!(
                source = %cfg.name, message_id = id,
                "not a notification edgepurge can take; hidden for 12 hours (a redrive policy \
                 on the queue moves it to its dead-letter queue; or set dead_letter_queue_url): \
                 {error}"
            );
            let _ = client.hide(receipt, MAX_VISIBILITY_S).await;
            Handled::DeadLettered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_queue_url() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            region_of(&u("https://sqs.eu-west-1.amazonaws.com/1/q")).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_of(&u("https://sqs.cn-north-1.amazonaws.com.cn/1/q")).as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_of(&u("http://127.0.0.1:5000/1/q")), None);
    }
}
