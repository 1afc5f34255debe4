//! Tencent EdgeOne (`teo`, API 2022-09-01): `CreatePurgeTask` (`purge_url`, `purge_prefix`,
//! `purge_cache_tag`), `DescribePurgeTasks` for completion and `DescribeContentQuota` for
//! the zone's limits, over Tencent Cloud API 3.0 with TC3-HMAC-SHA256 (apis.md §A.8); warming
//! with `CreatePrefetchTask` and its `prefetch_url` quota (apis.md §K.2). The call, signing and
//! envelope are Tencent CDN's ([`crate::purgers::tencent::api`]).

pub mod classify;
mod config;
mod tasks;

pub use config::{default_limits, EdgeOneSettings, KIND};

use super::tencent::api;
use super::{
    snippet, KindQuota, Limits, PrefetchLimits, PrefetchResponse, ProviderQuota, PurgeError,
    PurgeResponse, Purger, TargetFailure, TaskState, Verdict,
};
use async_trait::async_trait;
use edgepurge_core::{printable, TargetKind};
use serde_json::{json, Value};

pub const API_VERSION: &str = "2022-09-01";
pub const SERVICE: &str = "teo";
pub const DEFAULT_ENDPOINT: &str = "https://teo.tencentcloudapi.com";
pub const INTL_ENDPOINT: &str = "https://teo.intl.tencentcloudapi.com";

/// The EdgeOne API (apis.md §A.8).
pub const PRODUCT: api::Product = api::Product {
    service: SERVICE,
    version: API_VERSION,
};

pub struct EdgeOne {
    settings: EdgeOneSettings,
    api: api::Client,
}

/// `CreatePurgeTask`'s `Type` for a target kind.
pub fn purge_type(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Url => "purge_url",
        TargetKind::Dir => "purge_prefix",
        TargetKind::Tag => "purge_cache_tag",
    }
}

/// The target kind a `DescribeContentQuota` entry's `Type` counts.
fn kind_of_type(t: &str) -> Option<TargetKind> {
    [TargetKind::Url, TargetKind::Dir, TargetKind::Tag]
        .into_iter()
        .find(|k| purge_type(*k) == t)
}

/// Why `target` cannot be sent as `kind`, if it cannot: URLs and directories are `http(s)`
/// URLs with a host (EdgeOne wants the scheme), a directory ends with `/`; a tag holds no
/// blank, comma or control character (the `Cache-Tag` header separates tags with them).
pub fn check_target(kind: TargetKind, target: &str) -> Result<(), String> {
    let shown = || format!("{:?}", printable(target));
    if target.is_empty() || target.chars().any(char::is_control) {
        return Err(format!("{} is empty or holds a control character", shown()));
    }
    match kind {
        TargetKind::Tag => {
            if target.chars().any(|c| c == ',' || c.is_whitespace()) {
                return Err(format!(
                    "cache tag {} holds a blank or comma (tags are separated by them)",
                    shown()
                ));
            }
        }
        TargetKind::Url | TargetKind::Dir => {
            let u =
                url::Url::parse(target).map_err(|e| format!("{} is not a URL ({e})", shown()))?;
            if u.scheme() != "http" && u.scheme() != "https" {
                return Err(format!("{} is not an http(s) URL", shown()));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("{} has no host", shown()));
            }
            if kind == TargetKind::Dir && !u.path().ends_with('/') {
                return Err(format!("directory {} does not end with /", shown()));
            }
        }
    }
    Ok(())
}

impl EdgeOne {
    pub fn new(settings: EdgeOneSettings) -> Result<EdgeOne, String> {
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
        Ok(EdgeOne { settings, api })
    }

    /// The `CreatePurgeTask` body purging `targets` (all of `kind`).
    fn purge_body(&self, kind: TargetKind, targets: &[String]) -> Value {
        let mut body = json!({
            "ZoneId": self.settings.zone_id,
            "Type": purge_type(kind),
            "Targets": targets,
        });
        match kind {
            // `Method` applies to directory (and host, all) purges; URL and tag purges delete.
            TargetKind::Dir => body["Method"] = json!(self.settings.method),
            TargetKind::Tag => {
                body["CacheTag"] = json!({ "Domains": self.settings.cache_tag_domains });
            }
            TargetKind::Url => {}
        }
        body
    }

    /// Adds what to do to an answer's error to `action` when its code needs a person.
    fn explain(&self, action: &str, resp: &mut PurgeResponse) {
        if let Some(PurgeError::Answer {
            code: Some(code),
            message,
        }) = &mut resp.error
        {
            if let Some(h) = classify::hint(code, action, &self.settings.zone_id) {
                message.push_str(&format!(" ({h})"));
            }
        }
    }

    async fn call(
        &self,
        action: &str,
        body: &Value,
        targets: usize,
    ) -> Result<api::Call, PurgeResponse> {
        self.api
            .call(action, body, &|code| classify::classify_for(code, targets))
            .await
            .map_err(|mut r| {
                self.explain(action, &mut r);
                r
            })
    }
}

/// The targets a successful answer's `FailedList` (`[{Reason, Targets}]`, may be null) says
/// were not taken: each fails on its own, for good, with the reason given. `subset[i]` was
/// sent for `targets[sending[i]]`; a listed target that was not sent is ignored.
fn failed_list(response: &Value, subset: &[String], sending: &[usize]) -> Vec<TargetFailure> {
    let mut out: Vec<TargetFailure> = Vec::new();
    // Position of each target sent (a list may name thousands).
    let mut pending: std::collections::HashMap<&str, usize> = subset
        .iter()
        .enumerate()
        .map(|(pos, t)| (t.as_str(), pos))
        .collect();
    let entries = response
        .get("FailedList")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in entries {
        let reason = entry
            .get("Reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        let listed = entry
            .get("Targets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for t in listed.iter().filter_map(Value::as_str) {
            // Each target fails once, however often the list names it.
            let Some(pos) = pending.remove(t) else {
                continue;
            };
            out.push(TargetFailure {
                index: sending[pos],
                verdict: Verdict::Fatal,
                error: PurgeError::Answer {
                    code: Some(classify::FAILED_LIST.to_owned()),
                    message: format!(
                        "CreatePurgeTask did not take {:?}: {}",
                        printable(t),
                        snippet(reason, 300)
                    ),
                },
                group: 0,
            });
        }
    }
    out
}

#[async_trait]
impl Purger for EdgeOne {
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
        if kind == TargetKind::Tag && self.settings.cache_tag_domains.is_empty() {
            return PurgeResponse::failed(
                Verdict::Fatal,
                PurgeError::Request(format!(
                    "provider {} has no cache_tag_domains: set the hostnames cache-tag purges \
                     apply to, or use mode = \"url\" or \"dir\"",
                    self.settings.name
                )),
            );
        }
        // Targets EdgeOne would refuse fail here, on their own, without a call.
        let mut bad: Vec<TargetFailure> = Vec::new();
        let mut sending: Vec<usize> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match check_target(kind, t) {
                Ok(()) => sending.push(i),
                Err(why) => bad.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Request(why),
                    group: 0,
                }),
            }
        }
        if sending.is_empty() {
            let first = bad.swap_remove(0);
            return PurgeResponse {
                failed: bad,
                ..PurgeResponse::failed(Verdict::Fatal, first.error)
            };
        }
        let subset: Vec<String> = sending.iter().map(|&i| targets[i].clone()).collect();
        let body = self.purge_body(kind, &subset);
        let mut resp = match self.call("CreatePurgeTask", &body, subset.len()).await {
            Ok(call) => {
                let job_id = call
                    .response
                    .get("JobId")
                    .and_then(Value::as_str)
                    .filter(|j| !j.is_empty())
                    .map(str::to_owned);
                let mut r = PurgeResponse::done(call.status, call.request_id, job_id);
                r.failed = failed_list(&call.response, &subset, &sending);
                r
            }
            Err(failed) => failed,
        };
        resp.failed.extend(bad);
        resp
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
        if !tasks::is_job_id(task_id) {
            return Ok(TaskState::Unknown(format!(
                "{:?} is not an EdgeOne job id",
                snippet(task_id, 80)
            )));
        }
        let mut found: Vec<Value> = Vec::new();
        let mut offset: u64 = 0;
        for _ in 0..tasks::MAX_PAGES {
            let body = tasks::request(&self.settings.zone_id, task_id, offset);
            let call = match self
                .api
                .call("DescribePurgeTasks", &body, &classify::classify)
                .await
            {
                Ok(call) => call,
                Err(r) => {
                    let e = r.error.unwrap_or_else(|| {
                        PurgeError::Transport("DescribePurgeTasks failed".into())
                    });
                    return super::tencent::tasks::unconfirmable(&e, "teo:DescribePurgeTasks")
                        .ok_or(e);
                }
            };
            let (ours, n, total) = tasks::page_of(task_id, &call.response);
            found.extend(ours.into_iter().cloned());
            offset += n as u64;
            if n == 0 || offset >= total {
                return Ok(tasks::state_of(&found.iter().collect::<Vec<_>>(), true));
            }
        }
        // More tasks than read this time: done only once all were seen.
        Ok(tasks::state_of(&found.iter().collect::<Vec<_>>(), false))
    }

    /// `CreatePrefetchTask`: as many URLs as a URL purge takes (the zone's `prefetch_url`
    /// quota says its own batch), at the purge rate (20 calls/s per action).
    fn prefetch_limits(&self) -> Option<PrefetchLimits> {
        Some(PrefetchLimits {
            max_urls: self
                .settings
                .limits
                .kind(TargetKind::Url)
                .map_or(1000, |k| k.max_batch),
            rate_per_s: self.settings.limits.rate_per_s,
            daily_quota: None,
        })
    }

    async fn prefetch(&self, urls: &[String]) -> PrefetchResponse {
        if let Some(why) = urls
            .iter()
            .find_map(|u| check_target(TargetKind::Url, u).err())
        {
            return PrefetchResponse::failed(Verdict::Fatal, PurgeError::Request(why));
        }
        let body = json!({ "ZoneId": self.settings.zone_id, "Targets": urls });
        let call = match self.call("CreatePrefetchTask", &body, urls.len()).await {
            Ok(call) => call,
            Err(r) => return PrefetchResponse::from_call(Err(r)),
        };
        let job_id = call
            .response
            .get("JobId")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .map(str::to_owned);
        let sending: Vec<usize> = (0..urls.len()).collect();
        let refused = failed_list(&call.response, urls, &sending);
        if refused.is_empty() {
            return PrefetchResponse::from_call(Ok(job_id));
        }
        let why: Vec<String> = refused
            .iter()
            .map(|f| {
                f.error
                    .to_string()
                    .replace("CreatePurgeTask", "CreatePrefetchTask")
            })
            .collect();
        PrefetchResponse {
            task_id: job_id,
            ..PrefetchResponse::failed(
                Verdict::Fatal,
                PurgeError::Answer {
                    code: Some(classify::FAILED_LIST.to_owned()),
                    message: why.join("; "),
                },
            )
        }
    }

    async fn prefetch_quota(&self) -> Option<Result<KindQuota, PurgeError>> {
        let body = json!({ "ZoneId": self.settings.zone_id });
        let call = match self.call("DescribeContentQuota", &body, 0).await {
            Ok(c) => c,
            Err(r) => {
                return Some(Err(r.error.unwrap_or_else(|| {
                    PurgeError::Transport("DescribeContentQuota failed".into())
                })))
            }
        };
        let q = call
            .response
            .get("PrefetchQuota")?
            .as_array()?
            .iter()
            .find(|q| q.get("Type").and_then(Value::as_str) == Some("prefetch_url"))?;
        Some(Ok(KindQuota {
            batch: q.get("Batch")?.as_u64()?.try_into().ok()?,
            total: q.get("Daily")?.as_u64()?,
            available: q.get("DailyAvailable")?.as_u64()?,
        }))
    }

    async fn quota(&self) -> Option<Result<ProviderQuota, PurgeError>> {
        let body = json!({ "ZoneId": self.settings.zone_id });
        let call = match self.call("DescribeContentQuota", &body, 0).await {
            Ok(c) => c,
            Err(r) => {
                return Some(Err(r.error.unwrap_or_else(|| {
                    PurgeError::Transport("DescribeContentQuota failed".into())
                })))
            }
        };
        Some(Ok(quota_of(&call.response)))
    }
}

/// The purge quotas of a `DescribeContentQuota` answer (`PurgeQuota` may be null), per
/// target kind edgepurge purges with.
fn quota_of(response: &Value) -> ProviderQuota {
    let entries = response
        .get("PurgeQuota")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    entries
        .iter()
        .filter_map(|q| {
            let kind = kind_of_type(q.get("Type")?.as_str()?)?;
            Some((
                kind,
                KindQuota {
                    batch: q.get("Batch")?.as_u64()?.try_into().ok()?,
                    total: q.get("Daily")?.as_u64()?,
                    available: q.get("DailyAvailable")?.as_u64()?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purgers::tencent::sign;
    use crate::secret::SecretSource;
    use std::time::Duration;

    fn settings() -> EdgeOneSettings {
        EdgeOneSettings {
            name: "eo".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            zone_id: "zone-ajj243dwrew".into(),
            secret_id: SecretSource::Env("EO_UNSET_ID".into()),
            secret_key: SecretSource::Env("EO_UNSET_KEY".into()),
            session_token: None,
            method: "invalidate".into(),
            cache_tag_domains: vec!["cdn.example.com".into()],
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    #[test]
    fn request_bodies_match_the_api_shapes() {
        let eo = EdgeOne::new(settings()).unwrap();
        let urls = ["http://www.example.com/a.txt".to_owned()];
        assert_eq!(
            eo.purge_body(TargetKind::Url, &urls),
            json!({"ZoneId": "zone-ajj243dwrew", "Type": "purge_url", "Targets": urls})
        );
        let dirs = ["http://www.example.com/test/".to_owned()];
        assert_eq!(
            eo.purge_body(TargetKind::Dir, &dirs),
            json!({"ZoneId": "zone-ajj243dwrew", "Type": "purge_prefix",
                   "Method": "invalidate", "Targets": dirs})
        );
        let tags = ["tag1".to_owned(), "tag2".to_owned()];
        assert_eq!(
            eo.purge_body(TargetKind::Tag, &tags),
            json!({"ZoneId": "zone-ajj243dwrew", "Type": "purge_cache_tag", "Targets": tags,
                   "CacheTag": {"Domains": ["cdn.example.com"]}})
        );
    }

    #[test]
    fn a_purge_is_signed_for_teo_like_the_official_sdk_signs_it() {
        // Expected values computed with tencentcloud-sdk-python-common's Sign.sign_tc3 (the
        // official signer) over the exact body edgepurge sends for the tccli example
        // "URL刷新" (zone-ajj243dwrew, http://www.example.com/a.txt), with the T1 key and
        // timestamp of apis.md §A.7.
        let eo = EdgeOne::new(settings()).unwrap();
        let body = eo.purge_body(TargetKind::Url, &["http://www.example.com/a.txt".into()]);
        let payload = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            payload,
            br#"{"Targets":["http://www.example.com/a.txt"],"Type":"purge_url","ZoneId":"zone-ajj243dwrew"}"#
        );
        let s = sign::sign(
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            &sign::SignInput {
                method: "POST",
                headers: &[
                    ("content-type", "application/json"),
                    ("host", &eo.api.host),
                    ("x-tc-action", "CreatePurgeTask"),
                ],
                payload: &payload,
                service: PRODUCT.service,
                timestamp: 1551113065,
            },
        );
        assert_eq!(
            sign::sha256_hex(&payload),
            "4ce2b604c5202ec591ba7bf5433a31d6c1a281139769991e6330cd44549958f0"
        );
        assert_eq!(
            sign::sha256_hex(s.canonical_request.as_bytes()),
            "c8d2e2340c230d1cfbc27fd7784e5ac3bf218452140aa8fbc17d0a2f85bedfe8"
        );
        assert_eq!(s.credential_scope, "2019-02-25/teo/tc3_request");
        assert_eq!(
            s.signature,
            "5dcf03b9f6e24c56360722b17ecaf7d9a06637aba2536300767872d37c2673ee"
        );
    }

    #[test]
    fn targets_edgeone_would_refuse_are_named() {
        assert!(check_target(TargetKind::Url, "https://cdn.example.com/a%20b.png").is_ok());
        assert!(check_target(TargetKind::Dir, "https://cdn.example.com/docs/").is_ok());
        assert!(check_target(TargetKind::Tag, "product-42").is_ok());
        for (kind, bad, why) in [
            (TargetKind::Url, "cdn.example.com/a.png", "is not a URL"),
            (
                TargetKind::Url,
                "ftp://cdn.example.com/a",
                "is not an http(s) URL",
            ),
            (
                TargetKind::Url,
                "https://cdn.example.com/a\nb",
                "control character",
            ),
            (
                TargetKind::Dir,
                "https://cdn.example.com/docs",
                "does not end with /",
            ),
            (TargetKind::Tag, "a,b", "blank or comma"),
            (TargetKind::Tag, "a b", "blank or comma"),
            (TargetKind::Tag, "", "empty"),
        ] {
            let err = check_target(kind, bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn refused_targets_fail_on_their_own_without_a_request() {
        // The endpoint is a closed port: any request would be a transport error.
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let eo = EdgeOne::new(s).unwrap();
        let r = eo
            .purge(TargetKind::Dir, &["https://a/x".into(), "nope".into()])
            .await;
        // The first refusal is the response's; the other fails on its own.
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(
            matches!(&r.error, Some(PurgeError::Request(m)) if m.contains("does not end with /")),
            "{r:?}"
        );
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].index, 1);
        assert!(
            matches!(&r.failed[0].error, PurgeError::Request(m) if m.contains("\"nope\" is not a URL")),
            "{r:?}"
        );
        assert!(eo.refuses_target_for_good(&r.failed[0].error));
    }

    #[tokio::test]
    async fn missing_credentials_retry_with_a_clear_error_and_no_request() {
        let eo = EdgeOne::new(settings()).unwrap();
        assert!(eo.credentials_missing());
        let r = eo.purge(TargetKind::Url, &["https://a/1".into()]).await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("EO_UNSET_ID") && err.contains("eo"), "{err}");
    }

    #[test]
    fn the_failed_list_names_targets_that_fail_on_their_own() {
        let subset = vec!["https://a/1".to_owned(), "https://a/2".to_owned()];
        let answer = json!({"JobId": "j", "FailedList": [
            {"Reason": "url format error", "Targets": ["https://a/2", "https://elsewhere/"]},
            {"Reason": "again", "Targets": ["https://a/2"]}
        ]});
        let failed = failed_list(&answer, &subset, &[3, 7]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].index, 7);
        assert_eq!(failed[0].verdict, Verdict::Fatal);
        assert!(
            matches!(&failed[0].error, PurgeError::Answer { code: Some(c), message }
                if c == "FailedList" && message.contains("url format error")),
            "{failed:?}"
        );
        assert!(
            failed_list(&json!({"JobId": "j", "FailedList": null}), &subset, &[0, 1]).is_empty()
        );
    }

    #[test]
    fn content_quota_maps_purge_types_to_kinds() {
        // The official example (tccli DescribeContentQuota), with a tag entry added.
        let answer = json!({
        "PrefetchQuota": [{"Batch": 2000, "Daily": 10000, "DailyAvailable": 10000,
                           "Type": "prefetch_url"}],
        "PurgeQuota": [
            {"Batch": 2000, "Daily": 10000, "DailyAvailable": 9990, "Type": "purge_url"},
            {"Batch": 2000, "Daily": 10000, "DailyAvailable": 10000, "Type": "purge_prefix"},
            {"Batch": 2000, "Daily": 10000, "DailyAvailable": 10000, "Type": "purge_host"},
            {"Batch": 100, "Daily": 500, "DailyAvailable": 1, "Type": "purge_cache_tag"}
        ]});
        let q = quota_of(&answer);
        assert_eq!(
            q,
            vec![
                (
                    TargetKind::Url,
                    KindQuota {
                        batch: 2000,
                        total: 10000,
                        available: 9990
                    }
                ),
                (
                    TargetKind::Dir,
                    KindQuota {
                        batch: 2000,
                        total: 10000,
                        available: 10000
                    }
                ),
                (
                    TargetKind::Tag,
                    KindQuota {
                        batch: 100,
                        total: 500,
                        available: 1
                    }
                ),
            ]
        );
        assert!(quota_of(&json!({"PurgeQuota": null})).is_empty());
    }
}
