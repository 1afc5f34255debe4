//! Queue policy: the pure decisions every store backend calls, so that backends only persist.
//!
//! * [`claim`]: which batch a lane sends next: a batch due for another attempt, or a new one
//!   formed from pending jobs once it is full or has lingered long enough, within the daily
//!   quota.
//! * [`finish`]: what a provider's answer does to a batch: done, retry at a time, split in
//!   two, park until the quota resets, or dead letter.
//! * [`record`]: the status of a log record from the states of its jobs.
//! * [`lease`]: who holds a lane, on the store's clock, with a fencing token.
//! * [`fanout`]: a target of an account with several lanes, stored once and expanded into
//!   the lanes' jobs in bounded slices just ahead of sending.
//! * [`interval`]: a rule's `min_interval_ms`: a purged target is held, and jobs for it wait.
//! * [`collapse`]: `collapse_to_dir_over`: URLs the day's quota would not cover become one
//!   directory purge per crowded directory.
//!
//! Nothing here performs I/O or reads a clock: times are passed in.

pub mod claim;
pub mod collapse;
pub mod fanout;
pub mod finish;
pub mod interval;
pub mod lease;
pub mod record;

use edgepurge_core::TargetKind;
use serde::{Deserialize, Serialize};

pub use crate::limits::KindLimits;
pub use fanout::FanoutClaim;

/// Milliseconds since the Unix epoch.
pub type Ms = i64;

/// Status of a job, and of a log record (the worst of its jobs).
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
    pub const ALL: [Status; 6] = [
        Status::Skipped,
        Status::Succeeded,
        Status::Sent,
        Status::Queued,
        Status::Failed,
        Status::Dead,
    ];

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

    /// Whether nothing more will happen to it without `edgepurge retry`.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Skipped | Status::Succeeded | Status::Dead)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; use queued, sent, succeeded, failed, dead or skipped"
                )
            })
    }
}

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    /// Waiting to be sent (first time or again) from `not_before` on.
    Ready,
    /// Sent by the lane holder whose fencing token it carries; no answer recorded yet.
    Inflight,
    Succeeded,
    Dead,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Ready => "ready",
            BatchState::Inflight => "inflight",
            BatchState::Succeeded => "succeeded",
            BatchState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for BatchState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ready" => BatchState::Ready,
            "inflight" => BatchState::Inflight,
            "succeeded" => BatchState::Succeeded,
            "dead" => BatchState::Dead,
            other => return Err(format!("unknown batch state {other:?}")),
        })
    }
}

/// What a lane asks for when it has a free send slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub lane: String,
    pub owner: String,
    /// The fencing token of the lane lease the caller holds.
    pub token: i64,
    pub now: Ms,
    /// Wait at most this long after a job's arrival for the batch to fill.
    pub linger_ms: i64,
    /// The target kinds this lane sends, with their limits, in the order to serve them.
    pub kinds: Vec<(TargetKind, KindLimits)>,
    /// The provider's quota day for `now` (e.g. days since epoch in Beijing time) and when
    /// that day ends.
    pub quota_day: i64,
    pub quota_reset_at: Ms,
    /// The account's `collapse_to_dir_over` (see [`collapse`]); `None`: never collapse.
    pub collapse_to_dir_over: Option<u32>,
    /// A lane of a provider account with several lanes: expand a slice of the account's
    /// fan-out targets into the lanes' jobs first, when this lane's backlog is low
    /// ([`fanout`]).
    pub fanout: Option<FanoutClaim>,
}

impl ClaimRequest {
    pub fn limits(&self, kind: TargetKind) -> Option<KindLimits> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, l)| *l)
    }
}

/// A batch handed to a lane to send.
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
    /// Re-queued by `edgepurge retry`: the operator says the cause is fixed, so what a
    /// purger learned about these targets (e.g. a domain refused lately) no longer holds.
    pub requeued: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Batch(ClaimedBatch),
    /// Nothing to send before `until` (linger, backoff or quota). With `fill_after: Some(n)`
    /// the wait is only for lingering jobs: new work changes the answer once `n` more jobs
    /// arrived (a batch is full); with `None` any new work may.
    Wait {
        until: Ms,
        fill_after: Option<u64>,
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
    /// The provider is down: hold the batch until this time (the lane's next probe), without
    /// counting an attempt against the retry limit.
    Held(Ms),
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
            FinishOutcome::Held(_) => "held",
            FinishOutcome::Dead => "dead",
        }
    }
}

/// The answer to one send, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub batch_id: i64,
    /// The fencing token the batch was claimed with; an answer carrying an older token than
    /// the batch's (its lane changed hands and the batch was resent) is recorded as a request
    /// but does not change the batch.
    pub token: i64,
    pub started_at: Ms,
    pub now: Ms,
    pub outcome: FinishOutcome,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
    /// Targets that failed on their own (by index in the batch's target list): they leave
    /// the batch, each group into a batch of its own with its own outcome, and `outcome`
    /// applies to the rest. Ignored when `outcome` is `Split`. Each group's outcome is
    /// `RetryAt`, `Held` or `Dead`.
    pub detached: Vec<Detached>,
    /// When the purge succeeded with a task id the provider can be asked about, the first
    /// time to ask whether the task completed (the batch's task is followed from then on).
    /// `None`: the purge is complete when answered.
    pub follow_task_at: Option<Ms>,
}

/// A provider task to ask about: a batch that succeeded with a task id not yet known to be
/// complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedTask {
    pub batch_id: i64,
    pub task_id: String,
    /// When the purge was answered.
    pub sent_at: Ms,
    /// How many times the provider was asked already.
    pub checks: u32,
}

/// What asking the provider about a task found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskProgress {
    /// Still running: ask again at this time.
    Running { next_check_at: Ms },
    /// The caches no longer serve the old copies (from this time).
    Completed { at: Ms },
    /// The provider says the task failed; the error says what it reported.
    Failed { error: String },
    /// No answer worth waiting for any more (the provider does not know the task, or it ran
    /// past the time allowed): completion cannot be confirmed.
    Abandoned { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUpdate {
    pub batch_id: i64,
    pub progress: TaskProgress,
}

/// Some of a batch's targets and what happens to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detached {
    pub indices: Vec<usize>,
    pub outcome: FinishOutcome,
    pub error: String,
}

/// A change to a quota counter: `delta` targets on `day` (negative returns a reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaChange {
    pub kind: TargetKind,
    pub day: i64,
    pub delta: i64,
}
