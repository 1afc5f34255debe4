//! The running service: store, rules, dispatcher lanes, the application layer and the HTTP
//! server, started from a checked config and stopped in order.

use crate::app::{Admin, Pipeline, Planner};
use crate::clock::Clock;
use crate::config::Config;
use crate::purgers::{BuildError, Purger};
use crate::server::{self, AppState};
use crate::store::{PgStore, SqliteStore, Store, StoreError};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often a running server checks the store for rule changes made by the CLI.
const RULES_POLL: Duration = Duration::from_secs(1);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows one pruning step deletes, so the writer is never held long.
const PRUNE_STEP: usize = 2_000;
/// How often records finished by another process are looked for, for callers waiting.
const OUTCOME_POLL: Duration = Duration::from_secs(1);

pub struct Service {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    /// The configuration the service started with (its providers are the running lanes).
    cfg: Config,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens (creating if needed, and bringing its schema up to date) the store a config names.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_configured(&cfg.store, true, true).await?)
}

/// Opens the configured store: SQLite at `[store] path`, or PostgreSQL when `url_env` /
/// `url_file` holds a `postgres://` URL. `upgrade`: bring an older schema up to date (the
/// server and `edgepurge migrate`); `create`: make a missing SQLite file (a PostgreSQL
/// database must exist; its tables are made on first use).
pub async fn open_configured(
    cfg: &crate::config::StoreConfig,
    upgrade: bool,
    create: bool,
) -> Result<Arc<dyn Store>, StoreError> {
    let Some(src) = &cfg.url else {
        let opts = crate::store::SqliteOptions {
            upgrade,
            ..cfg.sqlite_options()
        };
        let store = if create {
            SqliteStore::open_blocking(&cfg.path, opts).await?
        } else {
            SqliteStore::open_existing(&cfg.path, opts).await?
        };
        return Ok(Arc::new(store));
    };
    let url = src
        .load()
        .await
        .map_err(|e| StoreError::Unavailable(format!("store URL: {e}")))?;
    let url = url.expose().trim();
    if !crate::store::postgres::is_postgres_url(url) {
        return Err(StoreError::Unavailable(format!(
            "the store URL from {src} is not a postgres:// or postgresql:// URL (for SQLite, set \
             [store] path instead)"
        )));
    }
    let store = PgStore::open(url, cfg.pg_options(upgrade)).await?;
    tracing::debug!(store = %store.shown(), "connected to the PostgreSQL store");
    Ok(Arc::new(store))
}

/// Loads the rules in force from the store, logging the ones left out.
pub async fn load_planner(store: &dyn Store, cfg: &Config) -> anyhow::Result<Planner> {
    let stored = store.rules().await.context("reading rules")?;
    let (planner, problems) = Planner::new(&stored, &cfg.providers, cfg.log.record_unmatched);
    for p in problems {
        tracing::error!("{p}");
    }
    Ok(planner)
}

/// Reads a configured token (none when not configured); the error names which.
async fn load_token(
    src: Option<&crate::secret::SecretSource>,
    what: &str,
) -> anyhow::Result<Option<crate::secret::Secret>> {
    match src {
        Some(src) => Ok(Some(
            src.load()
                .await
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?,
        )),
        None => Ok(None),
    }
}

/// One purger per lane of every provider account.
pub fn build_purgers(cfg: &Config) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
    let mut out = Vec::new();
    for p in cfg.providers.values() {
        out.extend(p.build()?);
    }
    Ok(out)
}

impl Service {
    pub async fn start(cfg: Config, listener: TcpListener) -> anyhow::Result<Service> {
        let addr = listener
            .local_addr()
            .context("reading the listener address")?;
        let clock = Clock::system();
        let store = open_store(&cfg).await?;
        let specs = cfg.rules.iter().map(|r| r.spec.clone()).collect();
        let change = store
            .sync_config_rules(specs, clock.now_ms())
            .await
            .context("installing the config file's rules")?;
        report_config_rules(&change, cfg.store.is_shared());
        let planner = load_planner(store.as_ref(), &cfg).await?;
        let webhook_token =
            load_token(cfg.server.webhook_token.as_ref(), "server webhook token").await?;
        let admin_token = load_token(cfg.admin.token.as_ref(), "admin token").await?;
        for warning in cfg.secret_warnings() {
            tracing::warn!("{warning}");
        }
        let purgers = build_purgers(&cfg)?;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let Pipeline {
            ingestor,
            dispatcher,
        } = Pipeline::start(
            Arc::clone(&store),
            purgers,
            planner,
            crate::app::PipelineSettings {
                dispatch: cfg.dispatch.clone(),
                clock,
                poll: OUTCOME_POLL,
                limits: crate::app::IngestLimits {
                    parse_budget: cfg.server.parse_budget_bytes,
                    max_jobs: cfg.store.max_jobs_per_body,
                },
                metrics: Arc::clone(&metrics),
            },
            &shutdown,
        );
        // The running server's providers are the truth, config file or not: rules added
        // through the admin API are checked against them.
        let admin = Arc::new(Admin::new(Some(Arc::clone(&store)), &cfg, true, clock));
        report_unserved(&admin).await;
        let state = Arc::new(AppState {
            store: Arc::clone(&store),
            ingestor,
            admin,
            dispatcher,
            webhook_token: server::Token::new(webhook_token),
            pubsub_oidc: server::PubsubOidc::from_config(cfg.server.pubsub_oidc.as_ref())
                .map_err(|e| anyhow::anyhow!("server.pubsub_oidc: {e}"))?,
            admin_token: server::Token::new(admin_token),
            max_body_bytes: cfg.server.max_body_bytes,
            body_timeout: cfg.server.body_timeout,
            readiness: Default::default(),
            metrics,
            clock,
            refused: Default::default(),
            sources: Default::default(),
        });

        let mut tasks = JoinSet::new();
        tasks.spawn(reload_rules(
            Arc::clone(&state),
            cfg.clone(),
            shutdown.clone(),
        ));
        crate::sources::spawn_all(
            &cfg.sources,
            &state.ingestor,
            &store,
            &state.sources,
            &shutdown,
            &mut tasks,
        );
        // Also without a retention: the store's bookkeeping is pruned all the same.
        tasks.spawn(prune(
            Arc::clone(&store),
            cfg.log.retention,
            clock,
            shutdown.clone(),
        ));
        let limits = server::Limits {
            max_connections: server::fit_connection_cap(cfg.server.max_connections),
            header_timeout: cfg.server.header_timeout,
            drain: cfg.dispatch.drain,
        };
        let server = tokio::spawn(server::run(
            listener,
            Arc::clone(&state),
            limits,
            shutdown.clone(),
        ));

        tracing::info!(
            listen = %addr,
            store = %cfg.store.describe(),
            rules = state.ingestor.planner().rules().len(),
            lanes = ?state.dispatcher.lane_names().collect::<Vec<_>>(),
            sources = ?cfg.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "edgepurge is running"
        );
        if let Some(oidc) = &state.pubsub_oidc {
            tracing::info!(
                audience = %oidc.audience_shown(),
                service_account = %oidc.config().service_account,
                "POST /v1/events accepts Pub/Sub push tokens"
            );
        }
        if !state.webhook_token.is_set() && state.pubsub_oidc.is_some() {
            tracing::warn!(
                "server.pubsub_oidc without a webhook token: POST /v1/events now accepts only \
                 Pub/Sub push tokens, loopback callers included (set server.webhook_token_env \
                 for other senders)"
            );
        }
        if !state.webhook_token.is_set() && state.pubsub_oidc.is_none() {
            tracing::warn!(
                "no webhook token configured: POST /v1/events accepts loopback callers only \
                 (set server.webhook_token_env to accept others)"
            );
        }
        if cfg.providers.is_empty() {
            tracing::warn!(
                "no providers configured: events are logged but nothing is purged (add \
                 [providers.NAME] and rules; see edgepurge.example.toml)"
            );
        }
        Ok(Service {
            addr,
            state,
            cfg: cfg.clone(),
            shutdown,
            tasks,
            server,
        })
    }

    /// Stops accepting, lets requests in progress finish and lanes drain (both at once, each
    /// bounded by `dispatch.drain_s`) and returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let (served, ()) = tokio::join!(&mut self.server, self.state.dispatcher.stop());
        self.tasks.shutdown().await;
        match served {
            Ok(r) => r.context("HTTP server"),
            Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
        }
    }

    /// Puts `cfg`'s rules in force (the store keeps them; the running planner follows within
    /// a second, as for `rule add`).
    /// Returns how many rules are in force now.
    pub async fn apply_config_rules(&self, cfg: &Config) -> anyhow::Result<usize> {
        let specs = cfg.rules.iter().map(|r| r.spec.clone()).collect();
        let change = self
            .state
            .store
            .sync_config_rules(specs, Clock::system().now_ms())
            .await
            .context("storing the config file's rules")?;
        report_config_rules(&change, cfg.store.is_shared());
        // In force now, not at the next poll; planned for the providers that are running.
        let _reloading = self.state.ingestor.reloading().await;
        let planner = load_planner(self.state.store.as_ref(), &self.cfg).await?;
        let in_force = planner.rules().len();
        self.state.ingestor.set_planner(planner);
        Ok(in_force)
    }

    /// Reads the webhook and admin tokens again from where `cfg` says (a `token_file` is read
    /// anew; an environment variable is the one this process started with) and puts them in
    /// force: a caller with an old token is refused from the next request on. Both are read
    /// before either is replaced, so a token that cannot be read changes nothing. Returns
    /// which tokens changed.
    pub async fn reload_tokens(&self, cfg: &Config) -> anyhow::Result<Vec<&'static str>> {
        let webhook = load_token(cfg.server.webhook_token.as_ref(), "server webhook token").await?;
        let admin = load_token(cfg.admin.token.as_ref(), "admin token").await?;
        let mut changed = Vec::new();
        for (name, slot, new) in [
            ("webhook token", &self.state.webhook_token, webhook),
            ("admin token", &self.state.admin_token, admin),
        ] {
            if slot.get() != new {
                slot.set(new);
                changed.push(name);
            }
        }
        Ok(changed)
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Says which lanes hold work that no provider account of the config serves (an account
/// removed or renamed): it stays queued, and their queue age grows, until the account is back
/// or the work is discarded.
async fn report_unserved(admin: &Admin) {
    match admin.unserved_lanes().await {
        Ok(lanes) => {
            for d in lanes {
                tracing::warn!(
                    lane = %d.lane,
                    pending = d.pending,
                    waiting_batches = d.waiting_batches,
                    inflight_batches = d.inflight_batches,
                    "no provider account of the config serves lane {:?}, so nothing sends its \
                     queued work: add the account back under its old name, or run `edgepurge \
                     discard --lane {}` to move it to the dead letters",
                    d.lane,
                    d.lane
                );
            }
        }
        Err(e) => tracing::warn!("cannot read the queue's lanes at start: {e}"),
    }
    match admin.unserved_fanout().await {
        Ok(accounts) => {
            for f in accounts {
                tracing::warn!(
                    account = %f.account,
                    targets = f.targets,
                    "the config has no provider account {:?}, so nothing fans out its {} \
                     stored target(s) to cache nodes: they wait until the account is back \
                     under that name (and go to the nodes it has then)",
                    f.account,
                    f.targets
                );
            }
        }
        Err(e) => tracing::warn!("cannot read the fan-out queue at start: {e}"),
    }
}

/// Says which config rules this node's file changed. On a shared store that is every node's
/// rules: a node started with an older or different file replaces them for all, so it is a
/// warning naming the rules.
fn report_config_rules(change: &crate::store::ConfigRulesChange, shared: bool) {
    if change.is_empty() {
        return;
    }
    if change.before == 0 {
        // A new store (or one that had none): nothing of another node's was replaced.
        tracing::info!(change = %change, "config rules installed");
        return;
    }
    if shared {
        tracing::warn!(
            change = %change,
            "this node's config file changed the config rules of every node sharing the \
             store; if that was not meant, give every node the same file"
        );
    } else {
        tracing::info!(change = %change, "config rules changed since they were last stored");
    }
}

/// Steps [`Store::prune_bookkeeping`] until a step finds less than a full slice: what piled
/// up since the last pass goes, and the pass ends even under sustained writes (each of which
/// leaves a little more behind). Returns how many rows went.
pub(crate) async fn prune_bookkeeping(
    store: &dyn Store,
    step: usize,
    shutdown: &CancellationToken,
) -> u64 {
    let mut total = 0u64;
    while !shutdown.is_cancelled() {
        match store.prune_bookkeeping(step).await {
            Ok(n) => {
                total += n;
                if n < step as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the store's bookkeeping");
                break;
            }
        }
        // Let other writes in between steps.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    total
}

async fn reload_rules(state: Arc<AppState>, cfg: Config, shutdown: CancellationToken) {
    let mut seen = state.store.rules_version().await.ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RULES_POLL) => {},
            _ = shutdown.cancelled() => return,
        }
        let version = match state.store.rules_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check for rule changes");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        let _reloading = state.ingestor.reloading().await;
        match load_planner(state.store.as_ref(), &cfg).await {
            Ok(planner) => {
                tracing::info!(rules = planner.rules().len(), "rules reloaded");
                state.ingestor.set_planner(planner);
                seen = Some(version);
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload rules"),
        }
    }
}

/// Deletes what the retention (if any) has passed, then the store's bookkeeping nothing
/// needs, a few thousand rows at a time so ingest never waits long behind it.
async fn prune(
    store: Arc<dyn Store>,
    retention: Option<Duration>,
    clock: Clock,
    shutdown: CancellationToken,
) {
    loop {
        let mut total = 0u64;
        let cut =
            retention.map(|r| clock.now_ms() - i64::try_from(r.as_millis()).unwrap_or(i64::MAX));
        while let Some(before) = cut {
            if shutdown.is_cancelled() {
                return;
            }
            match store.prune(before, PRUNE_STEP).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old log records");
                    break;
                }
            }
            // Let other writes in between steps.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if total > 0 {
            tracing::info!(rows = total, "pruned old log records");
        }
        // Then the store's own bookkeeping, however much piled up since the last pass.
        prune_bookkeeping(store.as_ref(), PRUNE_STEP, &shutdown).await;
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {},
            _ = shutdown.cancelled() => return,
        }
    }
}
