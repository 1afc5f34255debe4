//! `[[sources]] kind = "nats"` against a real nats-server with JetStream: bucket events
//! published to a stream are purged through the Tencent stand-in and acknowledged only after
//! they are stored; a malformed message is dead-lettered without holding up the next; a crash
//! between receipt and commit loses nothing.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use async_nats::jetstream::{self, consumer::pull, stream};
use common::*;
use edgepurge_testkit::nats::NatsServer;
use edgepurge_testkit::tencent::FakeTencent;
use futures_util::StreamExt;
use std::time::Duration;

fn config(fake: &FakeTencent, nats: &NatsServer, store_extra: &str) -> String {
    let base = tencent_config(fake, "", SITE_RULE);
    format!(
        "{base}\n[[sources]]\nkind = \"nats\"\nname = \"minio\"\nurl = \"{}\"\nstream = \
         \"BUCKET\"\nsubject = \"minio.events\"\ndurable = \"edgepurge\"\n\
         dead_letter_subject = \"edgepurge.dead\"\nack_wait_s = 2\n",
        nats.url()
    )
    .replace("[store]\n", &format!("[store]\n{store_extra}"))
}

struct Js {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
}

impl Js {
    /// Streams `BUCKET` (`minio.events`) and `DEAD` (`edgepurge.dead`).
    fn connect(nats: &NatsServer) -> Js {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let js = rt.block_on(async {
            let client = async_nats::connect(nats.url()).await.unwrap();
            let js = jetstream::new(client);
            for (name, subject) in [("BUCKET", "minio.events"), ("DEAD", "edgepurge.dead")] {
                js.create_stream(stream::Config {
                    name: name.into(),
                    subjects: vec![subject.into()],
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            js
        });
        Js { rt, js }
    }

    fn publish(&self, body: Vec<u8>) {
        self.rt.block_on(async {
            self.js
                .publish("minio.events", body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        });
    }

    /// (messages not yet delivered, delivered and not acknowledged) of our consumer.
    fn pending(&self) -> Option<(u64, usize)> {
        self.rt.block_on(async {
            let stream = self.js.get_stream("BUCKET").await.ok()?;
            let mut consumer: jetstream::consumer::Consumer<pull::Config> =
                stream.get_consumer("edgepurge").await.ok()?;
            let info = consumer.info().await.ok()?;
            Some((info.num_pending, info.num_ack_pending))
        })
    }

    /// The payloads in the dead-letter stream.
    fn dead(&self) -> Vec<String> {
        self.rt.block_on(async {
            let stream = self.js.get_stream("DEAD").await.unwrap();
            let consumer: jetstream::consumer::Consumer<pull::Config> = stream
                .get_or_create_consumer(
                    "reader",
                    pull::Config {
                        durable_name: Some("reader".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let mut batch = consumer
                .fetch()
                .max_messages(10)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .unwrap();
            let mut out = Vec::new();
            while let Some(Ok(m)) = batch.next().await {
                out.push(String::from_utf8_lossy(&m.payload).into_owned());
                let _ = m.ack().await;
            }
            out
        })
    }
}

#[test]
fn events_from_a_jetstream_stream_are_purged_and_a_malformed_one_is_dead_lettered() {
    let nats = NatsServer::start();
    let js = Js::connect(&nats);
    let fake = fake_tencent();
    // Published before the consumer exists: history, not purged (`deliver = "new"`).
    js.publish(ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["old.png".into()],
    ));
    let ep = Edgepurge::new(&config(&fake, &nats, ""));
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the consumer", || {
        js.pending().map(|_| ())
    });

    js.publish(ceph_body("assets", "ObjectCreated:Put", &["a.png".into()]));
    js.publish(b"this is not a notification".to_vec());
    js.publish(ceph_body(
        "assets",
        "ObjectRemoved:Delete",
        &["b.png".into()],
    ));

    edgepurge_testkit::wait_for(Duration::from_secs(20), "both events purged", || {
        let mut p = fake.purged();
        p.sort();
        (p == [
            "https://cdn.example.com/a.png",
            "https://cdn.example.com/b.png",
        ])
        .then_some(())
    });
    edgepurge_testkit::wait_for(
        Duration::from_secs(20),
        "every message acknowledged",
        || (js.pending() == Some((0, 0))).then_some(()),
    );
    assert_eq!(js.dead(), ["this is not a notification"]);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2, "{log:#?}");

    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    let source = &health["sources"][0];
    assert_eq!(source["name"], "minio", "{health}");
    assert_eq!(source["connected"], true);
    assert_eq!(source["acked"], 2);
    assert_eq!(source["dead_lettered"], 1);
}

#[test]
fn a_crash_between_receipt_and_commit_loses_nothing() {
    let nats = NatsServer::start();
    let js = Js::connect(&nats);
    let fake = fake_tencent();
    // The store waits up to a minute for a lock, so the message is received and not committed.
    let ep = Edgepurge::new(&config(&fake, &nats, "busy_timeout_ms = 60000\n"));
    let mut server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the consumer", || {
        js.pending().map(|_| ())
    });

    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    js.publish(ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["crash.png".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the message delivered", || {
        (js.pending() == Some((0, 1))).then_some(())
    });
    server.proc.kill9();
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert!(fake.purged().is_empty());

    // A new process: JetStream delivers the unacknowledged message again (ack_wait 2 s).
    let _server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message purged", || {
        (fake.purged() == ["https://cdn.example.com/crash.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "and acknowledged", || {
        (js.pending() == Some((0, 0))).then_some(())
    });
}

#[test]
fn a_slow_commit_keeps_its_message_from_being_delivered_again() {
    let nats = NatsServer::start();
    let js = Js::connect(&nats);
    let fake = fake_tencent();
    let ep = Edgepurge::new(&config(&fake, &nats, "busy_timeout_ms = 60000\n"));
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the consumer", || {
        js.pending().map(|_| ())
    });
    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    js.publish(ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["slow.png".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the message delivered", || {
        (js.pending() == Some((0, 1))).then_some(())
    });
    // Three ack waits (2 s each) while the commit waits.
    std::thread::sleep(Duration::from_secs(6));
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    edgepurge_testkit::wait_for(Duration::from_secs(20), "purged and acknowledged", || {
        (fake.purged() == ["https://cdn.example.com/slow.png"] && js.pending() == Some((0, 0)))
            .then_some(())
    });
    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    assert_eq!(
        health["sources"][0]["received"], 1,
        "delivered once: {health}"
    );
}

#[test]
fn dead_letters_in_the_stream_the_source_reads_are_not_taken_again() {
    let nats = NatsServer::start();
    let js = Js::connect(&nats);
    // One stream captures both the events and the dead letters, and the source reads it all.
    js.rt.block_on(async {
        js.js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "ALL".into(),
                subjects: vec!["all.events".into(), "all.dead".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let fake = fake_tencent();
    let cfg = tencent_config(&fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"ALL\"\n\
             dead_letter_subject = \"all.dead\"\n",
            nats.url()
        );
    let ep = Edgepurge::new(&cfg);
    let _server = ep.serve();
    let messages = || {
        js.rt.block_on(async {
            let mut s = js.js.get_stream("ALL").await.unwrap();
            s.info().await.unwrap().state.messages
        })
    };
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the consumer", || {
        js.rt
            .block_on(async {
                let s = js.js.get_stream("ALL").await.ok()?;
                s.get_consumer::<pull::Config>("edgepurge").await.ok()
            })
            .map(|_| ())
    });
    js.rt.block_on(async {
        js.js
            .publish("all.events", "garbage".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the dead letter", || {
        (messages() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(messages(), 2, "the garbage and one dead letter, no loop");
}

#[test]
fn a_message_over_the_body_limit_is_dead_lettered_not_taken() {
    let nats = NatsServer::start();
    let js = Js::connect(&nats);
    let fake = fake_tencent();
    let cfg = config(&fake, &nats, "").replace("[server]\n", "[server]\nmax_body_bytes = 1024\n");
    let ep = Edgepurge::new(&cfg);
    let _server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the consumer", || {
        js.pending().map(|_| ())
    });
    let keys: Vec<String> = (0..40).map(|i| format!("big-{i}.png")).collect();
    let big = ceph_body("assets", "ObjectCreated:Put", &keys);
    assert!(big.len() > 1024);
    js.publish(big.clone());
    js.publish(ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["small.png".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the small one purged", || {
        (fake.purged() == ["https://cdn.example.com/small.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "all acknowledged", || {
        (js.pending() == Some((0, 0))).then_some(())
    });
    assert_eq!(js.dead(), [String::from_utf8(big).unwrap()]);
}
