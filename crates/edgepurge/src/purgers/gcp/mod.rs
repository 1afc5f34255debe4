//! Google Cloud CDN: Compute API `urlMaps.invalidateCache`, authorized with a service
//! account's OAuth 2.0 access token (JWT bearer grant; apis.md §J.4).
//!
//! One lane per URL map. The API invalidates one path (with its host) or up to ten cache
//! tags per call ([`rule`]), so a URL or directory batch is one target, a tag batch up to
//! ten. Google answers with an `Operation`; its name is the log's task id, and the lane's
//! follower asks `globalOperations.get` until it is `DONE` ([`answer`]), so records get
//! `completed_at` when Cloud CDN says the invalidation is done. Access tokens are fetched
//! and kept by [`token`]; a token the API refuses (401) is fetched again once at once.

mod answer;
mod config;
mod credentials;
mod rule;
pub mod sign;
mod token;

pub use config::{default_limits, GcpSettings, DEFAULT_ENDPOINT, KIND, MAX_RATE};
pub use credentials::{parse as parse_key, GOOGLE_TOKEN_URI};

use super::{
    describe_transport_error, snippet, Limits, PurgeError, PurgeResponse, Purger, TargetFailure,
    TaskState, Verdict,
};
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use rule::Rule;
use std::time::Duration;
use token::{NoAnswer, Tokens};

pub struct GcpCdn {
    settings: GcpSettings,
    http: reqwest::Client,
    tokens: Tokens,
    /// `…/global/urlMaps/{urlMap}/invalidateCache`.
    invalidate_url: String,
    /// `…/global/operations/` (the operation's name follows).
    operations_url: String,
}

/// An answer of the Compute API.
struct Answer {
    status: u16,
    text: String,
}

/// One request's targets: the rule sent, the targets it covers, and those that failed on
/// their own or wait for a later request.
struct Plan {
    rule: Option<(Rule, Vec<usize>)>,
    failed: Vec<TargetFailure>,
}

impl GcpCdn {
    pub fn new(settings: GcpSettings) -> Result<GcpCdn, String> {
        let http = super::api_client(settings.timeout)?;
        let base = format!(
            "{}/compute/v1/projects/{}/global",
            settings.endpoint.as_str().trim_end_matches('/'),
            settings.project
        );
        Ok(GcpCdn {
            tokens: Tokens::new(
                settings.credentials.clone(),
                settings.token_uri.clone(),
                http.clone(),
            ),
            invalidate_url: format!("{base}/urlMaps/{}/invalidateCache", settings.url_map),
            operations_url: format!("{base}/operations/"),
            settings,
            http,
        })
    }

    fn plan(&self, kind: TargetKind, targets: &[String]) -> Plan {
        let mut failed = Vec::new();
        let refused = |index, why: String| TargetFailure {
            index,
            verdict: Verdict::Fatal,
            error: PurgeError::Request(why),
            group: 0,
        };
        let later = |index, why: String| TargetFailure {
            index,
            verdict: Verdict::RetryLater {
                after: Some(Duration::ZERO),
            },
            error: PurgeError::Request(why),
            group: 1,
        };
        let mut rule: Option<(Rule, Vec<usize>)> = None;
        let max_tags = self
            .settings
            .limits
            .kind(TargetKind::Tag)
            .map_or(rule::MAX_TAGS, |l| l.max_batch.min(rule::MAX_TAGS));
        for (i, t) in targets.iter().enumerate() {
            if kind == TargetKind::Tag {
                if let Err(why) = rule::check_tag(t) {
                    failed.push(refused(i, why));
                    continue;
                }
                let (r, idx) = rule.get_or_insert_with(|| {
                    (
                        Rule {
                            host: None,
                            path: None,
                            cache_tags: Vec::new(),
                        },
                        Vec::new(),
                    )
                });
                if r.cache_tags.contains(t) {
                    idx.push(i);
                } else if r.cache_tags.len() < max_tags {
                    r.cache_tags.push(t.clone());
                    idx.push(i);
                } else {
                    failed.push(later(
                        i,
                        format!(
                            "invalidateCache takes up to {max_tags} cache tags: sent in a later \
                             request"
                        ),
                    ));
                }
                continue;
            }
            let r = match rule::path_rule(kind, t) {
                Ok(r) => r,
                Err(why) => {
                    failed.push(refused(i, why));
                    continue;
                }
            };
            match &mut rule {
                None => rule = Some((r, vec![i])),
                Some((first, idx)) if *first == r => idx.push(i),
                Some(_) => failed.push(later(
                    i,
                    "invalidateCache takes one path per request: sent in a later one".to_owned(),
                )),
            }
        }
        Plan { rule, failed }
    }

    /// Sends an authorized request; a token the API refuses (401) is replaced once.
    async fn call(&self, post: Option<&str>, url: &str) -> Result<Answer, NoAnswer> {
        let mut refused_once = false;
        loop {
            let token = self.tokens.get().await?;
            let req = match post {
                Some(body) => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_owned()),
                None => self.http.get(url),
            };
            let resp = req
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| NoAnswer {
                    verdict: Verdict::RetryLater { after: None },
                    http_status: None,
                    error: PurgeError::Transport(describe_transport_error(&e)),
                })?;
            let status = resp.status().as_u16();
            let wait = super::retry_after(resp.headers());
            let location = super::redirect_target(resp.headers());
            if status == 401 && !refused_once {
                refused_once = true;
                self.tokens.forget(&token);
                tracing::info!(
                    provider = %self.settings.name,
                    "the Compute API refused the access token: fetching a new one"
                );
                continue;
            }
            if (300..400).contains(&status) {
                return Err(NoAnswer {
                    verdict: Verdict::RetryLater { after: wait },
                    http_status: Some(status),
                    error: PurgeError::Answer {
                        code: None,
                        message: format!(
                            "HTTP {status} redirect to {location}: not followed (it would send \
                             the access token elsewhere); check `endpoint`"
                        ),
                    },
                });
            }
            let text = crate::purgers::answer_text(resp)
                .await
                .map_err(|e| NoAnswer {
                    verdict: Verdict::RetryLater { after: wait },
                    http_status: Some(status),
                    error: PurgeError::Transport(format!("reading the answer failed: {e}")),
                })?;
            return Ok(Answer { status, text });
        }
    }

    /// Sends one `invalidateCache` for `rule`.
    async fn invalidate(&self, rule: &Rule) -> PurgeResponse {
        let what = format!(
            "invalidateCache {}/{} ({})",
            self.settings.project,
            self.settings.url_map,
            snippet(&rule.describe(), 300)
        );
        let Answer { status, text } =
            match self.call(Some(&rule.body()), &self.invalidate_url).await {
                Ok(a) => a,
                Err(f) => return failure(f, &what),
            };
        let doc: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            if let Some(op) = doc.as_ref().filter(|d| d.get("status").is_some()) {
                let name = answer::operation_name(op);
                tracing::info!(
                    provider = %self.settings.name,
                    operation = name.as_deref().unwrap_or("-"),
                    rule = %rule.describe(),
                    "Cloud CDN accepted the invalidation"
                );
                return PurgeResponse::done(status, None, name);
            }
        }
        match answer::api_error(&text) {
            Some(e) if !(200..300).contains(&status) => {
                let code = e.code_text();
                let mut message = format!(
                    "{what}: HTTP {status} {}: {}",
                    code.as_deref().unwrap_or("error"),
                    snippet(&e.message, 300)
                );
                if status == 401 {
                    message.push_str(
                        " (the access token was refused twice: check the service-account key)",
                    );
                } else if let Some(h) =
                    answer::hint(&e, &self.settings.project, &self.settings.url_map)
                {
                    message.push_str(&format!(" ({h})"));
                }
                let verdict = if status == 401 {
                    Verdict::Fatal
                } else {
                    answer::classify(status, &e)
                };
                PurgeResponse {
                    verdict,
                    http_status: Some(status),
                    request_id: None,
                    task_id: None,
                    error: Some(PurgeError::Answer { code, message }),
                    failed: Vec::new(),
                }
            }
            _ => PurgeResponse {
                http_status: Some(status),
                ..PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Answer {
                        code: None,
                        message: format!(
                            "{what}: HTTP {status} without a Compute API answer (check \
                             `endpoint`): {:?}",
                            snippet(&text, 200)
                        ),
                    },
                )
            },
        }
    }

    /// `globalOperations.get`: how far operation `name` has got.
    async fn operation(&self, name: &str) -> Result<TaskState, PurgeError> {
        if !answer::is_operation_name(name) {
            return Ok(TaskState::Unknown(format!(
                "{:?} is not a Compute operation name",
                snippet(name, 80)
            )));
        }
        let what = format!("globalOperations.get {}/{name}", self.settings.project);
        let Answer { status, text } = self
            .call(None, &format!("{}{name}", self.operations_url))
            .await
            .map_err(|f| prefixed(f.error, &what))?;
        let doc: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            if let Some(state) = doc.as_ref().and_then(answer::operation_state) {
                return Ok(state);
            }
        }
        let e = answer::api_error(&text);
        let said = e
            .as_ref()
            .map(|e| {
                format!(
                    "{} {}",
                    e.code_text().unwrap_or_default(),
                    snippet(&e.message, 300)
                )
            })
            .unwrap_or_else(|| format!("{:?}", snippet(&text, 200)));
        let rate_limited = e.as_ref().is_some_and(|e| {
            answer::classify(status, e) == Verdict::RetryLater { after: None }
                && e.reason.as_deref().is_some_and(|r| r.contains("RateLimit"))
        });
        match status {
            404 => Ok(TaskState::Unknown(format!("HTTP 404 {said}"))),
            403 if !rate_limited => Ok(TaskState::Unconfirmable(format!(
                "HTTP 403 {said} (grant compute.globalOperations.get on project {} to confirm \
                 invalidations)",
                self.settings.project
            ))),
            _ => Err(PurgeError::Answer {
                code: e.and_then(|e| e.code_text()),
                message: format!("{what}: HTTP {status} {said}"),
            }),
        }
    }
}

fn prefixed(error: PurgeError, what: &str) -> PurgeError {
    match error {
        PurgeError::Transport(m) => PurgeError::Transport(format!("{what}: {m}")),
        PurgeError::Answer { code, message } => PurgeError::Answer {
            code,
            message: format!("{what}: {message}"),
        },
        other => other,
    }
}

/// A request that got no Compute answer (no token, or no answer at all).
fn failure(f: NoAnswer, what: &str) -> PurgeResponse {
    let error = match f.error {
        // Token failures already say what was asked of whom.
        e @ (PurgeError::Credentials(_) | PurgeError::Answer { .. }) => e,
        e => prefixed(e, what),
    };
    PurgeResponse {
        http_status: f.http_status,
        ..PurgeResponse::failed(f.verdict, error)
    }
}

#[async_trait]
impl Purger for GcpCdn {
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
        let Plan { rule, mut failed } = self.plan(kind, targets);
        let Some((rule, _)) = rule else {
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
        };
        let mut response = self.invalidate(&rule).await;
        response.failed.extend(failed);
        response
    }

    fn refuses_target_for_good(&self, error: &PurgeError) -> bool {
        match error {
            PurgeError::Request(_) => true,
            PurgeError::Answer {
                code: Some(code), ..
            } => answer::is_target_refusal(code),
            _ => false,
        }
    }

    fn credentials_missing(&self) -> bool {
        self.settings.credentials.check_present().is_err()
    }

    fn follows_tasks(&self) -> bool {
        true
    }

    async fn task_state(&self, task_id: &str) -> Result<TaskState, PurgeError> {
        self.operation(task_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn settings() -> GcpSettings {
        GcpSettings {
            name: "gcp".into(),
            project: "my-project-1".into(),
            url_map: "web-map".into(),
            credentials: SecretSource::Env("EP_GCP_UNIT_UNSET_KEY".into()),
            token_uri: None,
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn requests_go_to_the_url_maps_invalidate_cache_and_global_operations() {
        let g = GcpCdn::new(settings()).unwrap();
        assert_eq!(
            g.invalidate_url,
            "https://compute.googleapis.com/compute/v1/projects/my-project-1/global/urlMaps/\
             web-map/invalidateCache"
        );
        assert_eq!(
            g.operations_url,
            "https://compute.googleapis.com/compute/v1/projects/my-project-1/global/operations/"
        );
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9999").unwrap();
        let g = GcpCdn::new(s).unwrap();
        assert!(g
            .invalidate_url
            .starts_with("http://127.0.0.1:9999/compute/v1/projects/"));
    }

    #[test]
    fn one_path_per_request_the_rest_later_and_bad_targets_alone() {
        let g = GcpCdn::new(settings()).unwrap();
        let plan = g.plan(
            TargetKind::Url,
            &strings(&[
                "not a url",
                "https://cdn.example.com/a%20b.png",
                "https://cdn.example.com/a%20b.png?v=2", // the same path: one rule
                "https://img.example.com/a%20b.png",     // another host: a later request
            ]),
        );
        let (rule, idx) = plan.rule.unwrap();
        assert_eq!(
            rule.body(),
            r#"{"host":"cdn.example.com","path":"/a%20b.png"}"#
        );
        assert_eq!(idx, vec![1, 2]);
        let failed: Vec<(usize, &Verdict)> =
            plan.failed.iter().map(|f| (f.index, &f.verdict)).collect();
        assert_eq!(
            failed,
            vec![
                (0, &Verdict::Fatal),
                (
                    3,
                    &Verdict::RetryLater {
                        after: Some(Duration::ZERO)
                    }
                )
            ]
        );
        assert!(g.refuses_target_for_good(&plan.failed[0].error));
    }

    #[test]
    fn tags_go_ten_to_a_request_each_once() {
        let g = GcpCdn::new(settings()).unwrap();
        let mut targets: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        targets.push("t0".into());
        targets.push("bad tag".into());
        let plan = g.plan(TargetKind::Tag, &targets);
        let (rule, idx) = plan.rule.unwrap();
        assert_eq!(rule.cache_tags.len(), 10);
        assert_eq!(rule.host, None);
        assert!(idx.contains(&12), "a repeated tag rides with the first");
        let later: Vec<usize> = plan
            .failed
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::RetryLater { .. }))
            .map(|f| f.index)
            .collect();
        assert_eq!(later, vec![10, 11]);
        assert!(plan
            .failed
            .iter()
            .any(|f| f.index == 13 && f.verdict == Verdict::Fatal));
    }

    #[tokio::test]
    async fn an_unreadable_key_retries_with_a_clear_error_and_no_request() {
        let g = GcpCdn::new(settings()).unwrap();
        assert!(g.credentials_missing());
        let r = g
            .purge(TargetKind::Url, &strings(&["https://cdn.example.com/1"]))
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        assert!(err.to_string().contains("EP_GCP_UNIT_UNSET_KEY"), "{err}");
        assert!(!g.refuses_target_for_good(&err));
    }

    #[tokio::test]
    async fn a_batch_of_only_bad_targets_fails_without_a_request() {
        let g = GcpCdn::new(settings()).unwrap();
        let r = g.purge(TargetKind::Tag, &strings(&["a,b", "c d"])).await;
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(matches!(r.error, Some(PurgeError::Request(_))));
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.http_status, None);
        let state = g.task_state("../../x").await.unwrap();
        assert!(matches!(state, TaskState::Unknown(_)), "{state:?}");
    }
}
