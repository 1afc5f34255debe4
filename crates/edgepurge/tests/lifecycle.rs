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

/// The site's visitors' view of the CDN, for verification: a real HTTP server (Python's
/// `http.server`) serving files from a temp dir on a free loopback port. It sends sizes
/// (`Content-Length`) but no ETag. Stopped on drop.
struct Edge {
    _dir: tempfile::TempDir,
    _proc: edgepurge_testkit::process::Proc,
    port: u16,
}

impl Edge {
    fn start(files: &[(&str, &str)]) -> Edge {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, body) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, body).expect("write");
        }
        let mut cmd = std::process::Command::new("python3");
        cmd.args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir.path());
        let (proc, line) = edgepurge_testkit::process::Proc::spawn_until(
            "http.server",
            cmd,
            Duration::from_secs(10),
            |l| l.starts_with("Serving HTTP on"),
        );
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("http.server port");
        Edge {
            _dir: dir,
            _proc: proc,
            port,
        }
    }
}

fn verified(log: &[Value], key: &str) -> Vec<Value> {
    log.iter().filter(|r| r["key"] == key).cloned().collect()
}

/// Verification waits for the provider's task, then fetches through the CDN (the URL
/// itself); a URL still stale is purged once more through Tencent (signed, its own task),
/// and a CDN that cannot be reached leaves the record unverifiable, its purge succeeded.
#[test]
fn a_tencent_purge_is_verified_through_the_cdn_once_its_task_is_done() {
    let fake = fake_tencent();
    fake.task_status("process");
    // img/0.png is served as the event describes it (1 byte); img/1.png is an old copy.
    let edge = Edge::start(&[("img/0.png", "x"), ("img/1.png", "old copy")]);
    let rule = format!(
        r#"
[[rules]]
name = "checked"
bucket = "assets"
events = ["created"]
domains = ["http://127.0.0.1:{}"]
provider = "tencent"
verify = true
"#,
        edge.port
    );
    let config = fast_tasks(tencent_config(&fake, "", &rule)).replacen(
        "[dispatch]\n",
        "[dispatch]\nverify_settle_ms = 0\n",
        1,
    );
    let ep = Edgepurge::new(&config);
    let server = ep.serve();
    // ceph_body gives every object size 1 and no ETag.
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/0.png".into(), "img/1.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    // The task still runs: nothing fetched yet.
    std::thread::sleep(Duration::from_millis(1500));
    for r in ep.log(&[]) {
        assert_eq!(r["verified"], "pending", "{r}");
        assert!(r["completed_at"].is_null(), "{r}");
    }

    fake.task_status("done");
    fake.set_tasks("done", None);
    let log = wait_for(Duration::from_secs(30), "every record verified", || {
        let log = ep.log(&[]);
        let done = log.len() == 3 && log.iter().all(|r| r["verified"] != "pending");
        done.then_some(log)
    });
    let fresh = &verified(&log, "img/0.png")[0];
    assert_eq!(fresh["verified"], "fresh", "{fresh}");
    assert_eq!(fresh["verify_note"], "cdn: size 1");
    let stale = verified(&log, "img/1.png");
    assert_eq!(
        stale.len(),
        2,
        "the event's record and its re-purge: {stale:#?}"
    );
    let again = &stale[1];
    assert_eq!(stale[0]["verified"], "stale");
    assert_eq!(
        stale[0]["verify_note"],
        format!(
            "cdn: size 8, the event's is 1; purged again as #{}",
            again["id"]
        )
    );
    assert_eq!(again["status"], "succeeded");
    assert!(
        ms(&again["completed_at"]).is_some(),
        "verified after its own task: {again}"
    );
    assert_eq!(again["verified"], "stale");
    assert_eq!(
        again["verify_note"],
        "cdn: size 8, the event's is 1 (after 1 re-purge)"
    );
    // The re-purge was a Tencent purge like any other: signed, its own task.
    let url = Value::from(format!("http://127.0.0.1:{}/img/1.png", edge.port));
    let purges: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r["action"] == "PurgeUrlsCache")
        .filter(|r| {
            r["body"]["Urls"]
                .as_array()
                .is_some_and(|u| u.contains(&url))
        })
        .collect();
    assert_eq!(purges.len(), 2, "{purges:#?}");
    assert!(purges.iter().all(|r| r["signature_ok"] == true));
    assert_ne!(again["task_id"], stale[0]["task_id"]);

    // The CDN cannot be reached: unverifiable, with why; the purge itself succeeded.
    drop(edge);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/0.png".into()],
    ));
    let log = wait_for(Duration::from_secs(30), "the new record verified", || {
        let log = ep.log(&[]);
        let r = log
            .iter()
            .filter(|r| r["key"] == "img/0.png")
            .nth(1)
            .cloned();
        r.filter(|r| r["verified"] != "pending")
    });
    assert_eq!(log["status"], "succeeded");
    assert_eq!(log["verified"], "unverifiable", "{log}");
    let note = log["verify_note"].as_str().expect("note");
    assert!(note.starts_with("cdn: HEAD: connection failed"), "{note}");
}

/// The whole lifecycle on one rule (`verify` and `warm`): a URL is prefetched only after its
/// purge completed and it was found fresh; a URL still stale is not prefetched, nor is its
/// re-purge while the CDN still serves the old copy.
#[test]
fn only_a_url_verified_fresh_is_warmed() {
    let fake = fake_tencent();
    let edge = Edge::start(&[("img/0.png", "x"), ("img/1.png", "old copy")]);
    let rule = format!(
        r#"
[[rules]]
name = "checked"
bucket = "assets"
events = ["created"]
domains = ["http://127.0.0.1:{}"]
provider = "tencent"
verify = true
warm = true
"#,
        edge.port
    );
    let config = fast_tasks(tencent_config(&fake, "", &rule)).replacen(
        "[dispatch]\n",
        "[dispatch]\nverify_settle_ms = 0\n",
        1,
    );
    let ep = Edgepurge::new(&config);
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/0.png".into(), "img/1.png".into()],
    ));
    let log = wait_for(
        Duration::from_secs(30),
        "every record warmed or not",
        || {
            let log = ep.log(&[]);
            let done = log.len() == 3
                && log
                    .iter()
                    .all(|r| r["verified"] != "pending" && r["warmed"] != "pending");
            done.then_some(log)
        },
    );
    let fresh = &verified(&log, "img/0.png")[0];
    assert_eq!(
        (fresh["verified"].as_str(), fresh["warmed"].as_str()),
        (Some("fresh"), Some("warmed")),
        "{fresh}"
    );
    for stale in verified(&log, "img/1.png") {
        assert_eq!(stale["verified"], "stale", "{stale}");
        assert_eq!(stale["warmed"], "skipped", "{stale}");
        assert_eq!(
            stale["warm_note"],
            "the CDN still served a stale copy: not prefetched"
        );
    }
    let pushes: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r["action"] == "PushUrlsCache")
        .collect();
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    assert_eq!(pushes[0]["body"]["Urls"], fresh["targets"]);
    assert_eq!(fresh["warm_task"], pushes[0]["task_id"]);
}
