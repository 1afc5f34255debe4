//! The bucket poller's listings.

use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn load(conn: &Connection, source: &str) -> StoreResult<Option<Listing>> {
    let scope: Option<String> = conn
        .query_row(sql::LISTING_SCOPE, [source], |r| r.get(0))
        .optional()
        .map_err(db_err("read listing scope"))?;
    let Some(scope) = scope else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(sql::LISTING_OBJECTS)
        .map_err(db_err("read listing"))?;
    let rows = stmt
        .query_map([source], |r| {
            Ok(ListedObject {
                key: r.get(0)?,
                etag: r.get(1)?,
                size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                modified: r.get(3)?,
            })
        })
        .map_err(db_err("read listing"))?;
    let objects = rows
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err("read listing"))?;
    Ok(Some(Listing { scope, objects }))
}

pub(super) fn save(
    conn: &Connection,
    source: &str,
    scope: &str,
    changes: &ListingChanges,
    now: Ms,
) -> StoreResult<()> {
    if changes.reset {
        conn.execute(sql::LISTING_CLEAR, [source])
            .map_err(db_err("clear listing"))?;
    }
    conn.execute(sql::LISTING_SCOPE_SET, params![source, scope, now])
        .map_err(db_err("save listing scope"))?;
    let mut upsert = conn
        .prepare_cached(sql::LISTING_UPSERT)
        .map_err(db_err("save listing"))?;
    for o in &changes.upsert {
        let size = i64::try_from(o.size).unwrap_or(i64::MAX);
        upsert
            .execute(params![source, o.key, o.etag, size, o.modified])
            .map_err(db_err("save listing"))?;
    }
    let mut remove = conn
        .prepare_cached(sql::LISTING_REMOVE)
        .map_err(db_err("save listing"))?;
    for key in &changes.remove {
        remove
            .execute(params![source, key])
            .map_err(db_err("save listing"))?;
    }
    Ok(())
}
