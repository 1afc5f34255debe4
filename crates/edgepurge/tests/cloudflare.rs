//! The real binary against a loopback Cloudflare API stand-in that checks the bearer token,
//! the zone, the body (one purge mode, item forms, items per request) and the per-plan token
//! buckets, and answers with Cloudflare's envelope and error bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::cloudflare::{FakeCloudflare, Options, API_TOKEN, READ_ONLY_TOKEN, ZONE_ID};
use serde_json::{json, Value};
use std::time::Duration;

fn fake() -> FakeCloudflare {
    FakeCloudflare::start(Options::default())
}

/// A config with a Cloudflare provider `cf` pointing at `fake`, fast retries, and `rules`.
fn config(fake: &FakeCloudflare, provider_extra: &str, rules: &str) -> String {
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

[providers.cf]
kind = "cloudflare"
zone_id = "{ZONE_ID}"
endpoint = "{endpoint}"
api_token_env = "EP_TEST_CF_TOKEN"
timeout_s = 5
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env
        .push(("EP_TEST_CF_TOKEN".to_owned(), API_TOKEN.to_owned()));
    ep
}

fn set_token(ep: &mut Edgepurge, token: &str) {
    for (k, v) in &mut ep.env {
        if k == "EP_TEST_CF_TOKEN" {
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
provider = "cf"
"#;

const DIR_RULE: &str = r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
mode = "dir"
allow_host_purge = true
"#;

const TAG_RULE: &str = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#;

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Checks one accepted request: the path, the headers, and a body holding `mode` only.
fn check_request(r: &Value, action: &str, mode: &str) {
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], format!("/client/v4/zones/{ZONE_ID}/{action}"));
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert_eq!(
        r["headers"]["authorization"], "***",
        "sent (masked by the stand-in)"
    );
    assert!(
        r["headers"]["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("edgepurge/"),
        "{r}"
    );
    let body = r["json"].as_object().unwrap();
    assert_eq!(body.keys().collect::<Vec<_>>(), vec![mode], "{r}");
    // The exact bytes: compact JSON, the items in the order of the body.
    assert_eq!(r["body"], json!({ mode: body[mode] }).to_string());
}

#[test]
fn url_rules_purge_full_urls_as_files_in_one_request() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    let keys: Vec<String> = ["img/猫 cat+1.jpg", "100%.png", "a b+c.css"]
        .map(String::from)
        .to_vec();
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    assert_eq!(answer["targets"], 6, "two domains per key");
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 3);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    let r = &reqs[0];
    check_request(r, "purge_cache", "files");
    assert_eq!(
        sorted(&r["json"]["files"]),
        vec![
            "https://cdn.example.com/100%25.png",
            "https://cdn.example.com/a%20b+c.css",
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://www.example.com/100%25.png",
            "https://www.example.com/a%20b+c.css",
            "https://www.example.com/img/%E7%8C%AB%20cat+1.jpg",
        ]
    );
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["attempts"], 1);
        assert_eq!(rec["task_id"], r["purge_id"], "the purge's result.id");
        assert_eq!(rec["request_id"], r["ray"], "the cf-ray header");
    }
    assert_eq!(fake.purges()[0]["action"], "purge_cache");
}

#[test]
fn dir_rules_purge_prefixes_without_scheme() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", DIR_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "docs/a/x.html".into(),
            "docs/a/y.html".into(),
            "docs/b.html".into(),
            "top.html".into(),
            "猫/z.png".into(),
        ],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    check_request(&reqs[0], "purge_cache", "prefixes");
    assert_eq!(
        sorted(&reqs[0]["json"]["prefixes"]),
        vec![
            "cdn.example.com",
            "cdn.example.com/%E7%8C%AB/",
            "cdn.example.com/docs/",
            "cdn.example.com/docs/a/",
        ]
    );
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
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    check_request(&reqs[0], "purge_cache", "tags");
    assert_eq!(
        sorted(&reqs[0]["json"]["tags"]),
        vec!["product-42", "product-a%20b", "products"]
    );
}

#[test]
fn soft_purge_sends_the_same_body_to_invalidate_cache() {
    let fake = fake();
    let ep = edgepurge(&config(
        &fake,
        "soft = true",
        &format!(
            "{SITE_RULE}\n{}",
            TAG_RULE.replace("\"tags\"\nbucket", "\"t\"\nbucket")
        ),
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["products/s.css".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let mut reqs = fake.requests();
    reqs.sort_by_key(|r| r["mode"].as_str().unwrap().to_owned());
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    check_request(&reqs[0], "invalidate_cache", "files");
    assert_eq!(
        sorted(&reqs[0]["json"]["files"]),
        vec![
            "https://cdn.example.com/products/s.css",
            "https://www.example.com/products/s.css"
        ]
    );
    check_request(&reqs[1], "invalidate_cache", "tags");
    assert_eq!(
        sorted(&reqs[1]["json"]["tags"]),
        vec!["product-s", "products"]
    );
    assert!(fake
        .purges()
        .iter()
        .all(|p| p["action"] == "invalidate_cache"));
}

#[test]
fn batches_split_at_the_per_request_maximum() {
    // The stand-in is a Pro zone (100 files per request); edgepurge is told 60 per request.
    let fake = FakeCloudflare::start(Options {
        plan: Some("pro".into()),
        ..Default::default()
    });
    let ep = edgepurge(
        &config(
            &fake,
            "plan = \"pro\"\nurls_per_request = 60\ntags_per_request = 100\n\
             tag_prefix_per_minute = 120",
            &format!(
                "{}\n{}",
                SITE_RULE.replace(", \"https://www.example.com\"", ""),
                TAG_RULE.replace("\"{seg1}\", ", "")
            ),
        )
        .replace("linger_ms = 100", "linger_ms = 1000"),
    );
    let server = ep.serve();
    let keys: Vec<String> = (0..150).map(|i| format!("p/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = fake.requests();
    assert!(reqs.iter().all(|r| r["status"] == 200), "{reqs:#?}");
    let mut files: Vec<usize> = reqs
        .iter()
        .filter(|r| r["mode"] == "files")
        .map(|r| r["items"].as_array().unwrap().len())
        .collect();
    files.sort_unstable();
    assert_eq!(files, vec![30, 60, 60], "150 URLs at 60 per request");
    let mut tags: Vec<usize> = reqs
        .iter()
        .filter(|r| r["mode"] == "tags")
        .map(|r| r["items"].as_array().unwrap().len())
        .collect();
    tags.sort_unstable();
    assert_eq!(
        tags,
        vec![50, 100],
        "150 tags at Cloudflare's 100 per request"
    );
}

#[test]
fn too_many_items_for_the_zone_are_split_until_accepted() {
    // Told Enterprise (500 URLs per request) while the zone is on Free (100): Cloudflare
    // answers 400 "more than 100", and the batch is halved until it fits.
    let fake = fake();
    let ep = edgepurge(
        &config(
            &fake,
            "plan = \"enterprise\"\nurls_per_request = 500",
            &SITE_RULE.replace(", \"https://www.example.com\"", ""),
        )
        .replace("linger_ms = 100", "linger_ms = 1000"),
    );
    let server = ep.serve();
    let keys: Vec<String> = (0..300).map(|i| format!("s/{i}.js")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log.len(), 300);
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let reqs = fake.requests();
    let refused: Vec<&Value> = reqs.iter().filter(|r| r["status"] == 400).collect();
    assert!(!refused.is_empty() && refused.iter().all(|r| r["error_codes"] == json!([1134])));
    let purged: usize = fake
        .purges()
        .iter()
        .map(|p| p["items"].as_array().unwrap().len())
        .sum();
    assert_eq!(purged, 300, "each URL purged once");
    assert!(fake
        .purges()
        .iter()
        .all(|p| p["items"].as_array().unwrap().len() <= 100));
    let requests = ep.ok(&["log", "--requests", "--json"]);
    assert!(requests.contains("more than 100 files"), "{requests}");
}

#[test]
fn throttling_is_retried_no_sooner_than_retry_after() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail(
        429,
        971,
        "Please wait and consider throttling your request speed",
        1,
        Some(2),
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 2);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["status"], 429);
    assert_eq!(reqs[1]["status"], 200);
    let gap = reqs[1]["time"].as_f64().unwrap() - reqs[0]["time"].as_f64().unwrap();
    assert!(gap >= 1.9, "sent again after {gap} s; Retry-After said 2");
    let requests = ep.ok(&["log", "--requests", "--json"]);
    assert!(
        requests.contains("971 Please wait and consider throttling your request speed")
            && requests.contains("Retry-After 2 s"),
        "{requests}"
    );
}

#[test]
fn a_refused_token_is_dead_at_once_with_what_to_fix() {
    for (token, status, fix) in [
        (
            "not-a-token-we-know-0123456789",
            401,
            "Cloudflare does not accept the API token from environment variable \
             EP_TEST_CF_TOKEN",
        ),
        (
            READ_ONLY_TOKEN,
            403,
            "give it the permission Zone → Cache Purge → Purge",
        ),
    ] {
        let fake = fake();
        let mut ep = edgepurge(&config(&fake, "", SITE_RULE));
        set_token(&mut ep, token);
        let (server, log_path) = serve_logged(&ep);
        server.send(&ceph_body("assets", "ObjectCreated:Put", &["c.css".into()]));
        let log = ep.settle(Duration::from_secs(20));
        assert_eq!(log[0]["status"], "dead", "{}", log[0]);
        assert_eq!(log[0]["attempts"], 1, "not retried");
        let err = log[0]["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("HTTP {status}: 10000 Authentication error"))
                && err.contains(fix),
            "{err}"
        );
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0]["status"], status);
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
    }
}

#[test]
fn an_unknown_zone_is_a_clear_fatal_error() {
    let fake = fake();
    let other = "ffffffffffffffffffffffffffffffff";
    let ep = edgepurge(&config(&fake, "", SITE_RULE).replace(ZONE_ID, other));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["n.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1);
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 404: 7003 Could not route")
            && err.contains(&format!("check zone_id: Cloudflare has no zone {other}")),
        "{err}"
    );
}

#[test]
fn a_prefix_cloudflare_cannot_take_is_refused_alone() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", DIR_RULE));
    let server = ep.serve();
    // 31 folders: cdn.example.com/f0/…/f30/ has 32 path separators.
    let deep: String = (0..31).map(|i| format!("f{i}/")).collect::<String>() + "x.png";
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[deep.clone(), "ok/a.png".into(), "fine/b.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    let rec = |key: &str| log.iter().find(|r| r["key"] == key).unwrap().clone();
    let bad = rec(&deep);
    assert_eq!(bad["status"], "dead", "{bad}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("has 32 path separators; Cloudflare takes at most 31"),
        "{err}"
    );
    assert_eq!(rec("ok/a.png")["status"], "succeeded");
    assert_eq!(rec("fine/b.png")["status"], "succeeded");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "the others in one request: {reqs:#?}");
    assert_eq!(
        sorted(&reqs[0]["json"]["prefixes"]),
        vec!["cdn.example.com/fine/", "cdn.example.com/ok/"]
    );
}

#[test]
fn the_tag_and_prefix_rate_is_never_exceeded_and_urls_do_not_wait() {
    // A bucket of one request, refilled once a second: any two tag or prefix requests less
    // than a second apart get 429. edgepurge is set a little under it (50 a minute), as an
    // operator would leave room for the dashboard.
    let fake = FakeCloudflare::start(Options {
        plan: Some("pro".into()),
        bulk_per_minute: Some(60.0),
        bulk_bucket: Some(1.0),
        ..Default::default()
    });
    let ep = edgepurge(&config(
        &fake,
        "plan = \"pro\"\ntag_prefix_per_minute = 50\ntags_per_request = 1\n\
         prefixes_per_request = 1\nconcurrency = 4\nrate_per_s = 10",
        &format!(
            "{SITE_RULE}\n{}\n{}",
            TAG_RULE.replace("mode = \"tag\"", "mode = \"tag\"\nprefix = \"p/\""),
            DIR_RULE.replace("mode = \"dir\"", "mode = \"dir\"\nprefix = \"d/\"")
        ),
    ));
    let server = ep.serve();
    // 3 tags (p, product-x, product-y) and 2 prefixes: 5 requests from one bucket; URL
    // requests beside them.
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "p/x.png".into(),
            "p/y.png".into(),
            "d/1/y.png".into(),
            "d/2/z.png".into(),
        ],
    ));
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        server.send(&ceph_body(
            "assets",
            "ObjectCreated:Put",
            &[format!("u{i}.css")],
        ));
    }
    let log = ep.settle(Duration::from_secs(40));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let reqs = fake.requests();
    assert!(
        reqs.iter()
            .all(|r| r["throttled"] == false && r["status"] == 200),
        "{reqs:#?}"
    );
    let times = |modes: &[&str]| -> Vec<f64> {
        reqs.iter()
            .filter(|r| modes.contains(&r["mode"].as_str().unwrap()))
            .map(|r| r["time"].as_f64().unwrap())
            .collect()
    };
    let bulk = times(&["tags", "prefixes"]);
    assert_eq!(bulk.len(), 5, "{reqs:#?}");
    for w in bulk.windows(2) {
        assert!(w[1] - w[0] >= 1.0, "tag/prefix requests {bulk:?}");
    }
    // URL purges went meanwhile, not after the tags and prefixes.
    let files = times(&["files"]);
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|t| *t < bulk[4]),
        "files at {files:?}, tags/prefixes at {bulk:?}"
    );
}

#[test]
fn answers_that_are_not_cloudflares_are_retried() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    // A proxy page that echoes the request's headers, token included.
    fake.answer_raw(
        502,
        "text/html",
        &format!("<html><body>bad gateway; Authorization: Bearer {API_TOKEN}</body></html>"),
        1,
    );
    fake.answer_raw(200, "text/html", "<html>captive portal</html>", 1);
    fake.fail(500, 10001, "Internal error", 1, None);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 4);
    let requests = ep.ok(&["log", "--requests", "--json"]);
    for what in [
        "HTTP 502 Bad Gateway without a Cloudflare answer",
        "captive portal",
        "HTTP 500: 10001 Internal error",
        "Authorization: Bearer ***",
    ] {
        assert!(requests.contains(what), "{what} in {requests}");
    }
    assert!(
        !requests.contains(API_TOKEN),
        "the token leaked: {requests}"
    );
}

#[test]
fn simulate_and_config_check_need_no_cloudflare() {
    // Nothing is sent; the token defaults to CLOUDFLARE_API_TOKEN.
    let ep = Edgepurge::new(&format!(
        r#"
[providers.cf]
kind = "cloudflare"
zone_id = "{ZONE_ID}"

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
    let targets: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["target"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        targets,
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%201.png",
            "https://www.example.com/img/%E7%8C%AB%201.png"
        ]
    );
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("CLOUDFLARE_API_TOKEN is not set"),
        "{err}"
    );
    let mut ep = ep;
    ep.env
        .push(("CLOUDFLARE_API_TOKEN".to_owned(), API_TOKEN.to_owned()));
    ep.ok(&["config", "check"]);
}

#[test]
fn the_stand_in_passes_the_official_sdks_own_calls() {
    // The stand-in is checked against Cloudflare's Python SDK (`cache.purge`,
    // `cache.invalidate` with `base_url`): what the SDK sends is accepted, and its refusals
    // come out as the SDK's own error types with Cloudflare's codes.
    let out = edgepurge_testkit::run(
        "fake_cloudflare.py --self-check",
        std::process::Command::new(edgepurge_testkit::python()).args([
            edgepurge_testkit::repo_root()
                .join("testkit/fake_cloudflare.py")
                .to_str()
                .unwrap(),
            "--self-check",
        ]),
    );
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "files: purged id",
        "files with headers: purged",
        "prefixes: purged",
        "invalidate tags: invalidated",
        "wrong token: 401 10000",
        "token without Cache Purge: 403 10000",
        "unknown zone: 404 7003",
        "101 tags: 400 1134",
        "prefix of 32 separators: 400 1012",
        "tag bucket empty: 429 971",
        "self-check ok",
    ] {
        assert!(lines.contains(&want), "{want:?} in {out}");
    }
}
