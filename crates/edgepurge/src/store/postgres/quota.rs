//! Daily quota counters per lane, kind and quota day, shared by every node.

use super::sql;
use super::tx::{col, Tx};
use crate::store::*;

pub(super) async fn set_quota_day(t: &Tx<'_>, batch: i64, day: Option<i64>) -> StoreResult<()> {
    t.execute(sql::BATCH_SET_QUOTA_DAY, &[&batch, &day], "set quota day")
        .await
        .map(drop)
}

pub(super) async fn add_quota(
    t: &Tx<'_>,
    lane: &str,
    kind: TargetKind,
    day: i64,
    n: i64,
) -> StoreResult<()> {
    t.execute(
        sql::QUOTA_ADD,
        &[&lane, &kind.as_str(), &day, &n],
        "update quota",
    )
    .await
    .map(drop)
}

pub(super) async fn note_quota_used(
    t: &Tx<'_>,
    lane: &str,
    kind: TargetKind,
    day: i64,
    used: u64,
) -> StoreResult<()> {
    let used = i64::try_from(used).unwrap_or(i64::MAX);
    t.execute(
        sql::QUOTA_RAISE,
        &[&lane, &kind.as_str(), &day, &used],
        "note quota",
    )
    .await
    .map(drop)
}

pub(super) async fn quota_used(
    t: &Tx<'_>,
    lane: &str,
    kind: TargetKind,
    day: i64,
) -> StoreResult<u64> {
    let used: Option<i64> = match t
        .query_opt(sql::QUOTA_GET, &[&lane, &kind.as_str(), &day], "read quota")
        .await?
    {
        Some(r) => col(&r, 0)?,
        None => None,
    };
    Ok(used.unwrap_or(0).max(0) as u64)
}
