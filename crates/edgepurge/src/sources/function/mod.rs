//! Function mode: edgepurge as the code of a serverless function (Tencent SCF, AWS Lambda) or
//! of a one-shot command (`edgepurge handle`). Each body is handled on its own and nothing
//! must survive it: the targets are purged directly ([`DirectPurge`]) or the body is relayed
//! to a running edgepurge server (`[function] forward_to`), and the answer says whether the
//! platform should deliver the event again.

mod config;
mod forward;
pub mod package;
pub mod runtime;

pub use config::{FunctionConfig, RawFunction};
pub use forward::{ForwardReport, Forwarder};

use crate::app::{DirectError, DirectPurge, DirectReport, Planner};
use crate::config::Config;
use crate::store::StoredRule;
use serde::Serialize;
use tokio::time::Instant;

/// Most targets (and skipped events) logged one by one per body.
const LOGGED_TARGETS: usize = 100;

/// Most targets listed in a function's answer: about 300 bytes each, so the answer stays
/// far below the platforms' limits (Lambda: 6 MB) whatever the body.
pub const ANSWER_TARGETS: usize = 1000;

/// What one body did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Handled {
    Purged(DirectReport),
    Forwarded(ForwardReport),
}

impl Handled {
    /// Everything was purged (or durably queued by the server).
    pub fn ok(&self) -> bool {
        match self {
            Handled::Purged(r) => r.ok,
            Handled::Forwarded(r) => r.ok,
        }
    }

    /// Nothing is left that delivering the event again could fix: the invocation succeeds.
    pub fn settled(&self) -> bool {
        match self {
            Handled::Purged(r) => r.settled(),
            Handled::Forwarded(r) => r.ok,
        }
    }

    /// Why the invocation failed, in one line.
    pub fn failure_summary(&self) -> String {
        match self {
            Handled::Purged(r) => r.failure_summary(),
            Handled::Forwarded(r) => r.failure_summary(),
        }
    }

    /// The invocation's answer: the report, with at most [`ANSWER_TARGETS`] targets listed
    /// (the log has every one that was not purged).
    pub fn answer(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Handled::Purged(r) => serde_json::to_vec(&r.trimmed(ANSWER_TARGETS)),
            Handled::Forwarded(_) => serde_json::to_vec(self),
        }
    }

    /// The platform's name for the failure (Lambda's `errorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Handled::Purged(_) => "PurgeFailed",
            Handled::Forwarded(_) => "ForwardFailed",
        }
    }

    /// Logs what happened: one line for the body, one per target that was not purged (the
    /// platform collects these lines: they are the function's purge log).
    pub fn log(&self, request_id: &str, elapsed_ms: u128) {
        match self {
            Handled::Purged(r) => {
                for s in r.skipped.iter().take(LOGGED_TARGETS) {
                    tracing::info!(
                        request_id,
                        event = %s.event,
                        bucket = %edgepurge_core::printable(&s.bucket),
                        key = %edgepurge_core::printable(&s.key),
                        rule = s.rule.as_deref().unwrap_or("-"),
                        "purges nothing: {}",
                        s.note
                    );
                }
                let not_purged = || {
                    r.targets
                        .iter()
                        .filter(|t| t.outcome != crate::app::Outcome::Purged)
                };
                for t in not_purged().take(LOGGED_TARGETS) {
                    let error = t.error.as_deref().unwrap_or("-");
                    match t.outcome {
                        crate::app::Outcome::Refused => tracing::error!(
                            request_id, lane = %t.lane, target = %t.target, attempts = t.attempts,
                            error, "refused for good: not retried"
                        ),
                        _ => tracing::warn!(
                            request_id, lane = %t.lane, target = %t.target, attempts = t.attempts,
                            error, "not purged: the invocation fails so the platform retries"
                        ),
                    }
                }
                let unlogged = not_purged().count().saturating_sub(LOGGED_TARGETS)
                    + r.skipped.len().saturating_sub(LOGGED_TARGETS);
                if unlogged > 0 {
                    tracing::warn!(
                        request_id,
                        unlogged,
                        "more targets not purged or events skipped than are logged one by one"
                    );
                }
                tracing::info!(
                    request_id,
                    events = r.events,
                    targets = r.targets.len(),
                    purged = r.purged,
                    refused = r.refused,
                    failed = r.failed,
                    elapsed_ms = elapsed_ms as u64,
                    "handled"
                );
            }
            Handled::Forwarded(f) => {
                if f.ok {
                    tracing::info!(
                        request_id,
                        to = %f.forwarded_to,
                        attempts = f.attempts,
                        elapsed_ms = elapsed_ms as u64,
                        "forwarded"
                    );
                } else {
                    tracing::warn!(
                        request_id,
                        to = %f.forwarded_to,
                        attempts = f.attempts,
                        error = f.error.as_deref().unwrap_or("-"),
                        elapsed_ms = elapsed_ms as u64,
                        "not forwarded: the invocation fails so the platform retries"
                    );
                }
            }
        }
    }
}

/// Handles bodies as the config says: purge directly, or forward.
pub enum Handler {
    Direct(DirectPurge),
    Forward(Forwarder),
}

impl Handler {
    /// From a checked config: its rules and providers (there is no store in function mode,
    /// so rules come from the config file only). Fails when a credential it needs cannot be
    /// read, naming which.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Handler> {
        if let Some(url) = &cfg.function.forward_to {
            if let Some(token) = &cfg.function.token {
                token
                    .check_present()
                    .map_err(|e| anyhow::anyhow!("function: {e}"))?;
            }
            return Ok(Handler::Forward(Forwarder::new(
                url.clone(),
                cfg.function.token.clone(),
            )?));
        }
        let planner = check_config(cfg)?;
        let missing = cfg.missing_secrets();
        if !missing.is_empty() {
            anyhow::bail!(
                "credentials missing (set them in the function's environment or role):\n  {}",
                missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            );
        }
        let purgers = crate::service::build_purgers(cfg)?;
        Ok(Handler::Direct(DirectPurge::new(
            planner,
            purgers,
            cfg.store.max_jobs_per_body,
        )))
    }

    /// Handles one body; gives up on what is not done by `deadline`. An error means the body
    /// itself is unusable (delivering it again cannot help).
    pub async fn handle(&self, body: &[u8], deadline: Instant) -> Result<Handled, DirectError> {
        match self {
            Handler::Direct(d) => d.purge(body, deadline).await.map(Handled::Purged),
            Handler::Forward(f) => Ok(Handled::Forwarded(f.forward(body, deadline).await)),
        }
    }
}

/// Checks that a config can run as a function (without reading credentials, which exist only
/// where it runs): with `forward_to`, anything goes; else it needs rules that all pass.
/// Returns the planner of those rules.
pub fn check_config(cfg: &Config) -> anyhow::Result<Planner> {
    let stored: Vec<StoredRule> = cfg
        .rules
        .iter()
        .map(|r| StoredRule::from_config(&r.spec))
        .collect();
    let (planner, problems) = Planner::new(&stored, &cfg.providers, true);
    if cfg.function.forward_to.is_some() {
        return Ok(planner);
    }
    if cfg.rules.is_empty() {
        anyhow::bail!(
            "the config has no [[rules]]: a function purges with the config's rules only (there \
             is no store), so it would purge nothing"
        );
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(planner)
}

/// Reads the config function mode runs with: the TOML text in `EDGEPURGE_CONFIG_TOML` when
/// set, else the file (`--config` / `EDGEPURGE_CONFIG`).
pub async fn load_config(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    if let Ok(text) = std::env::var("EDGEPURGE_CONFIG_TOML") {
        if !text.trim().is_empty() {
            return crate::config::from_text(std::path::Path::new("EDGEPURGE_CONFIG_TOML"), &text)
                .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"));
        }
    }
    let Some(file) = file else {
        anyhow::bail!(
            "function mode needs a config: set EDGEPURGE_CONFIG to the file in the package \
             (edgepurge package puts it beside the binary) or EDGEPURGE_CONFIG_TOML to its text"
        );
    };
    crate::config::load_or_default(Some(file))
        .await
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}
