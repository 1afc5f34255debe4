//! The purge lifecycle, warming (as the SQLite backend): records whose purged URLs are to be
//! prefetched, taken for a lease (`FOR UPDATE SKIP LOCKED`) so one node warms each, and what
//! warming did.

use super::sql;
use super::tx::{col, parse_status, Tx};
use crate::store::*;

pub(super) async fn take(
    t: &Tx<'_>,
    provider: &str,
    now: Ms,
    settled_before: Ms,
    until: Ms,
    limit: usize,
) -> StoreResult<Vec<DueWarming>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    t.query(
        sql::WARM_TAKE,
        &[&provider, &now, &settled_before, &limit, &until],
        "take records to warm",
    )
    .await?
    .iter()
    .map(|r| {
        let id: i64 = col(r, 0)?;
        let targets: String = col(r, 3)?;
        let status: String = col(r, 4)?;
        Ok(DueWarming {
            id,
            event: col(r, 1)?,
            provider: col::<Option<String>>(r, 2)?.unwrap_or_default(),
            targets: serde_json::from_str(&targets)
                .map_err(|e| StoreError::Corrupt(format!("record {id} targets: {e}")))?,
            status: parse_status(&status)?,
            completed_at: col(r, 5)?,
            error: col(r, 6)?,
            verified: col::<Option<String>>(r, 7)?
                .as_deref()
                .and_then(Verified::parse),
        })
    })
    .collect()
}

pub(super) async fn note(
    t: &mut Tx<'_>,
    updates: &[WarmUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    for u in updates {
        // Not decided: taken again when its lease ends.
        if u.warmed == Warmed::Pending {
            continue;
        }
        // PostgreSQL text cannot hold NUL (a provider's message may): kept as U+FFFD.
        let clean = |s: &Option<String>| s.as_ref().map(|n| n.replace('\0', "\u{FFFD}"));
        let (note, task) = (clean(&u.note), clean(&u.task_id));
        let row = t
            .query_opt(
                sql::WARM_UPDATE,
                &[&u.id, &u.warmed.as_str(), &note, &task, &now],
                "record warming",
            )
            .await?;
        if let Some(r) = row {
            t.touched = true;
            let status: String = col(&r, 1)?;
            let error: Option<String> = col(&r, 3)?;
            receipt.records.push(RecordChange::of(
                col(&r, 0)?,
                parse_status(&status)?,
                col(&r, 2)?,
                error.as_deref(),
            ));
        }
    }
    Ok(receipt)
}
