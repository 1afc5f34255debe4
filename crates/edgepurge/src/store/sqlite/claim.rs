//! Claims: read what the policy ([`crate::queue::claim`]) needs, carry out what it decides.

use super::ids::{ids_json, parse_ids, parse_kind};
use super::lease::lease_row;
use super::quota::{add_quota, quota_used, set_quota_day};
use super::records::{recompute, BatchRecords, BatchView, Known};
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::{claim, lease};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;

pub(super) fn claim(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    req: &ClaimRequest,
    store_now: Ms,
) -> StoreResult<Claim> {
    let lost = |why: &str| StoreError::LeaseLost {
        lane: req.lane.clone(),
        why: why.to_owned(),
    };
    let Some((lane_id, row)) = lease_row(conn, &req.lane)? else {
        return Err(lost("no lease was ever taken"));
    };
    if !lease::holds(Some(&row), &req.owner, req.token, store_now) {
        return Err(lost("the lease lapsed or changed hands"));
    }
    // A lane of an account with several: a slice of its fan-out targets becomes jobs first.
    super::fanout::expand(conn, ctx, lane_id, req)?;
    let view = lane_view(conn, lane_id, req)?;
    let plan = claim::plan(req, &view);
    for q in &plan.quota {
        add_quota(conn, &req.lane, q.kind, q.day, q.delta)?;
    }
    for id in &plan.clear_quota_day {
        set_quota_day(conn, *id, None)?;
    }
    match plan.step {
        claim::Step::Resend { batch, quota_day } => {
            if let Some(day) = quota_day {
                set_quota_day(conn, batch, day)?;
            }
            start_batch(conn, ctx, batch, req, None).map(Claim::Batch)
        }
        claim::Step::Form {
            kind,
            take,
            quota_day,
        } => form_batch(conn, ctx, lane_id, req, kind, take, quota_day).map(Claim::Batch),
        claim::Step::Wait { until, fill_after } => Ok(Claim::Wait { until, fill_after }),
        claim::Step::Idle => Ok(Claim::Idle),
    }
}

fn lane_view(conn: &Connection, lane_id: i64, req: &ClaimRequest) -> StoreResult<claim::LaneView> {
    let mut view = claim::LaneView::default();
    {
        let mut stmt = conn
            .prepare_cached(sql::BATCHES_DUE)
            .map_err(db_err("find due batches"))?;
        let rows = stmt
            .query_map(params![lane_id, req.now], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .map_err(db_err("find due batches"))?;
        for row in rows {
            let (id, kind, n, quota_day) = row.map_err(db_err("find due batches"))?;
            view.due.push(claim::DueBatch {
                id,
                kind: parse_kind(&kind)?,
                n_jobs: n.max(0) as u64,
                quota_day,
            });
        }
    }
    // Pending jobs per kind: the oldest, and how many up to one full batch (the policy only
    // compares the count with the batch size), so a long backlog costs no scan.
    {
        let mut oldest = conn
            .prepare_cached(sql::JOB_OLDEST_PENDING)
            .map_err(db_err("read pending jobs"))?;
        let mut count = conn
            .prepare_cached(sql::JOBS_COUNT_PENDING)
            .map_err(db_err("count pending jobs"))?;
        for (kind, limits) in &req.kinds {
            let first: Option<i64> = oldest
                .query_row(params![lane_id, kind.as_str()], |r| r.get(0))
                .optional()
                .map_err(db_err("read pending jobs"))?;
            let Some(first) = first else { continue };
            let n: i64 = count
                .query_row(
                    params![lane_id, kind.as_str(), limits.max_batch.max(1) as i64],
                    |r| r.get(0),
                )
                .map_err(db_err("count pending jobs"))?;
            view.pending.push(claim::Pending {
                kind: *kind,
                count: n.max(0) as u64,
                oldest: first,
            });
        }
    }
    view.next_ready = conn
        .prepare_cached(sql::BATCHES_NEXT_READY)
        .and_then(|mut s| s.query_row([lane_id], |r| r.get(0)))
        .map_err(db_err("next ready batch"))?;
    for (kind, limits) in &req.kinds {
        if limits.daily_quota.is_some() {
            view.used_today
                .push((*kind, quota_used(conn, &req.lane, *kind, req.quota_day)?));
        }
    }
    Ok(view)
}

fn form_batch(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
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
    {
        let mut stmt = conn
            .prepare_cached(sql::JOBS_TAKE_PENDING)
            .map_err(db_err("select pending jobs"))?;
        let rows = stmt
            .query_map(
                params![
                    lane_id,
                    kind.as_str(),
                    i64::try_from(take).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .map_err(db_err("select pending jobs"))?;
        for row in rows {
            let (id, target, at, purges, solo) = row.map_err(db_err("select pending jobs"))?;
            job_ids.push(id);
            targets.push(target);
            created_at = created_at.min(at);
            purge_ids.extend(parse_ids(&purges)?);
            solo_ids.extend(parse_ids(&solo)?);
        }
    }
    let purge_ids: Vec<i64> = purge_ids.into_iter().collect();
    let solo_ids: Vec<i64> = solo_ids.into_iter().collect();
    conn.prepare_cached(sql::BATCH_INSERT)
        .and_then(|mut s| {
            s.execute(params![
                lane_id,
                kind.as_str(),
                job_ids.len() as i64,
                req.now,
                created_at,
                quota_day,
                ids_json(&job_ids),
                ids_json(&purge_ids),
                ids_json(&solo_ids),
            ])
        })
        .map_err(db_err("create batch"))?;
    let batch_id = conn.last_insert_rowid();
    assign_jobs(conn, batch_id, &job_ids)?;
    start_batch(conn, ctx, batch_id, req, Some(targets))
}

/// Puts jobs in a batch (one statement for all of them).
pub(super) fn assign_jobs(conn: &Connection, batch_id: i64, jobs: &[i64]) -> StoreResult<()> {
    conn.prepare_cached(sql::JOBS_ASSIGN)
        .and_then(|mut s| s.execute(params![batch_id, ids_json(jobs)]))
        .map_err(db_err("assign jobs to a batch"))?;
    Ok(())
}

/// Marks a batch in flight under the caller's token and returns what to send.
fn start_batch(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    id: i64,
    req: &ClaimRequest,
    targets: Option<Vec<String>>,
) -> StoreResult<ClaimedBatch> {
    type Started = (
        String,
        i64,
        i64,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let (kind, attempts, created_at, job_ids, purge_ids, solo_ids, request_id, task_id, error): Started =
        conn.prepare_cached(sql::BATCH_START)
            .and_then(|mut s| {
                s.query_row(params![id, req.token, req.now], |r| Started::try_from(r))
            })
            .map_err(db_err("start batch"))?;
    let job_ids = parse_ids(&job_ids)?;
    let targets = match targets {
        Some(t) => t,
        None => {
            let mut stmt = conn
                .prepare_cached(sql::JOB_TARGET)
                .map_err(db_err("read batch targets"))?;
            job_ids
                .iter()
                .map(|j| stmt.query_row([j], |r| r.get(0)))
                .collect::<Result<Vec<String>, _>>()
                .map_err(db_err("read batch targets"))?
        }
    };
    let attempt: u32 = attempts.try_into().unwrap_or(u32::MAX);
    let requeued = crate::queue::finish::is_requeued(attempt, error.as_deref());
    let mut jobs = job_ids;
    jobs.sort_unstable();
    recompute(
        conn,
        ctx,
        &BatchRecords {
            all: parse_ids(&purge_ids)?,
            solo: parse_ids(&solo_ids)?,
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
    )?;
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
