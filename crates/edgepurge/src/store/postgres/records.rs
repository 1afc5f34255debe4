//! Log records follow their jobs ([`crate::queue::record`]); every change marks the
//! transaction as one that takes a change position at commit.

use super::finish::read_batch;
use super::sql;
use super::tx::{col, parse_status, Tx};
use crate::queue::record;
use crate::store::*;
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

pub(super) async fn batch_view(t: &Tx<'_>, id: i64) -> StoreResult<BatchView> {
    let r = t.query_one(sql::BATCH_VIEW, &[&id], "read batch").await?;
    let status: String = col(&r, 0)?;
    Ok(BatchView {
        status: parse_status(&status)?,
        attempts: col::<i64>(&r, 1)?.try_into().unwrap_or(0),
        request_id: col(&r, 2)?,
        task_id: col(&r, 3)?,
        error: col(&r, 4)?,
        completed_at: col(&r, 5)?,
        task_error: col(&r, 6)?,
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
pub(super) async fn batch_changed(
    t: &mut Tx<'_>,
    id: i64,
    now: Ms,
) -> StoreResult<Vec<RecordChange>> {
    let batch = read_batch(t, id).await?;
    let mut jobs = batch.job_ids;
    jobs.sort_unstable();
    let view = batch_view(t, id).await?;
    recompute(
        t,
        &batch.records,
        now,
        Some(Known {
            batch: id,
            jobs: &jobs,
            view,
        }),
    )
    .await
}

/// Recomputes log records from their jobs (queue policy: [`record::summarize`]). With the
/// changed batch `known`, records that have no other job are updated together in one
/// statement.
pub(super) async fn recompute(
    t: &mut Tx<'_>,
    records: &BatchRecords,
    now: Ms,
    known: Option<Known<'_>>,
) -> StoreResult<Vec<RecordChange>> {
    let mut changes = Vec::with_capacity(records.all.len());
    let mut rest: Vec<i64> = records.all.clone();
    if let Some(k) = &known {
        if !records.solo.is_empty() {
            let s = record::summarize([k.view.job()]);
            t.execute(
                sql::PURGES_UPDATE_SOLO,
                &[
                    &records.solo,
                    &s.status.as_str(),
                    &i64::from(s.attempts),
                    &s.request_id,
                    &s.task_id,
                    &s.error,
                    &now,
                    &s.completed_at,
                ],
                "update records",
            )
            .await?;
            t.touched = true;
            changes.extend(
                records
                    .solo
                    .iter()
                    .map(|&id| RecordChange::of(id, s.status, s.completed_at, s.error.as_deref())),
            );
            rest.retain(|id| records.solo.binary_search(id).is_err());
        }
    }
    if rest.is_empty() {
        return Ok(changes);
    }
    // Each remaining record's jobs, and each of those jobs' batch.
    // With the record's fan-out rows not expanded yet (jobs still to come).
    let mut record_jobs: HashMap<i64, (Vec<i64>, i64)> = HashMap::with_capacity(rest.len());
    for r in t
        .query(sql::PURGE_JOB_IDS, &[&rest], "read record jobs")
        .await?
    {
        if let Some(jobs) = col::<Option<Vec<i64>>>(&r, 1)? {
            record_jobs.insert(col(&r, 0)?, (jobs, col(&r, 2)?));
        }
    }
    let mut batch_of: HashMap<i64, Option<i64>> = HashMap::new();
    let mut batches: HashMap<i64, BatchView> = HashMap::new();
    for &pid in &rest {
        let Some((jobs, fanout_left)) = record_jobs.get(&pid) else {
            continue;
        };
        let mut views: Vec<Option<i64>> = Vec::new();
        for &job in jobs {
            let batch: Option<i64> = match &known {
                Some(k) if k.jobs.binary_search(&job).is_ok() => Some(k.batch),
                _ => {
                    if let std::collections::hash_map::Entry::Vacant(e) = batch_of.entry(job) {
                        let row = t
                            .query_opt(sql::JOB_BATCH, &[&job], "read record jobs")
                            .await?;
                        match row {
                            Some(r) => {
                                e.insert(col(&r, 0)?);
                            }
                            // Pruned with its finished batch: it has no say any more.
                            None => continue,
                        }
                    }
                    batch_of.get(&job).copied().flatten()
                }
            };
            if let Some(b) = batch {
                let is_known = known.as_ref().is_some_and(|k| k.batch == b);
                if !is_known && !batches.contains_key(&b) {
                    batches.insert(b, batch_view(t, b).await?);
                }
            }
            views.push(batch);
        }
        // Fan-out targets not expanded yet are jobs still to come: pending.
        let unexpanded = (*fanout_left > 0).then_some(record::JobView::PENDING);
        let s = record::summarize(
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
        t.execute(
            sql::PURGE_UPDATE,
            &[
                &pid,
                &s.status.as_str(),
                &i64::from(s.attempts),
                &s.request_id,
                &s.task_id,
                &s.error,
                &now,
                &s.completed_at,
            ],
            "update record",
        )
        .await?;
        t.touched = true;
        changes.push(RecordChange::of(
            pid,
            s.status,
            s.completed_at,
            s.error.as_deref(),
        ));
    }
    Ok(changes)
}
