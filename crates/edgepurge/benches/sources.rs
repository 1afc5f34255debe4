//! Queue consumer throughput: the real binary (release build) draining a backlog of bucket
//! notifications from a real broker, each message acknowledged only after it is committed to
//! the store (`synchronous = full`). Prints figures; asserts nothing about time.
//!
//!   cargo bench -p edgepurge --bench sources
//!
//! For RabbitMQ (`kind = "amqp"`) and NATS JetStream (`kind = "nats"`): N single-record
//! messages are published first (as MinIO and Ceph send them: one event per message), then
//! edgepurge starts and the time from its start to the last acknowledgement is measured
//! (`/healthz` counters, polled every 50 ms). Every event matches a rule, so each is parsed,
//! planned and committed as a record and a purge job; the purges themselves go to a Tencent
//! stand-in afterwards and are not part of the figure.

use async_nats::jetstream::{self, stream};
use edgepurge_testkit::nats::NatsServer;
use edgepurge_testkit::process::Proc;
use edgepurge_testkit::rabbitmq::RabbitMq;
use edgepurge_testkit::tencent::{self, FakeTencent, Options};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const MESSAGES: usize = 20_000;

fn body(i: usize) -> Vec<u8> {
    json!({"Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "default",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "assets"}, "object": {"key": format!("site/page-{i}.html"), "size": 1}}
    }]})
    .to_string()
    .into_bytes()
}

fn config(fake: &FakeTencent, source: &str) -> String {
    format!(
        r#"
[store]
path = "edgepurge.db"

[providers.tencent]
kind = "tencent-cdn"
endpoint = "{endpoint}"
secret_id_env = "EP_BENCH_SECRET_ID"
secret_key_env = "EP_BENCH_SECRET_KEY"

[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
{source}"#,
        endpoint = fake.endpoint()
    )
}

/// Starts `edgepurge serve` and returns it with the time it was spawned.
fn serve(config: &str, dir: &std::path::Path) -> (Proc, Instant, std::net::SocketAddr) {
    let path = dir.join("edgepurge.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let bin =
        std::env::var_os("EDGEPURGE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgepurge").into());
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .args(["--config"])
        .arg(&path)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EDGEPURGE_LOG", "warn")
        .env("EP_BENCH_SECRET_ID", tencent::SECRET_ID)
        .env("EP_BENCH_SECRET_KEY", tencent::SECRET_KEY);
    let t0 = Instant::now();
    let (proc, line) = Proc::spawn_until("edgepurge serve", cmd, Duration::from_secs(30), |l| {
        l.starts_with("listening on ")
    });
    let addr = line
        .trim_start_matches("listening on ")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    (proc, t0, addr)
}

/// Waits until the source acknowledged `n` messages; returns the time since `t0`.
fn drained(addr: std::net::SocketAddr, n: usize, t0: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(r) = edgepurge_testkit::http::get(addr, "/healthz") {
            let h = r.json();
            if h["sources"][0]["acked"].as_u64() == Some(n as u64) {
                return t0.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "not drained within 10 minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report(what: &str, took: Duration) {
    println!(
        "{what}: {MESSAGES} messages acknowledged in {:.2} s from process start = {:.0} messages/s",
        took.as_secs_f64(),
        MESSAGES as f64 / took.as_secs_f64()
    );
}

fn amqp(fake: &FakeTencent) {
    use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
    use amqprs::connection::{Connection, OpenConnectionArguments};
    let mq = RabbitMq::start();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let conn = Connection::open(&OpenConnectionArguments::new(
            "127.0.0.1",
            mq.addr.port(),
            "guest",
            "guest",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let ch = conn
            .open_channel(None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ch.queue_declare(QueueDeclareArguments::durable_client_named("bench"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..MESSAGES {
            ch.basic_publish(
                amqprs::BasicProperties::default(),
                body(i),
                BasicPublishArguments::new("", "bench"),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let _ = ch.close().await;
        let _ = conn.close().await;
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "\n[[sources]]\nkind = \"amqp\"\nurl = \"{}\"\nqueue = \"bench\"\nprefetch = 256\n",
        mq.url()
    );
    let (_proc, t0, addr) = serve(&config(fake, &source), dir.path());
    report(
        "amqp (RabbitMQ 3.10, prefetch 256)",
        drained(addr, MESSAGES, t0),
    );
}

fn nats(fake: &FakeTencent) {
    let server = NatsServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let client = async_nats::connect(server.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let js = jetstream::new(client);
        js.create_stream(stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.events".into()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // Acknowledgements awaited a thousand at a time (the client bounds those in flight).
        let mut acks = Vec::with_capacity(1000);
        for i in 0..MESSAGES {
            acks.push(
                js.publish("bench.events", body(i).into())
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            if acks.len() == 1000 || i + 1 == MESSAGES {
                for a in acks.drain(..) {
                    a.await.unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "\n[[sources]]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"BENCH\"\ndeliver = \"all\"\n\
         max_in_flight = 256\n",
        server.url()
    );
    let (_proc, t0, addr) = serve(&config(fake, &source), dir.path());
    report(
        "nats (JetStream 2.9, max_in_flight 256)",
        drained(addr, MESSAGES, t0),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a filter.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let fake = FakeTencent::start(Options::default());
    if wanted("amqp") {
        amqp(&fake);
    }
    if wanted("nats") {
        nats(&fake);
    }
}
