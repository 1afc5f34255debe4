//! Configuration: TOML parsed into raw structs, then a pure [`RawConfig::validate`] turns it
//! into checked [`Config`] values with every problem named (section, field, why). Only then
//! are stores and clients opened. `edgepurge config check` is parse + validate.

use crate::dispatch::{DispatchSettings, RetryPolicy};
use crate::limits::KindLimits;
use crate::purgers::http_purge::{self, HttpPurgeNode, HttpPurgeSettings, Preset};
use crate::purgers::tencent::{self, TencentSettings};
use crate::purgers::{Limits, Purger};
use crate::secret::SecretSource;
use crate::store::Synchronous;
use edgepurge_core::rule::valid_name;
use edgepurge_core::{Rule, RuleSpec, TargetKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
pub const DEFAULT_STORE: &str = "edgepurge.db";
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

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
    pub providers: BTreeMap<String, RawProvider>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<PathBuf>,
    pub synchronous: Option<Synchronous>,
    pub busy_timeout_ms: Option<u64>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub retention_days: Option<u32>,
    pub record_unmatched: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RawProvider {
    TencentCdn(RawTencent),
    HttpPurge(RawHttpPurge),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpPurge {
    pub preset: Option<Preset>,
    #[serde(default)]
    pub nodes: Vec<String>,
    pub purge_method: Option<String>,
    pub ok_status: Option<Vec<u16>>,
    pub dir_method: Option<String>,
    pub dir_header: Option<String>,
    pub tag_method: Option<String>,
    pub tag_header: Option<String>,
    pub timeout_s: Option<u64>,
    pub node_concurrency: Option<usize>,
    pub concurrency: Option<usize>,
    pub rate_per_s: Option<f64>,
    pub max_urls_per_request: Option<usize>,
    pub max_dirs_per_request: Option<usize>,
    pub max_tags_per_request: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTencent {
    pub endpoint: Option<String>,
    pub secret_id_env: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    pub secret_key_env: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub session_token_env: Option<String>,
    pub session_token_file: Option<PathBuf>,
    pub area: Option<String>,
    pub flush_type: Option<String>,
    pub url_encode: Option<bool>,
    pub timeout_s: Option<u64>,
    pub rate_per_s: Option<f64>,
    pub concurrency: Option<usize>,
    pub max_urls_per_request: Option<usize>,
    pub max_dirs_per_request: Option<usize>,
    pub url_daily_quota: Option<u64>,
    pub dir_daily_quota: Option<u64>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: Option<PathBuf>,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub dispatch: DispatchSettings,
    pub log: LogConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub webhook_token: Option<SecretSource>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// How long a write waits for another process's write lock before failing (503).
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub retention: Option<Duration>,
    pub record_unmatched: bool,
}

#[derive(Debug, Clone)]
pub enum ProviderConfig {
    Tencent(TencentSettings),
    HttpPurge(HttpPurgeSettings),
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::Tencent(_) => "tencent-cdn",
            ProviderConfig::HttpPurge(_) => "http-purge",
        }
    }

    /// The queue lanes this account's targets go to: one per account, or one per cache node.
    pub fn lanes(&self) -> Vec<String> {
        match self {
            ProviderConfig::Tencent(t) => vec![t.name.clone()],
            ProviderConfig::HttpPurge(h) => h.nodes.iter().map(|n| h.lane_name(n)).collect(),
        }
    }

    fn limits(&self) -> &Limits {
        match self {
            ProviderConfig::Tencent(t) => &t.limits,
            ProviderConfig::HttpPurge(h) => &h.limits,
        }
    }

    /// Whether this account can purge targets of `kind`.
    pub fn supports(&self, kind: TargetKind) -> bool {
        self.limits().supports(kind)
    }

    pub fn build(&self) -> Result<Vec<Arc<dyn Purger>>, String> {
        match self {
            ProviderConfig::Tencent(t) => Ok(vec![
                Arc::new(tencent::TencentCdn::new(t.clone())?) as Arc<dyn Purger>
            ]),
            ProviderConfig::HttpPurge(h) => Ok(HttpPurgeNode::build(h)?
                .into_iter()
                .map(|n| Arc::new(n) as Arc<dyn Purger>)
                .collect()),
        }
    }
}

/// Every problem found, one per line, each naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(p: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![p.into()],
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(format!("cannot read config {}: {e}", path.display())))?;
    let raw = parse(&text).map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
    let mut cfg = raw.validate().map_err(|mut e| {
        for p in &mut e.problems {
            *p = format!("{}: {p}", path.display());
        }
        e
    })?;
    cfg.file = Some(path.to_owned());
    Ok(cfg)
}

/// Reads `path` if given, else the defaults (no providers, no rules).
pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => load(p),
        None => RawConfig::default().validate(),
    }
}

pub fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }
    fn check<T>(&mut self, r: Result<T, String>, at: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(format!("{at}: {e}"));
                None
            }
        }
    }
}

fn positive(v: Option<u64>, default: u64, at: &str, p: &mut Problems) -> u64 {
    match v {
        Some(0) => {
            p.push(format!("{at}: must be greater than 0"));
            default
        }
        Some(n) => n,
        None => default,
    }
}

impl RawConfig {
    /// Checks everything without touching the network, the disk or the environment.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut p = Problems(Vec::new());

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
        let server = ServerConfig {
            listen,
            webhook_token,
            max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
        };

        let store = StoreConfig {
            path: self
                .store
                .path
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
            synchronous: self.store.synchronous.unwrap_or_default(),
            busy_timeout_ms: self.store.busy_timeout_ms.unwrap_or(10_000),
        };

        let d = &self.dispatch;
        let defaults = DispatchSettings::default();
        let retry_defaults = RetryPolicy::default();
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let dispatch = DispatchSettings {
            linger_ms: ms(d.linger_ms.unwrap_or(defaults.linger_ms as u64)),
            retry: RetryPolicy {
                max_attempts: match d.max_attempts {
                    Some(0) => {
                        p.push("dispatch.max_attempts: must be at least 1");
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
        };
        if dispatch.retry.backoff_base_ms > dispatch.retry.backoff_max_ms {
            p.push("dispatch.backoff_base_ms: must not exceed dispatch.backoff_max_ms");
        }

        let log = LogConfig {
            retention: match self.log.retention_days {
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(u64::from(days) * 86_400)),
                None => Some(Duration::from_secs(30 * 86_400)),
            },
            record_unmatched: self.log.record_unmatched.unwrap_or(true),
        };

        let mut providers = BTreeMap::new();
        for (name, raw) in self.providers {
            let at = format!("providers.{name}");
            if !valid_name(&name) {
                p.push(format!(
                    "{at}: provider names are 1-64 characters of A-Z a-z 0-9 . _ -"
                ));
                continue;
            }
            match raw {
                RawProvider::TencentCdn(t) => {
                    if let Some(s) = validate_tencent(&name, t, &at, &mut p) {
                        providers.insert(name, ProviderConfig::Tencent(s));
                    }
                }
                RawProvider::HttpPurge(h) => {
                    if let Some(s) = validate_http_purge(&name, h, &at, &mut p) {
                        providers.insert(name, ProviderConfig::HttpPurge(s));
                    }
                }
            }
        }

        let mut rules = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, spec) in self.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            if !seen.insert(spec.name.clone()) {
                p.push(format!("{at}: rule name {:?} is used twice", spec.name));
                continue;
            }
            match spec.validate() {
                Ok(rule) => {
                    match providers.get(&rule.spec.provider) {
                        None => p.push(format!(
                            "{at}: rule {:?}: provider {:?} is not defined; add [providers.{}]",
                            rule.spec.name, rule.spec.provider, rule.spec.provider
                        )),
                        Some(pc) if !pc.supports(rule.spec.mode.target_kind()) => p.push(format!(
                            "{at}: rule {:?}: provider {:?} ({}) cannot purge with mode = {:?}",
                            rule.spec.name,
                            rule.spec.provider,
                            pc.kind(),
                            rule.spec.mode.as_str()
                        )),
                        Some(_) => {}
                    }
                    rules.push(rule);
                }
                Err(e) => p.push(format!("{at}: {e}")),
            }
        }

        if !p.0.is_empty() {
            return Err(ConfigError { problems: p.0 });
        }
        Ok(Config {
            file: None,
            server,
            store,
            dispatch,
            log,
            providers,
            rules,
        })
    }
}

fn validate_tencent(
    name: &str,
    t: RawTencent,
    at: &str,
    p: &mut Problems,
) -> Option<TencentSettings> {
    let endpoint_text = t.endpoint.as_deref().unwrap_or(tencent::DEFAULT_ENDPOINT);
    let endpoint = p.check(
        url::Url::parse(endpoint_text)
            .map_err(|e| format!("{endpoint_text:?} is not a URL ({e})"))
            .and_then(|u| {
                let loopback = matches!(
                    u.host(),
                    Some(url::Host::Ipv4(ip)) if ip.is_loopback()
                ) || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                    || u.host_str() == Some("localhost");
                match u.scheme() {
                    "https" => Ok(u),
                    "http" if loopback => Ok(u),
                    "http" => Err(format!(
                        "{endpoint_text:?}: plain http would send credentials in the clear; use \
                         https (http is allowed for loopback test endpoints only)"
                    )),
                    other => Err(format!("{endpoint_text:?}: unsupported scheme {other}")),
                }
            }),
        &format!("{at}.endpoint"),
    );
    let secret = |field: &str, env: Option<String>, file: Option<PathBuf>, default_env: &str| {
        SecretSource::from_fields(field, env.as_deref(), file.as_deref())
            .map(|s| s.unwrap_or_else(|| SecretSource::Env(default_env.to_owned())))
    };
    let secret_id = p.check(
        secret(
            "secret_id",
            t.secret_id_env,
            t.secret_id_file,
            "TENCENTCLOUD_SECRETID",
        ),
        at,
    );
    let secret_key = p.check(
        secret(
            "secret_key",
            t.secret_key_env,
            t.secret_key_file,
            "TENCENTCLOUD_SECRETKEY",
        ),
        at,
    );
    let session_token = p.check(
        secret(
            "session_token",
            t.session_token_env,
            t.session_token_file,
            "TENCENTCLOUD_SESSIONTOKEN",
        ),
        at,
    );
    if let Some(area) = &t.area {
        if area != "mainland" && area != "overseas" {
            p.push(format!(
                "{at}.area: {area:?} is not mainland or overseas (omit it to use each domain's \
                 own region)"
            ));
        }
    }
    let flush_type = t.flush_type.unwrap_or_else(|| "flush".to_owned());
    if flush_type != "flush" && flush_type != "delete" {
        p.push(format!(
            "{at}.flush_type: {flush_type:?} is not flush or delete"
        ));
    }
    let d = tencent::default_limits();
    let within =
        |v: Option<usize>, default: usize, max: usize, field: &str, p: &mut Problems| match v {
            Some(n) if n == 0 || n > max => {
                p.push(format!("{at}.{field}: must be 1 to {max}"));
                default
            }
            Some(n) => n,
            None => default,
        };
    let default_of = |kind: TargetKind| {
        d.kind(kind).copied().unwrap_or(KindLimits {
            max_batch: 1,
            daily_quota: None,
        })
    };
    let quota = |v: Option<u64>, default: Option<u64>| match v {
        Some(0) => None,
        Some(n) => Some(n),
        None => default,
    };
    let (du, dd) = (default_of(TargetKind::Url), default_of(TargetKind::Dir));
    let limits = Limits {
        kinds: vec![
            (
                TargetKind::Url,
                KindLimits {
                    max_batch: within(
                        t.max_urls_per_request,
                        du.max_batch,
                        1000,
                        "max_urls_per_request",
                        p,
                    ),
                    daily_quota: quota(t.url_daily_quota, du.daily_quota),
                },
            ),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: within(
                        t.max_dirs_per_request,
                        dd.max_batch,
                        500,
                        "max_dirs_per_request",
                        p,
                    ),
                    daily_quota: quota(t.dir_daily_quota, dd.daily_quota),
                },
            ),
        ],
        rate_per_s: match t.rate_per_s {
            Some(r) if !(r > 0.0 && r <= 20.0) => {
                p.push(format!(
                    "{at}.rate_per_s: must be above 0 and at most 20 (Tencent's limit)"
                ));
                d.rate_per_s
            }
            Some(r) => r,
            None => d.rate_per_s,
        },
        concurrency: within(t.concurrency, d.concurrency, 64, "concurrency", p),
        quota_utc_offset_s: d.quota_utc_offset_s,
    };
    let timeout = Duration::from_secs(positive(t.timeout_s, 30, &format!("{at}.timeout_s"), p));
    Some(TencentSettings {
        name: name.to_owned(),
        endpoint: endpoint?,
        secret_id: secret_id?,
        secret_key: secret_key?,
        session_token,
        area: t.area,
        flush_type,
        url_encode: t.url_encode.unwrap_or(false),
        timeout,
        limits,
    })
}

fn validate_http_purge(
    name: &str,
    h: RawHttpPurge,
    at: &str,
    p: &mut Problems,
) -> Option<HttpPurgeSettings> {
    let Some(preset) = h.preset else {
        p.push(format!(
            "{at}.preset: required: varnish, squid, trafficserver, nginx or custom"
        ));
        return None;
    };
    let mut methods = preset.methods();
    if h.nodes.is_empty() {
        p.push(format!(
            "{at}.nodes: list the cache nodes, e.g. [\"127.0.0.1:6081\"]"
        ));
    }
    let mut nodes: Vec<url::Url> = Vec::new();
    for n in &h.nodes {
        let text = if n.contains("://") {
            n.clone()
        } else {
            format!("http://{n}")
        };
        match url::Url::parse(&text) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                if nodes.contains(&u) {
                    p.push(format!("{at}.nodes: {n:?} is listed twice"));
                } else {
                    nodes.push(u);
                }
            }
            _ => p.push(format!(
                "{at}.nodes: {n:?} is not host:port or http(s)://host:port (no path)"
            )),
        }
    }
    if let Some(m) = h.purge_method {
        methods.purge_method = m;
    }
    if let Some(codes) = h.ok_status {
        if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
            p.push(format!(
                "{at}.ok_status: list HTTP status codes, e.g. [200, 404]"
            ));
        } else {
            methods.ok_status = codes;
        }
    }
    match (h.dir_method, h.dir_header) {
        (Some(m), _) if m.is_empty() => methods.dir = None,
        (Some(m), header) => {
            let keep = methods.dir.as_ref().and_then(|d| d.1.clone());
            let header = match header {
                Some(h) if h.is_empty() => None,
                Some(h) => Some(h),
                None => keep,
            };
            methods.dir = Some((m, header));
        }
        (None, Some(header)) => match &mut methods.dir {
            Some((_, hdr)) => *hdr = (!header.is_empty()).then_some(header),
            None => p.push(format!("{at}.dir_header: set dir_method too")),
        },
        (None, None) => {}
    }
    match (h.tag_method, h.tag_header) {
        (Some(m), _) if m.is_empty() => methods.tag = None,
        (Some(m), Some(header)) => methods.tag = Some((m, header)),
        (Some(m), None) => match &methods.tag {
            Some((_, hdr)) => methods.tag = Some((m, hdr.clone())),
            None => p.push(format!("{at}.tag_method: set tag_header too")),
        },
        (None, Some(header)) => match &mut methods.tag {
            Some((_, hdr)) => *hdr = header,
            None => p.push(format!("{at}.tag_header: set tag_method too")),
        },
        (None, None) => {}
    }
    for m in std::iter::once(&methods.purge_method)
        .chain(methods.dir.iter().map(|d| &d.0))
        .chain(methods.tag.iter().map(|t| &t.0))
    {
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            p.push(format!("{at}: {m:?} is not an HTTP method name"));
        }
    }
    let mut limits = http_purge::default_limits(&methods);
    for (kind, field, v) in [
        (
            TargetKind::Url,
            "max_urls_per_request",
            h.max_urls_per_request,
        ),
        (
            TargetKind::Dir,
            "max_dirs_per_request",
            h.max_dirs_per_request,
        ),
        (
            TargetKind::Tag,
            "max_tags_per_request",
            h.max_tags_per_request,
        ),
    ] {
        match (v, limits.kind_mut(kind)) {
            (Some(0), _) => p.push(format!("{at}.{field}: must be at least 1")),
            (Some(n), Some(k)) => k.max_batch = n,
            _ => {}
        }
    }
    if let Some(r) = h.rate_per_s {
        if r > 0.0 && r.is_finite() {
            limits.rate_per_s = r;
        } else {
            p.push(format!("{at}.rate_per_s: must be above 0"));
        }
    }
    match h.concurrency {
        Some(0) => p.push(format!("{at}.concurrency: must be at least 1")),
        Some(n) => limits.concurrency = n,
        None => {}
    }
    let node_concurrency = match h.node_concurrency {
        Some(0) => {
            p.push(format!("{at}.node_concurrency: must be at least 1"));
            8
        }
        Some(n) => n,
        None => 8,
    };
    Some(HttpPurgeSettings {
        name: name.to_owned(),
        nodes,
        methods,
        timeout: Duration::from_secs(positive(h.timeout_s, 10, &format!("{at}.timeout_s"), p)),
        node_concurrency,
        limits,
    })
}

#[cfg(test)]
mod tests;
