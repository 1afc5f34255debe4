//! Reading the purge log, the request log and queue depths; pruning old records in small
//! steps.

use super::ids::parse_ids;
use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, types::Value as SqlValue, Connection, OptionalExtension};

/// The first record created at or after `t`, found by bisecting ids (records are numbered and
/// timed in commit order, so their times never decrease with their ids); `None` if every
/// record is older. Ids may have gaps (pruned records).
fn first_id_at_or_after(conn: &Connection, t: Ms) -> StoreResult<Option<i64>> {
    let (min, max): (Option<i64>, Option<i64>) = conn
        .prepare_cached(sql::PURGE_ID_RANGE)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(db_err("find records by time"))?;
    let (Some(mut lo), Some(mut hi)) = (min, max) else {
        return Ok(None);
    };
    let mut at = conn
        .prepare_cached(sql::PURGE_AT_OR_AFTER)
        .map_err(db_err("find records by time"))?;
    // The first existing record numbered `x` or above, and whether it is new enough.
    let mut qualifies = |x: i64| -> StoreResult<Option<i64>> {
        let row: Option<(i64, Ms)> = at
            .query_row([x], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_err("find records by time"))?;
        Ok(row.filter(|(_, created)| *created >= t).map(|(id, _)| id))
    };
    if qualifies(hi)?.is_none() {
        return Ok(None);
    }
    // The smallest x in [lo, hi] that qualifies: the range halves every step.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if qualifies(mid)?.is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    qualifies(lo)
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LogRecord, String, String)> {
    let targets: String = r.get(11)?;
    let status: String = r.get(12)?;
    Ok((
        LogRecord {
            id: r.get(0)?,
            seq: r.get(1)?,
            time: r.get(2)?,
            updated: r.get(3)?,
            rule: r.get(4)?,
            provider: r.get(5)?,
            format: r.get(6)?,
            event: r.get(7)?,
            bucket: r.get(8)?,
            key: r.get(9)?,
            event_id: r.get(10)?,
            targets: Vec::new(),
            status: Status::Queued,
            attempts: r.get::<_, i64>(13)?.try_into().unwrap_or(0),
            request_id: r.get(14)?,
            task_id: r.get(15)?,
            error: r.get(16)?,
            completed_at: r.get(17)?,
            etag: r.get(18)?,
            size: r.get::<_, Option<i64>>(19)?.and_then(|s| s.try_into().ok()),
            verified: r
                .get::<_, Option<String>>(20)?
                .as_deref()
                .and_then(Verified::parse),
            verify_note: r.get(21)?,
            warmed: r
                .get::<_, Option<String>>(22)?
                .as_deref()
                .and_then(Warmed::parse),
            warm_note: r.get(23)?,
            warm_task: r.get(24)?,
            note: r.get(25)?,
        },
        targets,
        status,
    ))
}

/// The records a query selects: the newest `limit` (oldest first), or with `after`, the next
/// `limit` changes in change order.
pub(super) fn query(conn: &Connection, q: &LogQuery) -> StoreResult<Vec<LogRecord>> {
    // One snapshot for the search by time and the query that uses it.
    let tx = conn.unchecked_transaction().map_err(db_err("query log"))?;
    let out = query_in(&tx, q)?;
    tx.finish().map_err(db_err("query log"))?;
    Ok(out)
}

fn query_in(conn: &Connection, q: &LogQuery) -> StoreResult<Vec<LogRecord>> {
    let mut sql = format!("{} WHERE 1=1", sql::LOG_COLUMNS.trim_end());
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(rule) = &q.rule {
        sql.push_str(" AND rule = ?");
        args.push(SqlValue::Text(rule.clone()));
    }
    if let Some(status) = q.status {
        sql.push_str(" AND status = ?");
        args.push(SqlValue::Text(status.as_str().to_owned()));
    }
    if let Some(since) = q.since {
        let Some(first) = first_id_at_or_after(conn, since)? else {
            return Ok(Vec::new());
        };
        sql.push_str(" AND id >= ? AND created_at >= ?");
        args.push(SqlValue::Integer(first));
        args.push(SqlValue::Integer(since));
    }
    if let Some(ids) = &q.ids {
        let marks = vec!["?"; ids.len()].join(",");
        sql.push_str(&format!(" AND id IN ({marks})"));
        args.extend(ids.iter().map(|&i| SqlValue::Integer(i)));
    }
    let ascending = q.after.is_some();
    if let Some((seq, id)) = q.after {
        sql.push_str(" AND (seq > ? OR (seq = ? AND id > ?)) ORDER BY seq ASC, id ASC");
        args.extend([
            SqlValue::Integer(seq),
            SqlValue::Integer(seq),
            SqlValue::Integer(id),
        ]);
    } else {
        if let Some(before) = q.before {
            sql.push_str(" AND id < ?");
            args.push(SqlValue::Integer(before));
        }
        sql.push_str(" ORDER BY id DESC");
    }
    sql.push_str(" LIMIT ?");
    args.push(SqlValue::Integer(
        i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX),
    ));

    let mut stmt = conn.prepare_cached(&sql).map_err(db_err("query log"))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), record)
        .map_err(db_err("query log"))?;
    let mut out = Vec::new();
    for row in rows {
        let (mut rec, targets, status) = row.map_err(db_err("query log"))?;
        rec.targets = serde_json::from_str(&targets)
            .map_err(|e| StoreError::Corrupt(format!("record {} targets: {e}", rec.id)))?;
        rec.status = status
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("record {}: {e}", rec.id)))?;
        out.push(rec);
    }
    if !ascending {
        out.reverse();
    }
    Ok(out)
}

pub(super) fn requests(
    conn: &Connection,
    since: Option<Ms>,
    before: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<RequestRecord>> {
    let mut stmt = conn
        .prepare_cached(sql::REQUESTS_LIST)
        .map_err(db_err("query requests"))?;
    let rows = stmt
        .query_map(
            params![
                since.unwrap_or(0),
                i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
                before.unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(RequestRecord {
                    id: r.get(0)?,
                    batch_id: r.get(1)?,
                    lane: r.get(2)?,
                    kind: r.get(3)?,
                    attempt: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
                    targets: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
                    started_at: r.get(6)?,
                    finished_at: r.get(7)?,
                    outcome: r.get(8)?,
                    http_status: r.get::<_, Option<i64>>(9)?.and_then(|s| s.try_into().ok()),
                    request_id: r.get(10)?,
                    task_id: r.get(11)?,
                    error: r.get(12)?,
                })
            },
        )
        .map_err(db_err("query requests"))?;
    let mut out: Vec<RequestRecord> = rows
        .collect::<Result<_, _>>()
        .map_err(db_err("query requests"))?;
    out.reverse();
    Ok(out)
}

pub(super) fn depths(conn: &Connection) -> StoreResult<Vec<LaneDepth>> {
    let mut out: std::collections::BTreeMap<String, LaneDepth> = Default::default();
    {
        let mut stmt = conn
            .prepare_cached(sql::DEPTH_PENDING)
            .map_err(db_err("queue depth"))?;
        let rows = stmt
            .query_map([], |r| <(String, i64, Option<i64>)>::try_from(r))
            .map_err(db_err("queue depth"))?;
        for row in rows {
            let (lane, n, oldest) = row.map_err(db_err("queue depth"))?;
            let d = out.entry(lane.clone()).or_insert_with(|| LaneDepth {
                lane,
                ..Default::default()
            });
            d.pending = n.max(0) as u64;
            d.oldest_pending_at = oldest;
        }
    }
    let mut stmt = conn
        .prepare_cached(sql::DEPTH_BATCHES)
        .map_err(db_err("queue depth"))?;
    let rows = stmt
        .query_map([], |r| <(String, String, i64)>::try_from(r))
        .map_err(db_err("queue depth"))?;
    for row in rows {
        let (lane, state, n) = row.map_err(db_err("queue depth"))?;
        let d = out.entry(lane.clone()).or_insert_with(|| LaneDepth {
            lane,
            ..Default::default()
        });
        let n = n.max(0) as u64;
        match state.as_str() {
            "ready" => d.waiting_batches = n,
            "inflight" => d.inflight_batches = n,
            _ => d.dead_batches = n,
        }
    }
    Ok(out.into_values().collect())
}

pub(super) fn fanout_depths(conn: &Connection) -> StoreResult<Vec<FanoutDepth>> {
    let mut stmt = conn
        .prepare_cached(sql::DEPTH_FANOUT)
        .map_err(db_err("fan-out depth"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FanoutDepth {
                account: r.get(0)?,
                targets: r.get::<_, i64>(1)?.max(0) as u64,
                oldest_at: r.get(2)?,
            })
        })
        .map_err(db_err("fan-out depth"))?;
    rows.collect::<Result<_, _>>()
        .map_err(db_err("fan-out depth"))
}

/// Deletes up to about `max_rows` rows of what is finished and older than `before`: succeeded
/// and dead batches with their jobs, records whose every job is gone, and old request
/// records. Returns how many rows went.
pub(super) fn prune(conn: &Connection, before: Ms, max_rows: usize) -> StoreResult<u64> {
    let limit = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX);
    let mut n = 0u64;
    let batches: Vec<(i64, String)> = conn
        .prepare_cached(sql::PRUNE_BATCHES)
        .and_then(|mut s| {
            s.query_map(params![before, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(db_err("prune batches"))?;
    {
        let mut del_job = conn
            .prepare_cached(sql::JOB_DELETE)
            .map_err(db_err("prune jobs"))?;
        let mut del_batch = conn
            .prepare_cached(sql::BATCH_DELETE)
            .map_err(db_err("prune batches"))?;
        for (id, jobs) in batches {
            for j in parse_ids(&jobs)? {
                n += del_job.execute([j]).map_err(db_err("prune jobs"))? as u64;
            }
            n += del_batch.execute([id]).map_err(db_err("prune batches"))? as u64;
        }
    }
    // Records older than `before` are those numbered below the first newer one.
    let cutoff = first_id_at_or_after(conn, before)?.unwrap_or(i64::MAX);
    n += conn
        .prepare_cached(sql::PRUNE_RECORDS)
        .and_then(|mut s| s.execute(params![cutoff, limit]))
        .map_err(db_err("prune records"))? as u64;
    n += conn
        .prepare_cached(sql::PRUNE_REQUESTS)
        .and_then(|mut s| s.execute(params![before, limit]))
        .map_err(db_err("prune requests"))? as u64;
    n += conn
        .prepare_cached(sql::PRUNE_HOLDS)
        .and_then(|mut s| s.execute(params![before, limit]))
        .map_err(db_err("prune holds"))? as u64;
    conn.prepare_cached(sql::PRUNE_QUOTA)
        .and_then(|mut s| s.execute([]))
        .map_err(db_err("prune quota"))?;
    Ok(n)
}
