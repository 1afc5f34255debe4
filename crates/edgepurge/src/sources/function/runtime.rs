//! The runtime loops of a custom-runtime function: fetch an invocation, handle it, answer it.
//! Tencent SCF and AWS Lambda both work this way but differ in paths, headers and how the
//! deadline is told (apis.md §H), so there is one client with two dialects.

use super::Handler;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Lambda's default function timeout: the budget when a platform does not say.
pub const FALLBACK_BUDGET: Duration = Duration::from_secs(3);
/// The longest function timeout either platform allows (15 min) and a margin: a deadline
/// further away than this is not believed.
const LONGEST_BUDGET: Duration = Duration::from_secs(15 * 60 + 60);

/// Which platform runs the function, and where its runtime API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// `http://host:port/2018-06-01`.
    Lambda { base: String },
    /// `http://host:port`.
    Scf { base: String },
}

impl Platform {
    /// From the environment the platform sets: `AWS_LAMBDA_RUNTIME_API` (host:port; some
    /// emulators give a URL) or `SCF_RUNTIME_API` and `SCF_RUNTIME_API_PORT`.
    pub fn detect(env: impl Fn(&str) -> Option<String>) -> Option<Platform> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(api) = set("AWS_LAMBDA_RUNTIME_API") {
            let api = api.trim().trim_end_matches('/');
            let base = if api.contains("://") {
                api.to_owned()
            } else {
                format!("http://{api}")
            };
            return Some(Platform::Lambda {
                base: format!("{base}/2018-06-01"),
            });
        }
        if let Some(host) = set("SCF_RUNTIME_API") {
            let host = host.trim().trim_end_matches('/');
            let host = if host.contains("://") {
                host.to_owned()
            } else {
                format!("http://{host}")
            };
            let base = match set("SCF_RUNTIME_API_PORT") {
                Some(port) => format!("{host}:{}", port.trim()),
                None => host,
            };
            return Some(Platform::Scf { base });
        }
        None
    }

    pub fn name(&self) -> &'static str {
        match self {
            Platform::Lambda { .. } => "aws-lambda",
            Platform::Scf { .. } => "tencent-scf",
        }
    }
}

/// One invocation fetched from the runtime API.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub body: Vec<u8>,
    /// When handling must be over (the answer's own time already taken off).
    pub deadline: Instant,
}

/// Time kept back from the platform's deadline to post the answer.
fn reserve(budget: Duration) -> Duration {
    (budget / 10).min(Duration::from_millis(250))
}

/// The deadline for a budget that starts now.
fn deadline_in(budget: Duration) -> Instant {
    Instant::now() + budget.saturating_sub(reserve(budget))
}

/// Lambda's `Lambda-Runtime-Deadline-Ms` (epoch ms) as a budget from now. A deadline already
/// past leaves none (the invocation fails at once and the platform retries it); a value that
/// is no time at all, or implausibly far (emulators send other things), is not believed.
pub fn lambda_budget(deadline_ms: Option<&str>, now: SystemTime) -> Duration {
    /// 2001-09-09: smaller values are not epoch milliseconds.
    const EPOCH_MS_FLOOR: u128 = 1_000_000_000_000;
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    match deadline_ms.and_then(|v| v.trim().parse::<u128>().ok()) {
        Some(d) if d >= EPOCH_MS_FLOOR && d <= now_ms => Duration::ZERO,
        Some(d) if d >= EPOCH_MS_FLOOR => {
            let budget = Duration::from_millis(u64::try_from(d - now_ms).unwrap_or(u64::MAX));
            if budget <= LONGEST_BUDGET {
                budget
            } else {
                FALLBACK_BUDGET
            }
        }
        _ => FALLBACK_BUDGET,
    }
}

/// SCF's `time_limit_in_ms` (the function's timeout) as a budget from receipt.
pub fn scf_budget(time_limit_ms: Option<&str>) -> Duration {
    time_limit_ms
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .filter(|b| !b.is_zero() && *b <= LONGEST_BUDGET)
        .unwrap_or(FALLBACK_BUDGET)
}

/// Longest wait for the runtime API to take an answer.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the runtime API did with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Accepted,
    /// Refused (4xx), with why.
    Refused(String),
}

/// The runtime API could not be used: the function must stop.
#[derive(Debug, thiserror::Error)]
#[error("runtime API {what}: {why}")]
pub struct RuntimeError {
    what: String,
    why: String,
}

fn runtime_error(what: &str, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError {
        what: what.to_owned(),
        why: why.to_string(),
    }
}

pub struct RuntimeClient {
    platform: Platform,
    http: reqwest::Client,
}

impl RuntimeClient {
    pub fn new(platform: Platform) -> Result<RuntimeClient, RuntimeError> {
        // No timeout: `next` is a long poll, and the process may be frozen between calls.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| runtime_error("client", e))?;
        Ok(RuntimeClient { platform, http })
    }

    fn base(&self) -> &str {
        match &self.platform {
            Platform::Lambda { base } | Platform::Scf { base } => base,
        }
    }

    async fn post(
        &self,
        what: &str,
        path: &str,
        body: Vec<u8>,
        error_type: Option<&str>,
    ) -> Result<Posted, RuntimeError> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base()))
            .timeout(POST_TIMEOUT)
            .body(body);
        if let (Some(t), Platform::Lambda { .. }) = (error_type, &self.platform) {
            req = req
                .header("Lambda-Runtime-Function-Error-Type", format!("Runtime.{t}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let resp = req.send().await.map_err(|e| runtime_error(what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Posted::Accepted);
        }
        let text = resp.text().await.unwrap_or_default();
        let why = format!("HTTP {status}: {}", crate::purgers::snippet(&text, 200));
        // Lambda: a 500 is a container error the runtime must exit on; a refusal (too large,
        // answered twice) is the caller's to handle.
        if status.is_server_error() {
            return Err(runtime_error(what, why));
        }
        tracing::error!("runtime API {what}: {why}");
        Ok(Posted::Refused(why))
    }

    /// Tells the platform that start-up is over (SCF waits for this; Lambda needs nothing).
    pub async fn ready(&self) -> Result<(), RuntimeError> {
        match self.platform {
            // SCF refuses an empty body.
            Platform::Scf { .. } => self
                .post("init/ready", "/runtime/init/ready", b" ".to_vec(), None)
                .await
                .map(|_| ()),
            Platform::Lambda { .. } => Ok(()),
        }
    }

    /// Reports that start-up failed (Lambda has an endpoint for it; SCF shows the start-up
    /// log, so the message goes to standard error there).
    pub async fn init_failed(&self, message: &str) {
        tracing::error!("function start-up failed: {message}");
        if let Platform::Lambda { .. } = self.platform {
            let body = error_body("InvalidConfig", message);
            if let Err(e) = self
                .post(
                    "init/error",
                    "/runtime/init/error",
                    body,
                    Some("InvalidConfig"),
                )
                .await
            {
                tracing::error!("{e}");
            }
        }
    }

    /// Waits for the next invocation.
    pub async fn next(&self) -> Result<Invocation, RuntimeError> {
        let path = "/runtime/invocation/next";
        let mut tries = 0u32;
        let resp = loop {
            match self.http.get(format!("{}{path}", self.base())).send().await {
                Ok(r) => break r,
                // The runtime API going away means the platform is stopping us; a few quick
                // tries ride out a blip.
                Err(e) if tries < 3 => {
                    tries += 1;
                    tracing::warn!("runtime API invocation/next: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(tries))).await;
                }
                Err(e) => return Err(runtime_error("invocation/next", e)),
            }
        };
        let received = SystemTime::now();
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(runtime_error(
                "invocation/next",
                format!("HTTP {status}: {}", crate::purgers::snippet(&text, 200)),
            ));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (request_id, budget) = match self.platform {
            Platform::Lambda { .. } => (
                header("lambda-runtime-aws-request-id"),
                lambda_budget(header("lambda-runtime-deadline-ms").as_deref(), received),
            ),
            Platform::Scf { .. } => (
                header("request_id"),
                scf_budget(header("time_limit_in_ms").as_deref()),
            ),
        };
        let deadline = deadline_in(budget);
        let body = resp
            .bytes()
            .await
            .map_err(|e| runtime_error("invocation/next body", e))?
            .to_vec();
        let request_id = match (request_id, &self.platform) {
            (Some(id), _) => id,
            // Lambda answers by id: without one there is no way to answer.
            (None, Platform::Lambda { .. }) => {
                return Err(runtime_error(
                    "invocation/next",
                    "no Lambda-Runtime-Aws-Request-Id header",
                ))
            }
            (None, Platform::Scf { .. }) => "-".to_owned(),
        };
        Ok(Invocation {
            request_id,
            body,
            deadline,
        })
    }

    /// Answers an invocation with success.
    pub async fn respond(&self, inv: &Invocation, body: Vec<u8>) -> Result<Posted, RuntimeError> {
        match self.platform {
            Platform::Lambda { .. } => {
                let path = format!("/runtime/invocation/{}/response", path_id(&inv.request_id));
                self.post("invocation/response", &path, body, None).await
            }
            Platform::Scf { .. } => {
                self.post(
                    "invocation/response",
                    "/runtime/invocation/response",
                    body,
                    None,
                )
                .await
            }
        }
    }

    /// Answers an invocation with failure: the platform retries an async event.
    pub async fn fail(
        &self,
        inv: &Invocation,
        error_type: &str,
        message: &str,
    ) -> Result<Posted, RuntimeError> {
        match self.platform {
            Platform::Lambda { .. } => {
                let path = format!("/runtime/invocation/{}/error", path_id(&inv.request_id));
                let body = error_body(error_type, message);
                self.post("invocation/error", &path, body, Some(error_type))
                    .await
            }
            Platform::Scf { .. } => {
                let body = format!("{error_type}: {message}").into_bytes();
                self.post("invocation/error", "/runtime/invocation/error", body, None)
                    .await
            }
        }
    }
}

/// Lambda's standard error body.
fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "errorMessage": message, "errorType": error_type })
        .to_string()
        .into_bytes()
}

/// A request id as one path segment (ids are UUIDs; anything else is percent-escaped).
fn path_id(id: &str) -> String {
    crate::aws::sigv4::uri_encode(id, false)
}

/// Runs the function: start-up, then invocations until the runtime API goes away.
pub async fn run(platform: Platform, handler: anyhow::Result<Handler>) -> anyhow::Result<()> {
    let client = RuntimeClient::new(platform.clone())?;
    let handler = match handler {
        Ok(h) => h,
        Err(e) => {
            client.init_failed(&format!("{e:#}")).await;
            return Err(e);
        }
    };
    client.ready().await?;
    tracing::info!(platform = platform.name(), "function ready");
    loop {
        let inv = client.next().await?;
        let started = Instant::now();
        let posted = match handler.handle(&inv.body, inv.deadline).await {
            Ok(handled) => {
                handled.log(&inv.request_id, started.elapsed().as_millis());
                if handled.settled() {
                    let body = handled.answer()?;
                    client.respond(&inv, body).await?
                } else {
                    client
                        .fail(&inv, handled.error_type(), &handled.failure_summary())
                        .await?
                }
            }
            Err(e) => {
                // Delivering it again cannot help, but failing puts it in the platform's
                // dead-letter queue or failure destination instead of dropping it.
                tracing::error!(request_id = %inv.request_id, "invalid event: {e}");
                client.fail(&inv, "InvalidEvent", &e.to_string()).await?
            }
        };
        // An answer the platform would not take leaves the invocation open, and SCF hands
        // an open invocation out again: say briefly that it failed; if even that is refused,
        // stop (the platform starts a fresh instance) rather than purge it over and over.
        if let Posted::Refused(why) = posted {
            let brief = format!("the runtime API refused the answer ({why})");
            if let Posted::Refused(again) = client.fail(&inv, "AnswerRefused", &brief).await? {
                return Err(runtime_error("invocation answer", again).into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_platform_is_told_by_its_runtime_variables() {
        assert_eq!(Platform::detect(env(&[])), None);
        assert_eq!(
            Platform::detect(env(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")])),
            Some(Platform::Lambda {
                base: "http://127.0.0.1:9001/2018-06-01".into()
            })
        );
        // cargo-lambda's emulator gives a URL with a path.
        assert_eq!(
            Platform::detect(env(&[(
                "AWS_LAMBDA_RUNTIME_API",
                "http://127.0.0.1:9311/.rt"
            )])),
            Some(Platform::Lambda {
                base: "http://127.0.0.1:9311/.rt/2018-06-01".into()
            })
        );
        assert_eq!(
            Platform::detect(env(&[
                ("SCF_RUNTIME_API", "9.0.0.1"),
                ("SCF_RUNTIME_API_PORT", "9001")
            ])),
            Some(Platform::Scf {
                base: "http://9.0.0.1:9001".into()
            })
        );
        assert_eq!(
            Platform::detect(env(&[("SCF_RUNTIME_API", " ")])),
            None,
            "blank is unset"
        );
    }

    #[test]
    fn deadlines_are_believed_only_when_plausible() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        assert_eq!(
            lambda_budget(Some("1700000002500"), now),
            Duration::from_millis(2500)
        );
        // Garbage, absent, an emulator's bare "600000", a day away: Lambda's default.
        for bad in [Some("soon"), None, Some("600000"), Some("1700086400000")] {
            assert_eq!(lambda_budget(bad, now), FALLBACK_BUDGET, "{bad:?}");
        }
        // Already past: no time left.
        assert_eq!(lambda_budget(Some("1699999999000"), now), Duration::ZERO);
        assert_eq!(path_id("8476a536-e9f4-11e8"), "8476a536-e9f4-11e8");
        assert_eq!(path_id("a b/c"), "a%20b%2Fc");
        assert_eq!(scf_budget(Some("3000")), Duration::from_millis(3000));
        assert_eq!(scf_budget(Some("0")), FALLBACK_BUDGET);
        assert_eq!(scf_budget(None), FALLBACK_BUDGET);
        // Time is kept back to post the answer: a tenth, at most 250 ms.
        assert_eq!(reserve(Duration::from_secs(3)), Duration::from_millis(250));
        assert_eq!(
            reserve(Duration::from_millis(1000)),
            Duration::from_millis(100)
        );
    }
}
