//! End-to-end benchmark of the real binary (release build) against the Tencent stand-in.
//! Prints figures; asserts nothing about time.
//!
//!   scripts/bench.sh            (installs wrk if missing, then runs this)
//!   cargo bench -p edgepurge --bench pipeline
//!   EDGEPURGE_BIN=/path/to/other/edgepurge cargo bench -p edgepurge --bench pipeline
//!
//! Ingest, from one run with one client (wrk, 2 threads, 5 s per figure): the floor (`HEAD
//! /v1/events`, which does no work), events/s durably acknowledged (synchronous = full; every
//! 200 comes after a committed transaction) for single-record bodies at 32 and 256
//! connections and for 100-record bodies, each against the floor, and the server's peak RSS.
//! Then, with a client of its own: provider calls per 1,000 events for a bursty workload
//! against the ⌈unique URLs / 1,000⌉ optimum, and event → provider request latency (p50/p99)
//! for a steady trickle. Last, outage recovery: a 3,000-object deploy while the provider
//! answers 20 % of calls with InternalError and then fails every call for 30 s; the time from
//! its return to the last URL purged, against 5 s + ⌈URLs ÷ batch⌉ ÷ rate, and the URL
//! submissions spent. `cargo bench -p edgepurge --bench pipeline -- outage` runs only that.
//! `-- ingest` runs only the ingest figures. Hot keys (`-- hotkeys` runs only that): 10
//! objects overwritten 200 times each in 20 s; the quota URLs spent until each one's last
//! change is purged, at the default linger without and with a rule's `min_interval_ms = 5000`.
//! Memory (`-- memory` runs only that): the server's peak RSS growth for one body of 48,000
//! records (7.1 MiB), and for 24 of them at once, against the bytes posted, with the server's
//! CPU time per event accepted.

use edgepurge_testkit::process::Proc;
use edgepurge_testkit::tencent::{self, FakeTencent, Options};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "bench-token";

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Rig {
    fake: FakeTencent,
    fake_addr: SocketAddr,
    _dir: tempfile::TempDir,
    server: Proc,
    addr: SocketAddr,
}

fn start(linger_ms: u64) -> Rig {
    start_with(linger_ms, "")
}

fn start_with(linger_ms: u64, provider_extra: &str) -> Rig {
    start_rule(linger_ms, provider_extra, "")
}

fn start_rule(linger_ms: u64, provider_extra: &str, rule_extra: &str) -> Rig {
    let fake = FakeTencent::start(Options {
        url_quota: Some(100_000_000),
        quiet: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = format!(
        r#"
[server]
webhook_token_env = "BENCH_TOKEN"
[store]
path = "bench.db"
synchronous = "full"
[dispatch]
linger_ms = {linger_ms}
[log]
record_unmatched = false
[providers.tencent]
kind = "tencent-cdn"
endpoint = "{endpoint}"
secret_id_env = "BENCH_ID"
secret_key_env = "BENCH_KEY"
url_daily_quota = 0
{provider_extra}
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
{rule_extra}
"#,
        endpoint = fake.endpoint(),
        linger_ms = linger_ms,
        provider_extra = provider_extra,
        rule_extra = rule_extra
    );
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("write config: {e}"));
    // EDGEPURGE_BIN measures another build (e.g. an older release) the same way.
    let bin =
        std::env::var_os("EDGEPURGE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgepurge").into());
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
        .args([
            "--config",
            "bench.toml",
            "--log-level",
            "warn",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("BENCH_TOKEN", TOKEN)
        .env("BENCH_ID", tencent::SECRET_ID)
        .env("BENCH_KEY", tencent::SECRET_KEY);
    let (server, line) = Proc::spawn_until("edgepurge", cmd, Duration::from_secs(30), |l| {
        l.starts_with("listening on ")
    });
    let addr = line["listening on ".len()..]
        .parse()
        .unwrap_or_else(|e| panic!("address: {e}"));
    Rig {
        fake_addr: fake.addr,
        fake,
        _dir: dir,
        server,
        addr,
    }
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

/// Every request the stand-in received, in order.
async fn fake_requests(client: &reqwest::Client, fake: SocketAddr) -> Vec<Value> {
    match client
        .get(format!("http://{fake}/__control/requests"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("fake requests: {e}"),
    }
}

/// Every successful purge request: (arrival time, URLs).
async fn purges(client: &reqwest::Client, fake: SocketAddr) -> Vec<(f64, Vec<String>)> {
    let reqs = fake_requests(client, fake).await;
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

async fn wait_purged(client: &reqwest::Client, fake: SocketAddr, want: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<String> = purges(client, fake)
            .await
            .into_iter()
            .flat_map(|(_, u)| u)
            .collect();
        if want.is_subset(&got) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn bursty(rig: &Rig, client: &reqwest::Client, linger_ms: u64) {
    reset(client, rig.fake_addr).await;
    // 20 bursts 300 ms apart; each burst: 600 events, a third of them for 200 hot objects.
    let mut events = 0usize;
    let mut unique = BTreeSet::new();
    let mut n = 0u64;
    for burst in 0..20 {
        let mut keys = Vec::new();
        for i in 0..600 {
            let key = if i % 3 == 0 {
                format!("hot/{}.css", (burst * 7 + i) % 200)
            } else {
                n += 1;
                format!("bursty/{n}.png")
            };
            unique.insert(format!("https://cdn.example.com/{key}"));
            keys.push(key);
        }
        let mut posts = Vec::new();
        for chunk in keys.chunks(20) {
            let client = client.clone();
            let addr = rig.addr;
            let chunk = chunk.to_vec();
            posts.push(tokio::spawn(
                async move { post(&client, addr, &chunk).await },
            ));
        }
        for p in posts {
            let _ = p.await;
        }
        events += keys.len();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_purged(client, rig.fake_addr, &unique).await;
    let calls = purges(client, rig.fake_addr).await.len();
    let optimum = unique.len().div_ceil(1000);
    println!(
        "bursty (linger_ms = {linger_ms}): {events} events, {} unique URLs -> {calls} provider \
         calls ({:.2} per 1,000 events; optimum ⌈unique/1000⌉ = {optimum}, {:.2} per 1,000 \
         events)",
        unique.len(),
        calls as f64 * 1000.0 / events as f64,
        optimum as f64 * 1000.0 / events as f64
    );
}

/// Hot keys: 10 objects overwritten 200 times each in 20 s (one body of 10 events every
/// 100 ms), at the default linger; the quota URLs spent (URLs in successful PurgeUrlsCache
/// calls) until each object's last change is purged, without and with the rule's
/// `min_interval_ms`.
async fn hot_keys(client: &reqwest::Client) {
    const KEYS: usize = 10;
    const ROUNDS: usize = 200;
    let mut spent = Vec::new();
    for min_interval_ms in [0u64, 5_000] {
        let extra = format!("min_interval_ms = {min_interval_ms}");
        let mut rig = start_rule(200, "", &extra);
        let keys: Vec<String> = (0..KEYS).map(|i| format!("hot/{i}.json")).collect();
        let started = Instant::now();
        let mut last_post = 0.0;
        for round in 0..ROUNDS {
            if !post(client, rig.addr, &keys).await {
                panic!("hot keys: the server refused round {round}");
            }
            last_post = now_s();
            let next = started + Duration::from_millis(100 * (round as u64 + 1));
            tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
        }
        let took = started.elapsed();
        // Settled when every key was purged after its last change (invariant 2).
        let deadline =
            Instant::now() + Duration::from_millis(min_interval_ms) * 2 + Duration::from_secs(60);
        let calls = loop {
            let calls = purges(client, rig.fake_addr).await;
            let after: BTreeSet<&String> = calls
                .iter()
                .filter(|(t, _)| *t > last_post)
                .flat_map(|(_, u)| u)
                .collect();
            if after.len() >= KEYS || Instant::now() > deadline {
                break calls;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let urls: usize = calls.iter().map(|(_, u)| u.len()).sum();
        let per_day = urls as f64 / took.as_secs_f64() * 86_400.0;
        println!(
            "hot keys ({KEYS} keys x {ROUNDS} overwrites in {:.1} s, linger_ms = 200, \
             min_interval_ms = {min_interval_ms}): {} events -> {urls} quota URLs in {} calls \
             (a 10,000/day URL quota lasts {})",
            took.as_secs_f64(),
            KEYS * ROUNDS,
            calls.len(),
            humantime::format_duration(Duration::from_secs((10_000.0 / per_day * 86_400.0) as u64))
        );
        spent.push(urls);
        rig.server.terminate(Duration::from_secs(20));
    }
    if let [without, with] = spent[..] {
        println!(
            "hot keys: min_interval_ms = 5000 spends {with} quota URLs against {without} \
             without ({:.1}x fewer)",
            without as f64 / with.max(1) as f64
        );
    }
}

async fn latency(rig: &Rig, client: &reqwest::Client) {
    reset(client, rig.fake_addr).await;
    // A steady trickle: 50 events/s for 10 s, one per request.
    let mut sent_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..500 {
        tick.tick().await;
        let key = format!("lat/{i}.html");
        sent_at.insert(format!("https://cdn.example.com/{key}"), now_s());
        let client = client.clone();
        let addr = rig.addr;
        tokio::spawn(async move { post(&client, addr, &[key]).await });
    }
    let want: BTreeSet<String> = sent_at.keys().cloned().collect();
    wait_purged(client, rig.fake_addr, &want).await;
    let mut first: BTreeMap<String, f64> = BTreeMap::new();
    for (t, urls) in purges(client, rig.fake_addr).await {
        for u in urls {
            first.entry(u).or_insert(t);
        }
    }
    let mut lat: Vec<f64> = sent_at
        .iter()
        .filter_map(|(u, s)| first.get(u).map(|t| (t - s) * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let calls = purges(client, rig.fake_addr).await.len();
    println!(
        "latency, 50 events/s trickle (linger_ms = 200): event -> provider request p50 {:.0} ms, \
         p99 {:.0} ms, max {:.0} ms over {} events in {calls} calls",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0),
        lat.len()
    );
}

/// Every purge call's URL count (failed ones too): what the deploy cost in submissions.
async fn submissions(client: &reqwest::Client, fake: SocketAddr) -> usize {
    let reqs = fake_requests(client, fake).await;
    reqs.iter()
        .filter(|r| r["action"] == "PurgeUrlsCache")
        .map(|r| r["body"]["Urls"].as_array().map_or(0, Vec::len))
        .sum()
}

async fn outage(client: &reqwest::Client) {
    const URLS: usize = 3000;
    const BATCH: usize = 100;
    const RATE: f64 = 20.0;
    const OUTAGE: Duration = Duration::from_secs(30);
    let rig = start_with(200, &format!("max_urls_per_request = {BATCH}"));
    rig.fake.flaky(0.2, "InternalError");
    let keys: Vec<String> = (0..URLS).map(|i| format!("deploy/{i:04}.js")).collect();
    let want: BTreeSet<String> = keys
        .iter()
        .map(|k| format!("https://cdn.example.com/{k}"))
        .collect();
    let mut posts = Vec::new();
    for chunk in keys.chunks(100) {
        let (client, addr, chunk) = (client.clone(), rig.addr, chunk.to_vec());
        posts.push(tokio::spawn(
            async move { post(&client, addr, &chunk).await },
        ));
    }
    for p in posts {
        let _ = p.await;
    }
    rig.fake.outage(Some(503));
    tokio::time::sleep(OUTAGE).await;
    rig.fake.outage(None);
    let back = now_s();
    wait_purged(client, rig.fake_addr, &want).await;
    let mut first: BTreeMap<String, f64> = BTreeMap::new();
    for (t, urls) in purges(client, rig.fake_addr).await {
        for u in urls {
            first.entry(u).or_insert(t);
        }
    }
    let purged = want.iter().filter(|u| first.contains_key(*u)).count();
    let last = first.values().copied().fold(f64::MIN, f64::max);
    let target = 5.0 + (URLS.div_ceil(BATCH) as f64) / RATE;
    let spent = submissions(client, rig.fake_addr).await;
    println!(
        "outage recovery ({URLS} URLs, {BATCH} per call, {RATE}/s, 20 % InternalError, {} s of \
         503s): {purged}/{URLS} purged, last {:.2} s after the provider came back (target ≤ \
         {target:.2} s), {} URL submissions ({:.2} per URL)",
        OUTAGE.as_secs(),
        (last - back).max(0.0),
        spent,
        spent as f64 / URLS as f64
    );
}

/// wrk's Lua for one POST body per request, each event a new object (keys are unique per run
/// and thread, so nothing merges).
const POST_LUA: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  local prefix = "NONCE/" .. tid
  n = n + 1
  local parts = {}
  for i = 1, PER_BODY do
    parts[i] = '{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",' ..
      '"s3":{"bucket":{"name":"assets"},"object":{"key":"' .. prefix .. '/' .. n .. '/' .. i .. '.js"}}}'
  end
  return wrk.format(nil, "/v1/events", nil, '{"Records":[' .. table.concat(parts, ",") .. ']}')
end
"#;

const HEAD_LUA: &str = "wrk.method = \"HEAD\"\n";

struct Wrk {
    /// Successful (2xx) requests per second.
    ok_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time (user + system, all its threads) per successful request, in µs,
    /// over the counted run. Unlike the rates, it hardly moves when other work shares the
    /// cores.
    cpu_us_per_ok: f64,
}

/// CPU time (user + system, every thread) the process `pid` has used so far, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on: utime is field
    // 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    (ticks(14) + ticks(15)) / 100.0
}

fn wrk_path() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("wrk"))
            .find(|p| p.is_file())
    })
}

/// One wrk run against the server `pid`: `connections` for 5 s after a 1 s warm-up.
fn wrk(addr: SocketAddr, pid: u32, dir: &std::path::Path, script: &str, connections: u32) -> Wrk {
    let url = format!("http://{addr}/v1/events");
    let run = |secs: &str| {
        let nonce = format!("{:x}", now_s().to_bits());
        let lua = dir.join(format!("{nonce}.lua"));
        std::fs::write(&lua, script.replace("NONCE", &nonce))
            .unwrap_or_else(|e| panic!("write {}: {e}", lua.display()));
        let out = Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{secs}"),
                "--latency",
            ])
            .arg("-s")
            .arg(&lua)
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("wrk: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run("1s");
    let cpu_before = cpu_s(pid);
    let text = run("5s");
    let cpu = cpu_s(pid) - cpu_before;
    let num = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.trim_start()[prefix.len()..].split_whitespace().next())
            .and_then(|v| {
                let (n, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
                let n: f64 = n.parse().ok()?;
                Some(match unit {
                    "us" => n / 1000.0,
                    "s" => n * 1000.0,
                    _ => n,
                })
            })
    };
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let bad = num("Non-2xx or 3xx responses:").unwrap_or(0.0);
    let rps = num("Requests/sec:").unwrap_or(0.0);
    Wrk {
        ok_per_s: if requests > 0.0 {
            rps * (requests - bad) / requests
        } else {
            0.0
        },
        cpu_us_per_ok: cpu * 1e6 / (requests - bad).max(1.0),
        p50_ms: num("50%").unwrap_or(0.0),
        p99_ms: num("99%").unwrap_or(0.0),
    }
}

fn ingest_against_the_floor(rig: &Rig) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let post = |n: u32| {
        POST_LUA
            .replace("TOKEN", TOKEN)
            .replace("PER_BODY", &n.to_string())
    };
    let pid = rig.server.pid();
    let mut floor_32 = 0.0;
    for conns in [32, 256] {
        let floor = wrk(rig.addr, pid, dir.path(), HEAD_LUA, conns);
        if conns == 32 {
            floor_32 = floor.ok_per_s;
        }
        let one = wrk(rig.addr, pid, dir.path(), &post(1), conns);
        println!(
            "{conns:>3} connections: floor (HEAD) {:>7.0} requests/s; single-record POST \
             {:>6.0} events/s = {:>4.1} % of the floor (p50 {:.1} ms, p99 {:.1} ms)",
            floor.ok_per_s,
            one.ok_per_s,
            100.0 * one.ok_per_s / floor.ok_per_s.max(1.0),
            one.p50_ms,
            one.p99_ms
        );
        println!(
            "{conns:>3} connections: server CPU {:.1} µs per HEAD, {:.1} µs per single-record \
             event",
            floor.cpu_us_per_ok, one.cpu_us_per_ok
        );
    }
    // Last: it leaves the longest backlog (the provider purges at most 20,000 URLs/s).
    let hundred = wrk(rig.addr, pid, dir.path(), &post(100), 32);
    println!(
        " 32 connections: 100-record POST {:>7.0} events/s = {:.2} × the floor's requests/s \
         (p50 {:.1} ms, p99 {:.1} ms); server CPU {:.2} µs per event",
        hundred.ok_per_s * 100.0,
        hundred.ok_per_s * 100.0 / floor_32.max(1.0),
        hundred.p50_ms,
        hundred.p99_ms,
        hundred.cpu_us_per_ok / 100.0
    );
    println!("after the ingest runs: {}", rss(rig.server.pid()));
}

/// `VmRSS` and `VmHWM` in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Peak RSS growth for large bodies: one alone, then 24 at once (each on a fresh server).
async fn memory(client: &reqwest::Client) {
    let big = |tag: usize| -> Vec<String> {
        (0..48_000)
            .map(|i| format!("mem{tag}/{i:07}/some/longer/path/name-{i}.png"))
            .collect()
    };
    for n in [1usize, 24] {
        let rig = start(200);
        let bodies: Vec<String> = (0..n).map(|t| body(&big(t))).collect();
        let bytes: usize = bodies.iter().map(String::len).sum();
        let (base, _) = rss_kib(rig.server.pid());
        let cpu_before = cpu_ms(rig.server.pid());
        let mut posts = Vec::new();
        for b in bodies {
            let (client, addr) = (client.clone(), rig.addr);
            posts.push(tokio::spawn(async move {
                client
                    .post(format!("http://{addr}/v1/events"))
                    .bearer_auth(TOKEN)
                    .body(b)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
        }
        let mut ok = 0;
        for p in posts {
            if p.await.unwrap_or(0) == 200 {
                ok += 1;
            }
        }
        let (_, peak) = rss_kib(rig.server.pid());
        let cpu = cpu_ms(rig.server.pid()) - cpu_before;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (after, _) = rss_kib(rig.server.pid());
        let growth = peak.saturating_sub(base) as f64 * 1024.0;
        println!(
            "memory: {n} body(ies) of {:.1} MiB at once ({ok} accepted): peak RSS {:.0} MiB over \
             the idle {:.0} MiB = {:.1} × the bytes posted; {:.0} MiB 3 s later; server CPU \
             {cpu:.0} ms ({:.1} µs per event accepted)",
            bytes as f64 / n as f64 / 1048576.0,
            growth / 1048576.0,
            base as f64 / 1024.0,
            growth / bytes as f64,
            after as f64 / 1024.0,
            cpu * 1000.0 / (ok as f64 * 48_000.0).max(1.0)
        );
    }
}

/// User + system CPU time of `pid` so far, in ms (what the machine's other work does not
/// distort, unlike wall time).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    // Clock ticks are 100 per second on Linux.
    ticks.iter().sum::<f64>() * 10.0
}

fn rss(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!("RSS now {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: only run real work
    // when benchmarking.
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
    if std::env::args().any(|a| a == "outage") {
        rt.block_on(outage(&client));
        return;
    }
    if std::env::args().any(|a| a == "memory") {
        rt.block_on(memory(&client));
        return;
    }
    if std::env::args().any(|a| a == "hotkeys") {
        rt.block_on(hot_keys(&client));
        return;
    }
    let only_ingest = std::env::args().any(|a| a == "ingest");
    if wrk_path().is_none() {
        eprintln!(
            "the pipeline benchmark drives the server with wrk: run scripts/bench.sh (installs \
             it), or `apt-get install wrk`"
        );
        std::process::exit(2);
    }
    let mut rig = start(200);
    println!(
        "edgepurge pipeline benchmark (release build, SQLite synchronous = full, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("idle: {}", rss(rig.server.pid()));
    ingest_against_the_floor(&rig);
    rig.server.terminate(Duration::from_secs(20));
    if only_ingest {
        return;
    }
    // The workloads below start from an empty queue.
    let mut rig = start(200);
    rt.block_on(async {
        bursty(&rig, &client, 200).await;
        latency(&rig, &client).await;
        println!("after the runs: {}", rss(rig.server.pid()));
        rig.server.terminate(Duration::from_secs(20));
        // The same bursts with a longer linger: fewer calls, more latency.
        let slow = start(2000);
        bursty(&slow, &client, 2000).await;
        drop(slow);
        outage(&client).await;
        hot_keys(&client).await;
        memory(&client).await;
    });
}
