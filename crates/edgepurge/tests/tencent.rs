//! The real binary against a loopback Tencent CDN API stand-in that recomputes every TC3
//! signature with the official SDK's signer and answers with Tencent's shapes.

mod common;

use common::*;
use edgepurge_testkit::tencent::{FakeTencent, Options, SESSION_TOKEN};
use std::time::Duration;

fn fake() -> FakeTencent {
    FakeTencent::start(Options {
        token: Some(SESSION_TOKEN.into()),
        domains: vec!["cdn.example.com".into(), "img.example.com".into()],
        ..Default::default()
    })
}

#[test]
fn events_are_purged_through_a_signed_tencent_call() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "",
        r#"
[[rules]]
name = "cos-site"
bucket = "testpic-1253970026"
events = ["cos:ObjectCreated:*", "cos:ObjectRemove:*"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "tencent"
"#,
    ));
    let server = ep.serve();
    let answer = server.send(&fixture("cos-put.json"));
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["targets"], 4);

    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2);
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["rule"], "cos-site");
        assert!(
            rec["request_id"].is_string() && rec["task_id"].is_string(),
            "{rec}"
        );
        assert_eq!(rec["attempts"], 1);
    }
    let put = log
        .iter()
        .find(|r| r["event"] == "ObjectCreated:Put")
        .unwrap();
    assert_eq!(put["key"], "img/猫 cat+1.jpg");
    assert_eq!(put["bucket"], "testpic-1253970026");

    let mut purged = fake.purged();
    purged.sort();
    assert_eq!(
        purged,
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://cdn.example.com/old.css",
            "https://img.example.com/img/%E7%8C%AB%20cat+1.jpg",
            "https://img.example.com/old.css",
        ]
    );
    // One batched request, checked by the stand-in: signature, token, version, action.
    let reqs = fake.requests();
    let purges: Vec<_> = reqs
        .iter()
        .filter(|r| r["action"] == "PurgeUrlsCache")
        .collect();
    assert_eq!(purges.len(), 1, "{reqs:#?}");
    let p = purges[0];
    assert_eq!(p["signature_ok"], true);
    assert!(p["error_code"].is_null(), "{p}");
    assert_eq!(p["headers"]["x-tc-version"], "2018-06-06");
    assert_eq!(
        p["headers"]["x-tc-token"], "***",
        "session token sent (masked by the fake)"
    );
    let log_task = put["task_id"].as_str().unwrap();
    assert_eq!(p["task_id"].as_str(), Some(log_task));
    // The lane asked for the account's quota at start.
    assert!(reqs.iter().any(|r| r["action"] == "DescribePurgeQuota"));
}

#[test]
fn a_burst_needs_only_as_many_calls_as_the_per_request_maximum_forces() {
    let fake = fake();
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE).replace("linger_ms = 100", "linger_ms = 3000"),
    );
    let server = ep.serve();
    // 2,500 distinct objects, plus 500 repeats of ones already pending, in 30 posts.
    for chunk in 0..25 {
        let keys: Vec<String> = (0..100).map(|i| format!("burst/{chunk}/{i}.js")).collect();
        server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    }
    // Two full batches left at once; the last 500 linger. Changing them again merges.
    for chunk in 20..25 {
        let keys: Vec<String> = (0..100).map(|i| format!("burst/{chunk}/{i}.js")).collect();
        let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
        assert_eq!(answer["merged"], 100, "repeats merge into pending targets");
    }
    edgepurge_testkit::wait_for(Duration::from_secs(30), "2,500 URLs purged", || {
        (fake.purged().len() >= 2500).then_some(())
    });
    let sizes: Vec<usize> = fake
        .purges()
        .iter()
        .map(|r| r["body"]["Urls"].as_array().map_or(0, |a| a.len()))
        .collect();
    assert_eq!(sizes.len(), 3, "⌈2500/1000⌉ calls, got {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 2500);
    assert!(sizes.iter().all(|&n| n <= 1000));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 3000);
}

#[test]
fn dir_mode_uses_purge_path_cache_with_flush() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "",
        r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
prefix = "docs/"
domains = ["https://cdn.example.com"]
provider = "tencent"
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
    ep.settle(Duration::from_secs(20));
    let purges = fake.purges();
    assert_eq!(purges.len(), 1);
    assert_eq!(purges[0]["action"], "PurgePathCache");
    assert_eq!(purges[0]["body"]["FlushType"], "flush");
    let mut paths = fake.purged();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "https://cdn.example.com/docs/",
            "https://cdn.example.com/docs/a/"
        ]
    );
}

#[test]
fn transient_errors_are_retried_and_the_log_shows_attempts() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail("InternalError.CdnSystemError", 1);
    fake.fail_http(502, 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempts"], 3);
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    let outcomes: Vec<String> = reqs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert_eq!(outcomes, vec!["\"retry\"", "\"retry\"", "\"succeeded\""]);
    assert!(reqs.contains("InternalError.CdnSystemError"), "{reqs}");
    assert!(reqs.contains("HTTP 502"), "{reqs}");
}

#[test]
fn a_redirect_is_a_failure_and_is_never_followed() {
    // Before, a 302 made the client re-send the signed call (with X-TC-Token) to the other
    // host and record `succeeded`.
    let fake = fake();
    let elsewhere = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = ep.serve();
    for status in [301, 302, 307, 308] {
        fake.answer_raw(
            status,
            "text/html",
            "moved",
            &[("Location", &elsewhere.endpoint())],
            1,
        );
    }
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["r.css".into()]));
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(
        log[0]["attempts"], 5,
        "four redirects, then the real answer"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "nothing reached the redirect's target"
    );
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    assert_eq!(reqs.matches("not followed").count(), 4, "{reqs}");
    assert!(
        reqs.contains("HTTP 307 Temporary Redirect redirect to"),
        "{reqs}"
    );
}

#[test]
fn answers_that_are_not_tencent_shaped_are_retried_with_their_start_logged() {
    // Before, an HTML page with HTTP 200, truncated JSON or a proxy's 403 page was fatal on
    // the first try.
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.answer_raw(
        200,
        "text/html",
        "<html><body>captive portal</body></html>",
        &[],
        1,
    );
    fake.answer_raw(200, "application/json", "{\"Response\": {\"TaskId", &[], 1);
    fake.answer_raw(403, "text/html", "<h1>Forbidden by proxy</h1>", &[], 1);
    fake.answer_raw(200, "application/json", "", &[], 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["h.css".into()]));
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 5);
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    for start in ["captive portal", "TaskId", "Forbidden by proxy"] {
        assert!(reqs.contains(start), "{start} in {reqs}");
    }
    assert_eq!(fake.purged(), vec!["https://cdn.example.com/h.css"]);
    // Bounded: an endpoint that never answers like Tencent ends `dead` after max_attempts.
    fake.answer_raw(200, "text/html", "<html>not an API</html>", &[], 5);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["never.css".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the record to be dead", || {
        ep.log(&[])
            .into_iter()
            .find(|r| r["key"] == "never.css" && r["status"] == "dead")
    });
}

#[test]
fn fatal_errors_dead_letter_with_the_reason_and_retry_requeues() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail("UnauthorizedOperation.CdnHostUnauthorized", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["b.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1);
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("UnauthorizedOperation.CdnHostUnauthorized"),
        "{}",
        log[0]
    );
    let dead = ep.log(&["--status", "dead"]);
    assert_eq!(dead.len(), 1);
    let out = ep.ok(&["retry", "--json"]);
    assert_eq!(out.trim(), r#"{"requeued":1}"#);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(fake.purged(), vec!["https://cdn.example.com/b.css"]);
}

#[test]
fn a_wrong_secret_is_refused_by_the_signature_check_and_never_logged() {
    let fake = fake();
    let mut ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    for (k, v) in &mut ep.env {
        if k == "EP_TEST_SECRET_KEY" {
            *v = "wrong-secret-key-EXAMPLE".into();
        }
    }
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["c.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    let err = log[0]["error"].as_str().unwrap();
    assert!(err.contains("AuthFailure.SignatureFailure"), "{err}");
    let everything = ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
    assert!(!everything.contains("wrong-secret-key-EXAMPLE"));
    assert!(!everything.contains(SESSION_TOKEN));
}

#[test]
fn the_accounts_batch_size_from_describe_purge_quota_is_respected() {
    let fake = FakeTencent::start(Options {
        url_batch: Some(300),
        ..Default::default()
    });
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE).replace("linger_ms = 100", "linger_ms = 1000"),
    );
    let server = ep.serve();
    let keys: Vec<String> = (0..700).map(|i| format!("q/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    ep.settle(Duration::from_secs(20));
    let sizes: Vec<usize> = fake
        .purges()
        .iter()
        .map(|r| r["body"]["Urls"].as_array().map_or(0, |a| a.len()))
        .collect();
    assert_eq!(sizes, vec![300, 300, 100]);
    let errors = &fake.stats()["errors"];
    assert!(errors.as_object().is_none_or(|e| e.is_empty()), "{errors}");
}

#[test]
fn the_daily_quota_stops_sending_and_says_why() {
    let fake = FakeTencent::start(Options {
        url_quota: Some(3),
        ..Default::default()
    });
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(std::process::Stdio::from(
        std::fs::File::create(&log_path).unwrap(),
    ));
    let keys: Vec<String> = (0..5).map(|i| format!("quota/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    edgepurge_testkit::wait_for(Duration::from_secs(20), "3 purged, 2 waiting", || {
        let log = ep.log(&[]);
        let ok = log.iter().filter(|r| r["status"] == "succeeded").count();
        let queued = log.iter().filter(|r| r["status"] == "queued").count();
        (ok == 3 && queued == 2).then_some(())
    });
    // It learned the account's quota up front and did not call beyond it.
    assert_eq!(fake.purged().len(), 3);
    let errors = fake.stats()["errors"].clone();
    assert!(
        errors
            .get("LimitExceeded.CdnPurgeUrlExceedDayLimit")
            .is_none(),
        "{errors}"
    );
    // `status` says why the rest waits (the server's lane state, with its reset time).
    let status = ep.ok(&["status", "--server", &server.addr.to_string()]);
    assert!(status.contains("tencent"), "{status}");
    assert!(
        status.contains("until") && status.contains("quota"),
        "the stall says why: {status}"
    );
    // ...and so does the log, once.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        log.matches("today's quota is used up: queued purges wait")
            .count(),
        1,
        "{log}"
    );
}

/// Hot keys can spend a 10,000-URL day in minutes: the operator hears of it at the share set
/// (`[dispatch] quota_warn_percent`), once a quota day, before purges stop.
#[test]
fn the_quota_warning_comes_once_when_the_share_is_used() {
    let fake = FakeTencent::start(Options {
        url_quota: Some(10),
        ..Default::default()
    });
    let config = tencent_config(&fake, "max_urls_per_request = 2", SITE_RULE)
        .replace("[dispatch]\n", "[dispatch]\nquota_warn_percent = 50\n");
    let ep = Edgepurge::new(&config);
    let log_path = ep.dir.path().join("serve.log");
    let server = ep.serve_with_stderr(std::process::Stdio::from(
        std::fs::File::create(&log_path).unwrap(),
    ));
    let warnings = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("of today's url quota is used"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // 4 of 10: below the share, no warning.
    let keys: Vec<String> = (0..4).map(|i| format!("hot/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    ep.settle(Duration::from_secs(20));
    assert!(warnings().is_empty(), "{:?}", warnings());
    // 8 of 10: one warning naming the figures, however many more batches go.
    let keys: Vec<String> = (4..8).map(|i| format!("hot/{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    ep.settle(Duration::from_secs(20));
    let said = edgepurge_testkit::wait_for(Duration::from_secs(10), "the warning", || {
        let w = warnings();
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("WARN"), "{}", said[0]);
    // Counted when its batch is formed: 6 or 8 (batches of 2 go side by side) of 10.
    assert!(
        (said[0].contains("60% of today's") && said[0].contains("used=6"))
            || (said[0].contains("80% of today's") && said[0].contains("used=8")),
        "{}",
        said[0]
    );
    assert!(said[0].contains("limit=10"), "{}", said[0]);
    // The local count is published as it goes, not only when the provider is asked.
    let metrics = edgepurge_testkit::http::get(server.addr, "/metrics")
        .unwrap()
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "edgepurge_quota_remaining{lane=\"tencent\",kind=\"url\"} 2"),
        "{metrics}"
    );
    assert_eq!(warnings().len(), 1);
}

#[test]
fn the_rate_limit_is_never_exceeded() {
    let fake = FakeTencent::start(Options {
        rate: Some(20),
        ..Default::default()
    });
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "max_dirs_per_request = 1\ndir_daily_quota = 0\nconcurrency = 8",
        r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "tencent"
mode = "dir"
allow_host_purge = true
"#,
    ));
    let server = ep.serve();
    let keys: Vec<String> = (0..60).map(|i| format!("d{i}/x.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    let stats = fake.stats();
    assert_eq!(stats["paths_purged"], 60);
    assert!(
        stats["errors"].get("RequestLimitExceeded").is_none(),
        "edgepurge exceeded 20 requests/s: {stats}"
    );
}

#[test]
fn manual_purge_goes_through_the_provider_and_is_logged() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(&fake, "", ""));
    let list = ep.dir.path().join("urls.txt");
    std::fs::write(
        &list,
        "# hot files\nhttps://cdn.example.com/a.js\n\nhttps://img.example.com/b.png\n",
    )
    .unwrap();
    let out = ep.ok(&[
        "purge",
        "https://cdn.example.com/c.css",
        "--file",
        list.to_str().unwrap(),
    ]);
    assert!(out.contains("3 succeeded"), "{out}");
    assert!(out.contains("task ids:"), "{out}");
    let mut purged = fake.purged();
    purged.sort();
    assert_eq!(
        purged,
        vec![
            "https://cdn.example.com/a.js",
            "https://cdn.example.com/c.css",
            "https://img.example.com/b.png"
        ]
    );
    let log = ep.log(&[]);
    assert_eq!(log.len(), 3);
    assert!(log
        .iter()
        .all(|r| r["event"] == "manual" && r["status"] == "succeeded"));

    // A directory purge, and a manual purge while a server holds the lane.
    let server = ep.serve();
    let out = ep.ok(&["purge", "--dir", "https://cdn.example.com/static/"]);
    assert!(out.contains("1 succeeded"), "{out}");
    assert!(fake
        .purged()
        .contains(&"https://cdn.example.com/static/".to_owned()));
    let out = ep.ok(&["purge", "--json", "https://cdn.example.com/d.css"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["provider"], "tencent");
    assert_eq!(v["statuses"]["succeeded"], 1, "{v}");
    assert_eq!(v["task_ids"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["not_succeeded"], serde_json::json!([]));
    let out = ep.ok(&[
        "purge",
        "--json",
        "--no-wait",
        "https://cdn.example.com/e.css",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["queued"].as_u64(), v["kind"].as_str()),
        (Some(1), Some("url"))
    );
    drop(server);

    let bad = ep.run(&["purge", "cdn.example.com/no-scheme"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a URL"));
    let bad = ep.run(&["purge", "--dir", "https://cdn.example.com/file.css"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must end with /"));
}

#[test]
fn one_unknown_domain_is_bisected_out_and_the_rest_is_purged() {
    let fake = fake(); // knows cdn.example.com and img.example.com only
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "",
        r#"
[[rules]]
name = "good"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "tencent"

[[rules]]
name = "typo"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.exmaple.com"]
provider = "tencent"
"#,
    ));
    let server = ep.serve();
    let keys: Vec<String> = (0..4).map(|i| format!("b/{i}.js")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    let good: Vec<_> = log.iter().filter(|r| r["rule"] == "good").collect();
    let typo: Vec<_> = log.iter().filter(|r| r["rule"] == "typo").collect();
    assert_eq!((good.len(), typo.len()), (4, 4));
    assert!(good.iter().all(|r| r["status"] == "succeeded"), "{good:?}");
    for r in &typo {
        assert_eq!(r["status"], "dead", "{r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("ResourceNotFound.CdnHostNotExists"),
            "{r}"
        );
    }
    assert_eq!(fake.purged().len(), 4);
}

#[test]
fn a_domain_missing_from_the_account_costs_one_call_not_four_per_event() {
    let fake = fake(); // knows cdn.example.com and img.example.com only
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "",
        r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com", "https://cdn.exmaple.com"]
provider = "tencent"
"#,
    ));
    let server = ep.serve();
    let keys: Vec<String> = (0..200).map(|i| format!("first/{i}.js")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log.len(), 200);
    // The mixed request is refused, sent again once per domain, and the missing domain is
    // remembered: three calls where bisecting took about four per event.
    // A record is dead as soon as its bad-domain job is, which can be before the good
    // domain's batch is sent again: wait for that one.
    let purged = edgepurge_testkit::wait_for(Duration::from_secs(30), "the good domain", || {
        let p = fake.purged();
        (p.len() >= 200).then_some(p)
    });
    let calls = fake.purges().len();
    assert!(calls <= 3, "{calls} calls for 200 events");
    assert_eq!(purged.len(), 200, "every URL of the good domain was purged");
    assert!(purged
        .iter()
        .all(|u| u.starts_with("https://cdn.example.com/")));
    for r in &log {
        // The record covers both domains: the bad one makes it dead, with the reason.
        assert_eq!(r["status"], "dead", "{r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("ResourceNotFound.CdnHostNotExists"),
            "{r}"
        );
    }
    // Later events: the missing domain's URLs fail without a call.
    let more: Vec<String> = (0..100).map(|i| format!("second/{i}.js")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &more));
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(fake.purges().len(), calls + 1);
    let second = log
        .iter()
        .find(|r| r["key"] == "second/0.js")
        .unwrap()
        .clone();
    assert!(
        second["error"].as_str().unwrap().contains("refused lately"),
        "{second}"
    );
    assert_eq!(fake.purged().len(), 300);
}

#[test]
fn a_provider_outage_takes_the_lane_down_and_the_backlog_drains_when_it_is_back() {
    let fake = fake();
    // Production-like retry settings: per-batch backoff alone would wait up to minutes and
    // dead-letter after 5 attempts.
    let config = tencent_config(&fake, "max_urls_per_request = 100", SITE_RULE)
        .replace("backoff_max_ms = 500", "backoff_max_ms = 300000")
        .replace("backoff_base_ms = 100", "backoff_base_ms = 1000")
        .replace("[dispatch]", "[dispatch]\nprobe_interval_ms = 1000");
    let ep = Edgepurge::new(&config);
    let server = ep.serve();
    fake.outage(Some(503));
    let keys: Vec<String> = (0..3000).map(|i| format!("deploy/{i:04}.js")).collect();
    for chunk in keys.chunks(500) {
        server.send(&ceph_body("assets", "ObjectCreated:Put", chunk));
    }
    let (code, down) =
        edgepurge_testkit::wait_for(Duration::from_secs(10), "the lane to go down", || {
            let r = edgepurge_testkit::http::get(server.addr, "/healthz").ok()?;
            let h = r.json();
            (h["lanes"][0]["state"] == "down").then_some((r.status, h))
        });
    assert_eq!(
        (code, &down["status"]),
        (503, &serde_json::json!("degraded")),
        "{down}"
    );
    std::thread::sleep(Duration::from_secs(6));
    let during = fake.purges().len();
    // 3 failures in a row, what was in flight (4 slots), then one probe a second.
    assert!(
        during <= 3 + 4 + 10,
        "{during} calls in ~8 s of outage (per-batch retries would send one per batch)"
    );
    fake.outage(None);
    let back = std::time::Instant::now();
    let log = ep.settle(Duration::from_secs(30));
    let drained = back.elapsed();
    assert_eq!(log.len(), 3000);
    assert!(
        log.iter().all(|r| r["status"] == "succeeded"),
        "the outage dead-lettered nothing"
    );
    // The next probe within 1 s, then 30 batches at 20/s: well under 10 s (it was minutes).
    assert!(drained < Duration::from_secs(10), "drained in {drained:?}");
    let h = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    assert_eq!(h["status"], "ok", "{h}");
}

#[test]
fn metrics_count_a_known_workload_exactly() {
    let fake = fake();
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = ep.serve();
    let keys: Vec<String> = (0..3).map(|i| format!("m/{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    assert_eq!(
        server.post(b"{\"Records\": 5}", Some(WEBHOOK_TOKEN)).status,
        400
    );
    assert_eq!(server.post(b"{}", Some("wrong")).status, 401);
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    let r = edgepurge_testkit::http::get(server.addr, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    for line in [
        "edgepurge_bodies_total{outcome=\"accepted\"} 1",
        "edgepurge_bodies_total{outcome=\"refused\"} 1",
        "edgepurge_bodies_total{outcome=\"unauthorized\"} 1",
        "edgepurge_events_total{format=\"ceph\"} 3",
        "edgepurge_targets_queued_total 3",
        "edgepurge_targets_merged_total 0",
        "edgepurge_provider_requests_total{provider=\"tencent\",lane=\"tencent\",outcome=\"succeeded\"} 1",
        "edgepurge_batch_targets_sum{lane=\"tencent\"} 3.0",
        "edgepurge_event_to_purged_seconds_count{lane=\"tencent\"} 1",
        "edgepurge_queue_pending{lane=\"tencent\"} 0",
        "edgepurge_queue_dead_batches{lane=\"tencent\"} 0",
        // The account's 10,000 less the 3 just purged.
        "edgepurge_quota_remaining{lane=\"tencent\",kind=\"url\"} 9997",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    let states: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("edgepurge_lane_state{") && l.ends_with(" 1"))
        .collect();
    assert_eq!(states.len(), 1, "one state per lane: {states:?}");
}

// --- warming (rules with warm = true): PushUrlsCache after the purge completed

const WARM_RULE: &str = r#"
[[rules]]
name = "warm"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
warm = true
"#;

/// A config whose purge tasks are asked about 200 ms after the purge, plus `dispatch`.
fn warm_config(fake: &FakeTencent, dispatch: &str) -> String {
    tencent_config(fake, "", WARM_RULE).replacen(
        "[dispatch]\n",
        &format!("[dispatch]\ntask_check_ms = 200\n{dispatch}"),
        1,
    )
}

/// Waits until `n` records are there and none is waiting to be warmed.
fn warmed(ep: &Edgepurge, n: usize) -> Vec<serde_json::Value> {
    edgepurge_testkit::wait_for(Duration::from_secs(30), "every record warmed", || {
        let log = ep.log(&[]);
        let done = log.len() == n
            && log
                .iter()
                .all(|r| r["warmed"].is_string() && r["warmed"] != "pending");
        done.then_some(log)
    })
}

#[test]
fn a_warm_rule_prefetches_completed_purges_with_a_signed_push_urls_cache() {
    let fake = fake();
    let ep = Edgepurge::new(&warm_config(&fake, ""));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["a.png".into(), "b c.png".into()],
    ));
    server.send(&ceph_body(
        "assets",
        "ObjectRemoved:Delete",
        &["gone.png".into()],
    ));
    let log = warmed(&ep, 3);
    let pushes = fake.pushes();
    assert_eq!(pushes.len(), 2, "one push per record: {pushes:#?}");
    for rec in log.iter().filter(|r| r["event"] == "ObjectCreated:Put") {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["warmed"], "warmed", "{rec}");
        assert_eq!(rec["warm_note"], "1 URL(s) prefetched", "{rec}");
        // The push carried the purged URL, signed; its task id is the record's.
        let push = pushes
            .iter()
            .find(|p| p["body"]["Urls"] == rec["targets"])
            .unwrap_or_else(|| panic!("a push of {}: {pushes:#?}", rec["targets"]));
        assert_eq!(push["signature_ok"], true, "{push}");
        assert_eq!(push["error_code"], serde_json::Value::Null, "{push}");
        assert_eq!(rec["warm_task"], push["task_id"], "{rec}");
        // Pushed after the purge completed, never before.
        let purge_done = ms(&rec["completed_at"]).expect("completed");
        assert!(
            (push["time"].as_f64().unwrap() * 1000.0) as i64 >= purge_done - 5,
            "{push} before {rec}"
        );
    }
    assert_eq!(
        log.iter()
            .find(|r| r["event"] == "ObjectRemoved:Delete")
            .map(|r| (r["warmed"].clone(), r["warm_note"].clone())),
        Some(("skipped".into(), "a delete: nothing to prefetch".into()))
    );
    let text = ep.ok(&["log"]);
    assert!(
        text.contains("warmed=warmed (1 URL(s) prefetched) warm_task="),
        "{text}"
    );
    // Its quota was read (apart from the purge quota).
    assert!(fake
        .requests()
        .iter()
        .any(|r| r["action"] == "DescribePushQuota" && r["signature_ok"] == true));
}

#[test]
fn the_prefetch_quota_is_counted_and_not_exceeded() {
    let fake = FakeTencent::start(Options {
        token: Some(SESSION_TOKEN.into()),
        push_quota: Some(2),
        ..Default::default()
    });
    let ep = Edgepurge::new(&warm_config(&fake, ""));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["1.png".into(), "2.png".into(), "3.png".into()],
    ));
    let log = warmed(&ep, 3);
    let outcomes: Vec<&str> = log.iter().filter_map(|r| r["warmed"].as_str()).collect();
    assert_eq!(outcomes, ["warmed", "warmed", "failed"], "{log:#?}");
    assert_eq!(
        log[2]["warm_note"],
        "the daily prefetch quota would be exceeded (2 of 2 URLs used today; not sent)"
    );
    assert_eq!(fake.pushes().len(), 2, "nothing sent beyond the quota");
    // Purges are not held back by the prefetch quota.
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn prefetch_refusals_are_recorded_with_tencents_code_and_never_retried() {
    let fake = fake();
    let ep = Edgepurge::new(&warm_config(&fake, ""));
    let server = ep.serve();
    // Throttled once: tried again, then warmed.
    fake.fail_push(
        "LimitExceeded.CdnHostOpTooOften",
        "Domain name operation too frequent",
        1,
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["1.png".into()]));
    let log = warmed(&ep, 1);
    assert_eq!(log[0]["warmed"], "warmed", "{log:#?}");
    assert_eq!(fake.pushes().len(), 2);
    // The domain is not the account's: failed at once, with Tencent's code.
    fake.fail_push(
        "ResourceNotFound.CdnHostNotExists",
        "The domain name does not exist under this account",
        1,
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["2.png".into()]));
    let log = warmed(&ep, 2);
    assert_eq!(log[1]["warmed"], "failed");
    assert_eq!(
        log[1]["warm_note"],
        "PushUrlsCache: ResourceNotFound.CdnHostNotExists: The domain name does not exist under \
         this account"
    );
    assert_eq!(fake.pushes().len(), 3);
    // The day's quota is spent (Tencent says so): failed, and the next record is not sent.
    fake.fail_push(
        "LimitExceeded.CdnPushExceedDayLimit",
        "The number of URLs to be prefetched exceeds the daily limit.",
        1,
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["3.png".into()]));
    let log = warmed(&ep, 3);
    assert_eq!(log[2]["warmed"], "failed");
    let note = log[2]["warm_note"].as_str().unwrap();
    assert!(
        note.starts_with(
            "the provider's daily prefetch quota is spent: PushUrlsCache: \
             LimitExceeded.CdnPushExceedDayLimit"
        ),
        "{note}"
    );
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["4.png".into()]));
    let log = warmed(&ep, 4);
    assert_eq!(log[3]["warmed"], "failed");
    assert_eq!(
        log[3]["warm_note"],
        "the provider's daily prefetch quota is spent (not sent)"
    );
    // Nothing is retried later: four pushes in all, and no more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.pushes().len(), 4);
    assert!(ep.log(&[]).iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn prefetches_keep_their_own_rate() {
    let fake = fake();
    let ep = Edgepurge::new(&warm_config(&fake, "warm_rate_per_s = 2\n"));
    let server = ep.serve();
    let keys: Vec<String> = (0..8).map(|i| format!("{i}.png")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    warmed(&ep, 8);
    let times: Vec<f64> = fake
        .pushes()
        .iter()
        .map(|p| p["time"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 8);
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().filter(|u| **u < t + 0.95).count();
        assert!(
            in_window <= 2,
            "{in_window} pushes within 1 s of {t}: {times:?}"
        );
    }
}

#[test]
fn the_stand_in_accepts_the_official_cdn_client_for_prefetches() {
    let out = std::process::Command::new(edgepurge_testkit::python())
        .arg(edgepurge_testkit::repo_root().join("testkit/fake_tencent_cdn.py"))
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
        "DescribePushQuota: mainland 3/5, 4 left",
        "4 URLs over a batch of 3: LimitExceeded.CdnPushExceedBatchLimit",
        "daily quota (4 used): LimitExceeded.CdnPushExceedDayLimit",
        "wrong key: AuthFailure.SignatureFailure",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
}

/// Eight images and a stylesheet, one event each, with 5 URLs of quota left today.
fn collapse_run(url_quota: u64) -> (FakeTencent, Edgepurge) {
    let fake = FakeTencent::start(Options {
        url_quota: Some(url_quota),
        ..Default::default()
    });
    let extra = format!("url_daily_quota = {url_quota}\ncollapse_to_dir_over = 3");
    let ep = Edgepurge::new(&tencent_config(&fake, &extra, SITE_RULE));
    let server = ep.serve();
    let mut keys: Vec<String> = (0..8).map(|i| format!("img/{i}.png")).collect();
    keys.push("css/site.css".into());
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    ep.settle(Duration::from_secs(20));
    drop(server);
    (fake, ep)
}

/// `collapse_to_dir_over`: the day's URL quota (enforced by the stand-in) would not cover the
/// pending URLs, so the eight in img/ go as one directory purge, counted against the
/// directory quota; the lone stylesheet stays a URL. Every record says what happened.
#[test]
fn urls_the_quota_cannot_cover_are_purged_as_their_directory() {
    let (fake, ep) = collapse_run(5);
    let purges = fake.purges();
    let actions: Vec<&str> = purges
        .iter()
        .map(|p| p["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions.len(), 2, "{purges:?}");
    assert!(actions.contains(&"PurgePathCache") && actions.contains(&"PurgeUrlsCache"));
    let mut purged = fake.purged();
    purged.sort();
    assert_eq!(
        purged,
        vec![
            "https://cdn.example.com/css/site.css",
            "https://cdn.example.com/img/"
        ]
    );
    let errors = fake.stats()["errors"].clone();
    assert!(
        errors.as_object().is_none_or(|e| e.is_empty()),
        "no call beyond a quota: {errors}"
    );
    let log = ep.log(&[]);
    assert_eq!(log.len(), 9);
    for r in &log {
        assert_eq!(r["status"], "succeeded", "{r}");
        let key = r["key"].as_str().unwrap();
        if key.starts_with("img/") {
            assert_eq!(
                r["note"], "collapsed into dir purge https://cdn.example.com/img/",
                "{r}"
            );
        } else {
            assert!(r["note"].is_null(), "{r}");
        }
    }
    let text = ep.ok(&["log"]);
    assert_eq!(
        text.matches("note: collapsed into dir purge https://cdn.example.com/img/")
            .count(),
        8,
        "{text}"
    );
}

/// With the quota ample, nothing collapses: nine URLs, no directory purge, no notes.
#[test]
fn urls_the_quota_covers_are_not_collapsed() {
    let (fake, ep) = collapse_run(100);
    assert!(fake
        .purges()
        .iter()
        .all(|p| p["action"] == "PurgeUrlsCache"));
    assert_eq!(fake.purged().len(), 9);
    assert!(ep.log(&[]).iter().all(|r| r["note"].is_null()));
}

/// A rule's `min_interval_ms` (config file): a key overwritten ten times right after its purge
/// is held, and purged once more when the interval is over, after its last change; each held
/// record says until when.
#[test]
fn a_hot_key_is_held_for_the_rules_min_interval_and_purged_after_its_last_change() {
    let fake = fake();
    let rule = format!("{SITE_RULE}min_interval_ms = 3000\n");
    let ep = Edgepurge::new(&tencent_config(&fake, "", &rule));
    let server = ep.serve();
    let key = vec!["hot/feed.json".to_owned()];
    server.send(&ceph_body("assets", "ObjectCreated:Put", &key));
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the first purge", || {
        (fake.purges().len() == 1).then_some(())
    });
    for _ in 0..10 {
        server.send(&ceph_body("assets", "ObjectCreated:Put", &key));
        std::thread::sleep(Duration::from_millis(30));
    }
    let last_change = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    ep.settle(Duration::from_secs(20));
    let times: Vec<f64> = fake
        .purges()
        .iter()
        .map(|p| p["time"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 2, "ten changes, one more purge: {times:?}");
    assert!(times[1] > last_change, "purged after the last change");
    assert!(
        times[1] - times[0] >= 2.95,
        "not again within the interval: {times:?}"
    );
    let log = ep.log(&[]);
    assert_eq!(log.len(), 11);
    let held: Vec<&str> = log.iter().filter_map(|r| r["note"].as_str()).collect();
    assert_eq!(held.len(), 10, "{log:?}");
    assert!(held
        .iter()
        .all(|n| n.starts_with("held until 20") && n.ends_with("Z (min_interval_ms)")));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
}
