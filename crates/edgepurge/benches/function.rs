//! Function mode benchmark: the real binary (release build) as a Tencent SCF custom-runtime
//! function, under the runtime API stand-in, purging through the Tencent API stand-in.
//! Prints figures; asserts nothing about time.
//!
//!   cargo bench -p edgepurge --bench function
//!
//! Cold start: from spawning the process (an invocation already waiting) to the first
//! provider request reaching the stand-in, and to the answer reaching the runtime API.
//! Per invocation, warm: the time from the runtime handing out an event to the function's
//! answer, for an event no rule matches (parse, plan, answer: edgepurge's own overhead) and
//! for one purging two URLs (plus one provider round trip to a loopback stand-in).
//! The stand-ins are Python: their own time is inside every figure.

use edgepurge_testkit::process::Proc;
use edgepurge_testkit::runtime::{Dialect, FakeRuntime};
use edgepurge_testkit::tencent::{self, FakeTencent, Options};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RUNS: usize = 20;
const WARM: usize = 200;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn event(bucket: &str, key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}
    }]})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (n = {})",
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

fn spawn(config: &str, rt: &FakeRuntime, dir: &std::path::Path) -> Proc {
    let bin =
        std::env::var_os("EDGEPURGE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_edgepurge").into());
    let mut cmd = Command::new(bin);
    cmd.arg("function")
        .current_dir(dir)
        .env_remove("EDGEPURGE_CONFIG")
        .env("EDGEPURGE_CONFIG_TOML", config)
        .env("EDGEPURGE_LOG", "warn")
        .env("BENCH_SECRET_ID", tencent::SECRET_ID)
        .env("BENCH_SECRET_KEY", tencent::SECRET_KEY);
    for (k, v) in rt.env() {
        cmd.env(k, v);
    }
    Proc::spawn_group("edgepurge-function", cmd, &dir.join("function.log"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let fake = FakeTencent::start(Options {
        url_quota: Some(100_000_000),
        quiet: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = format!(
        r#"
[providers.tencent]
kind = "tencent-cdn"
endpoint = "{}"
secret_id_env = "BENCH_SECRET_ID"
secret_key_env = "BENCH_SECRET_KEY"

[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "tencent"
"#,
        fake.endpoint()
    );
    println!("edgepurge function-mode benchmark (release build, Tencent SCF runtime stand-in)");

    // Cold start: a fresh process per run, its first invocation already waiting.
    let mut to_request = Vec::new();
    let mut to_answer = Vec::new();
    for i in 0..RUNS {
        let rt = FakeRuntime::start_with(Dialect::Scf, true);
        let key = format!("cold-{i}.png");
        let id = rt.invoke(event("assets", &key), 3000);
        let started = now_ms();
        let mut function = spawn(&config, &rt, dir.path());
        let answer = rt.result(&id, Duration::from_secs(20));
        let requests = fake.requests();
        let first = requests
            .iter()
            .find(|r| r["action"] == "PurgeUrlsCache" && r.to_string().contains(key.as_str()))
            .and_then(|r| r["time"].as_f64())
            .unwrap_or(f64::NAN);
        to_request.push(first * 1000.0 - started);
        to_answer.push(answer["at_ms"].as_f64().unwrap_or(f64::NAN) - started);
        function.terminate(Duration::from_secs(5));
    }
    println!(
        "cold start → first provider request: {}",
        summary(to_request)
    );
    println!(
        "cold start → answer posted:          {}",
        summary(to_answer)
    );

    // Warm: one process, invocations one after another.
    let rt = FakeRuntime::start_with(Dialect::Scf, true);
    let mut function = spawn(&config, &rt, dir.path());
    for (label, bucket) in [
        ("no rule matches (edgepurge's own work)", "elsewhere"),
        ("two URLs purged (one provider call)", "assets"),
    ] {
        let mut took = Vec::new();
        for i in 0..WARM {
            let id = rt.invoke(event(bucket, &format!("warm-{i}.png")), 3000);
            let r = rt.result(&id, Duration::from_secs(20));
            if r["kind"] != "response" {
                panic!("invocation failed: {r}");
            }
            let (at, received) = (r["at_ms"].as_f64(), r["received_ms"].as_f64());
            took.push(at.unwrap_or(f64::NAN) - received.unwrap_or(f64::NAN));
        }
        println!("warm invocation, {label}: {}", summary(took));
    }
    function.terminate(Duration::from_secs(5));
}
