//! The store backends side by side, from one run: 1 node on SQLite (`synchronous = full`),
//! 1 node and 3 nodes on PostgreSQL (a real server the test kit starts with `fsync = on`,
//! `synchronous_commit = on`: every 200 follows a flushed commit, as with SQLite), each
//! against the Tencent stand-in. Prints figures; asserts nothing about time.
//!
//!   cargo bench -p edgepurge --bench cluster
//!
//! For each: event → provider request latency (p50/p99) for a steady trickle of 50 events/s
//! spread over the nodes (single-record POSTs; `linger_ms = 200`), then events/s durably
//! acknowledged while 32 clients post 20-record bodies to the nodes in turn for 5 s. Every
//! process (nodes, database, stand-in, client) shares this machine's cores, so three nodes
//! here measure the cost of sharing the queue, not the gain of more machines.

use edgepurge_testkit::postgres::{self, Postgres};
use edgepurge_testkit::process::Proc;
use edgepurge_testkit::tencent::{self, FakeTencent, Options};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "bench-token";

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

enum Backend {
    Sqlite,
    Postgres(String),
}

struct Nodes {
    addrs: Vec<SocketAddr>,
    procs: Vec<Proc>,
    _dirs: Vec<tempfile::TempDir>,
}

fn start_nodes(backend: &Backend, n: usize, fake: &FakeTencent) -> Nodes {
    let store = match backend {
        Backend::Sqlite => "path = \"bench.db\"\nsynchronous = \"full\"".to_owned(),
        Backend::Postgres(_) => "url_env = \"BENCH_DATABASE_URL\"".to_owned(),
    };
    let mut nodes = Nodes {
        addrs: Vec::new(),
        procs: Vec::new(),
        _dirs: Vec::new(),
    };
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = format!(
            r#"
[server]
webhook_token_env = "BENCH_TOKEN"
[store]
{store}
[dispatch]
linger_ms = 200
[log]
record_unmatched = false
[providers.tencent]
kind = "tencent-cdn"
endpoint = "{endpoint}"
secret_id_env = "BENCH_ID"
secret_key_env = "BENCH_KEY"
url_daily_quota = 0
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
"#,
            endpoint = fake.endpoint(),
        );
        std::fs::write(dir.path().join("bench.toml"), config)
            .unwrap_or_else(|e| panic!("write config: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepurge"));
        cmd.current_dir(dir.path())
            .args(["--config", "bench.toml", "--log-level", "warn", "serve"])
            .args(["--listen", "127.0.0.1:0"])
            .env("BENCH_TOKEN", TOKEN)
            .env("BENCH_ID", tencent::SECRET_ID)
            .env("BENCH_KEY", tencent::SECRET_KEY);
        if let Backend::Postgres(url) = backend {
            cmd.env("BENCH_DATABASE_URL", url);
        }
        let (proc, line) = Proc::spawn_until("edgepurge", cmd, Duration::from_secs(30), |l| {
            l.starts_with("listening on ")
        });
        let addr = line["listening on ".len()..]
            .parse()
            .unwrap_or_else(|e| panic!("address: {e}"));
        nodes.addrs.push(addr);
        nodes.procs.push(proc);
        nodes._dirs.push(dir);
    }
    nodes
}

fn body(keys: &[String]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({"eventSource": "ceph:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "assets"}, "object": {"key": k}}})
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

async fn post(client: &reqwest::Client, addr: SocketAddr, keys: &[String]) -> bool {
    client
        .post(format!("http://{addr}/v1/events"))
        .bearer_auth(TOKEN)
        .body(body(keys))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Every successful purge request: (arrival time, URLs).
async fn purges(client: &reqwest::Client, fake: SocketAddr) -> Vec<(f64, Vec<String>)> {
    let reqs: Vec<Value> = match client
        .get(format!("http://{fake}/__control/requests"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("fake requests: {e}"),
    };
    reqs.into_iter()
        .filter(|r| r["action"] == "PurgeUrlsCache" && r["error_code"].is_null())
        .map(|r| {
            let urls = r["body"]["Urls"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (r["time"].as_f64().unwrap_or(0.0), urls)
        })
        .collect()
}

async fn reset(client: &reqwest::Client, fake: SocketAddr) {
    let _ = client
        .post(format!("http://{fake}/__control/reset"))
        .body("{}")
        .send()
        .await;
}

/// p50 and p99 of event → provider request, in ms, for a 50 events/s trickle over the nodes.
async fn latency(
    nodes: &Nodes,
    client: &reqwest::Client,
    fake: SocketAddr,
    tag: &str,
) -> (f64, f64) {
    reset(client, fake).await;
    let mut sent_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..500 {
        tick.tick().await;
        let key = format!("lat-{tag}/{i}.html");
        sent_at.insert(format!("https://cdn.example.com/{key}"), now_s());
        let client = client.clone();
        let addr = nodes.addrs[i % nodes.addrs.len()];
        tokio::spawn(async move { post(&client, addr, &[key]).await });
    }
    let want: BTreeSet<String> = sent_at.keys().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first: BTreeMap<String, f64> = BTreeMap::new();
    while Instant::now() < deadline {
        first.clear();
        for (t, urls) in purges(client, fake).await {
            for u in urls {
                first.entry(u).or_insert(t);
            }
        }
        if want.iter().all(|u| first.contains_key(u)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut lat: Vec<f64> = sent_at
        .iter()
        .filter_map(|(u, s)| first.get(u).map(|t| (t - s) * 1000.0))
        .collect();
    if lat.len() < sent_at.len() {
        eprintln!(
            "{tag}: only {} of {} purged in time",
            lat.len(),
            sent_at.len()
        );
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    (pct(0.5).unwrap_or(f64::NAN), pct(0.99).unwrap_or(f64::NAN))
}

/// Events/s acknowledged while 32 clients post 20-record bodies to the nodes in turn for 5 s
/// (after 1 s of warm-up).
async fn ingest(nodes: &Nodes, client: &reqwest::Client, tag: &str) -> f64 {
    let acked = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Instant::now() + Duration::from_secs(6);
    let mut tasks = Vec::new();
    for c in 0..32 {
        let (client, addrs) = (client.clone(), nodes.addrs.clone());
        let (acked, counting) = (Arc::clone(&acked), Arc::clone(&counting));
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while Instant::now() < stop {
                let keys: Vec<String> = (0..20).map(|j| format!("in-{tag}/{c}/{i}/{j}")).collect();
                let addr = addrs[(c + i) % addrs.len()];
                if post(&client, addr, &keys).await && counting.load(Ordering::SeqCst) {
                    acked.fetch_add(20, Ordering::SeqCst);
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    acked.load(Ordering::SeqCst) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let fake = FakeTencent::start(Options {
        url_quota: Some(1_000_000_000),
        quiet: true,
        ..Default::default()
    });
    let pg = Postgres::start_with(postgres::Options {
        fsync: true,
        max_connections: 300,
        tls: false,
    });
    println!(
        "edgepurge cluster benchmark (release build, {} cores; PostgreSQL with fsync and \
         synchronous_commit on, SQLite synchronous = full)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runs: Vec<(&str, Backend, usize)> = vec![
        ("SQLite, 1 node", Backend::Sqlite, 1),
        (
            "PostgreSQL, 1 node",
            Backend::Postgres(pg.create_database()),
            1,
        ),
        (
            "PostgreSQL, 3 nodes",
            Backend::Postgres(pg.create_database()),
            3,
        ),
    ];
    println!("| store | events/s (20-record POSTs, 32 clients) | event → request p50 | p99 |");
    println!("|---|---|---|---|");
    for (i, (name, backend, n)) in runs.iter().enumerate() {
        let mut nodes = start_nodes(backend, *n, &fake);
        let tag = format!("r{i}");
        let (p50, p99) = rt.block_on(latency(&nodes, &client, fake.addr, &tag));
        let rate = rt.block_on(ingest(&nodes, &client, &tag));
        println!("| {name} | {rate:.0} | {p50:.0} ms | {p99:.0} ms |");
        for p in &mut nodes.procs {
            p.terminate(Duration::from_secs(20));
        }
    }
}
