//! The purge lifecycle, verification (as the SQLite backend): records whose CDN copy is to be
//! checked, taken for a lease (`FOR UPDATE SKIP LOCKED`) so one node checks each, and what
//! checking found.

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
) -> StoreResult<Vec<DueVerification>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    t.query(
        sql::VERIFY_TAKE,
        &[&provider, &now, &settled_before, &limit, &until],
        "take records to verify",
    )
    .await?
    .iter()
    .map(|r| {
        let id: i64 = col(r, 0)?;
        let targets: String = col(r, 10)?;
        let status: String = col(r, 11)?;
        Ok(DueVerification {
            id,
            event: EventInfo {
                format: col(r, 1)?,
                name: col(r, 2)?,
                bucket: col(r, 3)?,
                key: col(r, 4)?,
                id: col(r, 5)?,
                etag: col(r, 6)?,
                size: col::<Option<i64>>(r, 7)?.and_then(|s| s.try_into().ok()),
            },
            rule: col(r, 8)?,
            provider: col::<Option<String>>(r, 9)?.unwrap_or_default(),
            targets: serde_json::from_str(&targets)
                .map_err(|e| StoreError::Corrupt(format!("record {id} targets: {e}")))?,
            status: parse_status(&status)?,
            completed_at: col(r, 12)?,
            error: col(r, 13)?,
            round: col::<i64>(r, 14)?.try_into().unwrap_or(u32::MAX),
            warm: col(r, 15)?,
        })
    })
    .collect()
}

pub(super) async fn newer(t: &Tx<'_>, of: &DueVerification) -> StoreResult<Option<i64>> {
    let Some(rule) = &of.rule else {
        return Ok(None);
    };
    let row = t
        .query_opt(
            sql::VERIFY_NEWER,
            &[rule, &of.id, &of.provider, &of.event.bucket, &of.event.key],
            "read newer records",
        )
        .await?;
    row.map(|r| col(&r, 0)).transpose()
}

pub(super) async fn note(
    t: &mut Tx<'_>,
    updates: &[VerifyUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    for u in updates {
        // Not decided: taken again when its lease ends.
        if u.verified == Verified::Pending {
            continue;
        }
        // PostgreSQL text cannot hold NUL (a cache's header may): kept as U+FFFD.
        let note = u.note.as_ref().map(|n| n.replace('\0', "\u{FFFD}"));
        let row = t
            .query_opt(
                sql::VERIFY_UPDATE,
                &[&u.id, &u.verified.as_str(), &note, &now],
                "record verification",
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
