//! Fan-out targets ([`crate::queue::fanout`]): stored once per account at ingest, expanded
//! into the lanes' jobs a bounded slice at a time, in the claim of a lane of the account.

use super::sql;
use super::tx::{array_text, col, parse_kind, Tx};
use crate::queue::fanout::{self, FanoutRow};
use crate::store::*;
use std::collections::{BTreeMap, HashMap};

/// A fan-out target as a group sees it: account, kind, target.
pub(super) type Key<'a> = (&'a str, &'static str, &'a str);

/// What ingest learnt of a group's fan-out targets: each record's distinct rows, and for
/// each row whether it is new (else a record merged into a row not yet expanded).
pub(super) struct Queued<'a> {
    pub per_record: Vec<Vec<Key<'a>>>,
    pub inserted: HashMap<Key<'a>, bool>,
}

/// Queues the fan-out targets of a group's records (`(record, id, arrival)`), each
/// distinct one upserted once, in key order.
pub(super) async fn ingest<'a>(
    t: &mut Tx<'_>,
    records: &[(&'a IngestRecord, i64, Ms)],
) -> StoreResult<Queued<'a>> {
    let mut rows: BTreeMap<Key<'a>, (Ms, Vec<i64>)> = BTreeMap::new();
    let mut per_record = Vec::with_capacity(records.len());
    for (rec, id, now) in records {
        let mut mine: Vec<Key<'a>> = Vec::with_capacity(rec.fanout.len());
        for f in &rec.fanout {
            let key: Key<'a> = (f.account.as_str(), f.kind.as_str(), f.target.as_str());
            if mine.contains(&key) {
                continue;
            }
            rows.entry(key)
                .or_insert_with(|| (*now, Vec::new()))
                .1
                .push(*id);
            mine.push(key);
        }
        per_record.push(mine);
    }
    let mut inserted = HashMap::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(Queued {
            per_record,
            inserted,
        });
    }
    let mut accounts = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut targets = Vec::with_capacity(rows.len());
    let mut created = Vec::with_capacity(rows.len());
    let mut purges = Vec::with_capacity(rows.len());
    for ((account, kind, target), (at, ids)) in &rows {
        accounts.push(*account);
        kinds.push(*kind);
        targets.push(*target);
        created.push(*at);
        purges.push(array_text(ids));
    }
    let answer = t
        .query(
            sql::FANOUT_UPSERT,
            &[&accounts, &kinds, &targets, &created, &purges],
            "queue fan-out targets",
        )
        .await?;
    let mut back: HashMap<(String, String, String), bool> = HashMap::with_capacity(answer.len());
    for r in &answer {
        back.insert((col(r, 0)?, col(r, 1)?, col(r, 2)?), col(r, 3)?);
    }
    for (account, kind, target) in rows.keys() {
        let new = back
            .get(&(
                (*account).to_owned(),
                (*kind).to_owned(),
                (*target).to_owned(),
            ))
            .copied()
            .ok_or_else(|| {
                StoreError::Unavailable(format!("fan-out target {target} was not queued"))
            })?;
        inserted.insert((*account, *kind, *target), new);
    }
    Ok(Queued {
        per_record,
        inserted,
    })
}

/// Records each record's count of fan-out rows.
pub(super) async fn set_counts(t: &mut Tx<'_>, ids: &[i64], counts: &[i64]) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    t.execute(
        sql::PURGES_SET_FANOUT,
        &[&ids, &counts],
        "count fan-out targets",
    )
    .await
    .map(drop)
}

/// Expands one slice of the account's fan-out targets into its lanes' jobs, when the
/// claiming lane's backlog is low; announces the work to the lanes of other nodes. Returns
/// how many rows were expanded.
pub(super) async fn expand(
    t: &mut Tx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
    lane_ids: &HashMap<String, i64>,
    instance: &str,
) -> StoreResult<usize> {
    let Some(f) = &req.fanout else {
        return Ok(0);
    };
    let low_water = fanout::low_water(req) as i64;
    let pending: i64 = col(
        &t.query_one(
            sql::JOBS_COUNT_LANE_PENDING,
            &[&lane_id, &low_water],
            "count pending jobs",
        )
        .await?,
        0,
    )?;
    if pending >= low_water {
        return Ok(0);
    }
    let mut rows = Vec::new();
    for r in t
        .query(
            sql::FANOUT_TAKE,
            &[&f.account, &(f.rows_per_slice() as i64)],
            "read fan-out targets",
        )
        .await?
    {
        let kind: String = col(&r, 1)?;
        rows.push(FanoutRow {
            id: col(&r, 0)?,
            kind: parse_kind(&kind)?,
            target: col(&r, 2)?,
            created_at: col(&r, 3)?,
            purge_ids: col(&r, 4)?,
        });
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let plan = fanout::expand(&rows, &f.lanes);
    // Each distinct job once, in key order (as ingest upserts them: no deadlock between
    // the two).
    let mut jobs: BTreeMap<(i64, &'static str, &str), (Ms, Vec<i64>)> = BTreeMap::new();
    for job in &plan.jobs {
        let lane = *lane_ids
            .get(&job.lane)
            .ok_or_else(|| StoreError::Unavailable(format!("lane {} not created", job.lane)))?;
        let e = jobs
            .entry((lane, job.kind.as_str(), job.target.as_str()))
            .or_insert_with(|| (job.created_at, Vec::new()));
        e.0 = e.0.min(job.created_at);
        e.1.extend(&job.purge_ids);
    }
    let mut lanes = Vec::with_capacity(jobs.len());
    let mut kinds = Vec::with_capacity(jobs.len());
    let mut targets = Vec::with_capacity(jobs.len());
    let mut created = Vec::with_capacity(jobs.len());
    let mut purges = Vec::with_capacity(jobs.len());
    // Never a record's only job: the account has several lanes.
    let solos: Vec<&str> = vec!["{}"; jobs.len()];
    for ((lane, kind, target), (at, ids)) in &jobs {
        lanes.push(*lane);
        kinds.push(*kind);
        targets.push(*target);
        created.push(*at);
        purges.push(array_text(ids));
    }
    // Claimable at once, no interval, no host-root collapse: a fan-out row does not carry
    // its rules' min_interval_ms or allow_host_purge (documented as not applying to accounts
    // with several lanes); a merge keeps the job's own hold.
    let not_before = created.clone();
    let intervals: Vec<i64> = vec![0; jobs.len()];
    let host: Vec<bool> = vec![false; jobs.len()];
    let answer = t
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
            "queue expanded jobs",
        )
        .await?;
    let mut id_of: HashMap<(i64, String, String), i64> = HashMap::with_capacity(answer.len());
    for r in &answer {
        id_of.insert((col(r, 2)?, col(r, 3)?, col(r, 4)?), col(r, 0)?);
    }
    let mut new_jobs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for ((lane, kind, target), (_, ids)) in &jobs {
        let id = *id_of
            .get(&(*lane, (*kind).to_owned(), (*target).to_owned()))
            .ok_or_else(|| StoreError::Unavailable(format!("job for {target} was not queued")))?;
        for p in ids {
            new_jobs.entry(*p).or_default().push(id);
        }
    }
    let mut ids = Vec::with_capacity(plan.rows_done.len());
    let mut links = Vec::with_capacity(plan.rows_done.len());
    let mut done = Vec::with_capacity(plan.rows_done.len());
    for (pid, n) in &plan.rows_done {
        ids.push(*pid);
        links.push(array_text(new_jobs.get(pid).map_or(&[][..], Vec::as_slice)));
        done.push(*n);
    }
    t.execute(
        sql::PURGES_FANOUT_EXPANDED,
        &[&ids, &links, &done],
        "link expanded jobs",
    )
    .await?;
    let gone: Vec<i64> = rows.iter().map(|r| r.id).collect();
    t.execute(
        sql::FANOUT_DELETE,
        &[&gone],
        "delete expanded fan-out targets",
    )
    .await?;
    // The lanes of other nodes hear of their new jobs at commit.
    let per_lane: Vec<(String, u64)> = f
        .lanes
        .iter()
        .map(|l| (l.clone(), rows.len() as u64))
        .collect();
    super::notices::announce(t, instance, &per_lane).await?;
    Ok(rows.len())
}
