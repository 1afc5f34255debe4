//! The real binary against a loopback Alibaba Cloud CDN stand-in that recomputes every
//! ACS3-HMAC-SHA256 signature with the official SDK's signing code, checks the key, date,
//! nonce, body hash and STS token like Alibaba's gateway, enforces the per-request, per-day
//! and per-second limits, and answers with Alibaba's shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] functions

mod common;

use common::*;
use edgepurge_testkit::aliyun::{
    FakeAliyun, Options, ACCESS_KEY_ID, ACCESS_KEY_SECRET, SECURITY_TOKEN,
};
use edgepurge_testkit::wait_for;
use serde_json::Value;
use std::time::Duration;

const SECRET_ENV: &str = "EP_TEST_ALIYUN_SECRET";

fn fake() -> FakeAliyun {
    FakeAliyun::start(Options {
        token: Some(SECURITY_TOKEN.into()),
        domains: vec!["cdn.example.com".into(), "img.example.com".into()],
        ..Default::default()
    })
}

/// A config with an Alibaba Cloud CDN provider `aliyun` pointing at `fake`, fast retries,
/// tasks first asked about 200 ms after their refresh, and `rules`.
fn config(fake: &FakeAliyun, provider_extra: &str, rules: &str) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"

[store]
path = "edgepurge.db"

[dispatch]
task_check_ms = 200
linger_ms = 100
backoff_base_ms = 100
backoff_max_ms = 500
lane_lease_s = 2
poll_ms = 100
max_attempts = 5

[providers.aliyun]
kind = "aliyun-cdn"
endpoint = "{endpoint}"
access_key_id_env = "EP_TEST_ALIYUN_ID"
access_key_secret_env = "{SECRET_ENV}"
security_token_env = "EP_TEST_ALIYUN_TOKEN"
timeout_s = 5
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env.extend([
        ("EP_TEST_ALIYUN_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
        (SECRET_ENV.to_owned(), ACCESS_KEY_SECRET.to_owned()),
        ("EP_TEST_ALIYUN_TOKEN".to_owned(), SECURITY_TOKEN.to_owned()),
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

const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "aliyun"
"#;

const ALL_MODES: &str = r#"
[[rules]]
name = "files"
bucket = "assets"
events = ["created"]
prefix = "img/"
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "aliyun"

[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
prefix = "docs/"
domains = ["https://cdn.example.com"]
provider = "aliyun"
mode = "dir"

[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
prefix = "products/"
domains = ["https://cdn.example.com"]
provider = "aliyun"
mode = "tag"
tags = ["{seg2}"]
"#;

fn calls(fake: &FakeAliyun, action: &str) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r["action"] == action)
        .collect()
}

fn completed(log: &[Value]) -> usize {
    log.iter()
        .filter(|r| ms(&r["completed_at"]).is_some())
        .count()
}

#[test]
fn file_directory_and_tag_refreshes_are_signed_and_complete_when_the_tasks_do() {
    let fake = fake();
    fake.task_status("Refreshing");
    let ep = edgepurge(&config(
        &fake,
        "cache_tag_domains = [\"cdn.example.com\"]\nforce = true",
        ALL_MODES,
    ));
    let server = ep.serve();
    let answer = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "img/猫 cat+1.jpg".into(),
            "docs/a/x.html".into(),
            "products/shoes/red.json".into(),
        ],
    ));
    assert_eq!(answer["accepted"], 3);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 3);
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert!(
            rec["task_id"].is_string() && rec["request_id"].is_string(),
            "{rec}"
        );
        assert!(rec["completed_at"].is_null(), "still refreshing: {rec}");
    }

    // Files: one call, both domains, the key encoded once; File type, no Force.
    let files = fake.refreshes("RefreshObjectCaches");
    let file_call = files
        .iter()
        .find(|r| r["params"]["ObjectType"] == "File")
        .expect("a File refresh");
    let mut paths: Vec<&str> = file_call["params"]["ObjectPath"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://img.example.com/img/%E7%8C%AB%20cat+1.jpg",
        ]
    );
    assert!(file_call["params"]["Force"].is_null(), "{file_call}");
    assert_eq!(
        file_call["task_id"].as_str().unwrap().split(',').count(),
        2,
        "one task per domain, ids joined: {file_call}"
    );
    // Directories: Directory type with Force from the config.
    let dir_call = files
        .iter()
        .find(|r| r["params"]["ObjectType"] == "Directory")
        .expect("a Directory refresh");
    assert_eq!(
        dir_call["params"]["ObjectPath"],
        "https://cdn.example.com/docs/a/"
    );
    assert_eq!(dir_call["params"]["Force"], "true");
    // Tags: the configured domain.
    let tag_calls = fake.refreshes("RefreshObjectCacheByCacheTag");
    assert_eq!(tag_calls.len(), 1, "{tag_calls:#?}");
    assert_eq!(tag_calls[0]["params"]["CacheTag"], "shoes");
    assert_eq!(tag_calls[0]["params"]["DomainName"], "cdn.example.com");

    // Every call passed the stand-in's checks, carried the STS token and the API version.
    for r in fake.requests() {
        assert_eq!(r["signature_ok"], true, "{r}");
        assert!(r["error_code"].is_null(), "{r}");
        assert_eq!(r["headers"]["x-acs-version"], "2018-05-10");
        assert_eq!(r["headers"]["x-acs-security-token"], "***", "{r}");
    }
    assert!(
        !calls(&fake, "DescribeRefreshQuota").is_empty(),
        "quota read at start"
    );

    // Asked about with the refresh's task ids; complete once Alibaba says Complete.
    let asked = wait_for(
        Duration::from_secs(10),
        "DescribeRefreshTaskById calls",
        || {
            let c = calls(&fake, "DescribeRefreshTaskById");
            (c.len() >= 3).then_some(c)
        },
    );
    let ids: Vec<&str> = log.iter().filter_map(|r| r["task_id"].as_str()).collect();
    for call in &asked {
        let asked_for = call["params"]["TaskId"].as_str().unwrap();
        assert!(ids.contains(&asked_for), "{asked_for} not in {ids:?}");
    }
    assert_eq!(completed(&ep.log(&[])), 0);
    fake.set_tasks("Complete", None);
    let log = wait_for(Duration::from_secs(15), "the records to complete", || {
        let log = ep.log(&[]);
        (completed(&log) == 3).then_some(log)
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
fn a_failed_task_names_its_paths() {
    let fake = fake();
    fake.task_status("Refreshing");
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded");
    fake.set_tasks("Failed", Some("https://cdn.example.com/a.css"));
    let log = wait_for(
        Duration::from_secs(15),
        "the task failure in the log",
        || {
            let log = ep.log(&[]);
            log[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("failed"))
                .then_some(log)
        },
    );
    let error = log[0]["error"].as_str().unwrap();
    assert!(
        error.contains("1 of 1 paths failed: https://cdn.example.com/a.css (Origin Timeout)"),
        "{error}"
    );
    assert!(log[0]["completed_at"].is_null());
}

#[test]
fn a_key_that_may_not_read_tasks_leaves_completion_unconfirmed() {
    let fake = fake();
    fake.deny(&["DescribeRefreshTaskById"]);
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["u.css".into()]));
    let log = wait_for(Duration::from_secs(20), "completion given up", || {
        let log = ep.log(&[]);
        log[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not confirmed"))
            .then_some(log)
    });
    assert_eq!(log[0]["status"], "succeeded", "the refresh itself went out");
    let error = log[0]["error"].as_str().unwrap();
    assert!(
        error.contains("Forbidden.RAM") && error.contains("cdn:DescribeRefreshTaskById"),
        "{error}"
    );
    // Asked once: a refusal to answer is not asked again.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(calls(&fake, "DescribeRefreshTaskById").len(), 1);
}

#[test]
fn throttling_is_retried_and_the_log_shows_it() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail("Throttling.User", 400, 2);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 3);
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    let throttled = reqs
        .lines()
        .filter(|l| l.contains("\"outcome\":\"retry\"") && l.contains("Throttling.User"))
        .count();
    assert_eq!(throttled, 2, "{reqs}");
    assert_eq!(fake.refreshed(), vec!["https://cdn.example.com/t.css"]);
}

#[test]
fn the_daily_quota_read_from_alibaba_stops_sending_beyond_it() {
    let fake = FakeAliyun::start(Options {
        url_quota: Some(3),
        ..Default::default()
    });
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    let keys: Vec<String> = (0..5).map(|i| format!("quota/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    wait_for(Duration::from_secs(20), "3 refreshed, 2 waiting", || {
        let log = ep.log(&[]);
        let ok = log.iter().filter(|r| r["status"] == "succeeded").count();
        let queued = log.iter().filter(|r| r["status"] == "queued").count();
        (ok == 3 && queued == 2).then_some(())
    });
    // It learned the account's quota from DescribeRefreshQuota and did not call beyond it.
    assert_eq!(fake.refreshed().len(), 3);
    assert!(fake.stats()["errors"]
        .get("QuotaExceeded.Refresh")
        .is_none());
}

#[test]
fn quota_exceeded_from_alibaba_parks_the_batch_and_loses_nothing() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail("QuotaExceeded.Refresh", 400, 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["q.css".into()]));
    wait_for(Duration::from_secs(20), "the refusal", || {
        (fake.stats()["errors"]["QuotaExceeded.Refresh"] == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let log = ep.log(&[]);
    assert!(
        log[0]["status"] == "queued" || log[0]["status"] == "failed",
        "waits for the quota day, not dead: {}",
        log[0]
    );
    assert!(
        fake.refreshed().is_empty(),
        "not sent again before the quota resets"
    );
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    assert!(reqs.contains("QuotaExceeded.Refresh"), "{reqs}");
}

#[test]
fn a_failed_quota_lookup_never_blocks_refreshes() {
    let fake = fake();
    fake.deny(&["DescribeRefreshQuota"]);
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["d.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(fake.refreshed(), vec!["https://cdn.example.com/d.css"]);
    assert!(
        fake.stats()["errors"]["Forbidden.RAM"].as_u64() >= Some(1),
        "the quota lookup was refused"
    );
}

#[test]
fn a_wrong_secret_is_fatal_with_what_to_fix_and_retry_after_fixing_loses_nothing() {
    let fake = fake();
    let mut ep = edgepurge(&config(&fake, "", SITE_RULE));
    set_env(&mut ep, SECRET_ENV, "wrong-secret-EXAMPLE");
    {
        let server = ep.serve();
        server.send(&ceph_body("assets", "ObjectCreated:Put", &["k.css".into()]));
        let log = ep.settle(Duration::from_secs(20));
        assert_eq!(log[0]["status"], "dead", "{}", log[0]);
        assert_eq!(log[0]["attempts"], 1);
        let err = log[0]["error"].as_str().unwrap();
        assert!(
            err.contains("SignatureDoesNotMatch") && err.contains("access_key_secret_env"),
            "{err}"
        );
        let everything = ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
        for secret in ["wrong-secret-EXAMPLE", ACCESS_KEY_SECRET, SECURITY_TOKEN] {
            assert!(!everything.contains(secret), "{secret} leaked");
        }
        assert!(fake.refreshed().is_empty());
    }
    // The operator fixes the key; the dead purge goes out on retry.
    set_env(&mut ep, SECRET_ENV, ACCESS_KEY_SECRET);
    let _server = ep.serve();
    assert_eq!(ep.ok(&["retry", "--json"]).trim(), r#"{"requeued":1}"#);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(fake.refreshed(), vec!["https://cdn.example.com/k.css"]);
}

#[test]
fn an_unknown_key_and_an_unknown_domain_are_fatal_with_the_reason() {
    let fake = fake();
    let mut ep = edgepurge(&config(
        &fake,
        "",
        r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com", "https://other.example.org"]
provider = "aliyun"
"#,
    ));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["v.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    // The bad domain is bisected out; the good one is refreshed.
    assert_eq!(fake.refreshed(), vec!["https://cdn.example.com/v.css"]);
    assert_eq!(log[0]["status"], "dead", "{}", log[0]);
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("InvalidDomain.NotFound") && err.contains("check the rule's domains"),
        "{err}"
    );
    drop(server);

    set_env(&mut ep, "EP_TEST_ALIYUN_ID", "LTAI5tNOTaKNOWNkey000000");
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["w.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    let rec = log.iter().find(|r| r["key"] == "w.css").unwrap();
    assert_eq!(rec["status"], "dead", "{rec}");
    let err = rec["error"].as_str().unwrap();
    assert!(
        err.contains("InvalidAccessKeyId.NotFound") && err.contains("access_key_id_env"),
        "{err}"
    );
}

#[test]
fn the_stand_in_passes_the_official_sdks_own_calls() {
    // The stand-in is checked against Alibaba's official CDN client (alibabacloud-cdn20180510,
    // with an STS token): what the SDK signs and sends is accepted, and its refusals carry
    // Alibaba's codes.
    let out = edgepurge_testkit::run(
        "fake_aliyun_cdn.py --self-check",
        std::process::Command::new(edgepurge_testkit::python()).args([
            edgepurge_testkit::repo_root()
                .join("testkit/fake_aliyun_cdn.py")
                .to_str()
                .unwrap(),
            "--self-check",
        ]),
    );
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "File refresh: RefreshTaskId",
        "Directory refresh: RefreshTaskId",
        "tag refresh: RefreshTaskId",
        "task: Complete, Complete",
        "quota: 9998 URLs and 99 directories left",
        "wrong secret: SignatureDoesNotMatch",
        "unknown key: InvalidAccessKeyId.NotFound",
        "no STS token: MissingSecurityToken",
        "PushObjectCache: PushTaskId",
        "quota: 1 of 3 prefetches left",
        "prefetch over the day's quota: QuotaExceeded.Preload",
        "SDK-signed calls pass the signature check",
        "self-check ok",
    ] {
        assert!(lines.contains(&want), "{want:?} in {out}");
    }
}

#[test]
fn a_batch_over_more_than_ten_domains_is_split_before_it_is_sent() {
    let fake = FakeAliyun::start(Options::default());
    let domains: Vec<String> = (0..11)
        .map(|i| format!("\"https://d{i}.example.com\""))
        .collect();
    let rule = format!(
        "[[rules]]\nname = \"wide\"\nbucket = \"assets\"\nevents = [\"created\"]\n\
         domains = [{}]\nprovider = \"aliyun\"\n",
        domains.join(", ")
    );
    let ep = edgepurge(&config(&fake, "", &rule));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["w.js".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    let mut refreshed = fake.refreshed();
    refreshed.sort();
    assert_eq!(refreshed.len(), 11, "{refreshed:?}");
    for call in fake.refreshes("RefreshObjectCaches") {
        // One path per domain here: at most 10 domains in any call.
        let paths = call["params"]["ObjectPath"]
            .as_str()
            .unwrap()
            .lines()
            .count();
        assert!(paths <= 10, "{call}");
    }
    let errors = fake.stats()["errors"].clone();
    assert!(errors.as_object().is_none_or(|e| e.is_empty()), "{errors}");
}

#[test]
fn tags_are_refreshed_on_every_configured_domain_and_an_unknown_one_is_named() {
    let fake = fake();
    let rule = r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "aliyun"
mode = "tag"
tags = ["{seg1}", "all"]
"#;
    let ep = edgepurge(&config(
        &fake,
        "cache_tag_domains = [\"cdn.example.com\", \"img.example.com\"]",
        rule,
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["shoes/red.json".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    let calls = fake.refreshes("RefreshObjectCacheByCacheTag");
    let mut domains: Vec<&str> = calls
        .iter()
        .map(|c| c["params"]["DomainName"].as_str().unwrap())
        .collect();
    domains.sort();
    assert_eq!(domains, vec!["cdn.example.com", "img.example.com"]);
    for c in &calls {
        let mut tags: Vec<&str> = c["params"]["CacheTag"]
            .as_str()
            .unwrap()
            .split(',')
            .collect();
        tags.sort();
        assert_eq!(tags, vec!["all", "shoes"], "{c}");
    }
    // Both tasks are followed: the record's task id names both.
    assert_eq!(log[0]["task_id"].as_str().unwrap().split(',').count(), 2);
    wait_for(Duration::from_secs(15), "completion", || {
        ms(&ep.log(&[])[0]["completed_at"]).is_some().then_some(())
    });
    drop(server);

    // A domain not in the account: the batch is dead with the domain named.
    let ep = edgepurge(&config(
        &fake,
        "cache_tag_domains = [\"cdn.example.com\", \"gone.example.com\"]",
        rule,
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["hats/blue.json".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead", "{}", log[0]);
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("InvalidDomain.NotFound") && err.contains("(domain gone.example.com)"),
        "{err}"
    );
}

// --- warming (rules with warm = true): PushObjectCache after the refresh completed

const WARM_RULE: &str = r#"
[[rules]]
name = "warm"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "aliyun"
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

fn pushes(fake: &FakeAliyun) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r["action"] == "PushObjectCache")
        .collect()
}

#[test]
fn a_warm_rule_prefetches_with_push_object_cache_within_the_preload_quota() {
    let fake = FakeAliyun::start(Options {
        token: Some(SECURITY_TOKEN.into()),
        preload_quota: Some(2),
        ..Default::default()
    });
    let ep = edgepurge(&config(&fake, "", WARM_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["1.png".into(), "2.png".into(), "3.png".into()],
    ));
    let log = warmed(&ep, 3);
    let sent = pushes(&fake);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let outcomes: Vec<&str> = log.iter().filter_map(|r| r["warmed"].as_str()).collect();
    assert_eq!(outcomes, ["warmed", "warmed", "failed"], "{log:#?}");
    for (rec, p) in log.iter().zip(&sent) {
        assert_eq!(p["signature_ok"], true, "{p}");
        assert_eq!(p["error_code"], Value::Null, "{p}");
        assert_eq!(
            Value::from(vec![p["params"]["ObjectPath"].clone()]),
            rec["targets"],
            "{p}"
        );
        assert_eq!(rec["warm_task"], p["task_id"], "{rec}");
    }
    // PreloadQuota / PreloadRemain of DescribeRefreshQuota: 2 a day.
    assert_eq!(
        log[2]["warm_note"],
        "the daily prefetch quota would be exceeded (2 of 2 URLs used today; not sent)"
    );
}

#[test]
fn a_spent_preload_quota_is_recorded_with_alibabas_code_and_not_retried() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", WARM_RULE));
    let server = ep.serve();
    fake.fail_push("QuotaExceeded.Preload", 400, 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["1.png".into()]));
    let log = warmed(&ep, 1);
    assert_eq!(log[0]["warmed"], "failed", "{log:#?}");
    let note = log[0]["warm_note"].as_str().unwrap();
    assert!(
        note.starts_with("the provider's daily prefetch quota is spent:")
            && note.contains("QuotaExceeded.Preload"),
        "{note}"
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["2.png".into()]));
    let log = warmed(&ep, 2);
    assert_eq!(
        log[1]["warm_note"],
        "the provider's daily prefetch quota is spent (not sent)"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pushes(&fake).len(), 1, "never retried");
    assert!(ep.log(&[]).iter().all(|r| r["status"] == "succeeded"));
}
