//! Ingest: log records with their jobs; a job merges with a pending one for the same lane,
//! kind and target.

use super::ids::ids_json;
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::interval;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

/// The log's JSON list of targets of each record.
pub(super) fn encode_targets(records: &[IngestRecord]) -> StoreResult<Vec<String>> {
    records
        .iter()
        .map(|r| {
            serde_json::to_string(&r.targets)
                .map_err(|e| StoreError::Corrupt(format!("encode targets: {e}")))
        })
        .collect()
}

/// Commits `records`, whose targets `encode_targets` gave as `targets`.
pub(super) fn ingest(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    records: &[IngestRecord],
    targets: &[String],
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
    let mut hold_get = prep(sql::HOLD_GET)?;
    let mut job_ids: Vec<i64> = Vec::new();
    // Records are numbered and timed in commit order: a record's time is never before the
    // previous record's, whatever the callers' clocks said (jobs keep the caller's time, for
    // lingering).
    let created = now.max(ctx.last_created);
    ctx.last_created = created;
    for (rec, targets) in records.iter().zip(targets) {
        let purge_id = ctx.next_purge_id;
        ctx.next_purge_id += 1;
        job_ids.clear();
        // A record with one job follows that job's batch directly.
        let solo = rec.jobs.len() == 1;
        // The latest time any of its jobs is held to (min_interval_ms).
        let mut held: Ms = 0;
        for job in &rec.jobs {
            let lane_id = ctx
                .lane_id(conn, &job.lane, true)?
                .ok_or_else(|| StoreError::Unavailable(format!("lane {} not created", job.lane)))?;
            let kind = job.kind.as_str();
            // Only a rule with an interval looks for a hold on the target.
            let hold: Option<Ms> = if rec.min_interval_ms > 0 {
                hold_get
                    .query_row(params![lane_id, kind, job.target, now], |r| r.get(0))
                    .optional()
                    .map_err(db_err("read target hold"))?
            } else {
                None
            };
            let pending: Option<i64> = find
                .query_row(params![lane_id, kind, job.target], |r| r.get(0))
                .optional()
                .map_err(db_err("find pending job"))?;
            let id = match pending {
                Some(id) if job_ids.contains(&id) => continue,
                Some(id) => {
                    // The job keeps the later of its own not_before and the hold's.
                    let not_before = interval::not_before(now, hold, 0);
                    let kept: Ms = merge_job
                        .query_row(
                            params![
                                id,
                                purge_id,
                                solo,
                                not_before,
                                rec.min_interval_ms,
                                rec.allow_host_purge
                            ],
                            |r| r.get(0),
                        )
                        .map_err(db_err("merge job"))?;
                    held = held.max(kept);
                    receipt.jobs_merged += 1;
                    id
                }
                None => {
                    let id = ctx.next_job_id;
                    ctx.next_job_id += 1;
                    let not_before = interval::not_before(now, hold, 0);
                    held = held.max(not_before);
                    insert_job
                        .execute(params![
                            id,
                            lane_id,
                            kind,
                            job.target,
                            now,
                            purge_id,
                            solo,
                            not_before,
                            rec.min_interval_ms,
                            rec.allow_host_purge
                        ])
                        .map_err(db_err("insert job"))?;
                    receipt.jobs_new += 1;
                    id
                }
            };
            job_ids.push(id);
        }
        let status = if job_ids.is_empty() && rec.fanout.is_empty() {
            Status::Skipped
        } else {
            Status::Queued
        };
        insert_purge
            .execute(params![
                purge_id,
                created,
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
                rec.event.etag,
                rec.event.size.and_then(|s| i64::try_from(s).ok()),
                rec.verify.as_ref().map(|v| v.state.as_str()),
                rec.verify.as_ref().and_then(|v| v.note.as_deref()),
                rec.verify.as_ref().map_or(0, |v| v.round),
                rec.warm.as_ref().map(|w| w.state.as_str()),
                rec.warm.as_ref().and_then(|w| w.note.as_deref()),
                (held > now).then(|| interval::held_note(held)),
            ])
            .map_err(db_err("insert purge record"))?;
        // Targets for every lane of an account with several: stored once each.
        super::fanout::ingest(conn, rec, purge_id, now, &mut receipt)?;
        receipt.purge_ids.push(purge_id);
    }
    Ok(receipt)
}
