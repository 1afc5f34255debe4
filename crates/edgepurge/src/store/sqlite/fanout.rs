//! Fan-out targets ([`crate::queue::fanout`]): stored once per account at ingest, expanded
//! into the lanes' jobs a bounded slice at a time, in the claim of a lane of the account.

use super::ids::{ids_json, parse_ids, parse_kind};
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::fanout::{self, FanoutRow};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// Queues `rec`'s fan-out targets for record `purge_id`: each merges with the account's
/// fan-out row for the same kind and target (none of its lanes has it yet), or is a new row.
/// Returns how many rows are new and merged; the record's count of rows left is set.
pub(super) fn ingest(
    conn: &Connection,
    rec: &IngestRecord,
    purge_id: i64,
    now: Ms,
    receipt: &mut IngestReceipt,
) -> StoreResult<()> {
    if rec.fanout.is_empty() {
        return Ok(());
    }
    let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("prepare fan-out"));
    let mut find = prep(sql::FANOUT_FIND)?;
    let mut insert = prep(sql::FANOUT_INSERT)?;
    let mut merge = prep(sql::FANOUT_MERGE)?;
    let mut rows: Vec<i64> = Vec::with_capacity(rec.fanout.len());
    for f in &rec.fanout {
        let kind = f.kind.as_str();
        let found: Option<i64> = find
            .query_row(params![f.account, kind, f.target], |r| r.get(0))
            .optional()
            .map_err(db_err("find fan-out target"))?;
        let id = match found {
            // The record names the same target twice.
            Some(id) if rows.contains(&id) => continue,
            Some(id) => {
                merge
                    .execute(params![id, purge_id])
                    .map_err(db_err("merge fan-out target"))?;
                receipt.jobs_merged += 1;
                id
            }
            None => {
                insert
                    .execute(params![f.account, kind, f.target, now, purge_id])
                    .map_err(db_err("queue fan-out target"))?;
                receipt.jobs_new += 1;
                conn.last_insert_rowid()
            }
        };
        rows.push(id);
    }
    conn.prepare_cached(sql::PURGE_SET_FANOUT)
        .and_then(|mut s| s.execute(params![purge_id, rows.len() as i64]))
        .map_err(db_err("count fan-out targets"))?;
    Ok(())
}

/// Expands one slice of the account's fan-out targets into its lanes' jobs, when the
/// claiming lane's backlog is low. Returns how many rows were expanded.
pub(super) fn expand(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
) -> StoreResult<usize> {
    let Some(f) = &req.fanout else {
        return Ok(0);
    };
    // Another claim of this group expanded a slice already: the next group expands more.
    if ctx.fanout_jobs >= fanout::SLICE_JOBS {
        return Ok(0);
    }
    let low_water = fanout::low_water(req);
    let pending: i64 = conn
        .prepare_cached(sql::JOBS_COUNT_LANE_PENDING)
        .and_then(|mut s| s.query_row(params![lane_id, low_water as i64], |r| r.get(0)))
        .map_err(db_err("count pending jobs"))?;
    if pending.max(0) as u64 >= low_water {
        return Ok(0);
    }
    let mut rows = Vec::new();
    {
        let mut take = conn
            .prepare_cached(sql::FANOUT_TAKE)
            .map_err(db_err("read fan-out targets"))?;
        let found = take
            .query_map(params![f.account, f.rows_per_slice() as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db_err("read fan-out targets"))?;
        for row in found {
            let (id, kind, target, created_at, purges) =
                row.map_err(db_err("read fan-out targets"))?;
            rows.push(FanoutRow {
                id,
                kind: parse_kind(&kind)?,
                target,
                created_at,
                purge_ids: parse_ids(&purges)?,
            });
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let plan = fanout::expand(&rows, &f.lanes);
    ctx.fanout_jobs += plan.jobs.len();
    let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("prepare expansion"));
    let mut find = prep(sql::JOB_FIND_PENDING)?;
    let mut insert_job = prep(sql::JOB_INSERT)?;
    let mut merge_job = prep(sql::JOB_MERGE)?;
    let mut new_jobs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for job in &plan.jobs {
        let lane = ctx
            .lane_id(conn, &job.lane, true)?
            .ok_or_else(|| StoreError::Unavailable(format!("lane {} not created", job.lane)))?;
        let kind = job.kind.as_str();
        let pending: Option<i64> = find
            .query_row(params![lane, kind, job.target], |r| r.get(0))
            .optional()
            .map_err(db_err("find pending job"))?;
        let (id, merged) = match pending {
            Some(id) => (id, &job.purge_ids[..]),
            None => {
                let id = ctx.next_job_id;
                ctx.next_job_id += 1;
                let Some((first, rest)) = job.purge_ids.split_first() else {
                    continue;
                };
                // Never a record's only job: the account has several lanes.
                insert_job
                    .execute(params![
                        id,
                        lane,
                        kind,
                        job.target,
                        job.created_at,
                        first,
                        false,
                        // Claimable at once, no interval, no host-root collapse: the fan-out
                        // row does not carry its rules' min_interval_ms or allow_host_purge
                        // (both documented as not applying to accounts with several lanes).
                        job.created_at,
                        0_i64,
                        false
                    ])
                    .map_err(db_err("insert job"))?;
                (id, rest)
            }
        };
        for p in merged {
            // Keeps the job's own hold (not_before, interval); as in PostgreSQL, a job that
            // serves a fan-out record never collapses into a host root.
            let _kept: Ms = merge_job
                .query_row(params![id, p, false, 0_i64, 0_i64, false], |r| r.get(0))
                .map_err(db_err("merge job"))?;
        }
        for p in &job.purge_ids {
            new_jobs.entry(*p).or_default().push(id);
        }
    }
    let mut jobs_of = prep(sql::PURGE_JOB_IDS)?;
    let mut update = prep(sql::PURGE_FANOUT_EXPANDED)?;
    for (pid, done) in &plan.rows_done {
        let current: Option<Option<String>> = jobs_of
            .query_row([pid], |r| r.get(0))
            .optional()
            .map_err(db_err("read record jobs"))?;
        // Pruned meanwhile (its other jobs had ended it): nothing to keep.
        let Some(current) = current else { continue };
        let mut ids = match current {
            Some(text) => parse_ids(&text)?,
            None => Vec::new(),
        };
        for id in new_jobs.remove(pid).unwrap_or_default() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        update
            .execute(params![pid, ids_json(&ids), done])
            .map_err(db_err("link expanded jobs"))?;
    }
    let mut delete = prep(sql::FANOUT_DELETE)?;
    for row in &rows {
        delete
            .execute([row.id])
            .map_err(db_err("delete expanded fan-out target"))?;
    }
    Ok(rows.len())
}
