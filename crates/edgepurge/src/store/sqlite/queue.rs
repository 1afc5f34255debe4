//! The queue: ingest with merging, lane leases, claiming batches and recording outcomes.
//! Every function runs inside the caller's write transaction.

use super::db_err;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::BTreeSet;

/// Takes the next change sequence number (one per transaction is enough: transactions are
/// serialized, and readers see each whole).
pub(super) fn next_seq(tx: &Transaction<'_>) -> StoreResult<i64> {
    tx.query_row(
        "UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v",
        [],
        |r| r.get(0),
    )
    .map_err(db_err("next seq"))
}

pub(super) fn ingest(
    tx: &Transaction<'_>,
    records: &[IngestRecord],
    now: Ms,
) -> StoreResult<IngestReceipt> {
    let seq = next_seq(tx)?;
    let mut receipt = IngestReceipt::default();
    let mut insert_purge = tx
        .prepare_cached(
            "INSERT INTO purges (created_at, updated_at, seq, rule, provider, format, event, \
             bucket, key, event_id, targets, status, error) \
             VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db_err("prepare ingest"))?;
    let mut find_pending = tx
        .prepare_cached(
            "SELECT id FROM jobs WHERE lane = ?1 AND kind = ?2 AND target = ?3 \
             AND batch_id IS NULL",
        )
        .map_err(db_err("prepare ingest"))?;
    let mut insert_job = tx
        .prepare_cached(
            "INSERT INTO jobs (lane, kind, target, state, created_at) \
             VALUES (?1, ?2, ?3, 'queued', ?4)",
        )
        .map_err(db_err("prepare ingest"))?;
    let mut link = tx
        .prepare_cached("INSERT OR IGNORE INTO purge_jobs (job_id, purge_id) VALUES (?1, ?2)")
        .map_err(db_err("prepare ingest"))?;
    for rec in records {
        let status = if rec.jobs.is_empty() {
            Status::Skipped
        } else {
            Status::Queued
        };
        let targets = serde_json::to_string(&rec.targets)
            .map_err(|e| StoreError::Corrupt(format!("encode targets: {e}")))?;
        insert_purge
            .execute(params![
                now,
                seq,
                rec.rule,
                rec.provider,
                rec.event.format,
                rec.event.name,
                rec.event.bucket,
                rec.event.key,
                rec.event.id,
                targets,
                status.as_str(),
                rec.note,
            ])
            .map_err(db_err("insert purge record"))?;
        let purge_id = tx.last_insert_rowid();
        receipt.purge_ids.push(purge_id);
        for job in &rec.jobs {
            let kind = job.kind.as_str();
            let existing: Option<i64> = find_pending
                .query_row(params![job.lane, kind, job.target], |r| r.get(0))
                .optional()
                .map_err(db_err("find pending job"))?;
            let job_id = match existing {
                Some(id) => {
                    receipt.jobs_merged += 1;
                    id
                }
                None => {
                    insert_job
                        .execute(params![job.lane, kind, job.target, now])
                        .map_err(db_err("insert job"))?;
                    receipt.jobs_new += 1;
                    tx.last_insert_rowid()
                }
            };
            link.execute(params![job_id, purge_id])
                .map_err(db_err("link job"))?;
        }
    }
    Ok(receipt)
}

pub(super) fn acquire_lane(
    tx: &Transaction<'_>,
    lane: &str,
    owner: &str,
    now: Ms,
    ttl_ms: i64,
) -> StoreResult<bool> {
    let current: Option<(String, i64)> = tx
        .query_row(
            "SELECT owner, lease_until FROM lanes WHERE lane = ?1",
            [lane],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err("read lane lease"))?;
    let took_over = match &current {
        Some((o, _)) if o == owner => false,
        Some((_, until)) if *until >= now => return Ok(false),
        _ => true,
    };
    tx.execute(
        "INSERT INTO lanes (lane, owner, lease_until) VALUES (?1, ?2, ?3) \
         ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until",
        params![lane, owner, now + ttl_ms],
    )
    .map_err(db_err("write lane lease"))?;
    if took_over {
        reclaim_inflight(tx, lane, now)?;
    }
    Ok(true)
}

/// Batches left in flight by a previous holder of the lane are resent now: their sender
/// stopped (crash, kill, lost lease) before it recorded an answer.
fn reclaim_inflight(tx: &Transaction<'_>, lane: &str, now: Ms) -> StoreResult<()> {
    let ids: Vec<i64> = {
        let mut stmt = tx
            .prepare_cached("SELECT id FROM batches WHERE lane = ?1 AND state = 'inflight'")
            .map_err(db_err("find in-flight batches"))?;
        let rows = stmt
            .query_map([lane], |r| r.get(0))
            .map_err(db_err("find in-flight batches"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("find in-flight batches"))?
    };
    if ids.is_empty() {
        return Ok(());
    }
    let seq = next_seq(tx)?;
    for id in ids {
        tx.execute(
            "UPDATE batches SET state = 'ready', not_before = ?2, owner = NULL, \
             last_error = 'the previous sender stopped before recording an answer; resending' \
             WHERE id = ?1",
            params![id, now],
        )
        .map_err(db_err("reclaim batch"))?;
        set_job_state(tx, id, "failed")?;
        recompute_batch(tx, id, now, seq)?;
    }
    Ok(())
}

pub(super) fn release_lane(tx: &Transaction<'_>, lane: &str, owner: &str) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM lanes WHERE lane = ?1 AND owner = ?2",
        params![lane, owner],
    )
    .map_err(db_err("release lane"))?;
    Ok(())
}

fn holds_lane(tx: &Transaction<'_>, lane: &str, owner: &str, now: Ms) -> StoreResult<bool> {
    let until: Option<i64> = tx
        .query_row(
            "SELECT lease_until FROM lanes WHERE lane = ?1 AND owner = ?2",
            params![lane, owner],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err("check lane lease"))?;
    Ok(until.is_some_and(|u| u >= now))
}

pub(super) fn claim(tx: &Transaction<'_>, req: &ClaimRequest) -> StoreResult<Claim> {
    if !holds_lane(tx, &req.lane, &req.owner, req.now)? {
        return Err(StoreError::Conflict(format!(
            "lane {} is not held by this process (lease lost); not claiming",
            req.lane
        )));
    }
    let mut wake: Option<Ms> = None;
    let mut wake_at = |t: Ms| wake = Some(wake.map_or(t, |w: Ms| w.min(t)));

    // 1. A batch due for another attempt.
    let due: Vec<(i64, String, i64, Option<i64>)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, kind, n_jobs, quota_day FROM batches \
                 WHERE lane = ?1 AND state = 'ready' AND not_before <= ?2 \
                 ORDER BY not_before, id",
            )
            .map_err(db_err("find due batches"))?;
        let rows = stmt
            .query_map(params![req.lane, req.now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(db_err("find due batches"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("find due batches"))?
    };
    for (id, kind, n_jobs, quota_day) in due {
        let kind = parse_kind(&kind)?;
        let Some(limits) = req.limits(kind) else {
            continue;
        };
        // A reservation counts on the day it was made; a batch resent on a later day is
        // counted again on that day (and the old day's reservation returned).
        if let Some(old) = quota_day.filter(|d| *d != req.quota_day) {
            reserve_quota(tx, &req.lane, kind, old, -n_jobs)?;
        }
        if quota_day != Some(req.quota_day) {
            if let Some(limit) = limits.daily_quota {
                let used = quota_used(tx, &req.lane, kind, req.quota_day)?;
                if used.saturating_add(n_jobs as u64) > limit {
                    if quota_day.is_some() {
                        tx.execute("UPDATE batches SET quota_day = NULL WHERE id = ?1", [id])
                            .map_err(db_err("release quota"))?;
                    }
                    wake_at(req.quota_reset_at);
                    continue;
                }
                reserve_quota(tx, &req.lane, kind, req.quota_day, n_jobs)?;
                tx.execute(
                    "UPDATE batches SET quota_day = ?2 WHERE id = ?1",
                    params![id, req.quota_day],
                )
                .map_err(db_err("reserve quota"))?;
            }
        }
        return start_batch(tx, id, req).map(Claim::Batch);
    }

    // 2. A new batch from pending jobs, once full or lingered long enough.
    for &(kind, limits) in &req.kinds {
        let (count, oldest): (i64, Option<i64>) = tx
            .query_row(
                "SELECT COUNT(*), MIN(created_at) FROM jobs \
                 WHERE lane = ?1 AND kind = ?2 AND batch_id IS NULL",
                params![req.lane, kind.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_err("count pending jobs"))?;
        let Some(oldest) = oldest else { continue };
        let max = limits.max_batch.max(1) as i64;
        if count < max && oldest + req.linger_ms > req.now {
            wake_at(oldest + req.linger_ms);
            continue;
        }
        let mut take = count.min(max);
        if let Some(limit) = limits.daily_quota {
            let used = quota_used(tx, &req.lane, kind, req.quota_day)?;
            let left = limit.saturating_sub(used) as i64;
            if left == 0 {
                wake_at(req.quota_reset_at);
                continue;
            }
            take = take.min(left);
        }
        let jobs: Vec<(i64, i64)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, created_at FROM jobs \
                     WHERE lane = ?1 AND kind = ?2 AND batch_id IS NULL \
                     ORDER BY created_at, id LIMIT ?3",
                )
                .map_err(db_err("select pending jobs"))?;
            let rows = stmt
                .query_map(params![req.lane, kind.as_str(), take], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db_err("select pending jobs"))?;
            rows.collect::<Result<_, _>>()
                .map_err(db_err("select pending jobs"))?
        };
        let created_at = jobs.iter().map(|j| j.1).min().unwrap_or(req.now);
        let quota_day = limits.daily_quota.map(|_| req.quota_day);
        tx.execute(
            "INSERT INTO batches (lane, kind, state, attempts, n_jobs, not_before, created_at, \
             quota_day) VALUES (?1, ?2, 'ready', 0, ?3, ?4, ?5, ?6)",
            params![
                req.lane,
                kind.as_str(),
                jobs.len() as i64,
                req.now,
                created_at,
                quota_day
            ],
        )
        .map_err(db_err("create batch"))?;
        let batch_id = tx.last_insert_rowid();
        {
            let mut assign = tx
                .prepare_cached("UPDATE jobs SET batch_id = ?2 WHERE id = ?1")
                .map_err(db_err("assign jobs"))?;
            for (job_id, _) in &jobs {
                assign
                    .execute(params![job_id, batch_id])
                    .map_err(db_err("assign jobs"))?;
            }
        }
        if let Some(day) = quota_day {
            reserve_quota(tx, &req.lane, kind, day, jobs.len() as i64)?;
        }
        return start_batch(tx, batch_id, req).map(Claim::Batch);
    }

    // 3. Nothing to send now: when is the next thing due?
    let next_ready: Option<i64> = tx
        .query_row(
            "SELECT MIN(not_before) FROM batches WHERE lane = ?1 AND state = 'ready'",
            [&req.lane],
            |r| r.get(0),
        )
        .map_err(db_err("next ready batch"))?;
    if let Some(t) = next_ready {
        // A due batch skipped for quota already put the reset time in `wake`.
        if t > req.now {
            wake_at(t);
        }
    }
    Ok(match wake {
        Some(until) => Claim::Wait { until },
        None => Claim::Idle,
    })
}

/// Marks a batch in flight for this attempt and returns what to send.
fn start_batch(tx: &Transaction<'_>, id: i64, req: &ClaimRequest) -> StoreResult<ClaimedBatch> {
    let (kind, attempts, created_at): (String, i64, i64) = tx
        .query_row(
            "UPDATE batches SET state = 'inflight', attempts = attempts + 1, owner = ?2, \
             first_sent_at = COALESCE(first_sent_at, ?3), last_sent_at = ?3 \
             WHERE id = ?1 RETURNING kind, attempts, created_at",
            params![id, req.owner, req.now],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(db_err("start batch"))?;
    set_job_state(tx, id, "sent")?;
    let seq = next_seq(tx)?;
    recompute_batch(tx, id, req.now, seq)?;
    let targets = batch_targets(tx, id)?;
    Ok(ClaimedBatch {
        id,
        lane: req.lane.clone(),
        kind: parse_kind(&kind)?,
        targets,
        attempt: attempts.try_into().unwrap_or(u32::MAX),
        created_at,
    })
}

fn batch_targets(tx: &Transaction<'_>, batch_id: i64) -> StoreResult<Vec<String>> {
    let mut stmt = tx
        .prepare_cached("SELECT target FROM jobs WHERE batch_id = ?1 ORDER BY id")
        .map_err(db_err("read batch targets"))?;
    let rows = stmt
        .query_map([batch_id], |r| r.get(0))
        .map_err(db_err("read batch targets"))?;
    rows.collect::<Result<_, _>>()
        .map_err(db_err("read batch targets"))
}

pub(super) fn finish(tx: &Transaction<'_>, f: &Finish) -> StoreResult<()> {
    type BatchRow = (
        String,
        String,
        String,
        i64,
        i64,
        Option<i64>,
        Option<String>,
    );
    let row: Option<BatchRow> = tx
        .query_row(
            "SELECT lane, kind, state, attempts, n_jobs, quota_day, owner FROM batches \
             WHERE id = ?1",
            [f.batch_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()
        .map_err(db_err("read batch"))?;
    let Some((lane, kind_s, state, attempts, n_jobs, quota_day, owner)) = row else {
        return Err(StoreError::NotFound(format!(
            "batch {} not found",
            f.batch_id
        )));
    };
    let kind = parse_kind(&kind_s)?;
    tx.execute(
        "INSERT INTO requests (batch_id, lane, kind, attempt, n_targets, started_at, \
         finished_at, outcome, http_status, request_id, task_id, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            f.batch_id,
            lane,
            kind_s,
            attempts,
            n_jobs,
            f.started_at,
            f.now,
            f.outcome.label(),
            f.http_status,
            f.request_id,
            f.task_id,
            f.error
        ],
    )
    .map_err(db_err("record request"))?;
    if state != "inflight" || owner.as_deref() != Some(f.owner.as_str()) {
        // Another process took the lane over and resent this batch; its answer wins.
        return Ok(());
    }
    let seq = next_seq(tx)?;
    let mut touched = vec![f.batch_id];
    match &f.outcome {
        FinishOutcome::Succeeded => {
            tx.execute(
                "UPDATE batches SET state = 'succeeded', finished_at = ?2, request_id = ?3, \
                 task_id = ?4, last_error = NULL, owner = NULL WHERE id = ?1",
                params![f.batch_id, f.now, f.request_id, f.task_id],
            )
            .map_err(db_err("finish batch"))?;
            set_job_state(tx, f.batch_id, "succeeded")?;
        }
        FinishOutcome::RetryAt(at) => {
            tx.execute(
                "UPDATE batches SET state = 'ready', not_before = ?2, request_id = ?3, \
                 task_id = ?4, last_error = ?5, owner = NULL WHERE id = ?1",
                params![f.batch_id, at, f.request_id, f.task_id, f.error],
            )
            .map_err(db_err("reschedule batch"))?;
            set_job_state(tx, f.batch_id, "failed")?;
        }
        FinishOutcome::WaitUntil(at) => {
            if let Some(day) = quota_day {
                reserve_quota(tx, &lane, kind, day, -n_jobs)?;
            }
            tx.execute(
                "UPDATE batches SET state = 'ready', not_before = ?2, request_id = ?3, \
                 last_error = ?4, owner = NULL, quota_day = NULL, \
                 attempts = MAX(attempts - 1, 0) WHERE id = ?1",
                params![f.batch_id, at, f.request_id, f.error],
            )
            .map_err(db_err("park batch for quota"))?;
            set_job_state(tx, f.batch_id, "queued")?;
        }
        FinishOutcome::Split if n_jobs > 1 => {
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare_cached("SELECT id FROM jobs WHERE batch_id = ?1 ORDER BY id")
                    .map_err(db_err("split batch"))?;
                let rows = stmt
                    .query_map([f.batch_id], |r| r.get(0))
                    .map_err(db_err("split batch"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(db_err("split batch"))?
            };
            let half = ids.len() / 2;
            let (keep, moved) = ids.split_at(ids.len() - half);
            tx.execute(
                "INSERT INTO batches (lane, kind, state, attempts, n_jobs, not_before, \
                 created_at, quota_day, last_error) \
                 SELECT lane, kind, 'ready', attempts, ?2, ?3, created_at, quota_day, ?4 \
                 FROM batches WHERE id = ?1",
                params![f.batch_id, moved.len() as i64, f.now, f.error],
            )
            .map_err(db_err("split batch"))?;
            let new_id = tx.last_insert_rowid();
            {
                let mut assign = tx
                    .prepare_cached("UPDATE jobs SET batch_id = ?2 WHERE id = ?1")
                    .map_err(db_err("split batch"))?;
                for id in moved {
                    assign
                        .execute(params![id, new_id])
                        .map_err(db_err("split batch"))?;
                }
            }
            tx.execute(
                "UPDATE batches SET state = 'ready', not_before = ?2, n_jobs = ?3, \
                 last_error = ?4, owner = NULL WHERE id = ?1",
                params![f.batch_id, f.now, keep.len() as i64, f.error],
            )
            .map_err(db_err("split batch"))?;
            set_job_state(tx, f.batch_id, "queued")?;
            set_job_state(tx, new_id, "queued")?;
            touched.push(new_id);
        }
        FinishOutcome::Split | FinishOutcome::Dead => {
            let error = match (&f.outcome, &f.error) {
                (FinishOutcome::Split, Some(e)) => {
                    Some(format!("{e} (even a single target was refused)"))
                }
                (_, e) => e.clone(),
            };
            if let Some(day) = quota_day {
                reserve_quota(tx, &lane, kind, day, -n_jobs)?;
            }
            tx.execute(
                "UPDATE batches SET state = 'dead', finished_at = ?2, request_id = ?3, \
                 task_id = ?4, last_error = ?5, owner = NULL, quota_day = NULL WHERE id = ?1",
                params![f.batch_id, f.now, f.request_id, f.task_id, error],
            )
            .map_err(db_err("dead-letter batch"))?;
            set_job_state(tx, f.batch_id, "dead")?;
        }
    }
    for id in touched {
        recompute_batch(tx, id, f.now, seq)?;
    }
    Ok(())
}

pub(super) fn retry_dead(
    tx: &Transaction<'_>,
    lane: Option<&str>,
    rule: Option<&str>,
    now: Ms,
) -> StoreResult<u64> {
    let ids: Vec<i64> = {
        let mut stmt = tx
            .prepare(
                "SELECT b.id FROM batches b WHERE b.state = 'dead' \
                 AND (?1 IS NULL OR b.lane = ?1) \
                 AND (?2 IS NULL OR EXISTS (SELECT 1 FROM jobs j \
                      JOIN purge_jobs pj ON pj.job_id = j.id \
                      JOIN purges p ON p.id = pj.purge_id \
                      WHERE j.batch_id = b.id AND p.rule = ?2)) \
                 ORDER BY b.id",
            )
            .map_err(db_err("find dead batches"))?;
        let rows = stmt
            .query_map(params![lane, rule], |r| r.get(0))
            .map_err(db_err("find dead batches"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("find dead batches"))?
    };
    if ids.is_empty() {
        return Ok(0);
    }
    let seq = next_seq(tx)?;
    for &id in &ids {
        tx.execute(
            "UPDATE batches SET state = 'ready', attempts = 0, not_before = ?2, created_at = ?2, \
             finished_at = NULL, quota_day = NULL, \
             last_error = 'requeued by edgepurge retry after: ' || COALESCE(last_error, '?') \
             WHERE id = ?1",
            params![id, now],
        )
        .map_err(db_err("requeue batch"))?;
        set_job_state(tx, id, "queued")?;
        recompute_batch(tx, id, now, seq)?;
    }
    Ok(ids.len() as u64)
}

fn set_job_state(tx: &Transaction<'_>, batch_id: i64, state: &str) -> StoreResult<()> {
    tx.prepare_cached("UPDATE jobs SET state = ?2 WHERE batch_id = ?1")
        .and_then(|mut s| s.execute(params![batch_id, state]))
        .map_err(db_err("update job states"))?;
    Ok(())
}

/// Recomputes the log records of every job in a batch.
fn recompute_batch(tx: &Transaction<'_>, batch_id: i64, now: Ms, seq: i64) -> StoreResult<()> {
    let purge_ids: BTreeSet<i64> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT DISTINCT pj.purge_id FROM jobs j JOIN purge_jobs pj ON pj.job_id = j.id \
                 WHERE j.batch_id = ?1",
            )
            .map_err(db_err("find affected records"))?;
        let rows = stmt
            .query_map([batch_id], |r| r.get(0))
            .map_err(db_err("find affected records"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("find affected records"))?
    };
    for id in purge_ids {
        recompute_purge(tx, id, now, seq)?;
    }
    Ok(())
}

/// A log record shows the worst state of its jobs, the most attempts, every provider id, and
/// the error of a job that has not succeeded.
fn recompute_purge(tx: &Transaction<'_>, purge_id: i64, now: Ms, seq: i64) -> StoreResult<()> {
    type JobRow = (
        String,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<JobRow> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT j.state, b.attempts, b.request_id, b.task_id, b.last_error \
                 FROM purge_jobs pj JOIN jobs j ON j.id = pj.job_id \
                 LEFT JOIN batches b ON b.id = j.batch_id \
                 WHERE pj.purge_id = ?1 ORDER BY j.id",
            )
            .map_err(db_err("read record jobs"))?;
        let rows = stmt
            .query_map([purge_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(db_err("read record jobs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("read record jobs"))?
    };
    let mut status = Status::Succeeded;
    let mut attempts = 0i64;
    let mut request_ids: Vec<String> = Vec::new();
    let mut task_ids: Vec<String> = Vec::new();
    let mut error: Option<String> = None;
    for (state, a, req, task, err) in rows {
        let s: Status = state
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("job state: {e}")))?;
        status = status.max(s);
        attempts = attempts.max(a.unwrap_or(0));
        for (list, id) in [(&mut request_ids, req), (&mut task_ids, task)] {
            if let Some(id) = id {
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
        if s != Status::Succeeded && error.is_none() {
            error = err;
        }
    }
    let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join(","));
    tx.prepare_cached(
        "UPDATE purges SET status = ?2, attempts = ?3, request_id = ?4, task_id = ?5, \
         error = ?6, updated_at = ?7, seq = ?8 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            purge_id,
            status.as_str(),
            attempts,
            join(request_ids),
            join(task_ids),
            error,
            now,
            seq
        ])
    })
    .map_err(db_err("update record"))?;
    Ok(())
}

fn reserve_quota(
    tx: &Transaction<'_>,
    lane: &str,
    kind: TargetKind,
    day: i64,
    n: i64,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO quota (lane, kind, day, used) VALUES (?1, ?2, ?3, MAX(?4, 0)) \
         ON CONFLICT (lane, kind, day) DO UPDATE SET used = MAX(used + ?4, 0)",
    )
    .and_then(|mut s| s.execute(params![lane, kind.as_str(), day, n]))
    .map_err(db_err("update quota"))?;
    Ok(())
}

pub(super) fn note_quota_used(
    tx: &Transaction<'_>,
    lane: &str,
    kind: TargetKind,
    day: i64,
    used: u64,
) -> StoreResult<()> {
    let used = i64::try_from(used).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO quota (lane, kind, day, used) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (lane, kind, day) DO UPDATE SET used = MAX(used, ?4)",
        params![lane, kind.as_str(), day, used],
    )
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
        .query_row(
            "SELECT used FROM quota WHERE lane = ?1 AND kind = ?2 AND day = ?3",
            params![lane, kind.as_str(), day],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err("read quota"))?;
    Ok(used.unwrap_or(0).max(0) as u64)
}

pub(super) fn parse_kind(s: &str) -> StoreResult<TargetKind> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("target kind: {e}")))
}
