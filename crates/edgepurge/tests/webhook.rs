//! The webhook's contract: authenticate, refuse bad input whole and clearly, store nothing
//! unless it answers 200, and answer 503 (so the sender retries) when the store cannot write.

mod common;

use common::*;
use edgepurge_testkit::http;
use edgepurge_testkit::tencent::{FakeTencent, Options};
use std::process::{Command, Stdio};
use std::time::Duration;

fn setup() -> (FakeTencent, Edgepurge, Server) {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE)
            .replace("[server]", "[server]\nmax_body_bytes = 4096"),
    );
    let server = ep.serve();
    (fake, ep, server)
}

#[test]
fn callers_need_the_bearer_token() {
    let (_fake, ep, server) = setup();
    let body = ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]);
    let none = server.post(&body, None);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(
        none.text().contains("Authorization: Bearer"),
        "{}",
        none.text()
    );
    let wrong = server.post(&body, Some("not-the-token"));
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains(WEBHOOK_TOKEN));
    assert!(ep.log(&[]).is_empty(), "nothing stored for refused calls");
    assert_eq!(server.post(&body, Some(WEBHOOK_TOKEN)).status, 200);
    assert_eq!(ep.log(&[]).len(), 1);
    // The caller is checked before the body is read: an oversized body from a stranger is
    // refused for who sent it, not for its size.
    let big = vec![b'x'; 64 * 1024];
    assert_eq!(server.post(&big, Some("not-the-token")).status, 401);
    assert_eq!(server.post(&big, Some(WEBHOOK_TOKEN)).status, 413);
}

#[test]
fn bad_bodies_are_refused_whole_with_a_precise_error() {
    let (_fake, ep, server) = setup();
    let good = r#"{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"assets"},"object":{"key":"ok.css"}}}"#;
    let bad = r#"{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"assets"},"object":{}}}"#;
    let cases: Vec<(String, u16, &str)> = vec![
        ("".into(), 400, "body is empty"),
        ("{not json".into(), 400, "body is not JSON"),
        (
            r#"{"hello": 1}"#.into(),
            400,
            "unrecognized notification format",
        ),
        (
            format!(r#"{{"Records": [{good}, {bad}]}}"#),
            400,
            "Records[1].s3.object.key: missing",
        ),
        ("x".repeat(5000), 413, "max_body_bytes (4096 bytes)"),
        // Was answered 200 with 0 accepted: the last `Records` won.
        (
            format!(r#"{{"Records": [{good}], "Records": []}}"#),
            400,
            "duplicate key \"Records\"",
        ),
    ];
    for (body, status, want) in cases {
        let r = server.post(body.as_bytes(), Some(WEBHOOK_TOKEN));
        assert_eq!(r.status, status, "{}", r.text());
        let err = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(err.contains(want), "{err:?} lacks {want:?}");
        assert!(err.contains("nothing was stored"), "{err}");
    }
    assert!(
        ep.log(&[]).is_empty(),
        "a refused body stores nothing, not even its good records"
    );
}

#[test]
fn test_events_and_probes_are_answered_without_storing() {
    let (_fake, ep, server) = setup();
    let r = server.send(&fixture("aws-s3-test-event.json"));
    assert_eq!(r["accepted"], 0);
    assert_eq!(r["notices"][0], "s3:TestEvent ignored");
    let head = http::request(server.addr, "HEAD", "/v1/events", "x", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(ep.log(&[]).is_empty());
    let health = http::get(server.addr, "/healthz").unwrap().json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["lanes"][0]["lane"], "tencent");
    assert_eq!(http::get(server.addr, "/readyz").unwrap().status, 200);
}

#[test]
fn odd_but_valid_input_is_answered_not_crashed_on() {
    let (_fake, ep, server) = setup();
    let body = br#"{"Records":[{"eventSource":"ceph:s3","eventName":"\u00e9\u00e9\u00e9","s3":{"bucket":{"name":"assets"},"object":{"key":"img/../../etc/passwd"}}}]}"#;
    let r = server.post(body, Some(WEBHOOK_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/../../secret.css".into()],
    );
    let r = server.post(&body, Some(WEBHOOK_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["targets"], 0, "a key with '..' purges nothing");
    let log = ep.log(&["--rule", "site"]);
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("'..' path segment"),
        "{log:?}"
    );
}

#[test]
fn unmatched_events_are_logged_as_skipped_with_the_reason() {
    let (_fake, ep, server) = setup();
    server.send(&ceph_body(
        "other-bucket",
        "ObjectCreated:Put",
        &["x.css".into()],
    ));
    let log = ep.log(&[]);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "skipped");
    assert!(log[0]["error"]
        .as_str()
        .unwrap()
        .contains("no enabled rule matches bucket \"other-bucket\""));
}

#[test]
fn a_locked_store_answers_503_and_the_sender_can_retry() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE).replace("[store]", "[store]\nbusy_timeout_ms = 300"),
    );
    let server = ep.serve();
    // Another process holds SQLite's write lock.
    let mut locker = lock_store(&ep.dir.path().join("edgepurge.db"));

    let body = ceph_body("assets", "ObjectCreated:Put", &["locked.css".into()]);
    let r = server.post(&body, Some(WEBHOOK_TOKEN));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.text().contains("retry later"));

    drop(locker.stdin.take()); // releases the lock
    locker.wait().unwrap();
    let r = server.post(&body, Some(WEBHOOK_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "succeeded");
}

#[test]
fn every_sender_hears_503_within_one_busy_timeout_while_the_store_is_locked() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE).replace("[store]", "[store]\nbusy_timeout_ms = 1000"),
    );
    let server = ep.serve();
    let mut locker = lock_store(&ep.dir.path().join("edgepurge.db"));
    let addr = server.addr;
    // 40 senders at once, then 20 more spread over the next 2 s.
    let senders: Vec<_> = (0..60u64)
        .map(|i| {
            std::thread::spawn(move || {
                if i >= 40 {
                    std::thread::sleep(Duration::from_millis((i - 40) * 100));
                }
                let body = ceph_body("assets", "ObjectCreated:Put", &[format!("l/{i}.css")]);
                let t0 = std::time::Instant::now();
                let r = post_events(addr, &body);
                (r.status, t0.elapsed())
            })
        })
        .collect();
    let answers: Vec<(u16, Duration)> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    drop(locker.stdin.take());
    locker.wait().unwrap();
    let slowest = answers.iter().map(|a| a.1).max().unwrap();
    assert!(
        answers.iter().all(|a| a.0 == 503),
        "every POST is refused while locked: {answers:?}"
    );
    assert!(
        slowest < Duration::from_millis(1600),
        "one busy_timeout (1 s) plus slack, not one per group: slowest {slowest:?}"
    );
    assert!(ep.log(&[]).is_empty(), "nothing half-stored");
}

/// Another process holds SQLite's write lock until the returned child's stdin closes.
#[allow(clippy::unwrap_used)]
fn lock_store(db: &std::path::Path) -> std::process::Child {
    let mut locker = Command::new(edgepurge_testkit::python())
        .arg("-c")
        .arg(
            "import sqlite3,sys,time\n\
             c=sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.readline()\n\
             c.execute('ROLLBACK')\n",
        )
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(locker.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    locker
}

#[test]
fn a_full_write_queue_answers_503_at_once_and_loses_nothing_acknowledged() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE).replace(
        "[store]",
        "[store]\nwrite_queue = 4\nbusy_timeout_ms = 20000",
    ));
    let server = ep.serve();
    let mut locker = lock_store(&ep.dir.path().join("edgepurge.db"));
    // 30 senders while the store cannot write: a few are queued, the rest are told at once.
    let addr = server.addr;
    let senders: Vec<_> = (0..30)
        .map(|i| {
            std::thread::spawn(move || {
                let key = format!("bounded/{i}.css");
                let body = ceph_body("assets", "ObjectCreated:Put", std::slice::from_ref(&key));
                let t0 = std::time::Instant::now();
                let r = post_events(addr, &body);
                (key, r, t0.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let early: Vec<bool> = senders.iter().map(|s| s.is_finished()).collect();
    drop(locker.stdin.take()); // releases the lock
    locker.wait().unwrap();
    let mut stored = Vec::new();
    let mut refused = 0;
    for s in senders {
        let (key, r, took) = s.join().unwrap();
        match r.status {
            200 => stored.push(format!("https://cdn.example.com/{key}")),
            503 => {
                refused += 1;
                assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
                assert!(r.text().contains("retry later"), "{}", r.text());
                assert!(took < Duration::from_secs(1), "refused after {took:?}");
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(refused >= 20, "{refused} refused of 30");
    assert!(
        early.iter().filter(|e| **e).count() >= refused,
        "every refusal came while the store was still locked"
    );
    assert!(
        !stored.is_empty(),
        "the queued ones are stored once the lock is gone"
    );
    let log = ep.settle(Duration::from_secs(30));
    let mut logged: Vec<String> = log
        .iter()
        .map(|r| r["targets"][0].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    stored.sort();
    assert_eq!(
        logged, stored,
        "exactly the acknowledged events are in the log"
    );
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn without_a_token_a_dual_stack_listener_takes_ipv4_loopback_callers() {
    // `listen = "[::]:PORT"` saw 127.0.0.1 as ::ffff:127.0.0.1 and refused it with 403.
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE)
            .replace("webhook_token_env = \"EP_TEST_WEBHOOK_TOKEN\"", ""),
    );
    let server = start_server(ep.command(&["serve", "--listen", "[::]:0"]));
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    let body = ceph_body("assets", "ObjectCreated:Put", &["v4.css".into()]);
    let r = http::request(v4, "POST", "/v1/events", "x", &[], &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn sender_text_cannot_forge_log_lines_or_reach_the_terminal_raw() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let sns = serde_json::json!({
        "Type": "SubscriptionConfirmation",
        "TopicArn": "arn:aws:sns:x\n2026-01-01T00:00:00Z ERROR forged-topic",
        "SubscribeURL": "https://sns.test/\r\nforged-url",
        "Message": "hi",
    });
    assert_eq!(
        server
            .post(sns.to_string().as_bytes(), Some(WEBHOOK_TOKEN))
            .status,
        200
    );
    let odd = br#"{"x\n2026-01-01T00:00:00Z ERROR forged-field": 1}"#;
    assert_eq!(server.post(odd, Some(WEBHOOK_TOKEN)).status, 400);
    let key = "img/\u{1b}[31mred\u{202e}gnp.exe";
    server.send(&ceph_body("assets", "ObjectCreated:Put", &[key.into()]));
    ep.settle(Duration::from_secs(20));
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    for forged in ["forged-topic", "forged-url", "forged-field"] {
        assert!(log.contains(forged), "{forged} is logged: {log}");
        assert!(
            !log.lines()
                .any(|l| l.contains(forged) && !l.contains(" INFO ") && !l.contains(" WARN ")),
            "{forged} started a line of its own: {log}"
        );
    }
    let table = ep.ok(&["log"]);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{202e}'),
        "{table:?}"
    );
    assert!(table.contains("\\u{1b}[31mred\\u{202e}gnp.exe"), "{table}");
    // JSON output keeps the key exactly (its encoder escapes it).
    assert_eq!(ep.log(&[])[0]["key"], key);
}

#[test]
fn the_token_may_come_in_the_query_and_is_never_logged() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let body = ceph_body("assets", "ObjectCreated:Put", &["q.css".into()]);
    let post = |target: &str| http::request(server.addr, "POST", target, "x", &[], &body).unwrap();
    let wrong = post("/v1/events?token=nope");
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    let ok = post(&format!("/v1/events?token={WEBHOOK_TOKEN}"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = post(&format!("/v1/events?token={WEBHOOK_TOKEN}&wait=forever"));
    assert_eq!(bad.status, 400);
    assert!(!bad.text().contains(WEBHOOK_TOKEN));
    ep.settle(Duration::from_secs(20));
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("purged"), "the log has content: {log}");
    assert!(
        !log.contains(WEBHOOK_TOKEN),
        "token leaked into the server log"
    );
    let everything = ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
    assert!(!everything.contains(WEBHOOK_TOKEN));
}

#[test]
fn wait_purged_answers_after_the_purge_or_at_the_timeout() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE).replace("linger_ms = 100", "linger_ms = 5000"),
    );
    let server = ep.serve();
    let auth = format!("Bearer {WEBHOOK_TOKEN}");
    let post = |target: &str, key: &str| {
        let body = ceph_body("assets", "ObjectCreated:Put", &[key.to_owned()]);
        http::request(
            server.addr,
            "POST",
            target,
            "x",
            &[("Authorization", &auth)],
            &body,
        )
        .unwrap()
    };
    // The lane skips its 5 s linger for a waiting sender.
    let t0 = std::time::Instant::now();
    let r = post("/v1/events?wait=purged&timeout_ms=10000", "w1.css");
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["purged"], true, "{a}");
    assert_eq!(a["statuses"]["succeeded"], 1);
    assert!(
        took < Duration::from_secs(4),
        "waited {took:?}: linger was not skipped"
    );
    assert!(fake
        .purged()
        .contains(&"https://cdn.example.com/w1.css".to_owned()));

    // A purge slower than the timeout: 200 with the state, the purge still happens.
    fake.delay(3000, 1);
    let r = post("/v1/events?wait=purged&timeout_ms=500", "w2.css");
    assert_eq!(r.status, 200);
    let a = r.json();
    assert_eq!(a["purged"], false, "{a}");
    assert_eq!(a["statuses"]["sent"], 1, "{a}");
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
}

#[test]
fn refused_callers_and_unknown_paths_are_logged_once_per_interval_and_answered_plainly() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    for _ in 0..3 {
        assert_eq!(server.post(b"{}", Some("wrong-token")).status, 401);
    }
    let r = http::get(server.addr, "/v1/event").unwrap();
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("GET /v1/event") && e.contains("POST /v1/events")),
        "{}",
        r.text()
    );
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let auth: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a caller: webhook authentication: wrong bearer token"))
        .collect();
    assert_eq!(auth.len(), 1, "one line for three refusals: {log}");
    assert!(auth[0].contains("peer=127.0.0.1:"), "{}", auth[0]);
    assert!(
        log.lines()
            .any(|l| l.contains("refused a caller: no such path: GET /v1/event")),
        "{log}"
    );
    assert!(
        !log.contains("wrong-token"),
        "the token itself is never logged"
    );
}

#[test]
fn forbidden_callers_are_logged_with_their_address() {
    let fake = FakeTencent::start(Options::default());
    // No webhook token: only loopback callers may post events.
    let ep = Edgepurge::new(
        &tencent_config(&fake, "", SITE_RULE)
            .replace("webhook_token_env = \"EP_TEST_WEBHOOK_TOKEN\"\n", ""),
    );
    let log_path = ep.dir.path().join("server.log");
    let mut cmd = ep.command(&["serve", "--listen", "0.0.0.0:0"]);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let server = start_server(cmd);
    let port = server.addr.port();
    // The admin API refuses a request addressed by a host name (403), loopback or not.
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let host = format!("attacker.example:{port}");
    let r = http::request(local, "GET", "/v1/rules", &host, &[], b"").unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    // A caller from another address may not post events without a token (403).
    let remote = non_loopback_address();
    if let Some(ip) = remote {
        let body = ceph_body("assets", "ObjectCreated:Put", &["far.css".into()]);
        let addr = std::net::SocketAddr::new(ip, port);
        let r = http::request(addr, "POST", "/v1/events", &addr.to_string(), &[], &body).unwrap();
        assert_eq!(r.status, 403, "{}", r.text());
    } else {
        eprintln!("no non-loopback address on this machine: the webhook's 403 is not tried");
    }
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("refused a caller: admin API authentication: GET /v1/rules"))
        .unwrap_or_else(|| panic!("no admin refusal in {log}"));
    assert!(
        line.contains("(403)") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );
    if let Some(ip) = remote {
        let line = log
            .lines()
            .find(|l| l.contains("refused a caller: webhook authentication: not loopback"))
            .unwrap_or_else(|| panic!("no webhook refusal in {log}"));
        assert!(line.contains(&format!("peer={ip}:")), "{line}");
    }
}
