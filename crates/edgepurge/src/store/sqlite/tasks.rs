//! The purge lifecycle: provider tasks followed until they complete.

use super::records::batch_changed;
use super::writer::TxCtx;
use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, Connection};

pub(super) fn due(
    conn: &Connection,
    lane: &str,
    now: Ms,
    limit: usize,
) -> StoreResult<Vec<FollowedTask>> {
    let lane_id: Option<i64> = conn
        .prepare_cached(sql::LANE_ID)
        .and_then(|mut s| {
            use rusqlite::OptionalExtension;
            s.query_row([lane], |r| r.get(0)).optional()
        })
        .map_err(db_err("read lane"))?;
    let Some(lane_id) = lane_id else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(sql::TASKS_DUE)
        .and_then(|mut s| {
            s.query_map(params![lane_id, now, limit], |r| {
                Ok(FollowedTask {
                    batch_id: r.get(0)?,
                    task_id: r.get(1)?,
                    sent_at: r.get::<_, Option<i64>>(2)?.unwrap_or(now),
                    checks: r.get::<_, i64>(3)?.try_into().unwrap_or(u32::MAX),
                })
            })?
            .collect()
        })
        .map_err(db_err("read tasks to follow"))
}

pub(super) fn note(
    conn: &Connection,
    ctx: &mut TxCtx<'_>,
    updates: &[TaskUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    let mut stmt = conn
        .prepare_cached(sql::TASK_UPDATE)
        .map_err(db_err("record task progress"))?;
    for u in updates {
        let (state, check_at, error, completed_at) = match &u.progress {
            TaskProgress::Running { next_check_at } => ("follow", Some(*next_check_at), None, None),
            TaskProgress::Completed { at } => ("done", None, None, Some(*at)),
            TaskProgress::Failed { error } => ("failed", None, Some(error.as_str()), None),
            TaskProgress::Abandoned { reason } => ("lost", None, Some(reason.as_str()), None),
        };
        let n = stmt
            .execute(params![u.batch_id, state, check_at, error, completed_at])
            .map_err(db_err("record task progress"))?;
        // Still running changes nothing a record shows.
        if n > 0 && state != "follow" {
            receipt
                .records
                .extend(batch_changed(conn, ctx, u.batch_id, now)?);
        }
    }
    Ok(receipt)
}
