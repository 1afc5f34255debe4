//! Reading the purge log, the request log and queue depths; pruning old records in small
//! steps.

use super::sql;
use super::tx::{col, parse_status, Tx};
use crate::store::*;
use tokio_postgres::types::ToSql;

fn record(r: &tokio_postgres::Row) -> StoreResult<LogRecord> {
    let id: i64 = col(r, 0)?;
    let targets: String = col(r, 11)?;
    let status: String = col(r, 12)?;
    Ok(LogRecord {
        id,
        seq: col(r, 1)?,
        time: col(r, 2)?,
        updated: col(r, 3)?,
        rule: col(r, 4)?,
        provider: col(r, 5)?,
        format: col(r, 6)?,
        event: col(r, 7)?,
        bucket: col(r, 8)?,
        key: col(r, 9)?,
        event_id: col(r, 10)?,
        targets: serde_json::from_str(&targets)
            .map_err(|e| StoreError::Corrupt(format!("record {id} targets: {e}")))?,
        status: parse_status(&status)?,
        attempts: col::<i64>(r, 13)?.try_into().unwrap_or(0),
        request_id: col(r, 14)?,
        task_id: col(r, 15)?,
        error: col(r, 16)?,
        completed_at: col(r, 17)?,
        etag: col(r, 18)?,
        size: col::<Option<i64>>(r, 19)?.and_then(|s| s.try_into().ok()),
        verified: col::<Option<String>>(r, 20)?
            .as_deref()
            .and_then(Verified::parse),
        verify_note: col(r, 21)?,
        warmed: col::<Option<String>>(r, 22)?
            .as_deref()
            .and_then(Warmed::parse),
        warm_note: col(r, 23)?,
        warm_task: col(r, 24)?,
        note: col(r, 25)?,
    })
}

/// The records a query selects: the newest `limit` (oldest first), or with `after`, the next
/// `limit` changes in change order.
pub(super) async fn query(t: &Tx<'_>, q: &LogQuery) -> StoreResult<Vec<LogRecord>> {
    let mut sql = format!("{} WHERE TRUE", sql::LOG_COLUMNS.trim_end());
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut arg = |sql: &mut String, text: &str, v: Box<dyn ToSql + Sync + Send>| {
        args.push(v);
        sql.push_str(&text.replace('?', &format!("${}", args.len())));
    };
    if let Some(rule) = &q.rule {
        arg(&mut sql, " AND p.rule = ?", Box::new(rule.clone()));
    }
    if let Some(status) = q.status {
        arg(&mut sql, " AND p.status = ?", Box::new(status.as_str()));
    }
    if let Some(since) = q.since {
        arg(&mut sql, " AND p.created_at >= ?", Box::new(since));
    }
    if let Some(ids) = &q.ids {
        arg(&mut sql, " AND p.id = ANY(?)", Box::new(ids.clone()));
    }
    let ascending = q.after.is_some();
    if let Some((seq, id)) = q.after {
        arg(&mut sql, " AND (c.seq, p.id) > (?", Box::new(seq));
        arg(&mut sql, ", ?) ORDER BY c.seq ASC, p.id ASC", Box::new(id));
    } else {
        if let Some(before) = q.before {
            arg(&mut sql, " AND p.id < ?", Box::new(before));
        }
        sql.push_str(" ORDER BY p.id DESC");
    }
    let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
    arg(&mut sql, " LIMIT ?", Box::new(limit));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = t.query_dynamic(&sql, &params, "query log").await?;
    let mut out = rows.iter().map(record).collect::<StoreResult<Vec<_>>>()?;
    if !ascending {
        out.reverse();
    }
    Ok(out)
}

pub(super) async fn cursor(t: &Tx<'_>) -> StoreResult<i64> {
    col(
        &t.query_one(sql::LOG_CURSOR, &[], "read log cursor").await?,
        0,
    )
}

pub(super) async fn requests(
    t: &Tx<'_>,
    since: Option<Ms>,
    before: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<RequestRecord>> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let rows = t
        .query(
            sql::REQUESTS_LIST,
            &[&since.unwrap_or(0), &limit, &before.unwrap_or(i64::MAX)],
            "query requests",
        )
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(RequestRecord {
                id: col(r, 0)?,
                batch_id: col(r, 1)?,
                lane: col(r, 2)?,
                kind: col(r, 3)?,
                attempt: col::<i64>(r, 4)?.try_into().unwrap_or(0),
                targets: col::<i64>(r, 5)?.try_into().unwrap_or(0),
                started_at: col(r, 6)?,
                finished_at: col(r, 7)?,
                outcome: col(r, 8)?,
                http_status: col::<Option<i64>>(r, 9)?.and_then(|s| s.try_into().ok()),
                request_id: col(r, 10)?,
                task_id: col(r, 11)?,
                error: col(r, 12)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

pub(super) async fn depths(t: &Tx<'_>) -> StoreResult<Vec<LaneDepth>> {
    let mut out: std::collections::BTreeMap<String, LaneDepth> = Default::default();
    for r in t.query(sql::DEPTH_PENDING, &[], "queue depth").await? {
        let lane: String = col(&r, 0)?;
        let d = out.entry(lane.clone()).or_insert_with(|| LaneDepth {
            lane,
            ..Default::default()
        });
        d.pending = col::<i64>(&r, 1)?.max(0) as u64;
        d.oldest_pending_at = col(&r, 2)?;
    }
    for r in t.query(sql::DEPTH_BATCHES, &[], "queue depth").await? {
        let lane: String = col(&r, 0)?;
        let state: String = col(&r, 1)?;
        let n = col::<i64>(&r, 2)?.max(0) as u64;
        let d = out.entry(lane.clone()).or_insert_with(|| LaneDepth {
            lane,
            ..Default::default()
        });
        match state.as_str() {
            "ready" => d.waiting_batches = n,
            "inflight" => d.inflight_batches = n,
            _ => d.dead_batches = n,
        }
    }
    Ok(out.into_values().collect())
}

pub(super) async fn fanout_depths(t: &Tx<'_>) -> StoreResult<Vec<FanoutDepth>> {
    let mut out = Vec::new();
    for r in t.query(sql::DEPTH_FANOUT, &[], "fan-out depth").await? {
        out.push(FanoutDepth {
            account: col(&r, 0)?,
            targets: col::<i64>(&r, 1)?.max(0) as u64,
            oldest_at: col(&r, 2)?,
        });
    }
    Ok(out)
}

/// Deletes up to about `max_rows` rows of what is finished and older than `before`: succeeded
/// and dead batches with their jobs, records whose every job is gone, and old request
/// records. Returns how many rows went.
pub(super) async fn prune(t: &Tx<'_>, before: Ms, max_rows: usize) -> StoreResult<u64> {
    let limit = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX);
    let mut n = 0u64;
    let batches = t
        .query(sql::PRUNE_BATCHES, &[&before, &limit], "prune batches")
        .await?;
    for r in batches {
        let id: i64 = col(&r, 0)?;
        let jobs: Vec<i64> = col(&r, 1)?;
        n += t.execute(sql::JOB_DELETE, &[&jobs], "prune jobs").await?;
        n += t
            .execute(sql::BATCH_DELETE, &[&id], "prune batches")
            .await?;
    }
    n += t
        .execute(sql::PRUNE_RECORDS, &[&before, &limit], "prune records")
        .await?;
    n += t
        .execute(sql::PRUNE_REQUESTS, &[&before, &limit], "prune requests")
        .await?;
    n += t
        .execute(sql::PRUNE_HOLDS, &[&before, &limit], "prune holds")
        .await?;
    t.execute(sql::PRUNE_QUOTA, &[], "prune quota").await?;
    Ok(n)
}

/// Deletes up to `max_rows` change positions no record needs any more; returns how many
/// went. One per writing transaction, far more than records: under sustained writes a fixed
/// time per retention pass fell behind them, so the caller steps until none is left.
pub(super) async fn prune_positions(t: &Tx<'_>, max_rows: usize) -> StoreResult<u64> {
    let limit = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX);
    t.execute(sql::PRUNE_CHANGES, &[&limit], "prune change positions")
        .await
}
