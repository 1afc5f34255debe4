//! The SQLite store alone: how fast ingest commits, and what each event costs the writer,
//! with a lane claiming and finishing batches at the same time (as a server does); and the
//! fan-out figure: one body of 50,000 records on an http-purge account of 200 nodes, stored
//! once per target (now) or once per target and node (before). Prints figures; asserts
//! nothing about time.
//!
//!   cargo bench -p edgepurge --bench store
//!   STORE_BENCH_ONLY=fanout cargo bench -p edgepurge --bench store
//!
//! Run with `synchronous = normal` (no fsync per commit) so the figures show CPU cost, not the
//! disk; the pipeline benchmark measures the durable path end to end.

use edgepurge::queue::{Claim, ClaimRequest, Finish, FinishOutcome, KindLimits};
use edgepurge::store::{
    EventInfo, FanoutClaim, FanoutJob, IngestRecord, LaneJob, SqliteOptions, SqliteStore, Store,
    Synchronous,
};
use edgepurge_core::TargetKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn record(i: u64, j: u64) -> IngestRecord {
    let key = format!("site/{i}/{j}/asset-{}.js", i * 7919 % 100_003);
    let url = format!("https://cdn.example.com/{key}");
    IngestRecord {
        event: EventInfo {
            format: "ceph".into(),
            name: "ObjectCreated:Put".into(),
            bucket: "assets".into(),
            key,
            id: None,
            etag: None,
            size: None,
        },
        rule: Some("site".into()),
        provider: Some("tencent".into()),
        targets: vec![url.clone()],
        jobs: vec![LaneJob {
            lane: "tencent".into(),
            kind: TargetKind::Url,
            target: url,
        }],
        min_interval_ms: 0,
        fanout: Vec::new(),
        allow_host_purge: false,
        note: None,
        verify: None,
        warm: None,
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A lane that claims and answers at once, like a fast provider.
async fn drain(store: Arc<dyn Store>, stop: Arc<AtomicBool>) -> u64 {
    let lease = match store.acquire_lane("tencent", "bench", 600_000).await {
        Ok(Some(l)) => l,
        other => panic!("lease: {other:?}"),
    };
    let mut sent = 0;
    let mut now = 1_000_000i64;
    while !stop.load(Ordering::Relaxed) {
        now += 1;
        let req = ClaimRequest {
            lane: "tencent".into(),
            owner: "bench".into(),
            token: lease.token,
            now: now + 10_000,
            linger_ms: 200,
            kinds: vec![(
                TargetKind::Url,
                KindLimits {
                    max_batch: 1000,
                    daily_quota: None,
                },
            )],
            quota_day: 0,
            quota_reset_at: i64::MAX,
            collapse_to_dir_over: None,
            fanout: None,
        };
        match store.claim(req).await {
            Ok(Claim::Batch(b)) => {
                sent += b.targets.len() as u64;
                let f = Finish {
                    batch_id: b.id,
                    token: lease.token,
                    started_at: now,
                    now,
                    outcome: FinishOutcome::Succeeded,
                    http_status: Some(200),
                    request_id: Some("r".into()),
                    task_id: Some("t".into()),
                    error: None,
                    detached: Vec::new(),
                    follow_task_at: None,
                };
                if let Err(e) = store.finish(f).await {
                    panic!("finish: {e}");
                }
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("claim: {e}"),
        }
    }
    sent
}

async fn run(per_op: u64, senders: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_blocking(
            &dir.path().join("bench.db"),
            SqliteOptions {
                synchronous: Synchronous::Normal,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("open: {e}")),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let lane = tokio::spawn(drain(Arc::clone(&store), Arc::clone(&stop)));
    let events = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs(4);
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    for s in 0..senders {
        let store = Arc::clone(&store);
        let events = Arc::clone(&events);
        tasks.push(tokio::spawn(async move {
            let mut i = s;
            while t0.elapsed() < run_for {
                let recs = (0..per_op).map(|j| record(i, j)).collect();
                match store.ingest(recs, 1_000_000).await {
                    Ok(_) => {
                        events.fetch_add(per_op, Ordering::Relaxed);
                    }
                    Err(e) => panic!("ingest: {e}"),
                }
                i += senders;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    stop.store(true, Ordering::Relaxed);
    let sent = lane.await.unwrap_or(0);
    let n = events.load(Ordering::Relaxed) as f64;
    println!(
        "{per_op:>3} record(s) per ingest, {senders:>3} senders: {:>8.0} events/s, {:>5.1} µs CPU \
         per event (ingest + claim + answer; {sent} sent)",
        n / secs,
        cpu * 1e6 / n
    );
}

/// One body of `records` records on an account of `nodes` lanes, as planned before (one job
/// per target and node: `fanned = false`) or now (one fan-out row per target).
fn fanout_body(records: u64, lanes: &Arc<[String]>, fanned: bool) -> Vec<IngestRecord> {
    (0..records)
        .map(|i| {
            let mut r = record(i, 0);
            r.provider = Some("edge".into());
            let url = r.targets[0].clone();
            if fanned {
                r.jobs = Vec::new();
                r.fanout = vec![FanoutJob {
                    account: "edge".into(),
                    lanes: Arc::clone(lanes),
                    kind: TargetKind::Url,
                    target: url,
                }];
            } else {
                r.jobs = lanes
                    .iter()
                    .map(|l| LaneJob {
                        lane: l.clone(),
                        kind: TargetKind::Url,
                        target: url.clone(),
                    })
                    .collect();
            }
            r
        })
        .collect()
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    ["bench.db", "bench.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Ingests one body in one transaction; prints its CPU time, wall time and store size.
async fn fanout_ingest(records: u64, nodes: usize, fanned: bool) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SqliteStore::open_blocking(
        &dir.path().join("bench.db"),
        SqliteOptions {
            synchronous: Synchronous::Normal,
            write_queue: usize::MAX,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("open: {e}"));
    let lanes: Arc<[String]> = (0..nodes).map(|i| format!("edge@10.0.0.{i}:80")).collect();
    let body = fanout_body(records, &lanes, fanned);
    let before = disk_bytes(dir.path());
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let r = store
        .ingest(body, 1_000_000)
        .await
        .unwrap_or_else(|e| panic!("ingest: {e}"));
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let rows = r.jobs_new + r.jobs_merged;
    println!(
        "{records:>6} records × {nodes} nodes, {:<26}: {rows:>9} queue rows, {:>7.2} s CPU \
         ({:>6.2} s wall) in one transaction, store +{:>6.1} MB",
        if fanned {
            "now (one row per target)"
        } else {
            "before (one row per node)"
        },
        cpu,
        secs,
        (disk_bytes(dir.path()) - before) as f64 / 1e6
    );
    if fanned {
        fanout_expansion(&store, &lanes).await;
    }
}

/// The expansion that follows: CPU per claim that expands one slice (the longest any
/// transaction now holds the writer for this body).
async fn fanout_expansion(store: &SqliteStore, lanes: &Arc<[String]>) {
    let lane = lanes[0].clone();
    let lease = match store.acquire_lane(&lane, "bench", 600_000).await {
        Ok(Some(l)) => l,
        other => panic!("lease: {other:?}"),
    };
    let claim = FanoutClaim {
        account: "edge".into(),
        lanes: Arc::clone(lanes),
    };
    let slices: u32 = 20;
    let c0 = cpu_seconds();
    for step in 0..slices {
        let now = 1_000_001 + i64::from(step);
        let req = ClaimRequest {
            lane: lane.clone(),
            owner: "bench".into(),
            token: lease.token,
            now,
            linger_ms: 0,
            kinds: vec![(
                TargetKind::Url,
                KindLimits {
                    max_batch: 100,
                    daily_quota: None,
                },
            )],
            quota_day: 0,
            quota_reset_at: i64::MAX,
            fanout: Some(claim.clone()),
            collapse_to_dir_over: None,
        };
        match store.claim(req).await {
            Ok(Claim::Batch(b)) => {
                let f = Finish {
                    batch_id: b.id,
                    token: lease.token,
                    started_at: now,
                    now,
                    outcome: FinishOutcome::Succeeded,
                    http_status: Some(200),
                    request_id: None,
                    task_id: None,
                    error: None,
                    detached: Vec::new(),
                    follow_task_at: None,
                };
                if let Err(e) = store.finish(f).await {
                    panic!("finish: {e}");
                }
            }
            other => panic!("claim: {other:?}"),
        }
    }
    let per = (cpu_seconds() - c0) / f64::from(slices);
    println!(
        "  then, per claim that expands a slice ({} targets × {} nodes, + a batch sent and \
         answered): {:>6.1} ms CPU",
        claim.rows_per_slice(),
        lanes.len(),
        per * 1e3
    );
}

fn fanout(before_records: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        fanout_ingest(50_000, 200, true).await;
        fanout_ingest(before_records, 200, false).await;
        fanout_ingest(before_records, 200, true).await;
    });
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    println!(
        "SQLite store, synchronous = normal, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let only: Option<u64> = std::env::var("STORE_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let fanout_only = std::env::var("STORE_BENCH_ONLY").is_ok_and(|v| v == "fanout");
    if fanout_only || only.is_none() {
        // Before, 50,000 × 200 = 10 million jobs in one transaction (minutes, gigabytes):
        // measured on fewer records (FANOUT_BEFORE_RECORDS) and scaled.
        let before: u64 = std::env::var("FANOUT_BEFORE_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_500);
        fanout(before);
        if fanout_only {
            return;
        }
    }
    rt.block_on(async {
        if only.is_none_or(|n| n == 1) {
            run(1, 32).await;
        }
        if only.is_none_or(|n| n == 1 || n == 256) {
            run(1, 256).await;
        }
        if only.is_none_or(|n| n == 100) {
            run(100, 32).await;
        }
    });
}
