//! Read connections: a small pool, each read on the blocking pool, so reads never wait for the
//! writer (WAL) nor for one another beyond the pool's size.

use super::{open_conn, SqliteOptions};
use crate::store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::Semaphore;

pub(super) struct Readers {
    path: PathBuf,
    opts: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
}

impl Readers {
    pub fn new(path: PathBuf, opts: SqliteOptions) -> Readers {
        let size = opts.readers.max(1);
        Readers {
            path,
            opts,
            idle: Mutex::new(Vec::with_capacity(size)),
            slots: Semaphore::new(size),
        }
    }

    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put_idle(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// Runs `f` on a read connection (opened on first use).
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store readers closed".into()))?;
        let idle = self.take_idle();
        let path = self.path.clone();
        let opts = self.opts.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let conn = match idle {
                Some(c) => c,
                None => open_conn(&path, &opts, true)?,
            };
            let out = f(&conn);
            Ok::<_, StoreError>((conn, out))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store read task failed: {e}")))??;
        self.put_idle(conn);
        out
    }
}
