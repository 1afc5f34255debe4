//! Tencent Cloud CDN: `PurgeUrlsCache`, `PurgePathCache`, `DescribePurgeTasks` and
//! `DescribePurgeQuota` over API 3.0 with TC3-HMAC-SHA256 (apis.md §A).

pub mod classify;
mod config;
mod learned;
pub mod sign;
mod tasks;

pub use config::{default_limits, TencentSettings, KIND};

use super::{
    describe_transport_error, retry_after, snippet, KindQuota, Limits, ProviderQuota, PurgeError,
    PurgeResponse, Purger, TargetFailure, TaskState, Verdict,
};
use crate::secret::SecretSource;
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use learned::{host_of, is_host_code, is_lasting_host_code, Learned};
use serde_json::{json, Value};
use std::time::Duration;

pub const API_VERSION: &str = "2018-06-06";
pub const SERVICE: &str = "cdn";
pub const DEFAULT_ENDPOINT: &str = "https://cdn.tencentcloudapi.com";
pub const INTL_ENDPOINT: &str = "https://cdn.intl.tencentcloudapi.com";
const CONTENT_TYPE: &str = "application/json";

pub struct TencentCdn {
    settings: TencentSettings,
    host: String,
    http: reqwest::Client,
    /// Domains and URLs the API refused on their own, for a while.
    learned: Learned,
}

impl TencentCdn {
    pub fn new(settings: TencentSettings) -> Result<TencentCdn, String> {
        let host = match (settings.endpoint.host_str(), settings.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("endpoint {} has no host", settings.endpoint)),
        };
        let http = super::api_client(settings.timeout)?;
        Ok(TencentCdn {
            settings,
            host,
            http,
            learned: Learned::default(),
        })
    }

    /// Calls one API action; the response is the `Response` object, or a classified failure.
    /// `targets` is how many targets the request carries (for error classification).
    async fn call(
        &self,
        action: &str,
        body: &Value,
        targets: usize,
    ) -> Result<Call, PurgeResponse> {
        let creds = self.credentials().await.map_err(|e| {
            PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Credentials(format!(
                    "credentials for provider {}: {e}",
                    self.settings.name
                )),
            )
        })?;
        let payload = serde_json::to_vec(body).map_err(|e| {
            PurgeResponse::failed(
                Verdict::Fatal,
                PurgeError::Request(format!("cannot encode request: {e}")),
            )
        })?;
        let timestamp = chrono::Utc::now().timestamp();
        let signed = sign::sign(
            creds.1.expose(),
            &sign::SignInput {
                method: "POST",
                headers: &[
                    ("content-type", CONTENT_TYPE),
                    ("host", &self.host),
                    ("x-tc-action", action),
                ],
                payload: &payload,
                service: SERVICE,
                timestamp,
            },
        );
        let mut req = self
            .http
            .post(self.settings.endpoint.clone())
            .header("Content-Type", CONTENT_TYPE)
            .header("Host", &self.host)
            .header("X-TC-Action", action)
            .header("X-TC-Version", API_VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header(
                "Authorization",
                sign::authorization(creds.0.expose(), &signed),
            );
        if let Some(token) = &creds.2 {
            req = req.header("X-TC-Token", token.expose());
        }
        let resp = req.body(payload).send().await.map_err(|e| {
            PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Transport(format!(
                    "{action} to {}: {}",
                    self.settings.endpoint,
                    describe_transport_error(&e)
                )),
            )
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let resp_headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| {
            let mut r = PurgeResponse::failed(
                Verdict::RetryLater { after: wait },
                PurgeError::Transport(format!("{action}: reading the answer failed: {e}")),
            );
            r.http_status = Some(status.as_u16());
            r
        })?;
        let fail = |verdict: Verdict, code: Option<&str>, message: String| PurgeResponse {
            verdict,
            http_status: Some(status.as_u16()),
            request_id: None,
            task_id: None,
            error: Some(PurgeError::Answer {
                code: code.map(str::to_owned),
                message,
            }),
            failed: Vec::new(),
        };
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let Some(response) = parsed.as_ref().and_then(|v| v.get("Response")) else {
            // Not Tencent's answer: a proxy's page, a truncated or empty body, a redirect.
            // Whatever sent it may be gone next time: retried (up to max_attempts), with the
            // start of what came back in the log.
            let what = if status.is_redirection() {
                let to = super::redirect_target(&resp_headers);
                format!(
                    "{action}: HTTP {status} redirect to {to}: not followed (a redirect would \
                     send the signed call elsewhere); check `endpoint`"
                )
            } else {
                format!(
                    "{action}: HTTP {status} without a Tencent API answer (check `endpoint`): \
                     {:?}",
                    snippet(&text, 200)
                )
            };
            return Err(fail(Verdict::RetryLater { after: wait }, None, what));
        };
        let request_id = response
            .get("RequestId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(err) = response.get("Error") {
            let code = err.get("Code").and_then(Value::as_str).unwrap_or("Unknown");
            let message = err.get("Message").and_then(Value::as_str).unwrap_or("");
            let mut verdict = classify::classify_for(code, targets);
            if let Verdict::RetryLater { after } = &mut verdict {
                *after = after.or(wait);
            }
            let mut r = fail(
                verdict,
                Some(code),
                format!("{action}: {code}: {}", snippet(message, 300)),
            );
            r.request_id = request_id;
            return Err(r);
        }
        if !status.is_success() {
            let mut r = fail(
                Verdict::RetryLater { after: wait },
                None,
                format!("{action}: HTTP {status} with a success body"),
            );
            r.request_id = request_id;
            return Err(r);
        }
        Ok(Call {
            status: status.as_u16(),
            request_id,
            response: response.clone(),
        })
    }

    async fn credentials(
        &self,
    ) -> Result<
        (
            crate::secret::Secret,
            crate::secret::Secret,
            Option<crate::secret::Secret>,
        ),
        String,
    > {
        let id = self.settings.secret_id.load().await?;
        let key = self.settings.secret_key.load().await?;
        let token = match &self.settings.session_token {
            Some(src) => match src {
                // An unset token variable means long-lived keys, not an error.
                SecretSource::Env(var) if std::env::var_os(var).is_none() => None,
                _ => Some(src.load().await?),
            },
            None => None,
        };
        Ok((id, key, token))
    }

    fn purge_body(&self, kind: TargetKind, targets: &[String]) -> (&'static str, Value) {
        let mut body = match kind {
            TargetKind::Dir => json!({ "Paths": targets, "FlushType": self.settings.flush_type }),
            // Tags are refused before sending (see `purge`); URLs otherwise.
            TargetKind::Url | TargetKind::Tag => json!({ "Urls": targets }),
        };
        if let Some(area) = &self.settings.area {
            body["Area"] = json!(area);
        }
        if self.settings.url_encode {
            body["UrlEncode"] = json!(true);
        }
        let action = match kind {
            TargetKind::Dir => "PurgePathCache",
            TargetKind::Url | TargetKind::Tag => "PurgeUrlsCache",
        };
        (action, body)
    }
}

impl TencentCdn {
    /// After a refusal that condemns one target of `subset` (sent for `targets[sending[i]]`):
    /// a single target or a single domain is remembered and fails for good now; a request
    /// spanning several domains is split into one batch per domain (a domain-level code does
    /// not say which), so only the bad domain's batch fails and is remembered.
    fn learn(&self, resp: &mut PurgeResponse, subset: &[String], sending: &[usize]) {
        let Some(PurgeError::Answer {
            code: Some(code),
            message,
        }) = resp.error.clone()
        else {
            return;
        };
        if !classify::is_per_target(&code) {
            return;
        }
        let mut hosts: Vec<(String, Vec<usize>)> = Vec::new();
        for (pos, t) in subset.iter().enumerate() {
            let h = host_of(t).unwrap_or_default();
            match hosts.iter_mut().find(|(k, _)| *k == h) {
                Some((_, v)) => v.push(pos),
                None => hosts.push((h, vec![pos])),
            }
        }
        if is_host_code(&code) && hosts.len() == 1 {
            if is_lasting_host_code(&code) {
                self.learned.bad_host(&hosts[0].0, &code, &message);
            }
            resp.verdict = Verdict::Fatal;
        } else if is_host_code(&code) {
            // The first domain's targets stay with the batch; each other domain leaves in
            // a batch of its own; all go again at once.
            resp.verdict = Verdict::RetryLater {
                after: Some(Duration::ZERO),
            };
            for (group, (_, positions)) in hosts.iter().enumerate().skip(1) {
                for &pos in positions {
                    resp.failed.push(TargetFailure {
                        index: sending[pos],
                        verdict: Verdict::RetryLater {
                            after: Some(Duration::ZERO),
                        },
                        error: PurgeError::Answer {
                            code: Some(code.clone()),
                            message: format!(
                                "{message} (a request over several domains; sent again per domain)"
                            ),
                        },
                        group: u32::try_from(group).unwrap_or(u32::MAX),
                    });
                }
            }
        } else if subset.len() == 1 {
            self.learned.bad_url(&subset[0], &code, &message);
        }
    }
}

struct Call {
    status: u16,
    request_id: Option<String>,
    response: Value,
}

#[async_trait]
impl Purger for TencentCdn {
    fn lane(&self) -> &str {
        &self.settings.name
    }

    fn provider(&self) -> &str {
        &self.settings.name
    }

    fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        if kind == TargetKind::Tag {
            return PurgeResponse::failed(
                Verdict::Fatal,
                PurgeError::Request(
                    "Tencent CDN cannot purge cache tags; use mode = \"url\" or \"dir\"".into(),
                ),
            );
        }
        // Targets whose domain or URL the API refused lately fail here, without a call.
        let mut known_bad: Vec<TargetFailure> = Vec::new();
        let mut sending: Vec<usize> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match self.learned.why_bad(t) {
                Some((code, why)) => known_bad.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Answer {
                        code: Some(code.clone()),
                        message: format!(
                            "{code}: {why} (refused lately; not sent again for up to {} min)",
                            learned::FORGET_AFTER.as_secs() / 60
                        ),
                    },
                    group: 0,
                }),
                None => sending.push(i),
            }
        }
        if sending.is_empty() {
            let first = known_bad.swap_remove(0);
            return PurgeResponse {
                failed: known_bad,
                ..PurgeResponse::failed(Verdict::Fatal, first.error)
            };
        }
        let subset: Vec<String> = sending.iter().map(|&i| targets[i].clone()).collect();
        let (action, body) = self.purge_body(kind, &subset);
        let mut resp = match self.call(action, &body, subset.len()).await {
            Ok(call) => {
                let task_id = call.response.get("TaskId").and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                PurgeResponse::done(call.status, call.request_id, task_id)
            }
            Err(failed) => failed,
        };
        self.learn(&mut resp, &subset, &sending);
        resp.failed.extend(known_bad);
        resp
    }

    fn forget(&self, targets: &[String]) {
        self.learned.forget(targets);
    }

    fn refuses_target_for_good(&self, error: &PurgeError) -> bool {
        match error {
            PurgeError::Request(_) => true,
            PurgeError::Answer {
                code: Some(code), ..
            } => classify::is_target_refusal(code),
            _ => false,
        }
    }

    fn credentials_missing(&self) -> bool {
        self.settings.secret_id.check_present().is_err()
            || self.settings.secret_key.check_present().is_err()
    }

    fn follows_tasks(&self) -> bool {
        true
    }

    async fn task_state(&self, task_id: &str) -> Result<TaskState, PurgeError> {
        if !tasks::is_task_id(task_id) {
            return Ok(TaskState::Unknown(format!(
                "{:?} is not a Tencent task id",
                snippet(task_id, 80)
            )));
        }
        let mut logs: Vec<Value> = Vec::new();
        let mut offset: u64 = 0;
        for _ in 0..tasks::MAX_PAGES {
            let mut body = json!({ "TaskId": task_id, "Offset": offset, "Limit": tasks::PAGE });
            if let Some(area) = &self.settings.area {
                body["Area"] = json!(area);
            }
            let call = match self.call("DescribePurgeTasks", &body, 0).await {
                Ok(call) => call,
                Err(r) => {
                    let e = r.error.unwrap_or_else(|| {
                        PurgeError::Transport("DescribePurgeTasks failed".into())
                    });
                    return tasks::unconfirmable(&e).ok_or(e);
                }
            };
            let (ours, n, total) = tasks::page_of(task_id, &call.response);
            logs.extend(ours.into_iter().cloned());
            offset += n as u64;
            if n == 0 || offset >= total {
                return Ok(tasks::state_of(&logs.iter().collect::<Vec<_>>(), true));
            }
        }
        // More entries than read this time: done only once all were seen.
        Ok(tasks::state_of(&logs.iter().collect::<Vec<_>>(), false))
    }

    async fn quota(&self) -> Option<Result<ProviderQuota, PurgeError>> {
        let call = match self.call("DescribePurgeQuota", &json!({}), 0).await {
            Ok(c) => c,
            Err(r) => {
                return Some(Err(r.error.unwrap_or_else(|| {
                    PurgeError::Transport("DescribePurgeQuota failed".into())
                })))
            }
        };
        let area = self.settings.area.as_deref().unwrap_or("mainland");
        let pick = |field: &str| -> Option<KindQuota> {
            let list = call.response.get(field)?.as_array()?;
            let entry = list
                .iter()
                .find(|q| q.get("Area").and_then(Value::as_str) == Some(area))
                .or_else(|| list.first())?;
            Some(KindQuota {
                batch: entry.get("Batch")?.as_u64()?.try_into().ok()?,
                total: entry.get("Total")?.as_u64()?,
                available: entry.get("Available")?.as_u64()?,
            })
        };
        let mut quota: ProviderQuota = Vec::new();
        for (kind, field) in [
            (TargetKind::Url, "UrlPurge"),
            (TargetKind::Dir, "PathPurge"),
        ] {
            if let Some(q) = pick(field) {
                quota.push((kind, q));
            }
        }
        Some(Ok(quota))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TencentSettings {
        TencentSettings {
            name: "tencent".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            secret_id: SecretSource::Env("X_ID".into()),
            secret_key: SecretSource::Env("X_KEY".into()),
            session_token: None,
            area: Some("overseas".into()),
            flush_type: "flush".into(),
            url_encode: false,
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    #[test]
    fn request_bodies_match_the_api_shapes() {
        let cdn = TencentCdn::new(settings()).unwrap();
        let (action, body) = cdn.purge_body(TargetKind::Url, &["https://a/1".into()]);
        assert_eq!(action, "PurgeUrlsCache");
        assert_eq!(body, json!({"Urls": ["https://a/1"], "Area": "overseas"}));
        let (action, body) = cdn.purge_body(TargetKind::Dir, &["https://a/d/".into()]);
        assert_eq!(action, "PurgePathCache");
        assert_eq!(
            body,
            json!({"Paths": ["https://a/d/"], "FlushType": "flush", "Area": "overseas"})
        );
    }

    #[test]
    fn host_keeps_a_non_default_port() {
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9999/").unwrap();
        assert_eq!(TencentCdn::new(s).unwrap().host, "127.0.0.1:9999");
        assert_eq!(
            TencentCdn::new(settings()).unwrap().host,
            "cdn.tencentcloudapi.com"
        );
    }

    #[tokio::test]
    async fn missing_credentials_retry_with_a_clear_error_and_no_request() {
        let cdn = TencentCdn::new(settings()).unwrap();
        let r = cdn.purge(TargetKind::Url, &["https://a/1".into()]).await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("X_ID") && err.contains("tencent"), "{err}");
    }
}
