//! The PostgreSQL store: several nodes share one queue, one log and one set of lane leases.
//!
//! * Connections come from a pool (`deadpool-postgres` over `tokio-postgres`); every
//!   operation is one transaction, run again whole when PostgreSQL reports a deadlock or a
//!   serialization failure. A database that cannot be reached is
//!   [`StoreError::Unavailable`] at once (the webhook answers 503), never a hang.
//! * Ingest is group-committed per node ([`group`]): concurrent ingests share one
//!   transaction, which upserts each distinct pending job once, in one order, so nodes do
//!   not deadlock on a URL that changes everywhere at once.
//! * Claims take pending jobs with `FOR UPDATE SKIP LOCKED`; lane leases are decided on the
//!   database's clock (`clock_timestamp()`) with fencing tokens, exactly as the queue policy
//!   ([`crate::queue::lease`]) says.
//! * The change cursor: a transaction that changes log records takes its position just
//!   before commit, under an exclusive transaction-level advisory lock held through the
//!   commit (see `schema/001_init.sql`): positions are given in commit order, whatever the
//!   number of writers.
//!
//! Every statement is a `.sql` file in `sql/`, every schema step one in `schema/`. The queue's
//! decisions come from [`crate::queue`]; this module only reads what they need and persists
//! what they decide.

mod claim;
mod fanout;
mod finish;
mod group;
mod ingest;
mod lanes;
mod lease;
mod listing;
mod log;
mod notices;
mod quota;
mod records;
mod retry;
mod rules;
mod sql;
mod tasks;
mod tls;
mod tx;
mod url;
mod verify;
mod warm;

pub use url::{is_postgres_url, mask_url};

use super::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tx::{pg_err, Tx};

const MIGRATIONS: &[&str] = &[
    include_str!("schema/001_init.sql"),
    include_str!("schema/002_task_completion.sql"),
    include_str!("schema/003_verification.sql"),
    include_str!("schema/004_warming.sql"),
    include_str!("schema/005_min_interval.sql"),
    include_str!("schema/006_fanout.sql"),
];

/// Most times one operation is run again after a conflict with another transaction.
const CONFLICT_RETRIES: u32 = 8;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long connecting may take, and how long an operation waits for a free connection.
    pub connect_timeout_ms: u64,
    /// Most events waiting to be written before ingest is refused with `Busy`.
    pub write_queue: usize,
    /// Bring an older schema up to date on open (the server and `edgepurge migrate` do;
    /// other command-line tools refuse to upgrade).
    pub upgrade: bool,
    /// CA certificates (PEM) that sign the server's certificate, with `sslmode=require`;
    /// `None`: the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

pub const DEFAULT_POOL_SIZE: usize = 16;

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout_ms: 5_000,
            write_queue: super::sqlite::DEFAULT_WRITE_QUEUE,
            upgrade: true,
            ca_file: None,
        }
    }
}

pub(super) struct Inner {
    pool: deadpool_postgres::Pool,
    /// The URL with its password masked, for messages.
    shown: String,
    /// Lane ids known to be committed (lanes are never deleted).
    lanes: Mutex<HashMap<String, i64>>,
    group: group::Group,
    /// For the work-announcement listener's own connection.
    pg_config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// This handle's name in work announcements (its own are not passed on to itself).
    instance: Arc<str>,
}

/// A handle on a PostgreSQL store; cheap to share.
pub struct PgStore {
    inner: Arc<Inner>,
}

/// Runs `$body` (an expression using `$t: &mut Tx`) in a transaction on a pooled connection
/// and commits; runs it again when it lost a conflict with another transaction.
macro_rules! in_tx {
    ($inner:expr, $what:expr, |$t:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: $crate::store::StoreResult<_> = async {
                let mut client = $inner.client($what).await?;
                let tx = client
                    .transaction()
                    .await
                    .map_err($crate::store::postgres::tx::pg_err($what))?;
                #[allow(unused_mut)]
                let mut $t = $crate::store::postgres::tx::Tx::new(tx);
                let out = $body.await?;
                $t.commit().await?;
                Ok(out)
            }
            .await;
            match result {
                Err(e)
                    if $crate::store::postgres::tx::is_conflict(&e)
                        && attempt < $crate::store::postgres::CONFLICT_RETRIES =>
                {
                    attempt += 1;
                    tracing::debug!(
                        what = $what,
                        attempt,
                        "transaction conflict: running it again"
                    );
                    let jitter = rand::random::<u64>() % (5 * u64::from(attempt) + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use in_tx;

impl Inner {
    async fn client(&self, what: &str) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "{what}: cannot reach the database {}: {}",
                self.shown,
                pool_error(&e)
            ))
        })
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => tx::describe(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            "timed out waiting for a connection (the database is slow or unreachable)".into()
        }
        other => other.to_string(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and brings its
    /// schema up to date (or checks it, when `opts.upgrade` is off).
    pub async fn open(url: &str, opts: PgOptions) -> StoreResult<PgStore> {
        let shown = mask_url(url);
        let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!(
                "{shown} is not a valid PostgreSQL URL ({e}); expected \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_millis(opts.connect_timeout_ms.max(1)));
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("edgepurge");
        }
        cfg.keepalives_idle(Duration::from_secs(30));
        let tls = tls::connector(&cfg, opts.ca_file.as_deref(), &shown)?;
        let manager_config = deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => {
                deadpool_postgres::Manager::from_config(cfg.clone(), tls.clone(), manager_config)
            }
            None => deadpool_postgres::Manager::from_config(
                cfg.clone(),
                tokio_postgres::NoTls,
                manager_config,
            ),
        };
        let timeout = Some(Duration::from_millis(opts.connect_timeout_ms.max(1)));
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("connection pool for {shown}: {e}")))?;
        let inner = Arc::new(Inner {
            pool,
            shown,
            lanes: Mutex::new(HashMap::new()),
            group: group::Group::new(opts.write_queue),
            pg_config: cfg,
            tls,
            instance: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
        });
        migrate(&inner, opts.upgrade).await?;
        Ok(PgStore { inner })
    }

    /// The URL with its password masked.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// The schema version this edgepurge uses.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }
}

/// Applies the migrations this store lacks, one node at a time (the others wait on the lock
/// and find the work done).
async fn migrate(inner: &Inner, upgrade: bool) -> StoreResult<()> {
    let what = "bring the schema up to date";
    let mut client = inner.client(what).await?;
    let tx = client.transaction().await.map_err(pg_err(what))?;
    let t = Tx::new(tx);
    t.execute(sql::MIGRATE_LOCK, &[], what).await?;
    let exists: bool = tx::col(&t.query_one(sql::SCHEMA_EXISTS, &[], what).await?, 0)?;
    let version: i64 = if exists {
        tx::col(&t.query_one(sql::SCHEMA_VERSION, &[], what).await?, 0)?
    } else {
        0
    };
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            path: inner.shown.clone(),
            found: version,
            known,
        });
    }
    if version > 0 && version < known && !upgrade {
        return Err(StoreError::SchemaTooOld {
            path: inner.shown.clone(),
            found: version,
            known,
        });
    }
    t.execute(sql::SCHEMA_TABLE, &[], what).await?;
    for (i, step) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let to = i as i64 + 1;
        t.batch(step, &format!("schema step {to}")).await?;
        t.execute(sql::SCHEMA_SET_VERSION, &[&to], what).await?;
        tracing::info!(store = %inner.shown, to, "store schema upgraded");
    }
    t.commit().await
}

#[async_trait]
impl Store for PgStore {
    fn work_notices(&self) -> Option<tokio::sync::broadcast::Receiver<WorkNotice>> {
        let (tx, rx) = tokio::sync::broadcast::channel(4096);
        tokio::spawn(notices::listen(
            self.inner.pg_config.clone(),
            self.inner.tls.clone(),
            Arc::from(self.inner.shown.as_str()),
            Arc::clone(&self.inner.instance),
            tx,
        ));
        Some(rx)
    }

    async fn rules(&self) -> StoreResult<Vec<StoredRule>> {
        in_tx!(self.inner, "list rules", |t| rules::list(&t))
    }

    async fn add_rule(&self, spec: RuleSpec, now: Ms) -> StoreResult<()> {
        in_tx!(self.inner, "add rule", |t| rules::add(
            &t,
            &spec,
            RuleOrigin::Cli,
            now
        ))
    }

    async fn sync_config_rules(
        &self,
        specs: Vec<RuleSpec>,
        now: Ms,
    ) -> StoreResult<ConfigRulesChange> {
        in_tx!(self.inner, "install config rules", |t| rules::sync_config(
            &t, &specs, now
        ))
    }

    async fn delete_rule(&self, name: &str) -> StoreResult<()> {
        in_tx!(self.inner, "delete rule", |t| rules::delete(&t, name))
    }

    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: Ms) -> StoreResult<()> {
        in_tx!(self.inner, "change rule", |t| rules::set_enabled(
            &t, name, enabled, now
        ))
    }

    async fn rules_version(&self) -> StoreResult<i64> {
        in_tx!(self.inner, "read rules version", |t| rules::version(&t))
    }

    async fn ingest(&self, records: Vec<IngestRecord>, now: Ms) -> StoreResult<IngestReceipt> {
        group::submit(&self.inner, records, now).await
    }

    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<Lease>> {
        lanes::lane_id(&self.inner, lane).await?;
        in_tx!(self.inner, "take lane lease", |t| lease::acquire_lane(
            &mut t, lane, owner, ttl_ms
        ))
    }

    async fn release_lane(&self, lane: &str, owner: &str) -> StoreResult<()> {
        in_tx!(self.inner, "release lane", |t| lease::release_lane(
            &t, lane, owner
        ))
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Claim> {
        // The lanes a fan-out slice queues jobs for, made once outside the claim.
        let fanout_lanes = match &req.fanout {
            Some(f) => {
                let names: Vec<&str> = f.lanes.iter().map(String::as_str).collect();
                lanes::lane_ids(&self.inner, &names).await?
            }
            None => std::collections::HashMap::new(),
        };
        in_tx!(self.inner, "claim", |t| claim::claim(
            &mut t,
            &req,
            &fanout_lanes,
            &self.inner.instance
        ))
    }

    async fn finish(&self, finish: Finish) -> StoreResult<FinishReceipt> {
        in_tx!(self.inner, "record answer", |t| finish::finish(
            &mut t, &finish
        ))
    }

    async fn note_quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
        used: u64,
    ) -> StoreResult<()> {
        in_tx!(self.inner, "note quota", |t| quota::note_quota_used(
            &t, lane, kind, day, used
        ))
    }

    async fn quota_used(&self, lane: &str, kind: TargetKind, day: i64) -> StoreResult<u64> {
        in_tx!(self.inner, "read quota", |t| quota::quota_used(
            &t, lane, kind, day
        ))
    }

    async fn log(&self, query: LogQuery) -> StoreResult<Vec<LogRecord>> {
        in_tx!(self.inner, "query log", |t| log::query(&t, &query))
    }

    async fn log_cursor(&self) -> StoreResult<i64> {
        in_tx!(self.inner, "read log cursor", |t| log::cursor(&t))
    }

    async fn requests(
        &self,
        since: Option<Ms>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>> {
        in_tx!(self.inner, "query requests", |t| log::requests(
            &t, since, before, limit
        ))
    }

    async fn depths(&self) -> StoreResult<Vec<LaneDepth>> {
        in_tx!(self.inner, "queue depth", |t| log::depths(&t))
    }

    async fn fanout_depths(&self) -> StoreResult<Vec<FanoutDepth>> {
        in_tx!(self.inner, "fan-out depth", |t| log::fanout_depths(&t))
    }

    async fn queue_depths(&self) -> StoreResult<(Vec<LaneDepth>, Vec<FanoutDepth>)> {
        in_tx!(self.inner, "queue depth", |t| async {
            // READ COMMITTED takes a snapshot per statement: one for both.
            t.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                &[],
                "queue depth",
            )
            .await?;
            Ok::<_, StoreError>((log::depths(&t).await?, log::fanout_depths(&t).await?))
        })
    }

    async fn tasks_due(&self, lane: &str, now: Ms, limit: usize) -> StoreResult<Vec<FollowedTask>> {
        in_tx!(self.inner, "read tasks to follow", |t| tasks::due(
            &t, lane, now, limit
        ))
    }
    async fn note_tasks(&self, updates: Vec<TaskUpdate>, now: Ms) -> StoreResult<FinishReceipt> {
        in_tx!(self.inner, "record task progress", |t| tasks::note(
            &mut t, &updates, now
        ))
    }
    async fn verifications_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueVerification>> {
        in_tx!(self.inner, "take records to verify", |t| verify::take(
            &t,
            provider,
            now,
            settled_before,
            now.saturating_add(lease_ms.max(1)),
            limit
        ))
    }
    async fn newer_record(&self, of: &DueVerification) -> StoreResult<Option<i64>> {
        in_tx!(self.inner, "read newer records", |t| verify::newer(&t, of))
    }
    async fn note_verifications(
        &self,
        updates: Vec<VerifyUpdate>,
        now: Ms,
    ) -> StoreResult<FinishReceipt> {
        in_tx!(self.inner, "record verification", |t| verify::note(
            &mut t, &updates, now
        ))
    }
    async fn warmings_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueWarming>> {
        in_tx!(self.inner, "take records to warm", |t| warm::take(
            &t,
            provider,
            now,
            settled_before,
            now.saturating_add(lease_ms.max(1)),
            limit
        ))
    }
    async fn note_warmings(&self, updates: Vec<WarmUpdate>, now: Ms) -> StoreResult<FinishReceipt> {
        in_tx!(self.inner, "record warming", |t| warm::note(
            &mut t, &updates, now
        ))
    }
    async fn release_held(&self, lane: &str, now: Ms) -> StoreResult<u64> {
        in_tx!(self.inner, "release held batches", |t| retry::release_held(
            &t, lane, now
        ))
    }

    async fn retry_dead(&self, filter: RetryFilter, now: Ms) -> StoreResult<u64> {
        in_tx!(self.inner, "retry dead batches", |t| retry::retry_dead(
            &mut t, &filter, now
        ))
    }

    async fn prune(&self, before: Ms, max_rows: usize) -> StoreResult<u64> {
        in_tx!(self.inner, "prune", |t| log::prune(&t, before, max_rows))
    }

    async fn prune_bookkeeping(&self, max_rows: usize) -> StoreResult<u64> {
        in_tx!(self.inner, "prune change positions", |t| {
            log::prune_positions(&t, max_rows)
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        let now = crate::clock::Clock::system().now_ms();
        in_tx!(self.inner, "write probe", |t| async {
            t.execute(sql::READY_PROBE, &[&now], "write probe")
                .await
                .map(drop)
        })
    }

    async fn listing(&self, source: &str) -> StoreResult<Option<Listing>> {
        in_tx!(self.inner, "read listing", |t| listing::load(&t, source))
    }

    async fn save_listing(
        &self,
        source: &str,
        scope: &str,
        changes: ListingChanges,
        now: Ms,
    ) -> StoreResult<()> {
        in_tx!(self.inner, "save listing", |t| listing::save(
            &t, source, scope, &changes, now
        ))
    }
}

#[cfg(test)]
mod tests;
