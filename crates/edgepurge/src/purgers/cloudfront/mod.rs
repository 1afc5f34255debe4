//! Amazon CloudFront: `CreateInvalidation` (rest-xml, API 2020-05-31) signed with SigV4 for
//! URL paths, directory wildcards and cache tags (apis.md §B, §J.1).
//!
//! One lane per distribution. A batch of one target kind becomes one invalidation: URLs
//! their paths, directories `/dir/*`, tags `#tag` ([`paths`]). Its `CallerReference` is kept
//! across attempts until CloudFront confirms the invalidation ([`reference`]), so a retry
//! after a lost answer never makes a second one. The log's task id is the invalidation's
//! `Id` (status polling with `GetInvalidation` is not done here).

pub mod classify;
mod config;
mod learned;
pub mod paths;
mod reference;
pub mod sign;
pub mod xml;

pub use config::{default_limits, CloudFrontSettings, KIND};

use super::{
    describe_transport_error, retry_after, snippet, Limits, PurgeError, PurgeResponse, Purger,
    TargetFailure, TaskState, Verdict,
};
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use learned::Learned;
use reference::{Ended, References};
use std::time::Duration;

pub const API_VERSION: &str = "2020-05-31";
pub const DEFAULT_ENDPOINT: &str = "https://cloudfront.amazonaws.com";
const CONTENT_TYPE: &str = "application/xml";
const ACTION: &str = "CreateInvalidation";

pub struct CloudFront {
    settings: CloudFrontSettings,
    /// `host[:port]` of the endpoint, as sent and signed.
    host: String,
    /// `/2020-05-31/distribution/ID/invalidation`.
    path: String,
    url: String,
    http: reqwest::Client,
    /// Targets CloudFront refused on their own, for a while.
    learned: Learned,
    references: References,
}

/// How one `CreateInvalidation` call ended.
struct Sent {
    response: PurgeResponse,
    ended: Ended,
}

impl CloudFront {
    pub fn new(settings: CloudFrontSettings) -> Result<CloudFront, String> {
        let host = match (settings.endpoint.host_str(), settings.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("endpoint {} has no host", settings.endpoint)),
        };
        let path = format!(
            "/{API_VERSION}/distribution/{}/invalidation",
            settings.distribution_id
        );
        let url = format!("{}://{host}{path}", settings.endpoint.scheme());
        let http = super::api_client(settings.timeout)?;
        Ok(CloudFront {
            settings,
            host,
            path,
            url,
            http,
            learned: Learned::default(),
            references: References::default(),
        })
    }

    /// Sends one `CreateInvalidation` for `items` with `caller_reference`.
    async fn create(&self, items: &[String], caller_reference: &str) -> Sent {
        let unknown = |response| Sent {
            response,
            ended: Ended::Unknown,
        };
        let creds = match self.settings.keys.load().await {
            Ok(c) => c,
            Err(e) => {
                return Sent {
                    response: PurgeResponse::failed(
                        Verdict::RetryLater { after: None },
                        PurgeError::Credentials(format!(
                            "credentials for provider {}: {e}",
                            self.settings.name
                        )),
                    ),
                    ended: Ended::Refused,
                }
            }
        };
        let body = xml::invalidation_batch(caller_reference, items);
        let headers = sign::sign(
            &sign::Call {
                method: "POST",
                path: &self.path,
                host: &self.host,
                content_type: CONTENT_TYPE,
                body: body.as_bytes(),
            },
            &creds,
            &self.settings.region,
            &crate::aws::sigv4::amz_date(crate::clock::now_ms()),
        );
        let mut req = self
            .http
            .post(&self.url)
            .header("Host", &self.host)
            .header("Content-Type", CONTENT_TYPE);
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let dist = &self.settings.distribution_id;
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                return unknown(PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Transport(format!(
                        "{ACTION} {dist} at {}: {}",
                        self.settings.endpoint,
                        describe_transport_error(&e)
                    )),
                ))
            }
        };
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let resp_headers = resp.headers().clone();
        let request_id = resp_headers
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let fail = |verdict: Verdict, code: Option<&str>, message: String| PurgeResponse {
            verdict,
            http_status: Some(status.as_u16()),
            request_id: request_id.clone(),
            task_id: None,
            error: Some(PurgeError::Answer {
                code: code.map(str::to_owned),
                message,
            }),
            failed: Vec::new(),
        };
        let text = match crate::purgers::answer_text(resp).await {
            Ok(t) => t,
            Err(e) => {
                let mut r = PurgeResponse::failed(
                    Verdict::RetryLater { after: wait },
                    PurgeError::Transport(format!(
                        "{ACTION} {dist}: reading the answer failed: {e}"
                    )),
                );
                r.http_status = Some(status.as_u16());
                r.request_id = request_id;
                return unknown(r);
            }
        };
        match xml::parse_answer(&text) {
            Some(xml::Answer::Invalidation { id, .. }) if status.is_success() => Sent {
                response: PurgeResponse::done(status.as_u16(), request_id.clone(), Some(id)),
                ended: Ended::Created,
            },
            Some(xml::Answer::Error {
                code,
                message,
                request_id: body_request_id,
            }) if !status.is_success() => {
                let mut verdict = classify::classify(
                    &code,
                    &message,
                    status.as_u16(),
                    items.len(),
                    self.settings.busy_retry,
                );
                if let Verdict::RetryLater { after } = &mut verdict {
                    *after = after.or(wait);
                }
                let mut text = format!("{ACTION} {dist}: {code}: {}", snippet(&message, 300));
                if let Some(h) = classify::hint(&code, dist) {
                    text.push_str(&format!(" ({h})"));
                }
                let mut r = fail(verdict, Some(&code), text);
                r.request_id = r.request_id.or(body_request_id);
                let ended = if code == "InvalidationBatchAlreadyExists" {
                    Ended::Taken
                } else if status.is_server_error() {
                    Ended::Unknown
                } else {
                    Ended::Refused
                };
                Sent { response: r, ended }
            }
            // Not CloudFront's answer: a proxy's page, a truncated or empty body, a redirect.
            // The invalidation may or may not exist: retried (up to max_attempts) with the
            // same CallerReference, with the start of what came back in the log.
            _ => {
                let what = if status.is_redirection() {
                    format!(
                        "{ACTION} {dist}: HTTP {status} redirect to {}: not followed (a \
                         redirect would send the signed call elsewhere); check `endpoint`",
                        super::redirect_target(&resp_headers)
                    )
                } else {
                    format!(
                        "{ACTION} {dist}: HTTP {status} without a CloudFront answer (check \
                         `endpoint`): {:?}",
                        snippet(&text, 200)
                    )
                };
                unknown(fail(Verdict::RetryLater { after: wait }, None, what))
            }
        }
    }
}

impl CloudFront {
    /// `GetInvalidation`: how far invalidation `id` has got.
    async fn get_invalidation(&self, id: &str) -> Result<TaskState, PurgeError> {
        // Ids are CloudFront's own (upper-case letters and digits): anything else is not one
        // of ours and is never put into a signed path.
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(TaskState::Unknown(format!(
                "{:?} is not a CloudFront invalidation id",
                snippet(id, 80)
            )));
        }
        let creds = self.settings.keys.load().await.map_err(|e| {
            PurgeError::Credentials(format!(
                "credentials for provider {}: {e}",
                self.settings.name
            ))
        })?;
        let path = format!("{}/{id}", self.path);
        let headers = sign::sign(
            &sign::Call {
                method: "GET",
                path: &path,
                host: &self.host,
                content_type: "",
                body: b"",
            },
            &creds,
            &self.settings.region,
            &crate::aws::sigv4::amz_date(crate::clock::now_ms()),
        );
        let mut req = self
            .http
            .get(format!("{}/{id}", self.url))
            .header("Host", &self.host);
        for (name, value) in &headers {
            req = req.header(*name, value);
        }
        let dist = &self.settings.distribution_id;
        let resp = req.send().await.map_err(|e| {
            PurgeError::Transport(format!(
                "GetInvalidation {dist}/{id}: {}",
                describe_transport_error(&e)
            ))
        })?;
        let status = resp.status();
        let text = crate::purgers::answer_text(resp).await.map_err(|e| {
            PurgeError::Transport(format!(
                "GetInvalidation {dist}/{id}: reading the answer failed: {e}"
            ))
        })?;
        match xml::parse_answer(&text) {
            Some(xml::Answer::Invalidation { status: s, .. }) if status.is_success() => {
                Ok(if s == "Completed" {
                    TaskState::Done
                } else {
                    TaskState::Running
                })
            }
            Some(xml::Answer::Error { code, .. }) if code == "NoSuchInvalidation" => {
                Ok(TaskState::Unknown(code))
            }
            // The key may not read invalidations: asking again will not change that.
            Some(xml::Answer::Error { code, message, .. })
                if matches!(
                    code.as_str(),
                    "AccessDenied" | "InvalidClientTokenId" | "SignatureDoesNotMatch"
                ) =>
            {
                Ok(TaskState::Unconfirmable(format!(
                    "{code}: {} (grant cloudfront:GetInvalidation on the distribution to \
                     confirm purges)",
                    snippet(&message, 300)
                )))
            }
            Some(xml::Answer::Error { code, message, .. }) => Err(PurgeError::Answer {
                message: format!(
                    "GetInvalidation {dist}/{id}: {code}: {}",
                    snippet(&message, 300)
                ),
                code: Some(code),
            }),
            _ => Err(PurgeError::Answer {
                code: None,
                message: format!(
                    "GetInvalidation {dist}/{id}: HTTP {status} without a CloudFront answer: {:?}",
                    snippet(&text, 200)
                ),
            }),
        }
    }
}

/// The targets of one request: each item once, with the targets it purges.
struct Plan {
    /// Sorted by item text (the body's order, and the reference's).
    items: Vec<(String, Vec<usize>)>,
    failed: Vec<TargetFailure>,
}

impl CloudFront {
    fn plan(&self, kind: TargetKind, targets: &[String]) -> Plan {
        let mut failed = Vec::new();
        let mut items: Vec<(paths::Item, Vec<usize>)> = Vec::new();
        let max_wildcards = self.settings.max_wildcards();
        let mut wildcards = 0;
        for (i, t) in targets.iter().enumerate() {
            if let Some((code, why)) = self.learned.why_bad(t) {
                failed.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Answer {
                        message: format!(
                            "{code}: {why} (refused lately; not sent again for up to {} min)",
                            learned::FORGET_AFTER.as_secs() / 60
                        ),
                        code: Some(code),
                    },
                    group: 0,
                });
                continue;
            }
            let item = match paths::item(kind, t) {
                Ok(item) => item,
                Err(why) => {
                    failed.push(TargetFailure {
                        index: i,
                        verdict: Verdict::Fatal,
                        error: PurgeError::Request(why),
                        group: 0,
                    });
                    continue;
                }
            };
            if let Some((_, idx)) = items.iter_mut().find(|(it, _)| it.text == item.text) {
                idx.push(i);
                continue;
            }
            if item.wildcard && wildcards >= max_wildcards {
                // Only URLs whose key holds `*` get here (directory batches are no larger):
                // the rest go in a later request.
                failed.push(TargetFailure {
                    index: i,
                    verdict: Verdict::RetryLater {
                        after: Some(Duration::ZERO),
                    },
                    error: PurgeError::Request(format!(
                        "{:?} needs a wildcard path; at most {max_wildcards} per request \
                         (max_wildcards_per_request): sent in a later one",
                        edgepurge_core::printable(t)
                    )),
                    group: 1,
                });
                continue;
            }
            wildcards += usize::from(item.wildcard);
            items.push((item, vec![i]));
        }
        let mut items: Vec<(String, Vec<usize>)> =
            items.into_iter().map(|(it, idx)| (it.text, idx)).collect();
        items.sort();
        Plan { items, failed }
    }
}

#[async_trait]
impl Purger for CloudFront {
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
        let Plan { items, mut failed } = self.plan(kind, targets);
        if items.is_empty() {
            if failed.is_empty() {
                return PurgeResponse::failed(
                    Verdict::Fatal,
                    PurgeError::Request("nothing to invalidate".into()),
                );
            }
            let first = failed.remove(0);
            return PurgeResponse {
                failed,
                ..PurgeResponse::failed(first.verdict, first.error)
            };
        }
        let texts: Vec<String> = items.iter().map(|(t, _)| t.clone()).collect();
        let fingerprint = reference::fingerprint(kind, &texts);
        let caller_reference = self.references.begin(&fingerprint, crate::clock::now_ms());
        let Sent {
            mut response,
            ended,
        } = self.create(&texts, &caller_reference).await;
        self.references.end(&fingerprint, &caller_reference, ended);
        // A path refused alone is remembered, so later batches do not bisect it out again.
        if response.verdict == Verdict::Fatal && items.len() == 1 {
            if let Some(PurgeError::Answer {
                code: Some(code),
                message,
            }) = &response.error
            {
                if classify::is_per_target(code) {
                    for &i in &items[0].1 {
                        self.learned.bad_target(&targets[i], code, message);
                    }
                }
            }
        }
        response.failed.extend(failed);
        response
    }

    fn forget(&self, targets: &[String]) {
        self.learned.forget(targets);
        self.references.forget_idle();
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

    fn follows_tasks(&self) -> bool {
        true
    }

    async fn task_state(&self, task_id: &str) -> Result<TaskState, PurgeError> {
        self.get_invalidation(task_id).await
    }

    fn credentials_missing(&self) -> bool {
        self.settings
            .keys
            .required()
            .iter()
            .any(|s| s.check_present().is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::KeySources;
    use crate::secret::SecretSource;

    fn settings() -> CloudFrontSettings {
        CloudFrontSettings {
            name: "cf".into(),
            distribution_id: "EDFDVBD6EXAMPLE".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            region: sign::DEFAULT_REGION.into(),
            keys: KeySources {
                access_key_id: SecretSource::Env("EP_CF_UNIT_UNSET_ID".into()),
                secret_access_key: SecretSource::Env("EP_CF_UNIT_UNSET_KEY".into()),
                session_token: None,
            },
            timeout: Duration::from_secs(5),
            busy_retry: Duration::from_secs(30),
            limits: default_limits(),
        }
    }

    #[test]
    fn the_request_goes_to_the_distributions_invalidation_resource() {
        let cf = CloudFront::new(settings()).unwrap();
        assert_eq!(
            cf.url,
            "https://cloudfront.amazonaws.com/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation"
        );
        assert_eq!(cf.host, "cloudfront.amazonaws.com");
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9999/").unwrap();
        let cf = CloudFront::new(s).unwrap();
        assert_eq!(cf.host, "127.0.0.1:9999");
        assert!(cf.url.starts_with("http://127.0.0.1:9999/2020-05-31/"));
    }

    #[test]
    fn a_batch_becomes_sorted_unique_items_and_bad_targets_fail_alone() {
        let cf = CloudFront::new(settings()).unwrap();
        let targets: Vec<String> = [
            "https://cdn.example.com/b.css",
            "https://img.example.com/b.css", // same path on another alias: one item
            "https://cdn.example.com/a%20b.png",
            "not a url",
        ]
        .map(String::from)
        .to_vec();
        let plan = cf.plan(TargetKind::Url, &targets);
        assert_eq!(
            plan.items,
            vec![
                ("/a%20b.png".to_owned(), vec![2]),
                ("/b.css".to_owned(), vec![0, 1])
            ]
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 3);
        assert_eq!(plan.failed[0].verdict, Verdict::Fatal);
        assert!(cf.refuses_target_for_good(&plan.failed[0].error));
    }

    #[test]
    fn wildcards_beyond_the_per_request_maximum_wait_for_a_later_request() {
        let mut s = settings();
        s.limits
            .kind_mut(TargetKind::Dir)
            .map(|l| l.max_batch = 2)
            .unwrap();
        let cf = CloudFront::new(s).unwrap();
        let targets: Vec<String> = (0..4)
            .map(|i| format!("https://cdn.example.com/star{i}*.png"))
            .collect();
        let plan = cf.plan(TargetKind::Url, &targets);
        assert_eq!(plan.items.len(), 2);
        assert_eq!(plan.failed.len(), 2);
        assert!(plan.failed.iter().all(|f| f.verdict
            == Verdict::RetryLater {
                after: Some(Duration::ZERO)
            }));
    }

    #[tokio::test]
    async fn missing_credentials_retry_with_a_clear_error_and_no_request() {
        let cf = CloudFront::new(settings()).unwrap();
        assert!(cf.credentials_missing());
        let r = cf
            .purge(TargetKind::Url, &["https://cdn.example.com/1".into()])
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("EP_CF_UNIT_UNSET_ID") && err.contains("cf"),
            "{err}"
        );
        assert!(!cf.refuses_target_for_good(&PurgeError::Credentials(err)));
    }

    #[tokio::test]
    async fn a_batch_of_only_bad_targets_fails_without_a_call() {
        let cf = CloudFront::new(settings()).unwrap();
        let r = cf
            .purge(TargetKind::Tag, &["a,b".into(), "c d".into()])
            .await;
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(matches!(r.error, Some(PurgeError::Request(_))));
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].index, 1);
        assert_eq!(r.http_status, None);
    }
}
