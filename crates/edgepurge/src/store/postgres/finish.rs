//! Answers: the request log, and what the policy ([`crate::queue::finish`]) does to a batch.

use super::claim::assign_jobs;
use super::quota::add_quota;
use super::records::{batch_changed, recompute, BatchRecords};
use super::sql;
use super::tx::{col, parse_kind, parse_state, Tx};
use crate::queue::finish as fin;
use crate::store::*;
use std::collections::BTreeSet;

pub(super) struct StoredBatch {
    pub lane: String,
    pub row: fin::BatchRow,
    pub job_ids: Vec<i64>,
    pub records: BatchRecords,
}

/// Reads a batch, locking it: an answer and a takeover are decided one after the other.
pub(super) async fn read_batch(t: &Tx<'_>, id: i64) -> StoreResult<StoredBatch> {
    let Some(r) = t.query_opt(sql::BATCH_GET, &[&id], "read batch").await? else {
        return Err(StoreError::NotFound(format!("batch {id} not found")));
    };
    let kind: String = col(&r, 1)?;
    let state: String = col(&r, 2)?;
    Ok(StoredBatch {
        lane: col(&r, 0)?,
        row: fin::BatchRow {
            kind: parse_kind(&kind)?,
            state: parse_state(&state)?,
            token: col(&r, 3)?,
            attempts: col::<i64>(&r, 4)?.try_into().unwrap_or(0),
            n_jobs: col::<i64>(&r, 5)?.max(0) as u64,
            quota_day: col(&r, 6)?,
        },
        job_ids: col(&r, 7)?,
        records: BatchRecords {
            all: col(&r, 8)?,
            solo: col(&r, 9)?,
        },
    })
}

pub(super) async fn update_batch(t: &Tx<'_>, id: i64, u: &fin::BatchUpdate) -> StoreResult<()> {
    let attempts: Option<i64> = u.attempts.map(i64::from);
    t.execute(
        sql::BATCH_UPDATE,
        &[
            &id,
            &u.state.as_str(),
            &u.status.as_str(),
            &u.not_before,
            &u.finished_at,
            &attempts,
            &u.created_at,
            &u.clear_quota_day,
            &u.request_id.is_some(),
            &u.request_id.clone().flatten(),
            &u.task_id.is_some(),
            &u.task_id.clone().flatten(),
            &u.last_error,
            &u.completed_at,
            &u.task_check_at,
        ],
        "update batch",
    )
    .await
    .map(drop)
}

/// PostgreSQL text cannot hold NUL: a provider's answer that has one (a cache's error page)
/// is kept with U+FFFD in its place rather than failing the answer over and over.
fn without_nul(f: &Finish) -> std::borrow::Cow<'_, Finish> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains('\0'));
    if !has(&f.error)
        && !has(&f.request_id)
        && !has(&f.task_id)
        && !f.detached.iter().any(|d| d.error.contains('\0'))
    {
        return std::borrow::Cow::Borrowed(f);
    }
    let clean = |s: &Option<String>| s.as_ref().map(|s| s.replace('\0', "\u{fffd}"));
    let mut owned = f.clone();
    owned.error = clean(&f.error);
    owned.request_id = clean(&f.request_id);
    owned.task_id = clean(&f.task_id);
    for d in &mut owned.detached {
        d.error = d.error.replace('\0', "\u{fffd}");
    }
    std::borrow::Cow::Owned(owned)
}

pub(super) async fn finish(t: &mut Tx<'_>, f: &Finish) -> StoreResult<FinishReceipt> {
    let f = &*without_nul(f);
    let batch = read_batch(t, f.batch_id).await?;
    let attempts = i64::from(batch.row.attempts);
    let n_jobs = batch.row.n_jobs as i64;
    let http_status: Option<i64> = f.http_status.map(i64::from);
    t.execute(
        sql::REQUEST_INSERT,
        &[
            &f.batch_id,
            &batch.lane,
            &batch.row.kind.as_str(),
            &attempts,
            &n_jobs,
            &f.started_at,
            &f.now,
            &f.outcome.label(),
            &http_status,
            &f.request_id,
            &f.task_id,
            &f.error,
        ],
        "record request",
    )
    .await?;
    let fin::FinishPlan::Apply { split_keep, .. } = fin::plan(&batch.row, f) else {
        // Another holder of the lane resent this batch; its answer wins.
        return Ok(FinishReceipt::default());
    };
    // Targets that failed on their own leave first; the answer then applies to the rest.
    let moved = if split_keep.is_none() {
        detach(t, f, &batch).await?
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
        add_quota(t, &batch.lane, q.kind, q.day, q.delta).await?;
    }
    update_batch(t, f.batch_id, &update).await?;
    let records = match split_keep {
        Some(keep) => {
            // The jobs are in two batches now: each record is read afresh.
            split(t, f, &batch, usize::try_from(keep).unwrap_or(usize::MAX)).await?;
            recompute(t, &batch.records, f.now, None).await?
        }
        None if moved > 0 => recompute(t, &batch.records, f.now, None).await?,
        None => batch_changed(t, f.batch_id, f.now).await?,
    };
    Ok(FinishReceipt { records })
}

/// Moves each detached group of targets into a batch of its own with its own outcome; the
/// batch keeps the rest. Returns how many jobs moved.
async fn detach(t: &Tx<'_>, f: &Finish, batch: &StoredBatch) -> StoreResult<u64> {
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
        let new_id = move_to_new_batch(t, f, &jobs, Some(&group.error)).await?;
        update_batch(t, new_id, &update).await?;
        if let Some(q) = quota {
            add_quota(t, &batch.lane, q.kind, q.day, q.delta).await?;
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
        keep_jobs(t, f.batch_id, &kept).await?;
    }
    Ok(moved)
}

/// Moves the jobs after the first `keep` into a new ready batch.
async fn split(t: &Tx<'_>, f: &Finish, batch: &StoredBatch, keep: usize) -> StoreResult<()> {
    let (kept, moved) = batch.job_ids.split_at(keep.min(batch.job_ids.len()));
    move_to_new_batch(t, f, moved, f.error.as_deref()).await?;
    keep_jobs(t, f.batch_id, kept).await
}

/// Moves `jobs` of the answered batch into a new ready batch that copies its lane, kind,
/// attempts, age and quota day; returns the new batch's id.
async fn move_to_new_batch(
    t: &Tx<'_>,
    f: &Finish,
    jobs: &[i64],
    error: Option<&str>,
) -> StoreResult<i64> {
    let records = records_of(t, jobs).await?;
    let n = jobs.len() as i64;
    let new_id: i64 = col(
        &t.query_one(
            sql::BATCH_SPLIT_INSERT,
            &[
                &f.batch_id,
                &n,
                &f.now,
                &error,
                &jobs,
                &records.all,
                &records.solo,
            ],
            "move jobs to a new batch",
        )
        .await?,
        0,
    )?;
    assign_jobs(t, new_id, jobs).await?;
    Ok(new_id)
}

/// Leaves `batch` with only `jobs` (and the records they serve).
async fn keep_jobs(t: &Tx<'_>, batch: i64, jobs: &[i64]) -> StoreResult<()> {
    let records = records_of(t, jobs).await?;
    let n = jobs.len() as i64;
    t.execute(
        sql::BATCH_SET_JOBS,
        &[&batch, &n, &jobs, &records.all, &records.solo],
        "set batch jobs",
    )
    .await
    .map(drop)
}

/// The log records the jobs serve, in id order.
pub(super) async fn records_of(t: &Tx<'_>, jobs: &[i64]) -> StoreResult<BatchRecords> {
    let (mut all, mut solo) = (BTreeSet::new(), BTreeSet::new());
    for r in t
        .query(sql::JOB_PURGE_IDS, &[&jobs], "read job records")
        .await?
    {
        all.extend(col::<Vec<i64>>(&r, 1)?);
        solo.extend(col::<Vec<i64>>(&r, 2)?);
    }
    Ok(BatchRecords {
        all: all.into_iter().collect(),
        solo: solo.into_iter().collect(),
    })
}
