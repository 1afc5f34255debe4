//! Lane leases on the database's clock, with fencing tokens ([`crate::queue::lease`]).

use super::finish::update_batch;
use super::records::batch_changed;
use super::sql;
use super::tx::{col, Tx};
use crate::queue::{finish as fin, lease};
use crate::store::*;

/// The lane's id, lease and the database's time now (ms), with the lane row locked: for
/// update when `exclusive` (taking, renewing), shared otherwise (claiming).
pub(super) async fn lease_row(
    t: &Tx<'_>,
    lane: &str,
    exclusive: bool,
) -> StoreResult<Option<(i64, lease::LeaseRow, Ms)>> {
    let stmt = if exclusive {
        sql::LEASE_GET
    } else {
        sql::LEASE_GET_SHARED
    };
    let Some(r) = t.query_opt(stmt, &[&lane], "read lane lease").await? else {
        return Ok(None);
    };
    Ok(Some((
        col(&r, 0)?,
        lease::LeaseRow {
            owner: col(&r, 1)?,
            until: col(&r, 2)?,
            token: col(&r, 3)?,
        },
        col(&r, 4)?,
    )))
}

pub(super) async fn acquire_lane(
    t: &mut Tx<'_>,
    lane: &str,
    owner: &str,
    ttl_ms: i64,
) -> StoreResult<Option<Lease>> {
    let Some((lane_id, row, store_now)) = lease_row(t, lane, true).await? else {
        return Err(StoreError::Unavailable(format!("lane {lane} not created")));
    };
    let (lease, took_over) = match lease::decide(Some(&row), owner, store_now, ttl_ms) {
        lease::LeaseDecision::Refuse { .. } => return Ok(None),
        lease::LeaseDecision::Renew(l) => (l, false),
        lease::LeaseDecision::Take(l) => (l, true),
    };
    t.execute(
        sql::LEASE_SET,
        &[&lane_id, &owner, &lease.until, &lease.token],
        "write lane lease",
    )
    .await?;
    if took_over {
        // Batches left in flight under an older token are resent now: their sender stopped
        // (crash, kill, lost lease) before it recorded an answer.
        let ids: Vec<i64> = t
            .query(sql::BATCHES_INFLIGHT, &[&lane_id], "find in-flight batches")
            .await?
            .iter()
            .map(|r| col(r, 0))
            .collect::<StoreResult<_>>()?;
        for id in ids {
            update_batch(t, id, &fin::reclaim()).await?;
            batch_changed(t, id, store_now).await?;
        }
    }
    Ok(Some(lease))
}

pub(super) async fn release_lane(t: &Tx<'_>, lane: &str, owner: &str) -> StoreResult<()> {
    t.execute(sql::LEASE_RELEASE, &[&lane, &owner], "release lane")
        .await
        .map(drop)
}
