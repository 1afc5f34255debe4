//! Reading one Fast Purge answer into the outcome of the request: pure (no I/O), so every
//! branch is tested here. Which statuses mean what is [`super::classify`]; this adds what
//! needs the request's objects (a refusal naming one of them) and the error texts.

use super::classify::{self, Problem};
use super::CredentialSources;
use crate::purgers::{redirect_target, snippet, PurgeError, PurgeResponse, TargetFailure, Verdict};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use std::time::Duration;

/// One object of a request: its JSON text, its text as shown (a URL, tag or CP code), and
/// the targets of the batch it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub json: String,
    pub text: String,
    pub targets: Vec<usize>,
}

/// What was sent, for reading its answer.
pub struct Sent<'a> {
    /// `POST <where>`, for messages (never holds a credential).
    pub what: &'a str,
    /// The objects of the request, in the body's order.
    pub objects: &'a [Planned],
    /// Where the credentials come from, for hints.
    pub sources: &'a CredentialSources,
}

/// A 201 answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub purge_id: String,
    pub estimated_seconds: Option<u64>,
    pub support_id: Option<String>,
}

/// The answer read: accepted, or the outcome of a failure.
#[derive(Debug)]
pub enum Read {
    Accepted(Accepted),
    Failed(PurgeResponse),
}

/// Reads the answer (`status`, `headers`, body `text`) to `sent`.
pub fn read(sent: &Sent<'_>, status: u16, headers: &HeaderMap, text: &str) -> Read {
    let success = (200..300).contains(&status);
    if success {
        if let Ok(a) = serde_json::from_str::<Accepted>(text) {
            return Read::Accepted(a);
        }
    }
    let what = sent.what;
    let n = sent.objects.len();
    let wait = crate::purgers::retry_after(headers);
    let fail = |verdict, code: Option<String>, message: String, request_id| PurgeResponse {
        verdict,
        http_status: Some(status),
        request_id,
        task_id: None,
        error: Some(PurgeError::Answer { code, message }),
        failed: Vec::new(),
    };
    let Some(problem) = Problem::parse(text).filter(|_| !success) else {
        // Not Akamai's answer: a proxy's page, a cut-short body, a redirect. Retried
        // (bounded by max_attempts) with the start of what came back in the log.
        let message = if (300..400).contains(&status) {
            format!(
                "{what}: HTTP {status} redirect to {}: not followed (it would send the signed \
                 request elsewhere); check `endpoint`",
                redirect_target(headers)
            )
        } else {
            format!(
                "{what}: HTTP {status} without a Fast Purge answer (check `endpoint`): {:?}",
                snippet(text, 200)
            )
        };
        let after = if status == 429 {
            Some(classify::rate_limit_wait(
                headers,
                &Problem::default(),
                n,
                wait,
            ))
        } else {
            wait
        };
        return Read::Failed(fail(Verdict::RetryLater { after }, None, message, None));
    };
    let request_id = problem.support_id.clone().or(problem.request_id.clone());
    let title = problem.code(status);
    let mut message = format!("{what}: HTTP {status} {title}");
    if !problem.detail.is_empty() {
        message.push_str(&format!(": {}", snippet(&problem.detail, 300)));
    }
    if let Some(h) = classify::hint(status, &problem, sent.sources) {
        message.push_str(&format!(" ({h})"));
    }
    if !classify::is_per_target(status, &problem) {
        let verdict = classify::classify(status, &problem, n, headers, wait);
        return Read::Failed(fail(verdict, Some(title), message, request_id));
    }
    let texts: Vec<String> = sent.objects.iter().map(|o| o.text.clone()).collect();
    let Some(bad) = classify::named_object(&problem.detail, &texts).filter(|_| n > 1) else {
        // One object, or none named: split until the bad one is alone.
        let verdict = if n > 1 {
            Verdict::Split
        } else {
            Verdict::Fatal
        };
        return Read::Failed(fail(verdict, Some(title), message, request_id));
    };
    // Only the named object is refused; the others go again without it.
    let answer = |m: String| PurgeError::Answer {
        code: Some(title.clone()),
        message: m,
    };
    let mut failed: Vec<TargetFailure> = sent.objects[bad]
        .targets
        .iter()
        .map(|&index| TargetFailure {
            index,
            verdict: Verdict::Fatal,
            error: answer(message.clone()),
            group: 0,
        })
        .collect();
    // URLs on the refused URL's host are likely refused too (Akamai authorizes URLs by
    // hostname): they go again in a request of their own, so the others are not held back
    // (and their attempts not spent) while those are refused one by one.
    if let Some(host) = url_host(&sent.objects[bad].text) {
        let suspects = sent
            .objects
            .iter()
            .enumerate()
            .filter(|(i, o)| *i != bad && url_host(&o.text).as_deref() == Some(host.as_str()))
            .flat_map(|(_, o)| o.targets.iter().copied());
        for index in suspects {
            failed.push(TargetFailure {
                index,
                verdict: Verdict::RetryLater {
                    after: Some(Duration::ZERO),
                },
                error: answer(format!(
                    "{message}; sent again apart from URLs of other hosts"
                )),
                group: 2,
            });
        }
    }
    Read::Failed(PurgeResponse {
        failed,
        ..fail(
            Verdict::RetryLater {
                after: Some(Duration::ZERO),
            },
            Some(title.clone()),
            format!("{message}; the other objects are sent again without it"),
            request_id,
        )
    })
}

/// The host of a URL object (`None` for tags and CP codes).
fn url_host(text: &str) -> Option<String> {
    url::Url::parse(text)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;
    use reqwest::header::HeaderValue;

    fn sources() -> CredentialSources {
        CredentialSources {
            host: SecretSource::Env("H".into()),
            client_token: SecretSource::Env("CT".into()),
            client_secret: SecretSource::Env("CS".into()),
            access_token: SecretSource::Env("AT".into()),
        }
    }

    fn objects(texts: &[&str]) -> Vec<Planned> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Planned {
                json: format!("\"{t}\""),
                text: (*t).to_owned(),
                targets: vec![i],
            })
            .collect()
    }

    fn read_failed(texts: &[&str], status: u16, headers: &HeaderMap, body: &str) -> PurgeResponse {
        let objects = objects(texts);
        let src = sources();
        let sent = Sent {
            what: "POST http://127.0.0.1:9/ccu/v3/invalidate/url/production",
            objects: &objects,
            sources: &src,
        };
        match read(&sent, status, headers, body) {
            Read::Failed(r) => r,
            Read::Accepted(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn a_201_gives_the_purge_id_and_estimate() {
        let objects = objects(&["https://a.example/x"]);
        let src = sources();
        let sent = Sent {
            what: "POST x",
            objects: &objects,
            sources: &src,
        };
        let body = r#"{"httpStatus":201,"detail":"Request accepted","estimatedSeconds":5,
                       "purgeId":"edcp-1","supportId":"edcp-2"}"#;
        let Read::Accepted(a) = read(&sent, 201, &HeaderMap::new(), body) else {
            panic!("not accepted")
        };
        assert_eq!(
            a,
            Accepted {
                purge_id: "edcp-1".into(),
                estimated_seconds: Some(5),
                support_id: Some("edcp-2".into())
            }
        );
        // A 201 without Akamai's answer (a proxy's) is not taken as done.
        let Read::Failed(r) = read(&sent, 201, &HeaderMap::new(), "<html>ok</html>") else {
            panic!("accepted a proxy's page")
        };
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
    }

    #[test]
    fn a_refusal_naming_one_url_fails_it_and_sets_its_host_apart() {
        let body = r#"{"httpStatus":403,"title":"unauthorized arl",
                       "detail":"https://bad.example/2","supportId":"s-1"}"#;
        let r = read_failed(
            &[
                "https://good.example/1",
                "https://bad.example/2",
                "https://bad.example/3",
                "https://good.example/4",
            ],
            403,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(
            r.verdict,
            Verdict::RetryLater {
                after: Some(Duration::ZERO)
            }
        );
        assert_eq!(r.request_id.as_deref(), Some("s-1"));
        let got: Vec<(usize, &Verdict, u32)> = r
            .failed
            .iter()
            .map(|f| (f.index, &f.verdict, f.group))
            .collect();
        let later = Verdict::RetryLater {
            after: Some(Duration::ZERO),
        };
        assert_eq!(got, vec![(1, &Verdict::Fatal, 0), (2, &later, 2)]);
        let err = r.failed[0].error.to_string();
        assert!(
            err.contains("HTTP 403 unauthorized arl: https://bad.example/2")
                && err.contains("not one of this account's properties"),
            "{err}"
        );
    }

    #[test]
    fn a_refusal_naming_nothing_splits_and_a_single_object_dies() {
        let body = r#"{"httpStatus":400,"title":"bad URL","detail":"something odd"}"#;
        let two = read_failed(
            &["https://a.example/1", "https://a.example/2"],
            400,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(two.verdict, Verdict::Split);
        let one = read_failed(&["https://a.example/1"], 400, &HeaderMap::new(), body);
        assert_eq!(one.verdict, Verdict::Fatal);
        assert!(one.failed.is_empty());
    }

    #[test]
    fn proxy_pages_and_redirects_are_retried_with_what_came_back() {
        let r = read_failed(
            &["https://a.example/1"],
            502,
            &HeaderMap::new(),
            "<html>bad gateway</html>",
        );
        assert_eq!(r.verdict, Verdict::RetryLater { after: None });
        let err = r.error.unwrap().to_string();
        assert!(
            err.contains("HTTP 502") && err.contains("bad gateway"),
            "{err}"
        );
        let mut h = HeaderMap::new();
        h.insert(
            "location",
            HeaderValue::from_static("https://elsewhere.example/"),
        );
        let r = read_failed(&["https://a.example/1"], 302, &h, "");
        let err = r.error.unwrap().to_string();
        assert!(
            err.contains("not followed") && err.contains("elsewhere.example"),
            "{err}"
        );
        // A 429 without a problem body still waits Akamai's five seconds.
        let r = read_failed(
            &["https://a.example/1"],
            429,
            &HeaderMap::new(),
            "slow down",
        );
        assert_eq!(
            r.verdict,
            Verdict::RetryLater {
                after: Some(Duration::from_secs(5))
            }
        );
    }

    #[test]
    fn gateway_refusals_are_fatal_with_the_hint() {
        let body = r#"{"type":"https://problems.luna.akamaiapis.net/-/pep-authn/deny",
                       "title":"Not authorized","status":401,
                       "detail":"The signature does not match","requestId":"r-9"}"#;
        let r = read_failed(
            &["https://a.example/1", "https://a.example/2"],
            401,
            &HeaderMap::new(),
            body,
        );
        assert_eq!(r.verdict, Verdict::Fatal);
        assert_eq!(r.request_id.as_deref(), Some("r-9"));
        let err = r.error.unwrap().to_string();
        assert!(
            err.contains("HTTP 401 Not authorized: The signature does not match")
                && err.contains("client_secret (read from environment variable CS)"),
            "{err}"
        );
    }
}
