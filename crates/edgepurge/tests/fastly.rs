//! The real binary against a loopback Fastly purge API stand-in that checks the `Fastly-Key`
//! token and its scope, the service id, the cached URL's shape and the surrogate keys
//! (printable ASCII, 1,024 bytes, 256 per batch), and answers with Fastly's bodies, error
//! shapes and rate-limit headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::fastly::{FakeFastly, API_TOKEN, READ_ONLY_TOKEN, SERVICE_ID};
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN_ENV: &str = "EP_TEST_FASTLY_TOKEN";

/// A config with a Fastly provider `fy` pointing at `fake`, fast retries, and `rules`.
fn config(fake: &FakeFastly, provider_extra: &str, rules: &str) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"

[store]
path = "edgepurge.db"

[dispatch]
linger_ms = 100
backoff_base_ms = 100
backoff_max_ms = 500
lane_lease_s = 2
poll_ms = 100
max_attempts = 5

[providers.fy]
kind = "fastly"
service_id = "{SERVICE_ID}"
endpoint = "{endpoint}"
api_token_env = "{TOKEN_ENV}"
timeout_s = 5
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env.push((TOKEN_ENV.to_owned(), API_TOKEN.to_owned()));
    ep
}

fn set_token(ep: &mut Edgepurge, token: &str) {
    for (k, v) in &mut ep.env {
        if k == TOKEN_ENV {
            *v = token.to_owned();
        }
    }
}

/// Serves with the server's log in a file; returns the server and the file's path.
fn serve_logged(ep: &Edgepurge) -> (Server, std::path::PathBuf) {
    let path = ep.dir.path().join("serve.log");
    let file = std::fs::File::create(&path).unwrap();
    (ep.serve_with_stderr(std::process::Stdio::from(file)), path)
}

const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com", "https://www.example.com"]
provider = "fy"
"#;

const TAG_RULE: &str = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "fy"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#;

fn sorted(v: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut out: Vec<String> = v
        .into_iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Checks what every accepted request carries: the token header, JSON accepted, our agent.
fn check_headers(r: &Value, soft: bool) {
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["method"], "POST");
    assert_eq!(
        r["headers"]["fastly-key"], "***",
        "sent (masked by the stand-in)"
    );
    assert_eq!(r["headers"]["accept"], "application/json");
    assert!(
        r["headers"]["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("edgepurge/"),
        "{r}"
    );
    assert_eq!(r["soft"], soft, "{r}");
    if soft {
        assert_eq!(r["headers"]["fastly-soft-purge"], "1", "{r}");
    }
}

#[test]
fn url_rules_purge_each_url_with_a_request_of_its_own() {
    let fake = FakeFastly::start();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    let keys: Vec<String> = ["img/猫 cat+1.jpg", "100%.png"].map(String::from).to_vec();
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    assert_eq!(answer["targets"], 4, "two domains per key");
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4, "one request per URL: {reqs:#?}");
    for r in &reqs {
        check_headers(r, false);
        assert_eq!(r["kind"], "url");
        assert_eq!(r["body"], "", "a URL purge has no body");
    }
    assert_eq!(
        sorted(reqs.iter().map(|r| r["path"].clone())),
        vec![
            "/purge/cdn.example.com/100%25.png",
            "/purge/cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "/purge/www.example.com/100%25.png",
            "/purge/www.example.com/img/%E7%8C%AB%20cat+1.jpg",
        ]
    );
    // Each record shows the purge ids of its URLs' requests.
    let ids: Vec<String> = reqs
        .iter()
        .map(|r| r["purge_ids"][0].as_str().unwrap().to_owned())
        .collect();
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["attempts"], 1);
        let task = rec["task_id"].as_str().unwrap();
        assert!(ids.iter().any(|id| task.contains(id.as_str())), "{rec}");
        assert!(
            ms(&rec["completed_at"]).is_some(),
            "complete when answered: {rec}"
        );
    }
}

#[test]
fn tag_rules_purge_surrogate_keys_in_one_batch_request() {
    let fake = FakeFastly::start();
    let ep = edgepurge(&config(&fake, "", TAG_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "shoes/42.png".into(),
            "shoes/43.png".into(),
            "hats/猫.png".into(),
        ],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    let r = &reqs[0];
    check_headers(r, false);
    assert_eq!(r["path"], format!("/service/{SERVICE_ID}/purge"));
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert_eq!(r["keys_from"], "json");
    let keys = r["json"]["surrogate_keys"].as_array().unwrap().clone();
    // The exact bytes: compact JSON, one key each.
    assert_eq!(r["body"], json!({ "surrogate_keys": keys }).to_string());
    assert_eq!(
        sorted(keys),
        vec![
            "hats",
            "product-%E7%8C%AB",
            "product-42",
            "product-43",
            "shoes"
        ]
    );
    assert_eq!(fake.purges().len(), 5);
}

#[test]
fn soft_purges_send_fastly_soft_purge_for_urls_and_keys() {
    let fake = FakeFastly::start();
    let rules = format!("{SITE_RULE}\n{TAG_RULE}");
    let ep = edgepurge(&config(&fake, "soft = true", &rules));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["a/b.css".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "two URLs and one batch of keys: {reqs:#?}");
    for r in &reqs {
        check_headers(r, true);
    }
    assert_eq!(reqs.iter().filter(|r| r["kind"] == "keys").count(), 1);
    assert!(fake.purges().iter().all(|p| p["soft"] == true));
}

#[test]
fn throttling_waits_until_the_rate_limit_resets() {
    let fake = FakeFastly::start();
    let ep = edgepurge(&config(
        &fake,
        "",
        SITE_RULE
            .replace(", \"https://www.example.com\"", "")
            .as_str(),
    ));
    let server = ep.serve();
    fake.fail(429, "Too many requests", 1, Some(2.0));
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 2);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["status"], 429);
    assert_eq!(reqs[1]["status"], 200);
    // Sent again no sooner than the Unix second Fastly-RateLimit-Reset named.
    let reset = reqs[0]["reset"].as_f64().unwrap();
    let again = reqs[1]["time"].as_f64().unwrap();
    assert!(
        again >= reset - 0.05,
        "sent again at {again}, the rate limit reset at {reset}"
    );
    let requests = ep.ok(&["log", "--requests", "--json"]);
    assert!(
        requests.contains("HTTP 429: Too many requests")
            && requests.contains("rate limit resets in"),
        "{requests}"
    );
}

#[test]
fn server_errors_and_answers_that_are_not_fastlys_are_retried() {
    let fake = FakeFastly::start();
    let ep = edgepurge(&config(&fake, "", TAG_RULE));
    let server = ep.serve();
    fake.fail(503, "Service Unavailable", 1, None);
    fake.answer_raw(502, "text/html", "<html>bad gateway</html>", 1);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["x/y.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 3);
    let statuses: Vec<Value> = fake
        .requests()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(503), json!(502), json!(200)]);
    let requests = ep.ok(&["log", "--requests", "--json"]);
    for what in [
        "HTTP 503: Service Unavailable",
        "HTTP 502 without a Fastly answer (check `endpoint`)",
        "bad gateway",
    ] {
        assert!(requests.contains(what), "{what} in {requests}");
    }
}

#[test]
fn a_400_splits_the_batch_until_the_refused_key_is_alone() {
    let fake = FakeFastly::start();
    let rules = TAG_RULE.replace(
        r#"tags = ["{seg1}", "product-{stem}"]"#,
        r#"tags = ["{stem}"]"#,
    );
    let ep = edgepurge(&config(&fake, "", &rules));
    let server = ep.serve();
    // The batch of both keys is refused, then the first key alone.
    fake.fail(400, "Bad request", 2, None);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["a/one.png".into(), "a/two.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(
        reqs[0]["json"]["surrogate_keys"].as_array().unwrap().len(),
        2
    );
    let refused = reqs[1]["json"]["surrogate_keys"][0].as_str().unwrap();
    let purged = reqs[2]["json"]["surrogate_keys"][0].as_str().unwrap();
    assert_eq!(
        (reqs[1]["status"].clone(), reqs[2]["status"].clone()),
        (json!(400), json!(200))
    );
    assert_ne!(refused, purged);
    for rec in &log {
        let stem = rec["key"]
            .as_str()
            .unwrap()
            .trim_start_matches("a/")
            .trim_end_matches(".png");
        if stem == refused {
            assert_eq!(rec["status"], "dead", "{rec}");
            let err = rec["error"].as_str().unwrap();
            assert!(
                err.contains(&format!("Fastly refused {refused:?}"))
                    && err.contains("HTTP 400: Bad request"),
                "{err}"
            );
        } else {
            assert_eq!(rec["status"], "succeeded", "{rec}");
        }
    }
}

#[test]
fn a_refused_token_is_dead_at_once_with_what_to_fix_and_nothing_is_lost() {
    for (token, status, msg, fix) in [
        (
            "not-a-token-fastly-knows-0123456789",
            401,
            "Provided credentials are missing or invalid",
            "Fastly does not accept the API token from environment variable \
             EP_TEST_FASTLY_TOKEN",
        ),
        (
            READ_ONLY_TOKEN,
            403,
            "Forbidden",
            "give it the scope purge_select",
        ),
    ] {
        let fake = FakeFastly::start();
        let mut ep = edgepurge(&config(&fake, "", TAG_RULE));
        set_token(&mut ep, token);
        let (server, log_path) = serve_logged(&ep);
        server.send(&ceph_body(
            "assets",
            "ObjectCreated:Put",
            &["c/d.css".into()],
        ));
        let log = ep.settle(Duration::from_secs(20));
        assert_eq!(log[0]["status"], "dead", "{}", log[0]);
        assert_eq!(log[0]["attempts"], 1, "not retried");
        let err = log[0]["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("HTTP {status}: {msg}")) && err.contains(fix),
            "{err}"
        );
        assert_eq!(fake.requests().len(), 1);
        assert!(fake.purges().is_empty());
        drop(server);
        // The server's own log says it too, and no log holds a token.
        let served = std::fs::read_to_string(&log_path).unwrap();
        assert!(served.contains(fix), "{served}");
        let everything =
            served + &ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
        for secret in [token, API_TOKEN] {
            assert!(!everything.contains(secret), "{secret} leaked");
        }
        if status == 401 {
            // Nothing is lost: with the token fixed, the dead purge is sent again.
            set_token(&mut ep, API_TOKEN);
            let _server = ep.serve();
            let out = ep.ok(&["retry", "--json"]);
            assert_eq!(out.trim(), r#"{"requeued":1}"#);
            let log = ep.settle(Duration::from_secs(20));
            assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
            let keys: Vec<Value> = fake.purges().iter().map(|p| p["key"].clone()).collect();
            assert_eq!(sorted(keys), vec!["c", "product-d"]);
        }
    }
}

#[test]
fn an_unknown_service_is_a_clear_fatal_error() {
    let fake = FakeFastly::start();
    let other = "NoSuchService000000000";
    let ep = edgepurge(&config(&fake, "", TAG_RULE).replace(SERVICE_ID, other));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["n/o.css".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1);
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 404: Record not found (Cannot find 'service')")
            && err.contains(&format!("check service_id: Fastly has no service {other}")),
        "{err}"
    );
}

#[test]
fn a_surrogate_key_fastly_cannot_index_is_refused_alone() {
    let fake = FakeFastly::start();
    let rules = r#"
[[rules]]
name = "whole-keys"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "fy"
mode = "tag"
tags = ["{key}"]
"#;
    let ep = edgepurge(&config(&fake, "", rules));
    let server = ep.serve();
    // 300 CJK characters: a valid S3 key (900 bytes), a 2,700-byte key once encoded.
    let long = format!("{}.png", "猫".repeat(300));
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["ok.png".into(), long.clone()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    let by_key = |k: &str| log.iter().find(|r| r["key"] == k).unwrap();
    assert_eq!(by_key("ok.png")["status"], "succeeded", "{log:#?}");
    let bad = by_key(&long);
    assert_eq!(bad["status"], "dead", "{bad}");
    assert_eq!(bad["attempts"], 1, "refused before any request: {bad}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("bytes long") && err.contains("at most 1024 bytes"),
        "{err}"
    );
    // Fastly never saw it: one request, with the good key only.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0]["json"]["surrogate_keys"], json!(["ok.png"]));
}

#[test]
fn dir_rules_are_refused_by_the_config_check() {
    let fake = FakeFastly::start();
    let rules = r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "fy"
mode = "dir"
prefix = "img/"
"#;
    let ep = edgepurge(&config(&fake, "", rules));
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("provider \"fy\" (fastly) cannot purge with mode = \"dir\"")
            && err.contains("url, tag"),
        "{err}"
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn config_check_and_simulate_need_no_fastly_and_name_a_missing_token() {
    // Nothing is sent; the token defaults to FASTLY_API_TOKEN.
    let ep = Edgepurge::new(&format!(
        r#"
[providers.fy]
kind = "fastly"
service_id = "{SERVICE_ID}"

{SITE_RULE}
"#
    ));
    let event = ep.dir.path().join("e.json");
    std::fs::write(
        &event,
        ceph_body("assets", "ObjectCreated:Put", &["img/猫 1.png".into()]),
    )
    .unwrap();
    let out = ep.ok(&["simulate", "--event", event.to_str().unwrap()]);
    let targets: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["target"].clone())
        .collect();
    assert_eq!(
        sorted(targets),
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%201.png",
            "https://www.example.com/img/%E7%8C%AB%201.png"
        ]
    );
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("FASTLY_API_TOKEN is not set"),
        "{err}"
    );
    let mut ep = ep;
    ep.env
        .push(("FASTLY_API_TOKEN".to_owned(), API_TOKEN.to_owned()));
    ep.ok(&["config", "check"]);
}

#[test]
fn the_stand_in_passes_the_official_sdks_own_calls() {
    // The stand-in is checked against Fastly's Python SDK (fastly-py `PurgeApi` with its
    // `host`): what the SDK sends is accepted and read back by its models, and its refusals
    // come out as the SDK's ApiException with Fastly's statuses and bodies.
    let out = edgepurge_testkit::run(
        "fake_fastly.py --self-check",
        std::process::Command::new(edgepurge_testkit::python()).args([
            edgepurge_testkit::repo_root()
                .join("testkit/fake_fastly.py")
                .to_str()
                .unwrap(),
            "--self-check",
        ]),
    );
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "url: purged id",
        "url soft: purged",
        "key: purged id",
        "keys (header): purged 3",
        "keys (json) soft: purged 2",
        "wrong token: 401 Provided credentials are missing or invalid",
        "token without purge_select: 403 Forbidden",
        "unknown service: 404 Record not found",
        "257 keys: 400 Bad request",
        "key of 1025 bytes: 400 Bad request",
        "throttled: 429 Too many requests",
        "self-check ok",
    ] {
        assert!(lines.contains(&want), "{want:?} in {out}");
    }
}
