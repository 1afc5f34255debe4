//! Relaying a body to a running edgepurge server (`[function] forward_to`): the function
//! succeeds only when the server answered 200, that is, when the body is durably queued there.

use crate::secret::SecretSource;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// What relaying one body did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForwardReport {
    pub ok: bool,
    pub forwarded_to: String,
    pub attempts: u32,
    /// The server's last HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The server's answer (what it accepted), when it gave JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ForwardReport {
    pub fn failure_summary(&self) -> String {
        format!(
            "not forwarded to {} after {} attempt(s): {}",
            self.forwarded_to,
            self.attempts,
            self.error.as_deref().unwrap_or("no answer")
        )
    }
}

pub struct Forwarder {
    url: url::Url,
    token: Option<SecretSource>,
    http: reqwest::Client,
    backoff: crate::dispatch::RetryPolicy,
}

impl Forwarder {
    pub fn new(url: url::Url, token: Option<SecretSource>) -> anyhow::Result<Forwarder> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edgepurge-function/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Forwarder {
            url,
            token,
            http,
            backoff: crate::app::short_backoff(),
        })
    }

    /// Posts `body` until the server answers 200, a refusal that will not change (4xx but
    /// 408/429), or `deadline`.
    pub async fn forward(&self, body: &[u8], deadline: Instant) -> ForwardReport {
        let mut report = ForwardReport {
            ok: false,
            forwarded_to: self.url.to_string(),
            attempts: 0,
            status: None,
            answer: None,
            error: None,
        };
        let token = match &self.token {
            Some(src) => match src.load().await {
                Ok(t) => Some(t),
                Err(e) => {
                    report.error = Some(format!("function token: {e}"));
                    return report;
                }
            },
            None => None,
        };
        loop {
            report.attempts += 1;
            let mut req = self
                .http
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            if let Some(t) = &token {
                req = req.bearer_auth(t.expose());
            }
            let mut retry_after = None;
            let retry = match tokio::time::timeout_at(deadline, req.send()).await {
                Err(_) => {
                    report.error = Some("no answer before the invocation's deadline".into());
                    return report;
                }
                Ok(Err(e)) => {
                    report.error = Some(format!("cannot reach the server: {e}"));
                    true
                }
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    report.status = Some(status.as_u16());
                    retry_after = crate::purgers::retry_after(resp.headers());
                    let headers = resp.headers().clone();
                    let text = tokio::time::timeout_at(deadline, resp.text())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                    let answer: Option<serde_json::Value> = serde_json::from_str(&text).ok();
                    if status == reqwest::StatusCode::OK {
                        // Only an edgepurge server's answer means "queued": anything else
                        // (a proxy's page, another service) would drop events silently.
                        if answer.as_ref().and_then(|a| a.get("accepted")).is_some() {
                            report.ok = true;
                            report.error = None;
                            report.answer = answer;
                        } else {
                            report.error = Some(format!(
                                "the server answered 200 but not as edgepurge does (no \
                                 \"accepted\"): {}; is forward_to the server's /v1/events?",
                                crate::purgers::snippet(&text, 120)
                            ));
                        }
                        return report;
                    }
                    if status.is_redirection() {
                        report.error = Some(format!(
                            "the server answered {status}, a redirect to {} (not followed: \
                             set forward_to to the final address)",
                            crate::purgers::redirect_target(&headers)
                        ));
                        return report;
                    }
                    let said = answer
                        .as_ref()
                        .and_then(|a| a.get("error"))
                        .and_then(|e| e.as_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| crate::purgers::snippet(&text, 200));
                    report.error = Some(format!("the server answered {status}: {said}"));
                    status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                }
            };
            if !retry {
                return report;
            }
            let wait = self.backoff.backoff_ms(
                report.attempts,
                retry_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                rand::random::<f64>(),
            );
            let at = Instant::now() + Duration::from_millis(wait.max(0) as u64);
            if at >= deadline {
                return report;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}
