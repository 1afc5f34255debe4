//! Akamai Fast Purge (CCU v3), signed with EdgeGrid (apis.md §D.2, §J.5).
//!
//! One lane per account. A batch of one target kind becomes one request
//! `POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}/{production|staging}` with
//! `{"objects": [...]}`: URL rules send their full URLs, tag rules their cache tags, or CP
//! codes on an account with `tags_are = "cpcodes"` ([`body`]). Fast Purge has no prefix
//! purge, so dir rules are refused when the rule is checked. A body holds at most 50,000
//! bytes: what does not fit is sent in a later request (or the batch is split first when
//! less than half of it fits). Akamai answers 201 with a `purgeId` (the log's task id) and
//! `estimatedSeconds` (logged; status polling is not done here).

mod body;
pub mod classify;
mod config;
mod credentials;
pub mod sign;

pub use body::{ObjectType, MAX_BODY_BYTES};
pub use config::{buckets, default_limits, AkamaiSettings, KIND};
pub use credentials::CredentialSources;

use super::{
    retry_after, snippet, Limits, PurgeError, PurgeResponse, Purger, TargetFailure, Verdict,
};
use async_trait::async_trait;
use classify::Problem;
use edgepurge_core::TargetKind;
use serde::Deserialize;
use std::time::Duration;

pub const API_BASE: &str = "/ccu/v3";
const CONTENT_TYPE: &str = "application/json";

pub struct Akamai {
    settings: AkamaiSettings,
    http: reqwest::Client,
}

/// A 201 answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    purge_id: String,
    estimated_seconds: Option<u64>,
    support_id: Option<String>,
}

/// The objects of one request: each once, with the targets it purges.
struct Plan {
    ty: ObjectType,
    /// JSON text of each object, its display text, and the targets it stands for.
    objects: Vec<(String, String, Vec<usize>)>,
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
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect would send the signed request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edgepurge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Akamai { settings, http })
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
        let mut objects: Vec<(String, String, Vec<usize>)> = Vec::new();
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
                objects[at].2.push(i);
                continue;
            }
            keys.push(o.key);
            let text = match ty {
                ObjectType::CpCode => o.json.clone(),
                _ => t.clone(),
            };
            objects.push((o.json, text, vec![i]));
        }
        Ok(Plan {
            ty,
            objects,
            failed,
        })
    }

    fn fit(objects: &[(String, String, Vec<usize>)]) -> Fit {
        let json: Vec<&str> = objects.iter().map(|(j, _, _)| j.as_str()).collect();
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
        let json: Vec<&str> = objects.iter().map(|(j, _, _)| j.as_str()).collect();
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
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                let mut r = PurgeResponse::failed(
                    Verdict::RetryLater { after: wait },
                    PurgeError::Transport(format!(
                        "{what}: reading the answer failed: {}",
                        describe_transport_error(e)
                    )),
                );
                r.http_status = Some(status.as_u16());
                return r;
            }
        };
        let code = status.as_u16();
        if status.is_success() {
            if let Ok(a) = serde_json::from_str::<Accepted>(&text) {
                tracing::info!(
                    provider = %name,
                    purge_id = %a.purge_id,
                    estimated_seconds = a.estimated_seconds.unwrap_or(0),
                    objects = n,
                    object_type = plan.ty.as_str(),
                    network = %self.settings.network,
                    "Akamai accepted the purge"
                );
                return PurgeResponse::done(code, a.support_id, Some(a.purge_id));
            }
        }
        let fail =
            |verdict, code_text: Option<String>, message: String, request_id| PurgeResponse {
                verdict,
                http_status: Some(code),
                request_id,
                task_id: None,
                error: Some(PurgeError::Answer {
                    code: code_text,
                    message,
                }),
                failed: Vec::new(),
            };
        let Some(problem) = Problem::parse(&text).filter(|_| !status.is_success()) else {
            // Not Akamai's answer: a proxy's page, a cut-short body, a redirect. Retried
            // (bounded by max_attempts) with the start of what came back in the log.
            let message = if status.is_redirection() {
                format!(
                    "{what}: HTTP {status} redirect to {}: not followed (it would send the signed \
                     request elsewhere); check `endpoint`",
                    super::redirect_target(&headers)
                )
            } else {
                format!(
                    "{what}: HTTP {status} without a Fast Purge answer (check `endpoint`): {:?}",
                    snippet(&text, 200)
                )
            };
            let after = if code == 429 {
                Some(classify::rate_limit_wait(
                    &headers,
                    &Problem::default(),
                    n,
                    wait,
                ))
            } else {
                wait
            };
            return fail(Verdict::RetryLater { after }, None, message, None);
        };
        let request_id = problem.support_id.clone().or(problem.request_id.clone());
        let title = problem.code(code);
        let mut message = format!("{what}: HTTP {code} {title}");
        if !problem.detail.is_empty() {
            message.push_str(&format!(": {}", snippet(&problem.detail, 300)));
        }
        if let Some(h) = classify::hint(code, &problem, &self.settings.credentials) {
            message.push_str(&format!(" ({h})"));
        }
        if classify::is_per_target(code, &problem) {
            let texts: Vec<String> = objects.iter().map(|(_, t, _)| t.clone()).collect();
            if let Some(bad) = classify::named_object(&problem.detail, &texts) {
                if n == 1 {
                    return fail(Verdict::Fatal, Some(title), message, request_id);
                }
                // Only the named object is refused; the others go again without it.
                let mut r = fail(
                    Verdict::RetryLater {
                        after: Some(Duration::ZERO),
                    },
                    Some(title.clone()),
                    format!("{message}; the other objects are sent again without it"),
                    request_id,
                );
                r.failed = objects[bad]
                    .2
                    .iter()
                    .map(|&index| TargetFailure {
                        index,
                        verdict: Verdict::Fatal,
                        error: PurgeError::Answer {
                            code: Some(title.clone()),
                            message: message.clone(),
                        },
                        group: 0,
                    })
                    .collect();
                // URLs on the refused URL's host are likely refused too (Akamai authorizes
                // URLs by hostname): they go again in a request of their own, so the others
                // are not held back (and their attempts not spent) while those are refused
                // one by one.
                if let Some(host) = url_host(&objects[bad].1) {
                    let suspects = objects
                        .iter()
                        .enumerate()
                        .filter(|(i, (_, text, _))| {
                            *i != bad && url_host(text).as_deref() == Some(host.as_str())
                        })
                        .flat_map(|(_, (_, _, idx))| idx.iter().copied());
                    for index in suspects {
                        r.failed.push(TargetFailure {
                            index,
                            verdict: Verdict::RetryLater {
                                after: Some(Duration::ZERO),
                            },
                            error: PurgeError::Answer {
                                code: Some(title.clone()),
                                message: format!(
                                    "{message}; sent again apart from URLs of other hosts"
                                ),
                            },
                            group: 2,
                        });
                    }
                }
                return r;
            }
            let verdict = if n > 1 {
                Verdict::Split
            } else {
                Verdict::Fatal
            };
            return fail(verdict, Some(title), message, request_id);
        }
        let verdict = classify::classify(code, &problem, n, &headers, wait);
        fail(verdict, Some(title), message, request_id)
    }
}

/// The host of a URL object (`None` for tags and CP codes).
fn url_host(text: &str) -> Option<String> {
    url::Url::parse(text)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

fn describe_transport_error(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // Without the URL: it may hold the API host, which comes from the credentials.
    let e = e.without_url();
    let mut msg = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
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
            .flat_map(|(_, _, idx)| idx.iter().copied())
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
            .map(|(j, _, i)| (j.as_str(), i))
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
        assert_eq!(plan.objects[0].0, "123456");
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 2);
    }

    #[test]
    fn what_does_not_fit_waits_or_the_batch_splits_first() {
        let long = |i: usize| {
            (
                format!("\"https://cdn.example.com/{i:04}{}\"", "x".repeat(990)),
                String::new(),
                vec![i],
            )
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
