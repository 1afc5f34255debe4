//! The purge lifecycle: provider tasks followed until they complete (as the SQLite backend).

use super::records::batch_changed;
use super::sql;
use super::tx::{col, Tx};
use crate::store::*;

pub(super) async fn due(
    t: &Tx<'_>,
    lane: &str,
    now: Ms,
    limit: usize,
) -> StoreResult<Vec<FollowedTask>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    t.query(
        sql::TASKS_DUE,
        &[&lane, &now, &limit],
        "read tasks to follow",
    )
    .await?
    .iter()
    .map(|r| {
        Ok(FollowedTask {
            batch_id: col(r, 0)?,
            task_id: col(r, 1)?,
            sent_at: col::<Option<i64>>(r, 2)?.unwrap_or(now),
            checks: col::<i64>(r, 3)?.try_into().unwrap_or(u32::MAX),
        })
    })
    .collect()
}

pub(super) async fn note(
    t: &mut Tx<'_>,
    updates: &[TaskUpdate],
    now: Ms,
) -> StoreResult<FinishReceipt> {
    let mut receipt = FinishReceipt::default();
    for u in updates {
        let (state, check_at, error, completed_at): (&str, Option<Ms>, Option<&str>, Option<Ms>) =
            match &u.progress {
                TaskProgress::Running { next_check_at } => {
                    ("follow", Some(*next_check_at), None, None)
                }
                TaskProgress::Completed { at } => ("done", None, None, Some(*at)),
                TaskProgress::Failed { error } => ("failed", None, Some(error.as_str()), None),
                TaskProgress::Abandoned { reason } => ("lost", None, Some(reason.as_str()), None),
            };
        // PostgreSQL text cannot hold NUL (a provider's page may): kept as U+FFFD.
        let error = error.map(|e| e.replace('\0', "\u{FFFD}"));
        let n = t
            .execute(
                sql::TASK_UPDATE,
                &[&u.batch_id, &state, &check_at, &error, &completed_at],
                "record task progress",
            )
            .await?;
        // Still running changes nothing a record shows.
        if n > 0 && state != "follow" {
            receipt
                .records
                .extend(batch_changed(t, u.batch_id, now).await?);
        }
    }
    Ok(receipt)
}
