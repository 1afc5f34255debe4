//! `[[sources]] kind = "amqp"` against a real RabbitMQ broker: bucket events published to an
//! exchange are purged through the Tencent stand-in and acknowledged only after they are
//! stored; a malformed or oversized message is dead-lettered (to edgepurge's dead-letter
//! queue, or the queue's own dead-letter exchange) without holding up the next; a crash
//! between receipt and commit loses nothing.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use amqprs::channel::{
    BasicGetArguments, BasicPublishArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use common::*;
use edgepurge_testkit::rabbitmq::RabbitMq;
use edgepurge_testkit::tencent::FakeTencent;
use std::time::Duration;

/// A source that declares `events` and binds it to the `bucket` exchange (as for Ceph or
/// MinIO), with `dead` for dead letters.
fn config(fake: &FakeTencent, mq: &RabbitMq, extra: &str) -> String {
    tencent_config(fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"amqp\"\nname = \"rabbit\"\nurl = \"{}\"\nqueue = \
             \"events\"\nexchange = \"bucket\"\nrouting_key = \"minio.#\"\n\
             dead_letter_queue = \"dead\"\n{extra}",
            mq.url()
        )
}

/// A test client of the broker.
struct Client {
    open: Option<(Channel, Connection)>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Client {
    fn drop(&mut self) {
        // The channel and connection close themselves on a task of this runtime.
        let _inside = self.rt.enter();
        self.open = None;
    }
}

impl Client {
    fn connect(mq: &RabbitMq) -> Client {
        Self::connect_as(mq, "guest", "guest")
    }

    fn connect_as(mq: &RabbitMq, user: &str, password: &str) -> Client {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (conn, ch) = rt.block_on(async {
            let conn = Connection::open(&OpenConnectionArguments::new(
                "127.0.0.1",
                mq.addr.port(),
                user,
                password,
            ))
            .await
            .unwrap();
            let ch = conn.open_channel(None).await.unwrap();
            (conn, ch)
        });
        Client {
            open: Some((ch, conn)),
            rt,
        }
    }

    fn ch(&self) -> &Channel {
        &self.open.as_ref().unwrap().0
    }

    fn conn(&self) -> &Connection {
        &self.open.as_ref().unwrap().1
    }

    fn publish(&self, exchange: &str, routing_key: &str, body: Vec<u8>) {
        self.rt.block_on(async {
            self.ch()
                .basic_publish(
                    BasicProperties::default(),
                    body,
                    BasicPublishArguments::new(exchange, routing_key),
                )
                .await
                .unwrap();
        });
    }

    /// (messages ready, consumers) of `queue`, or `None` while it does not exist.
    fn depth(&self, queue: &str) -> Option<(u32, u32)> {
        self.rt.block_on(async {
            // A passive declare of a missing queue closes the channel: use one of its own.
            let ch = self.conn().open_channel(None).await.ok()?;
            let r = ch
                .queue_declare(QueueDeclareArguments::new(queue).passive(true).finish())
                .await
                .ok()??;
            let _ = ch.close().await;
            Some((r.1, r.2))
        })
    }

    /// Takes every message in `queue`: (body, headers).
    fn drain(&self, queue: &str) -> Vec<(String, FieldTable)> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            while let Some((_, props, body)) = self
                .ch()
                .basic_get(BasicGetArguments::new(queue).no_ack(true).finish())
                .await
                .unwrap()
            {
                let headers = props.headers().cloned().unwrap_or_default();
                out.push((String::from_utf8_lossy(&body).into_owned(), headers));
            }
            out
        })
    }
}

fn header(headers: &FieldTable, name: &str) -> String {
    match headers.get(&name.try_into().unwrap()) {
        Some(FieldValue::S(s)) => s.to_string(),
        other => panic!("header {name}: {other:?} in {headers:?}"),
    }
}

fn wait_for_consumer(client: &Client, queue: &str) {
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the consumer", || {
        client.depth(queue).filter(|d| d.1 == 1).map(|_| ())
    });
}

#[test]
fn events_from_a_rabbitmq_exchange_are_purged_and_a_malformed_one_is_dead_lettered() {
    let mq = RabbitMq::start();
    let client = Client::connect(&mq);
    let fake = fake_tencent();
    let ep = Edgepurge::new(&config(&fake, &mq, ""));
    let server = ep.serve();
    wait_for_consumer(&client, "events");

    // The exchange and the binding were declared by edgepurge: publish as MinIO would.
    client.publish(
        "bucket",
        "minio.assets",
        ceph_body("assets", "ObjectCreated:Put", &["a.png".into()]),
    );
    client.publish(
        "bucket",
        "minio.assets",
        b"this is not a notification".to_vec(),
    );
    client.publish(
        "bucket",
        "minio.assets",
        ceph_body("assets", "ObjectRemoved:Delete", &["b.png".into()]),
    );
    // Not matching the binding: never reaches the queue.
    client.publish(
        "bucket",
        "other.assets",
        ceph_body("assets", "ObjectCreated:Put", &["elsewhere.png".into()]),
    );

    edgepurge_testkit::wait_for(Duration::from_secs(20), "both events purged", || {
        let mut p = fake.purged();
        p.sort();
        (p == [
            "https://cdn.example.com/a.png",
            "https://cdn.example.com/b.png",
        ])
        .then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the dead letter", || {
        (client.depth("dead").map(|d| d.0) == Some(1)).then_some(())
    });
    let dead = client.drain("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "this is not a notification");
    assert_eq!(header(&dead[0].1, "edgepurge-source"), "rabbit");
    assert_eq!(header(&dead[0].1, "edgepurge-routing-key"), "minio.assets");
    assert!(
        header(&dead[0].1, "edgepurge-error").contains("not JSON"),
        "{:?}",
        dead[0].1
    );
    assert_eq!(client.depth("events"), Some((0, 1)), "all acknowledged");
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2, "{log:#?}");

    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    let source = &health["sources"][0];
    assert_eq!(source["name"], "rabbit", "{health}");
    assert_eq!(source["kind"], "amqp", "{health}");
    assert_eq!(source["connected"], true, "{health}");
    assert_eq!(source["acked"], 2, "{health}");
    assert_eq!(source["dead_lettered"], 1, "{health}");
}

#[test]
fn a_crash_between_receipt_and_commit_loses_nothing() {
    let mq = RabbitMq::start();
    let client = Client::connect(&mq);
    let fake = fake_tencent();
    // The store waits up to a minute for a lock, so the message is received and not committed.
    let ep = Edgepurge::new(
        &config(&fake, &mq, "").replace("[store]\n", "[store]\nbusy_timeout_ms = 60000\n"),
    );
    let mut server = ep.serve();
    wait_for_consumer(&client, "events");

    let db = rusqlite::Connection::open(ep.dir.path().join("edgepurge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    client.publish(
        "bucket",
        "minio.assets",
        ceph_body("assets", "ObjectCreated:Put", &["crash.png".into()]),
    );
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the message delivered", || {
        let health = edgepurge_testkit::http::get(server.addr, "/healthz")
            .ok()?
            .json();
        (health["sources"][0]["received"] == 1).then_some(())
    });
    assert_eq!(client.depth("events"), Some((0, 1)), "delivered, not acked");
    server.proc.kill9();
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert!(fake.purged().is_empty());

    // The broker puts the unacknowledged message back when the connection dies; a new
    // process takes it.
    let _server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the message purged", || {
        (fake.purged() == ["https://cdn.example.com/crash.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "and acknowledged", || {
        (client.depth("events") == Some((0, 1))).then_some(())
    });
}

#[test]
fn without_a_dead_letter_queue_a_malformed_message_goes_to_the_queues_own_dead_letter_exchange() {
    let mq = RabbitMq::start();
    let client = Client::connect(&mq);
    // The queue exists already (declared by its owner, with a dead-letter exchange); the
    // source only reads it.
    client.rt.block_on(async {
        let ch = client.ch();
        ch.exchange_declare(ExchangeDeclareArguments::new("dlx", "fanout"))
            .await
            .unwrap();
        ch.queue_declare(QueueDeclareArguments::durable_client_named("rejected"))
            .await
            .unwrap();
        ch.queue_bind(QueueBindArguments::new("rejected", "dlx", ""))
            .await
            .unwrap();
        let mut args = FieldTable::new();
        args.insert(
            "x-dead-letter-exchange".try_into().unwrap(),
            FieldValue::S("dlx".try_into().unwrap()),
        );
        ch.queue_declare(
            QueueDeclareArguments::durable_client_named("owned")
                .arguments(args)
                .finish(),
        )
        .await
        .unwrap();
    });
    let fake = fake_tencent();
    let cfg = tencent_config(&fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"amqp\"\nurl = \"{}/%2f\"\nqueue = \"owned\"\n\
             prefetch = 1\n",
            mq.url()
        );
    let ep = Edgepurge::new(&cfg);
    let log_path = ep.dir.path().join("serve.log");
    let server = ep.serve_with_stderr(std::process::Stdio::from(
        std::fs::File::create(&log_path).unwrap(),
    ));
    wait_for_consumer(&client, "owned");
    client.publish("", "owned", b"{\"Records\": 7}".to_vec());
    client.publish(
        "",
        "owned",
        ceph_body("assets", "ObjectCreated:Put", &["next.png".into()]),
    );
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the next one purged", || {
        (fake.purged() == ["https://cdn.example.com/next.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the rejected one kept", || {
        (client.depth("rejected").map(|d| d.0) == Some(1)).then_some(())
    });
    assert_eq!(client.drain("rejected")[0].0, "{\"Records\": 7}");
    let health = edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json();
    assert_eq!(health["sources"][0]["name"], "amqp:owned", "{health}");
    assert_eq!(health["sources"][0]["dead_lettered"], 1, "{health}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("rejected") && log.contains("Records") && log.contains(": 7}"),
        "the rejected body is logged: {log}"
    );
}

#[test]
fn a_missing_queue_is_reported_and_consumed_once_it_exists() {
    let mq = RabbitMq::start();
    let client = Client::connect(&mq);
    let fake = fake_tencent();
    let cfg = tencent_config(&fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"amqp\"\nurl = \"{}\"\nqueue = \"later\"\n",
            mq.url()
        );
    let ep = Edgepurge::new(&cfg);
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the error in /healthz", || {
        let health = edgepurge_testkit::http::get(server.addr, "/healthz")
            .ok()?
            .json();
        let error = health["sources"][0]["last_error"].as_str()?.to_owned();
        (health["sources"][0]["connected"] == false).then_some(error)
    })
    .contains("create it and bind it")
    .then_some(())
    .unwrap();
    client.rt.block_on(async {
        client
            .ch()
            .queue_declare(QueueDeclareArguments::durable_client_named("later"))
            .await
            .unwrap();
    });
    wait_for_consumer(&client, "later");
    client.publish(
        "",
        "later",
        ceph_body("assets", "ObjectCreated:Put", &["late.png".into()]),
    );
    edgepurge_testkit::wait_for(Duration::from_secs(20), "purged", || {
        (fake.purged() == ["https://cdn.example.com/late.png"]).then_some(())
    });
}

#[test]
fn a_message_over_the_body_limit_is_dead_lettered_not_taken() {
    let mq = RabbitMq::start();
    let client = Client::connect(&mq);
    let fake = fake_tencent();
    let cfg = config(&fake, &mq, "").replace("[server]\n", "[server]\nmax_body_bytes = 1024\n");
    let ep = Edgepurge::new(&cfg);
    let _server = ep.serve();
    wait_for_consumer(&client, "events");
    let keys: Vec<String> = (0..40).map(|i| format!("big-{i}.png")).collect();
    let big = ceph_body("assets", "ObjectCreated:Put", &keys);
    assert!(big.len() > 1024);
    client.publish("bucket", "minio.x", big.clone());
    client.publish(
        "bucket",
        "minio.x",
        ceph_body("assets", "ObjectCreated:Put", &["small.png".into()]),
    );
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the small one purged", || {
        (fake.purged() == ["https://cdn.example.com/small.png"]).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the big one dead", || {
        (client.depth("dead").map(|d| d.0) == Some(1)).then_some(())
    });
    let dead = client.drain("dead");
    assert_eq!(dead[0].0.as_bytes(), big.as_slice());
    assert!(header(&dead[0].1, "edgepurge-error").contains("max_body_bytes"));
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in `dir`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn over_amqps_with_a_password_and_a_private_ca() {
    let tls_port = edgepurge_testkit::free_port();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().to_owned();
    let mq = RabbitMq::start_with(move |_| {
        format!(
            "listeners.ssl.1 = 127.0.0.1:{tls_port}\nssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
             default_user = edgepurge\ndefault_pass = dummy-amqp-password\n",
            c.join("ca.pem").display(),
            c.join("server.pem").display(),
            c.join("server.key").display()
        )
    });
    let fake = fake_tencent();
    let source = |ca: &str, password_env: &str| {
        format!(
            "\n[[sources]]\nkind = \"amqp\"\nurl = \"amqps://127.0.0.1:{tls_port}\"\n\
             queue = \"tls-events\"\nexchange = \"bucket\"\nusername = \"edgepurge\"\n\
             password_env = \"{password_env}\"\nca_file = \"{ca}\"\n"
        )
    };
    let ca = certs.path().join("ca.pem");
    // The wrong password: refused, reported, and nothing else breaks.
    let wrong = Edgepurge::new(
        &(tencent_config(&fake, "", SITE_RULE) + &source(&ca.display().to_string(), "WRONG_PW")),
    );
    let mut wrong = wrong;
    wrong
        .env
        .push(("WRONG_PW".into(), "not-the-password".into()));
    let server = wrong.serve();
    let error = edgepurge_testkit::wait_for(Duration::from_secs(30), "the refusal", || {
        let health = edgepurge_testkit::http::get(server.addr, "/healthz")
            .ok()?
            .json();
        health["sources"][0]["last_error"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(error.contains("cannot connect"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    drop(server);

    let mut ep = Edgepurge::new(
        &(tencent_config(&fake, "", SITE_RULE) + &source(&ca.display().to_string(), "MQ_PW")),
    );
    ep.env.push(("MQ_PW".into(), "dummy-amqp-password".into()));
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "connected over TLS", || {
        let health = edgepurge_testkit::http::get(server.addr, "/healthz")
            .ok()?
            .json();
        (health["sources"][0]["connected"] == true).then_some(())
    });
    // Published over plain AMQP on loopback by the test (the broker routes it the same).
    let client = Client::connect_as(&mq, "edgepurge", "dummy-amqp-password");
    client.publish(
        "bucket",
        "anything",
        ceph_body("assets", "ObjectCreated:Put", &["tls.png".into()]),
    );
    edgepurge_testkit::wait_for(Duration::from_secs(20), "purged", || {
        (fake.purged() == ["https://cdn.example.com/tls.png"]).then_some(())
    });

    // A CA that did not sign the broker's certificate: refused.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let mut untrusted = Edgepurge::new(
        &(tencent_config(&fake, "", SITE_RULE)
            + &source(&other.path().join("ca.pem").display().to_string(), "MQ_PW")),
    );
    untrusted
        .env
        .push(("MQ_PW".into(), "dummy-amqp-password".into()));
    let server = untrusted.serve();
    let error = edgepurge_testkit::wait_for(Duration::from_secs(30), "the refusal", || {
        let health = edgepurge_testkit::http::get(server.addr, "/healthz")
            .ok()?
            .json();
        health["sources"][0]["last_error"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(error.contains("cannot connect"), "{error}");
}

/// The real path: Ceph RGW publishes its bucket notifications to RabbitMQ (an AMQP topic with
/// `amqp-exchange`), edgepurge consumes them.
#[test]
fn ceph_rgw_publishes_to_rabbitmq_and_edgepurge_purges() {
    let mq = RabbitMq::start();
    let ceph = edgepurge_testkit::ceph::Ceph::start();
    let client = Client::connect(&mq);
    let fake = fake_tencent();
    let cfg = tencent_config(&fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"amqp\"\nname = \"ceph\"\nurl = \"{}\"\nqueue = \
             \"ceph-events\"\nexchange = \"ceph\"\nrouting_key = \"purge-topic\"\n\
             dead_letter_queue = \"ceph-dead\"\n",
            mq.url()
        );
    let ep = Edgepurge::new(&cfg);
    let _server = ep.serve();
    // edgepurge declared the exchange Ceph needs (it must exist before Ceph publishes).
    wait_for_consumer(&client, "ceph-events");
    // Sent during the S3 call, which waits for the broker's confirm (`amqp-ack-level`
    // broker). A persistent topic works the same, later (Ceph's queue is polled).
    let topic = ceph.create_topic_with(
        "purge-topic",
        &mq.url(),
        false,
        &[("amqp-exchange", "ceph"), ("amqp-ack-level", "broker")],
    );
    ceph.create_bucket("assets");
    ceph.notify("assets", &topic, None);
    ceph.put("assets", "img/hero image+1 猫.png", "v1");
    ceph.put("assets", "old.css", "x");
    ceph.delete("assets", "old.css");
    let purged = edgepurge_testkit::wait_for(Duration::from_secs(30), "both purged", || {
        let mut p = fake.purged();
        p.sort();
        p.dedup();
        (p.len() >= 2).then_some(p)
    });
    assert_eq!(
        purged,
        [
            "https://cdn.example.com/img/hero%20image+1%20%E7%8C%AB.png",
            "https://cdn.example.com/old.css",
        ]
    );
    assert_eq!(client.depth("ceph-dead"), Some((0, 0)), "nothing refused");
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
}
