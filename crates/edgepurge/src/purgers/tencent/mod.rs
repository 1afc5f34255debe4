//! Tencent Cloud CDN: `PurgeUrlsCache`, `PurgePathCache`, `DescribePurgeTasks` and
//! `DescribePurgeQuota` over API 3.0 with TC3-HMAC-SHA256 (apis.md §A); warming with
//! `PushUrlsCache` and its own quota, `DescribePushQuota` (apis.md §K.1).

pub mod api;
pub mod classify;
mod config;
mod learned;
pub mod sign;
pub(crate) mod tasks;

pub use config::{default_limits, TencentSettings, KIND};

use super::{
    snippet, KindQuota, Limits, PrefetchLimits, PrefetchResponse, ProviderQuota, PurgeError,
    PurgeResponse, Purger, TargetFailure, TaskState, Verdict,
};
use api::Call;
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use learned::{host_of, is_host_code, is_lasting_host_code, Learned};
use serde_json::{json, Value};
use std::time::Duration;

pub const API_VERSION: &str = "2018-06-06";
pub const SERVICE: &str = "cdn";
pub const DEFAULT_ENDPOINT: &str = "https://cdn.tencentcloudapi.com";
pub const INTL_ENDPOINT: &str = "https://cdn.intl.tencentcloudapi.com";
/// URLs per `PushUrlsCache` by default (apis.md §K.1; `DescribePushQuota`'s `Batch` says the
/// account's own).
pub const PUSH_BATCH: usize = 500;

pub struct TencentCdn {
    settings: TencentSettings,
    api: api::Client,
    /// Domains and URLs the API refused on their own, for a while.
    learned: Learned,
}

/// The CDN API (apis.md §A.1).
pub const PRODUCT: api::Product = api::Product {
    service: SERVICE,
    version: API_VERSION,
};

impl TencentCdn {
    pub fn new(settings: TencentSettings) -> Result<TencentCdn, String> {
        let api = api::Client::new(
            &settings.name,
            &settings.endpoint,
            PRODUCT,
            api::Credentials {
                secret_id: settings.secret_id.clone(),
                secret_key: settings.secret_key.clone(),
                session_token: settings.session_token.clone(),
            },
            settings.timeout,
        )?;
        Ok(TencentCdn {
            settings,
            api,
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
        self.api
            .call(action, body, &|code| classify::classify_for(code, targets))
            .await
    }

    /// `PushUrlsCache`'s body: the URLs, the account's area and URL encoding.
    fn push_body(&self, urls: &[String]) -> Value {
        let mut body = json!({ "Urls": urls });
        if let Some(area) = &self.settings.area {
            body["Area"] = json!(area);
        }
        if self.settings.url_encode {
            body["UrlEncode"] = json!(true);
        }
        body
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
        self.api.credentials_missing()
    }

    fn follows_tasks(&self) -> bool {
        true
    }

    fn task_calls(&self, _task_id: &str) -> u32 {
        super::task_pages(&self.settings.limits, tasks::PAGE, tasks::MAX_PAGES)
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
                    return tasks::unconfirmable(&e, "cdn:DescribePurgeTasks").ok_or(e);
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

    /// `PushUrlsCache` has its own rate (20 calls/s per API, as purges) and quota.
    fn prefetch_limits(&self) -> Option<PrefetchLimits> {
        Some(PrefetchLimits {
            max_urls: PUSH_BATCH,
            rate_per_s: self.settings.limits.rate_per_s,
            daily_quota: None,
        })
    }

    async fn prefetch(&self, urls: &[String]) -> PrefetchResponse {
        let answer = self
            .call("PushUrlsCache", &self.push_body(urls), urls.len())
            .await
            .map(|call| {
                call.response.get("TaskId").and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            });
        PrefetchResponse::from_call(answer)
    }

    async fn prefetch_quota(&self) -> Option<Result<KindQuota, PurgeError>> {
        let call = match self.call("DescribePushQuota", &json!({}), 0).await {
            Ok(c) => c,
            Err(r) => {
                return Some(Err(r.error.unwrap_or_else(|| {
                    PurgeError::Transport("DescribePushQuota failed".into())
                })))
            }
        };
        let area = self.settings.area.as_deref().unwrap_or("mainland");
        let list = call.response.get("UrlPush").and_then(Value::as_array)?;
        let entry = list
            .iter()
            .find(|q| q.get("Area").and_then(Value::as_str) == Some(area))
            .or_else(|| list.first())?;
        Some(Ok(KindQuota {
            batch: entry.get("Batch")?.as_u64()?.try_into().ok()?,
            total: entry.get("Total")?.as_u64()?,
            available: entry.get("Available")?.as_u64()?,
        }))
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
    use crate::secret::SecretSource;

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
        // A prefetch names the same area (a push to another region would miss the caches).
        assert_eq!(
            cdn.push_body(&["https://a/1".into()]),
            json!({"Urls": ["https://a/1"], "Area": "overseas"})
        );
    }

    #[test]
    fn host_keeps_a_non_default_port() {
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9999/").unwrap();
        assert_eq!(TencentCdn::new(s).unwrap().api.host, "127.0.0.1:9999");
        assert_eq!(
            TencentCdn::new(settings()).unwrap().api.host,
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
