//! Several `edgepurge serve` processes on one real PostgreSQL server, against the Tencent
//! stand-in: a node killed with SIGKILL mid-run, the database restarted mid-run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::postgres::Postgres;
use edgepurge_testkit::tencent::{self, FakeTencent};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "pw-never-shown-7f3a";

/// One test at a time: each runs several servers, and on a small machine three tests' worth
/// of them starve the provider stand-in, whose clock then bunches requests that were sent
/// within the limit.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const LEASE_S: u64 = 2;

/// A fresh database on `pg`, its URL with a password (trust authentication ignores it; it is
/// there to show it is never printed).
fn database(pg: &Postgres) -> (String, String) {
    let url = pg.create_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let with_password = url.replacen(
        &format!("{}@", edgepurge_testkit::postgres::USER),
        &format!("{}:{PASSWORD}@", edgepurge_testkit::postgres::USER),
        1,
    );
    (with_password, db)
}

/// A node's working directory: the Tencent config with the store in PostgreSQL.
fn node(fake: &FakeTencent, url: &str, provider_extra: &str) -> Edgepurge {
    let config = tencent_config(fake, provider_extra, SITE_RULE)
        .replace(
            "[store]\npath = \"edgepurge.db\"",
            "[store]\nurl_env = \"EDGEPURGE_DATABASE_URL\"",
        )
        .replace("lane_lease_s = 2", &format!("lane_lease_s = {LEASE_S}"));
    let mut ep = Edgepurge::new(&config);
    ep.env
        .push(("EDGEPURGE_DATABASE_URL".into(), url.to_owned()));
    ep
}

fn key(i: usize) -> String {
    format!("c/{i}.css")
}

fn url_of(i: usize) -> String {
    format!("https://cdn.example.com/{}", key(i))
}

/// Posts `body`, trying the nodes in turn from `start` until one acknowledges it (a load
/// balancer's retry); returns how many 503 answers it met. A 503 must carry `Retry-After`.
fn deliver(nodes: &[SocketAddr], start: usize, body: &[u8], deadline: Instant) -> usize {
    let mut unavailable = 0;
    for attempt in 0.. {
        assert!(Instant::now() < deadline, "a body was never acknowledged");
        let addr = nodes[(start + attempt) % nodes.len()];
        let auth = format!("Bearer {WEBHOOK_TOKEN}");
        match edgepurge_testkit::http::request(
            addr,
            "POST",
            "/v1/events",
            "x",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        ) {
            Ok(r) if r.status == 200 => return unavailable,
            Ok(r) if r.status == 503 => {
                assert!(
                    r.header("retry-after").is_some(),
                    "503 without Retry-After: {}",
                    r.text()
                );
                unavailable += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(r) => panic!("POST answered {}: {}", r.status, r.text()),
            // A dead node: the next one.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    unreachable!()
}

/// The most purge requests the stand-in received in any one-second window, and when that
/// window started (Unix seconds).
fn busiest_second(requests: &[Value]) -> (usize, f64) {
    let times: Vec<f64> = requests
        .iter()
        .filter(|r| r["action"] == "PurgeUrlsCache")
        .filter_map(|r| r["time"].as_f64())
        .collect();
    busiest_window(&times)
}

/// The most of `times` (seconds, ascending) in any one-second window, and when it started.
fn busiest_window(times: &[f64]) -> (usize, f64) {
    let (mut most, mut at) = (0, 0.0);
    let mut from = 0;
    for (i, t) in times.iter().enumerate() {
        while times[from] <= t - 1.0 {
            from += 1;
        }
        if i + 1 - from > most {
            (most, at) = (i + 1 - from, times[from]);
        }
    }
    (most, at)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The lane's holder as the database says (`host/pid/id`), or "" when none (the account's
/// prefetch lease, lane `tencent#prefetch`, is not the purge lane).
fn lane_owner(pg: &Postgres, db: &str) -> String {
    pg.psql(
        db,
        "SELECT owner FROM lanes WHERE lease_until > 0 AND name NOT LIKE '%#prefetch' LIMIT 1",
    )
    .trim()
    .to_owned()
}

fn wait_all_purged(fake: &FakeTencent, n: usize, timeout: Duration) {
    let want: BTreeSet<String> = (0..n).map(url_of).collect();
    edgepurge_testkit::wait_for(timeout, "every URL to be purged", || {
        let got: BTreeSet<String> = fake.purged().into_iter().collect();
        want.is_subset(&got).then_some(())
    });
}

#[test]
fn three_nodes_share_one_queue_and_a_killed_node_s_lane_is_taken_over() {
    const EVENTS: usize = 10_000;
    const PER_BODY: usize = 100;
    const RATE: u64 = 10;
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let (url, db) = database(&pg);
    let fake = FakeTencent::start(tencent::Options {
        token: Some(tencent::SESSION_TOKEN.into()),
        rate: Some(RATE),
        url_batch: Some(50),
        url_quota: Some(10_000_000),
        quiet: true,
        ..Default::default()
    });
    let extra = format!("rate_per_s = {RATE}\nmax_urls_per_request = 50\nurl_daily_quota = 0");
    let eps: Vec<Edgepurge> = (0..3).map(|_| node(&fake, &url, &extra)).collect();

    // The schema is made once, up front, and the URL's password is never printed.
    let out = eps[0].run(&["migrate"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains(", up to date"), "{printed}");
    assert!(!printed.contains(PASSWORD), "{printed}");

    let mut servers: Vec<Option<Server>> = eps
        .iter()
        .map(|ep| Some(ep.serve_with_stderr(std::process::Stdio::null())))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().flatten().map(|s| s.addr).collect();

    // Two senders spread 10,000 events over the three nodes.
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (next, addrs) = (Arc::clone(&next), addrs.clone());
            std::thread::spawn(move || loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b * PER_BODY >= EVENTS {
                    return;
                }
                let keys: Vec<String> = (b * PER_BODY..(b + 1) * PER_BODY).map(key).collect();
                deliver(
                    &addrs,
                    b,
                    &ceph_body("assets", "ObjectCreated:Put", &keys),
                    deadline,
                );
            })
        })
        .collect();

    // Mid-run (purges flowing), kill the node that holds the lane.
    edgepurge_testkit::wait_for(Duration::from_secs(60), "purges to flow", || {
        (fake.purges().len() >= 30).then_some(())
    });
    let owner = lane_owner(&pg, &db);
    let pid: u32 = owner.split('/').nth(1).unwrap().parse().unwrap();
    let victim = servers
        .iter()
        .position(|s| s.as_ref().is_some_and(|s| s.proc.pid() == pid))
        .unwrap_or_else(|| panic!("no node has pid {pid} (owner {owner})"));
    let mut dead = servers[victim].take().unwrap();
    dead.proc.kill9();
    let killed = Instant::now();
    let killed_at = unix_now();
    let taken_over = edgepurge_testkit::wait_for(
        Duration::from_secs(30),
        "another node to take the lane",
        || {
            let now = lane_owner(&pg, &db);
            (!now.is_empty() && now != owner).then(|| killed.elapsed())
        },
    );
    assert!(
        taken_over <= Duration::from_secs(LEASE_S + 1),
        "the lane was taken over {taken_over:?} after the kill (lane_lease_s = {LEASE_S})"
    );

    for s in senders {
        s.join().unwrap();
    }
    wait_all_purged(&fake, EVENTS, Duration::from_secs(120));

    // As the nodes stamped their requests when each left (the request log; answered
    // requests only, so the killed node's last ones are not in it): never above the limit.
    let left: Vec<f64> = pg
        .psql(&db, "SELECT started_at FROM requests ORDER BY started_at")
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .collect();
    assert!(left.len() >= 200, "{} requests logged", left.len());
    let (busiest_sent, sent_window) = busiest_window(&left);
    assert!(
        busiest_sent as u64 <= RATE,
        "the nodes sent {busiest_sent} purge requests in the second from {:.3} s after the \
         kill (limit {RATE})",
        sent_window - killed_at
    );
    // As the stand-in received them.
    let requests = fake.requests();
    let (busiest, window) = busiest_second(&requests);
    let stats = fake.stats();
    assert!(
        busiest as u64 <= RATE,
        "{busiest} purge requests in the second from {:.3} s after the kill (limit {RATE}); \
         stand-in: {stats}",
        window - killed_at
    );
    assert!(
        stats["errors"].get("RequestLimitExceeded").is_none(),
        "{stats}"
    );

    // Nothing acknowledged is missing from the shared log, read through a surviving node.
    let alive = (victim + 1) % 3;
    let log = eps[alive].settle(Duration::from_secs(60));
    let logged: BTreeSet<String> = log
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = (0..EVENTS).map(key).collect();
    assert!(want.is_subset(&logged), "{} keys logged", logged.len());
    assert!(
        log.iter().all(|r| r["status"] == "succeeded"),
        "every record succeeded"
    );
    eprintln!(
        "cluster: {} purge requests, busiest second {busiest}, lane taken over after {taken_over:?}",
        requests
            .iter()
            .filter(|r| r["action"] == "PurgeUrlsCache")
            .count()
    );
}

#[test]
fn a_database_restart_answers_503_meanwhile_and_loses_no_acknowledged_event() {
    const BODIES: usize = 40;
    const PER_BODY: usize = 20;
    let _serial = one_at_a_time();
    let mut pg = Postgres::start();
    let (url, _db) = database(&pg);
    let fake = fake_tencent();
    let eps: Vec<Edgepurge> = (0..2)
        .map(|_| node(&fake, &url, "url_daily_quota = 0"))
        .collect();
    let servers: Vec<Server> = eps
        .iter()
        .map(|ep| ep.serve_with_stderr(std::process::Stdio::null()))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();

    let unavailable = Arc::new(Mutex::new(0usize));
    let sender = {
        let (addrs, unavailable) = (addrs.clone(), Arc::clone(&unavailable));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            for b in 0..BODIES {
                let keys: Vec<String> = (b * PER_BODY..(b + 1) * PER_BODY).map(key).collect();
                let n = deliver(
                    &addrs,
                    b,
                    &ceph_body("assets", "ObjectCreated:Put", &keys),
                    deadline,
                );
                *unavailable.lock().unwrap() += n;
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    pg.stop(false);
    std::thread::sleep(Duration::from_secs(4));
    pg.start_again();
    sender.join().unwrap();
    assert!(
        *unavailable.lock().unwrap() > 0,
        "the webhook answered 503 while the database was down"
    );
    // The nodes came back by themselves: every acknowledged event is purged and logged.
    wait_all_purged(&fake, BODIES * PER_BODY, Duration::from_secs(60));
    let log = eps[1].settle(Duration::from_secs(60));
    let logged: BTreeSet<String> = log
        .iter()
        .filter_map(|r| r["key"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = (0..BODIES * PER_BODY).map(key).collect();
    assert!(want.is_subset(&logged), "{} keys logged", logged.len());
    for mut s in servers {
        assert!(s.proc.is_running(), "a node exited during the outage");
    }
}

#[test]
fn rules_and_the_log_are_the_same_from_every_node() {
    let _serial = one_at_a_time();
    let (url, _db) = database(Postgres::shared());
    let fake = fake_tencent();
    let a = node(&fake, &url, "url_daily_quota = 0");
    let b = node(&fake, &url, "url_daily_quota = 0");
    let _server_a = a.serve_with_stderr(std::process::Stdio::null());
    let server_b = b.serve_with_stderr(std::process::Stdio::null());
    // A rule added with node A's command line...
    a.ok(&[
        "rule",
        "add",
        "--name",
        "media",
        "--bucket",
        "media",
        "--event",
        "created",
        "--domain",
        "https://media.example.com",
        "--provider",
        "tencent",
    ]);
    let listed = b.ok(&["rule", "list", "--json"]);
    assert!(listed.contains("\"media\""), "{listed}");
    // ...is in force on node B within its rule poll.
    let body = ceph_body("media", "ObjectCreated:Put", &["x.png".to_owned()]);
    edgepurge_testkit::wait_for(Duration::from_secs(10), "node B to apply the rule", || {
        let r = server_b.send(&body);
        (r["targets"].as_u64() == Some(1)).then_some(())
    });
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the purge", || {
        fake.purged()
            .iter()
            .any(|u| u == "https://media.example.com/x.png")
            .then_some(())
    });
    // The log node A reads holds what node B took in.
    let log = a.settle(Duration::from_secs(20));
    assert!(
        log.iter()
            .any(|r| r["rule"] == "media" && r["status"] == "succeeded"),
        "{log:?}"
    );
}

#[test]
fn config_check_names_a_missing_database_url_and_never_prints_one() {
    let fake = fake_tencent();
    let mut ep = node(&fake, "unused", "");
    ep.env.retain(|(k, _)| k != "EDGEPURGE_DATABASE_URL");
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("EDGEPURGE_DATABASE_URL"), "{err}");
    ep.env.push((
        "EDGEPURGE_DATABASE_URL".into(),
        format!("postgres://app:{PASSWORD}@127.0.0.1:1/x"),
    ));
    let out = ep.run(&["config", "check"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PASSWORD), "{all}");
}

/// Config rules are shared: a node started with an older or different file replaces them for
/// every node, and must say which.
#[test]
fn a_node_with_a_different_config_file_names_the_shared_rules_it_changed() {
    let _serial = one_at_a_time();
    let pg = Postgres::shared();
    let (url, db) = database(pg);
    let fake = fake_tencent();
    // The first node installs the rules into a new store: not a warning.
    let a = node(&fake, &url, "url_daily_quota = 0");
    let a_log = a.dir.path().join("serve.log");
    let _server_a = a.serve_with_stderr(std::process::Stdio::from(
        std::fs::File::create(&a_log).unwrap(),
    ));
    let installed = edgepurge_testkit::wait_for(Duration::from_secs(10), "node A's line", || {
        let text = std::fs::read_to_string(&a_log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("config rules installed"))
            .map(str::to_owned)
    });
    assert!(
        installed.contains("INFO") && installed.contains("added site"),
        "{installed}"
    );
    let a_text = std::fs::read_to_string(&a_log).unwrap();
    assert!(!a_text.contains("every node sharing"), "{a_text}");

    // Node B's file has the site rule as it was before a prefix was added, and an extra rule.
    let b = node(&fake, &url, "url_daily_quota = 0");
    let text = std::fs::read_to_string(&b.config).unwrap();
    let older = text.replace(
        "provider = \"tencent\"\n",
        "provider = \"tencent\"\nprefix = \"old/\"\n\n[[rules]]\nname = \"extra\"\n\
         bucket = \"assets\"\nevents = [\"created\"]\ndomains = [\"https://cdn.example.com\"]\n\
         provider = \"tencent\"\n",
    );
    assert_ne!(older, text, "the site rule was found in the config");
    std::fs::write(&b.config, older).unwrap();
    let log_path = b.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server_b = b.serve_with_stderr(std::process::Stdio::from(log));
    let said = edgepurge_testkit::wait_for(Duration::from_secs(10), "node B's warning", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("changed the config rules of every node"))
            .map(str::to_owned)
    });
    assert!(said.contains("WARN"), "{said}");
    assert!(said.contains("added extra; changed site"), "{said}");
    // One shared set: node B's rules are what every node now applies.
    let stored = pg.psql(
        &db,
        "SELECT name FROM rules WHERE origin = 'config' ORDER BY name",
    );
    assert_eq!(
        stored.split_whitespace().collect::<Vec<_>>(),
        ["extra", "site"]
    );
    drop(server_b);
}

/// Two nodes warm one account's URLs: only the holder of the account's prefetch lease
/// prefetches, so each URL is pushed once and the prefetch rate holds across the cluster.
#[test]
fn two_nodes_warm_each_url_once_within_one_prefetch_rate() {
    let _serial = one_at_a_time();
    let (url, _db) = database(Postgres::shared());
    let fake = fake_tencent();
    let node = |fake: &FakeTencent| {
        let config = tencent_config(
            fake,
            "",
            r#"
[[rules]]
name = "warm"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "tencent"
warm = true
"#,
        )
        .replace(
            "[store]\npath = \"edgepurge.db\"",
            "[store]\nurl_env = \"EDGEPURGE_DATABASE_URL\"",
        )
        .replacen(
            "[dispatch]\n",
            "[dispatch]\ntask_check_ms = 200\nwarm_rate_per_s = 2\n",
            1,
        );
        let mut ep = Edgepurge::new(&config);
        ep.env.push(("EDGEPURGE_DATABASE_URL".into(), url.clone()));
        ep
    };
    let (a, b) = (node(&fake), node(&fake));
    let server_a = a.serve_with_stderr(std::process::Stdio::null());
    let server_b = b.serve_with_stderr(std::process::Stdio::null());
    for i in 0..6 {
        let server = if i % 2 == 0 { &server_a } else { &server_b };
        server.send(&ceph_body("assets", "ObjectCreated:Put", &[key(i)]));
    }
    let log = edgepurge_testkit::wait_for(Duration::from_secs(60), "every record warmed", || {
        let log = a.log(&[]);
        let done = log.len() == 6 && log.iter().all(|r| r["warmed"] == "warmed");
        done.then_some(log)
    });
    let pushes: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r["action"] == "PushUrlsCache")
        .collect();
    let pushed: Vec<String> = pushes
        .iter()
        .flat_map(|p| p["body"]["Urls"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let unique: BTreeSet<&String> = pushed.iter().collect();
    assert_eq!(pushed.len(), 6, "each URL pushed once: {pushed:?}");
    assert_eq!(unique.len(), 6, "{pushed:?}");
    let times: Vec<f64> = pushes.iter().filter_map(|p| p["time"].as_f64()).collect();
    let (most, at) = busiest_window(&times);
    assert!(
        most <= 2,
        "{most} pushes in the second from {at}: {times:?}"
    );
    assert_eq!(log.len(), 6);
}

#[test]
fn a_node_that_cannot_sign_leaves_the_lane_to_one_that_can_and_takes_it_back_later() {
    let _serial = one_at_a_time();
    let (url, db) = database(Postgres::shared());
    let fake = fake_tencent();
    // Node A's key is in a file that does not exist yet; node B has its key.
    let a = node(&fake, &url, "url_daily_quota = 0");
    let key_file = a.dir.path().join("secret-key");
    let a_config = std::fs::read_to_string(a.dir.path().join("edgepurge.toml"))
        .unwrap()
        .replace(
            "secret_key_env = \"EP_TEST_SECRET_KEY\"",
            &format!("secret_key_file = {:?}", key_file.display().to_string()),
        );
    std::fs::write(a.dir.path().join("edgepurge.toml"), a_config).unwrap();
    let b = node(&fake, &url, "url_daily_quota = 0");
    let server_a = start_server(a.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-missing-secrets",
    ]));
    // A alone: it holds no lane it cannot sign for, and sends nothing.
    let first = ceph_body("assets", "ObjectCreated:Put", &[key(0)]);
    assert_eq!(server_a.send(&first)["targets"], 1);
    std::thread::sleep(Duration::from_secs(LEASE_S + 1));
    assert!(fake.purges().is_empty(), "nothing sent unsigned");
    assert_eq!(lane_owner(Postgres::shared(), &db), "", "A left the lane");
    // B starts: it takes the lane and purges what A took in.
    let server_b = b.serve_with_stderr(std::process::Stdio::null());
    wait_all_purged(&fake, 1, Duration::from_secs(30));
    let owner = lane_owner(Postgres::shared(), &db);
    assert!(
        owner.contains(&format!("/{}/", server_b.proc.pid())),
        "B holds the lane: {owner:?}"
    );
    // A's key appears and B stops: A takes the lane back and purges what it takes in.
    std::fs::write(&key_file, edgepurge_testkit::tencent::SECRET_KEY).unwrap();
    drop(server_b);
    let second = ceph_body("assets", "ObjectCreated:Put", &[key(1)]);
    assert_eq!(server_a.send(&second)["targets"], 1);
    wait_all_purged(&fake, 2, Duration::from_secs(30));
    let owner = lane_owner(Postgres::shared(), &db);
    assert!(
        owner.contains(&format!("/{}/", server_a.proc.pid())),
        "A holds the lane: {owner:?}"
    );
}
