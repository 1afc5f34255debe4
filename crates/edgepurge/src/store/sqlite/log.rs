//! Reading the purge log, the request log and queue depths; pruning old records.

use super::db_err;
use crate::store::*;
use rusqlite::{params, types::Value as SqlValue, Connection, Transaction};

const RECORD_COLUMNS: &str = "id, seq, created_at, updated_at, rule, provider, format, event, \
     bucket, key, event_id, targets, status, attempts, request_id, task_id, error";

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
        },
        targets,
        status,
    ))
}

pub(super) fn query(conn: &Connection, q: &LogQuery) -> StoreResult<Vec<LogRecord>> {
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM purges WHERE 1=1");
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
        sql.push_str(" AND created_at >= ?");
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
        sql.push_str(" ORDER BY created_at DESC, id DESC");
    }
    sql.push_str(" LIMIT ?");
    args.push(SqlValue::Integer(
        i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX),
    ));

    let mut stmt = conn.prepare(&sql).map_err(db_err("query log"))?;
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
    limit: usize,
) -> StoreResult<Vec<RequestRecord>> {
    let mut stmt = conn
        .prepare(
            "SELECT id, batch_id, lane, kind, attempt, n_targets, started_at, finished_at, \
             outcome, http_status, request_id, task_id, error FROM requests \
             WHERE started_at >= ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(db_err("query requests"))?;
    let rows = stmt
        .query_map(
            params![
                since.unwrap_or(0),
                i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
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
            .prepare(
                "SELECT lane, COUNT(*), MIN(created_at) FROM jobs WHERE batch_id IS NULL \
                 GROUP BY lane",
            )
            .map_err(db_err("queue depth"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
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
        .prepare(
            "SELECT lane, state, COUNT(*) FROM batches \
             WHERE state IN ('ready', 'inflight', 'dead') GROUP BY lane, state",
        )
        .map_err(db_err("queue depth"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
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

/// Deletes what is finished and older than `before`: succeeded and dead batches with their
/// jobs, records whose every job is gone, and old request records.
pub(super) fn prune(tx: &Transaction<'_>, before: Ms) -> StoreResult<u64> {
    let mut n = 0u64;
    let steps: [(&str, &str); 5] = [
        (
            "prune links",
            "DELETE FROM purge_jobs WHERE job_id IN (SELECT j.id FROM jobs j \
             JOIN batches b ON b.id = j.batch_id \
             WHERE b.state IN ('succeeded', 'dead') AND b.finished_at < ?1)",
        ),
        (
            "prune jobs",
            "DELETE FROM jobs WHERE batch_id IN (SELECT id FROM batches \
             WHERE state IN ('succeeded', 'dead') AND finished_at < ?1)",
        ),
        (
            "prune batches",
            "DELETE FROM batches WHERE state IN ('succeeded', 'dead') AND finished_at < ?1",
        ),
        (
            "prune records",
            "DELETE FROM purges WHERE created_at < ?1 AND status IN ('skipped', 'succeeded', \
             'dead') AND NOT EXISTS (SELECT 1 FROM purge_jobs pj WHERE pj.purge_id = purges.id)",
        ),
        (
            "prune requests",
            "DELETE FROM requests WHERE started_at < ?1",
        ),
    ];
    for (ctx, sql) in steps {
        n += tx.execute(sql, [before]).map_err(db_err(ctx))? as u64;
    }
    tx.execute(
        "DELETE FROM quota WHERE day < (SELECT MAX(day) - 7 FROM quota)",
        [],
    )
    .map_err(db_err("prune quota"))?;
    Ok(n)
}
