//! `edgepurge retry`: dead batches queued again; and failed batches made due at once when
//! their provider answers again after an outage.

use super::finish::update_batch;
use super::ids::parse_ids;
use super::records::batch_changed;
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::finish as fin;
use crate::store::*;
use rusqlite::{Connection, OptionalExtension};

pub(super) fn retry_dead(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    filter: &RetryFilter,
    now: Ms,
) -> StoreResult<u64> {
    let lanes: Vec<Option<i64>> = match &filter.lanes {
        None => vec![None],
        Some(names) => {
            let mut ids = Vec::new();
            for n in names {
                if let Some(id) = ctx.lane_id(conn, n, false)? {
                    ids.push(Some(id));
                }
            }
            ids
        }
    };
    let mut n = 0;
    for lane in lanes {
        let dead: Vec<(i64, String, Option<String>)> = conn
            .prepare_cached(sql::BATCHES_DEAD)
            .and_then(|mut s| {
                s.query_map([lane], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(db_err("find dead batches"))?;
        for (id, purges, last_error) in dead {
            let purge_ids = parse_ids(&purges)?;
            if let Some(rule) = &filter.rule {
                if !holds_rule(conn, &purge_ids, rule)? {
                    continue;
                }
            }
            update_batch(conn, id, &fin::requeue(now, last_error.as_deref()))?;
            batch_changed(conn, ctx, id, now)?;
            n += 1;
        }
    }
    Ok(n)
}

pub(super) fn release_held(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane: &str,
    now: Ms,
) -> StoreResult<u64> {
    let Some(lane_id) = ctx.lane_id(conn, lane, false)? else {
        return Ok(0);
    };
    conn.prepare_cached(sql::BATCHES_RELEASE_HELD)
        .and_then(|mut s| s.execute(rusqlite::params![lane_id, now]))
        .map(|n| n as u64)
        .map_err(db_err("release held batches"))
}

fn holds_rule(conn: &Connection, purge_ids: &[i64], rule: &str) -> StoreResult<bool> {
    let mut stmt = conn
        .prepare_cached(sql::PURGE_RULE)
        .map_err(db_err("read record rule"))?;
    for id in purge_ids {
        let r: Option<Option<String>> = stmt
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(db_err("read record rule"))?;
        if r.flatten().as_deref() == Some(rule) {
            return Ok(true);
        }
    }
    Ok(false)
}
