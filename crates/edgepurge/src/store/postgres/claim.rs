//! Claims: read what the policy ([`crate::queue::claim`]) needs, carry out what it decides.

use super::lease::lease_row;
use super::quota::{add_quota, quota_used, set_quota_day};
use super::records::{recompute, BatchRecords, BatchView, Known};
use super::sql;
use super::tx::{col, parse_kind, Tx};
use crate::queue::{claim, lease};
use crate::store::*;
use std::collections::{BTreeSet, HashMap};

/// `fanout_lanes`: the ids of the lanes of `req.fanout`'s account (a slice of its fan-out
/// targets is expanded first); `instance` announces their new jobs.
pub(super) async fn claim(
    t: &mut Tx<'_>,
    req: &ClaimRequest,
    fanout_lanes: &HashMap<String, i64>,
    instance: &str,
) -> StoreResult<Claim> {
    let lost = |why: &str| StoreError::LeaseLost {
        lane: req.lane.clone(),
        why: why.to_owned(),
    };
    let Some((lane_id, row, store_now)) = lease_row(t, &req.lane, false).await? else {
        return Err(lost("no lease was ever taken"));
    };
    if !lease::holds(Some(&row), &req.owner, req.token, store_now) {
        return Err(lost("the lease lapsed or changed hands"));
    }
    // A lane of an account with several: a slice of its fan-out targets becomes jobs first.
    super::fanout::expand(t, lane_id, req, fanout_lanes, instance).await?;
    let view = lane_view(t, lane_id, req).await?;
    let plan = claim::plan(req, &view);
    for q in &plan.quota {
        add_quota(t, &req.lane, q.kind, q.day, q.delta).await?;
    }
    for id in &plan.clear_quota_day {
        set_quota_day(t, *id, None).await?;
    }
    match plan.step {
        claim::Step::Resend { batch, quota_day } => {
            if let Some(day) = quota_day {
                set_quota_day(t, batch, day).await?;
            }
            start_batch(t, batch, req, None).await.map(Claim::Batch)
        }
        claim::Step::Form {
            kind,
            take,
            quota_day,
        } => form_batch(t, lane_id, req, kind, take, quota_day)
            .await
            .map(Claim::Batch),
        claim::Step::Wait { until, fill_after } => Ok(Claim::Wait { until, fill_after }),
        claim::Step::Idle => Ok(Claim::Idle),
    }
}

async fn lane_view(t: &Tx<'_>, lane_id: i64, req: &ClaimRequest) -> StoreResult<claim::LaneView> {
    let mut view = claim::LaneView::default();
    for r in t
        .query(sql::BATCHES_DUE, &[&lane_id, &req.now], "find due batches")
        .await?
    {
        let kind: String = col(&r, 1)?;
        view.due.push(claim::DueBatch {
            id: col(&r, 0)?,
            kind: parse_kind(&kind)?,
            n_jobs: col::<i64>(&r, 2)?.max(0) as u64,
            quota_day: col(&r, 3)?,
        });
    }
    // Pending jobs per kind: the oldest, and how many up to one full batch (the policy only
    // compares the count with the batch size), so a long backlog costs no scan.
    for (kind, limits) in &req.kinds {
        let first = t
            .query_opt(
                sql::JOB_OLDEST_PENDING,
                &[&lane_id, &kind.as_str()],
                "read pending jobs",
            )
            .await?;
        let Some(first) = first else { continue };
        let max = limits.max_batch.max(1) as i64;
        let n: i64 = col(
            &t.query_one(
                sql::JOBS_COUNT_PENDING,
                &[&lane_id, &kind.as_str(), &max],
                "count pending jobs",
            )
            .await?,
            0,
        )?;
        view.pending.push(claim::Pending {
            kind: *kind,
            count: n.max(0) as u64,
            oldest: col(&first, 0)?,
        });
    }
    view.next_ready = col(
        &t.query_one(sql::BATCHES_NEXT_READY, &[&lane_id], "next ready batch")
            .await?,
        0,
    )?;
    for (kind, limits) in &req.kinds {
        if limits.daily_quota.is_some() {
            view.used_today
                .push((*kind, quota_used(t, &req.lane, *kind, req.quota_day).await?));
        }
    }
    Ok(view)
}

async fn form_batch(
    t: &mut Tx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
    kind: TargetKind,
    take: u64,
    quota_day: Option<i64>,
) -> StoreResult<ClaimedBatch> {
    let mut job_ids = Vec::new();
    let mut targets = Vec::new();
    let mut purge_ids = BTreeSet::new();
    let mut solo_ids = BTreeSet::new();
    let mut created_at = req.now;
    let take = i64::try_from(take).unwrap_or(i64::MAX);
    for r in t
        .query(
            sql::JOBS_TAKE_PENDING,
            &[&lane_id, &kind.as_str(), &take],
            "select pending jobs",
        )
        .await?
    {
        job_ids.push(col::<i64>(&r, 0)?);
        targets.push(col::<String>(&r, 1)?);
        created_at = created_at.min(col(&r, 2)?);
        purge_ids.extend(col::<Vec<i64>>(&r, 3)?);
        solo_ids.extend(col::<Vec<i64>>(&r, 4)?);
    }
    if job_ids.is_empty() {
        // Every pending job is held by an ingest still committing: ask again shortly.
        return Err(StoreError::Busy(
            "pending jobs are being written; claim again (transactions in conflict; run again)"
                .into(),
        ));
    }
    let purge_ids: Vec<i64> = purge_ids.into_iter().collect();
    let solo_ids: Vec<i64> = solo_ids.into_iter().collect();
    let n = job_ids.len() as i64;
    let batch_id: i64 = col(
        &t.query_one(
            sql::BATCH_INSERT,
            &[
                &lane_id,
                &kind.as_str(),
                &n,
                &req.now,
                &created_at,
                &quota_day,
                &job_ids,
                &purge_ids,
                &solo_ids,
            ],
            "create batch",
        )
        .await?,
        0,
    )?;
    assign_jobs(t, batch_id, &job_ids).await?;
    start_batch(t, batch_id, req, Some(targets)).await
}

/// Puts jobs in a batch (one statement for all of them).
pub(super) async fn assign_jobs(t: &Tx<'_>, batch_id: i64, jobs: &[i64]) -> StoreResult<()> {
    t.execute(
        sql::JOBS_ASSIGN,
        &[&batch_id, &jobs],
        "assign jobs to a batch",
    )
    .await
    .map(drop)
}

/// Marks a batch in flight under the caller's token and returns what to send.
async fn start_batch(
    t: &mut Tx<'_>,
    id: i64,
    req: &ClaimRequest,
    targets: Option<Vec<String>>,
) -> StoreResult<ClaimedBatch> {
    let r = t
        .query_one(
            sql::BATCH_START,
            &[&id, &req.token, &req.now],
            "start batch",
        )
        .await?;
    let kind: String = col(&r, 0)?;
    let attempts: i64 = col(&r, 1)?;
    let created_at: i64 = col(&r, 2)?;
    let job_ids: Vec<i64> = col(&r, 3)?;
    let purge_ids: Vec<i64> = col(&r, 4)?;
    let solo_ids: Vec<i64> = col(&r, 5)?;
    let request_id: Option<String> = col(&r, 6)?;
    let task_id: Option<String> = col(&r, 7)?;
    let error: Option<String> = col(&r, 8)?;
    let targets = match targets {
        Some(t) => t,
        None => {
            let rows = t
                .query(sql::JOB_TARGETS, &[&job_ids], "read batch targets")
                .await?;
            let mut by_id = HashMap::with_capacity(rows.len());
            for r in &rows {
                by_id.insert(col::<i64>(r, 0)?, col::<String>(r, 1)?);
            }
            job_ids
                .iter()
                .map(|j| {
                    by_id
                        .remove(j)
                        .ok_or_else(|| StoreError::Corrupt(format!("batch {id}: job {j} missing")))
                })
                .collect::<StoreResult<Vec<String>>>()?
        }
    };
    let attempt: u32 = attempts.try_into().unwrap_or(u32::MAX);
    let requeued = crate::queue::finish::is_requeued(attempt, error.as_deref());
    let mut jobs = job_ids;
    jobs.sort_unstable();
    recompute(
        t,
        &BatchRecords {
            all: purge_ids,
            solo: solo_ids,
        },
        req.now,
        Some(Known {
            batch: id,
            jobs: &jobs,
            view: BatchView {
                status: Status::Sent,
                attempts: attempt,
                request_id,
                task_id,
                error,
                completed_at: None,
                task_error: None,
            },
        }),
    )
    .await?;
    Ok(ClaimedBatch {
        id,
        lane: req.lane.clone(),
        kind: parse_kind(&kind)?,
        targets,
        attempt,
        created_at,
        requeued,
    })
}
