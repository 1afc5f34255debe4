//! Ingest of a group: log records with their jobs, each distinct pending job upserted once.

use super::group::Op;
use super::sql;
use super::tx::{array_text, col, Tx};
use crate::queue::interval;
use crate::store::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A job as the group sees it: lane id, kind, target.
type Key = (i64, &'static str, String);

#[derive(Default)]
struct Pending {
    created_at: Ms,
    purge_ids: Vec<i64>,
    solo_ids: Vec<i64>,
    /// The longest `min_interval_ms` of its records' rules.
    min_interval_ms: Ms,
    /// Not claimed before (a hold on the target, for a job with an interval).
    not_before: Ms,
    /// Whether every record of it allows a whole-host purge (`None` before the first).
    allow_host: Option<bool>,
}

/// Commits the records of `ops`; one receipt per op, in order.
pub(super) async fn ingest(
    t: &mut Tx<'_>,
    lane_ids: &HashMap<String, i64>,
    ops: &[Op],
    instance: &str,
) -> StoreResult<Vec<IngestReceipt>> {
    let n: i64 = ops.iter().map(|o| o.records.len() as i64).sum();
    let ids: Vec<i64> = t
        .query(sql::PURGE_IDS_NEXT, &[&n], "number records")
        .await?
        .iter()
        .map(|r| col::<i64>(r, 0))
        .collect::<StoreResult<_>>()?;
    if ids.len() as i64 != n {
        return Err(StoreError::Unavailable(format!(
            "number records: asked for {n} ids, got {}",
            ids.len()
        )));
    }
    // A record's time is never before the newest one's (a clock step, a slow node): "since"
    // and retention see records in arrival order.
    let newest: i64 = col(
        &t.query_one(sql::PURGES_NEWEST_TIME, &[], "read newest record")
            .await?,
        0,
    )?;

    // Fan-out targets first (before any job: an expander holds fan-out rows, then jobs).
    let fan = {
        let mut at = ids.iter();
        let mut of: Vec<(&IngestRecord, i64, Ms)> = Vec::new();
        for op in ops {
            for rec in &op.records {
                if let Some(id) = at.next() {
                    of.push((rec, *id, op.now));
                }
            }
        }
        super::fanout::ingest(t, &of).await?
    };

    // Each record's distinct jobs, and each distinct job's records, in key order.
    let mut jobs: BTreeMap<Key, Pending> = BTreeMap::new();
    let mut record_keys: Vec<Vec<Key>> = Vec::with_capacity(ids.len());
    let mut next = ids.iter();
    for op in ops {
        for rec in &op.records {
            let purge_id = *next
                .next()
                .ok_or_else(|| StoreError::Unavailable("number records: too few ids".into()))?;
            let solo = rec.jobs.len() == 1;
            let mut keys: Vec<Key> = Vec::with_capacity(rec.jobs.len());
            for job in &rec.jobs {
                let lane = *lane_ids.get(&job.lane).ok_or_else(|| {
                    StoreError::Unavailable(format!("lane {} not created", job.lane))
                })?;
                let key: Key = (lane, job.kind.as_str(), job.target.clone());
                if keys.contains(&key) {
                    continue;
                }
                let p = jobs.entry(key.clone()).or_insert_with(|| Pending {
                    created_at: op.now,
                    ..Default::default()
                });
                p.purge_ids.push(purge_id);
                p.min_interval_ms = p.min_interval_ms.max(rec.min_interval_ms);
                p.allow_host = Some(p.allow_host.unwrap_or(true) && rec.allow_host_purge);
                if solo {
                    p.solo_ids.push(purge_id);
                }
                keys.push(key);
            }
            record_keys.push(keys);
        }
    }

    // Jobs of rules with a min_interval_ms wait for a hold on their target.
    hold_jobs(t, &mut jobs, ops.iter().map(|o| o.now).min().unwrap_or(0)).await?;

    // Upsert the distinct jobs.
    let mut found: HashMap<Key, (i64, bool, Ms)> = HashMap::with_capacity(jobs.len());
    if !jobs.is_empty() {
        let mut lanes = Vec::with_capacity(jobs.len());
        let mut kinds = Vec::with_capacity(jobs.len());
        let mut targets = Vec::with_capacity(jobs.len());
        let mut created = Vec::with_capacity(jobs.len());
        let mut purges = Vec::with_capacity(jobs.len());
        let mut solos = Vec::with_capacity(jobs.len());
        let mut not_before = Vec::with_capacity(jobs.len());
        let mut intervals = Vec::with_capacity(jobs.len());
        let mut host = Vec::with_capacity(jobs.len());
        for ((lane, kind, target), p) in &jobs {
            lanes.push(*lane);
            kinds.push(*kind);
            targets.push(target.as_str());
            created.push(p.created_at);
            purges.push(array_text(&p.purge_ids));
            solos.push(array_text(&p.solo_ids));
            not_before.push(p.not_before);
            intervals.push(p.min_interval_ms);
            host.push(p.allow_host.unwrap_or(false));
        }
        let rows = t
            .query(
                sql::JOBS_UPSERT,
                &[
                    &lanes,
                    &kinds,
                    &targets,
                    &created,
                    &purges,
                    &solos,
                    &not_before,
                    &intervals,
                    &host,
                ],
                "queue jobs",
            )
            .await?;
        for r in &rows {
            let kind: String = col(r, 3)?;
            let kind = TargetKind::ALL
                .into_iter()
                .map(TargetKind::as_str)
                .find(|k| *k == kind)
                .ok_or_else(|| StoreError::Corrupt(format!("target kind {kind:?}")))?;
            found.insert(
                (col(r, 2)?, kind, col(r, 4)?),
                (col(r, 0)?, col(r, 1)?, col(r, 5)?),
            );
        }
    }

    // The records, and what each op is told.
    let mut receipts = Vec::with_capacity(ops.len());
    let mut seen: HashSet<&Key> = HashSet::new();
    let mut fan_seen: HashSet<&super::fanout::Key> = HashSet::new();
    let mut fan_ids: Vec<i64> = Vec::new();
    let mut fan_counts: Vec<i64> = Vec::new();
    let cols = Columns::with_capacity(ids.len());
    let mut cols = cols;
    let mut at = 0;
    let mut created = newest;
    for op in ops {
        created = created.max(op.now);
        let mut receipt = IngestReceipt {
            purge_ids: Vec::with_capacity(op.records.len()),
            ..Default::default()
        };
        for (rec, targets) in op.records.iter().zip(&op.targets) {
            let keys = &record_keys[at];
            let mut job_ids = Vec::with_capacity(keys.len());
            // The latest time any of its jobs is held to (min_interval_ms).
            let mut held: Ms = 0;
            for key in keys {
                let (id, inserted, not_before) = *found.get(key).ok_or_else(|| {
                    StoreError::Unavailable(format!("job for {} was not queued", key.2))
                })?;
                held = held.max(not_before);
                if seen.insert(key) && inserted {
                    receipt.jobs_new += 1;
                } else {
                    receipt.jobs_merged += 1;
                }
                job_ids.push(id);
            }
            let rows = &fan.per_record[at];
            for key in rows {
                if fan_seen.insert(key) && fan.inserted.get(key).copied().unwrap_or(false) {
                    receipt.jobs_new += 1;
                } else {
                    receipt.jobs_merged += 1;
                }
            }
            if !rows.is_empty() {
                fan_ids.push(ids[at]);
                fan_counts.push(rows.len() as i64);
            }
            let note = (held > op.now).then(|| interval::held_note(held));
            cols.push(ids[at], created, rec, targets, &job_ids, note);
            receipt.purge_ids.push(ids[at]);
            at += 1;
        }
        receipts.push(receipt);
    }
    t.execute(
        sql::PURGES_INSERT,
        &[
            &cols.created,
            &cols.id,
            &cols.rule,
            &cols.provider,
            &cols.format,
            &cols.event,
            &cols.bucket,
            &cols.key,
            &cols.event_id,
            &cols.targets,
            &cols.job_ids,
            &cols.status,
            &cols.error,
            &cols.etag,
            &cols.size,
            &cols.verify,
            &cols.verify_note,
            &cols.verify_round,
            &cols.warm,
            &cols.warm_note,
            &cols.note,
        ],
        "insert purge records",
    )
    .await?;
    super::fanout::set_counts(t, &fan_ids, &fan_counts).await?;
    t.touched = true;
    // Other nodes' idle lanes hear of the work at commit.
    let mut per_lane: Vec<(String, u64)> = Vec::new();
    for (name, id) in lane_ids {
        let n = jobs.keys().filter(|(lane, _, _)| lane == id).count() as u64;
        if n > 0 {
            per_lane.push((name.clone(), n));
        }
    }
    // A fan-out target: every lane of its account (any of them expands it).
    let mut accounts: BTreeMap<&str, (&[String], u64)> = BTreeMap::new();
    for f in ops.iter().flat_map(|o| &o.records).flat_map(|r| &r.fanout) {
        accounts.entry(&f.account).or_insert((&f.lanes, 0)).1 += 1;
    }
    for (lanes, n) in accounts.into_values() {
        per_lane.extend(lanes.iter().map(|l| (l.clone(), n)));
    }
    super::notices::announce(t, instance, &per_lane).await?;
    Ok(receipts)
}

/// The records to insert, column by column (for one `unnest`).
struct Columns<'a> {
    created: Vec<i64>,
    id: Vec<i64>,
    rule: Vec<Option<&'a str>>,
    provider: Vec<Option<&'a str>>,
    format: Vec<&'a str>,
    event: Vec<&'a str>,
    bucket: Vec<&'a str>,
    key: Vec<&'a str>,
    event_id: Vec<Option<&'a str>>,
    targets: Vec<&'a str>,
    job_ids: Vec<Option<String>>,
    status: Vec<&'static str>,
    error: Vec<Option<&'a str>>,
    etag: Vec<Option<&'a str>>,
    size: Vec<Option<i64>>,
    verify: Vec<Option<&'static str>>,
    verify_note: Vec<Option<&'a str>>,
    verify_round: Vec<i64>,
    warm: Vec<Option<&'static str>>,
    warm_note: Vec<Option<&'a str>>,
    note: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(n: usize) -> Columns<'a> {
        Columns {
            created: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            rule: Vec::with_capacity(n),
            provider: Vec::with_capacity(n),
            format: Vec::with_capacity(n),
            event: Vec::with_capacity(n),
            bucket: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            targets: Vec::with_capacity(n),
            job_ids: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            etag: Vec::with_capacity(n),
            size: Vec::with_capacity(n),
            verify: Vec::with_capacity(n),
            verify_note: Vec::with_capacity(n),
            verify_round: Vec::with_capacity(n),
            warm: Vec::with_capacity(n),
            warm_note: Vec::with_capacity(n),
            note: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        id: i64,
        created: Ms,
        rec: &'a IngestRecord,
        targets: &'a str,
        jobs: &[i64],
        note: Option<String>,
    ) {
        self.note.push(note);
        self.created.push(created);
        self.id.push(id);
        self.rule.push(rec.rule.as_deref());
        self.provider.push(rec.provider.as_deref());
        self.format.push(&rec.event.format);
        self.event.push(&rec.event.name);
        self.bucket.push(&rec.event.bucket);
        self.key.push(&rec.event.key);
        self.event_id.push(rec.event.id.as_deref());
        self.targets.push(targets);
        self.job_ids
            .push((!jobs.is_empty()).then(|| array_text(jobs)));
        self.status
            .push(if jobs.is_empty() && rec.fanout.is_empty() {
                Status::Skipped.as_str()
            } else {
                Status::Queued.as_str()
            });
        self.error.push(rec.note.as_deref());
        self.etag.push(rec.event.etag.as_deref());
        self.size
            .push(rec.event.size.and_then(|s| i64::try_from(s).ok()));
        self.verify
            .push(rec.verify.as_ref().map(|v| v.state.as_str()));
        self.verify_note
            .push(rec.verify.as_ref().and_then(|v| v.note.as_deref()));
        self.verify_round
            .push(rec.verify.as_ref().map_or(0, |v| i64::from(v.round)));
        self.warm.push(rec.warm.as_ref().map(|w| w.state.as_str()));
        self.warm_note
            .push(rec.warm.as_ref().and_then(|w| w.note.as_deref()));
    }
}

/// Sets `not_before` of the jobs with a `min_interval_ms` whose target is held at `now` (one
/// query for all of them; jobs without an interval look nothing up).
async fn hold_jobs(t: &Tx<'_>, jobs: &mut BTreeMap<Key, Pending>, now: Ms) -> StoreResult<()> {
    let mut lanes = Vec::new();
    let mut kinds = Vec::new();
    let mut targets = Vec::new();
    for ((lane, kind, target), p) in jobs.iter() {
        if p.min_interval_ms > 0 {
            lanes.push(*lane);
            kinds.push(*kind);
            targets.push(target.as_str());
        }
    }
    if lanes.is_empty() {
        return Ok(());
    }
    let rows = t
        .query(
            sql::HOLDS_GET,
            &[&lanes, &kinds, &targets, &now],
            "read target holds",
        )
        .await?;
    for r in &rows {
        let kind: String = col(r, 1)?;
        let target: String = col(r, 2)?;
        let until: Ms = col(r, 3)?;
        let lane: i64 = col(r, 0)?;
        let Some(kind) = TargetKind::ALL
            .into_iter()
            .map(TargetKind::as_str)
            .find(|k| *k == kind)
        else {
            continue;
        };
        if let Some(p) = jobs.get_mut(&(lane, kind, target)) {
            p.not_before = interval::not_before(now, Some(until), p.not_before);
        }
    }
    Ok(())
}
