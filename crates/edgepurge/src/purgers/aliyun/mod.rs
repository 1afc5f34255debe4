//! Alibaba Cloud CDN: `RefreshObjectCaches` (File / Directory), `RefreshObjectCacheByCacheTag`,
//! `DescribeRefreshTaskById` and `DescribeRefreshQuota`, RPC style (API 2018-05-10) with
//! ACS3-HMAC-SHA256 (apis.md §D.3, §J.3, §J.6); warming with `PushObjectCache`, whose daily
//! quota `DescribeRefreshQuota` gives as `PreloadQuota` / `PreloadRemain` (apis.md §K.3).

pub mod classify;
mod config;
pub mod sign;
mod tasks;

pub use config::{default_limits, AliyunSettings, KIND};

use super::{
    describe_transport_error, retry_after, snippet, KindQuota, Limits, PrefetchLimits,
    PrefetchResponse, ProviderQuota, PurgeError, PurgeResponse, Purger, SharedRate, TargetFailure,
    TaskState, Verdict,
};
use crate::secret::{Secret, SecretSource};
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use serde_json::Value;

pub const API_VERSION: &str = "2018-05-10";
pub const DEFAULT_ENDPOINT: &str = "https://cdn.aliyuncs.com";
const FORM: &str = "application/x-www-form-urlencoded";
/// Distinct domains one `RefreshObjectCaches` call may name (apis.md §D.3).
pub const MAX_DOMAINS_PER_CALL: usize = 10;
/// URLs one `PushObjectCache` call may carry (apis.md §K.3).
pub const MAX_PUSH_URLS: usize = 100;

pub struct AliyunCdn {
    settings: AliyunSettings,
    host: String,
    http: reqwest::Client,
}

/// What a call sends besides the action: parameters in the query string, and parameters in
/// a form body (as the official SDK places them for each action).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Params {
    query: Vec<(&'static str, String)>,
    form: Vec<(&'static str, String)>,
}

struct Call {
    status: u16,
    request_id: Option<String>,
    response: Value,
}

struct Credentials {
    id: Secret,
    secret: Secret,
    token: Option<Secret>,
}

impl AliyunCdn {
    pub fn new(settings: AliyunSettings) -> Result<AliyunCdn, String> {
        let host = match (settings.endpoint.host_str(), settings.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("endpoint {} has no host", settings.endpoint)),
        };
        let http = super::api_client(settings.timeout)?;
        Ok(AliyunCdn {
            settings,
            host,
            http,
        })
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        let id = self.settings.access_key_id.load().await?;
        let secret = self.settings.access_key_secret.load().await?;
        let token = match &self.settings.security_token {
            Some(src) => match src {
                // An unset token variable means a long-lived AccessKey, not an error.
                SecretSource::Env(var) if std::env::var_os(var).is_none() => None,
                _ => Some(src.load().await?),
            },
            None => None,
        };
        Ok(Credentials { id, secret, token })
    }

    /// Calls one API action; the answer's JSON object, or a classified failure. `targets` is
    /// how many targets the request carries (for error classification).
    async fn call(
        &self,
        action: &str,
        params: &Params,
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
        let body = if params.form.is_empty() {
            String::new()
        } else {
            sign::encode_params(&params.form)
        };
        let payload_hash = sign::sha256_hex(body.as_bytes());
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", self.host.as_str()),
            ("x-acs-action", action),
            ("x-acs-version", API_VERSION),
            ("x-acs-date", date.as_str()),
            ("x-acs-signature-nonce", nonce.as_str()),
            ("x-acs-content-sha256", payload_hash.as_str()),
        ];
        if !body.is_empty() {
            headers.push(("content-type", FORM));
        }
        if let Some(token) = &creds.token {
            headers.push(("x-acs-security-token", token.expose()));
            headers.push(("x-acs-accesskey-id", creds.id.expose()));
        }
        let signed = sign::sign(
            creds.secret.expose(),
            &sign::SignInput {
                method: "POST",
                path: "/",
                query: &params.query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
        );
        let mut url = self.settings.endpoint.clone();
        url.set_path("/");
        let query = sign::encode_params(&params.query);
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        let mut req = self.http.post(url);
        for (name, value) in &headers {
            // reqwest sets Host from the URL (the same value).
            if *name != "host" {
                req = req.header(*name, *value);
            }
        }
        req = req.header(
            "Authorization",
            sign::authorization(creds.id.expose(), &signed),
        );
        let resp = req.body(body).send().await.map_err(|e| {
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
        let text = crate::purgers::answer_text(resp).await.map_err(|e| {
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
        let parsed: Option<Value> = serde_json::from_str::<Value>(&text)
            .ok()
            .filter(|v| v.get("RequestId").is_some() || v.get("Code").is_some());
        let Some(response) = parsed else {
            // Not Alibaba's answer: a proxy's page, a truncated or empty body, a redirect.
            // Whatever sent it may be gone next time: retried (up to max_attempts).
            let what = if status.is_redirection() {
                let to = super::redirect_target(&resp_headers);
                format!(
                    "{action}: HTTP {status} redirect to {to}: not followed (a redirect would \
                     send the signed call elsewhere); check `endpoint`"
                )
            } else {
                format!(
                    "{action}: HTTP {status} without an Alibaba Cloud API answer (check \
                     `endpoint`): {:?}",
                    snippet(&text, 200)
                )
            };
            return Err(fail(Verdict::RetryLater { after: wait }, None, what));
        };
        let request_id = response
            .get("RequestId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(code) = response.get("Code").and_then(Value::as_str) {
            let message = response
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut verdict = classify::classify_for(code, targets);
            if let Verdict::RetryLater { after } = &mut verdict {
                *after = after.or(wait);
            }
            let mut text = format!("{action}: {code}: {}", snippet(message, 300));
            if verdict == Verdict::Fatal {
                if let Some(advice) = classify::advice(code) {
                    text.push_str(&format!(" ({advice})"));
                }
            }
            let mut r = fail(verdict, Some(code), text);
            r.request_id = request_id;
            return Err(r);
        }
        if !status.is_success() {
            let mut r = fail(
                Verdict::RetryLater { after: wait },
                None,
                format!("{action}: HTTP {status} without an error code"),
            );
            r.request_id = request_id;
            return Err(r);
        }
        Ok(Call {
            status: status.as_u16(),
            request_id,
            response,
        })
    }

    /// The action and parameters of a `RefreshObjectCaches` call for `targets`.
    fn refresh_params(&self, kind: TargetKind, targets: &[String]) -> Params {
        let (object_type, force) = match kind {
            TargetKind::Dir => ("Directory", Some(self.settings.force)),
            TargetKind::Url | TargetKind::Tag => ("File", None),
        };
        let mut form = vec![
            ("ObjectPath", targets.join("\n")),
            ("ObjectType", object_type.to_owned()),
        ];
        if let Some(force) = force {
            form.push(("Force", force.to_string()));
        }
        Params {
            query: Vec::new(),
            form,
        }
    }

    fn tag_params(&self, domain: &str, tags: &[String]) -> Params {
        Params {
            query: vec![
                ("CacheTag", tags.join(",")),
                ("DomainName", domain.to_owned()),
                ("Force", self.settings.force.to_string()),
            ],
            form: Vec::new(),
        }
    }

    async fn refresh(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        let hosts = distinct_hosts(targets);
        if hosts > MAX_DOMAINS_PER_CALL {
            return PurgeResponse::failed(
                Verdict::Split,
                PurgeError::Request(format!(
                    "{} domains in one batch; RefreshObjectCaches takes at most \
                     {MAX_DOMAINS_PER_CALL}: split",
                    hosts
                )),
            );
        }
        let params = self.refresh_params(kind, targets);
        match self
            .call("RefreshObjectCaches", &params, targets.len())
            .await
        {
            Ok(call) => {
                PurgeResponse::done(call.status, call.request_id, task_id_of(&call.response))
            }
            Err(failed) => failed,
        }
    }

    /// One `RefreshObjectCacheByCacheTag` per configured domain; the answer's task ids
    /// joined. A failure on one domain fails the batch (the domains done already are
    /// refreshed again with it: harmless, and nothing is lost).
    async fn refresh_tags(&self, tags: &[String]) -> PurgeResponse {
        let mut bad: Vec<TargetFailure> = Vec::new();
        let mut sending: Vec<String> = Vec::new();
        for (i, t) in tags.iter().enumerate() {
            if t.contains(',') || t.trim().is_empty() {
                bad.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Request(format!(
                        "cache tag {:?} is empty or has a comma (CacheTag is comma-separated)",
                        snippet(t, 100)
                    )),
                    group: 0,
                });
            } else {
                sending.push(t.clone());
            }
        }
        if sending.is_empty() {
            let first = bad.remove(0);
            return PurgeResponse {
                failed: bad,
                ..PurgeResponse::failed(Verdict::Fatal, first.error)
            };
        }
        let mut ids: Vec<String> = Vec::new();
        let mut last = None;
        for domain in &self.settings.cache_tag_domains {
            let params = self.tag_params(domain, &sending);
            match self
                .call("RefreshObjectCacheByCacheTag", &params, sending.len())
                .await
            {
                Ok(call) => {
                    ids.extend(task_id_of(&call.response));
                    last = Some((call.status, call.request_id));
                }
                Err(mut failed) => {
                    // A per-target code here is about the domain, which all tags share.
                    if failed.verdict == Verdict::Split {
                        failed.verdict = Verdict::Fatal;
                    }
                    if let Some(PurgeError::Answer { message, .. }) = &mut failed.error {
                        message.push_str(&format!(" (domain {domain})"));
                    }
                    failed.failed.extend(bad);
                    return failed;
                }
            }
        }
        let (status, request_id) = last.unwrap_or((200, None));
        let task_id = (!ids.is_empty()).then(|| ids.join(","));
        PurgeResponse {
            failed: bad,
            ..PurgeResponse::done(status, request_id, task_id)
        }
    }
}

/// The `RefreshTaskId` of an answer (a string of comma-separated ids; a number taken too).
fn task_id_of(response: &Value) -> Option<String> {
    match response.get("RefreshTaskId")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// How many distinct hosts the targets name.
fn distinct_hosts(targets: &[String]) -> usize {
    let mut hosts: Vec<String> = targets
        .iter()
        .map(|t| {
            url::Url::parse(t)
                .ok()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                .unwrap_or_default()
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts.len()
}

#[async_trait]
impl Purger for AliyunCdn {
    fn lane(&self) -> &str {
        &self.settings.name
    }

    fn provider(&self) -> &str {
        &self.settings.name
    }

    fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    /// A tag batch costs one call per domain of `cache_tag_domains`: tag batches go at
    /// `rate_per_s` / that many, so the calls stay within `rate_per_s`.
    fn shared_rates(&self) -> Vec<SharedRate> {
        let domains = self.settings.cache_tag_domains.len();
        if domains <= 1 {
            return Vec::new();
        }
        vec![SharedRate {
            kinds: vec![TargetKind::Tag],
            rate_per_s: self.settings.limits.rate_per_s / domains as f64,
        }]
    }

    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        match kind {
            TargetKind::Url | TargetKind::Dir => self.refresh(kind, targets).await,
            TargetKind::Tag if self.settings.cache_tag_domains.is_empty() => PurgeResponse::failed(
                Verdict::Fatal,
                PurgeError::Request(
                    "tag refreshes need the provider's cache_tag_domains (the domains \
                         whose cache tags to refresh)"
                        .into(),
                ),
            ),
            TargetKind::Tag => self.refresh_tags(targets).await,
        }
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
        self.settings.access_key_id.check_present().is_err()
            || self.settings.access_key_secret.check_present().is_err()
    }

    fn follows_tasks(&self) -> bool {
        true
    }

    fn task_calls(&self, task_id: &str) -> u32 {
        tasks::task_ids(task_id).map_or(1, |ids| {
            u32::try_from(ids.len().div_ceil(tasks::IDS_PER_CALL).max(1)).unwrap_or(u32::MAX)
        })
    }

    async fn task_state(&self, task_id: &str) -> Result<TaskState, PurgeError> {
        let Some(ids) = tasks::task_ids(task_id) else {
            return Ok(TaskState::Unknown(format!(
                "{:?} is not an Alibaba Cloud refresh task id",
                snippet(task_id, 80)
            )));
        };
        let mut answers: Vec<Value> = Vec::new();
        for chunk in ids.chunks(tasks::IDS_PER_CALL) {
            let params = Params {
                query: vec![("TaskId", chunk.join(","))],
                form: Vec::new(),
            };
            match self.call("DescribeRefreshTaskById", &params, 0).await {
                Ok(call) => answers.push(call.response),
                Err(r) => {
                    let e = r.error.unwrap_or_else(|| {
                        PurgeError::Transport("DescribeRefreshTaskById failed".into())
                    });
                    return tasks::unconfirmable(&e).ok_or(e);
                }
            }
        }
        let entries: Vec<&Value> = answers
            .iter()
            .flat_map(|a| tasks::entries_of(&ids, a))
            .collect();
        Ok(tasks::state_of(&ids, &entries))
    }

    /// `PushObjectCache`: at most 100 URLs a call, at the account's call rate.
    fn prefetch_limits(&self) -> Option<PrefetchLimits> {
        Some(PrefetchLimits {
            max_urls: MAX_PUSH_URLS,
            rate_per_s: self.settings.limits.rate_per_s,
            daily_quota: None,
        })
    }

    async fn prefetch(&self, urls: &[String]) -> PrefetchResponse {
        // `ObjectPath` in the query, as the official client places it.
        let params = Params {
            query: vec![("ObjectPath", urls.join("\n"))],
            form: Vec::new(),
        };
        let answer = self
            .call("PushObjectCache", &params, urls.len())
            .await
            .map(|call| match call.response.get("PushTaskId") {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
        PrefetchResponse::from_call(answer)
    }

    async fn prefetch_quota(&self) -> Option<Result<KindQuota, PurgeError>> {
        match self
            .call("DescribeRefreshQuota", &Params::default(), 0)
            .await
        {
            Ok(call) => tasks::preload_quota_of(&call.response).map(Ok),
            Err(r) => Some(Err(r.error.unwrap_or_else(|| {
                PurgeError::Transport("DescribeRefreshQuota failed".into())
            }))),
        }
    }

    async fn quota(&self) -> Option<Result<ProviderQuota, PurgeError>> {
        match self
            .call("DescribeRefreshQuota", &Params::default(), 0)
            .await
        {
            Ok(call) => Some(Ok(tasks::quota_of(&call.response))),
            Err(r) => Some(Err(r.error.unwrap_or_else(|| {
                PurgeError::Transport("DescribeRefreshQuota failed".into())
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> AliyunSettings {
        AliyunSettings {
            name: "aliyun".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            access_key_id: SecretSource::Env("X_ALIYUN_ID_UNSET".into()),
            access_key_secret: SecretSource::Env("X_ALIYUN_SECRET_UNSET".into()),
            security_token: None,
            force: true,
            cache_tag_domains: vec!["cdn.example.com".into()],
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    #[test]
    fn request_parameters_match_the_api_shapes() {
        let cdn = AliyunCdn::new(settings()).unwrap();
        let urls = vec![
            "https://a.example/1".to_owned(),
            "https://a.example/2".to_owned(),
        ];
        assert_eq!(
            cdn.refresh_params(TargetKind::Url, &urls),
            Params {
                query: vec![],
                form: vec![
                    (
                        "ObjectPath",
                        "https://a.example/1\nhttps://a.example/2".into()
                    ),
                    ("ObjectType", "File".into()),
                ],
            },
            "Force applies to directories only"
        );
        assert_eq!(
            cdn.refresh_params(TargetKind::Dir, &["https://a.example/d/".into()])
                .form,
            vec![
                ("ObjectPath", "https://a.example/d/".into()),
                ("ObjectType", "Directory".into()),
                ("Force", "true".into()),
            ]
        );
        assert_eq!(
            cdn.tag_params("cdn.example.com", &["a".into(), "b".into()])
                .query,
            vec![
                ("CacheTag", "a,b".into()),
                ("DomainName", "cdn.example.com".into()),
                ("Force", "true".into()),
            ]
        );
    }

    #[test]
    fn host_keeps_a_non_default_port_and_task_ids_are_read() {
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9999/").unwrap();
        assert_eq!(AliyunCdn::new(s).unwrap().host, "127.0.0.1:9999");
        assert_eq!(AliyunCdn::new(settings()).unwrap().host, "cdn.aliyuncs.com");
        assert_eq!(
            task_id_of(&serde_json::json!({"RefreshTaskId": "1,2"})).as_deref(),
            Some("1,2")
        );
        assert_eq!(
            task_id_of(&serde_json::json!({"RefreshTaskId": 17})).as_deref(),
            Some("17")
        );
        assert_eq!(task_id_of(&serde_json::json!({"RefreshTaskId": ""})), None);
    }

    #[test]
    fn tag_batches_are_paced_by_the_calls_they_cost() {
        let one = AliyunCdn::new(settings()).unwrap();
        assert!(one.shared_rates().is_empty());
        let mut s = settings();
        s.cache_tag_domains = vec!["a.example".into(), "b.example".into()];
        let two = AliyunCdn::new(s).unwrap();
        assert_eq!(
            two.shared_rates(),
            vec![SharedRate {
                kinds: vec![TargetKind::Tag],
                rate_per_s: 12.5
            }]
        );
    }

    #[tokio::test]
    async fn more_domains_than_one_call_takes_split_without_a_request() {
        let cdn = AliyunCdn::new(settings()).unwrap();
        let urls: Vec<String> = (0..11).map(|i| format!("https://d{i}.example/x")).collect();
        let r = cdn.purge(TargetKind::Url, &urls).await;
        assert_eq!(r.verdict, Verdict::Split);
        assert_eq!(r.http_status, None, "nothing was sent");
        assert_eq!(distinct_hosts(&urls[..10]), 10);
    }

    #[tokio::test]
    async fn missing_credentials_retry_with_a_clear_error_and_no_request() {
        let cdn = AliyunCdn::new(settings()).unwrap();
        let r = cdn.purge(TargetKind::Url, &["https://a/1".into()]).await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("X_ALIYUN_ID_UNSET") && err.contains("aliyun"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tags_with_commas_fail_alone() {
        let cdn = AliyunCdn::new(settings()).unwrap();
        let r = cdn.purge(TargetKind::Tag, &["a,b".into()]).await;
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(matches!(r.error, Some(PurgeError::Request(ref m)) if m.contains("comma")));
    }
}
