//! Fastly: purge by URL and by surrogate key with an API token (apis.md §D.1, §J.5).
//!
//! One lane per account. Fastly has no multi-URL purge: a URL batch holds one URL and is one
//! `POST /purge/{host/path}` (the lane's `concurrency` sends several at once); a tag batch is
//! one `POST /service/{service_id}/purge` with up to 256 keys in `{"surrogate_keys": [...]}`
//! ([`targets`]). `soft = true` adds `Fastly-Soft-Purge: 1` (mark stale instead of remove).
//! A URL purge's `id` is the log's task id. Fastly has no prefix purge, so dir rules are
//! refused when the rule is checked, and no status to poll: Fastly purges globally in about
//! 150 ms, so a purge is complete when answered.

pub mod answer;
pub mod classify;
mod config;
pub mod targets;

pub use config::{default_limits, FastlySettings, DEFAULT_TOKEN_ENV, KIND};

use super::{
    describe_transport_error, redirect_target, snippet, Limits, PurgeError, PurgeResponse, Purger,
    TargetFailure, Verdict,
};
use async_trait::async_trait;
use classify::Class;
use edgepurge_core::TargetKind;
use std::time::Duration;

pub const DEFAULT_ENDPOINT: &str = "https://api.fastly.com";
/// The header that carries the API token.
pub const TOKEN_HEADER: &str = "fastly-key";
/// The header that makes a purge soft.
pub const SOFT_HEADER: &str = "fastly-soft-purge";

pub struct Fastly {
    settings: FastlySettings,
    /// The endpoint without a trailing `/`.
    base: String,
    http: reqwest::Client,
}

/// The items of one request, each once, with the targets it purges.
struct Plan {
    items: Vec<(String, Vec<usize>)>,
    failed: Vec<TargetFailure>,
}

impl Fastly {
    pub fn new(settings: FastlySettings) -> Result<Fastly, String> {
        let base = settings.endpoint.as_str().trim_end_matches('/').to_owned();
        let http = super::api_client(settings.timeout)?;
        Ok(Fastly {
            settings,
            base,
            http,
        })
    }

    /// The API URL purging `cached` (`host/path[?query]`), checked to be exactly
    /// `{endpoint}/purge/{cached}` once parsed: nothing in a target can make it another
    /// call of the API.
    fn url_purge_url(&self, cached: &str) -> Result<url::Url, String> {
        let text = format!("{}/purge/{cached}", self.base);
        let u = url::Url::parse(&text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        let (path, query) = match cached.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (cached, None),
        };
        let want = format!(
            "{}/purge/{path}",
            self.settings.endpoint.path().trim_end_matches('/')
        );
        if u.path() != want || u.query() != query || u.fragment().is_some() {
            return Err(format!(
                "{:?} would not be sent as a purge of itself (the API would see {:?})",
                snippet(cached, 200),
                snippet(u.path(), 200)
            ));
        }
        Ok(u)
    }

    fn keys_url(&self) -> String {
        format!("{}/service/{}/purge", self.base, self.settings.service_id)
    }

    /// Each target's item once; targets that cannot be sent fail alone, for good.
    fn plan(&self, kind: TargetKind, targets: &[String]) -> Result<Plan, PurgeError> {
        if kind == TargetKind::Dir {
            return Err(PurgeError::Request(
                "Fastly cannot purge dir targets (it has no prefix purge): use url or tag rules"
                    .to_owned(),
            ));
        }
        let item = |t: &str| match kind {
            TargetKind::Tag => targets::surrogate_key(t),
            _ => targets::cached_url(t).and_then(|c| {
                self.url_purge_url(&c)?;
                Ok(c)
            }),
        };
        let mut items: Vec<(String, Vec<usize>)> = Vec::new();
        let mut failed = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match item(t) {
                Ok(it) => match items.iter_mut().find(|(x, _)| *x == it) {
                    Some((_, idx)) => idx.push(i),
                    None => items.push((it, vec![i])),
                },
                Err(why) => failed.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Request(why),
                    group: 0,
                }),
            }
        }
        Ok(Plan { items, failed })
    }

    /// Sends one request for `items` (all of `kind`; one URL, or up to 256 keys).
    async fn send(&self, kind: TargetKind, items: &[(String, Vec<usize>)]) -> PurgeResponse {
        let name = &self.settings.name;
        let service = &self.settings.service_id;
        let token = match self.settings.api_token.load().await {
            Ok(t) => t,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Credentials(format!("API token for provider {name}: {e}")),
                )
            }
        };
        // Marked sensitive: never shown by a Debug print of the request.
        let Ok(mut key) = reqwest::header::HeaderValue::from_str(token.expose()) else {
            return PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Credentials(format!(
                    "API token for provider {name} from {}: it holds a character a header \
                     cannot carry (a line break or a non-ASCII character?); it must be the \
                     token alone",
                    self.settings.api_token
                )),
            );
        };
        key.set_sensitive(true);
        let (what, req) = match kind {
            TargetKind::Tag => {
                let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
                let what = format!(
                    "purge of {} surrogate key(s) on service {service}",
                    keys.len()
                );
                let body = targets::keys_body(&keys).to_string();
                let req = self
                    .http
                    .post(self.keys_url())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body);
                (what, req)
            }
            _ => {
                let Some((cached, _)) = items.first() else {
                    return PurgeResponse::failed(
                        Verdict::Fatal,
                        PurgeError::Request("nothing to purge".into()),
                    );
                };
                let what = format!("purge of {cached}");
                match self.url_purge_url(cached) {
                    Ok(u) => (what, self.http.post(u)),
                    Err(why) => {
                        return PurgeResponse::failed(Verdict::Fatal, PurgeError::Request(why))
                    }
                }
            }
        };
        let mut req = req
            .header(TOKEN_HEADER, key)
            .header(reqwest::header::ACCEPT, "application/json");
        if self.settings.soft {
            req = req.header(SOFT_HEADER, "1");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Transport(format!(
                        "{what} at {}: {}",
                        self.base,
                        describe_transport_error(&e)
                    )),
                )
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let wait = classify::wait(&headers, crate::clock::now_ms());
        let text = match crate::purgers::answer_text(resp).await {
            Ok(t) => t,
            Err(e) => {
                let mut r = PurgeResponse::failed(
                    Verdict::RetryLater { after: wait },
                    PurgeError::Transport(format!("{what}: reading the answer failed: {e}")),
                );
                r.http_status = Some(status);
                return r;
            }
        };
        // Whatever comes back is shown without the token, should anything echo it.
        let text = text.replace(token.expose(), "***");
        let fail = |verdict: Verdict, error: PurgeError| PurgeResponse {
            verdict,
            http_status: Some(status),
            request_id: None,
            task_id: None,
            error: Some(error),
            failed: Vec::new(),
        };
        if (200..300).contains(&status) {
            match kind {
                TargetKind::Tag => {
                    if let Some(ids) = answer::keys_purged(&text) {
                        return self.keys_done(status, items, &ids);
                    }
                }
                _ => {
                    if let Some(id) = answer::url_purged(&text) {
                        let id = (!id.is_empty()).then_some(id);
                        return PurgeResponse::done(status, None, id);
                    }
                }
            }
        }
        let problem = answer::Problem::parse(&text).filter(|_| status >= 300);
        let Some(problem) = problem else {
            // Not Fastly's answer: a proxy's page, a cut-short body, a redirect.
            let message = if (300..400).contains(&status) {
                format!(
                    "{what}: HTTP {status} redirect to {}: not followed (it would send the \
                     token elsewhere); check `endpoint`",
                    redirect_target(&headers)
                )
            } else {
                format!(
                    "{what}: HTTP {status} without a Fastly answer (check `endpoint`): {:?}",
                    snippet(&text, 200)
                )
            };
            let error = PurgeError::Answer {
                code: None,
                message,
            };
            return fail(Verdict::RetryLater { after: wait }, error);
        };
        let class = classify::classify(status);
        let mut message = format!("{what}: HTTP {status}: {}", problem.describe());
        let source = self.settings.api_token.to_string();
        if let Some(h) = classify::hint(status, kind, service, &source) {
            message.push_str(&format!(" ({h})"));
        }
        if status == 429 {
            if let Some(w) = wait {
                message.push_str(&format!(
                    "; rate limit resets in {} s",
                    w.as_secs_f64().ceil()
                ));
            }
        }
        let verdict = classify::verdict(class, items.len(), wait);
        let error = if class == Class::Items && verdict == Verdict::Fatal {
            // The one item left is what Fastly refuses: no later attempt can purge it.
            let item = items.first().map_or("", |(t, _)| t.as_str());
            PurgeError::Request(format!("Fastly refused {item:?}: {message}"))
        } else {
            PurgeError::Answer {
                code: Some(status.to_string()),
                message,
            }
        };
        fail(verdict, error)
    }

    /// A batch purge answered: done, except keys the answer has no purge id for (sent again).
    fn keys_done(
        &self,
        status: u16,
        items: &[(String, Vec<usize>)],
        ids: &std::collections::BTreeMap<String, String>,
    ) -> PurgeResponse {
        let mut r = PurgeResponse::done(status, None, None);
        for (key, idx) in items.iter().filter(|(k, _)| !ids.contains_key(k)) {
            for &index in idx {
                r.failed.push(TargetFailure {
                    index,
                    verdict: Verdict::RetryLater {
                        after: Some(Duration::ZERO),
                    },
                    error: PurgeError::Answer {
                        code: None,
                        message: format!(
                            "Fastly's answer has no purge id for surrogate key {key:?}: sent \
                             again"
                        ),
                    },
                    group: 1,
                });
            }
        }
        // One key: its purge id is the batch's task id.
        if let [(key, _)] = items {
            r.task_id = ids.get(key).filter(|id| !id.is_empty()).cloned();
        }
        r
    }
}

#[async_trait]
impl Purger for Fastly {
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
        let Plan { items, mut failed } = match self.plan(kind, targets) {
            Ok(p) => p,
            Err(e) => return PurgeResponse::failed(Verdict::Fatal, e),
        };
        if items.is_empty() {
            if failed.is_empty() {
                return PurgeResponse::failed(
                    Verdict::Fatal,
                    PurgeError::Request("nothing to purge".into()),
                );
            }
            let first = failed.remove(0);
            return PurgeResponse {
                failed,
                ..PurgeResponse::failed(first.verdict, first.error)
            };
        }
        if kind == TargetKind::Url && items.len() > 1 {
            // Not formed by a lane (one URL per batch); split rather than send twice.
            return PurgeResponse::failed(
                Verdict::Split,
                PurgeError::Request("Fastly purges one URL per request".into()),
            );
        }
        let mut response = self.send(kind, &items).await;
        if response.verdict == Verdict::Split {
            return response;
        }
        response.failed.extend(failed);
        response
    }

    fn credentials_missing(&self) -> bool {
        self.settings.api_token.check_present().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn settings() -> FastlySettings {
        FastlySettings {
            name: "fy".into(),
            service_id: "SU1Z0isxPaozGVKXdv0eY".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            api_token: SecretSource::Env("EP_FY_UNIT_UNSET_TOKEN".into()),
            soft: false,
            timeout: Duration::from_secs(5),
            limits: default_limits(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn requests_go_to_the_url_and_batch_key_endpoints() {
        let f = Fastly::new(settings()).unwrap();
        assert_eq!(
            f.url_purge_url("cdn.example.com/a%20b.png")
                .unwrap()
                .as_str(),
            "https://api.fastly.com/purge/cdn.example.com/a%20b.png"
        );
        assert_eq!(
            f.url_purge_url("cdn.example.com/p?v=1").unwrap().as_str(),
            "https://api.fastly.com/purge/cdn.example.com/p?v=1"
        );
        assert_eq!(
            f.keys_url(),
            "https://api.fastly.com/service/SU1Z0isxPaozGVKXdv0eY/purge"
        );
        let mut s = settings();
        s.endpoint = url::Url::parse("http://127.0.0.1:9/fastly/").unwrap();
        let f = Fastly::new(s).unwrap();
        assert_eq!(
            f.url_purge_url("cdn.example.com/x").unwrap().as_str(),
            "http://127.0.0.1:9/fastly/purge/cdn.example.com/x"
        );
        assert_eq!(
            f.keys_url(),
            "http://127.0.0.1:9/fastly/service/SU1Z0isxPaozGVKXdv0eY/purge"
        );
    }

    #[test]
    fn a_target_cannot_turn_a_purge_into_another_api_call() {
        let f = Fastly::new(settings()).unwrap();
        // Whatever reaches it, the request path is /purge/ + the target.
        for evil in [
            "cdn.example.com/../../service/X/purge_all",
            "cdn.example.com/%2e%2e/%2e%2e/service/X/purge_all",
            "cdn.example.com/a#x",
            "cdn.example.com\\..\\x",
        ] {
            assert!(f.url_purge_url(evil).is_err(), "{evil}");
        }
        // From a URL target, dot segments are resolved first: the host's own path.
        let plan = f
            .plan(
                TargetKind::Url,
                &strings(&["https://cdn.example.com/a/../../service/X/purge_all"]),
            )
            .unwrap();
        assert_eq!(plan.items[0].0, "cdn.example.com/service/X/purge_all");
    }

    #[test]
    fn a_batch_becomes_unique_items_and_bad_targets_fail_alone() {
        let f = Fastly::new(settings()).unwrap();
        let plan = f
            .plan(
                TargetKind::Url,
                &strings(&[
                    "https://cdn.example.com/a%20b.png",
                    "http://cdn.example.com/a%20b.png",
                    "https://cdn.example.com:8443/x",
                ]),
            )
            .unwrap();
        assert_eq!(
            plan.items,
            vec![("cdn.example.com/a%20b.png".to_owned(), vec![0, 1])]
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 2);
        assert!(f.refuses_target_for_good(&plan.failed[0].error));
        let plan = f
            .plan(TargetKind::Tag, &strings(&["a", "b c", "a", "d"]))
            .unwrap();
        assert_eq!(
            plan.items,
            vec![("a".to_owned(), vec![0, 2]), ("d".to_owned(), vec![3])]
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 1);
        assert!(f.plan(TargetKind::Dir, &strings(&["https://a/"])).is_err());
    }

    #[test]
    fn a_batch_answer_without_a_keys_id_sends_that_key_again() {
        let f = Fastly::new(settings()).unwrap();
        let items = vec![("a".to_owned(), vec![0, 2]), ("b".to_owned(), vec![1])];
        let ids = [("a".to_owned(), "id-a".to_owned())].into_iter().collect();
        let r = f.keys_done(200, &items, &ids);
        assert_eq!(r.verdict, Verdict::Done);
        assert_eq!(r.task_id, None);
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].index, 1);
        let r = f.keys_done(200, &items[..1], &ids);
        assert!(r.failed.is_empty());
        assert_eq!(r.task_id.as_deref(), Some("id-a"));
    }

    #[tokio::test]
    async fn a_missing_token_retries_with_a_clear_error_and_no_request() {
        let f = Fastly::new(settings()).unwrap();
        assert!(f.credentials_missing());
        let r = f
            .purge(TargetKind::Url, &strings(&["https://cdn.example.com/1"]))
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        assert_eq!(r.http_status, None);
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("EP_FY_UNIT_UNSET_TOKEN") && text.contains("fy"),
            "{text}"
        );
        assert!(!f.refuses_target_for_good(&err));
    }

    #[tokio::test]
    async fn a_token_a_header_cannot_carry_is_refused_before_sending() {
        // A token file of two lines: the second would be a header of its own.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fastly-token");
        std::fs::write(&path, "first-token\nX-Injected: 1\n").unwrap();
        let mut s = settings();
        s.api_token = SecretSource::File(path);
        let f = Fastly::new(s).unwrap();
        let r = f
            .purge(TargetKind::Url, &strings(&["https://cdn.example.com/1"]))
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        assert_eq!(r.http_status, None, "nothing was sent");
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("fastly-token") && !text.contains("first-token"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn only_bad_targets_or_dir_fail_without_a_request() {
        let f = Fastly::new(settings()).unwrap();
        let r = f.purge(TargetKind::Tag, &strings(&["a b", "c\nd"])).await;
        assert_eq!(r.verdict, Verdict::Fatal);
        assert!(matches!(r.error, Some(PurgeError::Request(_))));
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.http_status, None);
        let r = f
            .purge(TargetKind::Dir, &strings(&["https://cdn.example.com/d/"]))
            .await;
        assert_eq!(r.verdict, Verdict::Fatal);
        let err = r.error.unwrap().to_string();
        assert!(err.contains("no prefix purge"), "{err}");
    }
}
