//! The bucket poller's listings.

use super::sql;
use super::tx::{col, Tx};
use crate::store::*;

pub(super) async fn load(t: &Tx<'_>, source: &str) -> StoreResult<Option<Listing>> {
    let Some(r) = t
        .query_opt(sql::LISTING_SCOPE, &[&source], "read listing scope")
        .await?
    else {
        return Ok(None);
    };
    let scope: String = col(&r, 0)?;
    let objects = t
        .query(sql::LISTING_OBJECTS, &[&source], "read listing")
        .await?
        .iter()
        .map(|r| {
            Ok(ListedObject {
                key: col(r, 0)?,
                etag: col(r, 1)?,
                size: u64::try_from(col::<i64>(r, 2)?).unwrap_or(0),
                modified: col(r, 3)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(Listing { scope, objects }))
}

pub(super) async fn save(
    t: &Tx<'_>,
    source: &str,
    scope: &str,
    changes: &ListingChanges,
    now: Ms,
) -> StoreResult<()> {
    if changes.reset {
        t.execute(sql::LISTING_CLEAR, &[&source], "clear listing")
            .await?;
    }
    t.execute(
        sql::LISTING_SCOPE_SET,
        &[&source, &scope, &now],
        "save listing scope",
    )
    .await?;
    // In slices, so one statement's parameters stay small.
    for chunk in changes.upsert.chunks(5_000) {
        let keys: Vec<&str> = chunk.iter().map(|o| o.key.as_str()).collect();
        let etags: Vec<&str> = chunk.iter().map(|o| o.etag.as_str()).collect();
        let sizes: Vec<i64> = chunk
            .iter()
            .map(|o| i64::try_from(o.size).unwrap_or(i64::MAX))
            .collect();
        let modified: Vec<&str> = chunk.iter().map(|o| o.modified.as_str()).collect();
        t.execute(
            sql::LISTING_UPSERT,
            &[&source, &keys, &etags, &sizes, &modified],
            "save listing",
        )
        .await?;
    }
    for chunk in changes.remove.chunks(5_000) {
        t.execute(sql::LISTING_REMOVE, &[&source, &chunk], "save listing")
            .await?;
    }
    Ok(())
}
