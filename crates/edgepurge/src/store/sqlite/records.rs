//! Log records follow their jobs ([`crate::queue::record`]); each change is stamped with
//! the transaction's position in the change order.

use super::finish::read_batch;
use super::ids::{ids_json, parse_ids, parse_status};
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::record;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// The log records of a batch's jobs: all of them, and (sorted, a subset) those that have no
/// other job, whose status follows the batch's directly.
pub(super) struct BatchRecords {
    pub all: Vec<i64>,
    pub solo: Vec<i64>,
}

/// What a batch shows its records.
pub(super) struct BatchView {
    pub status: Status,
    pub attempts: u32,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
    pub completed_at: Option<Ms>,
    pub task_error: Option<String>,
}

impl BatchView {
    fn job(&self) -> record::JobView<'_> {
        record::JobView {
            status: self.status,
            attempts: self.attempts,
            request_id: self.request_id.as_deref(),
            task_id: self.task_id.as_deref(),
            error: self.error.as_deref(),
            completed_at: self.completed_at,
            task_error: self.task_error.as_deref(),
        }
    }
}

pub(super) fn batch_view(conn: &Connection, id: i64) -> StoreResult<BatchView> {
    type Row = (
        String,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let v: Row = conn
        .prepare_cached(sql::BATCH_VIEW)
        .and_then(|mut s| s.query_row([id], |r| Row::try_from(r)))
        .map_err(db_err("read batch"))?;
    Ok(BatchView {
        status: parse_status(&v.0)?,
        attempts: v.1.try_into().unwrap_or(0),
        request_id: v.2,
        task_id: v.3,
        error: v.4,
        completed_at: v.5,
        task_error: v.6,
    })
}

/// The batch whose change prompts a recompute: its jobs (sorted) and what it shows, so
/// neither needs a lookup.
pub(super) struct Known<'a> {
    pub batch: i64,
    pub jobs: &'a [i64],
    pub view: BatchView,
}

/// Recomputes the records of batch `id` after it changed.
pub(super) fn batch_changed(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    id: i64,
    now: Ms,
) -> StoreResult<Vec<RecordChange>> {
    let batch = read_batch(conn, id)?;
    let mut jobs = batch.job_ids;
    jobs.sort_unstable();
    let view = batch_view(conn, id)?;
    recompute(
        conn,
        ctx,
        &batch.records,
        now,
        Some(Known {
            batch: id,
            jobs: &jobs,
            view,
        }),
    )
}

/// Recomputes log records from their jobs (queue policy: [`record::summarize`]) and stamps
/// them with this transaction's change position. With the changed batch `known`, records
/// that have no other job are updated together in one statement.
pub(super) fn recompute(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    records: &BatchRecords,
    now: Ms,
    known: Option<Known<'_>>,
) -> StoreResult<Vec<RecordChange>> {
    let mut changes = Vec::with_capacity(records.all.len());
    let mut rest: &[i64] = &records.all;
    let filtered: Vec<i64>;
    if let Some(k) = &known {
        if !records.solo.is_empty() {
            let summary = record::summarize([k.view.job()]);
            conn.prepare_cached(sql::PURGES_UPDATE_SOLO)
                .and_then(|mut s| {
                    s.execute(params![
                        ids_json(&records.solo),
                        summary.status.as_str(),
                        summary.attempts,
                        summary.request_id,
                        summary.task_id,
                        summary.error,
                        now,
                        ctx.seq,
                        summary.completed_at
                    ])
                })
                .map_err(db_err("update records"))?;
            changes.extend(records.solo.iter().map(|&id| {
                RecordChange::of(
                    id,
                    summary.status,
                    summary.completed_at,
                    summary.error.as_deref(),
                )
            }));
            filtered = records
                .all
                .iter()
                .copied()
                .filter(|id| records.solo.binary_search(id).is_err())
                .collect();
            rest = &filtered;
        }
    }
    let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("update records"));
    let mut jobs_of = prep(sql::PURGE_JOB_IDS)?;
    let mut batch_of = prep(sql::JOB_BATCH)?;
    let mut update = prep(sql::PURGE_UPDATE)?;
    let mut batches: HashMap<i64, BatchView> = HashMap::new();
    for &pid in rest {
        let row: Option<(Option<String>, i64)> = jobs_of
            .query_row([pid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_err("read record jobs"))?;
        let Some((Some(jobs), fanout_left)) = row else {
            continue;
        };
        let mut views: Vec<Option<i64>> = Vec::new();
        for job in parse_ids(&jobs)? {
            let batch: Option<i64> = match &known {
                Some(k) if k.jobs.binary_search(&job).is_ok() => Some(k.batch),
                _ => {
                    let row: Option<Option<i64>> = batch_of
                        .query_row([job], |r| r.get(0))
                        .optional()
                        .map_err(db_err("read record jobs"))?;
                    match row {
                        Some(batch) => batch,
                        // Pruned with its finished batch: it has no say any more.
                        None => continue,
                    }
                }
            };
            if let Some(b) = batch {
                let is_known = known.as_ref().is_some_and(|k| k.batch == b);
                if !is_known && !batches.contains_key(&b) {
                    batches.insert(b, batch_view(conn, b)?);
                }
            }
            views.push(batch);
        }
        // Fan-out targets not expanded yet are jobs still to come: pending.
        let unexpanded = (fanout_left > 0).then_some(record::JobView::PENDING);
        let summary = record::summarize(
            views
                .iter()
                .map(|b| match b {
                    Some(b) => match known.as_ref().filter(|k| k.batch == *b) {
                        Some(k) => k.view.job(),
                        None => batches
                            .get(b)
                            .map_or(record::JobView::PENDING, BatchView::job),
                    },
                    None => record::JobView::PENDING,
                })
                .chain(unexpanded),
        );
        update
            .execute(params![
                pid,
                summary.status.as_str(),
                summary.attempts,
                summary.request_id,
                summary.task_id,
                summary.error,
                now,
                ctx.seq,
                summary.completed_at
            ])
            .map_err(db_err("update record"))?;
        changes.push(RecordChange::of(
            pid,
            summary.status,
            summary.completed_at,
            summary.error.as_deref(),
        ));
    }
    Ok(changes)
}
