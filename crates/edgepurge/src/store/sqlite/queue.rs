//! The queue in SQLite: reads what the policy in [`crate::queue`] needs, applies what it
//! decides. Every function runs inside the writer's transaction.

use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::{claim, finish as fin, lease, record, BatchState};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeSet, HashMap};

/// `[1,2,3]`: how id lists are stored (JSON, so SQL can read them with `json_each`).
pub(super) fn ids_json(ids: &[i64]) -> String {
    let mut s = String::with_capacity(2 + ids.len() * 8);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push(']');
    s
}

pub(super) fn parse_ids(text: &str) -> StoreResult<Vec<i64>> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| StoreError::Corrupt(format!("id list {text:?}")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse()
                .map_err(|_| StoreError::Corrupt(format!("id list {text:?}")))
        })
        .collect()
}

pub(super) fn parse_kind(s: &str) -> StoreResult<TargetKind> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("target kind: {e}")))
}

fn parse_state(s: &str) -> StoreResult<BatchState> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("batch: {e}")))
}

fn parse_status(s: &str) -> StoreResult<Status> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("status: {e}")))
}

pub(super) fn ingest(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    records: &[IngestRecord],
    now: Ms,
) -> StoreResult<IngestReceipt> {
    let mut receipt = IngestReceipt {
        purge_ids: Vec::with_capacity(records.len()),
        ..Default::default()
    };
    let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("prepare ingest"));
    let mut find = prep(sql::JOB_FIND_PENDING)?;
    let mut insert_job = prep(sql::JOB_INSERT)?;
    let mut merge_job = prep(sql::JOB_MERGE)?;
    let mut insert_purge = prep(sql::PURGE_INSERT)?;
    let mut job_ids: Vec<i64> = Vec::new();
    for rec in records {
        let purge_id = ctx.next_purge_id;
        ctx.next_purge_id += 1;
        job_ids.clear();
        // A record with one job follows that job's batch directly.
        let solo = rec.jobs.len() == 1;
        for job in &rec.jobs {
            let lane_id = ctx
                .lane_id(conn, &job.lane, true)?
                .ok_or_else(|| StoreError::Unavailable(format!("lane {} not created", job.lane)))?;
            let kind = job.kind.as_str();
            let pending: Option<i64> = find
                .query_row(params![lane_id, kind, job.target], |r| r.get(0))
                .optional()
                .map_err(db_err("find pending job"))?;
            let id = match pending {
                Some(id) if job_ids.contains(&id) => continue,
                Some(id) => {
                    merge_job
                        .execute(params![id, purge_id, solo])
                        .map_err(db_err("merge job"))?;
                    receipt.jobs_merged += 1;
                    id
                }
                None => {
                    let id = ctx.next_job_id;
                    ctx.next_job_id += 1;
                    insert_job
                        .execute(params![id, lane_id, kind, job.target, now, purge_id, solo])
                        .map_err(db_err("insert job"))?;
                    receipt.jobs_new += 1;
                    id
                }
            };
            job_ids.push(id);
        }
        let status = if job_ids.is_empty() {
            Status::Skipped
        } else {
            Status::Queued
        };
        let targets = serde_json::to_string(&rec.targets)
            .map_err(|e| StoreError::Corrupt(format!("encode targets: {e}")))?;
        insert_purge
            .execute(params![
                purge_id,
                now,
                ctx.seq,
                rec.rule,
                rec.provider,
                rec.event.format,
                rec.event.name,
                rec.event.bucket,
                rec.event.key,
                rec.event.id,
                targets,
                (!job_ids.is_empty()).then(|| ids_json(&job_ids)),
                status.as_str(),
                rec.note,
            ])
            .map_err(db_err("insert purge record"))?;
        receipt.purge_ids.push(purge_id);
    }
    Ok(receipt)
}

// ---------------------------------------------------------------------------------- leases

fn lease_row(conn: &Connection, lane: &str) -> StoreResult<Option<(i64, lease::LeaseRow)>> {
    conn.prepare_cached(sql::LEASE_GET)
        .and_then(|mut s| {
            s.query_row([lane], |r| {
                Ok((
                    r.get(0)?,
                    lease::LeaseRow {
                        owner: r.get(1)?,
                        until: r.get(2)?,
                        token: r.get(3)?,
                    },
                ))
            })
            .optional()
        })
        .map_err(db_err("read lane lease"))
}

pub(super) fn acquire_lane(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane: &str,
    owner: &str,
    store_now: Ms,
    ttl_ms: i64,
) -> StoreResult<Option<Lease>> {
    ctx.lane_id(conn, lane, true)?;
    let Some((lane_id, row)) = lease_row(conn, lane)? else {
        return Err(StoreError::Unavailable(format!("lane {lane} not created")));
    };
    let (lease, took_over) = match lease::decide(Some(&row), owner, store_now, ttl_ms) {
        lease::LeaseDecision::Refuse { .. } => return Ok(None),
        lease::LeaseDecision::Renew(l) => (l, false),
        lease::LeaseDecision::Take(l) => (l, true),
    };
    conn.prepare_cached(sql::LEASE_SET)
        .and_then(|mut s| s.execute(params![lane_id, owner, lease.until, lease.token]))
        .map_err(db_err("write lane lease"))?;
    if took_over {
        reclaim_inflight(conn, ctx, lane_id, store_now)?;
    }
    Ok(Some(lease))
}

/// Batches left in flight under an older token are resent now: their sender stopped (crash,
/// kill, lost lease) before it recorded an answer.
fn reclaim_inflight(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane_id: i64,
    now: Ms,
) -> StoreResult<()> {
    let ids: Vec<i64> = conn
        .prepare_cached(sql::BATCHES_INFLIGHT)
        .and_then(|mut s| s.query_map([lane_id], |r| r.get(0))?.collect())
        .map_err(db_err("find in-flight batches"))?;
    for id in ids {
        update_batch(conn, id, &fin::reclaim())?;
        batch_changed(conn, ctx, id, now)?;
    }
    Ok(())
}

pub(super) fn release_lane(conn: &Connection, lane: &str, owner: &str) -> StoreResult<()> {
    conn.prepare_cached(sql::LEASE_RELEASE)
        .and_then(|mut s| s.execute(params![lane, owner]))
        .map_err(db_err("release lane"))?;
    Ok(())
}

// ----------------------------------------------------------------------------------- claim

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
fn assign_jobs(conn: &Connection, batch_id: i64, jobs: &[i64]) -> StoreResult<()> {
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
                s.query_row(params![id, req.token, req.now], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })
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
    })
}

// ---------------------------------------------------------------------------------- finish

struct StoredBatch {
    lane: String,
    row: fin::BatchRow,
    job_ids: Vec<i64>,
    records: BatchRecords,
}

fn read_batch(conn: &Connection, id: i64) -> StoreResult<StoredBatch> {
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
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .optional()
        })
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

fn update_batch(conn: &Connection, id: i64, u: &fin::BatchUpdate) -> StoreResult<()> {
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
    let fin::FinishPlan::Apply {
        update,
        quota,
        split_keep,
    } = fin::plan(&batch.row, f)
    else {
        // Another holder of the lane resent this batch; its answer wins.
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
        None => batch_changed(conn, ctx, f.batch_id, f.now)?,
    };
    Ok(FinishReceipt { records })
}

/// Moves the jobs after the first `keep` into a new ready batch.
fn split(conn: &Connection, f: &Finish, batch: &StoredBatch, keep: usize) -> StoreResult<()> {
    let (kept, moved) = batch.job_ids.split_at(keep.min(batch.job_ids.len()));
    let moved_records = records_of(conn, moved)?;
    let kept_records = records_of(conn, kept)?;
    conn.prepare_cached(sql::BATCH_SPLIT_INSERT)
        .and_then(|mut s| {
            s.execute(params![
                f.batch_id,
                moved.len() as i64,
                f.now,
                f.error,
                ids_json(moved),
                ids_json(&moved_records.all),
                ids_json(&moved_records.solo),
            ])
        })
        .map_err(db_err("split batch"))?;
    let new_id = conn.last_insert_rowid();
    assign_jobs(conn, new_id, moved)?;
    conn.prepare_cached(sql::BATCH_SET_JOBS)
        .and_then(|mut s| {
            s.execute(params![
                f.batch_id,
                kept.len() as i64,
                ids_json(kept),
                ids_json(&kept_records.all),
                ids_json(&kept_records.solo),
            ])
        })
        .map_err(db_err("split batch"))?;
    Ok(())
}

/// The log records the jobs serve, in id order.
fn records_of(conn: &Connection, jobs: &[i64]) -> StoreResult<BatchRecords> {
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

// --------------------------------------------------------------------------------- records

/// The log records of a batch's jobs: all of them, and (sorted, a subset) those that have no
/// other job, whose status follows the batch's directly.
struct BatchRecords {
    all: Vec<i64>,
    solo: Vec<i64>,
}

/// What a batch shows its records.
struct BatchView {
    status: Status,
    attempts: u32,
    request_id: Option<String>,
    task_id: Option<String>,
    error: Option<String>,
}

impl BatchView {
    fn job(&self) -> record::JobView<'_> {
        record::JobView {
            status: self.status,
            attempts: self.attempts,
            request_id: self.request_id.as_deref(),
            task_id: self.task_id.as_deref(),
            error: self.error.as_deref(),
        }
    }
}

fn batch_view(conn: &Connection, id: i64) -> StoreResult<BatchView> {
    let v: (String, i64, Option<String>, Option<String>, Option<String>) = conn
        .prepare_cached(sql::BATCH_VIEW)
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
        })
        .map_err(db_err("read batch"))?;
    Ok(BatchView {
        status: parse_status(&v.0)?,
        attempts: v.1.try_into().unwrap_or(0),
        request_id: v.2,
        task_id: v.3,
        error: v.4,
    })
}

/// The batch whose change prompts a recompute: its jobs (sorted) and what it shows, so
/// neither needs a lookup.
struct Known<'a> {
    batch: i64,
    jobs: &'a [i64],
    view: BatchView,
}

/// Recomputes the records of batch `id` after it changed.
fn batch_changed(
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
fn recompute(
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
                        ctx.seq
                    ])
                })
                .map_err(db_err("update records"))?;
            changes.extend(records.solo.iter().map(|&id| RecordChange {
                id,
                status: summary.status,
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
        let jobs: Option<String> = jobs_of
            .query_row([pid], |r| r.get(0))
            .optional()
            .map_err(db_err("read record jobs"))?
            .flatten();
        let Some(jobs) = jobs else { continue };
        let mut views: Vec<Option<i64>> = Vec::new();
        for job in parse_ids(&jobs)? {
            let batch: Option<i64> = match &known {
                Some(k) if k.jobs.binary_search(&job).is_ok() => Some(k.batch),
                _ => batch_of
                    .query_row([job], |r| r.get(0))
                    .optional()
                    .map_err(db_err("read record jobs"))?
                    .flatten(),
            };
            if let Some(b) = batch {
                let is_known = known.as_ref().is_some_and(|k| k.batch == b);
                if !is_known && !batches.contains_key(&b) {
                    batches.insert(b, batch_view(conn, b)?);
                }
            }
            views.push(batch);
        }
        let summary = record::summarize(views.iter().map(|b| {
            match b {
                Some(b) => match known.as_ref().filter(|k| k.batch == *b) {
                    Some(k) => k.view.job(),
                    None => batches
                        .get(b)
                        .map_or(record::JobView::PENDING, BatchView::job),
                },
                None => record::JobView::PENDING,
            }
        }));
        update
            .execute(params![
                pid,
                summary.status.as_str(),
                summary.attempts,
                summary.request_id,
                summary.task_id,
                summary.error,
                now,
                ctx.seq
            ])
            .map_err(db_err("update record"))?;
        changes.push(RecordChange {
            id: pid,
            status: summary.status,
        });
    }
    Ok(changes)
}

// ----------------------------------------------------------------------------------- retry

pub(super) fn retry_dead(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    filter: &RetryFilter,
    now: Ms,
) -> StoreResult<u64> {
    let lanes: Vec<Option<i64>> = match &filter.lanes {
        None => vec![None],
        Some(names) => {
            let mut ids = Vec::new();
            for n in names {
                if let Some(id) = ctx.lane_id(conn, n, false)? {
                    ids.push(Some(id));
                }
            }
            ids
        }
    };
    let mut n = 0;
    for lane in lanes {
        let dead: Vec<(i64, String, Option<String>)> = conn
            .prepare_cached(sql::BATCHES_DEAD)
            .and_then(|mut s| {
                s.query_map([lane], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(db_err("find dead batches"))?;
        for (id, purges, last_error) in dead {
            let purge_ids = parse_ids(&purges)?;
            if let Some(rule) = &filter.rule {
                if !holds_rule(conn, &purge_ids, rule)? {
                    continue;
                }
            }
            update_batch(conn, id, &fin::requeue(now, last_error.as_deref()))?;
            batch_changed(conn, ctx, id, now)?;
            n += 1;
        }
    }
    Ok(n)
}

fn holds_rule(conn: &Connection, purge_ids: &[i64], rule: &str) -> StoreResult<bool> {
    let mut stmt = conn
        .prepare_cached(sql::PURGE_RULE)
        .map_err(db_err("read record rule"))?;
    for id in purge_ids {
        let r: Option<Option<String>> = stmt
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(db_err("read record rule"))?;
        if r.flatten().as_deref() == Some(rule) {
            return Ok(true);
        }
    }
    Ok(false)
}

// ----------------------------------------------------------------------------------- quota

fn set_quota_day(conn: &Connection, batch: i64, day: Option<i64>) -> StoreResult<()> {
    conn.prepare_cached(sql::BATCH_SET_QUOTA_DAY)
        .and_then(|mut s| s.execute(params![batch, day]))
        .map_err(db_err("set quota day"))?;
    Ok(())
}

fn add_quota(conn: &Connection, lane: &str, kind: TargetKind, day: i64, n: i64) -> StoreResult<()> {
    conn.prepare_cached(sql::QUOTA_ADD)
        .and_then(|mut s| s.execute(params![lane, kind.as_str(), day, n]))
        .map_err(db_err("update quota"))?;
    Ok(())
}

pub(super) fn note_quota_used(
    conn: &Connection,
    lane: &str,
    kind: TargetKind,
    day: i64,
    used: u64,
) -> StoreResult<()> {
    let used = i64::try_from(used).unwrap_or(i64::MAX);
    conn.prepare_cached(sql::QUOTA_RAISE)
        .and_then(|mut s| s.execute(params![lane, kind.as_str(), day, used]))
        .map_err(db_err("note quota"))?;
    Ok(())
}

pub(super) fn quota_used(
    conn: &Connection,
    lane: &str,
    kind: TargetKind,
    day: i64,
) -> StoreResult<u64> {
    let used: Option<i64> = conn
        .prepare_cached(sql::QUOTA_GET)
        .and_then(|mut s| {
            s.query_row(params![lane, kind.as_str(), day], |r| r.get(0))
                .optional()
        })
        .map_err(db_err("read quota"))?;
    Ok(used.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_round_trip_and_bad_ones_are_corrupt() {
        assert_eq!(ids_json(&[]), "[]");
        assert_eq!(ids_json(&[1, 22, 333]), "[1,22,333]");
        assert_eq!(parse_ids("[1,22,333]").unwrap(), vec![1, 22, 333]);
        assert_eq!(parse_ids("[ 4 , 5 ]").unwrap(), vec![4, 5]);
        assert_eq!(parse_ids("[]").unwrap(), Vec::<i64>::new());
        assert!(matches!(parse_ids("1,2"), Err(StoreError::Corrupt(_))));
        assert!(matches!(parse_ids("[1,x]"), Err(StoreError::Corrupt(_))));
    }
}
