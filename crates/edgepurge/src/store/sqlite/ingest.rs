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
    records.iter().map(|r| encode(&r.targets)).collect()
}

/// The JSON list of one record's targets, for the log.
fn encode(targets: &[String]) -> StoreResult<String> {
    serde_json::to_string(targets).map_err(|e| StoreError::Corrupt(format!("encode targets: {e}")))
}

/// Commits `records`, whose targets `encode_targets` gave as `targets`.
pub(super) fn ingest(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    records: &[IngestRecord],
    targets: &[String],
    now: Ms,
) -> StoreResult<IngestReceipt> {
    let mut w = RecordWriter::new(conn, ctx, records.len(), now)?;
    for (rec, targets) in records.iter().zip(targets) {
        w.write(rec, targets)?;
    }
    Ok(w.receipt)
}

/// Commits the records `source` makes, each written (and let go) as it is made.
pub(super) fn ingest_from(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    source: &dyn RecordSource,
    now: Ms,
) -> StoreResult<IngestReceipt> {
    let mut w = RecordWriter::new(conn, ctx, source.records(), now)?;
    source.each(&mut |rec| w.write(&rec, &encode(&rec.targets)?))?;
    Ok(w.receipt)
}

/// Writes records one by one in the current transaction.
struct RecordWriter<'c, 'x, 'l> {
    conn: &'c Connection,
    ctx: &'x mut TxCtx<'l>,
    find: rusqlite::CachedStatement<'c>,
    insert_job: rusqlite::CachedStatement<'c>,
    merge_job: rusqlite::CachedStatement<'c>,
    insert_purge: rusqlite::CachedStatement<'c>,
    hold_get: rusqlite::CachedStatement<'c>,
    job_ids: Vec<i64>,
    now: Ms,
    created: Ms,
    receipt: IngestReceipt,
}

impl<'c, 'x, 'l> RecordWriter<'c, 'x, 'l> {
    fn new(
        conn: &'c Connection,
        ctx: &'x mut TxCtx<'l>,
        records: usize,
        now: Ms,
    ) -> StoreResult<Self> {
        let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("prepare ingest"));
        // Records are numbered and timed in commit order: a record's time is never before
        // the previous record's, whatever the callers' clocks said (jobs keep the caller's
        // time, for lingering).
        let created = now.max(ctx.last_created);
        ctx.last_created = created;
        Ok(RecordWriter {
            find: prep(sql::JOB_FIND_PENDING)?,
            insert_job: prep(sql::JOB_INSERT)?,
            merge_job: prep(sql::JOB_MERGE)?,
            insert_purge: prep(sql::PURGE_INSERT)?,
            hold_get: prep(sql::HOLD_GET)?,
            conn,
            ctx,
            job_ids: Vec::new(),
            now,
            created,
            receipt: IngestReceipt {
                purge_ids: Vec::with_capacity(records),
                ..Default::default()
            },
        })
    }

    /// Writes one record (with `targets`, its targets as the log's JSON) and its jobs.
    fn write(&mut self, rec: &IngestRecord, targets: &str) -> StoreResult<()> {
        let (conn, now) = (self.conn, self.now);
        let purge_id = self.ctx.next_purge_id;
        self.ctx.next_purge_id += 1;
        self.job_ids.clear();
        // A record with one job follows that job's batch directly.
        let solo = rec.jobs.len() == 1;
        // The latest time any of its jobs is held to (min_interval_ms).
        let mut held: Ms = 0;
        for job in &rec.jobs {
            let lane_id = self
                .ctx
                .lane_id(conn, &job.lane, true)?
                .ok_or_else(|| StoreError::Unavailable(format!("lane {} not created", job.lane)))?;
            let kind = job.kind.as_str();
            // Only a rule with an interval looks for a hold on the target.
            let hold: Option<Ms> = if rec.min_interval_ms > 0 {
                self.hold_get
                    .query_row(params![lane_id, kind, job.target, now], |r| r.get(0))
                    .optional()
                    .map_err(db_err("read target hold"))?
            } else {
                None
            };
            let pending: Option<i64> = self
                .find
                .query_row(params![lane_id, kind, job.target], |r| r.get(0))
                .optional()
                .map_err(db_err("find pending job"))?;
            let id = match pending {
                Some(id) if self.job_ids.contains(&id) => continue,
                Some(id) => {
                    // The job keeps the later of its own not_before and the hold's.
                    let not_before = interval::not_before(now, hold, 0);
                    let kept: Ms = self
                        .merge_job
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
                    self.receipt.jobs_merged += 1;
                    id
                }
                None => {
                    let id = self.ctx.next_job_id;
                    self.ctx.next_job_id += 1;
                    let not_before = interval::not_before(now, hold, 0);
                    held = held.max(not_before);
                    self.insert_job
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
                    self.receipt.jobs_new += 1;
                    id
                }
            };
            self.job_ids.push(id);
        }
        let status = if self.job_ids.is_empty() && rec.fanout.is_empty() {
            Status::Skipped
        } else {
            Status::Queued
        };
        self.insert_purge
            .execute(params![
                purge_id,
                self.created,
                self.ctx.seq,
                rec.rule,
                rec.provider,
                rec.event.format,
                rec.event.name,
                rec.event.bucket,
                rec.event.key,
                rec.event.id,
                targets,
                (!self.job_ids.is_empty()).then(|| ids_json(&self.job_ids)),
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
        super::fanout::ingest(conn, rec, purge_id, now, &mut self.receipt)?;
        self.receipt.purge_ids.push(purge_id);
        Ok(())
    }
}
