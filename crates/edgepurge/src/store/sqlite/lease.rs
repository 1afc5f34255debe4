//! Lane leases on the store's clock, with fencing tokens ([`crate::queue::lease`]).

use super::finish::update_batch;
use super::records::batch_changed;
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::queue::{finish as fin, lease};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn lease_row(
    conn: &Connection,
    lane: &str,
) -> StoreResult<Option<(i64, lease::LeaseRow)>> {
    conn.prepare_cached(sql::LEASE_GET)
        .and_then(|mut s| {
            s.query_row([lane], |r| {
                Ok((
                    r.get(0)?,
                    lease::LeaseRow {
                        owner: r.get(1)?,
                        until: r.get(2)?,
                        token: r.get(3)?,
                    },
                ))
            })
            .optional()
        })
        .map_err(db_err("read lane lease"))
}

pub(super) fn acquire_lane(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane: &str,
    owner: &str,
    store_now: Ms,
    ttl_ms: i64,
) -> StoreResult<Option<Lease>> {
    ctx.lane_id(conn, lane, true)?;
    let Some((lane_id, row)) = lease_row(conn, lane)? else {
        return Err(StoreError::Unavailable(format!("lane {lane} not created")));
    };
    let (lease, took_over) = match lease::decide(Some(&row), owner, store_now, ttl_ms) {
        lease::LeaseDecision::Refuse { .. } => return Ok(None),
        lease::LeaseDecision::Renew(l) => (l, false),
        lease::LeaseDecision::Take(l) => (l, true),
    };
    conn.prepare_cached(sql::LEASE_SET)
        .and_then(|mut s| s.execute(params![lane_id, owner, lease.until, lease.token]))
        .map_err(db_err("write lane lease"))?;
    if took_over {
        reclaim_inflight(conn, ctx, lane_id, store_now)?;
    }
    Ok(Some(lease))
}

/// Batches left in flight under an older token are resent now: their sender stopped (crash,
/// kill, lost lease) before it recorded an answer.
fn reclaim_inflight(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    lane_id: i64,
    now: Ms,
) -> StoreResult<()> {
    let ids: Vec<i64> = conn
        .prepare_cached(sql::BATCHES_INFLIGHT)
        .and_then(|mut s| s.query_map([lane_id], |r| r.get(0))?.collect())
        .map_err(db_err("find in-flight batches"))?;
    for id in ids {
        update_batch(conn, id, &fin::reclaim())?;
        batch_changed(conn, ctx, id, now)?;
    }
    Ok(())
}

pub(super) fn release_lane(conn: &Connection, lane: &str, owner: &str) -> StoreResult<()> {
    conn.prepare_cached(sql::LEASE_RELEASE)
        .and_then(|mut s| s.execute(params![lane, owner]))
        .map_err(db_err("release lane"))?;
    Ok(())
}
