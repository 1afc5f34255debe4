//! The embedded SQLite store (WAL).
//!
//! Writes go through one [`writer::Writer`] with group commit and a bounded queue; reads use a
//! small pool of read connections and never wait for the writer. Several processes may share
//! the file (a server and CLI commands): write transactions take SQLite's write lock up front
//! and wait for it up to `busy_timeout`. The queue's decisions come from [`crate::queue`];
//! this module only reads what they need and persists what they decide. Every statement is a
//! `.sql` file in `sql/`, every schema step one in `schema/`.
//!
//! The store's clock (for leases) is the one it is opened with: the system clock, or a test's.

mod claim;
mod fanout;
mod finish;
mod ids;
mod ingest;
mod lease;
mod listing;
mod log;
mod quota;
mod readers;
mod records;
mod retry;
mod rules;
mod sql;
mod tasks;
mod verify;
mod warm;
mod writer;

use super::*;
use crate::clock::Clock;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MIGRATIONS: &[&str] = &[
    include_str!("schema/001_init.sql"),
    include_str!("schema/002_lean_queue.sql"),
    include_str!("schema/003_listings.sql"),
    include_str!("schema/004_task_completion.sql"),
    include_str!("schema/005_verification.sql"),
    include_str!("schema/006_warming.sql"),
    include_str!("schema/007_min_interval.sql"),
    include_str!("schema/008_fanout.sql"),
];

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
    /// Most events waiting to be written before ingest is refused with `Busy`.
    pub write_queue: usize,
    /// Read connections.
    pub readers: usize,
    /// The store's clock, for leases.
    pub clock: Clock,
    /// Bring an older schema up to date on open (the server does; command-line tools create
    /// a new store but refuse to upgrade an existing one).
    pub upgrade: bool,
    /// `ping` fails when the disk holding the store has less free space than this (0: no
    /// check).
    pub min_free_bytes: u64,
}

pub const DEFAULT_WRITE_QUEUE: usize = 100_000;
pub const DEFAULT_READERS: usize = 4;

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout_ms: 10_000,
            write_queue: DEFAULT_WRITE_QUEUE,
            readers: DEFAULT_READERS,
            clock: Clock::system(),
            upgrade: true,
            min_free_bytes: 0,
        }
    }
}

pub struct SqliteStore {
    writer: writer::Writer,
    readers: readers::Readers,
    clock: Clock,
    path: PathBuf,
    min_free_bytes: u64,
}

pub(crate) fn db_err(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{context}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    /// Blocking: call it from a blocking thread ([`SqliteStore::open_blocking`] does).
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
        let mut conn = open_conn(path, &opts, false)?;
        migrate(&mut conn, path, opts.upgrade)?;
        Ok(SqliteStore {
            writer: writer::Writer::new(conn, opts.write_queue),
            readers: readers::Readers::new(path.to_owned(), opts.clone()),
            clock: opts.clock,
            path: path.to_owned(),
            min_free_bytes: opts.min_free_bytes,
        })
    }

    /// [`SqliteStore::open`] on the blocking pool.
    pub async fn open_blocking(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || SqliteStore::open(&path, opts))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))?
    }

    /// Opens a store that must already exist (CLI commands that only read or edit).
    pub async fn open_existing(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(StoreError::NotFound(format!(
                "no store at {}: start `edgepurge serve` once to create it, or pass --db PATH",
                path.display()
            )));
        }
        SqliteStore::open_blocking(path, opts).await
    }

    /// The schema version this edgepurge uses.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut writer::TxCtx<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(0, false, f).await
    }
}

pub(super) fn open_conn(
    path: &Path,
    opts: &SqliteOptions,
    read_only: bool,
) -> StoreResult<Connection> {
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
    conn.set_prepared_statement_cache_capacity(64);
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
    // The writer keeps the hot pages of the queue and the log in its cache; readers need less.
    let cache_kib = if read_only { 2048 } else { 8192 };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; \
         PRAGMA cache_size=-{cache_kib};"
    ))
    .map_err(db_err(&ctx))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path, upgrade: bool) -> StoreResult<()> {
    let ctx = format!("migrate {}", path.display());
    // Up to date: nothing to write, so no write lock either. A busy server's writer holds
    // it most of the time, and `edgepurge log` or `status` must still open the store then.
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err(&ctx))?;
    if current == MIGRATIONS.len() as i64 {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err(&ctx))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err(&ctx))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            path: path.display().to_string(),
            found: version,
            known,
        });
    }
    if version > 0 && version < known && !upgrade {
        return Err(StoreError::SchemaTooOld {
            path: path.display().to_string(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(sql).map_err(db_err(&ctx))?;
        tx.execute_batch(&format!("PRAGMA user_version={}", i + 1))
            .map_err(db_err(&ctx))?;
        if version > 0 {
            tracing::info!(store = %path.display(), to = i + 1, "store schema upgraded");
        }
    }
    tx.commit().map_err(db_err(&ctx))
}

#[async_trait]
impl Store for SqliteStore {
    async fn rules(&self) -> StoreResult<Vec<StoredRule>> {
        self.readers.read(rules::list).await
    }

    async fn add_rule(&self, spec: RuleSpec, now: Ms) -> StoreResult<()> {
        self.write(move |c, _| rules::add(c, &spec, RuleOrigin::Cli, now))
            .await
    }

    async fn sync_config_rules(
        &self,
        specs: Vec<RuleSpec>,
        now: Ms,
    ) -> StoreResult<ConfigRulesChange> {
        self.write(move |c, _| rules::sync_config(c, &specs, now))
            .await
    }

    async fn delete_rule(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |c, _| rules::delete(c, &name)).await
    }

    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: Ms) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |c, _| rules::set_enabled(c, &name, enabled, now))
            .await
    }

    async fn rules_version(&self) -> StoreResult<i64> {
        self.readers.read(rules::version).await
    }

    async fn ingest(&self, records: Vec<IngestRecord>, now: Ms) -> StoreResult<IngestReceipt> {
        let n = records.len();
        // Encoded here, on the caller's task, and freed here after the commit (the last
        // reference stays with the caller), so the single writer only writes.
        let batch = Arc::new((ingest::encode_targets(&records)?, records));
        let shared = Arc::clone(&batch);
        let receipt = self
            .writer
            .run(n, true, move |c, ctx| {
                ingest::ingest(c, ctx, &shared.1, &shared.0, now)
            })
            .await;
        drop(batch);
        receipt
    }

    async fn ingest_from(
        &self,
        source: Arc<dyn RecordSource>,
        now: Ms,
    ) -> StoreResult<IngestReceipt> {
        // Each record is made, encoded and written by the writer, then let go: only the
        // source (for a body, the body itself) is held.
        let shared = Arc::clone(&source);
        let receipt = self
            .writer
            .run(source.records(), true, move |c, ctx| {
                ingest::ingest_from(c, ctx, shared.as_ref(), now)
            })
            .await;
        drop(source);
        receipt
    }

    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<Lease>> {
        let (lane, owner) = (lane.to_owned(), owner.to_owned());
        let now = self.clock.now_ms();
        self.write(move |c, ctx| lease::acquire_lane(c, ctx, &lane, &owner, now, ttl_ms))
            .await
    }

    async fn release_lane(&self, lane: &str, owner: &str) -> StoreResult<()> {
        let (lane, owner) = (lane.to_owned(), owner.to_owned());
        self.write(move |c, _| lease::release_lane(c, &lane, &owner))
            .await
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Claim> {
        let now = self.clock.now_ms();
        self.write(move |c, ctx| claim::claim(c, ctx, &req, now))
            .await
    }

    async fn finish(&self, finish: Finish) -> StoreResult<FinishReceipt> {
        self.write(move |c, ctx| finish::finish(c, ctx, &finish))
            .await
    }

    async fn tasks_due(&self, lane: &str, now: Ms, limit: usize) -> StoreResult<Vec<FollowedTask>> {
        let lane = lane.to_owned();
        self.readers
            .read(move |c| tasks::due(c, &lane, now, limit))
            .await
    }

    async fn note_tasks(&self, updates: Vec<TaskUpdate>, now: Ms) -> StoreResult<FinishReceipt> {
        self.write(move |c, ctx| tasks::note(c, ctx, &updates, now))
            .await
    }

    async fn verifications_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueVerification>> {
        let p = provider.to_owned();
        let ids = self
            .readers
            .read(move |c| verify::due_ids(c, &p, now, settled_before, limit))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = now.saturating_add(lease_ms.max(1));
        self.write(move |c, _| verify::take(c, &ids, now, until))
            .await
    }

    async fn newer_record(&self, of: &DueVerification) -> StoreResult<Option<i64>> {
        let of = of.clone();
        self.readers.read(move |c| verify::newer(c, &of)).await
    }

    async fn note_verifications(
        &self,
        updates: Vec<VerifyUpdate>,
        now: Ms,
    ) -> StoreResult<FinishReceipt> {
        self.write(move |c, ctx| verify::note(c, ctx, &updates, now))
            .await
    }

    async fn warmings_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueWarming>> {
        let p = provider.to_owned();
        let ids = self
            .readers
            .read(move |c| warm::due_ids(c, &p, now, settled_before, limit))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = now.saturating_add(lease_ms.max(1));
        self.write(move |c, _| warm::take(c, &ids, now, until))
            .await
    }

    async fn note_warmings(&self, updates: Vec<WarmUpdate>, now: Ms) -> StoreResult<FinishReceipt> {
        self.write(move |c, ctx| warm::note(c, ctx, &updates, now))
            .await
    }

    async fn note_quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
        used: u64,
    ) -> StoreResult<()> {
        let lane = lane.to_owned();
        self.write(move |c, _| quota::note_quota_used(c, &lane, kind, day, used))
            .await
    }

    async fn quota_used(&self, lane: &str, kind: TargetKind, day: i64) -> StoreResult<u64> {
        let lane = lane.to_owned();
        self.readers
            .read(move |c| quota::quota_used(c, &lane, kind, day))
            .await
    }

    async fn log(&self, query: LogQuery) -> StoreResult<Vec<LogRecord>> {
        self.readers.read(move |c| log::query(c, &query)).await
    }

    async fn log_cursor(&self) -> StoreResult<i64> {
        self.readers
            .read(|c| {
                c.query_row(sql::LOG_CURSOR, [], |r| r.get(0))
                    .map_err(db_err("read log cursor"))
            })
            .await
    }

    async fn requests(
        &self,
        since: Option<Ms>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>> {
        self.readers
            .read(move |c| log::requests(c, since, before, limit))
            .await
    }

    async fn depths(&self) -> StoreResult<Vec<LaneDepth>> {
        self.readers.read(log::depths).await
    }

    async fn fanout_depths(&self) -> StoreResult<Vec<FanoutDepth>> {
        self.readers.read(log::fanout_depths).await
    }

    async fn queue_depths(&self) -> StoreResult<(Vec<LaneDepth>, Vec<FanoutDepth>)> {
        self.readers
            .read(|c| {
                // One read transaction: both queries see the same snapshot of the WAL.
                let tx = c
                    .unchecked_transaction()
                    .map_err(db_err("begin a queue-depth read"))?;
                let out = (log::depths(&tx)?, log::fanout_depths(&tx)?);
                tx.commit().map_err(db_err("end a queue-depth read"))?;
                Ok(out)
            })
            .await
    }

    async fn release_held(&self, lane: &str, now: Ms) -> StoreResult<u64> {
        let lane = lane.to_owned();
        self.write(move |c, ctx| retry::release_held(c, ctx, &lane, now))
            .await
    }

    async fn retry_dead(&self, filter: RetryFilter, now: Ms) -> StoreResult<u64> {
        self.write(move |c, ctx| retry::retry_dead(c, ctx, &filter, now))
            .await
    }

    async fn prune(&self, before: Ms, max_rows: usize) -> StoreResult<u64> {
        self.write(move |c, _| log::prune(c, before, max_rows))
            .await
    }

    async fn listing(&self, source: &str) -> StoreResult<Option<Listing>> {
        let source = source.to_owned();
        self.readers.read(move |c| listing::load(c, &source)).await
    }

    async fn save_listing(
        &self,
        source: &str,
        scope: &str,
        changes: ListingChanges,
        now: Ms,
    ) -> StoreResult<()> {
        let (source, scope) = (source.to_owned(), scope.to_owned());
        let changes = Arc::new(changes);
        self.write(move |c, _| listing::save(c, &source, &scope, &changes, now))
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        // A real commit through the writer: a locked file, a read-only or failing disk fail
        // here as an ingest would.
        let now = self.clock.now_ms();
        self.write(move |c, _| {
            c.prepare_cached(sql::READY_PROBE)
                .and_then(|mut s| s.execute([now]))
                .map(drop)
                .map_err(db_err("write probe"))
        })
        .await?;
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let min = self.min_free_bytes;
        let free = tokio::task::spawn_blocking(move || {
            rustix::fs::statvfs(&dir)
                .map(|st| st.f_bavail.saturating_mul(st.f_frsize))
                .map_err(|e| format!("cannot read free space of {}: {e}", dir.display()))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("free space check failed: {e}")))?
        .map_err(StoreError::Unavailable)?;
        if free < min {
            return Err(StoreError::Unavailable(format!(
                "the disk holding {} has {free} bytes free, below store.min_free_bytes ({min}); \
                 free space (or prune the log: log.retention_days)",
                self.path.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
