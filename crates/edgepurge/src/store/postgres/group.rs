//! Group commit per node: ingests that arrive while a transaction is committing wait, and
//! go together in the next one (one commit, one change position, one upsert of their
//! distinct jobs). Each caller hears back only after the commit that holds its records.
//!
//! The wait is bounded in records: an ingest that would overflow it is refused at once with
//! [`StoreError::Busy`] (the webhook answers 503 + `Retry-After`). If a group fails for a
//! reason of its own records rather than the database's, its ingests are run again one by
//! one, so one bad ingest fails alone.

use super::{in_tx, ingest, lanes, Inner};
use crate::store::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Most ingests committed in one transaction.
const MAX_GROUP_OPS: usize = 512;
/// Most records committed in one transaction (a larger single ingest still goes alone).
const MAX_GROUP_RECORDS: usize = 20_000;

pub(super) struct Op {
    pub records: Vec<IngestRecord>,
    /// Each record's targets as the log keeps them (JSON).
    pub targets: Vec<String>,
    pub now: Ms,
    reply: oneshot::Sender<StoreResult<IngestReceipt>>,
}

struct Queue {
    ops: VecDeque<Op>,
    records: usize,
    running: bool,
}

pub(super) struct Group {
    queue: Mutex<Queue>,
    capacity: usize,
}

impl Group {
    pub fn new(capacity: usize) -> Group {
        Group {
            queue: Mutex::new(Queue {
                ops: VecDeque::new(),
                records: 0,
                running: false,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues an ingest for the next group and waits for its commit.
pub(super) async fn submit(
    inner: &Arc<Inner>,
    records: Vec<IngestRecord>,
    now: Ms,
) -> StoreResult<IngestReceipt> {
    if records.is_empty() {
        return Ok(IngestReceipt::default());
    }
    if let Some(what) = records.iter().find_map(nul_in) {
        // PostgreSQL text cannot hold NUL; refused alone, before it can fail a whole group.
        return Err(StoreError::Conflict(format!(
            "the event's {what} contains a NUL character, which the PostgreSQL store cannot \
             keep; nothing was stored"
        )));
    }
    let targets = records
        .iter()
        .map(|r| {
            serde_json::to_string(&r.targets)
                .map_err(|e| StoreError::Corrupt(format!("encode targets: {e}")))
        })
        .collect::<StoreResult<Vec<String>>>()?;
    let (reply, rx) = oneshot::channel();
    let n = records.len();
    {
        let mut q = inner.group.lock();
        if q.records > 0 && q.records + n > inner.group.capacity {
            return Err(StoreError::Busy(format!(
                "{} events are waiting to be written (store.write_queue = {}); retry later",
                q.records, inner.group.capacity
            )));
        }
        q.records += n;
        q.ops.push_back(Op {
            records,
            targets,
            now,
            reply,
        });
        if !q.running {
            q.running = true;
            tokio::spawn(drain(Arc::clone(inner)));
        }
    }
    rx.await
        .map_err(|_| StoreError::Unavailable("the store's ingest task stopped".into()))?
}

/// Commits groups until nothing waits.
async fn drain(inner: Arc<Inner>) {
    // If this task panics, later ingests start a new one and what waited hears why.
    struct Running<'a>(&'a Inner);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut q = self.0.group.lock();
                q.running = false;
                q.records = 0;
                for op in q.ops.drain(..) {
                    let _ = op.reply.send(Err(StoreError::Unavailable(
                        "the store's ingest task failed; see the log".into(),
                    )));
                }
            }
        }
    }
    let _running = Running(&inner);
    loop {
        let ops: Vec<Op> = {
            let mut q = inner.group.lock();
            if q.ops.is_empty() {
                q.running = false;
                return;
            }
            let mut group = Vec::new();
            let mut records = 0;
            while let Some(op) = q.ops.front() {
                let n = op.records.len();
                if !group.is_empty()
                    && (group.len() >= MAX_GROUP_OPS || records + n > MAX_GROUP_RECORDS)
                {
                    break;
                }
                records += n;
                if let Some(op) = q.ops.pop_front() {
                    group.push(op);
                }
            }
            q.records -= records;
            group
        };
        commit(&inner, ops).await;
    }
}

async fn run(inner: &Inner, ops: &[Op]) -> StoreResult<Vec<IngestReceipt>> {
    let mut names: Vec<&str> = ops
        .iter()
        .flat_map(|o| o.records.iter())
        .flat_map(|r| r.jobs.iter().map(|j| j.lane.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let lane_ids = lanes::lane_ids(inner, &names).await?;
    in_tx!(inner, "ingest", |t| ingest::ingest(
        &mut t,
        &lane_ids,
        ops,
        &inner.instance
    ))
}

async fn commit(inner: &Inner, ops: Vec<Op>) {
    match run(inner, &ops).await {
        Ok(receipts) => {
            for (op, r) in ops.into_iter().zip(receipts) {
                let _ = op.reply.send(Ok(r));
            }
        }
        Err(e) if ops.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %e, "a group of ingests failed: committing them one by one");
            for op in ops {
                let out = run(inner, std::slice::from_ref(&op))
                    .await
                    .map(|mut r| r.pop().unwrap_or_default());
                let _ = op.reply.send(out);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, ingests = ops.len(), "store write failed");
            for op in ops {
                let _ = op.reply.send(Err(e.clone()));
            }
        }
    }
}

/// The field of a record that holds a NUL character, if any.
fn nul_in(r: &IngestRecord) -> Option<&'static str> {
    let has = |s: &str| s.contains('\0');
    let e = &r.event;
    if has(&e.key) || has(&e.bucket) {
        return Some("object key or bucket");
    }
    if has(&e.format)
        || has(&e.name)
        || [&e.id, &e.etag]
            .iter()
            .any(|o| o.as_deref().is_some_and(has))
    {
        return Some("format, name, id or ETag");
    }
    if r.targets.iter().any(|t| has(t)) || r.jobs.iter().any(|j| has(&j.target) || has(&j.lane)) {
        return Some("target URL");
    }
    let verify_note = r.verify.as_ref().and_then(|v| v.note.clone());
    let warm_note = r.warm.as_ref().and_then(|w| w.note.clone());
    if [&r.rule, &r.provider, &r.note, &verify_note, &warm_note]
        .iter()
        .any(|o| o.as_deref().is_some_and(has))
    {
        return Some("rule, provider or note");
    }
    None
}
