//! Lane ids: a lane's row is made once, in a transaction of its own (an empty lane is
//! harmless), and its id remembered, so ingest and leases do not look it up every time.

use super::{in_tx, sql, tx::col, Inner};
use crate::store::*;
use std::collections::HashMap;

fn known(inner: &Inner, name: &str) -> Option<i64> {
    inner
        .lanes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .copied()
}

/// The ids of lanes `names`, created when missing.
pub(super) async fn lane_ids(inner: &Inner, names: &[&str]) -> StoreResult<HashMap<String, i64>> {
    let mut out = HashMap::with_capacity(names.len());
    let mut missing: Vec<String> = Vec::new();
    for n in names {
        match known(inner, n) {
            Some(id) => {
                out.insert((*n).to_owned(), id);
            }
            None if !missing.iter().any(|m| m == n) => missing.push((*n).to_owned()),
            None => {}
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let found: Vec<(String, i64)> = in_tx!(inner, "create lanes", |t| async {
        let mut found = Vec::with_capacity(missing.len());
        for name in &missing {
            t.execute(sql::LANE_CREATE, &[name], "create lane").await?;
            let row = t.query_one(sql::LANE_ID, &[name], "find lane").await?;
            found.push((name.clone(), col::<i64>(&row, 0)?));
        }
        Ok::<_, StoreError>(found)
    })?;
    let mut cache = inner.lanes.lock().unwrap_or_else(|p| p.into_inner());
    for (name, id) in found {
        cache.insert(name.clone(), id);
        out.insert(name, id);
    }
    Ok(out)
}

pub(super) async fn lane_id(inner: &Inner, name: &str) -> StoreResult<i64> {
    lane_ids(inner, &[name])
        .await?
        .get(name)
        .copied()
        .ok_or_else(|| StoreError::Unavailable(format!("lane {name} was not created")))
}

/// The id of an existing lane, within a transaction (`None`: no such lane).
pub(super) async fn find(t: &super::tx::Tx<'_>, name: &str) -> StoreResult<Option<i64>> {
    t.query_opt(sql::LANE_ID, &[&name], "find lane")
        .await?
        .map(|r| col::<i64>(&r, 0))
        .transpose()
}
