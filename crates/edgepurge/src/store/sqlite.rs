//! The embedded SQLite store (WAL).
//!
//! One writer thread owns the write connection. Ingest requests that arrive while it is busy
//! are committed together in one transaction (group commit), so a burst costs one fsync per
//! group rather than one per request. Reads use a second connection and never wait for the
//! writer. Several processes may share the file (a server and CLI commands): write
//! transactions take SQLite's write lock up front and wait for it up to `busy_timeout`.

mod log;
mod queue;
mod rules;

use super::*;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

const MIGRATIONS: &[&str] = &[include_str!("sqlite/001_init.sql")];

/// Most ingest requests committed in one transaction.
const MAX_GROUP: usize = 256;

/// How hard a commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged event survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints: survives a process crash, may lose the last commits on power
    /// loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    pub busy_timeout_ms: u64,
    /// Run every statement on the calling thread instead of the writer thread (no group
    /// commit). For tests in paused tokio time, where waiting on another thread would let
    /// the clock jump, and for one-shot tools.
    pub inline: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout_ms: 10_000,
            inline: false,
        }
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Cmd {
    Ingest {
        records: Vec<IngestRecord>,
        now: Ms,
        reply: oneshot::Sender<StoreResult<IngestReceipt>>,
    },
    Exec(Job),
}

enum Writer {
    Thread(Mutex<mpsc::Sender<Cmd>>),
    Inline(Mutex<Connection>),
}

pub struct SqliteStore {
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    inline: bool,
    path: PathBuf,
}

pub(crate) fn db_err(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{context}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(StoreError::Unavailable(format!(
                    "cannot create store {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                )));
            }
        }
        let mut writer = open_conn(path, &opts, false)?;
        migrate(&mut writer, path)?;
        let reader = open_conn(path, &opts, true)?;
        let writer = if opts.inline {
            Writer::Inline(Mutex::new(writer))
        } else {
            let (tx, rx) = mpsc::channel::<Cmd>();
            std::thread::Builder::new()
                .name("edgepurge-store".into())
                .spawn(move || writer_loop(writer, rx))
                .map_err(|e| StoreError::Unavailable(format!("cannot start store thread: {e}")))?;
            Writer::Thread(Mutex::new(tx))
        };
        Ok(SqliteStore {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            inline: opts.inline,
            path: path.to_owned(),
        })
    }

    /// Opens a store that must already exist (CLI commands that only read or edit).
    pub fn open_existing(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!(
                "no store at {}: start `edgepurge serve` once to create it, or pass --db PATH",
                path.display()
            )));
        }
        SqliteStore::open(path, opts)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, cmd: Cmd) -> StoreResult<()> {
        match &self.writer {
            Writer::Thread(tx) => {
                let tx = tx
                    .lock()
                    .map_err(|_| StoreError::Unavailable("store writer lock poisoned".into()))?;
                tx.send(cmd)
                    .map_err(|_| StoreError::Unavailable("store writer thread stopped".into()))
            }
            Writer::Inline(conn) => {
                let mut conn = conn
                    .lock()
                    .map_err(|_| StoreError::Unavailable("store writer lock poisoned".into()))?;
                match cmd {
                    Cmd::Exec(job) => job(&mut conn),
                    Cmd::Ingest {
                        records,
                        now,
                        reply,
                    } => commit_group(&mut conn, vec![(records, now, reply)]),
                }
                Ok(())
            }
        }
    }

    /// Runs `f` in one immediate write transaction on the writer thread.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Exec(Box::new(move |conn: &mut Connection| {
            let result = (|| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db_err("begin write"))?;
                let out = f(&tx)?;
                tx.commit().map_err(db_err("commit"))?;
                Ok(out)
            })();
            let _ = reply.send(result);
        })))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer thread stopped".into()))?
    }

    /// Runs `f` on the read connection in a blocking thread.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        if self.inline {
            let conn = reader
                .lock()
                .map_err(|_| StoreError::Unavailable("store reader lock poisoned".into()))?;
            return f(&conn);
        }
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .map_err(|_| StoreError::Unavailable("store reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store read task failed: {e}")))?
    }
}

fn open_conn(path: &Path, opts: &SqliteOptions, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let ctx = format!("open {}", path.display());
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Unavailable(format!("{ctx}: {e} (check the path and its permissions)"))
    })?;
    conn.busy_timeout(std::time::Duration::from_millis(opts.busy_timeout_ms))
        .map_err(db_err(&ctx))?;
    if !read_only {
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db_err(&ctx))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{ctx}: could not switch to WAL journal mode (got {mode}); is the file on a \
                 network filesystem?"
            )));
        }
    }
    let sync = match opts.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(db_err(&ctx))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let ctx = format!("migrate {}", path.display());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err(&ctx))?;
    let version: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(db_err(&ctx))?
        .try_into()
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "{} has schema version {version}, newer than this edgepurge knows ({}); upgrade \
             edgepurge",
            path.display(),
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(db_err(&ctx))?;
        tx.execute_batch(&format!("PRAGMA user_version={}", i + 1))
            .map_err(db_err(&ctx))?;
    }
    tx.commit().map_err(db_err(&ctx))
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Cmd>) {
    let mut deferred: Vec<Job> = Vec::new();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Cmd::Exec(job) => job(&mut conn),
            Cmd::Ingest {
                records,
                now,
                reply,
            } => {
                let mut group = vec![(records, now, reply)];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Cmd::Ingest {
                            records,
                            now,
                            reply,
                        }) => group.push((records, now, reply)),
                        Ok(Cmd::Exec(job)) => deferred.push(job),
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, group);
                for job in deferred.drain(..) {
                    job(&mut conn);
                }
            }
        }
    }
}

type IngestReply = oneshot::Sender<StoreResult<IngestReceipt>>;

/// Commits a group of ingest requests in one transaction; if that fails, commits each alone
/// so one request's failure is its own.
fn commit_group(conn: &mut Connection, group: Vec<(Vec<IngestRecord>, Ms, IngestReply)>) {
    let together = (|| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("begin ingest"))?;
        let mut receipts = Vec::with_capacity(group.len());
        for (records, now, _) in &group {
            receipts.push(queue::ingest(&tx, records, *now)?);
        }
        tx.commit().map_err(db_err("commit ingest"))?;
        Ok::<_, StoreError>(receipts)
    })();
    match together {
        Ok(receipts) => {
            for ((_, _, reply), receipt) in group.into_iter().zip(receipts) {
                let _ = reply.send(Ok(receipt));
            }
        }
        Err(_) if group.len() > 1 => {
            for (records, now, reply) in group {
                let one = (|| {
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(db_err("begin ingest"))?;
                    let receipt = queue::ingest(&tx, &records, now)?;
                    tx.commit().map_err(db_err("commit ingest"))?;
                    Ok(receipt)
                })();
                let _ = reply.send(one);
            }
        }
        Err(e) => {
            if let Some((_, _, reply)) = group.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn rules(&self) -> StoreResult<Vec<StoredRule>> {
        self.read(rules::list).await
    }

    async fn add_rule(&self, spec: RuleSpec, now: Ms) -> StoreResult<()> {
        self.write(move |tx| rules::add(tx, &spec, RuleOrigin::Cli, now))
            .await
    }

    async fn sync_config_rules(&self, specs: Vec<RuleSpec>, now: Ms) -> StoreResult<()> {
        self.write(move |tx| rules::sync_config(tx, &specs, now))
            .await
    }

    async fn delete_rule(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx| rules::delete(tx, &name)).await
    }

    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: Ms) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |tx| rules::set_enabled(tx, &name, enabled, now))
            .await
    }

    async fn rules_version(&self) -> StoreResult<i64> {
        self.read(rules::version).await
    }

    async fn ingest(&self, records: Vec<IngestRecord>, now: Ms) -> StoreResult<IngestReceipt> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Ingest {
            records,
            now,
            reply,
        })?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer thread stopped".into()))?
    }

    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        now: Ms,
        ttl_ms: i64,
    ) -> StoreResult<bool> {
        let (lane, owner) = (lane.to_owned(), owner.to_owned());
        self.write(move |tx| queue::acquire_lane(tx, &lane, &owner, now, ttl_ms))
            .await
    }

    async fn release_lane(&self, lane: &str, owner: &str) -> StoreResult<()> {
        let (lane, owner) = (lane.to_owned(), owner.to_owned());
        self.write(move |tx| queue::release_lane(tx, &lane, &owner))
            .await
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Claim> {
        self.write(move |tx| queue::claim(tx, &req)).await
    }

    async fn finish(&self, finish: Finish) -> StoreResult<()> {
        self.write(move |tx| queue::finish(tx, &finish)).await
    }

    async fn note_quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
        used: u64,
    ) -> StoreResult<()> {
        let lane = lane.to_owned();
        self.write(move |tx| queue::note_quota_used(tx, &lane, kind, day, used))
            .await
    }

    async fn quota_used(&self, lane: &str, kind: TargetKind, day: i64) -> StoreResult<u64> {
        let lane = lane.to_owned();
        self.read(move |c| queue::quota_used(c, &lane, kind, day))
            .await
    }

    async fn log(&self, query: LogQuery) -> StoreResult<Vec<LogRecord>> {
        self.read(move |c| log::query(c, &query)).await
    }

    async fn log_cursor(&self) -> StoreResult<i64> {
        self.read(|c| {
            c.query_row("SELECT v FROM meta WHERE k = 'seq'", [], |r| r.get(0))
                .map_err(db_err("read log cursor"))
        })
        .await
    }

    async fn requests(&self, since: Option<Ms>, limit: usize) -> StoreResult<Vec<RequestRecord>> {
        self.read(move |c| log::requests(c, since, limit)).await
    }

    async fn depths(&self) -> StoreResult<Vec<LaneDepth>> {
        self.read(log::depths).await
    }

    async fn retry_dead(
        &self,
        lane: Option<&str>,
        rule: Option<&str>,
        now: Ms,
    ) -> StoreResult<u64> {
        let lane = lane.map(str::to_owned);
        let rule = rule.map(str::to_owned);
        self.write(move |tx| queue::retry_dead(tx, lane.as_deref(), rule.as_deref(), now))
            .await
    }

    async fn prune(&self, before: Ms) -> StoreResult<u64> {
        self.write(move |tx| log::prune(tx, before)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(db_err("ping"))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
