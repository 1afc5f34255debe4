use super::*;
use crate::store::conformance::{self, Backend};
use std::sync::Arc;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap();
    (dir, store)
}

/// A fresh store file; every handle opened on it is another "process".
fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    Backend {
        guard: Box::new(dir),
        open: Box::new(move || {
            let path = path.clone();
            Box::pin(async move {
                Arc::new(
                    SqliteStore::open_blocking(&path, SqliteOptions::default())
                        .await
                        .unwrap(),
                ) as Arc<dyn Store>
            })
        }),
    }
}

/// The store conformance suite, on SQLite.
mod conformance_suite {
    use super::sqlite_backend;
    crate::store::conformance::suite!(sqlite_backend);
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade edgepurge"), "{err}");
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let err = SqliteStore::open(
        Path::new("/nonexistent-dir/x/t.db"),
        SqliteOptions::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn open_existing_refuses_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open_existing(&dir.path().join("nope.db"), SqliteOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("edgepurge serve"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_are_group_committed_and_all_acknowledged() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = conformance::record("r", &[("p", &format!("https://c/{i}"))]);
            store.ingest(vec![rec], 1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let depth = store.depths().await.unwrap();
    assert_eq!(depth[0].pending, 200);
    let seqs: std::collections::BTreeSet<i64> = store
        .log(LogQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert!(
        seqs.len() < 200,
        "200 concurrent ingests took {} transactions: no group commit",
        seqs.len()
    );
}

/// Holds SQLite's write lock from another connection until dropped.
struct Locker(
    Option<std::sync::mpsc::Sender<()>>,
    Option<std::thread::JoinHandle<()>>,
);

impl Locker {
    fn lock(path: &Path) -> Locker {
        let path = path.to_owned();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            c.execute_batch("ROLLBACK").unwrap();
        });
        locked_rx.recv().unwrap();
        Locker(Some(release_tx), Some(t))
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_refuses_at_once_and_loses_nothing_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Arc::new(
        SqliteStore::open(
            &path,
            SqliteOptions {
                write_queue: 3,
                busy_timeout_ms: 20_000,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let locker = Locker::lock(&path);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            let rec = conformance::record("r", &[("p", &format!("https://c/{i}"))]);
            let out = store.ingest(vec![rec], i).await;
            (out, t0.elapsed())
        }));
        // Let each reach the queue in turn.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The refused ones have answered already, long before the lock's timeout.
    let refused = tasks.iter().filter(|t| t.is_finished()).count();
    assert!(
        refused >= 15,
        "{refused} of 20 answered while the store was locked"
    );
    drop(locker);
    let mut stored = std::collections::BTreeSet::new();
    let mut busy = 0;
    for t in tasks {
        let (out, took) = t.await.unwrap();
        match out {
            Ok(r) => {
                stored.extend(r.purge_ids);
            }
            Err(StoreError::Busy(msg)) => {
                busy += 1;
                assert!(msg.contains("write_queue"), "{msg}");
                assert!(
                    took < std::time::Duration::from_secs(1),
                    "refused after {took:?}"
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(stored.len(), 4, "one being written plus three queued");
    assert_eq!(busy, 16);
    let logged: std::collections::BTreeSet<i64> = store
        .log(LogQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(logged, stored, "exactly what was acknowledged is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_fails_a_whole_group_within_one_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Arc::new(
        SqliteStore::open(
            &path,
            SqliteOptions {
                busy_timeout_ms: 300,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let _locker = Locker::lock(&path);
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = conformance::record("r", &[("p", &format!("https://c/{i}"))]);
            store.ingest(vec![rec], i).await
        }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
    let took = t0.elapsed();
    assert!(
        took < std::time::Duration::from_millis(300 * 4),
        "40 senders waited {took:?} for a 300 ms timeout"
    );
}

/// `edgepurge log` under load: the server's writer holds the write lock most of the time,
/// and opening an up-to-date store (as every CLI command does) used to wait for it in
/// `migrate` and fail with "database is locked".
#[tokio::test]
async fn an_up_to_date_store_opens_and_reads_while_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let s = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let rec = conformance::record("r", &[("p", "https://c/a")]);
        s.ingest(vec![rec], 1).await.unwrap();
    }
    let _locker = Locker::lock(&path);
    let opts = SqliteOptions {
        busy_timeout_ms: 200,
        ..Default::default()
    };
    let s = SqliteStore::open_existing(&path, opts).await.unwrap();
    let log = s
        .log(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
}

#[tokio::test]
async fn two_handles_on_one_file_share_lanes_like_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let a = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let b = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    assert!(a.acquire_lane("p", "A", 1000).await.unwrap().is_some());
    assert!(b.acquire_lane("p", "B", 1000).await.unwrap().is_none());
    a.ingest(vec![conformance::record("r", &[("p", "https://c/x")])], 0)
        .await
        .unwrap();
    let recs = b
        .log(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recs.len(),
        1,
        "a write by one handle is visible to the other"
    );
}

#[tokio::test]
async fn a_version_1_store_is_upgraded_with_its_queue_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1;
             UPDATE meta SET v = 7 WHERE k = 'seq';
             INSERT INTO purges (id, created_at, updated_at, seq, rule, provider, format, event,
                 bucket, key, targets, status, attempts, task_id)
             VALUES (1, 10, 20, 5, 'r', 'p', 'ceph', 'ObjectCreated:Put', 'b', 'done.css',
                     '[\"https://c/done.css\"]', 'succeeded', 1, 'T1'),
                    (2, 30, 30, 6, 'r', 'p', 'ceph', 'ObjectCreated:Put', 'b', 'wait.css',
                     '[\"https://c/wait.css\"]', 'queued', 0, NULL);
             INSERT INTO batches (id, lane, kind, state, attempts, n_jobs, not_before, created_at,
                 finished_at, task_id)
             VALUES (1, 'p', 'url', 'succeeded', 1, 1, 10, 10, 20, 'T1');
             INSERT INTO jobs (id, lane, kind, target, state, batch_id, created_at)
             VALUES (1, 'p', 'url', 'https://c/done.css', 'succeeded', 1, 10),
                    (2, 'p', 'url', 'https://c/wait.css', 'queued', NULL, 30);
             INSERT INTO purge_jobs (job_id, purge_id) VALUES (1, 1), (2, 2);
             INSERT INTO lanes (lane, owner, lease_until) VALUES ('p', 'old', 0);",
        )
        .unwrap();
    }
    // Tools do not upgrade a store a running (older) server may be using; the server does.
    let refused = SqliteStore::open(
        &path,
        SqliteOptions {
            upgrade: false,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        matches!(refused, StoreError::SchemaTooOld { found: 1, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("edgepurge serve"), "{refused}");
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let recs = store
        .log(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].task_id.as_deref(), Some("T1"));
    assert_eq!(store.log_cursor().await.unwrap(), 7);
    // The pending job is still pending, merges new events, and is sent by the next holder.
    let r = store
        .ingest(
            vec![conformance::record("r", &[("p", "https://c/wait.css")])],
            40,
        )
        .await
        .unwrap();
    assert_eq!((r.jobs_new, r.jobs_merged), (0, 1));
    let lease = store.acquire_lane("p", "A", 60_000).await.unwrap().unwrap();
    let claim = store
        .claim(ClaimRequest {
            lane: "p".into(),
            owner: "A".into(),
            token: lease.token,
            now: 1000,
            linger_ms: 0,
            kinds: vec![(
                TargetKind::Url,
                KindLimits {
                    max_batch: 10,
                    daily_quota: None,
                },
            )],
            quota_day: 0,
            quota_reset_at: 86_400_000,
            collapse_to_dir_over: None,
            fanout: None,
        })
        .await
        .unwrap();
    let Claim::Batch(b) = claim else {
        panic!("{claim:?}")
    };
    assert_eq!(b.targets, vec!["https://c/wait.css"]);
    let receipt = store
        .finish(Finish {
            batch_id: b.id,
            token: lease.token,
            started_at: 1000,
            now: 1001,
            outcome: FinishOutcome::Succeeded,
            http_status: Some(200),
            request_id: None,
            task_id: Some("T2".into()),
            error: None,
            detached: Vec::new(),
            follow_task_at: None,
        })
        .await
        .unwrap();
    assert_eq!(receipt.records.len(), 2, "the old record and the new one");
    let depth = store.depths().await.unwrap();
    assert!(depth.iter().all(|d| d.pending == 0), "{depth:?}");
}

/// The change number of a write of `records` records that holds its group open, and those
/// of three writes queued meanwhile.
async fn seqs_of_writes_queued_during_a_group(records: usize) -> (i64, Vec<i64>) {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .writer
                .run(records, true, move |_, ctx| {
                    let _ = started_tx.send(());
                    // Holds the group open until the others are queued.
                    let _ = go_rx.recv_timeout(std::time::Duration::from_secs(10));
                    Ok(ctx.seq)
                })
                .await
        })
    };
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    let later: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.writer.run(1, true, |_, ctx| Ok(ctx.seq)).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    go_tx.send(()).unwrap();
    let seq = first.await.unwrap().unwrap();
    let mut seqs = Vec::new();
    for t in later {
        seqs.push(t.await.unwrap().unwrap());
    }
    (seq, seqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_while_a_group_runs_join_its_transaction() {
    let (seq, later) = seqs_of_writes_queued_during_a_group(1).await;
    assert_eq!(
        later,
        vec![seq; 3],
        "a write queued while the group ran waited for another transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_group_commits_without_waiting_for_more() {
    let (seq, later) = seqs_of_writes_queued_during_a_group(writer::JOIN_BELOW_RECORDS).await;
    assert!(
        later.iter().all(|s| *s > seq),
        "writes queued behind a group of {} records joined it: {seq} {later:?}",
        writer::JOIN_BELOW_RECORDS
    );
}
