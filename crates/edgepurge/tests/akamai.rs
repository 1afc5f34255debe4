//! The real binary against a loopback Akamai Fast Purge stand-in that recomputes every
//! EdgeGrid signature with the official `edgegrid-python`, checks the host, timestamp and
//! nonce like Akamai's API gateway, enforces the request shape, the 50,000-byte body, the
//! account's hosts and CP codes and the token buckets, and answers with Akamai's shapes.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::akamai::{
    Bucket, FakeAkamai, Options, ACCESS_TOKEN, CLIENT_SECRET, CLIENT_TOKEN, HOST,
};
use serde_json::{json, Value};
use std::time::Duration;

const SECRET_ENV: &str = "EP_TEST_AK_SECRET";

fn fake() -> FakeAkamai {
    FakeAkamai::start(Options::default())
}

/// A config with an Akamai provider `ak` pointing at `fake`, fast retries and `rules`.
/// Requests go out at up to 20 per second unless `provider_extra` says otherwise.
fn config(fake: &FakeAkamai, provider_extra: &str, rules: &str) -> String {
    // Tests send fast; the per-request maxima that would follow from that rate are raised.
    let rate = if provider_extra.contains("rate_per_s") {
        ""
    } else if provider_extra.contains("cpcodes") {
        "rate_per_s = 20"
    } else {
        "rate_per_s = 20\nmax_tags_per_request = 100"
    };
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
max_attempts = 8

[providers.ak]
kind = "akamai"
endpoint = "{endpoint}"
host_env = "EP_TEST_AK_HOST"
client_token_env = "EP_TEST_AK_CLIENT_TOKEN"
client_secret_env = "{SECRET_ENV}"
access_token_env = "EP_TEST_AK_ACCESS_TOKEN"
timeout_s = 5
{rate}
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env.extend([
        ("EP_TEST_AK_HOST".to_owned(), HOST.to_owned()),
        (
            "EP_TEST_AK_CLIENT_TOKEN".to_owned(),
            CLIENT_TOKEN.to_owned(),
        ),
        (SECRET_ENV.to_owned(), CLIENT_SECRET.to_owned()),
        (
            "EP_TEST_AK_ACCESS_TOKEN".to_owned(),
            ACCESS_TOKEN.to_owned(),
        ),
    ]);
    ep
}

fn set_env(ep: &mut Edgepurge, key: &str, value: &str) {
    for (k, v) in &mut ep.env {
        if k == key {
            *v = value.to_owned();
        }
    }
}

/// Starts the server with its log in `serve.log` of its directory.
fn serve_logged(ep: &Edgepurge) -> (Server, std::path::PathBuf) {
    let log = ep.dir.path().join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    (ep.serve_with_stderr(std::process::Stdio::from(file)), log)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        CLIENT_SECRET,
        CLIENT_TOKEN,
        ACCESS_TOKEN,
        HOST,
        "wrong-client-secret",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into {what}:\n{text}"
        );
    }
}

const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "ak"
"#;

const TAG_RULE: &str = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "ak"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#;

/// Purge calls that reached Fast Purge (not control calls).
fn calls(fake: &FakeAkamai) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/ccu/")))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned))
        .collect();
    out.sort();
    out
}

fn purged_sorted(fake: &FakeAkamai) -> Vec<String> {
    strings(&Value::Array(fake.purged()))
}

#[test]
fn url_rules_purge_the_full_urls_in_one_signed_request() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let (server, log_path) = serve_logged(&ep);
    let keys: Vec<String> = ["img/猫 cat+1.jpg", "100%.png", "a b+c.css", "deep/x~y.js"]
        .map(String::from)
        .to_vec();
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    assert_eq!(answer["targets"], 8, "two domains per key");

    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 4);
    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "{purges:#?}");
    let p = &purges[0];
    assert_eq!(
        (&p["action"], &p["type"], &p["network"]),
        (&json!("invalidate"), &json!("url"), &json!("production"))
    );
    assert_eq!(
        strings(&p["objects"]),
        vec![
            "https://cdn.example.com/100%25.png",
            "https://cdn.example.com/a%20b+c.css",
            "https://cdn.example.com/deep/x~y.js",
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://img.example.com/100%25.png",
            "https://img.example.com/a%20b+c.css",
            "https://img.example.com/deep/x~y.js",
            "https://img.example.com/img/%E7%8C%AB%20cat+1.jpg",
        ]
    );
    let reqs = calls(&fake);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["signature_ok"], true);
    assert_eq!(r["status"], 201);
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/ccu/v3/invalidate/url/production");
    assert_eq!(
        r["headers"]["host"], HOST,
        "the credential's host, not the endpoint's"
    );
    assert_eq!(r["headers"]["content-type"], "application/json");
    // The exact body: the objects in one array, nothing else.
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["objects"]
    );
    assert_eq!(
        r["body"].as_str().unwrap(),
        format!(
            r#"{{"objects":[{}]}}"#,
            body["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    );
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["attempts"], 1);
        assert_eq!(
            rec["task_id"], p["purge_id"],
            "the log's task id is the purgeId"
        );
        assert_eq!(
            rec["request_id"], r["support_id"],
            "the request id is the supportId"
        );
    }
    drop(server);
    let serve_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        serve_log.contains("Akamai accepted the purge")
            && serve_log.contains("estimated_seconds=5"),
        "estimatedSeconds is logged:\n{serve_log}"
    );
    assert!(serve_log.contains(p["purge_id"].as_str().unwrap()));
    assert_no_secret("the server log", &serve_log);
}

#[test]
fn tag_rules_purge_cache_tags() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", TAG_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["products/42.png".into(), "products/a b.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = calls(&fake);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/ccu/v3/invalidate/tag/production");
    assert_eq!(
        strings(&reqs[0]["objects"]),
        vec!["product-42", "product-a%20b", "products"]
    );
}

#[test]
fn cp_codes_are_purged_as_integers_and_only_the_listed_ones() {
    let fake = FakeAkamai::start(Options {
        cpcodes: vec![123456, 777],
        ..Options::default()
    });
    let ep = edgepurge(&config(
        &fake,
        "tags_are = \"cpcodes\"\ncpcodes = [123456]",
        r#"
[[rules]]
name = "whole-site"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "ak"
mode = "tag"
tags = ["123456"]

[[rules]]
name = "by-folder"
bucket = "assets"
events = ["created"]
prefix = "cp/"
domains = ["https://cdn.example.com"]
provider = "ak"
mode = "tag"
tags = ["{seg2}"]
"#,
    ));
    let server = ep.serve();
    // `cp/777/x`: a key that names another CP code of the account, not listed in cpcodes.
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["a.css".into(), "b.css".into(), "cp/777/x".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    let reqs = calls(&fake);
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0]["path"], "/ccu/v3/invalidate/cpcode/production");
    assert_eq!(
        reqs[0]["body"], r#"{"objects":[123456]}"#,
        "one CP code, as an integer"
    );
    let by_folder = log.iter().find(|r| r["rule"] == "by-folder").unwrap();
    assert_eq!(by_folder["status"], "dead");
    let err = by_folder["error"].as_str().unwrap();
    assert!(
        err.contains("CP code 777 is not in this account's `cpcodes`"),
        "{err}"
    );
    assert!(log
        .iter()
        .filter(|r| r["rule"] == "whole-site")
        .all(|r| r["status"] == "succeeded"));
}

#[test]
fn staging_and_delete_go_to_their_own_paths() {
    let fake = fake();
    let ep = edgepurge(&config(
        &fake,
        "network = \"staging\"\naction = \"delete\"",
        &format!("{SITE_RULE}\n{TAG_RULE}"),
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["s/x.css".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let mut paths: Vec<String> = calls(&fake)
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["/ccu/v3/delete/tag/staging", "/ccu/v3/delete/url/staging"]
    );
    assert!(fake
        .purges()
        .iter()
        .all(|p| p["network"] == "staging" && p["action"] == "delete"));
}

#[test]
fn batches_are_split_by_count() {
    let fake = fake();
    let ep = edgepurge(
        &config(&fake, "max_urls_per_request = 3", SITE_RULE)
            .replace(
                "domains = [\"https://cdn.example.com\", \"https://img.example.com\"]",
                "domains = [\"https://cdn.example.com\"]",
            )
            .replace("linger_ms = 100", "linger_ms = 500"),
    );
    let server = ep.serve();
    let keys: Vec<String> = (0..7).map(|i| format!("n/{i}.js")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let mut sizes: Vec<usize> = calls(&fake)
        .iter()
        .map(|r| r["objects"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 3, 3]);
    let want: Vec<String> = keys
        .iter()
        .map(|k| format!("https://cdn.example.com/{k}"))
        .collect();
    assert_eq!(purged_sorted(&fake), want, "each URL once");
}

#[test]
fn bodies_never_exceed_50_kb_and_a_413_splits() {
    let fake = fake();
    let ep = edgepurge(
        &config(&fake, "", SITE_RULE)
            .replace(
                "domains = [\"https://cdn.example.com\", \"https://img.example.com\"]",
                "domains = [\"https://cdn.example.com\"]",
            )
            .replace("linger_ms = 100", "linger_ms = 1000"),
    );
    let server = ep.serve();
    // 120 URLs of about 930 bytes: 110 KB in all, under the 400-URL count limit.
    let keys: Vec<String> = (0..120)
        .map(|i| format!("long/{i:03}-{}.bin", "x".repeat(900)))
        .collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(40));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = calls(&fake);
    assert!(
        reqs.len() >= 3,
        "110 KB need three requests at least: {}",
        reqs.len()
    );
    for r in &reqs {
        assert!(
            r["body_bytes"].as_u64().unwrap() <= 50_000,
            "{}",
            r["body_bytes"]
        );
        assert_eq!(r["status"], 201, "{}", r["title"]);
    }
    let want: Vec<String> = keys
        .iter()
        .map(|k| format!("https://cdn.example.com/{k}"))
        .collect();
    assert_eq!(purged_sorted(&fake), want, "every URL once, none lost");

    // Akamai's own 413 (whatever the reason) splits the batch too.
    fake.reset();
    fake.fail(413, "Request Entity Too Large", "too large", 1);
    let keys: Vec<String> = (0..4).map(|i| format!("small/{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let sizes: Vec<usize> = calls(&fake)
        .iter()
        .filter(|r| r["status"] == 201)
        .map(|r| r["objects"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2], "split in halves after the 413");
}

#[test]
fn a_429_waits_for_the_bucket_then_succeeds() {
    // A URL bucket of 5, refilled at one per second.
    let fake = FakeAkamai::start(Options {
        url_bucket: Some(Bucket {
            burst: 5.0,
            per_min: 60.0,
        }),
        ..Options::default()
    });
    let ep = edgepurge(
        &config(&fake, "max_urls_per_request = 5", SITE_RULE)
            .replace(
                "domains = [\"https://cdn.example.com\", \"https://img.example.com\"]",
                "domains = [\"https://cdn.example.com\"]",
            )
            .replace("linger_ms = 100", "linger_ms = 500"),
    );
    let server = ep.serve();
    let keys: Vec<String> = (0..10).map(|i| format!("r/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = calls(&fake);
    let refused: Vec<&Value> = reqs.iter().filter(|r| r["status"] == 429).collect();
    assert!(
        !refused.is_empty(),
        "the second batch met an empty bucket: {reqs:#?}"
    );
    assert_eq!(refused[0]["title"], "URL Rate Limit exceeded");
    // The next attempt of the refused objects came when the bucket could hold them again
    // (5 tokens at one per second), not at the 100 ms backoff.
    let first_refusal = refused[0]["time"].as_f64().unwrap();
    let retried = reqs
        .iter()
        .find(|r| r["status"] == 201 && r["objects"] == refused[0]["objects"])
        .unwrap();
    let waited = retried["time"].as_f64().unwrap() - first_refusal;
    assert!(waited >= 4.0, "retried after {waited:.2} s");
    assert_eq!(
        refused.len(),
        1,
        "one 429, then the wait the headers asked for"
    );
    let requests_log = ep.ok(&["log", "--requests", "--json"]);
    assert!(
        requests_log.contains("URL Rate Limit exceeded"),
        "{requests_log}"
    );
    assert_eq!(purged_sorted(&fake).len(), 10);
}

#[test]
fn the_default_pace_never_empties_akamais_buckets() {
    // Akamai's real refill rates, and buckets only as large as one default request: a
    // config with the default rate and per-request maxima must never be answered 429.
    let fake = FakeAkamai::start(Options {
        url_bucket: Some(Bucket {
            burst: 400.0,
            per_min: 12_000.0,
        }),
        tag_bucket: Some(Bucket {
            burst: 16.0,
            per_min: 500.0,
        }),
        ..Options::default()
    });
    let cfg = config(
        &fake,
        "# defaults: rate_per_s, max_urls_per_request and max_tags_per_request unset",
        &format!("{TAG_RULE}\n{SITE_RULE}"),
    );
    let ep = edgepurge(&cfg);
    let server = ep.serve();
    // 40 objects: 80 tags and 80 URLs, more than one request of each kind.
    let keys: Vec<String> = (0..40).map(|i| format!("p{i}/item{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(60));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = calls(&fake);
    assert!(reqs.iter().all(|r| r["status"] == 201), "{reqs:#?}");
    let tag_requests: Vec<&Value> = reqs.iter().filter(|r| r["type"] == "tag").collect();
    assert!(tag_requests.len() >= 5, "80 tags need 5 requests of 16");
    assert!(tag_requests
        .iter()
        .all(|r| r["objects"].as_array().unwrap().len() <= 16));
    assert_eq!(fake.purged().len(), 160);
}

#[test]
fn a_wrong_secret_is_dead_at_once_with_a_clear_error_and_no_secret_in_the_logs() {
    let fake = fake();
    let mut ep = edgepurge(&config(&fake, "", SITE_RULE));
    set_env(&mut ep, SECRET_ENV, "wrong-client-secret");
    let (server, log_path) = serve_logged(&ep);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["c.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1, "a refused signature is not retried");
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 401 Not authorized: The signature does not match")
            && err.contains(&format!(
                "check client_secret (read from environment variable {SECRET_ENV})"
            )),
        "{err}"
    );
    let reqs = calls(&fake);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (
            reqs[0]["status"].as_u64(),
            reqs[0]["signature_ok"].as_bool()
        ),
        (Some(401), Some(false))
    );
    assert!(fake.purges().is_empty());
    drop(server);
    let serve_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        serve_log.contains("The signature does not match"),
        "{serve_log}"
    );
    let everything =
        serve_log + &ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
    assert_no_secret("the logs", &everything);
}

#[test]
fn a_wrong_client_token_or_a_missing_grant_names_what_to_fix() {
    let fake = fake();
    let mut ep = edgepurge(&config(&fake, "", SITE_RULE));
    set_env(
        &mut ep,
        "EP_TEST_AK_CLIENT_TOKEN",
        "akab-some-other-client-token",
    );
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_u64()),
        (Some("dead"), Some(1))
    );
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("Invalid authorization client token")
            && err.contains(
                "check client_token (read from environment variable EP_TEST_AK_CLIENT_TOKEN)"
            ),
        "{err}"
    );
    drop(server);

    let no_grant = FakeAkamai::start(Options {
        no_grant: true,
        ..Options::default()
    });
    let ep = edgepurge(&config(&no_grant, "", SITE_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["g.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_u64()),
        (Some("dead"), Some(1))
    );
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 403 Forbidden")
            && err.contains("\"CCU APIs\"")
            && err.contains("READ-WRITE"),
        "{err}"
    );
}

#[test]
fn a_refused_url_dies_alone_and_the_others_are_purged() {
    // The account has cdn.example.com only; a second rule names a host it does not have.
    let fake = FakeAkamai::start(Options {
        hosts: vec!["cdn.example.com".into()],
        ..Options::default()
    });
    let rules = r#"
[[rules]]
name = "good"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "ak"

[[rules]]
name = "foreign"
bucket = "assets"
events = ["created"]
domains = ["https://not-ours.example.net"]
provider = "ak"
"#;
    let ep = edgepurge(&config(&fake, "", rules).replace("linger_ms = 100", "linger_ms = 500"));
    let server = ep.serve();
    let keys: Vec<String> = (0..3).map(|i| format!("k{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    for rec in &log {
        if rec["rule"] == "good" {
            assert_eq!(rec["status"], "succeeded", "{rec}");
            assert_eq!(
                rec["attempts"], 2,
                "sent again once, apart from the refused host's URLs: {rec}"
            );
        } else {
            assert_eq!(rec["status"], "dead", "{rec}");
            let err = rec["error"].as_str().unwrap();
            assert!(
                err.contains("HTTP 403 unauthorized arl: https://not-ours.example.net/k")
                    && err.contains("not one of this account's properties"),
                "{err}"
            );
        }
    }
    let want: Vec<String> = keys
        .iter()
        .map(|k| format!("https://cdn.example.com/{k}"))
        .collect();
    assert_eq!(purged_sorted(&fake), want, "every good URL purged, once");
    let first = &calls(&fake)[0];
    assert_eq!(
        first["objects"].as_array().unwrap().len(),
        6,
        "one request for both rules"
    );
    assert_eq!(first["status"], 403);
}

#[test]
fn server_errors_and_answers_that_are_not_akamais_are_retried() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail(507, "Insufficient Storage", "queue full", 1);
    fake.answer_raw(502, "text/html", "<html><body>bad gateway</body></html>", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 3);
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    for what in ["HTTP 507 Insufficient Storage", "HTTP 502", "bad gateway"] {
        assert!(reqs.contains(what), "{what} in {reqs}");
    }
    assert_eq!(fake.purges().len(), 1);
}

#[test]
fn config_check_refuses_a_dir_rule_and_names_missing_credentials() {
    let fake = fake();
    let dir_rule = r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "ak"
mode = "dir"
allow_host_purge = true
"#;
    let ep = edgepurge(&config(&fake, "", dir_rule));
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "provider \"ak\" (akamai) cannot purge with mode = \"dir\"; it purges url, tag"
        ),
        "{err}"
    );

    // The credentials default to Akamai's AKAMAI_* variables.
    let ep = edgepurge(&format!("[providers.ak]\nkind = \"akamai\"\n{SITE_RULE}"));
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AKAMAI_CLIENT_SECRET is not set"),
        "{err}"
    );
    let mut ep = ep;
    ep.env.extend([
        ("AKAMAI_HOST".to_owned(), HOST.to_owned()),
        ("AKAMAI_CLIENT_TOKEN".to_owned(), CLIENT_TOKEN.to_owned()),
        ("AKAMAI_CLIENT_SECRET".to_owned(), CLIENT_SECRET.to_owned()),
        ("AKAMAI_ACCESS_TOKEN".to_owned(), ACCESS_TOKEN.to_owned()),
    ]);
    let out = ep.ok(&["config", "check"]);
    assert_no_secret("config check", &out);
}

#[test]
fn the_stand_in_accepts_edgegrid_pythons_own_signatures_and_refuses_replays() {
    // The stand-in checks signatures with edgegrid-python; this checks it against requests
    // signed by that package's own signer too, so a bug shared by edgepurge's signer and the
    // check would show, and that it refuses what Akamai's gateway refuses.
    let fake = fake();
    let script = r#"
import sys, time, requests
from akamai.edgegrid.edgegrid import EdgeGridAuthHeaders, eg_timestamp, new_nonce
endpoint, host, ct, cs, at = sys.argv[1:6]
path = "/ccu/v3/invalidate/url/production"
body = b'{"objects":["https://cdn.example.com/py.css"]}'
def auth(secret, timestamp=None, nonce=None):
    req = requests.Request("POST", f"https://{host}{path}", data=body,
                           headers={"Content-Type": "application/json"}).prepare()
    return EdgeGridAuthHeaders(ct, secret, at).make_auth_header(
        req, timestamp or eg_timestamp(), nonce or new_nonce())
def send(authorization):
    r = requests.post(endpoint + path, data=body, headers={
        "Host": host, "Content-Type": "application/json", "Authorization": authorization})
    doc = r.json()
    return f"{r.status_code} {doc.get('detail') or doc.get('title')}"
good = auth(cs)
print("official", send(good))
print("replayed", send(good))
print("wrong-secret", send(auth("not-the-secret")))
stale = time.strftime("%Y%m%dT%H:%M:%S+0000", time.gmtime(time.time() - 600))
print("stale", send(auth(cs, timestamp=stale)))
"#;
    let out = edgepurge_testkit::run(
        "edgegrid-python against the stand-in",
        std::process::Command::new(edgepurge_testkit::python()).args([
            "-c",
            script,
            &fake.endpoint(),
            HOST,
            CLIENT_TOKEN,
            CLIENT_SECRET,
            ACCESS_TOKEN,
        ]),
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "official 201 Request accepted",
            "replayed 401 Nonce already used",
            "wrong-secret 401 The signature does not match",
            "stale 400 Invalid timestamp",
        ]
    );
    assert_eq!(fake.purges().len(), 1);
}

#[test]
fn a_purge_completes_once_akamais_estimate_has_passed() {
    // Fast Purge has no status to poll: its 201 says how long the purge takes
    // (estimatedSeconds). The log shows the purge complete once that time has passed since
    // Akamai's answer, without asking Akamai anything more.
    let fake = FakeAkamai::start(Options {
        estimated_seconds: Some(3),
        ..Options::default()
    });
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let (server, log_path) = serve_logged(&ep);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["e.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    let reqs = calls(&fake);
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    let answered_ms = (reqs[0]["time"].as_f64().unwrap() * 1000.0) as i64;
    assert!(
        log[0]["completed_at"].is_null(),
        "accepted is not complete: {}",
        log[0]
    );
    let rec = edgepurge_testkit::wait_for(Duration::from_secs(15), "the purge to complete", || {
        ep.log(&[])
            .into_iter()
            .find(|r| ms(&r["completed_at"]).is_some())
    });
    let completed = ms(&rec["completed_at"]).unwrap();
    let after = completed - answered_ms;
    assert!(
        (2_950..8_000).contains(&after),
        "completed {after} ms after Akamai's answer; it estimated 3 s"
    );
    assert_eq!(rec["task_id"], reqs[0]["purge_id"]);
    assert!(rec["error"].is_null(), "{rec}");
    let text = ep.ok(&["log"]);
    assert_eq!(text.matches(" completed=").count(), 1, "{text}");
    // Nothing but the purge itself went to Akamai.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(calls(&fake).len(), 1);
    drop(server);
    let serve_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(serve_log.contains("purge completed"), "{serve_log}");
}
