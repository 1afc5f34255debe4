//! Akamai Fast Purge (CCU v3), signed with EdgeGrid (apis.md §D.2, §J.5).
//!
//! One lane per account. A batch of one target kind becomes one request
//! `POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{production|staging}` with
//! `{"objects": [...]}`: URL rules send their full URLs, tag rules their cache tags, or CP
//! codes on an account with `tags_are = "cpcodes"` ([`body`]). Fast Purge has no prefix
//! purge, so dir rules are refused when the rule is checked. A body holds at most 50,000
//! bytes: what does not fit is sent in a later request (or the batch is split first when
//! less than half of it fits). Akamai answers 201 with a `purgeId` (the log's task id) and
//! `estimatedSeconds`. Fast Purge has no status to poll: a purge is complete once its
//! estimate has passed. The lane's follower first asks about the purge id that long after
//! the answer ([`Purger::first_task_check`]; the time is kept in the store with the batch, so
//! a restart or a lane hand-over keeps it), and [`Purger::task_state`] then says done without
//! a request: the estimate is Akamai's only word on completion.

mod answer;
mod body;
pub mod classify;
mod config;
mod credentials;
pub mod sign;

pub use body::{ObjectType, MAX_BODY_BYTES};
pub use config::{buckets, default_limits, AkamaiSettings, KIND};
pub use credentials::CredentialSources;

use super::{
    retry_after, snippet, Limits, PurgeError, PurgeResponse, Purger, TargetFailure, TaskState,
    Verdict,
};
use answer::Planned;
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub const API_BASE: &str = "/ccu/v3";
const CONTENT_TYPE: &str = "application/json";
/// A purge's completion time when the answer gives no `estimatedSeconds`: Akamai's stated
/// "approximately five seconds" (apis.md §J.5).
pub const DEFAULT_ESTIMATE: Duration = Duration::from_secs(5);
/// The longest estimate believed; a longer one is waited for this long.
pub const MAX_ESTIMATE: Duration = Duration::from_secs(3600);
/// Estimates of answers not yet looked up, kept at most (function mode never looks them up).
const ESTIMATES_KEPT: usize = 1024;

pub struct Akamai {
    settings: AkamaiSettings,
    http: reqwest::Client,
    /// `(purgeId, estimate)` of recent answers, until [`Purger::first_task_check`] takes them.
    estimates: Mutex<VecDeque<(String, Duration)>>,
}

/// How long after its answer a purge is complete: `estimatedSeconds`, or
/// [`DEFAULT_ESTIMATE`] when missing, at most [`MAX_ESTIMATE`].
pub fn completion_estimate(estimated_seconds: Option<u64>) -> Duration {
    estimated_seconds
        .map_or(DEFAULT_ESTIMATE, Duration::from_secs)
        .min(MAX_ESTIMATE)
}

/// The objects of one request: each once, with the targets it purges.
struct Plan {
    ty: ObjectType,
    objects: Vec<Planned>,
    failed: Vec<TargetFailure>,
}

/// What to do with a planned batch before any request.
enum Fit {
    /// Send these many objects (the rest wait for a later request).
    Send(usize),
    /// Less than half fits one body: split the batch first.
    Split,
}

impl Akamai {
    pub fn new(settings: AkamaiSettings) -> Result<Akamai, String> {
        let http = super::api_client(settings.timeout)?;
        Ok(Akamai {
            settings,
            http,
            estimates: Mutex::new(VecDeque::new()),
        })
    }

    fn remember_estimate(&self, purge_id: &str, estimate: Duration) {
        let mut kept = self
            .estimates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= ESTIMATES_KEPT {
            kept.pop_front();
        }
        kept.push_back((purge_id.to_owned(), estimate));
    }

    /// The request path for objects of `ty`.
    fn path(&self, ty: ObjectType) -> String {
        format!(
            "{API_BASE}/{}/{ty}/{}",
            self.settings.action, self.settings.network
        )
    }

    /// Where the request goes: the configured endpoint, else `https://` + the API host.
    fn url(&self, host: &str, path: &str) -> String {
        match &self.settings.endpoint {
            Some(e) => match (e.host_str(), e.port()) {
                (Some(h), Some(p)) => format!("{}://{h}:{p}{path}", e.scheme()),
                (Some(h), None) => format!("{}://{h}{path}", e.scheme()),
                (None, _) => format!("https://{host}{path}"),
            },
            None => format!("https://{host}{path}"),
        }
    }

    /// Where the request goes, for messages: never the host's value (it comes from the
    /// credentials).
    fn target_text(&self, path: &str) -> String {
        match &self.settings.endpoint {
            Some(e) => format!("POST {}{}", e.as_str().trim_end_matches('/'), path),
            None => format!(
                "POST https://<host from {}>{path}",
                self.settings.credentials.host
            ),
        }
    }

    fn plan(&self, kind: TargetKind, targets: &[String]) -> Result<Plan, PurgeError> {
        let ty = self.settings.object_type(kind).ok_or_else(|| {
            PurgeError::Request(format!(
                "Akamai Fast Purge cannot purge {} targets (no prefix purge): use url or tag \
                 rules",
                kind.as_str()
            ))
        })?;
        let mut objects: Vec<Planned> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut failed = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let refused = |why: String| TargetFailure {
                index: i,
                verdict: Verdict::Fatal,
                error: PurgeError::Request(why),
                group: 0,
            };
            let o = match body::object(ty, t, &self.settings.cpcodes) {
                Ok(o) => o,
                Err(why) => {
                    failed.push(refused(why));
                    continue;
                }
            };
            if body::too_large_alone(&o.json) {
                failed.push(refused(format!(
                    "{:?} alone is larger than a Fast Purge body may be ({MAX_BODY_BYTES} bytes)",
                    snippet(t, 200)
                )));
                continue;
            }
            if let Some(at) = keys.iter().position(|k| *k == o.key) {
                objects[at].targets.push(i);
                continue;
            }
            keys.push(o.key);
            let text = match ty {
                ObjectType::CpCode => o.json.clone(),
                _ => t.clone(),
            };
            objects.push(Planned {
                json: o.json,
                text,
                targets: vec![i],
            });
        }
        Ok(Plan {
            ty,
            objects,
            failed,
        })
    }

    fn fit(objects: &[Planned]) -> Fit {
        let json: Vec<&str> = objects.iter().map(|o| o.json.as_str()).collect();
        let k = body::fitting(&json, MAX_BODY_BYTES);
        if k == objects.len() || k * 2 >= objects.len() {
            Fit::Send(k.max(1))
        } else {
            Fit::Split
        }
    }

    /// Sends one request for `plan.objects[..n]`.
    async fn send(&self, plan: &Plan, n: usize) -> PurgeResponse {
        let name = &self.settings.name;
        let creds = match self.settings.credentials.load().await {
            Ok(c) => c,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Credentials(format!(
                        "EdgeGrid credentials for provider {name}: {e}"
                    )),
                )
            }
        };
        let objects = &plan.objects[..n];
        let json: Vec<&str> = objects.iter().map(|o| o.json.as_str()).collect();
        let body = body::body(&json);
        let path = self.path(plan.ty);
        let what = self.target_text(&path);
        let authorization = sign::authorization(
            &sign::Call {
                method: "POST",
                scheme: "https",
                host: &creds.host,
                path_and_query: &path,
                headers: &[],
                body: body.as_bytes(),
                max_body: sign::MAX_BODY,
            },
            &sign::Credentials {
                client_token: creds.client_token.expose(),
                client_secret: creds.client_secret.expose(),
                access_token: creds.access_token.expose(),
            },
            &sign::timestamp(crate::clock::now_ms()),
            &sign::nonce(),
        );
        let req = self
            .http
            .post(self.url(&creds.host, &path))
            .header(reqwest::header::HOST, &creds.host)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .body(body);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Transport(format!("{what}: {}", describe_transport_error(e))),
                )
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let wait = retry_after(&headers);
        let text = match crate::purgers::answer_text(resp).await {
            Ok(t) => t,
            Err(e) => {
                let mut r = PurgeResponse::failed(
                    Verdict::RetryLater { after: wait },
                    PurgeError::Transport(format!("{what}: reading the answer failed: {e}")),
                );
                r.http_status = Some(status.as_u16());
                return r;
            }
        };
        match answer::read(
            &answer::Sent {
                what: &what,
                objects,
                sources: &self.settings.credentials,
            },
            status.as_u16(),
            &headers,
            &text,
        ) {
            answer::Read::Accepted(a) => {
                tracing::info!(
                    provider = %name,
                    purge_id = %a.purge_id,
                    estimated_seconds = a.estimated_seconds.unwrap_or(0),
                    objects = n,
                    object_type = plan.ty.as_str(),
                    network = %self.settings.network,
                    "Akamai accepted the purge"
                );
                self.remember_estimate(&a.purge_id, completion_estimate(a.estimated_seconds));
                PurgeResponse::done(status.as_u16(), a.support_id, Some(a.purge_id))
            }
            answer::Read::Failed(r) => r,
        }
    }
}

fn describe_transport_error(e: reqwest::Error) -> String {
    // Without the URL: it may hold the API host, which comes from the credentials.
    super::describe_transport_error(&e.without_url())
}

#[async_trait]
impl Purger for Akamai {
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
        let mut plan = match self.plan(kind, targets) {
            Ok(p) => p,
            Err(e) => return PurgeResponse::failed(Verdict::Fatal, e),
        };
        if plan.objects.is_empty() {
            if plan.failed.is_empty() {
                return PurgeResponse::failed(
                    Verdict::Fatal,
                    PurgeError::Request("nothing to purge".into()),
                );
            }
            let first = plan.failed.remove(0);
            return PurgeResponse {
                failed: plan.failed,
                ..PurgeResponse::failed(first.verdict, first.error)
            };
        }
        let n = match Self::fit(&plan.objects) {
            Fit::Send(n) => n,
            Fit::Split => {
                return PurgeResponse::failed(
                    Verdict::Split,
                    PurgeError::Request(format!(
                        "{} objects make a body over Fast Purge's {MAX_BODY_BYTES} bytes: \
                         split before sending",
                        plan.objects.len()
                    )),
                )
            }
        };
        // What does not fit this body goes in a later request.
        let later: Vec<TargetFailure> = plan.objects[n..]
            .iter()
            .flat_map(|o| o.targets.iter().copied())
            .map(|index| TargetFailure {
                index,
                verdict: Verdict::RetryLater {
                    after: Some(Duration::ZERO),
                },
                error: PurgeError::Request(format!(
                    "did not fit the {MAX_BODY_BYTES}-byte body of the request before: sent in a \
                     later one"
                )),
                group: 1,
            })
            .collect();
        let mut response = self.send(&plan, n).await;
        if response.verdict == Verdict::Split {
            // Split applies to the whole batch; what was left out is split with it.
            return response;
        }
        response.failed.extend(plan.failed);
        response.failed.extend(later);
        response
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

    fn first_task_check(&self, task_id: &str) -> Option<Duration> {
        let mut kept = self
            .estimates
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let at = kept.iter().position(|(id, _)| id == task_id)?;
        kept.remove(at).map(|(_, estimate)| estimate)
    }

    /// Asked once the purge's estimate has passed (its first check is the estimate): Fast
    /// Purge has no status endpoint, and by Akamai's estimate the purge is done.
    async fn task_state(&self, _task_id: &str) -> Result<TaskState, PurgeError> {
        Ok(TaskState::Done)
    }

    fn credentials_missing(&self) -> bool {
        self.settings
            .credentials
            .all()
            .iter()
            .any(|s| s.check_present().is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn settings() -> AkamaiSettings {
        AkamaiSettings {
            name: "ak".into(),
            credentials: CredentialSources {
                host: SecretSource::Env("EP_AK_UNIT_UNSET_HOST".into()),
                client_token: SecretSource::Env("EP_AK_UNIT_UNSET_CT".into()),
                client_secret: SecretSource::Env("EP_AK_UNIT_UNSET_CS".into()),
                access_token: SecretSource::Env("EP_AK_UNIT_UNSET_AT".into()),
            },
            endpoint: None,
            network: "production".into(),
            action: "invalidate".into(),
            tags_are: ObjectType::Tag,
            cpcodes: Vec::new(),
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn paths_name_the_action_type_and_network() {
        let ak = Akamai::new(settings()).unwrap();
        assert_eq!(
            ak.path(ObjectType::Url),
            "/ccu/v3/invalidate/url/production"
        );
        assert_eq!(
            ak.url(
                "akab-x.luna.akamaiapis.net",
                "/ccu/v3/invalidate/url/production"
            ),
            "https://akab-x.luna.akamaiapis.net/ccu/v3/invalidate/url/production"
        );
        assert!(ak
            .target_text("/p")
            .contains("<host from environment variable"));
        let mut s = settings();
        s.network = "staging".into();
        s.action = "delete".into();
        s.endpoint = Some(url::Url::parse("http://127.0.0.1:9999").unwrap());
        let ak = Akamai::new(s).unwrap();
        assert_eq!(ak.path(ObjectType::CpCode), "/ccu/v3/delete/cpcode/staging");
        assert_eq!(
            ak.url("akab-x.luna.akamaiapis.net", "/ccu/v3/delete/tag/staging"),
            "http://127.0.0.1:9999/ccu/v3/delete/tag/staging"
        );
    }

    #[test]
    fn a_batch_becomes_unique_objects_and_bad_targets_fail_alone() {
        let ak = Akamai::new(settings()).unwrap();
        let targets = strings(&[
            "https://cdn.example.com/a%20b.png",
            "http://cdn.example.com/a%20b.png", // purged with the https one
            "https://cdn.example.com/c.css",
            "not a url",
        ]);
        let plan = ak.plan(TargetKind::Url, &targets).unwrap();
        assert_eq!(plan.ty, ObjectType::Url);
        let got: Vec<(&str, &Vec<usize>)> = plan
            .objects
            .iter()
            .map(|o| (o.json.as_str(), &o.targets))
            .collect();
        assert_eq!(
            got,
            vec![
                ("\"https://cdn.example.com/a%20b.png\"", &vec![0, 1]),
                ("\"https://cdn.example.com/c.css\"", &vec![2])
            ]
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 3);
        assert!(ak.refuses_target_for_good(&plan.failed[0].error));
        assert!(ak.plan(TargetKind::Dir, &targets).is_err());
    }

    #[test]
    fn tag_targets_are_cp_codes_on_a_cpcode_account() {
        let mut s = settings();
        s.tags_are = ObjectType::CpCode;
        s.cpcodes = vec![123456];
        let ak = Akamai::new(s).unwrap();
        let plan = ak
            .plan(TargetKind::Tag, &strings(&["123456", "123456", "999"]))
            .unwrap();
        assert_eq!(plan.ty, ObjectType::CpCode);
        assert_eq!(plan.objects.len(), 1);
        assert_eq!(plan.objects[0].json, "123456");
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 2);
    }

    #[test]
    fn what_does_not_fit_waits_or_the_batch_splits_first() {
        let long = |i: usize| Planned {
            json: format!("\"https://cdn.example.com/{i:04}{}\"", "x".repeat(990)),
            text: String::new(),
            targets: vec![i],
        };
        // 48 of these fit 50,000 bytes.
        let objects: Vec<_> = (0..60).map(long).collect();
        assert!(matches!(Akamai::fit(&objects), Fit::Send(48)));
        let objects: Vec<_> = (0..96).map(long).collect();
        assert!(matches!(Akamai::fit(&objects), Fit::Send(48)));
        let objects: Vec<_> = (0..97).map(long).collect();
        assert!(matches!(Akamai::fit(&objects), Fit::Split));
        let objects: Vec<_> = (0..3).map(long).collect();
        assert!(matches!(Akamai::fit(&objects), Fit::Send(3)));
    }

    #[test]
    fn a_purge_is_first_checked_when_its_estimate_has_passed() {
        assert_eq!(completion_estimate(Some(2)), Duration::from_secs(2));
        assert_eq!(completion_estimate(Some(0)), Duration::ZERO);
        assert_eq!(completion_estimate(None), DEFAULT_ESTIMATE);
        assert_eq!(completion_estimate(Some(86_400)), MAX_ESTIMATE);
        let ak = Akamai::new(settings()).unwrap();
        assert!(ak.follows_tasks());
        ak.remember_estimate("edcp-1", Duration::from_secs(5));
        ak.remember_estimate("edcp-2", Duration::from_secs(420));
        assert_eq!(
            ak.first_task_check("edcp-2"),
            Some(Duration::from_secs(420))
        );
        // Taken once: a purge id not from this process's answers is checked after
        // task_check_ms.
        assert_eq!(ak.first_task_check("edcp-2"), None);
        assert_eq!(ak.first_task_check("edcp-9"), None);
        assert_eq!(ak.first_task_check("edcp-1"), Some(Duration::from_secs(5)));
        // Estimates never looked up (function mode) do not pile up.
        for i in 0..ESTIMATES_KEPT + 10 {
            ak.remember_estimate(&format!("p-{i}"), Duration::from_secs(1));
        }
        assert_eq!(ak.estimates.lock().unwrap().len(), ESTIMATES_KEPT);
        assert_eq!(ak.first_task_check("p-0"), None);
        assert!(ak
            .first_task_check(&format!("p-{}", ESTIMATES_KEPT + 9))
            .is_some());
    }

    #[tokio::test]
    async fn once_asked_about_a_purge_is_done_without_a_request() {
        // No credentials and no endpoint: nothing could be sent.
        let ak = Akamai::new(settings()).unwrap();
        assert_eq!(ak.task_state("edcp-1").await, Ok(TaskState::Done));
    }

    #[tokio::test]
    async fn missing_credentials_retry_with_a_clear_error_and_no_request() {
        let ak = Akamai::new(settings()).unwrap();
        assert!(ak.credentials_missing());
        let r = ak
            .purge(TargetKind::Url, &strings(&["https://cdn.example.com/1"]))
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("EP_AK_UNIT_UNSET_HOST") && err.contains("provider ak"),
            "{err}"
        );
        assert!(!ak.refuses_target_for_good(&PurgeError::Credentials(err)));
    }

    #[tokio::test]
    async fn a_batch_of_only_bad_targets_fails_without_a_request() {
        let ak = Akamai::new(settings()).unwrap();
        let r = ak.purge(TargetKind::Tag, &strings(&["a,b", "c d"])).await;
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(matches!(r.error, Some(PurgeError::Request(_))));
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].index, 1);
        assert_eq!(r.http_status, None);
    }
}
