//! Cloudflare: `POST /zones/{zone_id}/purge_cache` (or `invalidate_cache` with `soft = true`)
//! with an API token (apis.md §C, §J.2).
//!
//! One lane per zone. A batch of one target kind becomes one request: URLs as `files`,
//! directories as `prefixes` (`host/path`), tags as `tags` ([`targets`]). The purge's
//! `result.id` is the log's task id. Tag and prefix requests draw from a slow bucket of their
//! own (5 a minute on the Free plan), which the lane keeps apart from URL requests
//! ([`crate::purgers::SharedRate`]). There is no status to poll: a purge is done within
//! seconds of Cloudflare's 200.

pub mod answer;
pub mod classify;
mod config;
pub mod plan;
pub mod targets;

pub use config::{default_limits, CloudflareSettings, DEFAULT_TOKEN_ENV, KIND};

use super::{
    describe_transport_error, retry_after, snippet, Limits, PurgeError, PurgeResponse, Purger,
    SharedRate, TargetFailure, Verdict,
};
use async_trait::async_trait;
use classify::Class;
use edgepurge_core::TargetKind;

pub const DEFAULT_ENDPOINT: &str = "https://api.cloudflare.com/client/v4";

pub struct Cloudflare {
    settings: CloudflareSettings,
    /// `purge_cache` or `invalidate_cache`.
    action: &'static str,
    url: String,
    http: reqwest::Client,
}

/// The items of one request, each once, with the targets it purges.
struct Plan {
    items: Vec<(String, Vec<usize>)>,
    failed: Vec<TargetFailure>,
}

impl Cloudflare {
    pub fn new(settings: CloudflareSettings) -> Result<Cloudflare, String> {
        let action = if settings.soft {
            "invalidate_cache"
        } else {
            "purge_cache"
        };
        let url = format!(
            "{}/zones/{}/{action}",
            settings.endpoint.as_str().trim_end_matches('/'),
            settings.zone_id
        );
        let http = super::api_client(settings.timeout)?;
        Ok(Cloudflare {
            settings,
            action,
            url,
            http,
        })
    }

    /// Each target's item once; targets that cannot be sent fail alone, for good.
    fn plan(&self, kind: TargetKind, targets: &[String]) -> Plan {
        let mut items: Vec<(String, Vec<usize>)> = Vec::new();
        let mut failed = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match targets::item(kind, t) {
                Ok(item) => match items.iter_mut().find(|(it, _)| *it == item) {
                    Some((_, idx)) => idx.push(i),
                    None => items.push((item, vec![i])),
                },
                Err(why) => failed.push(TargetFailure {
                    index: i,
                    verdict: Verdict::Fatal,
                    error: PurgeError::Request(why),
                    group: 0,
                }),
            }
        }
        Plan { items, failed }
    }

    /// Sends one request for `items` (all of `kind`).
    async fn send(&self, kind: TargetKind, items: &[String]) -> PurgeResponse {
        let zone = &self.settings.zone_id;
        let what = format!("{} zone {zone}", self.action);
        let token = match self.settings.api_token.load().await {
            Ok(t) => t,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Credentials(format!(
                        "API token for provider {}: {e}",
                        self.settings.name
                    )),
                )
            }
        };
        // A token a header cannot carry (a file of two lines) is a credentials problem to
        // fix, said before anything is sent; marked sensitive: never in a Debug print.
        let Ok(mut auth) =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        else {
            return PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Credentials(format!(
                    "API token for provider {} from {}: it holds a character a header cannot \
                     carry (a line break or a non-ASCII character?); it must be the token alone",
                    self.settings.name, self.settings.api_token
                )),
            );
        };
        auth.set_sensitive(true);
        let body = targets::body(kind, items).to_string();
        let resp = match self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Transport(format!(
                        "{what} at {}: {}",
                        self.settings.endpoint,
                        describe_transport_error(&e)
                    )),
                )
            }
        };
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let headers = resp.headers().clone();
        let request_id = headers
            .get("cf-ray")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = match crate::purgers::answer_text(resp).await {
            Ok(t) => t,
            Err(e) => {
                let mut r = PurgeResponse::failed(
                    Verdict::RetryLater { after: wait },
                    PurgeError::Transport(format!("{what}: reading the answer failed: {e}")),
                );
                r.http_status = Some(status.as_u16());
                r.request_id = request_id;
                return r;
            }
        };
        // Whatever comes back is shown without the token, should anything echo it.
        let text = text.replace(token.expose(), "***");
        let fail = |verdict: Verdict, error: PurgeError| PurgeResponse {
            verdict,
            http_status: Some(status.as_u16()),
            request_id: request_id.clone(),
            task_id: None,
            error: Some(error),
            failed: Vec::new(),
        };
        let Some(answer) = answer::parse(&text) else {
            // Not Cloudflare's answer: a proxy's page, a cut-short body, a redirect.
            let message = if status.is_redirection() {
                format!(
                    "{what}: HTTP {status} redirect to {}: not followed (it would send the \
                     token elsewhere); check `endpoint`",
                    super::redirect_target(&headers)
                )
            } else {
                format!(
                    "{what}: HTTP {status} without a Cloudflare answer (check `endpoint`): {:?}",
                    snippet(&text, 200)
                )
            };
            let error = PurgeError::Answer {
                code: None,
                message,
            };
            return fail(Verdict::RetryLater { after: wait }, error);
        };
        if status.is_success() && answer.success {
            return PurgeResponse::done(status.as_u16(), request_id, answer.id);
        }
        let codes = answer.codes();
        let messages: Vec<&str> = answer.errors.iter().map(|e| e.message.as_str()).collect();
        let class = classify::classify(status.as_u16(), &codes, &messages);
        let mut message = format!("{what}: HTTP {}: {}", status.as_u16(), answer.describe());
        let token_source = self.settings.api_token.to_string();
        if let Some(h) = classify::hint(status.as_u16(), &codes, zone, &token_source) {
            message.push_str(&format!(" ({h})"));
        }
        if status.as_u16() == 429 {
            if let Some(w) = wait {
                message.push_str(&format!("; Retry-After {} s", w.as_secs()));
            }
        }
        let verdict = classify::verdict(class, items.len(), wait);
        let error = if class == Class::Items && verdict == Verdict::Fatal {
            // The one item left is what Cloudflare refuses: no later attempt can purge it.
            PurgeError::Request(format!("Cloudflare refused {:?}: {message}", items[0]))
        } else {
            PurgeError::Answer {
                code: codes.first().map(ToString::to_string),
                message,
            }
        };
        fail(verdict, error)
    }
}

#[async_trait]
impl Purger for Cloudflare {
    fn lane(&self) -> &str {
        &self.settings.name
    }

    fn provider(&self) -> &str {
        &self.settings.name
    }

    fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    fn shared_rates(&self) -> Vec<SharedRate> {
        vec![self.settings.tag_prefix_rate()]
    }

    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        let Plan { items, mut failed } = self.plan(kind, targets);
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
        let texts: Vec<String> = items.iter().map(|(t, _)| t.clone()).collect();
        let mut response = self.send(kind, &texts).await;
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
    use std::time::Duration;

    fn settings() -> CloudflareSettings {
        CloudflareSettings {
            name: "cf".into(),
            zone_id: "023e105f4ecef8ad9ca31a8372d0c353".into(),
            endpoint: url::Url::parse(DEFAULT_ENDPOINT).unwrap(),
            api_token: SecretSource::Env("EP_CF_UNIT_UNSET_TOKEN".into()),
            plan: plan::Plan::Free,
            soft: false,
            timeout: Duration::from_secs(5),
            tag_prefix_per_minute: 5,
            limits: default_limits(),
        }
    }

    #[test]
    fn the_request_goes_to_the_zones_purge_or_invalidate_endpoint() {
        let cf = Cloudflare::new(settings()).unwrap();
        assert_eq!(
            cf.url,
            "https://api.cloudflare.com/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache"
        );
        let mut s = settings();
        s.soft = true;
        s.endpoint = url::Url::parse("http://127.0.0.1:9/client/v4").unwrap();
        let cf = Cloudflare::new(s).unwrap();
        assert_eq!(
            cf.url,
            "http://127.0.0.1:9/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/invalidate_cache"
        );
    }

    #[test]
    fn a_batch_becomes_unique_items_and_bad_targets_fail_alone() {
        let cf = Cloudflare::new(settings()).unwrap();
        let targets: Vec<String> = [
            "https://cdn.example.com/d/",
            "http://cdn.example.com/d/", // same prefix under another scheme: one item
            "https://img.example.com/d/",
            "https://cdn.example.com:8443/d/",
        ]
        .map(String::from)
        .to_vec();
        let plan = cf.plan(TargetKind::Dir, &targets);
        assert_eq!(
            plan.items,
            vec![
                ("cdn.example.com/d/".to_owned(), vec![0, 1]),
                ("img.example.com/d/".to_owned(), vec![2]),
            ]
        );
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.failed[0].index, 3);
        assert_eq!(plan.failed[0].verdict, Verdict::Fatal);
        assert!(cf.refuses_target_for_good(&plan.failed[0].error));
    }

    #[test]
    fn tag_and_prefix_requests_share_the_slow_rate() {
        let cf = Cloudflare::new(settings()).unwrap();
        let rates = cf.shared_rates();
        assert_eq!(rates.len(), 1);
        assert_eq!(rates[0].kinds, vec![TargetKind::Dir, TargetKind::Tag]);
        assert!((rates[0].rate_per_s - 5.0 / 60.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn a_token_a_header_cannot_carry_is_refused_before_sending() {
        // A token file of two lines: the second would be a header of its own. It was a
        // request-builder error before, retried as if the network had failed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cf-token");
        std::fs::write(&path, "first-token\nX-Injected: 1\n").unwrap();
        let mut s = settings();
        s.api_token = SecretSource::File(path);
        let cf = Cloudflare::new(s).unwrap();
        let r = cf
            .purge(TargetKind::Url, &["https://cdn.example.com/1".into()])
            .await;
        assert_eq!(r.http_status, None, "nothing was sent");
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("cf-token") && !text.contains("first-token"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_token_retries_with_a_clear_error_and_no_request() {
        let cf = Cloudflare::new(settings()).unwrap();
        assert!(cf.credentials_missing());
        let r = cf
            .purge(TargetKind::Url, &["https://cdn.example.com/1".into()])
            .await;
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        assert_eq!(r.http_status, None);
        let err = r.error.unwrap();
        assert!(matches!(err, PurgeError::Credentials(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("EP_CF_UNIT_UNSET_TOKEN") && text.contains("cf"),
            "{text}"
        );
        assert!(!cf.refuses_target_for_good(&err));
    }

    #[tokio::test]
    async fn a_batch_of_only_bad_targets_fails_without_a_call() {
        let cf = Cloudflare::new(settings()).unwrap();
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
