//! The write path: one writer per store, running on the blocking pool only while there is
//! work. Operations queued while it commits are committed together in its next transaction
//! (group commit), and those queued while a small group's statements run join that group
//! before its commit, so a burst costs one fsync per group, and each caller hears back only
//! after the commit that holds its operation.
//!
//! The queue is bounded in records: an ingest that would overflow it is refused at once with
//! [`StoreError::Busy`] (the webhook answers 503 + `Retry-After`), so a stalled disk or a
//! locked file never lets memory grow without bound. The queue's own operations (claims,
//! answers, leases) are never refused.
//!
//! A group runs in one transaction without savepoints; if one operation fails, the group is
//! rolled back and run again with a savepoint per operation, so one failure stays its own.
//! If the transaction cannot begin or commit (locked too long, disk full), every operation
//! of the group, and every one queued behind it meanwhile, gets that error: each caller
//! hears back within one `busy_timeout` of asking.

use super::{db_err, sql};
use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Most operations committed in one transaction.
const MAX_GROUP_OPS: usize = 512;
/// Most records committed in one transaction (a larger single operation still goes alone).
const MAX_GROUP_RECORDS: usize = 50_000;
/// Operations queued while a group's statements run join it while it holds fewer records
/// than this: in a small group the commit is most of the cost; a large one has already
/// spread it (and 100-record bodies measured no better for joining).
pub(super) const JOIN_BELOW_RECORDS: usize = 1_000;

/// What an operation may use besides the transaction: numbers assigned once per transaction.
pub(super) struct TxCtx<'a> {
    /// The change position of this transaction: every log record it touches gets it.
    pub seq: i64,
    pub next_purge_id: i64,
    pub next_job_id: i64,
    /// The time of the newest record: a new record's is never earlier.
    pub last_created: i64,
    /// Jobs made by fan-out expansion in this transaction (one slice per group at most, so
    /// claims grouped together do not add up to a large transaction).
    pub fanout_jobs: usize,
    known_lanes: &'a HashMap<String, i64>,
    new_lanes: HashMap<String, i64>,
}

impl TxCtx<'_> {
    /// The id of lane `name`, created when `create` is set; `None` if it does not exist.
    pub fn lane_id(
        &mut self,
        conn: &Connection,
        name: &str,
        create: bool,
    ) -> StoreResult<Option<i64>> {
        if let Some(id) = self
            .known_lanes
            .get(name)
            .or_else(|| self.new_lanes.get(name))
        {
            return Ok(Some(*id));
        }
        let mut find = conn
            .prepare_cached(sql::LANE_ID)
            .map_err(db_err("find lane"))?;
        let mut found = find
            .query_row([name], |r| r.get::<_, i64>(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(db_err("find lane"))?;
        if found.is_none() && create {
            conn.prepare_cached(sql::LANE_CREATE)
                .and_then(|mut s| s.execute([name]))
                .map_err(db_err("create lane"))?;
            found = Some(conn.last_insert_rowid());
        }
        if let Some(id) = found {
            // Remembered for good only once the transaction commits.
            self.new_lanes.insert(name.to_owned(), id);
        }
        Ok(found)
    }
}

type OpFn<T> = Box<dyn FnMut(&Connection, &mut TxCtx<'_>) -> StoreResult<T> + Send>;

trait WriteOp: Send {
    /// Runs the operation; false when it failed (its result keeps the error).
    fn run(&mut self, conn: &Connection, ctx: &mut TxCtx<'_>) -> bool;
    /// Delivers its own result, or the group's error when the group did not commit.
    fn reply(self: Box<Self>, group_error: Option<&StoreError>);
    fn records(&self) -> usize;
}

struct Op<T> {
    f: OpFn<T>,
    out: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
    records: usize,
}

impl<T: Send> WriteOp for Op<T> {
    fn run(&mut self, conn: &Connection, ctx: &mut TxCtx<'_>) -> bool {
        let out = (self.f)(conn, ctx);
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn reply(self: Box<Self>, group_error: Option<&StoreError>) {
        let Op { f, out, reply, .. } = *self;
        // What the operation holds goes first, so the caller's copy is the last one (and is
        // freed on the caller's thread, not here).
        drop(f);
        let out = match group_error {
            Some(e) => Err(e.clone()),
            None => out.unwrap_or_else(|| Err(StoreError::Unavailable("write was not run".into()))),
        };
        // The caller may have gone away (request cancelled); its write stands.
        let _ = reply.send(out);
    }

    fn records(&self) -> usize {
        self.records
    }
}

struct Queue {
    ops: VecDeque<Box<dyn WriteOp>>,
    records: usize,
    running: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    conn: Mutex<Connection>,
    /// Lane ids known to be committed.
    lanes: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these in a state worse than "as it was".
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Writer {
    pub fn new(conn: Connection, capacity: usize) -> Writer {
        Writer {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    ops: VecDeque::new(),
                    records: 0,
                    running: false,
                }),
                conn: Mutex::new(conn),
                lanes: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Runs `f` in the next group transaction. `records` counts against the queue's bound
    /// when `bounded` (ingest); the queue's own operations pass 0 and false.
    pub async fn run<T, F>(&self, records: usize, bounded: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut TxCtx<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.submit(
            Box::new(Op {
                f: Box::new(f),
                out: None,
                reply,
                records,
            }),
            bounded,
        )?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?
    }

    fn submit(&self, op: Box<dyn WriteOp>, bounded: bool) -> StoreResult<()> {
        let mut q = lock(&self.shared.queue);
        if bounded && q.records > 0 && q.records + op.records() > self.shared.capacity {
            return Err(StoreError::Busy(format!(
                "{} events are waiting to be written (store.write_queue = {}); retry later",
                q.records, self.shared.capacity
            )));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            StoreError::Unavailable(format!("store writes need the async runtime: {e}"))
        })?;
        q.records += op.records();
        q.ops.push_back(op);
        if !q.running {
            q.running = true;
            let shared = Arc::clone(&self.shared);
            // On the blocking pool: paused test time does not jump while it works, and no
            // thread is kept when there is nothing to write.
            handle.spawn_blocking(move || drain(&shared));
        }
        Ok(())
    }
}

/// Stops the writer cleanly if a group panics: later writes start a new one, and what was
/// queued is failed rather than left waiting.
struct RunningGuard<'a>(&'a Shared);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = lock(&self.0.queue);
            q.running = false;
            q.records = 0;
            let err = StoreError::Unavailable("the store writer failed; see the log".into());
            for op in q.ops.drain(..) {
                op.reply(Some(&err));
            }
        }
    }
}

fn drain(shared: &Shared) {
    let _guard = RunningGuard(shared);
    let mut conn = lock(&shared.conn);
    loop {
        let group: Vec<Box<dyn WriteOp>> = {
            let mut q = lock(&shared.queue);
            if q.ops.is_empty() {
                q.running = false;
                return;
            }
            let mut group = Vec::new();
            take(&mut q, &mut group);
            group
        };
        if let Err(e) = commit_group(&mut conn, shared, group) {
            // What queued meanwhile would wait behind the same lock or full disk for another
            // busy_timeout: it gets the same answer now, so every caller hears back within
            // one busy_timeout of asking.
            let waiting: Vec<Box<dyn WriteOp>> = {
                let mut q = lock(&shared.queue);
                q.records = 0;
                q.ops.drain(..).collect()
            };
            if !waiting.is_empty() {
                tracing::warn!(
                    operations = waiting.len(),
                    "store write failed: failing the writes queued behind it too"
                );
            }
            for op in waiting {
                op.reply(Some(&e));
            }
        }
    }
}

/// Moves operations from the queue to `group` while it stays within the group limits (a
/// larger single operation still goes alone); whether any moved.
fn take(q: &mut Queue, group: &mut Vec<Box<dyn WriteOp>>) -> bool {
    let before = group.len();
    let mut records: usize = group.iter().map(|op| op.records()).sum();
    let mut taken = 0;
    while let Some(op) = q.ops.front() {
        let n = op.records();
        if !group.is_empty() && (group.len() >= MAX_GROUP_OPS || records + n > MAX_GROUP_RECORDS) {
            break;
        }
        records += n;
        taken += n;
        if let Some(op) = q.ops.pop_front() {
            group.push(op);
        }
    }
    q.records -= taken;
    group.len() > before
}

/// Commits a group and answers its callers; the error when the group as a whole failed
/// (could not begin or commit).
fn commit_group(
    conn: &mut Connection,
    shared: &Shared,
    mut ops: Vec<Box<dyn WriteOp>>,
) -> StoreResult<()> {
    let result = match run_group(conn, shared, &mut ops, false) {
        Ok(true) => Ok(()),
        // One operation failed: run them again, each in a savepoint of its own.
        Ok(false) => run_group(conn, shared, &mut ops, true).map(|_| ()),
        Err(e) => Err(e),
    };
    let group_error = result.err();
    if let Some(e) = &group_error {
        tracing::error!(error = %e, operations = ops.len(), "store write failed");
    }
    for op in ops {
        op.reply(group_error.as_ref());
    }
    group_error.map_or(Ok(()), Err)
}

/// Runs every operation in one transaction. Without savepoints it stops at the first failure
/// and rolls back (returning false); with savepoints a failure only undoes that operation.
fn run_group(
    conn: &mut Connection,
    shared: &Shared,
    ops: &mut Vec<Box<dyn WriteOp>>,
    savepoints: bool,
) -> StoreResult<bool> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err("begin write"))?;
    let (last_purge, last_job, last_created): (i64, i64, i64) = tx
        .prepare_cached(sql::TX_COUNTERS)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(db_err("read ids"))?;
    let seq: i64 = tx
        .prepare_cached(sql::NEXT_SEQ)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_err("next change number"))?;
    let mut known = lock(&shared.lanes);
    let mut ctx = TxCtx {
        seq,
        next_purge_id: last_purge + 1,
        next_job_id: last_job + 1,
        last_created,
        fanout_jobs: 0,
        known_lanes: &known,
        new_lanes: HashMap::new(),
    };
    let mut next = 0;
    loop {
        for op in ops[next..].iter_mut() {
            if savepoints {
                tx.execute_batch("SAVEPOINT op")
                    .map_err(db_err("savepoint"))?;
                let lanes_before = ctx.new_lanes.clone();
                let ok = op.run(&tx, &mut ctx);
                if ok {
                    tx.execute_batch("RELEASE op")
                } else {
                    ctx.new_lanes = lanes_before;
                    tx.execute_batch("ROLLBACK TO op; RELEASE op")
                }
                .map_err(db_err("savepoint"))?;
            } else if !op.run(&tx, &mut ctx) {
                return Ok(false); // dropping `tx` rolls back
            }
        }
        next = ops.len();
        // What was queued while these ran joins this transaction rather than waiting for
        // the next: the commit (WAL frames, fsync) is most of a small group's cost. (The
        // savepoint run repeats a group as it was.)
        let records: usize = ops.iter().map(|op| op.records()).sum();
        if savepoints || records >= JOIN_BELOW_RECORDS || !take(&mut lock(&shared.queue), ops) {
            break;
        }
    }
    let counters = (ctx.next_purge_id - 1, ctx.next_job_id - 1, ctx.last_created);
    if counters != (last_purge, last_job, last_created) {
        // Ids given in this transaction (even to operations rolled back) are never given again.
        tx.prepare_cached(sql::TX_COUNTERS_SAVE)
            .and_then(|mut s| s.execute(rusqlite::params![counters.0, counters.1, counters.2]))
            .map_err(db_err("save ids"))?;
    }
    let new_lanes = std::mem::take(&mut ctx.new_lanes);
    tx.commit().map_err(db_err("commit"))?;
    known.extend(new_lanes);
    Ok(true)
}
