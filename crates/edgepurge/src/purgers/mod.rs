//! Purgers: one module per provider behind one trait. A purger knows its endpoint, signing,
//! request shape, per-request maximum and error classification; nothing else in the code knows
//! a provider's wire format. It never decides *when* to send (the dispatcher does).

pub mod http_purge;
pub mod tencent;

use async_trait::async_trait;
use edgepurge_core::TargetKind;
use std::time::Duration;

pub use crate::limits::KindLimits;

impl Limits {
    pub fn supports(&self, kind: TargetKind) -> bool {
        self.kind(kind).is_some()
    }

    pub fn kind(&self, kind: TargetKind) -> Option<&KindLimits> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, l)| l)
    }

    pub fn kind_mut(&mut self, kind: TargetKind) -> Option<&mut KindLimits> {
        self.kinds
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .map(|(_, l)| l)
    }
}

/// What the provider's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Transient (throttled, server error, network): try again later, no sooner than
    /// `after` when the provider said so.
    RetryLater {
        after: Option<Duration>,
    },
    /// Too many targets in one request: split the batch.
    Split,
    /// The daily quota is spent.
    QuotaExhausted,
    /// Will not succeed by retrying (bad credentials, unknown domain, malformed target).
    Fatal,
}

/// The outcome of one provider request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeResponse {
    pub verdict: Verdict,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    /// What went wrong, for the log and the operator; never holds a secret.
    pub error: Option<String>,
}

impl PurgeResponse {
    pub fn failed(verdict: Verdict, error: impl Into<String>) -> PurgeResponse {
        PurgeResponse {
            verdict,
            http_status: None,
            request_id: None,
            task_id: None,
            error: Some(error.into()),
        }
    }
}

/// Limits the dispatcher keeps for one lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The target kinds this lane can purge, with their per-request maximum and daily quota.
    pub kinds: Vec<(TargetKind, KindLimits)>,
    /// At most this many requests in any one second (below 1: one per 1/rate seconds).
    pub rate_per_s: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Offset of the provider's quota day from UTC, in seconds (Tencent: +8 h).
    pub quota_utc_offset_s: i32,
}

/// Per-kind quota reported by the provider itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindQuota {
    pub batch: usize,
    pub total: u64,
    pub available: u64,
}

/// Quota per target kind, as the provider reports it.
pub type ProviderQuota = Vec<(TargetKind, KindQuota)>;

#[async_trait]
pub trait Purger: Send + Sync {
    /// The queue lane this purger drains (the provider account name, or account/node).
    fn lane(&self) -> &str;
    /// The provider account (config name) this lane belongs to.
    fn provider(&self) -> &str;
    fn limits(&self) -> &Limits;
    /// Sends one request purging `targets` (all of one kind, at most the per-request maximum).
    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse;
    /// Asks the provider for its current quota, when it can tell.
    async fn quota(&self) -> Option<Result<ProviderQuota, String>> {
        None
    }
}

/// Truncates text for error messages (provider bodies can be large).
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let t = text.trim();
    if t.len() <= max {
        return t.to_owned();
    }
    let mut end = max;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &t[..end])
}

/// Reads a `Retry-After` header given in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
