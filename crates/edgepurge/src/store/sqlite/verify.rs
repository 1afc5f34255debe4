//! The purge lifecycle, verification: records whose CDN copy is to be checked, taken for a
//! lease so one process checks each, and what checking found.

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
    due_ids_by(
        conn,
        sql::VERIFY_DUE,
        "read records to verify",
        provider,
        now,
        settled_before,
        limit,
    )
}

/// Ids of records a lifecycle step's `due` query finds (verification's, warming's).
pub(super) fn due_ids_by(
    conn: &Connection,
    due: &'static str,
    what: &'static str,
    provider: &str,
    now: Ms,
    settled_before: Ms,
    limit: usize,
) -> StoreResult<Vec<i64>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(due)
        .and_then(|mut s| {
            s.query_map(params![provider, now, settled_before, limit], |r| r.get(0))?
                .collect()
        })
        .map_err(db_err(what))
}

/// Takes the records of `ids` still due at `now` until `until`.
pub(super) fn take(
    conn: &Connection,
    ids: &[i64],
    now: Ms,
    until: Ms,
) -> StoreResult<Vec<DueVerification>> {
    let mut stmt = conn
        .prepare_cached(sql::VERIFY_TAKE)
        .map_err(db_err("take records to verify"))?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let row = stmt
            .query_row(params![id, now, until], |r| {
                Ok((
                    DueVerification {
                        id: r.get(0)?,
                        event: EventInfo {
                            format: r.get(1)?,
                            name: r.get(2)?,
                            bucket: r.get(3)?,
                            key: r.get(4)?,
                            id: r.get(5)?,
                            etag: r.get(6)?,
                            size: r.get::<_, Option<i64>>(7)?.and_then(|s| s.try_into().ok()),
                        },
                        rule: r.get(8)?,
                        provider: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                        targets: Vec::new(),
                        status: Status::Queued,
                        completed_at: r.get(12)?,
                        error: r.get(13)?,
                        round: r.get::<_, i64>(14)?.try_into().unwrap_or(u32::MAX),
                        warm: r.get(15)?,
                    },
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ))
            })
            .optional()
            .map_err(db_err("take records to verify"))?;
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

pub(super) fn newer(conn: &Connection, of: &DueVerification) -> StoreResult<Option<i64>> {
    let Some(rule) = &of.rule else {
        return Ok(None);
    };
    conn.prepare_cached(sql::VERIFY_NEWER)
        .and_then(|mut s| {
            s.query_row(
                params![rule, of.id, of.provider, of.event.bucket, of.event.key],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(db_err("read newer records"))
}

pub(super) fn note(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    updates: &[VerifyUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    let mut stmt = conn
        .prepare_cached(sql::VERIFY_UPDATE)
        .map_err(db_err("record verification"))?;
    for u in updates {
        // Not decided: taken again when its lease ends.
        if u.verified == Verified::Pending {
            continue;
        }
        let row: Option<(i64, String, Option<Ms>, Option<String>)> = stmt
            .query_row(
                params![u.id, u.verified.as_str(), u.note, now, ctx.seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db_err("record verification"))?;
        if let Some((id, status, completed_at, error)) = row {
            let status = parse_status(&status)?;
            receipt
                .records
                .push(RecordChange::of(id, status, completed_at, error.as_deref()));
        }
    }
    Ok(receipt)
}
