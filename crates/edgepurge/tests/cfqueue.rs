//! `[[sources]] kind = "cf-queue"` against the Cloudflare Queues HTTP API stand-in
//! (`testkit/fake_cf_queues.py`): R2 event notifications pulled from a queue are purged
//! through the Tencent stand-in and acknowledged (in one ack call per pull) only after they are
//! stored; a message that can never be accepted goes to the dead-letter queue, or without one
//! is marked for retry in 12 hours and logged, without holding up the next; a crash between
//! receipt and commit loses nothing; a wrong token shows in `/healthz` without the token; a
//! 429's `Retry-After` is honoured.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::cfqueues::{FakeCfQueues, ACCOUNT_ID, DEAD_QUEUE_ID, QUEUE_ID, TOKEN};
use edgepurge_testkit::tencent::FakeTencent;
use serde_json::{json, Value};
use std::time::Duration;

/// An R2 event notification body, as R2 puts it on the queue.
fn r2(action: &str, key: &str) -> Value {
    json!({
        "account": ACCOUNT_ID, "action": action, "bucket": "assets",
        "object": {"key": key, "size": 1, "eTag": "c846ff7a18f28c2e262116d6e8719ef0"},
        "eventTime": "2026-01-01T00:00:00.000Z"
    })
}

/// A source reading [`QUEUE_ID`] with a 2 s lease; `extra` adds source keys, `store_extra`
/// keys of `[store]`.
fn config(fake: &FakeTencent, cf: &FakeCfQueues, extra: &str, store_extra: &str) -> String {
    let base = tencent_config(fake, "", SITE_RULE)
        .replace("[store]\n", &format!("[store]\n{store_extra}"));
    format!(
        "{base}\n[[sources]]\nkind = \"cf-queue\"\nname = \"r2\"\naccount_id = \"{ACCOUNT_ID}\"\n\
         queue_id = \"{QUEUE_ID}\"\nendpoint = \"{}\"\nvisibility_timeout_s = 2\n\
         poll_interval_ms = 200\napi_token_env = \"EP_TEST_CF_TOKEN\"\n{extra}",
        cf.endpoint()
    )
}

fn edgepurge(config: &str, token: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env.push(("EP_TEST_CF_TOKEN".into(), token.into()));
    ep
}

/// Starts the server with its log in `serve.log` of its directory.
fn serve_logged(ep: &Edgepurge) -> (Server, std::path::PathBuf) {
    let log = ep.dir.path().join("serve.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    (ep.serve_with_stderr(std::process::Stdio::from(file)), log)
}

fn health(server: &Server) -> Value {
    edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json()
}

fn calls(cf: &FakeCfQueues, tail: &str) -> Vec<Value> {
    cf.requests()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(tail))
        .collect()
}

#[test]
fn r2_notifications_are_purged_and_acked_and_malformed_ones_dead_lettered() {
    let cf = FakeCfQueues::start(3);
    let fake = fake_tencent();
    let ep = edgepurge(
        &config(
            &fake,
            &cf,
            &format!("dead_letter_queue_id = \"{DEAD_QUEUE_ID}\"\n"),
            "",
        ),
        TOKEN,
    );
    // Before the server starts, so one pull leases them all: an upload (R2 publishes JSON,
    // which a pull gives as base64), a text body that is not a notification, a deletion
    // published as text, and a body only Workers can read.
    cf.send(
        QUEUE_ID,
        r2("PutObject", "img/red flower+1 50%.png"),
        "json",
    );
    cf.send(QUEUE_ID, json!("this is not a notification"), "text");
    cf.send(
        QUEUE_ID,
        json!(r2("DeleteObject", "b.css").to_string()),
        "text",
    );
    cf.send(QUEUE_ID, json!("/w8="), "v8");
    let server = ep.serve();

    edgepurge_testkit::wait_for(Duration::from_secs(30), "both events purged", || {
        let mut p = fake.purged();
        p.sort();
        (p == [
            "https://cdn.example.com/b.css",
            "https://cdn.example.com/img/red%20flower+1%2050%25.png",
        ])
        .then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the queue empty", || {
        (cf.counts(QUEUE_ID) == (0, 0, 0)).then_some(())
    });
    let state = cf.state(QUEUE_ID);
    assert_eq!(state["acked"].as_array().unwrap().len(), 4, "{state}");
    let dead = cf.state(DEAD_QUEUE_ID);
    let mut dead_bodies: Vec<(String, String)> = dead["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["content_type"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    dead_bodies.sort();
    assert_eq!(
        dead_bodies,
        [
            ("text".to_owned(), "/w8=".to_owned()),
            ("text".to_owned(), "this is not a notification".to_owned())
        ],
        "{dead}"
    );

    // One pull leased all four; one ack call settled them.
    let pulls = calls(&cf, "/messages/pull");
    assert_eq!(
        pulls[0]["body"],
        json!({"batch_size": 100, "visibility_timeout_ms": 2000})
    );
    assert_eq!(pulls[0]["authorization"], "Bearer ***");
    let acks = calls(&cf, "/messages/ack");
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0]["body"]["acks"].as_array().unwrap().len(), 4);
    assert_eq!(acks[0]["body"]["retries"], json!([]));
    assert_eq!(calls(&cf, &format!("{DEAD_QUEUE_ID}/messages")).len(), 2);
    assert_eq!(ep.settle(Duration::from_secs(20)).len(), 2);

    let health = health(&server);
    let source = &health["sources"][0];
    assert_eq!(source["kind"], "cf-queue", "{health}");
    assert_eq!(source["name"], "r2");
    assert_eq!(source["connected"], true);
    assert_eq!(source["received"], 4);
    assert_eq!(source["acked"], 2);
    assert_eq!(source["dead_lettered"], 2);
    assert_eq!(source["retried"], 0);
    assert_eq!(source["lag"], 0, "the backlog a pull reports: {health}");
}

#[test]
fn without_a_dead_letter_queue_a_malformed_message_is_retried_in_12_hours_and_logged() {
    let cf = FakeCfQueues::start(3);
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &cf, "", ""), TOKEN);
    let bad = cf.send(QUEUE_ID, json!("this is not a notification"), "text");
    cf.send(QUEUE_ID, r2("PutObject", "next.png"), "json");
    let (server, log) = serve_logged(&ep);

    edgepurge_testkit::wait_for(Duration::from_secs(30), "the next one purged", || {
        (fake.purged() == ["https://cdn.example.com/next.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the bad one delayed", || {
        (cf.counts(QUEUE_ID) == (0, 1, 0)).then_some(())
    });
    let state = cf.state(QUEUE_ID);
    let kept = &state["messages"][0];
    assert_eq!(kept["id"], bad.as_str(), "{state}");
    assert!(kept["visible_in_s"].as_f64().unwrap() > 43_000.0, "{state}");
    assert_eq!(state["deleted"], json!([]));
    let acks = calls(&cf, "/messages/ack");
    assert_eq!(
        acks[0]["body"]["retries"][0]["delay_seconds"], 43_200,
        "{acks:?}"
    );

    let health = health(&server);
    assert_eq!(health["sources"][0]["dead_lettered"], 1, "{health}");
    assert_eq!(health["sources"][0]["acked"], 1, "{health}");
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the ERROR line", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.contains(&bad)
            && text.contains("marked for retry in 12 hours")
            && text.contains("this is not a notification"))
        .then_some(())
    });
}

#[test]
fn a_crash_between_receipt_and_commit_loses_nothing() {
    let cf = FakeCfQueues::start(10);
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &cf, "", "busy_timeout_ms = 60000\n"), TOKEN);
    let mut server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the first pull", || {
        (!calls(&cf, "/messages/pull").is_empty()).then_some(())
    });

    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let id = cf.send(QUEUE_ID, r2("PutObject", "crash.png"), "json");
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message leased", || {
        (cf.counts(QUEUE_ID) == (0, 0, 1)).then_some(())
    });
    server.proc.kill9();
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert!(fake.purged().is_empty());
    assert!(calls(&cf, "/messages/ack").is_empty());

    // A new process: the message is pulled again once its lease (2 s) runs out.
    let _server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message purged", || {
        (fake.purged() == ["https://cdn.example.com/crash.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(30), "and acknowledged", || {
        (cf.counts(QUEUE_ID) == (0, 0, 0)).then_some(())
    });
    assert_eq!(cf.state(QUEUE_ID)["acked"], json!([id]));
}

#[test]
fn a_wrong_token_shows_in_healthz_without_the_token() {
    const WRONG: &str = "wrong-token-SECRET-0123456789";
    let cf = FakeCfQueues::start(3);
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &cf, "", ""), WRONG);
    cf.send(QUEUE_ID, r2("PutObject", "a.png"), "json");
    let (server, log) = serve_logged(&ep);

    let error = edgepurge_testkit::wait_for(Duration::from_secs(30), "the error", || {
        health(&server)["sources"][0]["last_error"]
            .as_str()
            .map(str::to_owned)
    });
    for want in [
        "messages/pull: HTTP 403",
        "10000 Authentication error",
        "Queues Edit",
        "environment variable EP_TEST_CF_TOKEN",
    ] {
        assert!(error.contains(want), "{want}: {error}");
    }
    let health = health(&server);
    assert_eq!(health["sources"][0]["connected"], false, "{health}");
    let everything = format!(
        "{health}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        !everything.contains(WRONG),
        "the token leaked: {everything}"
    );
    assert!(!everything.contains(TOKEN));
    assert_eq!(cf.counts(QUEUE_ID), (1, 0, 0), "nothing pulled");
    assert!(fake.purged().is_empty());
}

#[test]
fn a_429_retry_after_is_honoured() {
    let cf = FakeCfQueues::start(3);
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &cf, "", ""), TOKEN);
    cf.throttle(1, 3);
    cf.send(QUEUE_ID, r2("PutObject", "later.png"), "json");
    let (_server, log) = serve_logged(&ep);

    edgepurge_testkit::wait_for(Duration::from_secs(30), "purged", || {
        (fake.purged() == ["https://cdn.example.com/later.png"]).then_some(())
    });
    let pulls = calls(&cf, "/messages/pull");
    assert_eq!(pulls[0]["status"], 429, "{pulls:?}");
    assert_eq!(pulls[1]["status"], 200, "{pulls:?}");
    let waited = pulls[1]["time"].as_f64().unwrap() - pulls[0]["time"].as_f64().unwrap();
    assert!(waited >= 2.9, "the next pull came {waited} s after the 429");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("HTTP 429") && text.contains("Retry-After 3 s"),
        "{text}"
    );
}
