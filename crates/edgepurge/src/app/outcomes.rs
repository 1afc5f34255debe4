//! Waiting for purges to finish without polling per waiter.
//!
//! The dispatcher tells [`Outcomes`] which log records changed after every answer it records
//! (the [`OutcomeSink`] port); a waiter registered for those records is woken at once. Records
//! finished by another process (a server holding the lane while `edgepurge purge` waits, or
//! another node of a cluster) are caught by one shared check of every open record each
//! `poll` interval, however many waiters there are.

use crate::dispatch::OutcomeSink;
use crate::store::{LogQuery, LogRecord, RecordChange, Status, Store};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How many record ids one store read asks for.
const CHUNK: usize = 500;

/// What a wait waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitFor {
    /// Every record final: the providers answered (or it was given up).
    #[default]
    Purged,
    /// Every record settled: also, where the provider has purge tasks, the task done (or its
    /// completion given up).
    Completed,
}

impl WaitFor {
    fn done(self, change: &RecordChange) -> bool {
        match self {
            WaitFor::Purged => change.status.is_final(),
            WaitFor::Completed => change.settled,
        }
    }
}

/// What a wait saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// Every record is final and none is dead (nothing to purge counts as purged).
    pub purged: bool,
    /// With [`WaitFor::Completed`]: every record purged and its purges completed at the
    /// providers (`None` for a wait for purged).
    pub completed: Option<bool>,
    /// Count of records per status when the wait ended.
    pub statuses: BTreeMap<Status, usize>,
    pub waited_ms: u64,
}

struct Waiter {
    until: WaitFor,
    /// Records not yet final (or settled).
    open: Mutex<HashSet<i64>>,
    /// How the records that finished ended.
    finished: Mutex<HashMap<i64, RecordChange>>,
    wake: Notify,
}

#[derive(Default)]
struct Registry {
    by_record: HashMap<i64, Vec<Weak<Waiter>>>,
}

pub struct Outcomes {
    store: Arc<dyn Store>,
    registry: Mutex<Registry>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OutcomeSink for Outcomes {
    fn changed(&self, records: &[RecordChange]) {
        let mut woken: Vec<Arc<Waiter>> = Vec::new();
        {
            let mut reg = lock(&self.registry);
            for change in records.iter().filter(|c| c.status.is_final()) {
                let Some(waiters) = reg.by_record.get_mut(&change.id) else {
                    continue;
                };
                // A waiter for completion stays registered while the record is only final.
                waiters.retain(|w| {
                    let Some(w) = w.upgrade() else { return false };
                    if !w.until.done(change) {
                        return true;
                    }
                    lock(&w.finished).insert(change.id, *change);
                    let mut open = lock(&w.open);
                    open.remove(&change.id);
                    if open.is_empty() {
                        woken.push(Arc::clone(&w));
                    }
                    false
                });
                if waiters.is_empty() {
                    reg.by_record.remove(&change.id);
                }
            }
        }
        for w in woken {
            w.wake.notify_one();
        }
    }
}

impl Outcomes {
    pub fn new(store: Arc<dyn Store>) -> Arc<Outcomes> {
        Arc::new(Outcomes {
            store,
            registry: Mutex::new(Registry::default()),
        })
    }

    /// Checks, every `poll`, the records someone waits for that another process may have
    /// finished. One task for every waiter; stops at `shutdown`.
    pub fn spawn_poller(self: &Arc<Self>, poll: Duration, shutdown: CancellationToken) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {},
                    _ = shutdown.cancelled() => return,
                }
                let Some(me) = me.upgrade() else { return };
                me.check_open().await;
            }
        });
    }

    /// Reads the open records of every waiter once and reports the finished ones.
    pub async fn check_open(&self) {
        let ids: Vec<i64> = {
            let mut reg = lock(&self.registry);
            reg.by_record
                .retain(|_, ws| ws.iter().any(|w| w.strong_count() > 0));
            reg.by_record.keys().copied().collect()
        };
        for chunk in ids.chunks(CHUNK) {
            match self.read(chunk).await {
                Ok(found) => self.changed(&found),
                Err(e) => tracing::warn!(error = %e, "cannot read purge status while waiting"),
            }
        }
    }

    async fn read(&self, ids: &[i64]) -> Result<Vec<RecordChange>, crate::store::StoreError> {
        Ok(self
            .store
            .log(LogQuery {
                ids: Some(ids.to_vec()),
                limit: ids.len(),
                ..Default::default()
            })
            .await?
            .iter()
            .map(LogRecord::change)
            .collect())
    }

    fn register(&self, ids: &[i64], until: WaitFor) -> Arc<Waiter> {
        let w = Arc::new(Waiter {
            until,
            open: Mutex::new(ids.iter().copied().collect()),
            finished: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        let mut reg = lock(&self.registry);
        for id in ids {
            reg.by_record
                .entry(*id)
                .or_default()
                .push(Arc::downgrade(&w));
        }
        w
    }

    fn deregister(&self, w: &Arc<Waiter>) {
        let open: Vec<i64> = lock(&w.open).iter().copied().collect();
        let mut reg = lock(&self.registry);
        for id in open {
            if let Some(ws) = reg.by_record.get_mut(&id) {
                ws.retain(|x| x.strong_count() > 0 && !std::ptr::eq(x.as_ptr(), Arc::as_ptr(w)));
                if ws.is_empty() {
                    reg.by_record.remove(&id);
                }
            }
        }
    }

    /// Waits until every record in `ids` is final (or settled, `until`), `timeout` passes or
    /// `stop` is cancelled; `progress(finished, total)` is called as records finish.
    pub async fn wait(
        &self,
        ids: &[i64],
        until: WaitFor,
        timeout: Duration,
        stop: &CancellationToken,
        mut progress: impl FnMut(usize, usize),
    ) -> WaitOutcome {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        let waiter = self.register(ids, until);
        // Records already final before we registered.
        for chunk in ids.chunks(CHUNK) {
            if let Ok(found) = self.read(chunk).await {
                self.changed(&found);
            }
        }
        loop {
            let open = lock(&waiter.open).len();
            progress(ids.len() - open, ids.len());
            if open == 0 || stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = waiter.wake.notified() => {},
                // Woken now and then anyway, for progress from records finished one by one.
                _ = tokio::time::sleep(Duration::from_millis(250)) => {},
                _ = tokio::time::sleep_until(deadline) => break,
                _ = stop.cancelled() => break,
            }
        }
        self.deregister(&waiter);
        // How every record stands now: those that finished, and those still open read back.
        let mut all: Vec<RecordChange> = lock(&waiter.finished).values().copied().collect();
        let open: Vec<i64> = lock(&waiter.open).iter().copied().collect();
        let mut unread = open.len();
        for chunk in open.chunks(CHUNK) {
            match self.read(chunk).await {
                Ok(found) => {
                    unread -= found.len().min(unread);
                    all.extend(found);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read purge status"),
            }
        }
        let mut statuses: BTreeMap<Status, usize> = BTreeMap::new();
        for c in &all {
            *statuses.entry(c.status).or_default() += 1;
        }
        let purged = unread == 0
            && all
                .iter()
                .all(|c| matches!(c.status, Status::Succeeded | Status::Skipped));
        let completed = (until == WaitFor::Completed).then(|| {
            purged
                && all
                    .iter()
                    .all(|c| c.completed || c.status == Status::Skipped)
        });
        WaitOutcome {
            purged,
            completed,
            statuses,
            waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::record;
    use crate::store::{SqliteOptions, SqliteStore};

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_blocking(&dir.path().join("t.db"), SqliteOptions::default())
            .await
            .unwrap();
        (dir, Arc::new(s))
    }

    #[tokio::test]
    async fn a_wait_for_completion_outlasts_the_answer_until_the_task_is_done() {
        let (_d, store) = store().await;
        let ids = store
            .ingest(vec![record("r", &[("p", "https://c/a")])], 0)
            .await
            .unwrap()
            .purge_ids;
        let outcomes = Outcomes::new(Arc::clone(&store));
        let id = ids[0];
        let stop = CancellationToken::new();
        let purged = {
            let (o, ids, stop) = (Arc::clone(&outcomes), ids.clone(), stop.clone());
            tokio::spawn(async move {
                o.wait(
                    &ids,
                    WaitFor::Purged,
                    Duration::from_secs(30),
                    &stop,
                    |_, _| {},
                )
                .await
            })
        };
        let completed = {
            let (o, ids, stop) = (Arc::clone(&outcomes), ids.clone(), stop.clone());
            tokio::spawn(async move {
                o.wait(
                    &ids,
                    WaitFor::Completed,
                    Duration::from_secs(30),
                    &stop,
                    |_, _| {},
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Answered, its task still followed: the first waiter is done, the second is not.
        outcomes.changed(&[RecordChange::of(id, Status::Succeeded, None, None)]);
        let out = tokio::time::timeout(Duration::from_secs(5), purged)
            .await
            .unwrap()
            .unwrap();
        assert!(out.purged && out.completed.is_none(), "{out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!completed.is_finished());
        outcomes.changed(&[RecordChange::of(id, Status::Succeeded, Some(9), None)]);
        let out = tokio::time::timeout(Duration::from_secs(5), completed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((out.purged, out.completed), (true, Some(true)), "{out:?}");
        // A task the provider failed settles the record without completing it.
        let failed = RecordChange::of(id, Status::Succeeded, None, Some("task failed"));
        assert!(failed.settled && !failed.completed);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_the_change_not_by_a_timer() {
        let (_d, store) = store().await;
        let ids = store
            .ingest(vec![record("r", &[("p", "https://c/a")])], 0)
            .await
            .unwrap()
            .purge_ids;
        let outcomes = Outcomes::new(Arc::clone(&store));
        let o = Arc::clone(&outcomes);
        let id = ids[0];
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            o.changed(&[RecordChange::of(id, Status::Succeeded, Some(1), None)]);
        });
        let t0 = std::time::Instant::now();
        let out = outcomes
            .wait(
                &ids,
                WaitFor::Purged,
                Duration::from_secs(30),
                &CancellationToken::new(),
                |_, _| {},
            )
            .await;
        assert!(out.purged, "{out:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(out.statuses.get(&Status::Succeeded), Some(&1));
        assert!(
            lock(&outcomes.registry).by_record.is_empty(),
            "deregistered"
        );
    }

    #[tokio::test]
    async fn a_timeout_reports_the_statuses_as_they_are() {
        let (_d, store) = store().await;
        let ids = store
            .ingest(
                vec![record("r", &[("p", "https://c/a")]), record("r", &[])],
                0,
            )
            .await
            .unwrap()
            .purge_ids;
        let outcomes = Outcomes::new(store);
        let out = outcomes
            .wait(
                &ids,
                WaitFor::Purged,
                Duration::from_millis(50),
                &CancellationToken::new(),
                |_, _| {},
            )
            .await;
        assert!(!out.purged);
        assert_eq!(out.statuses.get(&Status::Queued), Some(&1));
        assert_eq!(out.statuses.get(&Status::Skipped), Some(&1));
    }

    #[tokio::test]
    async fn records_finished_elsewhere_are_found_by_the_shared_check() {
        let (_d, store) = store().await;
        let ids = store
            .ingest(vec![record("r", &[("p", "https://c/a")])], 0)
            .await
            .unwrap()
            .purge_ids;
        // Another process sends and records the purge; this one is never told.
        let tok = store
            .acquire_lane("p", "other", 60_000)
            .await
            .unwrap()
            .unwrap()
            .token;
        let outcomes = Outcomes::new(Arc::clone(&store));
        let stop = CancellationToken::new();
        outcomes.spawn_poller(Duration::from_millis(50), stop.clone());
        let s2 = Arc::clone(&store);
        tokio::spawn(async move {
            let req = crate::store::ClaimRequest {
                lane: "p".into(),
                owner: "other".into(),
                token: tok,
                now: 1000,
                linger_ms: 0,
                kinds: vec![(
                    edgepurge_core::TargetKind::Url,
                    crate::store::KindLimits {
                        max_batch: 10,
                        daily_quota: None,
                    },
                )],
                quota_day: 0,
                quota_reset_at: 86_400_000,
                collapse_to_dir_over: None,
                fanout: None,
            };
            let crate::store::Claim::Batch(b) = s2.claim(req).await.unwrap() else {
                panic!("no batch")
            };
            s2.finish(crate::store::Finish {
                batch_id: b.id,
                token: tok,
                started_at: 1000,
                now: 1001,
                outcome: crate::store::FinishOutcome::Succeeded,
                http_status: Some(200),
                request_id: None,
                task_id: None,
                error: None,
                detached: Vec::new(),
                follow_task_at: None,
            })
            .await
            .unwrap();
        });
        let out = outcomes
            .wait(
                &ids,
                WaitFor::Purged,
                Duration::from_secs(20),
                &CancellationToken::new(),
                |_, _| {},
            )
            .await;
        stop.cancel();
        assert!(out.purged, "{out:?}");
    }
}
