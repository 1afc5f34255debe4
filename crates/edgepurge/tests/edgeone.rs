//! The real binary against a loopback Tencent EdgeOne API stand-in that recomputes every TC3
//! signature (service `teo`) with the official SDK's signer, enforces the zone's batch and
//! daily quotas, and answers with Tencent's shapes: URL, prefix and cache-tag purges,
//! completion through `DescribePurgeTasks`, the zone's quota from `DescribeContentQuota`,
//! and each kind of refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::edgeone::{FakeEdgeOne, Options, SESSION_TOKEN, ZONE_ID};
use edgepurge_testkit::wait_for;
use serde_json::Value;
use std::time::Duration;

fn fake(opts: Options) -> FakeEdgeOne {
    FakeEdgeOne::start(Options {
        token: Some(SESSION_TOKEN.into()),
        domains: vec!["cdn.example.com".into(), "img.example.com".into()],
        ..opts
    })
}

/// An `[providers.eo]` EdgeOne account pointing at `fake` (with the Tencent test keys that
/// [`Edgepurge::new`] puts in the environment), fast retries and task checks, and `rules`.
fn config(fake: &FakeEdgeOne, provider_extra: &str, rules: &str) -> String {
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
task_check_ms = 200

[providers.eo]
kind = "edgeone"
endpoint = "{endpoint}"
zone_id = "{ZONE_ID}"
secret_id_env = "EP_TEST_SECRET_ID"
secret_key_env = "EP_TEST_SECRET_KEY"
session_token_env = "EP_TEST_SESSION_TOKEN"
timeout_s = 5
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

const URL_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "eo"
"#;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn completed(log: &[Value]) -> usize {
    log.iter()
        .filter(|r| ms(&r["completed_at"]).is_some())
        .count()
}

/// The lines of `log --requests --json`.
fn request_log(ep: &Edgepurge) -> String {
    ep.ok(&["log", "--requests", "--json"])
}

#[test]
fn url_purges_are_signed_for_teo_and_complete_when_the_tasks_succeed() {
    let fake = fake(Options::default());
    fake.task_status("processing");
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    let answer = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/猫 cat+1.jpg".into(), "old.css".into()],
    ));
    assert_eq!(answer["targets"], 4);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2);
    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "one batched request: {purges:#?}");
    let p = &purges[0];
    assert_eq!(p["signature_ok"], true);
    assert_eq!(p["headers"]["x-tc-version"], "2022-09-01");
    assert_eq!(p["headers"]["x-tc-token"], "***", "session token sent");
    assert_eq!(p["body"]["ZoneId"], ZONE_ID);
    assert_eq!(p["body"]["Type"], "purge_url");
    assert!(p["body"].get("Method").is_none(), "{p}");
    assert_eq!(
        sorted(fake.purged("purge_url")),
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://cdn.example.com/old.css",
            "https://img.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://img.example.com/old.css",
        ]
    );
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["task_id"], p["job_id"], "the JobId: {rec}");
        assert_eq!(rec["request_id"], p["request_id"], "{rec}");
    }
    // The zone's quota was read at start.
    let quota = fake.calls("DescribeContentQuota");
    assert!(
        !quota.is_empty() && quota[0]["error_code"].is_null(),
        "{quota:?}"
    );
    assert_eq!(quota[0]["body"]["ZoneId"], ZONE_ID);

    // Asked about by job id while processing: not complete.
    let job = p["job_id"].as_str().unwrap().to_owned();
    let asked = wait_for(Duration::from_secs(10), "DescribePurgeTasks calls", || {
        let calls = fake.calls("DescribePurgeTasks");
        (calls.len() >= 2).then_some(calls)
    });
    for call in &asked {
        assert_eq!(call["signature_ok"], true, "{call}");
        assert!(call["error_code"].is_null(), "{call}");
        assert_eq!(call["body"]["ZoneId"], ZONE_ID);
        assert_eq!(
            call["body"]["Filters"],
            serde_json::json!([{"Name": "job-id", "Values": [job]}])
        );
    }
    assert_eq!(completed(&ep.log(&[])), 0);

    fake.set_tasks("success", None, None);
    let log = wait_for(Duration::from_secs(15), "the records to complete", || {
        let log = ep.log(&[]);
        (completed(&log) == 2).then_some(log)
    });
    for r in &log {
        assert!(
            ms(&r["completed_at"]).is_some_and(|c| Some(c) >= ms(&r["time"])),
            "{r}"
        );
        assert!(r["error"].is_null(), "{r}");
    }
}

#[test]
fn dir_rules_purge_prefixes_with_the_configured_method() {
    let fake = fake(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "method = \"delete\"",
        r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
prefix = "docs/"
domains = ["https://cdn.example.com"]
provider = "eo"
mode = "dir"
"#,
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "docs/a/x.html".into(),
            "docs/a/y.html".into(),
            "docs/b.html".into(),
        ],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "{purges:#?}");
    assert_eq!(purges[0]["body"]["Type"], "purge_prefix");
    assert_eq!(purges[0]["body"]["Method"], "delete");
    assert_eq!(
        sorted(fake.purged("purge_prefix")),
        vec![
            "https://cdn.example.com/docs/",
            "https://cdn.example.com/docs/a/"
        ]
    );
    // Tasks succeed at once here: the records complete.
    wait_for(Duration::from_secs(15), "the records to complete", || {
        (completed(&ep.log(&[])) == 3).then_some(())
    });
}

#[test]
fn tag_rules_purge_cache_tags_of_the_configured_domains() {
    let fake = fake(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "cache_tag_domains = [\"cdn.example.com\"]",
        r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "eo"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#,
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["products/42.png".into(), "products/a b.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "{purges:#?}");
    assert_eq!(purges[0]["body"]["Type"], "purge_cache_tag");
    assert_eq!(
        purges[0]["body"]["CacheTag"],
        serde_json::json!({"Domains": ["cdn.example.com"]})
    );
    assert_eq!(
        sorted(fake.purged("purge_cache_tag")),
        vec!["product-42", "product-a%20b", "products"]
    );
}

#[test]
fn a_failed_task_names_its_targets_and_why() {
    let fake = fake(Options::default());
    fake.task_status("processing");
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["f.png".into()]));
    ep.settle(Duration::from_secs(20));
    fake.set_tasks(
        "failed",
        Some("https://img.example.com/f.png"),
        Some(("originPullFailed", "origin answered 502")),
    );
    fake.set_tasks("success", Some("https://cdn.example.com/f.png"), None);
    let log = wait_for(
        Duration::from_secs(15),
        "the task failure in the log",
        || {
            let log = ep.log(&[]);
            log.iter()
                .all(|r| r["error"].as_str().is_some_and(|e| e.contains("failed")))
                .then_some(log)
        },
    );
    let error = log[0]["error"].as_str().unwrap();
    assert!(
        error.contains("reports purge task")
            && error.contains(
                "1 of 2 targets failed: https://img.example.com/f.png (originPullFailed: \
                 origin answered 502)"
            ),
        "{error}"
    );
    assert_eq!(log[0]["status"], "succeeded", "the request was accepted");
    assert!(log[0]["completed_at"].is_null());
}

#[test]
fn a_rate_limited_purge_is_sent_again_and_succeeds() {
    let fake = fake(Options::default());
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    fake.fail("RequestLimitExceeded", 1);
    fake.fail("LimitExceeded.RateLimitExceeded", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["r.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 3);
    let reqs = request_log(&ep);
    let outcomes: Vec<String> = reqs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert_eq!(outcomes, vec!["\"retry\"", "\"retry\"", "\"succeeded\""]);
    assert!(
        reqs.contains("CreatePurgeTask: RequestLimitExceeded"),
        "{reqs}"
    );
    assert_eq!(fake.purged("purge_url").len(), 2);
}

#[test]
fn the_zones_daily_quota_is_kept_and_a_spent_quota_waits_for_the_reset() {
    let fake = fake(Options {
        url_daily: Some(3),
        ..Default::default()
    });
    let rule = URL_RULE.replace(
        "domains = [\"https://cdn.example.com\", \"https://img.example.com\"]",
        "domains = [\"https://cdn.example.com\"]",
    );
    let ep = Edgepurge::new(&config(&fake, "", &rule));
    let server = ep.serve();
    let keys: Vec<String> = (0..5).map(|i| format!("quota/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    wait_for(Duration::from_secs(20), "3 purged, 2 waiting", || {
        let log = ep.log(&[]);
        let ok = log.iter().filter(|r| r["status"] == "succeeded").count();
        let queued = log.iter().filter(|r| r["status"] == "queued").count();
        (ok == 3 && queued == 2).then_some(())
    });
    // Learned from DescribeContentQuota (Daily 3): no call beyond it.
    assert_eq!(fake.purged("purge_url").len(), 3);
    let errors = fake.stats()["errors"].clone();
    assert!(errors.get("LimitExceeded.DailyQuota").is_none(), "{errors}");
    drop(server);

    // Another account spends the quota meanwhile: the API's answer parks the batch until the
    // reset, with the reason in the log; nothing is lost.
    let fake = self::fake(Options::default());
    let ep = Edgepurge::new(&config(&fake, "", &rule));
    let server = ep.serve();
    fake.fail("LimitExceeded.DailyQuota", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["q.png".into()]));
    let log = wait_for(Duration::from_secs(20), "the batch parked", || {
        let log = ep.log(&[]);
        log.iter().all(|r| r["error"].is_string()).then_some(log)
    });
    assert!(
        matches!(log[0]["status"].as_str(), Some("queued" | "failed")),
        "waiting, not given up: {}",
        log[0]
    );
    assert!(
        request_log(&ep).contains("LimitExceeded.DailyQuota"),
        "the provider's answer is in the request log"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fake.calls("CreatePurgeTask").len(),
        1,
        "not sent again before the reset"
    );
    drop(server);
}

#[test]
fn the_zones_batch_from_describe_content_quota_is_respected() {
    let fake = fake(Options {
        url_batch: Some(300),
        ..Default::default()
    });
    let rule = URL_RULE.replace(", \"https://img.example.com\"", "");
    let ep =
        Edgepurge::new(&config(&fake, "", &rule).replace("linger_ms = 100", "linger_ms = 1000"));
    let server = ep.serve();
    let keys: Vec<String> = (0..700).map(|i| format!("q/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    ep.settle(Duration::from_secs(30));
    let sizes: Vec<usize> = fake
        .purges()
        .iter()
        .map(|r| r["body"]["Targets"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![300, 300, 100]);
    let errors = &fake.stats()["errors"];
    assert!(errors.as_object().is_none_or(|e| e.is_empty()), "{errors}");
}

#[test]
fn without_the_zones_quota_a_batch_too_large_is_split_until_it_fits() {
    // The key may not read the quota: the configured maximum (2,000) goes out, EdgeOne
    // answers LimitExceeded.BatchQuota, and halves are sent until they fit.
    let fake = fake(Options {
        url_batch: Some(2),
        deny: vec!["DescribeContentQuota".into()],
        ..Default::default()
    });
    let rule = URL_RULE.replace(", \"https://img.example.com\"", "");
    let ep =
        Edgepurge::new(&config(&fake, "", &rule).replace("linger_ms = 100", "linger_ms = 500"));
    let server = ep.serve();
    let keys: Vec<String> = (0..5).map(|i| format!("s/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    assert_eq!(fake.purged("purge_url").len(), 5);
    let errors = &fake.stats()["errors"];
    assert!(
        errors["LimitExceeded.BatchQuota"].as_u64() >= Some(1),
        "{errors}"
    );
    assert!(fake
        .purges()
        .iter()
        .all(|r| r["body"]["Targets"].as_array().map_or(0, Vec::len) <= 2));
}

#[test]
fn the_rate_limit_of_20_calls_a_second_is_never_exceeded() {
    let fake = fake(Options {
        rate: Some(20),
        ..Default::default()
    });
    let ep = Edgepurge::new(&config(
        &fake,
        "max_dirs_per_request = 1\ndir_daily_quota = 0\nconcurrency = 8",
        r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "eo"
mode = "dir"
allow_host_purge = true
"#,
    ));
    let server = ep.serve();
    let keys: Vec<String> = (0..60).map(|i| format!("d{i}/x.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    let stats = fake.stats();
    assert_eq!(stats["targets_purged"], 60);
    assert!(
        stats["errors"].get("RequestLimitExceeded").is_none(),
        "edgepurge exceeded 20 requests/s: {stats}"
    );
}

#[test]
fn a_bad_key_is_fatal_says_what_to_fix_and_loses_nothing() {
    let fake = fake(Options::default());
    let mut ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    for (k, v) in &mut ep.env {
        if k == "EP_TEST_SECRET_KEY" {
            *v = "wrong-secret-key-EXAMPLE".into();
        }
    }
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["k.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1, "not retried");
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("AuthFailure.SignatureFailure") && err.contains("secret_key_env"),
        "{err}"
    );
    let everything = ep.ok(&["log", "--json"]) + &request_log(&ep);
    assert!(!everything.contains("wrong-secret-key-EXAMPLE"));
    assert!(!everything.contains(SESSION_TOKEN));
    drop(server);

    // Fixed key, then `retry`: the event kept is purged.
    for (k, v) in &mut ep.env {
        if k == "EP_TEST_SECRET_KEY" {
            *v = edgepurge_testkit::edgeone::SECRET_KEY.into();
        }
    }
    let _server = ep.serve();
    assert_eq!(ep.ok(&["retry", "--json"]).trim(), r#"{"requeued":1}"#);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(fake.purged("purge_url").len(), 2);
}

#[test]
fn a_key_without_purge_permission_is_told_what_to_grant() {
    let fake = fake(Options {
        deny: vec!["CreatePurgeTask".into()],
        ..Default::default()
    });
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["p.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("UnauthorizedOperation.CamUnauthorized")
            && err.contains(&format!("grant teo:CreatePurgeTask on {ZONE_ID}")),
        "{err}"
    );
    drop(server);
}

#[test]
fn a_key_that_may_not_read_tasks_or_quota_still_purges_and_says_unconfirmed() {
    let fake = fake(Options {
        deny: vec!["DescribePurgeTasks".into(), "DescribeContentQuota".into()],
        ..Default::default()
    });
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["u.css".into()]));
    let log = wait_for(Duration::from_secs(20), "completion given up", || {
        let log = ep.log(&[]);
        log.iter()
            .all(|r| {
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not confirmed"))
            })
            .then_some(log)
    });
    assert_eq!(log[0]["status"], "succeeded", "purged all the same");
    assert!(log[0]["completed_at"].is_null());
    let err = log[0]["error"].as_str().unwrap();
    assert!(err.contains("grant teo:DescribePurgeTasks"), "{err}");
    assert_eq!(fake.purged("purge_url").len(), 2);
    // The quota lookup was refused and did not hold anything up.
    let quota = fake.calls("DescribeContentQuota");
    assert!(
        !quota.is_empty()
            && quota
                .iter()
                .all(|q| q["error_code"] == "UnauthorizedOperation.CamUnauthorized"),
        "{quota:?}"
    );
    drop(server);
}

#[test]
fn targets_the_failed_list_names_fail_alone() {
    let fake = fake(Options::default());
    fake.reject(&["https://img.example.com/bad.png"], "url format error");
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["bad.png".into(), "good.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    let by_key = |k: &str| log.iter().find(|r| r["key"] == k).unwrap().clone();
    let bad = by_key("bad.png");
    assert_eq!(bad["status"], "dead", "{bad}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("https://img.example.com/bad.png") && err.contains("url format error"),
        "{err}"
    );
    assert_eq!(by_key("good.png")["status"], "succeeded");
    assert_eq!(
        fake.calls("CreatePurgeTask").len(),
        1,
        "no resend of the others"
    );
    assert_eq!(
        sorted(fake.purged("purge_url")),
        vec![
            "https://cdn.example.com/bad.png",
            "https://cdn.example.com/good.png",
            "https://img.example.com/good.png",
        ]
    );
    drop(server);
}

/// Posts `body` with `?wait=completed` and the given timeout; returns the answer.
fn post_waiting(server: &Server, body: &[u8], timeout_ms: u64) -> Value {
    let auth = format!("Bearer {WEBHOOK_TOKEN}");
    let r = edgepurge_testkit::http::request(
        server.addr,
        "POST",
        &format!("/v1/events?wait=completed&timeout_ms={timeout_ms}"),
        &server.addr.to_string(),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .expect("POST /v1/events");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_sender_can_wait_until_edgeone_confirms_the_purge() {
    let fake = fake(Options::default());
    fake.task_status("processing");
    let ep = Edgepurge::new(&config(&fake, "", URL_RULE));
    let server = ep.serve();
    let a = post_waiting(
        &server,
        &ceph_body("assets", "ObjectCreated:Put", &["w1.png".into()]),
        1500,
    );
    assert_eq!(
        (&a["purged"], &a["completed"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "accepted, not confirmed within the wait: {a}"
    );
    fake.task_status("success");
    let b = post_waiting(
        &server,
        &ceph_body("assets", "ObjectCreated:Put", &["w2.png".into()]),
        20_000,
    );
    assert_eq!(
        (&b["purged"], &b["completed"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{b}"
    );
    let log = ep.log(&[]);
    let w2 = log.iter().find(|r| r["key"] == "w2.png").unwrap();
    assert!(ms(&w2["completed_at"]).is_some(), "{w2}");
}

#[test]
fn tag_rules_need_cache_tag_domains_and_config_check_says_so() {
    let fake = fake(Options::default());
    let tag_rule = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "eo"
mode = "tag"
tags = ["{seg1}"]
"#;
    let ep = Edgepurge::new(&config(&fake, "", tag_rule));
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(r#"provider "eo" (edgeone) cannot purge with mode = "tag""#),
        "{err}"
    );
    let ep = Edgepurge::new(&config(
        &fake,
        "cache_tag_domains = [\"cdn.example.com\"]",
        tag_rule,
    ));
    ep.ok(&["config", "check"]);
    assert!(fake.requests().is_empty(), "a check calls nothing");
}

#[test]
fn the_stand_in_accepts_the_official_teo_client() {
    // The stand-in's own check: calls made and signed by tencentcloud-sdk-python-teo are
    // accepted, and its refusals reach the SDK as Tencent's error codes.
    let out = std::process::Command::new(edgepurge_testkit::python())
        .arg(edgepurge_testkit::repo_root().join("testkit/fake_edgeone.py"))
        .arg("--self-check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("self-check ok"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "DescribePurgeTasks by job-id: success",
        "wrong key: AuthFailure.SignatureFailure",
        "4 URLs over a batch of 3: LimitExceeded.BatchQuota",
        "daily quota (5 used): LimitExceeded.DailyQuota",
        "DescribeContentQuota: prefetch_url 2/3, 2 left",
        "prefetch daily quota (3 used): LimitExceeded.DailyQuota",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
}

// --- warming (rules with warm = true): CreatePrefetchTask after the purge completed

const WARM_RULE: &str = r#"
[[rules]]
name = "warm"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "eo"
warm = true
"#;

/// Waits until `n` records are there and none is waiting to be warmed.
fn warmed(ep: &Edgepurge, n: usize) -> Vec<Value> {
    wait_for(Duration::from_secs(30), "every record warmed", || {
        let log = ep.log(&[]);
        let done = log.len() == n
            && log
                .iter()
                .all(|r| r["warmed"].is_string() && r["warmed"] != "pending");
        done.then_some(log)
    })
}

#[test]
fn a_warm_rule_prefetches_with_create_prefetch_task_within_the_zones_prefetch_quota() {
    let fake = fake(Options {
        prefetch_daily: Some(2),
        ..Default::default()
    });
    let ep = Edgepurge::new(&config(&fake, "", WARM_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["1.png".into(), "2.png".into(), "3.png".into()],
    ));
    let log = warmed(&ep, 3);
    let prefetches = fake.calls("CreatePrefetchTask");
    assert_eq!(prefetches.len(), 2, "{prefetches:#?}");
    for p in &prefetches {
        assert_eq!(p["signature_ok"], true, "{p}");
        assert_eq!(p["body"]["ZoneId"], ZONE_ID, "{p}");
        assert_eq!(p["error_code"], Value::Null, "{p}");
    }
    let outcomes: Vec<&str> = log.iter().filter_map(|r| r["warmed"].as_str()).collect();
    assert_eq!(outcomes, ["warmed", "warmed", "failed"], "{log:#?}");
    for (rec, p) in log.iter().zip(&prefetches) {
        assert_eq!(p["body"]["Targets"], rec["targets"], "{p}");
        assert_eq!(rec["warm_task"], p["job_id"], "{rec}");
    }
    // The zone's prefetch_url quota (DescribeContentQuota) is 2 a day: the third is not sent.
    assert_eq!(
        log[2]["warm_note"],
        "the daily prefetch quota would be exceeded (2 of 2 URLs used today; not sent)"
    );
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn prefetch_refusals_are_recorded_with_edgeones_answer_and_never_retried() {
    let fake = fake(Options::default());
    let ep = Edgepurge::new(&config(&fake, "", WARM_RULE));
    let server = ep.serve();
    // FailedList names the URL: failed, with EdgeOne's reason.
    fake.reject_prefetch(&["https://cdn.example.com/1.png"], "url format error");
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["1.png".into()]));
    let log = warmed(&ep, 1);
    assert_eq!(log[0]["warmed"], "failed", "{log:#?}");
    let note = log[0]["warm_note"].as_str().unwrap();
    assert!(
        note.contains("CreatePrefetchTask did not take") && note.contains("url format error"),
        "{note}"
    );
    // The day's quota is spent (EdgeOne says so): failed, not sent again.
    fake.control_fail_prefetch("LimitExceeded.DailyQuota");
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["2.png".into()]));
    let log = warmed(&ep, 2);
    assert_eq!(log[1]["warmed"], "failed");
    assert!(
        log[1]["warm_note"]
            .as_str()
            .unwrap()
            .starts_with("the provider's daily prefetch quota is spent: CreatePrefetchTask: LimitExceeded.DailyQuota"),
        "{}",
        log[1]["warm_note"]
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fake.calls("CreatePrefetchTask").len(), 2, "never retried");
}
