//! The purge lifecycle, warming: records whose purged URLs are to be prefetched, taken for a
//! lease so one process warms each, and what warming did.

use super::ids::parse_status;
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

/// Ids of records due (a read: most rounds find none, and then nothing is written).
pub(super) fn due_ids(
    conn: &Connection,
    provider: &str,
    now: Ms,
    settled_before: Ms,
    limit: usize,
) -> StoreResult<Vec<i64>> {
    super::verify::due_ids_by(
        conn,
        sql::WARM_DUE,
        "read records to warm",
        provider,
        now,
        settled_before,
        limit,
    )
}

/// Takes the records of `ids` still due at `now` until `until`.
pub(super) fn take(
    conn: &Connection,
    ids: &[i64],
    now: Ms,
    until: Ms,
) -> StoreResult<Vec<DueWarming>> {
    let mut stmt = conn
        .prepare_cached(sql::WARM_TAKE)
        .map_err(db_err("take records to warm"))?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let row = stmt
            .query_row(params![id, now, until], |r| {
                Ok((
                    DueWarming {
                        id: r.get(0)?,
                        event: r.get(1)?,
                        provider: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        targets: Vec::new(),
                        status: Status::Queued,
                        completed_at: r.get(5)?,
                        error: r.get(6)?,
                        verified: r
                            .get::<_, Option<String>>(7)?
                            .as_deref()
                            .and_then(Verified::parse),
                    },
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()
            .map_err(db_err("take records to warm"))?;
        // Taken by another process since it was read.
        let Some((mut due, targets, status)) = row else {
            continue;
        };
        due.targets = serde_json::from_str(&targets)
            .map_err(|e| StoreError::Corrupt(format!("record {id} targets: {e}")))?;
        due.status = parse_status(&status)?;
        out.push(due);
    }
    Ok(out)
}

pub(super) fn note(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    updates: &[WarmUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    let mut stmt = conn
        .prepare_cached(sql::WARM_UPDATE)
        .map_err(db_err("record warming"))?;
    for u in updates {
        // Not decided: taken again when its lease ends.
        if u.warmed == Warmed::Pending {
            continue;
        }
        let row: Option<(i64, String, Option<Ms>, Option<String>)> = stmt
            .query_row(
                params![u.id, u.warmed.as_str(), u.note, u.task_id, now, ctx.seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db_err("record warming"))?;
        if let Some((id, status, completed_at, error)) = row {
            let status = parse_status(&status)?;
            receipt
                .records
                .push(RecordChange::of(id, status, completed_at, error.as_deref()));
        }
    }
    Ok(receipt)
}
