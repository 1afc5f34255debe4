//! The purge lifecycle, step one: a provider's "accepted" is not "done". Against the Tencent
//! and CloudFront stand-ins (which check every signature), a purge's task is asked about
//! until the provider says it completed; the log shows when, or why it could not be
//! confirmed.

#![allow(clippy::expect_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::wait_for;
use serde_json::Value;
use std::time::Duration;

/// Tasks are first asked about 200 ms after their purge (then 400 ms, 800 ms, …).
fn fast_tasks(config: String) -> String {
    assert!(config.contains("[dispatch]\n"));
    config.replacen("[dispatch]\n", "[dispatch]\ntask_check_ms = 200\n", 1)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("img/{i}.png")).collect()
}

fn completed(log: &[Value]) -> usize {
    log.iter()
        .filter(|r| ms(&r["completed_at"]).is_some())
        .count()
}

#[test]
fn a_tencent_purge_completes_when_describe_purge_tasks_says_done() {
    let fake = fake_tencent();
    fake.task_status("process");
    let ep = Edgepurge::new(&fast_tasks(tencent_config(&fake, "", SITE_RULE)));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(2)));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");

    // Asked about (signed, with the purge's task id) and still running: not complete.
    let task_id = log[0]["task_id"].as_str().expect("task id").to_owned();
    let asked = wait_for(Duration::from_secs(10), "DescribePurgeTasks calls", || {
        let calls: Vec<Value> = fake
            .requests()
            .into_iter()
            .filter(|r| r["action"] == "DescribePurgeTasks")
            .collect();
        (calls.len() >= 2).then_some(calls)
    });
    for call in &asked {
        assert_eq!(call["signature_ok"], true, "{call}");
        assert_eq!(call["body"]["TaskId"], task_id.as_str(), "{call}");
    }
    assert_eq!(completed(&ep.log(&[])), 0);

    fake.set_tasks("done", None);
    let log = wait_for(Duration::from_secs(15), "the records to complete", || {
        let log = ep.log(&[]);
        (completed(&log) == 2).then_some(log)
    });
    for r in &log {
        let (time, done) = (ms(&r["time"]), ms(&r["completed_at"]));
        assert!(done >= time, "{r}");
        assert!(r["error"].is_null(), "{r}");
    }
    let text = ep.ok(&["log"]);
    assert_eq!(text.matches(" completed=").count(), 2, "{text}");

    // Once complete, the task is not asked about again.
    let before = fake
        .requests()
        .iter()
        .filter(|r| r["action"] == "DescribePurgeTasks")
        .count();
    std::thread::sleep(Duration::from_millis(1500));
    let after = fake
        .requests()
        .iter()
        .filter(|r| r["action"] == "DescribePurgeTasks")
        .count();
    assert_eq!(before, after);
}

#[test]
fn a_task_the_provider_failed_is_shown_with_its_urls() {
    let fake = fake_tencent();
    fake.task_status("fail");
    let ep = Edgepurge::new(&fast_tasks(tencent_config(&fake, "", SITE_RULE)));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(1)));
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
    let error = log[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("reports purge task")
            && error.contains("1 of 1 URLs failed: https://cdn.example.com/img/0.png"),
        "{error}"
    );
    assert_eq!(
        log[0]["status"], "succeeded",
        "the request itself was accepted"
    );
    assert!(log[0]["completed_at"].is_null());
}

#[test]
fn a_cloudfront_invalidation_completes_when_get_invalidation_says_completed() {
    let fake = fake_cloudfront();
    let rule = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
"#;
    let config = format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 100
poll_ms = 100
task_check_ms = 200
{}
{rule}"#,
        cloudfront_section(&fake)
    );
    let ep = Edgepurge::new(&config).with_cloudfront_keys();
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(3)));
    let log = ep.settle(Duration::from_secs(20));
    let inv = log[0]["task_id"]
        .as_str()
        .expect("invalidation id")
        .to_owned();
    let gets = wait_for(Duration::from_secs(10), "GetInvalidation calls", || {
        let gets: Vec<Value> = fake
            .requests()
            .into_iter()
            .filter(|r| r["method"] == "GET")
            .collect();
        (!gets.is_empty()).then_some(gets)
    });
    assert!(
        gets.iter().all(|g| g["signature_ok"] == true
            && g["status"] == 200
            && g["path"].as_str().is_some_and(|p| p.ends_with(&inv))),
        "{gets:#?}"
    );
    assert_eq!(completed(&ep.log(&[])), 0, "InProgress is not complete");
    fake.complete();
    wait_for(Duration::from_secs(15), "the records to complete", || {
        (completed(&ep.log(&[])) == 3).then_some(())
    });
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
fn a_sender_can_wait_until_the_provider_confirms_the_purge() {
    let fake = fake_tencent();
    fake.task_status("process");
    let ep = Edgepurge::new(&fast_tasks(tencent_config(&fake, "", SITE_RULE)));
    let server = ep.serve();
    // Purged (the API accepted it) but never confirmed within the wait: said so.
    let a = post_waiting(
        &server,
        &ceph_body("assets", "ObjectCreated:Put", &keys(1)),
        1500,
    );
    assert_eq!(
        (&a["purged"], &a["completed"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{a}"
    );
    assert!(a["waited_ms"].as_u64().is_some_and(|w| w >= 1400), "{a}");

    // Tasks done as soon as they start: the answer waits for the confirmation, then says so.
    fake.task_status("done");
    let b = post_waiting(
        &server,
        &ceph_body("assets", "ObjectCreated:Put", &keys(3)),
        20_000,
    );
    assert_eq!(
        (&b["purged"], &b["completed"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{b}"
    );
    let ids: Vec<i64> = b["records"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let log = ep.log(&[]);
    for id in ids {
        let rec = log
            .iter()
            .find(|r| r["id"] == id)
            .expect("record in the log");
        assert!(ms(&rec["completed_at"]).is_some(), "{rec}");
    }
    // An unknown wait is refused, naming both choices.
    let auth = format!("Bearer {WEBHOOK_TOKEN}");
    let r = edgepurge_testkit::http::request(
        server.addr,
        "POST",
        "/v1/events?wait=fresh",
        &server.addr.to_string(),
        &[("Authorization", &auth)],
        &ceph_body("assets", "ObjectCreated:Put", &keys(1)),
    )
    .expect("POST");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("wait=purged or wait=completed"),
        "{}",
        r.text()
    );
}

#[test]
fn a_task_of_many_urls_is_judged_by_all_of_them_not_the_first_page() {
    let fake = fake_tencent();
    fake.task_status("process");
    let ep = Edgepurge::new(&fast_tasks(tencent_config(&fake, "", SITE_RULE)));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(30)));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 30);
    // Tencent lists 20 entries unless asked for more: the 27th failing must still count.
    fake.set_tasks("done", None);
    fake.set_tasks("fail", Some("https://cdn.example.com/img/27.png"));
    let log = wait_for(Duration::from_secs(15), "the failure to be seen", || {
        let log = ep.log(&[]);
        log.iter()
            .any(|r| {
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("img/27.png"))
            })
            .then_some(log)
    });
    assert_eq!(
        completed(&log),
        0,
        "no record of a failed task is complete: {log:#?}"
    );
    let asked: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r["action"] == "DescribePurgeTasks")
        .collect();
    assert!(
        asked.iter().all(|r| r["body"]["Limit"] == 1000),
        "{asked:#?}"
    );
}
