//! The real binary against a loopback stand-in for Google's OAuth 2.0 token endpoint and the
//! Compute API's Cloud CDN invalidation: the service account's JWT assertion is verified with
//! Google's own `google-auth` (signature, audience, iat/exp, scope, account), every API call
//! needs a token the stand-in issued, bodies are checked like Compute checks a
//! `CacheInvalidationRule`, the rate limit is enforced, errors come in Google's shape, and
//! operations are `DONE` when the test says so.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::gcp::{FakeGcp, Options, GOOGLE_TOKEN_URI, PROJECT, URL_MAP};
use edgepurge_testkit::wait_for;
use serde_json::{json, Value};
use std::time::Duration;

/// The key file edgepurge reads, inside its own directory (copied from the stand-in's).
const KEY_FILE: &str = "gcp-key.json";

fn fake() -> FakeGcp {
    FakeGcp::start(Options::default())
}

/// A config with a Cloud CDN provider `gcp` pointing at `fake`, fast retries, fast task
/// checks and `rules`.
fn config(fake: &FakeGcp, provider_extra: &str, rules: &str) -> String {
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
task_check_ms = 200
max_attempts = 8

[providers.gcp]
kind = "gcp-cdn"
project = "{PROJECT}"
url_map = "{URL_MAP}"
credentials_file = "{KEY_FILE}"
token_uri = "{token_uri}"
endpoint = "{endpoint}"
timeout_s = 5
{provider_extra}

{rules}
"#,
        token_uri = fake.token_uri(),
        endpoint = fake.endpoint(),
    )
}

/// edgepurge with `key` (a file of the stand-in) as its key file, mode 600.
fn edgepurge(config: &str, key: &std::path::Path) -> Edgepurge {
    let ep = Edgepurge::new(config);
    put_key(&ep, key);
    ep
}

fn put_key(ep: &Edgepurge, key: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = ep.dir.path().join(KEY_FILE);
    std::fs::copy(key, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts the server with its log in `serve.log` of its directory.
fn serve_logged(ep: &Edgepurge) -> (Server, std::path::PathBuf) {
    let log = ep.dir.path().join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    (ep.serve_with_stderr(std::process::Stdio::from(file)), log)
}

/// The private key's PEM body lines and every access token issued: none may be logged.
fn assert_no_secret(fake: &FakeGcp, what: &str, text: &str) {
    let mut secrets: Vec<String> = Vec::new();
    for file in [fake.key_file(), fake.wrong_key_file()] {
        let key: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        secrets.extend(
            key["private_key"]
                .as_str()
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    for t in fake.tokens() {
        secrets.push(t["token"].as_str().unwrap().to_owned());
    }
    assert!(!fake.tokens().is_empty(), "tokens were issued");
    for r in fake.requests() {
        // The assertion itself (a signed grant, valid for an hour): its signature.
        if let Some(a) = r["body"]
            .as_str()
            .and_then(|b| b.split("assertion=").nth(1))
        {
            let signature = a.rsplit('.').next().unwrap();
            assert!(signature.len() > 300, "{a}");
            secrets.push(signature.chars().take(60).collect());
        }
    }
    for s in secrets {
        assert!(!text.contains(&s), "a secret leaked into {what}");
    }
}

const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "gcp"
"#;

const DIR_RULE: &str = r#"
[[rules]]
name = "docs"
bucket = "assets"
events = ["created"]
prefix = "docs/"
domains = ["https://cdn.example.com"]
provider = "gcp"
mode = "dir"
"#;

const TAG_RULE: &str = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
prefix = "products/"
domains = ["https://cdn.example.com"]
provider = "gcp"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#;

fn completed(log: &[Value]) -> usize {
    log.iter()
        .filter(|r| ms(&r["completed_at"]).is_some())
        .count()
}

fn rules_sent(fake: &FakeGcp) -> Vec<Value> {
    let mut v: Vec<Value> = fake
        .invalidations()
        .into_iter()
        .map(|mut i| {
            let o = i.as_object_mut().unwrap();
            o.remove("operation");
            o.remove("time");
            i
        })
        .collect();
    v.sort_by_key(|x| x.to_string());
    v
}

#[test]
fn url_dir_and_tag_rules_invalidate_and_complete_when_the_operation_is_done() {
    let fake = fake();
    let ep = edgepurge(
        &config(&fake, "", &format!("{SITE_RULE}\n{DIR_RULE}\n{TAG_RULE}")),
        &fake.key_file(),
    );
    let (server, log_path) = serve_logged(&ep);
    let keys: Vec<String> = ["img/猫 cat+1.jpg", "docs/a b/x.html", "products/42.png"]
        .map(String::from)
        .to_vec();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");

    // Every URL on its host, one call each; the directory with /*; the tags in one call.
    let mut want = vec![
        json!({"host": "cdn.example.com", "path": "/docs/a%20b/*"}),
        json!({"cacheTags": ["product-42", "products"]}),
    ];
    for host in ["cdn.example.com", "img.example.com"] {
        for key in [
            "img/%E7%8C%AB%20cat+1.jpg",
            "docs/a%20b/x.html",
            "products/42.png",
        ] {
            want.push(json!({"host": host, "path": format!("/{key}")}));
        }
    }
    want.sort_by_key(|x| x.to_string());
    let mut sent = rules_sent(&fake);
    // The tag rule's tags may go in either order.
    for r in &mut sent {
        if let Some(tags) = r.get_mut("cacheTags").and_then(Value::as_array_mut) {
            tags.sort_by_key(|t| t.to_string());
        }
    }
    sent.sort_by_key(|x| x.to_string());
    assert_eq!(sent, want);

    // One token, fetched with an assertion google-auth verified, used for every call.
    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    let t = &tokens[0];
    assert_eq!(
        (t["status"].as_u64(), t["signature_ok"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(t["claims"]["aud"], GOOGLE_TOKEN_URI);
    assert_eq!(
        t["claims"]["scope"],
        "https://www.googleapis.com/auth/compute"
    );
    assert_eq!(
        t["claims"]["iss"],
        format!("edgepurge-purger@{PROJECT}.iam.gserviceaccount.com")
    );
    assert_eq!(
        t["claims"]["exp"].as_i64().unwrap() - t["claims"]["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(t["jwt_header"]["alg"], "RS256");
    let calls = fake.api_calls();
    assert!(
        calls
            .iter()
            .filter(|c| c["method"] == "POST")
            .all(|c| c["status"] == 200
                && c["token_n"] == 1
                && c["headers"]["content-type"] == "application/json"),
        "{calls:#?}"
    );

    // Each record names its operation; none is complete while the operations run.
    let ops: Vec<String> = fake
        .invalidations()
        .iter()
        .map(|i| i["operation"].as_str().unwrap().to_owned())
        .collect();
    for r in &log {
        let task = r["task_id"].as_str().unwrap_or_default();
        assert!(
            task.split(',').all(|t| ops.iter().any(|o| o == t.trim())),
            "{r}"
        );
    }
    wait_for(
        Duration::from_secs(10),
        "globalOperations.get calls",
        || {
            fake.api_calls()
                .iter()
                .any(|c| c["method"] == "GET" && c["operation_status"] == "RUNNING")
                .then_some(())
        },
    );
    assert_eq!(completed(&ep.log(&[])), 0, "RUNNING is not complete");
    assert_eq!(fake.complete(None) as usize, ops.len());
    let log = wait_for(Duration::from_secs(15), "every record to complete", || {
        let log = ep.log(&[]);
        (completed(&log) == log.len()).then_some(log)
    });
    for r in &log {
        assert!(
            ms(&r["completed_at"]).is_some_and(|c| Some(c) >= ms(&r["time"])),
            "{r}"
        );
        assert!(r["error"].is_null(), "{r}");
    }
    drop(server);
    let serve_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        serve_log.contains("Cloud CDN accepted the invalidation"),
        "{serve_log}"
    );
    let everything =
        serve_log + &ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
    assert_no_secret(&fake, "the logs", &everything);
}

#[test]
fn a_failed_operation_fails_the_record_naming_googles_error() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE), &fake.key_file());
    // A key file every user can read is warned about (and still used).
    {
        use std::os::unix::fs::PermissionsExt;
        let key = ep.dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (server, log_path) = serve_logged(&ep);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    ep.settle(Duration::from_secs(20));
    let serve_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        serve_log.contains(&format!("{KEY_FILE} is readable by every user (mode 644)")),
        "{serve_log}"
    );
    fake.complete(Some((
        "INTERNAL_ERROR",
        "The invalidation could not be applied.",
    )));
    let log = wait_for(Duration::from_secs(15), "the failure in the log", || {
        let log = ep.log(&[]);
        log.iter()
            .all(|r| r["error"].as_str().is_some_and(|e| e.contains("failed")))
            .then_some(log)
    });
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("reports purge task operation-")
            && err.contains("INTERNAL_ERROR: The invalidation could not be applied."),
        "{err}"
    );
    assert_eq!(completed(&log), 0, "{log:#?}");
    assert_eq!(
        log[0]["status"], "succeeded",
        "the request itself was accepted"
    );
}

#[test]
fn an_expired_token_and_a_refused_one_are_fetched_again() {
    // Tokens live 4 s here: refreshed a quarter of their life early. Operations are done
    // at once, so the follower's calls end early and only purges need tokens.
    let fake = FakeGcp::start(Options {
        token_lifetime_s: Some(4),
        complete_after_s: Some(0.0),
        ..Options::default()
    });
    let ep = edgepurge(&config(&fake, "", SITE_RULE), &fake.key_file());
    let server = ep.serve();
    let send = |key: &str| {
        server.send(&ceph_body("assets", "ObjectCreated:Put", &[key.to_owned()]));
    };
    send("one.css");
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    assert_eq!(fake.token_requests().len(), 1);
    std::thread::sleep(Duration::from_millis(3200));
    send("two.css");
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 2, "a new token before the old one expired");
    assert!(
        fake.api_calls().iter().all(|c| c["status"] == 200),
        "no call was made with an expired token: {:#?}",
        fake.api_calls()
    );

    // Google refuses the token (revoked): fetched again at once, the purge not delayed.
    fake.revoke_tokens();
    fake.reset();
    send("three.css");
    let log = ep.settle(Duration::from_secs(20));
    for r in log.iter().filter(|r| r["key"] == "three.css") {
        assert_eq!(
            (r["status"].as_str(), r["attempts"].as_u64()),
            (Some("succeeded"), Some(1)),
            "{r}"
        );
    }
    let posts: Vec<Value> = fake
        .api_calls()
        .into_iter()
        .filter(|c| c["method"] == "POST")
        .collect();
    // Each URL's first call (the two may run at once) met the revoked token; every call
    // after it carried the new one.
    assert_eq!(posts[0]["status"], 401, "{posts:#?}");
    for c in &posts {
        match c["status"].as_u64() {
            Some(401) => assert_eq!(c["token_refused"], "revoked", "{c}"),
            Some(200) => assert_eq!(c["token_n"], 3, "{c}"),
            _ => panic!("{c}"),
        }
    }
    assert_eq!(
        posts.iter().filter(|c| c["status"] == 200).count(),
        2,
        "{posts:#?}"
    );
    assert_eq!(
        fake.token_requests().len(),
        1,
        "one new token after the refusal"
    );
}

#[test]
fn a_rate_limit_is_retried_then_succeeds() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE), &fake.key_file());
    let server = ep.serve();
    // The token endpoint fails once (Google's retryable internal_failure), then an
    // invalidation meets the rate limit: both retried, nothing lost.
    fake.token_fail(503, "internal_failure", 1);
    fake.fail(403, "rateLimitExceeded", "PERMISSION_DENIED", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["r.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let attempts: Vec<u64> = log
        .iter()
        .map(|r| r["attempts"].as_u64().unwrap())
        .collect();
    // Two attempts when the token's failure and the rate limit fell in one attempt's calls,
    // three when each cost its own (both seen: it depends on when the lane first asks for a
    // token); either way the refused request went out again.
    assert!(
        attempts.iter().any(|a| (2..=3).contains(a)),
        "the refused request was sent again: {attempts:?}"
    );
    let requests = ep.ok(&["log", "--requests", "--json"]);
    assert!(
        requests.contains("rateLimitExceeded")
            && requests.contains("500 invalidations a minute")
            && requests.contains("HTTP 503 internal_failure"),
        "{requests}"
    );
    assert_eq!(fake.invalidations().len(), 2, "both URLs invalidated once");

    // Cloud CDN's own window: with 2 invalidations a minute the third waits and is retried
    // (bounded), never dropped.
    let limited = FakeGcp::start(Options {
        rate_per_min: Some(2),
        ..Options::default()
    });
    let ep = edgepurge(
        &config(&limited, "", SITE_RULE).replace("max_attempts = 8", "max_attempts = 2"),
        &limited.key_file(),
    );
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["w.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(limited.invalidations().len(), 2);
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["x.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    let x: Vec<&Value> = log.iter().filter(|r| r["status"] == "dead").collect();
    assert_eq!(x.len(), 1, "{log:#?}");
    let err = x[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 403 rateLimitExceeded: Rate Limit Exceeded"),
        "{err}"
    );
    assert_eq!(x[0]["attempts"], 2);
}

#[test]
fn a_key_google_does_not_have_is_dead_at_once_with_what_to_fix_and_nothing_is_lost() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE), &fake.wrong_key_file());
    let (server, log_path) = serve_logged(&ep);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["k.css".into()]));
    // A record is dead as soon as one of its URLs is: wait for both requests' answers.
    wait_for(Duration::from_secs(20), "both URLs dead", || {
        let requests = ep.ok(&["log", "--requests", "--json"]);
        (requests
            .lines()
            .filter(|l| l.contains("\"outcome\":\"dead\""))
            .count()
            == 2)
            .then_some(())
    });
    let log = ep.settle(Duration::from_secs(20));
    for r in &log {
        assert_eq!(
            (r["status"].as_str(), r["attempts"].as_u64()),
            (Some("dead"), Some(1)),
            "{r}"
        );
        let err = r["error"].as_str().unwrap();
        assert!(
            err.contains("HTTP 400 invalid_grant: Invalid JWT Signature.")
                && err.contains("is not a current key of edgepurge-purger@")
                && err.contains(KEY_FILE)
                && err.contains("gcloud iam service-accounts keys create"),
            "{err}"
        );
    }
    assert!(fake.invalidations().is_empty());
    assert!(fake.api_calls().is_empty(), "no API call without a token");
    let t = &fake.token_requests()[0];
    assert_eq!(t["signature_ok"], false, "{t}");

    // The operator puts the right key in place and retries: every URL is invalidated.
    put_key(&ep, &fake.key_file());
    let out = ep.ok(&["retry", "--json"]);
    // One record, its two URLs (one per domain) dead letters: both re-queued.
    assert_eq!(log.len(), 1);
    assert_eq!(out.trim(), r#"{"requeued":2}"#);
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    assert_eq!(fake.invalidations().len(), 2);
    drop(server);
    let everything = std::fs::read_to_string(&log_path).unwrap()
        + &ep.ok(&["log", "--json"])
        + &ep.ok(&["log", "--requests", "--json"]);
    assert_no_secret(&fake, "the logs", &everything);
}

#[test]
fn a_disabled_account_or_a_missing_permission_names_what_to_grant() {
    let fake = fake();
    fake.set_disabled(true);
    let ep = edgepurge(&config(&fake, "", SITE_RULE), &fake.key_file());
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["d.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    let err = log[0]["error"].as_str().unwrap();
    assert_eq!(log[0]["status"], "dead");
    assert!(
        err.contains("Robot is disabled.") && err.contains("gcloud iam service-accounts enable"),
        "{err}"
    );
    drop(server);

    let denied = FakeGcp::start(Options {
        no_permission: true,
        ..Options::default()
    });
    let ep = edgepurge(&config(&denied, "", SITE_RULE), &denied.key_file());
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["p.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempts"].as_u64()),
        (Some("dead"), Some(1))
    );
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("HTTP 403 forbidden: Required 'compute.urlMaps.invalidateCache' permission")
            && err
                .contains("grant the service account a role with compute.urlMaps.invalidateCache"),
        "{err}"
    );
    drop(server);

    // A key that may invalidate but not read operations: purged, completion unconfirmable.
    let blind = FakeGcp::start(Options {
        no_operations_permission: true,
        ..Options::default()
    });
    let ep = edgepurge(&config(&blind, "", SITE_RULE), &blind.key_file());
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["o.css".into()]));
    ep.settle(Duration::from_secs(20));
    let log = wait_for(Duration::from_secs(15), "completion given up", || {
        let log = ep.log(&[]);
        log.iter()
            .all(|r| {
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not confirmed"))
            })
            .then_some(log)
    });
    let err = log[0]["error"].as_str().unwrap();
    assert!(err.contains("grant compute.globalOperations.get"), "{err}");
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(blind.invalidations().len(), 2);
}

#[test]
fn bad_paths_and_too_many_tags_never_reach_google() {
    let fake = fake();
    let rules = r#"
[[rules]]
name = "many-tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "gcp"
mode = "tag"
tags = ["t1-{stem}", "t2-{stem}", "t3-{stem}", "t4-{stem}"]

[[rules]]
name = "stars"
bucket = "stars"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "gcp"
"#;
    let ep = edgepurge(&config(&fake, "", rules), &fake.key_file());
    let server = ep.serve();
    // 3 objects: 12 tags, more than one call may carry; a key holding `*`.
    let keys: Vec<String> = ["a", "b", "c*d"].map(String::from).to_vec();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let calls = fake.api_calls();
    assert!(calls.iter().all(|c| c["status"] == 200), "{calls:#?}");
    let mut tags: Vec<String> = fake
        .invalidations()
        .iter()
        .flat_map(|i| {
            let t = i["cacheTags"].as_array().unwrap();
            assert!(t.len() <= 10, "{i}");
            t.iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    tags.sort();
    assert_eq!(tags.len(), 12, "{tags:?}");
    assert!(fake.invalidations().len() >= 2);

    // A key holding `*` is covered by its own directory, never wider: the key `*` (the whole
    // host) and a `*` in a directory's name are refused without a call.
    let before = fake.invalidations().len();
    let keys: Vec<String> = ["img/b*c.png", "*", "img/a*/b.png"]
        .map(String::from)
        .to_vec();
    server.send(&ceph_body("stars", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    let of = |key: &str| log.iter().find(|r| r["key"] == key).unwrap().clone();
    assert_eq!(of("img/b*c.png")["status"], "succeeded");
    for key in ["*", "img/a*/b.png"] {
        let r = of(key);
        assert_eq!(r["status"], "dead", "{r}");
        let err = r["error"].as_str().unwrap_or_default();
        assert!(err.contains("cannot invalidate a path holding `*`"), "{r}");
    }
    let sent: Vec<(Value, Value)> = fake.invalidations()[before..]
        .iter()
        .map(|i| (i["host"].clone(), i["path"].clone()))
        .collect();
    assert_eq!(sent, vec![(json!("cdn.example.com"), json!("/img/*"))]);
}

#[test]
fn config_check_names_a_missing_key_file() {
    let fake = fake();
    let ep = Edgepurge::new(&config(&fake, "", SITE_RULE));
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot read secret file") && err.contains(KEY_FILE),
        "{err}"
    );
}

#[test]
fn the_stand_in_matches_google_auths_own_client() {
    // The stand-in checks assertions with google-auth; this checks it against google-auth's
    // own service-account client too, so a mistake shared by edgepurge and the check shows.
    let out = edgepurge_testkit::run(
        "fake_gcp.py --self-check",
        std::process::Command::new(edgepurge_testkit::python())
            .arg(edgepurge_testkit::repo_root().join("testkit/fake_gcp.py"))
            .arg("--self-check"),
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "official-invalidate 200 RUNNING",
            "official-operation 200 RUNNING",
            "bad-path 400 invalid",
            "wrong-key invalid_grant: Invalid JWT Signature.",
            "disabled invalid_grant: Robot is disabled.",
            "assertion-claims aud exp iat iss scope",
            "assertion-aud https://oauth2.googleapis.com/token",
        ]
    );
}
