//! One body on an `http-purge` account with many cache nodes: its targets are stored once,
//! not once per node (issue 7, item 8). The nodes are loopback listeners of one tiny HTTP
//! server that counts the PURGEs each receives (one real Varnish among them for the
//! end-to-end case).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::caches::{Cache, CacheKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Per node, each path purged and how many times.
type Seen = Arc<Mutex<Vec<BTreeMap<String, u32>>>>;

/// Cache nodes that answer every PURGE with 200 and count them.
struct Nodes {
    rt: tokio::runtime::Runtime,
    addrs: Vec<SocketAddr>,
    seen: Seen,
    stops: Vec<Option<CancellationToken>>,
}

impl Nodes {
    /// `n` nodes on free loopback ports; those in `down` do not listen yet.
    fn start(n: usize, down: &[usize]) -> Nodes {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut nodes = Nodes {
            rt,
            addrs: (0..n)
                .map(|_| edgepurge_testkit::loopback(edgepurge_testkit::free_port()))
                .collect(),
            seen: Arc::new(Mutex::new(vec![BTreeMap::new(); n])),
            stops: (0..n).map(|_| None).collect(),
        };
        for i in (0..n).filter(|i| !down.contains(i)) {
            nodes.up(i);
        }
        nodes
    }

    fn up(&mut self, i: usize) {
        let stop = CancellationToken::new();
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind(self.addrs[i]))
            .unwrap();
        let seen = Arc::clone(&self.seen);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let seen = Arc::clone(&seen);
            async move {
                if req.method().as_str() == "PURGE" {
                    let mut s = seen.lock().unwrap();
                    *s[i].entry(req.uri().path().to_owned()).or_default() += 1;
                }
                "purged"
            }
        });
        let s = stop.clone();
        self.rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        self.stops[i] = Some(stop);
    }

    /// Distinct paths node `i` was asked to purge.
    fn paths(&self, i: usize) -> usize {
        self.seen.lock().unwrap()[i].len()
    }

    fn purges(&self, i: usize) -> u32 {
        self.seen.lock().unwrap()[i].values().sum()
    }

    fn total(&self) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|m| u64::from(m.values().sum::<u32>()))
            .sum()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for s in self.stops.iter().flatten() {
            s.cancel();
        }
    }
}

fn config(nodes: &[String], extra: &str) -> String {
    let list: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
max_body_bytes = 33554432
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 20
backoff_base_ms = 100
backoff_max_ms = 300
poll_ms = 100
probe_interval_ms = 200
max_attempts = 1000
{extra}
[providers.edge]
kind = "http-purge"
preset = "varnish"
nodes = [{}]

[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["http://cdn.test"]
provider = "edge"
"#,
        list.join(", ")
    )
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}/{i:05}.png")).collect()
}

// The store is read directly (read-only: WAL readers never wait for the writer): the CLI
// must take the write lock once at open, which a server busy with 200 lanes may hold.
fn read_only(db: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    read_only(db).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The purge log's records by status.
fn statuses(db: &std::path::Path) -> BTreeMap<String, i64> {
    let c = read_only(db);
    let mut stmt = c
        .prepare("SELECT status, COUNT(*) FROM purges GROUP BY status")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// Waits until every record succeeded.
fn all_succeeded(db: &std::path::Path, n: usize) {
    edgepurge_testkit::wait_for(Duration::from_secs(180), "every record to succeed", || {
        (statuses(db) == BTreeMap::from([("succeeded".to_owned(), n as i64)])).then_some(())
    });
}

#[test]
fn a_body_of_50000_records_on_200_nodes_is_accepted_stored_once_and_holds_nobody_up() {
    let nodes = Nodes::start(200, &[]);
    let addrs: Vec<String> = nodes.addrs.iter().map(|a| a.to_string()).collect();
    let ep = Edgepurge::new(&config(&addrs, ""));
    let server = ep.serve();
    let db = ep.dir.path().join("edgepurge.db");

    // 50,000 records × 200 nodes would be 10 million jobs: refused (413) by the jobs cap
    // before, or minutes in one transaction before that.
    let big = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &keys("big", 50_000),
    ));
    assert_eq!(big["targets"], 50_000, "one row per target, not per node");
    // A one-record body sent right after is acknowledged while the big fan-out is far
    // from done.
    let sent_at = std::time::Instant::now();
    let small = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["small/one.png".to_owned()],
    ));
    // A figure for the reader, not a threshold: the machine may be shared.
    eprintln!(
        "the one-record POST was answered in {:?} ({} purges sent so far)",
        sent_at.elapsed(),
        nodes.total()
    );
    assert_eq!(small["targets"], 1);
    let unexpanded = count(&db, "SELECT COUNT(*) FROM fanout");
    let jobs = count(&db, "SELECT COUNT(*) FROM jobs");
    assert!(
        unexpanded > 0 && nodes.total() < 50_000 * 200,
        "acknowledged before the fan-out completed ({unexpanded} targets left, {} purges sent)",
        nodes.total()
    );
    // The metrics show what waits to be fanned out (the lanes' pending counts do not hold it).
    let metrics = edgepurge_testkit::http::get(server.addr, "/metrics")
        .unwrap()
        .text();
    let waiting: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgepurge_queue_fanout_pending{account=\"edge\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fan-out depth in:\n{metrics}"));
    assert!(
        waiting > 0 && waiting <= 50_001,
        "{waiting} targets waiting to be fanned out"
    );
    // What is stored is bounded by the targets plus a few slices per node, not by
    // targets × nodes.
    assert!(
        jobs < 50_000 * 200 / 10,
        "{jobs} jobs after ingest of 50,000 targets on 200 nodes"
    );
    drop(server);
    // `status` says what waits to be fanned out (from the store; no server answers at port 1).
    let status: serde_json::Value =
        serde_json::from_str(&ep.ok(&["status", "--json", "--server", "127.0.0.1:1"])).unwrap();
    let left = count(&db, "SELECT COUNT(*) FROM fanout");
    assert_eq!(status["fanout"][0]["account"], "edge", "{status}");
    assert_eq!(status["fanout"][0]["targets"], left, "{status}");
    assert!(status["fanout"][0]["oldest_at"].is_string(), "{status}");
    let text = ep.ok(&["status", "--server", "127.0.0.1:1"]);
    assert!(
        text.contains(&format!("account edge: {left} targets not yet fanned out")),
        "{text}"
    );
}

#[test]
fn every_node_receives_every_url_of_a_fanned_out_body_one_of_them_a_real_varnish() {
    // Purges never reach the origin: an address where nothing listens will do.
    let origin = edgepurge_testkit::loopback(edgepurge_testkit::free_port());
    let varnish = Cache::start(CacheKind::Varnish, origin);
    let nodes = Nodes::start(199, &[]);
    let mut addrs: Vec<String> = nodes.addrs.iter().map(|a| a.to_string()).collect();
    addrs.push(varnish.addr.to_string());
    let ep = Edgepurge::new(&config(&addrs, ""));
    let server = ep.serve();
    let n = 100;
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys("e2e", n)));
    assert_eq!(answer["targets"], n);
    edgepurge_testkit::wait_for(
        Duration::from_secs(300),
        "every counting node purged every URL",
        || (0..199).all(|i| nodes.paths(i) == n).then_some(()),
    );
    let db = ep.dir.path().join("edgepurge.db");
    all_succeeded(&db, n);
    for i in 0..199 {
        assert_eq!(nodes.paths(i), n, "node {i} received every URL");
        assert_eq!(nodes.purges(i), n as u32, "node {i} received each URL once");
    }
    // The real Varnish answered each of its purges itself (per-node outcomes in the log).
    let lane = format!("edge@{}", varnish.addr);
    let c = read_only(&db);
    let mut stmt = c
        .prepare("SELECT outcome, http_status, n_targets FROM requests WHERE lane = ?1")
        .unwrap();
    let requests: Vec<(String, Option<i64>, i64)> = stmt
        .query_map([&lane], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!requests.is_empty(), "no request to {lane}");
    let sent: i64 = requests.iter().map(|r| r.2).sum();
    assert_eq!(sent, n as i64, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.0 == "succeeded" && r.1 == Some(200)),
        "{requests:?}"
    );
    drop(server);
}

#[test]
fn a_node_down_during_the_fan_out_gets_its_urls_when_it_is_back_and_others_are_unaffected() {
    // 50 nodes: a slice is 81 targets, so 300 records fan out over several slices.
    let mut nodes = Nodes::start(50, &[7]);
    let addrs: Vec<String> = nodes.addrs.iter().map(|a| a.to_string()).collect();
    let ep = Edgepurge::new(&config(&addrs, ""));
    let server = ep.serve();
    let n = 300;
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys("down", n)));
    edgepurge_testkit::wait_for(
        Duration::from_secs(180),
        "every node but the down one purged every URL",
        || {
            (0..50)
                .filter(|i| *i != 7)
                .all(|i| nodes.paths(i) == n)
                .then_some(())
        },
    );
    let db = ep.dir.path().join("edgepurge.db");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM fanout"),
        0,
        "the fan-out went on without the down node"
    );
    assert_eq!(nodes.paths(7), 0);
    let before = statuses(&db);
    assert!(
        !before.contains_key("succeeded"),
        "a record is not done while a node has not purged it: {before:?}"
    );
    nodes.up(7);
    all_succeeded(&db, n);
    assert_eq!(nodes.paths(7), n, "the node caught up");
    for i in (0..50).filter(|i| *i != 7) {
        assert_eq!(nodes.purges(i), n as u32, "node {i}: each URL once");
    }
    drop(server);
}

#[test]
fn a_removed_account_of_several_nodes_is_discarded_and_its_unfanned_targets_wait_for_it() {
    // Node 2 is down: its lane keeps the 30 URLs the others purge. Then 5 more URLs are
    // queued with no server running: they wait in the fan-out, given to no node yet.
    let mut nodes = Nodes::start(3, &[2]);
    let addrs: Vec<String> = nodes.addrs.iter().map(|a| a.to_string()).collect();
    let text = config(&addrs, "");
    let ep = Edgepurge::new(&text);
    let server = ep.serve();
    let n = 30;
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys("gone", n)));
    edgepurge_testkit::wait_for(Duration::from_secs(60), "nodes 0 and 1 purged", || {
        (nodes.paths(0) == n && nodes.paths(1) == n).then_some(())
    });
    drop(server);
    let mut args = vec!["purge", "--no-wait", "--provider", "edge"];
    let late: Vec<String> = (0..5)
        .map(|i| format!("http://cdn.test/late/{i}.png"))
        .collect();
    args.extend(late.iter().map(String::as_str));
    ep.ok(&args);
    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(ep.ok(args).trim()).unwrap() };

    // The account is removed (a new one takes the rule): nothing serves what "edge" left.
    let removed = text
        .replace("[providers.edge]", "[providers.edge2]")
        .replace("provider = \"edge\"", "provider = \"edge2\"");
    std::fs::write(&ep.config, &removed).unwrap();
    let status = json(&["status", "--json"]);
    assert_eq!(
        status["fanout"],
        serde_json::json!([{"account": "edge", "targets": 5,
            "oldest_at": status["fanout"][0]["oldest_at"], "served": false}]),
        "{status}"
    );
    let down_lane = format!("edge@{}", addrs[2]);
    let lane = status["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lane"] == down_lane.as_str())
        .unwrap_or_else(|| panic!("{down_lane} in {status}"));
    assert_eq!(lane["served"], false, "{status}");
    let text_status = ep.ok(&["status"]);
    assert!(
        text_status.contains("unserved: the config has no account \"edge\"")
            && text_status.contains(&format!("edgepurge discard --lane {down_lane}")),
        "{text_status}"
    );
    let check = ep.run(&["config", "check"]);
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("5 target(s) wait to be fanned out"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // The account in the config now is refused; the removed one's queued lane work goes to
    // the dead letters, its unfanned targets stay (and say so).
    let out = ep.run(&["discard", "--provider", "edge2"]);
    assert_eq!(out.status.code(), Some(2));
    let d = json(&["discard", "--provider", "edge", "--json"]);
    assert_eq!(
        d,
        serde_json::json!({"lanes": [down_lane], "batches": d["batches"], "targets": n,
            "dead_before": 0, "fanout_left": 5, "waiting_until": null})
    );
    let status = json(&["status", "--json"]);
    assert_eq!(status["fanout"][0]["targets"], 5, "{status}");
    for l in status["lanes"].as_array().unwrap() {
        assert_eq!(
            (l["pending"].as_u64(), l["waiting_batches"].as_u64()),
            (Some(0), Some(0)),
            "{l}"
        );
    }
    let log = ep.log(&[]);
    let by_status = |s: &str| log.iter().filter(|r| r["status"] == s).count();
    assert_eq!((by_status("dead"), by_status("queued")), (n, 5), "{log:?}");
    // Only the fan-out is left: the account has nothing else to discard, and says why.
    let out = ep.run(&["discard", "--provider", "edge"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5 target(s) never fanned out"), "{err}");

    // The account is back (node 2 with it): a retry sends the dead letters, and the waiting
    // targets reach every node; each node purges each URL once.
    std::fs::write(&ep.config, &text).unwrap();
    nodes.up(2);
    assert!(json(&["retry", "--provider", "edge", "--json"])["requeued"].as_u64() >= Some(1));
    let server = ep.serve();
    let db = ep.dir.path().join("edgepurge.db");
    all_succeeded(&db, n + 5);
    for i in 0..3 {
        assert_eq!(nodes.paths(i), n + 5, "node {i}");
        assert_eq!(nodes.purges(i), (n + 5) as u32, "node {i}: each URL once");
    }
    drop(server);
}
