//! The durable queue, the rules and the purge log, behind one object-safe trait.
//!
//! The store never decides *when* to call a provider (that is the dispatcher's job); it keeps
//! what must survive a crash and applies the dispatcher's decisions atomically:
//!
//! * `ingest`: events with their targets, committed before the sender is acknowledged;
//!   a target merges with a pending (not yet claimed) job for the same lane, kind and URL.
//! * `claim` / `finish`: a lane takes a batch of jobs, sends it, and records the outcome
//!   (succeeded, retry at, split, wait for quota, dead).
//! * lane leases: one process at a time runs a lane, so rate limits and quotas stay whole
//!   across every process that shares the store.
//!
//! Times are milliseconds since the Unix epoch, passed in by the caller.

#[cfg(test)]
pub mod conformance;
pub mod sqlite;

use async_trait::async_trait;
use edgepurge_core::{RuleSpec, TargetKind};
use serde::{Deserialize, Serialize};

pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Milliseconds since the Unix epoch.
pub type Ms = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or written (disk full, locked too long, I/O error).
    /// Callers answer 503 so the sender retries.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// Stored data that cannot be read back (a bug or a manual edit).
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where a rule came from: the config file (replaced at every start) or the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOrigin {
    Config,
    Cli,
}

impl RuleOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOrigin::Config => "config",
            RuleOrigin::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRule {
    pub spec: RuleSpec,
    pub origin: RuleOrigin,
    pub created_at: Ms,
}

/// One job to queue: purge `target` (a URL or directory) through `lane`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneJob {
    pub lane: String,
    pub kind: TargetKind,
    pub target: String,
}

/// The event part of a log record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Wire format (`ceph`, `aws-s3`, ...) or `manual` for CLI purges.
    pub format: String,
    /// Normalized event name (`ObjectCreated:Put`), or `manual`.
    pub name: String,
    pub bucket: String,
    pub key: String,
    pub id: Option<String>,
}

/// One log record to create: an event and what one rule (or nothing) made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    pub event: EventInfo,
    pub rule: Option<String>,
    pub provider: Option<String>,
    /// The URLs or directories, for the log.
    pub targets: Vec<String>,
    pub jobs: Vec<LaneJob>,
    /// Why nothing is purged, when `jobs` is empty ("no rule matched", "folder marker").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReceipt {
    /// Log record ids, in the order given.
    pub purge_ids: Vec<i64>,
    pub jobs_new: usize,
    pub jobs_merged: usize,
}

pub use crate::limits::KindLimits;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub lane: String,
    pub owner: String,
    pub now: Ms,
    /// Wait at most this long after a job's arrival for the batch to fill.
    pub linger_ms: i64,
    /// The target kinds this lane sends, with their limits, in the order to serve them.
    pub kinds: Vec<(TargetKind, KindLimits)>,
    /// The provider's quota day for `now` (e.g. days since epoch in Beijing time) and when
    /// that day ends.
    pub quota_day: i64,
    pub quota_reset_at: Ms,
}

impl ClaimRequest {
    pub fn limits(&self, kind: TargetKind) -> Option<KindLimits> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, l)| *l)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedBatch {
    pub id: i64,
    pub lane: String,
    pub kind: TargetKind,
    pub targets: Vec<String>,
    /// Which attempt this send is (1 for the first).
    pub attempt: u32,
    /// When the oldest event in the batch arrived.
    pub created_at: Ms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Batch(ClaimedBatch),
    /// Nothing to send before `until` (linger, backoff or quota), unless new work arrives.
    Wait {
        until: Ms,
    },
    Idle,
}

/// What the dispatcher decided after a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishOutcome {
    Succeeded,
    /// Try again at this time.
    RetryAt(Ms),
    /// Split the batch in two and send both halves now.
    Split,
    /// The provider's quota is spent: send again at this time, without counting an attempt
    /// against the retry limit.
    WaitUntil(Ms),
    /// Give up: dead letter, visible in the log, re-queued by `edgepurge retry`.
    Dead,
}

impl FinishOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            FinishOutcome::Succeeded => "succeeded",
            FinishOutcome::RetryAt(_) => "retry",
            FinishOutcome::Split => "split",
            FinishOutcome::WaitUntil(_) => "quota",
            FinishOutcome::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub batch_id: i64,
    /// The lane owner that sent it; an answer from a sender that lost the lane is recorded
    /// as a request but does not change the batch.
    pub owner: String,
    pub started_at: Ms,
    pub now: Ms,
    pub outcome: FinishOutcome,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
}

/// Status of a log record, worst of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to purge (no rule matched, folder marker).
    Skipped,
    Succeeded,
    Sent,
    Queued,
    /// The last attempt failed; another is scheduled.
    Failed,
    /// Given up; `edgepurge retry` re-queues it.
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Skipped => "skipped",
            Status::Succeeded => "succeeded",
            Status::Sent => "sent",
            Status::Queued => "queued",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Skipped | Status::Succeeded | Status::Dead)
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "skipped" => Status::Skipped,
            "succeeded" => Status::Succeeded,
            "sent" => Status::Sent,
            "queued" => Status::Queued,
            "failed" => Status::Failed,
            "dead" => Status::Dead,
            other => {
                return Err(format!(
                    "unknown status {other:?}; use queued, sent, succeeded, failed, dead or skipped"
                ))
            }
        })
    }
}

/// One purge log record: an event and what one rule made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub id: i64,
    pub seq: i64,
    pub time: Ms,
    pub updated: Ms,
    pub rule: Option<String>,
    pub provider: Option<String>,
    pub format: String,
    pub event: String,
    pub bucket: String,
    pub key: String,
    pub event_id: Option<String>,
    pub targets: Vec<String>,
    pub status: Status,
    pub attempts: u32,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub rule: Option<String>,
    pub status: Option<Status>,
    pub since: Option<Ms>,
    /// Only records changed after this `(seq, id)` position (for `--follow`), in change order.
    /// Many records share a `seq` (one per transaction), so the id is part of the cursor.
    pub after: Option<(i64, i64)>,
    pub ids: Option<Vec<i64>>,
    pub limit: usize,
}

/// One provider request (one attempt of one batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    pub id: i64,
    pub batch_id: i64,
    pub lane: String,
    pub kind: String,
    pub attempt: u32,
    pub targets: usize,
    pub started_at: Ms,
    pub finished_at: Ms,
    pub outcome: String,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
}

/// Queue depth of one lane, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LaneDepth {
    pub lane: String,
    pub pending: u64,
    pub waiting_batches: u64,
    pub inflight_batches: u64,
    pub dead_batches: u64,
    pub oldest_pending_at: Option<Ms>,
}

#[async_trait]
pub trait Store: Send + Sync {
    // --- rules
    async fn rules(&self) -> StoreResult<Vec<StoredRule>>;
    /// Adds a CLI rule; a rule of that name must not exist.
    async fn add_rule(&self, spec: RuleSpec, now: Ms) -> StoreResult<()>;
    /// Replaces every config rule with `specs`; fails if a name is taken by a CLI rule.
    async fn sync_config_rules(&self, specs: Vec<RuleSpec>, now: Ms) -> StoreResult<()>;
    async fn delete_rule(&self, name: &str) -> StoreResult<()>;
    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: Ms) -> StoreResult<()>;
    /// Changes whenever a rule changes, so servers reload.
    async fn rules_version(&self) -> StoreResult<i64>;

    // --- ingest
    async fn ingest(&self, records: Vec<IngestRecord>, now: Ms) -> StoreResult<IngestReceipt>;

    // --- lanes
    /// Takes or extends the lease on `lane`; true when `owner` holds it until `now + ttl_ms`.
    /// On taking it over, batches another owner left in flight become ready to resend.
    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        now: Ms,
        ttl_ms: i64,
    ) -> StoreResult<bool>;
    async fn release_lane(&self, lane: &str, owner: &str) -> StoreResult<()>;
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Claim>;
    async fn finish(&self, finish: Finish) -> StoreResult<()>;
    /// Raises today's used quota to at least `used` (the provider reported it).
    async fn note_quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
        used: u64,
    ) -> StoreResult<()>;
    async fn quota_used(&self, lane: &str, kind: TargetKind, day: i64) -> StoreResult<u64>;

    // --- log
    async fn log(&self, query: LogQuery) -> StoreResult<Vec<LogRecord>>;
    /// The newest change sequence number (start point for following the log).
    async fn log_cursor(&self) -> StoreResult<i64>;
    async fn requests(&self, since: Option<Ms>, limit: usize) -> StoreResult<Vec<RequestRecord>>;
    async fn depths(&self) -> StoreResult<Vec<LaneDepth>>;
    /// Re-queues dead batches (optionally of one lane, or holding a job of one rule).
    async fn retry_dead(&self, lane: Option<&str>, rule: Option<&str>, now: Ms)
        -> StoreResult<u64>;
    /// Deletes finished records, batches and requests older than `before`.
    async fn prune(&self, before: Ms) -> StoreResult<u64>;
    /// Checks the store answers (for /readyz).
    async fn ping(&self) -> StoreResult<()>;
}
