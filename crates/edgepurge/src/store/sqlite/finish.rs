//! Answers: the request log, and what the policy ([`crate::queue::finish`]) does to a batch.

use super::claim::assign_jobs;
use super::ids::{ids_json, parse_ids, parse_kind, parse_state};
use super::quota::add_quota;
use super::records::{batch_changed, recompute, BatchRecords};
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::finish as fin;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;

pub(super) struct StoredBatch {
    pub lane: String,
    pub row: fin::BatchRow,
    pub job_ids: Vec<i64>,
    pub records: BatchRecords,
}

pub(super) fn read_batch(conn: &Connection, id: i64) -> StoreResult<StoredBatch> {
    type Row = (
        String,
        String,
        String,
        Option<i64>,
        i64,
        i64,
        Option<i64>,
        String,
        String,
        String,
    );
    let row: Option<Row> = conn
        .prepare_cached(sql::BATCH_GET)
        .and_then(|mut s| s.query_row([id], |r| Row::try_from(r)).optional())
        .map_err(db_err("read batch"))?;
    let Some((lane, kind, state, token, attempts, n_jobs, quota_day, jobs, purges, solo)) = row
    else {
        return Err(StoreError::NotFound(format!("batch {id} not found")));
    };
    Ok(StoredBatch {
        lane,
        row: fin::BatchRow {
            kind: parse_kind(&kind)?,
            state: parse_state(&state)?,
            token,
            attempts: attempts.try_into().unwrap_or(0),
            n_jobs: n_jobs.max(0) as u64,
            quota_day,
        },
        job_ids: parse_ids(&jobs)?,
        records: BatchRecords {
            all: parse_ids(&purges)?,
            solo: parse_ids(&solo)?,
        },
    })
}

pub(super) fn update_batch(conn: &Connection, id: i64, u: &fin::BatchUpdate) -> StoreResult<()> {
    conn.prepare_cached(sql::BATCH_UPDATE)
        .and_then(|mut s| {
            s.execute(params![
                id,
                u.state.as_str(),
                u.status.as_str(),
                u.not_before,
                u.finished_at,
                u.attempts,
                u.created_at,
                u.clear_quota_day,
                u.request_id.is_some(),
                u.request_id.clone().flatten(),
                u.task_id.is_some(),
                u.task_id.clone().flatten(),
                u.last_error,
                u.completed_at,
                u.task_check_at,
            ])
        })
        .map_err(db_err("update batch"))?;
    Ok(())
}

pub(super) fn finish(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    f: &Finish,
) -> StoreResult<FinishReceipt> {
    let batch = read_batch(conn, f.batch_id)?;
    conn.prepare_cached(sql::REQUEST_INSERT)
        .and_then(|mut s| {
            s.execute(params![
                f.batch_id,
                batch.lane,
                batch.row.kind.as_str(),
                batch.row.attempts,
                batch.row.n_jobs as i64,
                f.started_at,
                f.now,
                f.outcome.label(),
                f.http_status,
                f.request_id,
                f.task_id,
                f.error
            ])
        })
        .map_err(db_err("record request"))?;
    let fin::FinishPlan::Apply { split_keep, .. } = fin::plan(&batch.row, f) else {
        // Another holder of the lane resent this batch; its answer wins.
        return Ok(FinishReceipt::default());
    };
    // Targets that failed on their own leave first; the answer then applies to the rest.
    let moved = if split_keep.is_none() {
        detach(conn, f, &batch)?
    } else {
        0
    };
    let row = fin::BatchRow {
        n_jobs: batch.row.n_jobs.saturating_sub(moved),
        ..batch.row.clone()
    };
    let fin::FinishPlan::Apply { update, quota, .. } = fin::plan(&row, f) else {
        return Ok(FinishReceipt::default());
    };
    if let Some(q) = quota {
        add_quota(conn, &batch.lane, q.kind, q.day, q.delta)?;
    }
    update_batch(conn, f.batch_id, &update)?;
    let records = match split_keep {
        Some(keep) => {
            // The jobs are in two batches now: each record is read afresh.
            split(conn, f, &batch, usize::try_from(keep).unwrap_or(usize::MAX))?;
            recompute(conn, ctx, &batch.records, f.now, None)?
        }
        None if moved > 0 => recompute(conn, ctx, &batch.records, f.now, None)?,
        None => batch_changed(conn, ctx, f.batch_id, f.now)?,
    };
    Ok(FinishReceipt { records })
}

/// Moves each detached group of targets into a batch of its own with its own outcome; the
/// batch keeps the rest. Returns how many jobs moved.
fn detach(conn: &Connection, f: &Finish, batch: &StoredBatch) -> StoreResult<u64> {
    let n = batch.job_ids.len();
    let mut moved_any = vec![false; n];
    let mut moved = 0u64;
    for group in &f.detached {
        let indices: BTreeSet<usize> = group
            .indices
            .iter()
            .copied()
            .filter(|&i| i < n && !moved_any[i])
            .collect();
        let jobs: Vec<i64> = indices.iter().map(|&i| batch.job_ids[i]).collect();
        // Every job cannot leave: the batch keeps at least one (the sender makes the last
        // group the batch's own outcome instead).
        let left = moved_any.iter().filter(|m| !**m).count();
        if jobs.is_empty() || jobs.len() >= left {
            continue;
        }
        let Some(fin::FinishPlan::Apply { update, quota, .. }) =
            fin::plan_detached(&batch.row, group, f)
        else {
            continue;
        };
        for &i in &indices {
            moved_any[i] = true;
        }
        let new_id = move_to_new_batch(conn, f, &jobs, Some(&group.error))?;
        update_batch(conn, new_id, &update)?;
        if let Some(q) = quota {
            add_quota(conn, &batch.lane, q.kind, q.day, q.delta)?;
        }
        moved += jobs.len() as u64;
    }
    if moved > 0 {
        let kept: Vec<i64> = batch
            .job_ids
            .iter()
            .zip(&moved_any)
            .filter(|(_, m)| !**m)
            .map(|(j, _)| *j)
            .collect();
        keep_jobs(conn, f.batch_id, &kept)?;
    }
    Ok(moved)
}

/// Moves the jobs after the first `keep` into a new ready batch.
fn split(conn: &Connection, f: &Finish, batch: &StoredBatch, keep: usize) -> StoreResult<()> {
    let (kept, moved) = batch.job_ids.split_at(keep.min(batch.job_ids.len()));
    move_to_new_batch(conn, f, moved, f.error.as_deref())?;
    keep_jobs(conn, f.batch_id, kept)
}

/// Moves `jobs` of the answered batch into a new ready batch that copies its lane, kind,
/// attempts, age and quota day; returns the new batch's id.
fn move_to_new_batch(
    conn: &Connection,
    f: &Finish,
    jobs: &[i64],
    error: Option<&str>,
) -> StoreResult<i64> {
    let records = records_of(conn, jobs)?;
    conn.prepare_cached(sql::BATCH_SPLIT_INSERT)
        .and_then(|mut s| {
            s.execute(params![
                f.batch_id,
                jobs.len() as i64,
                f.now,
                error,
                ids_json(jobs),
                ids_json(&records.all),
                ids_json(&records.solo),
            ])
        })
        .map_err(db_err("move jobs to a new batch"))?;
    let new_id = conn.last_insert_rowid();
    assign_jobs(conn, new_id, jobs)?;
    Ok(new_id)
}

/// Leaves `batch` with only `jobs` (and the records they serve).
fn keep_jobs(conn: &Connection, batch: i64, jobs: &[i64]) -> StoreResult<()> {
    let records = records_of(conn, jobs)?;
    conn.prepare_cached(sql::BATCH_SET_JOBS)
        .and_then(|mut s| {
            s.execute(params![
                batch,
                jobs.len() as i64,
                ids_json(jobs),
                ids_json(&records.all),
                ids_json(&records.solo),
            ])
        })
        .map_err(db_err("set batch jobs"))?;
    Ok(())
}

/// The log records the jobs serve, in id order.
pub(super) fn records_of(conn: &Connection, jobs: &[i64]) -> StoreResult<BatchRecords> {
    let mut stmt = conn
        .prepare_cached(sql::JOB_PURGE_IDS)
        .map_err(db_err("read job records"))?;
    let (mut all, mut solo) = (BTreeSet::new(), BTreeSet::new());
    for j in jobs {
        let (a, s): (String, String) = stmt
            .query_row([j], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err("read job records"))?;
        all.extend(parse_ids(&a)?);
        solo.extend(parse_ids(&s)?);
    }
    Ok(BatchRecords {
        all: all.into_iter().collect(),
        solo: solo.into_iter().collect(),
    })
}
