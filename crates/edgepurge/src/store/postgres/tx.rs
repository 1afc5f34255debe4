//! Transactions on a pooled connection: prepared statements cached per connection, errors
//! mapped to [`StoreError`], and the change position stamped at commit when the transaction
//! changed log records.

use super::sql;
use crate::store::{StoreError, StoreResult};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

/// Marks a [`StoreError::Busy`] that came from two transactions in conflict (deadlock or
/// serialization failure): the whole transaction is run again.
const CONFLICT: &str = "(transactions in conflict; run again)";

/// Parameters of a statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// What failed, said plainly: the server's message (with its code) or the connection's.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let line = s.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// Maps a driver error: conflicts are retried, everything else says the database is
/// unavailable (the caller answers 503 and the sender retries).
pub(super) fn pg_err(context: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| {
        let code = e.code();
        if code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
            || code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
        {
            return StoreError::Busy(format!("{context}: {} {CONFLICT}", describe(&e)));
        }
        StoreError::Unavailable(format!("{context}: {}", describe(&e)))
    }
}

pub(super) fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Busy(m) if m.ends_with(CONFLICT))
}

/// A column, or `Corrupt` naming it.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

/// `{1,2,3}`: an id list as array text, for `unnest` of lists of lists.
pub(super) fn array_text(ids: &[i64]) -> String {
    let mut s = String::with_capacity(2 + ids.len() * 8);
    s.push('{');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push('}');
    s
}

pub(super) struct Tx<'c> {
    t: deadpool_postgres::Transaction<'c>,
    /// Log records were changed: the transaction takes a change position at commit.
    pub touched: bool,
}

impl<'c> Tx<'c> {
    pub fn new(t: deadpool_postgres::Transaction<'c>) -> Tx<'c> {
        Tx { t, touched: false }
    }

    async fn stmt(&self, sql: &str, what: &str) -> StoreResult<tokio_postgres::Statement> {
        self.t.prepare_cached(sql).await.map_err(pg_err(what))
    }

    pub async fn query(&self, sql: &str, params: &Params<'_>, what: &str) -> StoreResult<Vec<Row>> {
        let s = self.stmt(sql, what).await?;
        self.t.query(&s, params).await.map_err(pg_err(what))
    }

    pub async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
        what: &str,
    ) -> StoreResult<Option<Row>> {
        let s = self.stmt(sql, what).await?;
        self.t.query_opt(&s, params).await.map_err(pg_err(what))
    }

    pub async fn query_one(&self, sql: &str, params: &Params<'_>, what: &str) -> StoreResult<Row> {
        let s = self.stmt(sql, what).await?;
        self.t.query_one(&s, params).await.map_err(pg_err(what))
    }

    pub async fn execute(&self, sql: &str, params: &Params<'_>, what: &str) -> StoreResult<u64> {
        let s = self.stmt(sql, what).await?;
        self.t.execute(&s, params).await.map_err(pg_err(what))
    }

    /// Several statements in one (schema steps).
    pub async fn batch(&self, sql: &str, what: &str) -> StoreResult<()> {
        self.t.batch_execute(sql).await.map_err(pg_err(what))
    }

    /// A statement built at run time (log queries), not cached.
    pub async fn query_dynamic(
        &self,
        sql: &str,
        params: &Params<'_>,
        what: &str,
    ) -> StoreResult<Vec<Row>> {
        self.t.query(sql, params).await.map_err(pg_err(what))
    }

    /// Commits; a transaction that changed log records first takes the next change position
    /// under a lock held through the commit, so positions follow commit order.
    pub async fn commit(self) -> StoreResult<()> {
        if self.touched {
            self.execute(sql::CHANGE_LOCK, &[], "order the change")
                .await?;
            self.execute(sql::CHANGE_STAMP, &[], "stamp the change")
                .await?;
        }
        self.t.commit().await.map_err(pg_err("commit"))
    }
}

pub(super) fn parse_kind(s: &str) -> StoreResult<edgepurge_core::TargetKind> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("target kind: {e}")))
}

pub(super) fn parse_state(s: &str) -> StoreResult<crate::queue::BatchState> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("batch: {e}")))
}

pub(super) fn parse_status(s: &str) -> StoreResult<crate::queue::Status> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("status: {e}")))
}
