//! `edgepurge retry`: dead batches queued again; and failed batches made due at once when
//! their provider answers again after an outage.

use super::finish::update_batch;
use super::lanes::find;
use super::records::batch_changed;
use super::sql;
use super::tx::{col, Tx};
use crate::queue::finish as fin;
use crate::store::*;

pub(super) async fn retry_dead(t: &mut Tx<'_>, filter: &RetryFilter, now: Ms) -> StoreResult<u64> {
    let lanes: Vec<Option<i64>> = match &filter.lanes {
        None => vec![None],
        Some(names) => {
            let mut ids = Vec::new();
            for n in names {
                if let Some(id) = find(t, n).await? {
                    ids.push(Some(id));
                }
            }
            ids
        }
    };
    let mut n = 0;
    for lane in lanes {
        let dead = t
            .query(sql::BATCHES_DEAD, &[&lane], "find dead batches")
            .await?;
        for r in dead {
            let id: i64 = col(&r, 0)?;
            let purge_ids: Vec<i64> = col(&r, 1)?;
            let last_error: Option<String> = col(&r, 2)?;
            if let Some(rule) = &filter.rule {
                let holds = t
                    .query_opt(sql::PURGE_RULES, &[&purge_ids, rule], "read record rule")
                    .await?
                    .is_some();
                if !holds {
                    continue;
                }
            }
            update_batch(t, id, &fin::requeue(now, last_error.as_deref())).await?;
            batch_changed(t, id, now).await?;
            n += 1;
        }
    }
    Ok(n)
}

pub(super) async fn release_held(t: &Tx<'_>, lane: &str, now: Ms) -> StoreResult<u64> {
    let Some(lane_id) = find(t, lane).await? else {
        return Ok(0);
    };
    t.execute(
        sql::BATCHES_RELEASE_HELD,
        &[&lane_id, &now],
        "release held batches",
    )
    .await
}
