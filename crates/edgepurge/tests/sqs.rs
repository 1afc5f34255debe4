//! `[[sources]] kind = "sqs"` against moto (an in-memory AWS): S3 notifications delivered to
//! an SQS queue are purged through the Tencent stand-in and deleted only after they are
//! stored; the S3 test event is taken and deleted; a malformed message goes to the
//! dead-letter queue without holding up the next; a crash between receipt and commit loses
//! nothing.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::moto::Moto;
use edgepurge_testkit::tencent::FakeTencent;
use serde_json::Value;
use std::time::Duration;

struct Aws {
    moto: Moto,
    queue: String,
    dead: String,
}

fn aws() -> Aws {
    let moto = Moto::start();
    let queue = moto.ctl(&["create-queue", "s3-events"]);
    let dead = moto.ctl(&["create-queue", "s3-events-dead"]);
    moto.ctl(&["s3-to-sqs", "assets", &queue]);
    Aws { moto, queue, dead }
}

impl Aws {
    fn counts(&self) -> (u64, u64) {
        let v: Value = serde_json::from_str(&self.moto.ctl(&["counts", &self.queue])).unwrap();
        (
            v["visible"].as_u64().unwrap(),
            v["inflight"].as_u64().unwrap(),
        )
    }
}

fn config(fake: &FakeTencent, aws: &Aws, store_extra: &str) -> String {
    let base = tencent_config(fake, "", SITE_RULE);
    format!(
        "{base}\n[[sources]]\nkind = \"sqs\"\nname = \"s3\"\nqueue_url = \"{}\"\nregion = \
         \"us-east-1\"\ndead_letter_queue_url = \"{}\"\nwait_time_s = 1\n\
         visibility_timeout_s = 2\naccess_key_id_env = \"EP_TEST_AWS_KEY\"\n\
         secret_access_key_env = \"EP_TEST_AWS_SECRET\"\n",
        aws.queue, aws.dead
    )
    .replace("[store]\n", &format!("[store]\n{store_extra}"))
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env
        .push(("EP_TEST_AWS_KEY".into(), "AKIDTESTEXAMPLE".into()));
    ep.env
        .push(("EP_TEST_AWS_SECRET".into(), "test-secret".into()));
    ep
}

#[test]
fn s3_notifications_through_sqs_are_purged_and_deleted_and_a_malformed_one_dead_lettered() {
    let aws = aws();
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &aws, ""));
    // Before the server starts: the S3 test event (sent when notifications were set up), an
    // upload, a message that is not a notification, and a second upload.
    aws.moto.ctl(&["put", "assets", "img/red flower+1.jpg"]);
    aws.moto
        .ctl(&["send", &aws.queue, "this is not a notification"]);
    aws.moto.ctl(&["put", "assets", "b.css"]);
    let server = ep.serve();

    edgepurge_testkit::wait_for(Duration::from_secs(30), "both uploads purged", || {
        let mut p = fake.purged();
        p.sort();
        (p == [
            "https://cdn.example.com/b.css",
            "https://cdn.example.com/img/red%20flower+1.jpg",
        ])
        .then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the queue empty", || {
        (aws.counts() == (0, 0)).then_some(())
    });
    let dead: Vec<String> = serde_json::from_str(&aws.moto.ctl(&["drain", &aws.dead])).unwrap();
    assert_eq!(dead, ["this is not a notification"]);

    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    let source = &health["sources"][0];
    assert_eq!(source["kind"], "sqs", "{health}");
    assert_eq!(source["connected"], true);
    assert_eq!(
        source["acked"], 3,
        "the test event and two uploads: {health}"
    );
    assert_eq!(source["dead_lettered"], 1);
    assert!(
        source["lag"].is_u64(),
        "the queue's depth is asked for: {health}"
    );
}

#[test]
fn a_crash_between_receipt_and_commit_loses_nothing() {
    let aws = aws();
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &aws, "busy_timeout_ms = 60000\n"));
    // The test event first, so the next message is the upload.
    let mut server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the test event taken", || {
        (aws.counts() == (0, 0)).then_some(())
    });

    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    aws.moto.ctl(&["put", "assets", "crash.png"]);
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message received", || {
        (aws.counts() == (0, 1)).then_some(())
    });
    server.proc.kill9();
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert!(fake.purged().is_empty());

    // A new process: SQS shows the message again once its visibility (2 s) runs out.
    let _server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message purged", || {
        (fake.purged() == ["https://cdn.example.com/crash.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(30), "and deleted", || {
        (aws.counts() == (0, 0)).then_some(())
    });
}

#[test]
fn a_slow_commit_keeps_its_message_hidden_until_it_is_stored() {
    let aws = aws();
    let fake = fake_tencent();
    let ep = edgepurge(&config(&fake, &aws, "busy_timeout_ms = 60000\n"));
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the test event taken", || {
        (aws.counts() == (0, 0)).then_some(())
    });
    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    aws.moto.ctl(&["put", "assets", "slow.png"]);
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message received", || {
        (aws.counts() == (0, 1)).then_some(())
    });
    // Three visibility timeouts (2 s each) while the commit waits: never shown again.
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        assert_eq!(aws.counts(), (0, 1));
        std::thread::sleep(Duration::from_millis(300));
    }
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    edgepurge_testkit::wait_for(Duration::from_secs(30), "purged and deleted", || {
        (fake.purged() == ["https://cdn.example.com/slow.png"] && aws.counts() == (0, 0))
            .then_some(())
    });
    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    assert_eq!(
        health["sources"][0]["received"], 2,
        "received once (and the test event): {health}"
    );
}
