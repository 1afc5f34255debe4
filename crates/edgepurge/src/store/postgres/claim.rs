//! Claims: read what the policy ([`crate::queue::claim`]) needs, carry out what it decides.

use super::lease::lease_row;
use super::quota::{add_quota, quota_used, set_quota_day};
use super::records::{recompute, BatchRecords, BatchView, Known};
use super::sql;
use super::tx::{col, parse_kind, Tx};
use crate::queue::{claim, collapse, lease};
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
    // At most one collapse (collapse_to_dir_over) per claim: the plan after it is made
    // without the pending URLs.
    let mut may_collapse = true;
    loop {
        let view = lane_view(t, lane_id, req, may_collapse).await?;
        let plan = claim::plan(req, &view);
        for q in &plan.quota {
            add_quota(t, &req.lane, q.kind, q.day, q.delta).await?;
        }
        for id in &plan.clear_quota_day {
            set_quota_day(t, *id, None).await?;
        }
        if let claim::Step::Collapse { dirs } = &plan.step {
            if !may_collapse {
                return Err(StoreError::Corrupt(
                    "the queue policy collapsed URLs twice in one claim".into(),
                ));
            }
            collapse_jobs(t, lane_id, dirs, req.now).await?;
            may_collapse = false;
            continue;
        }
        return carry_out(t, lane_id, req, plan.step).await;
    }
}

async fn carry_out(
    t: &mut Tx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
    step: claim::Step,
) -> StoreResult<Claim> {
    match step {
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
        claim::Step::Idle | claim::Step::Collapse { .. } => Ok(Claim::Idle),
    }
}

/// Replaces each group of pending URL jobs by one directory job (a pending one for that
/// directory takes them, else a new one as old as the oldest of them); their records now
/// wait for the directory job and say so.
async fn collapse_jobs(
    t: &mut Tx<'_>,
    lane_id: i64,
    dirs: &[collapse::DirPurge],
    now: Ms,
) -> StoreResult<()> {
    for d in dirs {
        let mut created_at = now;
        let mut purges: BTreeSet<i64> = BTreeSet::new();
        let mut solos: BTreeSet<i64> = BTreeSet::new();
        let mut gone: Vec<i64> = Vec::with_capacity(d.jobs.len());
        for r in t
            .query(
                sql::JOB_PENDING_LOCK,
                &[&d.jobs, &lane_id],
                "read URL jobs to collapse",
            )
            .await?
        {
            gone.push(col(&r, 0)?);
            created_at = created_at.min(col(&r, 1)?);
            purges.extend(col::<Vec<i64>>(&r, 2)?);
            solos.extend(col::<Vec<i64>>(&r, 3)?);
        }
        if gone.is_empty() {
            continue;
        }
        let purges: Vec<i64> = purges.into_iter().collect();
        let solos: Vec<i64> = solos.into_iter().collect();
        let dir_job: i64 = col(
            &t.query_one(
                sql::JOB_DIR_UPSERT,
                &[&lane_id, &d.dir, &created_at, &purges, &solos],
                "queue directory job",
            )
            .await?,
            0,
        )?;
        tracing::info!(
            lane_id,
            dir = %d.dir,
            urls = gone.len(),
            "URL quota short: URLs collapsed into one directory purge (collapse_to_dir_over)"
        );
        t.execute(sql::JOB_DELETE, &[&gone], "delete collapsed URL jobs")
            .await?;
        t.execute(
            sql::PURGES_COLLAPSE,
            &[&purges, &gone, &dir_job, &collapse::note(&d.dir), &now],
            "note collapsed records",
        )
        .await?;
        t.touched = true;
    }
    Ok(())
}

async fn lane_view(
    t: &Tx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
    may_collapse: bool,
) -> StoreResult<claim::LaneView> {
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
    // Jobs held by a rule's min_interval_ms are neither counted nor taken; the first to be
    // released wakes the lane (`held_until`).
    for (kind, limits) in &req.kinds {
        let until: Option<i64> = col(
            &t.query_one(
                sql::JOB_HELD_UNTIL,
                &[&lane_id, &kind.as_str(), &req.now],
                "read held jobs",
            )
            .await?,
            0,
        )?;
        if let Some(until) = until {
            view.held_until = Some(view.held_until.map_or(until, |h: Ms| h.min(until)));
        }
        let first = t
            .query_opt(
                sql::JOB_OLDEST_PENDING,
                &[&lane_id, &kind.as_str(), &req.now],
                "read pending jobs",
            )
            .await?;
        let Some(first) = first else { continue };
        let max = limits.max_batch.max(1) as i64;
        let n: i64 = col(
            &t.query_one(
                sql::JOBS_COUNT_PENDING,
                &[&lane_id, &kind.as_str(), &max, &req.now],
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
    // collapse_to_dir_over: the pending URLs, read only when the URL quota left would not
    // cover them.
    let used = view.used(TargetKind::Url);
    if let Some(upto) = collapse::count_to(req, used).filter(|_| may_collapse) {
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        let n: i64 = col(
            &t.query_one(
                sql::JOBS_COUNT_PENDING,
                &[&lane_id, &TargetKind::Url.as_str(), &upto, &req.now],
                "count pending URLs",
            )
            .await?,
            0,
        )?;
        if collapse::short(req, used, n.max(0) as u64) {
            let max = collapse::MAX_READ as i64;
            let mut urls = Vec::new();
            for r in t
                .query(
                    sql::JOBS_PENDING_URLS,
                    &[&lane_id, &req.now, &max],
                    "read pending URLs",
                )
                .await?
            {
                urls.push(collapse::PendingUrl {
                    job: col(&r, 0)?,
                    target: col(&r, 1)?,
                    host_ok: col(&r, 2)?,
                });
            }
            view.pending_urls = Some(urls);
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
    // Targets purged now that their rules' min_interval_ms holds, and until when.
    let mut held: Vec<(String, Ms)> = Vec::new();
    for r in t
        .query(
            sql::JOBS_TAKE_PENDING,
            &[&lane_id, &kind.as_str(), &take, &req.now],
            "select pending jobs",
        )
        .await?
    {
        job_ids.push(col::<i64>(&r, 0)?);
        let target = col::<String>(&r, 1)?;
        if let Some(until) = crate::queue::interval::hold_after_claim(req.now, col(&r, 5)?) {
            held.push((target.clone(), until));
        }
        targets.push(target);
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
    if !held.is_empty() {
        let (held_targets, until): (Vec<String>, Vec<Ms>) = held.into_iter().unzip();
        t.execute(
            sql::HOLDS_SET,
            &[&lane_id, &kind.as_str(), &held_targets, &until],
            "hold targets",
        )
        .await?;
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
