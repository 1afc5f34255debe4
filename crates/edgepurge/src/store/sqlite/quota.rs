//! Daily quota counters per lane, kind and quota day.

use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn set_quota_day(conn: &Connection, batch: i64, day: Option<i64>) -> StoreResult<()> {
    conn.prepare_cached(sql::BATCH_SET_QUOTA_DAY)
        .and_then(|mut s| s.execute(params![batch, day]))
        .map_err(db_err("set quota day"))?;
    Ok(())
}

pub(super) fn add_quota(
    conn: &Connection,
    lane: &str,
    kind: TargetKind,
    day: i64,
    n: i64,
) -> StoreResult<()> {
    conn.prepare_cached(sql::QUOTA_ADD)
        .and_then(|mut s| s.execute(params![lane, kind.as_str(), day, n]))
        .map_err(db_err("update quota"))?;
    Ok(())
}

pub(super) fn note_quota_used(
    conn: &Connection,
    lane: &str,
    kind: TargetKind,
    day: i64,
    used: u64,
) -> StoreResult<()> {
    let used = i64::try_from(used).unwrap_or(i64::MAX);
    conn.prepare_cached(sql::QUOTA_RAISE)
        .and_then(|mut s| s.execute(params![lane, kind.as_str(), day, used]))
        .map_err(db_err("note quota"))?;
    Ok(())
}

pub(super) fn quota_used(
    conn: &Connection,
    lane: &str,
    kind: TargetKind,
    day: i64,
) -> StoreResult<u64> {
    let used: Option<i64> = conn
        .prepare_cached(sql::QUOTA_GET)
        .and_then(|mut s| {
            s.query_row(params![lane, kind.as_str(), day], |r| r.get(0))
                .optional()
        })
        .map_err(db_err("read quota"))?;
    Ok(used.unwrap_or(0).max(0) as u64)
}
