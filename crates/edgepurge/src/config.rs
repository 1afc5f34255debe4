//! Configuration: the file's top-level shape. TOML is parsed into raw structs, then a pure
//! [`RawConfig::validate`] turns it into checked [`Config`] values with every problem named
//! (section, field, why). Only then are stores and clients opened. `edgepurge config check`
//! is parse + validate.
//!
//! Each `[providers.NAME]` section belongs to its provider's module: this file only reads its
//! `kind` and hands the rest to that kind's checks ([`crate::purgers::KINDS`]). Rules are
//! checked once, by [`crate::rules::check`].

use crate::dispatch::{DispatchSettings, RetryPolicy};
use crate::purgers::{self, Providers};
use crate::secret::SecretSource;
use crate::store::sqlite::{DEFAULT_READERS, DEFAULT_WRITE_QUEUE};
use crate::store::Synchronous;
use crate::validate::{positive, seconds, within, Problem, Problems};
use edgepurge_core::rule::valid_name;
use edgepurge_core::{Rule, RuleSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
pub const DEFAULT_STORE: &str = "edgepurge.db";
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
pub const MAX_BUSY_TIMEOUT_MS: u64 = 3_600_000;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const MAX_CONNECTIONS: usize = 1_000_000;
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 60;
/// Below this much free space on the store's disk, `/readyz` says not ready.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub dispatch: RawDispatch,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub function: crate::sources::function::RawFunction,
    /// Event sources `edgepurge serve` runs beside the webhook, each checked by its kind.
    #[serde(default)]
    pub sources: Vec<toml::Table>,
    /// Each section is checked by its provider kind.
    #[serde(default)]
    pub providers: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub webhook_token_env: Option<String>,
    pub webhook_token_file: Option<PathBuf>,
    pub max_body_bytes: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_s: Option<u64>,
    pub body_timeout_s: Option<u64>,
    pub parse_budget_bytes: Option<u64>,
    /// `[server.pubsub_oidc]`: Pub/Sub push tokens accepted beside the webhook token.
    pub pubsub_oidc: Option<crate::server::RawPubsubOidc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<PathBuf>,
    /// A `postgres://` URL in this environment variable selects the PostgreSQL store.
    pub url_env: Option<String>,
    /// ... or in this file (re-read at every start).
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections in each node's pool.
    pub pool_size: Option<usize>,
    /// PostgreSQL with `sslmode=require`: CA certificates (PEM) for the server's certificate.
    pub ca_file: Option<PathBuf>,
    pub synchronous: Option<Synchronous>,
    pub busy_timeout_ms: Option<u64>,
    pub write_queue: Option<u64>,
    pub min_free_bytes: Option<u64>,
    pub max_jobs_per_body: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispatch {
    pub linger_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    pub max_age_s: Option<u64>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub retry_after_max_s: Option<u64>,
    pub lane_lease_s: Option<u64>,
    pub poll_ms: Option<u64>,
    pub drain_s: Option<u64>,
    pub down_after: Option<usize>,
    pub probe_interval_ms: Option<usize>,
    pub task_check_ms: Option<usize>,
    pub task_timeout_s: Option<usize>,
    pub quota_warn_percent: Option<usize>,
    pub verify_settle_ms: Option<u64>,
    pub verify_rate_per_s: Option<f64>,
    pub verify_concurrency: Option<usize>,
    pub verify_timeout_s: Option<u64>,
    pub verify_max_repurges: Option<u32>,
    pub warm_rate_per_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub retention_days: Option<u32>,
    pub record_unmatched: Option<bool>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: Option<PathBuf>,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub dispatch: DispatchSettings,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub function: crate::sources::function::FunctionConfig,
    pub sources: Vec<crate::sources::SourceConfig>,
    pub providers: Providers,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Who may read the service's details (`/healthz` in full). `None`: loopback callers.
    pub token: Option<SecretSource>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub webhook_token: Option<SecretSource>,
    pub max_body_bytes: usize,
    /// Most connections open at once (lowered at start to fit the open-file limit).
    pub max_connections: usize,
    /// A request head must arrive within this of the connection opening or of its previous
    /// answer; idle keep-alive connections are closed after it too.
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head.
    pub body_timeout: Duration,
    /// Body bytes parsed at once; bodies beyond it wait (at most `body_timeout`).
    pub parse_budget_bytes: usize,
    /// Pub/Sub push subscriptions with authentication whose tokens are accepted.
    pub pubsub_oidc: Option<crate::server::PubsubOidcConfig>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite file (unused when `url` is set).
    pub path: PathBuf,
    /// Where the PostgreSQL URL is read from (`[store] url_env` / `url_file`); set, it
    /// selects the PostgreSQL store.
    pub url: Option<SecretSource>,
    /// PostgreSQL: connections in the pool.
    pub pool_size: usize,
    /// PostgreSQL: CA certificates for the server's (with `sslmode=require`).
    pub ca_file: Option<PathBuf>,
    pub synchronous: Synchronous,
    /// How long a write waits for another process's write lock before failing (503).
    pub busy_timeout_ms: u64,
    /// Most events waiting to be written; beyond it ingest answers 503 at once.
    pub write_queue: usize,
    /// Below this much free space on the store's disk the store says it is not ready.
    pub min_free_bytes: u64,
    /// Most queue rows one body may add (one transaction); a target fanned out to an
    /// account's lanes counts once.
    pub max_jobs_per_body: usize,
}

impl StoreConfig {
    /// Whether several nodes may share the store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.url.is_some()
    }

    /// Which store this is, for messages (never the URL itself: it may hold a password).
    pub fn describe(&self) -> String {
        match &self.url {
            Some(src) => format!("PostgreSQL (URL from {src})"),
            None => self.path.display().to_string(),
        }
    }

    /// The PostgreSQL options these settings ask for.
    pub fn pg_options(&self, upgrade: bool) -> crate::store::PgOptions {
        crate::store::PgOptions {
            pool_size: self.pool_size,
            write_queue: self.write_queue,
            upgrade,
            ca_file: self.ca_file.clone(),
            ..Default::default()
        }
    }

    /// The SQLite options these settings ask for.
    pub fn sqlite_options(&self) -> crate::store::SqliteOptions {
        crate::store::SqliteOptions {
            synchronous: self.synchronous,
            busy_timeout_ms: self.busy_timeout_ms,
            write_queue: self.write_queue,
            readers: DEFAULT_READERS,
            min_free_bytes: self.min_free_bytes,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub retention: Option<Duration>,
    pub record_unmatched: bool,
}

/// Every problem found, one per line, each naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(at: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![Problem {
                at: at.into(),
                message: message.into(),
            }],
        }
    }
}

/// Validates a config file's text; every problem names the file.
pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let raw = parse(text).map_err(|e| ConfigError::one(&file, e))?;
    let mut cfg = raw.validate().map_err(|mut e| {
        for p in &mut e.problems {
            p.at = if p.at.is_empty() {
                file.clone()
            } else {
                format!("{file}: {}", p.at)
            };
        }
        e
    })?;
    cfg.file = Some(path.to_owned());
    Ok(cfg)
}

/// Reads and validates a config file, blocking (tests; the program uses
/// [`load_or_default`]).
#[cfg(test)]
pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one("", format!("cannot read config {}: {e}", path.display())))?;
    from_text(path, &text)
}

/// Reads `path` if given, else the defaults (no providers, no rules), without blocking the
/// async runtime.
pub async fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => {
            let text = tokio::fs::read_to_string(p).await.map_err(|e| {
                ConfigError::one("", format!("cannot read config {}: {e}", p.display()))
            })?;
            from_text(p, &text)
        }
        None => RawConfig::default().validate(),
    }
}

pub fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

impl RawConfig {
    /// Checks everything without touching the network, the disk or the environment.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();

        let listen_text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = p
            .check(
                listen_text
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{listen_text:?} is not IP:PORT ({e})")),
                "server.listen",
            )
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8470)));
        let webhook_token = p
            .check(
                SecretSource::from_fields(
                    "webhook_token",
                    self.server.webhook_token_env.as_deref(),
                    self.server.webhook_token_file.as_deref(),
                ),
                "server",
            )
            .flatten();
        let max_body = positive(
            self.server.max_body_bytes,
            DEFAULT_MAX_BODY,
            "server.max_body_bytes",
            &mut p,
        );
        let max_body_bytes = usize::try_from(max_body).unwrap_or(usize::MAX);
        let parse_budget_bytes = match self.server.parse_budget_bytes {
            Some(n) if n < max_body || n > u64::from(u32::MAX) => {
                p.push(
                    "server.parse_budget_bytes",
                    format!(
                        "must be from server.max_body_bytes ({max_body}) to {} (a body of the \
                         largest size must fit)",
                        u32::MAX
                    ),
                );
                max_body_bytes
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => crate::app::DEFAULT_PARSE_BUDGET.max(max_body_bytes),
        };
        let pubsub_oidc = self.server.pubsub_oidc.and_then(|raw| {
            crate::server::PubsubOidcConfig::check(raw, "server.pubsub_oidc", &mut p)
        });
        let server = ServerConfig {
            listen,
            webhook_token,
            pubsub_oidc,
            parse_budget_bytes,
            max_body_bytes,
            max_connections: within(
                self.server.max_connections,
                DEFAULT_MAX_CONNECTIONS,
                MAX_CONNECTIONS,
                "server.max_connections",
                &mut p,
            ),
            header_timeout: seconds(
                self.server.header_timeout_s,
                DEFAULT_HEADER_TIMEOUT_S,
                "server.header_timeout_s",
                &mut p,
            ),
            body_timeout: seconds(
                self.server.body_timeout_s,
                DEFAULT_BODY_TIMEOUT_S,
                "server.body_timeout_s",
                &mut p,
            ),
        };

        let url = p
            .check(
                SecretSource::from_fields(
                    "url",
                    self.store.url_env.as_deref(),
                    self.store.url_file.as_deref(),
                ),
                "store",
            )
            .flatten();
        if url.is_some() {
            if self.store.path.is_some() {
                p.push(
                    "store",
                    "set either path (SQLite) or url_env / url_file (PostgreSQL), not both",
                );
            }
            for (set, key) in [
                (self.store.synchronous.is_some(), "synchronous"),
                (self.store.busy_timeout_ms.is_some(), "busy_timeout_ms"),
                (self.store.min_free_bytes.is_some(), "min_free_bytes"),
            ] {
                if set {
                    p.push(
                        format!("store.{key}"),
                        "applies to the SQLite store only; remove it (PostgreSQL's own \
                         settings decide)",
                    );
                }
            }
        } else {
            for (set, key) in [
                (self.store.pool_size.is_some(), "pool_size"),
                (self.store.ca_file.is_some(), "ca_file"),
            ] {
                if set {
                    p.push(
                        format!("store.{key}"),
                        "applies to the PostgreSQL store only (set url_env or url_file)",
                    );
                }
            }
        }
        let store = StoreConfig {
            url,
            ca_file: self.store.ca_file,
            pool_size: within(
                self.store.pool_size,
                crate::store::postgres::DEFAULT_POOL_SIZE,
                1_000,
                "store.pool_size",
                &mut p,
            ),
            path: self
                .store
                .path
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
            synchronous: self.store.synchronous.unwrap_or_default(),
            busy_timeout_ms: match self.store.busy_timeout_ms {
                Some(ms) if ms > MAX_BUSY_TIMEOUT_MS => {
                    p.push(
                        "store.busy_timeout_ms",
                        format!("must be at most {MAX_BUSY_TIMEOUT_MS} (an hour)"),
                    );
                    10_000
                }
                v => v.unwrap_or(10_000),
            },
            write_queue: usize::try_from(positive(
                self.store.write_queue,
                DEFAULT_WRITE_QUEUE as u64,
                "store.write_queue",
                &mut p,
            ))
            .unwrap_or(usize::MAX),
            min_free_bytes: self.store.min_free_bytes.unwrap_or(DEFAULT_MIN_FREE_BYTES),
            max_jobs_per_body: within(
                self.store.max_jobs_per_body,
                crate::app::DEFAULT_MAX_JOBS,
                100_000_000,
                "store.max_jobs_per_body",
                &mut p,
            ),
        };
        let admin = AdminConfig {
            token: p
                .check(
                    SecretSource::from_fields(
                        "token",
                        self.admin.token_env.as_deref(),
                        self.admin.token_file.as_deref(),
                    ),
                    "admin",
                )
                .flatten(),
        };

        let function = crate::sources::function::FunctionConfig::check(self.function, &mut p);
        let mut sources = crate::sources::check(self.sources, &mut p);
        for s in &mut sources {
            match s {
                crate::sources::SourceConfig::Nats(n) => n.max_body_bytes = max_body_bytes,
                crate::sources::SourceConfig::Amqp(a) => a.max_body_bytes = max_body_bytes,
                crate::sources::SourceConfig::CfQueue(c) => c.max_body_bytes = max_body_bytes,
                crate::sources::SourceConfig::Poll(_) | crate::sources::SourceConfig::Sqs(_) => {}
            }
        }

        let d = &self.dispatch;
        let defaults = DispatchSettings::default();
        let retry_defaults = RetryPolicy::default();
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let dispatch = DispatchSettings {
            linger_ms: ms(d.linger_ms.unwrap_or(defaults.linger_ms as u64)),
            retry: RetryPolicy {
                max_attempts: match d.max_attempts {
                    Some(0) => {
                        p.push("dispatch.max_attempts", "must be at least 1");
                        retry_defaults.max_attempts
                    }
                    Some(n) => n,
                    None => retry_defaults.max_attempts,
                },
                max_age_ms: ms(positive(
                    d.max_age_s,
                    (retry_defaults.max_age_ms / 1000) as u64,
                    "dispatch.max_age_s",
                    &mut p,
                ))
                .saturating_mul(1000),
                backoff_base_ms: ms(positive(
                    d.backoff_base_ms,
                    retry_defaults.backoff_base_ms as u64,
                    "dispatch.backoff_base_ms",
                    &mut p,
                )),
                backoff_max_ms: ms(positive(
                    d.backoff_max_ms,
                    retry_defaults.backoff_max_ms as u64,
                    "dispatch.backoff_max_ms",
                    &mut p,
                )),
                retry_after_max_ms: ms(d
                    .retry_after_max_s
                    .unwrap_or((retry_defaults.retry_after_max_ms / 1000) as u64))
                .saturating_mul(1000),
            },
            lane_lease_ms: ms(positive(
                d.lane_lease_s,
                (defaults.lane_lease_ms / 1000) as u64,
                "dispatch.lane_lease_s",
                &mut p,
            ))
            .saturating_mul(1000),
            poll_ms: positive(d.poll_ms, defaults.poll_ms, "dispatch.poll_ms", &mut p),
            drain: Duration::from_secs(d.drain_s.unwrap_or(defaults.drain.as_secs())),
            health: crate::dispatch::HealthSettings {
                down_after: u32::try_from(within(
                    d.down_after,
                    defaults.health.down_after as usize,
                    1000,
                    "dispatch.down_after",
                    &mut p,
                ))
                .unwrap_or(defaults.health.down_after),
                probe_interval_ms: within(
                    d.probe_interval_ms,
                    defaults.health.probe_interval_ms as usize,
                    600_000,
                    "dispatch.probe_interval_ms",
                    &mut p,
                ) as i64,
            },
            tasks: crate::dispatch::FollowSettings {
                first_check_ms: within(
                    d.task_check_ms,
                    defaults.tasks.first_check_ms as usize,
                    600_000,
                    "dispatch.task_check_ms",
                    &mut p,
                ) as i64,
                timeout_ms: (within(
                    d.task_timeout_s,
                    (defaults.tasks.timeout_ms / 1000) as usize,
                    7 * 86_400,
                    "dispatch.task_timeout_s",
                    &mut p,
                ) as i64)
                    .saturating_mul(1000),
                ..defaults.tasks.clone()
            },
            quota_warn_percent: within(
                d.quota_warn_percent,
                usize::from(defaults.quota_warn_percent),
                100,
                "dispatch.quota_warn_percent",
                &mut p,
            ) as u8,
            verify: crate::dispatch::VerifySettings {
                settle_ms: match d.verify_settle_ms {
                    Some(v) if v > 3_600_000 => {
                        p.push(
                            "dispatch.verify_settle_ms",
                            "must be 0 to 3600000 (an hour)",
                        );
                        defaults.verify.settle_ms
                    }
                    Some(v) => ms(v),
                    None => defaults.verify.settle_ms,
                },
                rate_per_s: crate::validate::rate(
                    d.verify_rate_per_s,
                    defaults.verify.rate_per_s,
                    None,
                    "dispatch.verify_rate_per_s",
                    &mut p,
                ),
                concurrency: within(
                    d.verify_concurrency,
                    defaults.verify.concurrency,
                    256,
                    "dispatch.verify_concurrency",
                    &mut p,
                ),
                timeout: seconds(
                    d.verify_timeout_s,
                    defaults.verify.timeout.as_secs(),
                    "dispatch.verify_timeout_s",
                    &mut p,
                ),
                max_repurges: match d.verify_max_repurges {
                    Some(n) if n > 10 => {
                        p.push("dispatch.verify_max_repurges", "must be 0 to 10");
                        defaults.verify.max_repurges
                    }
                    Some(n) => n,
                    None => defaults.verify.max_repurges,
                },
                ..defaults.verify.clone()
            },
            warm: crate::dispatch::WarmSettings {
                rate_per_s: crate::validate::rate(
                    d.warm_rate_per_s,
                    defaults.warm.rate_per_s,
                    None,
                    "dispatch.warm_rate_per_s",
                    &mut p,
                ),
                ..defaults.warm.clone()
            },
        };
        if dispatch.tasks.timeout_ms <= dispatch.tasks.first_check_ms {
            p.push(
                "dispatch.task_timeout_s",
                "must be longer than dispatch.task_check_ms (else every task is given up at its \
                 first check)",
            );
        }
        if dispatch.retry.backoff_base_ms > dispatch.retry.backoff_max_ms {
            p.push(
                "dispatch.backoff_base_ms",
                "must not exceed dispatch.backoff_max_ms",
            );
        }

        let log = LogConfig {
            retention: match self.log.retention_days {
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(u64::from(days) * 86_400)),
                None => Some(Duration::from_secs(30 * 86_400)),
            },
            record_unmatched: self.log.record_unmatched.unwrap_or(true),
        };

        let mut providers = Providers::new();
        // Sections that exist but did not pass their checks (rules naming them are not told
        // the account is missing).
        let mut broken = std::collections::BTreeSet::new();
        for (name, mut section) in self.providers {
            let at = format!("providers.{name}");
            if !valid_name(&name) {
                p.push(
                    &at,
                    "provider names are 1-64 characters of A-Z a-z 0-9 . _ -",
                );
                continue;
            }
            let kind = match section.remove("kind") {
                Some(toml::Value::String(k)) => k,
                Some(_) => {
                    p.push(format!("{at}.kind"), "must be a string");
                    continue;
                }
                None => {
                    p.push(format!("{at}.kind"), format!("required: {}", kinds()));
                    continue;
                }
            };
            let Some(k) = purgers::kind(&kind) else {
                p.push(
                    format!("{at}.kind"),
                    format!("unknown provider kind {kind:?}; use {}", kinds()),
                );
                continue;
            };
            // A section with problems that still parsed is kept, so rules are checked against
            // it too (the config is refused either way).
            match (k.parse)(&name, section, &at, &mut p) {
                Some(cfg) => {
                    providers.insert(name, cfg);
                }
                None => {
                    broken.insert(name);
                }
            }
        }

        let mut rules = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, spec) in self.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            if !seen.insert(spec.name.clone()) {
                p.push(&at, format!("rule name {:?} is used twice", spec.name));
                continue;
            }
            // Every problem of the rule; one refused only for its provider is kept, so later
            // checks see it.
            let refusals = crate::rules::refusals(&spec, Some(&providers));
            for refusal in &refusals {
                match refusal {
                    crate::rules::RuleRefusal::UnknownProvider { rule, provider, .. }
                        if broken.contains(provider) =>
                    {
                        p.push(
                            &at,
                            format!(
                                "rule {rule:?}: provider {provider:?} has problems (listed \
                                 above); fix them first"
                            ),
                        );
                    }
                    e => p.push(&at, e.to_string()),
                }
            }
            if let Ok(rule) = spec.validate() {
                rules.push(rule);
            }
        }

        if !p.is_empty() {
            return Err(ConfigError {
                problems: p.into_vec(),
            });
        }
        Ok(Config {
            file: None,
            server,
            store,
            dispatch,
            log,
            admin,
            function,
            sources,
            providers,
            rules,
        })
    }
}

impl Config {
    /// Each provider or source secret that cannot be read now: where it is configured and
    /// what is missing.
    pub fn missing_secrets(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for s in &self.sources {
            for secret in s.required_secrets() {
                if let Err(e) = secret.check_present() {
                    out.push(Problem {
                        at: format!("sources {:?}", s.name()),
                        message: e,
                    });
                }
            }
        }
        for (name, p) in &self.providers {
            for s in p.required_secrets() {
                if let Err(e) = s.check_present() {
                    out.push(Problem {
                        at: format!("providers.{name}"),
                        message: e,
                    });
                }
            }
        }
        out
    }

    /// A warning for each secret file that every user of the machine can read.
    pub fn secret_warnings(&self) -> Vec<String> {
        let mut sources: Vec<&SecretSource> = Vec::new();
        sources.extend(self.server.webhook_token.as_ref());
        sources.extend(self.admin.token.as_ref());
        sources.extend(self.function.token.as_ref());
        sources.extend(self.store.url.as_ref());
        for s in &self.sources {
            sources.extend(s.secrets());
        }
        for p in self.providers.values() {
            sources.extend(p.secrets());
        }
        sources.iter().filter_map(|s| s.exposure()).collect()
    }
}

/// The provider kinds, for messages.
fn kinds() -> String {
    purgers::KINDS
        .iter()
        .map(|k| k.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
