//! Claims: read what the policy ([`crate::queue::claim`]) needs, carry out what it decides.

use super::ids::{ids_json, parse_ids, parse_kind};
use super::lease::lease_row;
use super::quota::{add_quota, quota_used, set_quota_day};
use super::records::{recompute, BatchRecords, BatchView, Known};
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::{claim, collapse, lease};
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
    // At most one collapse (collapse_to_dir_over) per claim: the plan after it is made
    // without the pending URLs.
    let mut may_collapse = true;
    loop {
        let view = lane_view(conn, lane_id, req, may_collapse)?;
        let plan = claim::plan(req, &view);
        for q in &plan.quota {
            add_quota(conn, &req.lane, q.kind, q.day, q.delta)?;
        }
        for id in &plan.clear_quota_day {
            set_quota_day(conn, *id, None)?;
        }
        if let claim::Step::Collapse { dirs } = &plan.step {
            if !may_collapse {
                return Err(StoreError::Corrupt(
                    "the queue policy collapsed URLs twice in one claim".into(),
                ));
            }
            collapse_jobs(conn, ctx, lane_id, dirs, req.now)?;
            may_collapse = false;
            continue;
        }
        return carry_out(conn, ctx, lane_id, req, plan.step);
    }
}

fn carry_out(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane_id: i64,
    req: &ClaimRequest,
    step: claim::Step,
) -> StoreResult<Claim> {
    match step {
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
        claim::Step::Idle | claim::Step::Collapse { .. } => Ok(Claim::Idle),
    }
}

/// Replaces each group of pending URL jobs by one directory job (a pending one for that
/// directory takes them, else a new one as old as the oldest of them); their records now
/// wait for the directory job and say so.
fn collapse_jobs(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane_id: i64,
    dirs: &[collapse::DirPurge],
    now: Ms,
) -> StoreResult<()> {
    let prep = |s: &'static str| conn.prepare_cached(s).map_err(db_err("collapse URLs"));
    let mut get = prep(sql::JOB_PENDING_GET)?;
    let mut find = prep(sql::JOB_FIND_PENDING)?;
    let mut insert = prep(sql::JOB_INSERT)?;
    let mut merge = prep(sql::JOB_MERGE)?;
    let mut delete = prep(sql::JOB_DELETE)?;
    let mut jobs_of = prep(sql::PURGE_JOB_IDS)?;
    let mut note = prep(sql::PURGE_COLLAPSE)?;
    let kind = TargetKind::Dir.as_str();
    for d in dirs {
        let mut created_at = now;
        let mut records: Vec<(i64, bool)> = Vec::new();
        let mut gone = Vec::with_capacity(d.jobs.len());
        for &job in &d.jobs {
            let row: Option<(i64, String, String)> = get
                .query_row(params![job, lane_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(db_err("read URL job"))?;
            let Some((at, purges, solos)) = row else {
                continue;
            };
            created_at = created_at.min(at);
            let solos = parse_ids(&solos)?;
            for pid in parse_ids(&purges)? {
                if !records.iter().any(|(p, _)| *p == pid) {
                    records.push((pid, solos.contains(&pid)));
                }
            }
            gone.push(job);
        }
        if gone.is_empty() {
            continue;
        }
        // The directory job: a pending one takes the records, else a new one.
        let existing: Option<i64> = find
            .query_row(params![lane_id, kind, d.dir], |r| r.get(0))
            .optional()
            .map_err(db_err("find pending job"))?;
        let mut rest = records.iter();
        let dir_job = match existing {
            Some(id) => id,
            None => {
                let id = ctx.next_job_id;
                ctx.next_job_id += 1;
                let Some((pid, solo)) = rest.next() else {
                    continue;
                };
                insert
                    .execute(params![
                        id, lane_id, kind, d.dir, created_at, pid, solo, 0, 0, false
                    ])
                    .map_err(db_err("insert directory job"))?;
                id
            }
        };
        for (pid, solo) in rest {
            // (It returns the job's not_before, of no use here.)
            merge
                .query_row(params![dir_job, pid, solo, 0, 0, false], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(db_err("merge into directory job"))?;
        }
        for job in &gone {
            delete.execute([job]).map_err(db_err("delete URL job"))?;
        }
        tracing::info!(
            lane_id,
            dir = %d.dir,
            urls = gone.len(),
            "URL quota short: URLs collapsed into one directory purge (collapse_to_dir_over)"
        );
        let text = collapse::note(&d.dir);
        for (pid, _) in &records {
            let jobs: Option<String> = jobs_of
                .query_row([pid], |r| r.get(0))
                .optional()
                .map_err(db_err("read record jobs"))?
                .flatten();
            let mut ids = match jobs {
                Some(j) => parse_ids(&j)?,
                None => Vec::new(),
            };
            for id in ids.iter_mut() {
                if gone.contains(id) {
                    *id = dir_job;
                }
            }
            let mut seen = BTreeSet::new();
            ids.retain(|id| seen.insert(*id));
            note.execute(params![pid, ids_json(&ids), text, now, ctx.seq])
                .map_err(db_err("note collapsed record"))?;
        }
    }
    Ok(())
}

fn lane_view(
    conn: &Connection,
    lane_id: i64,
    req: &ClaimRequest,
    may_collapse: bool,
) -> StoreResult<claim::LaneView> {
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
        // Jobs held by a rule's min_interval_ms are neither counted nor taken; the first
        // to be released wakes the lane (`held_until`).
        let mut held = conn
            .prepare_cached(sql::JOB_HELD_UNTIL)
            .map_err(db_err("read held jobs"))?;
        for (kind, limits) in &req.kinds {
            let until: Option<i64> = held
                .query_row(params![lane_id, kind.as_str(), req.now], |r| r.get(0))
                .map_err(db_err("read held jobs"))?;
            if let Some(until) = until {
                view.held_until = Some(view.held_until.map_or(until, |h: Ms| h.min(until)));
            }
            let first: Option<i64> = oldest
                .query_row(params![lane_id, kind.as_str(), req.now], |r| r.get(0))
                .optional()
                .map_err(db_err("read pending jobs"))?;
            let Some(first) = first else { continue };
            let n: i64 = count
                .query_row(
                    params![
                        lane_id,
                        kind.as_str(),
                        limits.max_batch.max(1) as i64,
                        req.now
                    ],
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
    // collapse_to_dir_over: the pending URLs, read only when the URL quota left would not
    // cover them.
    let used = view.used(TargetKind::Url);
    if let Some(upto) = collapse::count_to(req, used).filter(|_| may_collapse) {
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        let n: i64 = conn
            .prepare_cached(sql::JOBS_COUNT_PENDING)
            .and_then(|mut s| {
                s.query_row(
                    params![lane_id, TargetKind::Url.as_str(), upto, req.now],
                    |r| r.get(0),
                )
            })
            .map_err(db_err("count pending URLs"))?;
        if collapse::short(req, used, n.max(0) as u64) {
            let mut stmt = conn
                .prepare_cached(sql::JOBS_PENDING_URLS)
                .map_err(db_err("read pending URLs"))?;
            let urls = stmt
                .query_map(params![lane_id, req.now, collapse::MAX_READ as i64], |r| {
                    Ok(collapse::PendingUrl {
                        job: r.get(0)?,
                        target: r.get(1)?,
                        host_ok: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db_err("read pending URLs"))?;
            view.pending_urls = Some(urls);
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
        let mut hold = conn
            .prepare_cached(sql::HOLD_SET)
            .map_err(db_err("hold targets"))?;
        let rows = stmt
            .query_map(
                params![
                    lane_id,
                    kind.as_str(),
                    i64::try_from(take).unwrap_or(i64::MAX),
                    req.now
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                },
            )
            .map_err(db_err("select pending jobs"))?;
        for row in rows {
            let (id, target, at, purges, solo, interval) =
                row.map_err(db_err("select pending jobs"))?;
            // Purged now: not again before the rule's min_interval_ms is over.
            if let Some(until) = crate::queue::interval::hold_after_claim(req.now, interval) {
                hold.execute(params![lane_id, kind.as_str(), target, until])
                    .map_err(db_err("hold targets"))?;
            }
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
