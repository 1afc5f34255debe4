//! The durable queue, the rules and the purge log, behind one object-safe trait: the port
//! every store backend implements, and the conformance suite defines.
//!
//! The store never decides *when* to call a provider (the dispatcher does) nor *what* a claim
//! or an answer means (the queue policy in [`crate::queue`] does); it keeps what must survive
//! a crash and applies those decisions atomically:
//!
//! * `ingest`: log records with their jobs, committed before the sender is acknowledged; a
//!   job merges with a pending (not yet claimed) job for the same lane, kind and target.
//! * `claim` / `finish`: a lane takes a batch of jobs, sends it, and records the answer.
//! * lane leases: one process at a time runs a lane, so rate limits and quotas stay whole
//!   across every process sharing the store. Leases are decided on the **store's** clock and
//!   carry a fencing token that `claim` and `finish` must present.
//! * the change cursor: every change to a log record gets a position `(seq, id)`; positions
//!   are assigned in commit order, so a follower that reads "after my position" misses
//!   nothing, whatever number of processes write.
//!
//! Times other than lease times are milliseconds since the Unix epoch passed by the caller.

#[cfg(test)]
pub mod conformance;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use edgepurge_core::{RuleSpec, TargetKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use crate::queue::lease::Lease;
pub use crate::queue::{
    Claim, ClaimRequest, ClaimedBatch, Detached, FanoutClaim, Finish, FinishOutcome, FollowedTask,
    KindLimits, Ms, Status, TaskProgress, TaskUpdate,
};
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or written (disk full, locked too long, I/O error).
    /// Callers answer 503 so the sender retries.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Too much is waiting to be written: refused at once so the sender retries later.
    #[error("store busy: {0}")]
    Busy(String),
    /// The change conflicts with what is stored (a name taken, a rule from the config file).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller does not hold the lane lease it presented (it lapsed or changed hands).
    #[error("lane {lane} is not held by this process ({why}); not claiming")]
    LeaseLost { lane: String, why: String },
    /// The store was written by a newer edgepurge.
    #[error(
        "{path} has schema version {found}, newer than this edgepurge knows ({known}); upgrade \
         edgepurge (or restore a backup made before the upgrade)"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
    /// The store was written by an older edgepurge, and this handle may not upgrade it
    /// (command-line tools leave that to the server, so a running older server is not
    /// broken under it).
    #[error(
        "{path} has schema version {found}; this edgepurge uses {known}: stop the running \
         server(s), then run this version's `edgepurge migrate` (or start its `edgepurge \
         serve`) once to upgrade the store"
    )]
    SchemaTooOld {
        path: String,
        found: i64,
        known: i64,
    },
    /// Stored data that cannot be read back (a bug or a manual edit).
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
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

impl StoredRule {
    /// A config file rule as the store would hold it (not installed yet: no creation time).
    pub fn from_config(spec: &RuleSpec) -> StoredRule {
        StoredRule {
            spec: spec.clone(),
            origin: RuleOrigin::Config,
            created_at: 0,
        }
    }
}

/// What storing a config file's rules changed, by rule name: in a cluster the config rules
/// are shared, so a node started with a different file changes them for every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigRulesChange {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// How many config rules the store held before (none: a new store, nothing replaced).
    pub before: usize,
}

impl ConfigRulesChange {
    /// From the stored config rules and the new ones, each as (name, stored form).
    pub fn between(old: &[(String, String)], new: &[(String, String)]) -> ConfigRulesChange {
        let find = |set: &[(String, String)], name: &str| {
            set.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
        };
        let mut c = ConfigRulesChange::default();
        for (name, text) in new {
            match find(old, name) {
                None => c.added.push(name.clone()),
                Some(t) if &t != text => c.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        c.removed = old
            .iter()
            .filter(|(n, _)| find(new, n).is_none())
            .map(|(n, _)| n.clone())
            .collect();
        c.before = old.len();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl std::fmt::Display for ConfigRulesChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{what} {}", names.join(", ")))
        .collect();
        if parts.is_empty() {
            f.write_str("unchanged")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// One job to queue: purge `target` (a URL, directory or tag) through `lane`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneJob {
    pub lane: String,
    pub kind: TargetKind,
    pub target: String,
}

/// One target to purge on every lane (cache node) of a provider account with several, stored
/// once at ingest and expanded into the lanes' jobs just ahead of sending (see
/// [`crate::queue::fanout`]): a body costs O(targets) rows and time, whatever the node count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FanoutJob {
    /// The provider account.
    pub account: String,
    /// Its lanes as configured when the target was planned (the lanes woken at commit; the
    /// expansion uses the lanes configured when it runs).
    pub lanes: std::sync::Arc<[String]>,
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
    /// The object's ETag as the event gave it (what a fresh copy at the CDN shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The object's size in bytes as the event gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Whether the CDN serves the new object after a record's purge (a rule's `verify = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verified {
    /// To be checked once the purge completed.
    Pending,
    /// The CDN serves the object the event described (or, for a delete, answers 404/410).
    Fresh,
    /// The CDN still serves another copy (after the re-purges allowed).
    Stale,
    /// Could not be told (no validator in the event, not a URL, no answer); the note says why.
    Unverifiable,
}

impl Verified {
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::Pending => "pending",
            Verified::Fresh => "fresh",
            Verified::Stale => "stale",
            Verified::Unverifiable => "unverifiable",
        }
    }

    pub fn parse(s: &str) -> Option<Verified> {
        Some(match s {
            "pending" => Verified::Pending,
            "fresh" => Verified::Fresh,
            "stale" => Verified::Stale,
            "unverifiable" => Verified::Unverifiable,
            _ => return None,
        })
    }
}

/// A record's verification as it is created: pending (checked after the purge completed),
/// or unverifiable at once with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyStart {
    pub state: Verified,
    pub note: Option<String>,
    /// Re-purges before this record (0 for an event's own record).
    pub round: u32,
}

/// A record whose purge completed (or ended) and whose verification is due; taken for a
/// while by the process that verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueVerification {
    pub id: i64,
    pub event: EventInfo,
    pub rule: Option<String>,
    pub provider: String,
    pub targets: Vec<String>,
    pub status: Status,
    pub completed_at: Option<Ms>,
    pub error: Option<String>,
    pub round: u32,
    /// The record is to be warmed (its re-purge is too).
    pub warm: bool,
}

/// What verifying a record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyUpdate {
    pub id: i64,
    /// `Fresh`, `Stale` or `Unverifiable` (`Pending`: not decided, left to be taken again).
    pub verified: Verified,
    pub note: Option<String>,
}

/// Whether a record's purged URLs were prefetched into the CDN after its purge (a rule's
/// `warm = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Warmed {
    /// To be prefetched once the purge completed (and was verified, when the rule verifies).
    Pending,
    /// The provider accepted the prefetch (its task id kept), or every cache node answered.
    Warmed,
    /// The prefetch was refused or failed (quota spent, bad URL, no answer); the note says why.
    Failed,
    /// Not prefetched, by design: a delete, not a URL, the purge failed, or the CDN still
    /// served a stale copy; the note says which.
    Skipped,
}

impl Warmed {
    pub fn as_str(self) -> &'static str {
        match self {
            Warmed::Pending => "pending",
            Warmed::Warmed => "warmed",
            Warmed::Failed => "failed",
            Warmed::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Warmed> {
        Some(match s {
            "pending" => Warmed::Pending,
            "warmed" => Warmed::Warmed,
            "failed" => Warmed::Failed,
            "skipped" => Warmed::Skipped,
            _ => return None,
        })
    }
}

/// A record's warming as it is created: pending, or skipped at once with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmStart {
    pub state: Warmed,
    pub note: Option<String>,
}

/// A record whose purge completed (or ended), verified when its rule verifies, and whose
/// warming is due; taken for a while by the process that warms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWarming {
    pub id: i64,
    /// The event's name (a delete is never warmed).
    pub event: String,
    pub provider: String,
    pub targets: Vec<String>,
    pub status: Status,
    pub completed_at: Option<Ms>,
    pub error: Option<String>,
    /// What verifying found, when the rule verifies.
    pub verified: Option<Verified>,
}

/// What warming a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmUpdate {
    pub id: i64,
    /// `Warmed`, `Failed` or `Skipped` (`Pending`: not decided, taken again when its lease
    /// ends).
    pub warmed: Warmed,
    pub note: Option<String>,
    /// The provider's prefetch task id(s), when it gives one.
    pub task_id: Option<String>,
}

/// One log record to create: an event and what one rule (or nothing) made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    pub event: EventInfo,
    pub rule: Option<String>,
    pub provider: Option<String>,
    /// The URLs, directories or tags, for the log.
    pub targets: Vec<String>,
    pub jobs: Vec<LaneJob>,
    /// Targets for every lane of a provider account with several lanes, stored once each
    /// (expanded into `jobs` of each lane later, in bounded slices). A record has either
    /// `jobs` or `fanout`.
    pub fanout: Vec<FanoutJob>,
    /// Why nothing is purged, when `jobs` and `fanout` are empty ("no rule matched", "folder marker").
    pub note: Option<String>,
    /// Whether (and how) the CDN's copy is to be verified after the purge.
    pub verify: Option<VerifyStart>,
    /// Whether the purged URLs are to be prefetched after the purge (and verification).
    pub warm: Option<WarmStart>,
    /// The rule's `min_interval_ms` (0: none): a job of this record is not claimed before
    /// the last purge of its target through its lane plus this long, and its purge holds
    /// the target that long in turn. The store notes "held until <RFC 3339>
    /// (min_interval_ms)" on a record so held.
    pub min_interval_ms: Ms,
    /// The rule's `allow_host_purge`: its URLs may be collapsed into their host's root
    /// directory (`collapse_to_dir_over`) when every URL collapsed there allows it.
    pub allow_host_purge: bool,
}

/// Records made as they are written, for [`Store::ingest_from`]: a large body's records are
/// made one at a time from the body itself, so they are never all held at once.
pub trait RecordSource: Send + Sync {
    /// How many records [`RecordSource::each`] makes (what counts against the write queue).
    fn records(&self) -> usize;
    /// Hands each record to `f`, in order, stopping at `f`'s first error. Makes the same
    /// records every time it is called (a backend may call it again, e.g. to retry its
    /// transaction).
    fn each(&self, f: &mut dyn FnMut(IngestRecord) -> StoreResult<()>) -> StoreResult<()>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReceipt {
    /// Log record ids, in the order given.
    pub purge_ids: Vec<i64>,
    pub jobs_new: usize,
    pub jobs_merged: usize,
}

/// A log record whose status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordChange {
    pub id: i64,
    pub status: Status,
    /// Its purges completed at their providers (see [`LogRecord::completed_at`]).
    pub completed: bool,
    /// Nothing more will happen to it: final, and when succeeded, complete or its completion
    /// given up (a provider task failed or was lost).
    pub settled: bool,
}

impl RecordChange {
    /// The change a record shows with this status, completion time and error.
    pub fn of(id: i64, status: Status, completed_at: Option<Ms>, error: Option<&str>) -> Self {
        let completed = status == Status::Succeeded && completed_at.is_some();
        RecordChange {
            id,
            status,
            completed,
            settled: status.is_final()
                && (status != Status::Succeeded || completed || error.is_some()),
        }
    }
}

impl LogRecord {
    /// This record as a change (for waiters that read it back).
    pub fn change(&self) -> RecordChange {
        RecordChange::of(
            self.id,
            self.status,
            self.completed_at,
            self.error.as_deref(),
        )
    }
}

/// What recording an answer changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReceipt {
    /// The log records of the batch, with their new status (empty when the answer came too
    /// late to change the batch).
    pub records: Vec<RecordChange>,
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
    /// When every purge of the record had completed at its provider (a provider with purge
    /// tasks says so; others complete when they answer).
    pub completed_at: Option<Ms>,
    /// The event's ETag and size (what a fresh copy shows).
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// Whether the CDN serves the new object (rules with `verify = true`), and why so.
    pub verified: Option<Verified>,
    pub verify_note: Option<String>,
    /// Whether the purged URLs were prefetched (rules with `warm = true`), why not, and the
    /// provider's prefetch task id.
    pub warmed: Option<Warmed>,
    pub warm_note: Option<String>,
    pub warm_task: Option<String>,
    /// What the queue did with the record besides purging it as queued: "held until <RFC
    /// 3339> (min_interval_ms)", "collapsed into dir purge <dir>".
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub rule: Option<String>,
    pub status: Option<Status>,
    pub since: Option<Ms>,
    /// Only records changed after this `(seq, id)` position (for `--follow`), in change order.
    /// Many records share a `seq` (one per transaction), so the id is part of the cursor.
    pub after: Option<(i64, i64)>,
    /// Only records older than this id: the newest `limit` of them (paging back in time,
    /// for the admin API). Ignored with `after`.
    pub before: Option<i64>,
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

impl LaneDepth {
    /// Pending, waiting or in flight: work someone should send (dead letters wait for
    /// nobody).
    pub fn has_live_work(&self) -> bool {
        self.pending + self.waiting_batches + self.inflight_batches > 0
    }
}

/// Targets stored once for a provider account with several lanes (http-purge nodes) and not
/// yet expanded into its lanes' jobs: each will be one pending job on every lane, beyond
/// what [`LaneDepth::pending`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FanoutDepth {
    pub account: String,
    pub targets: u64,
    /// Arrival of the oldest event among them.
    pub oldest_at: Option<Ms>,
}

/// Which dead batches `retry_dead` re-queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryFilter {
    /// Only these lanes (`None`: every lane).
    pub lanes: Option<Vec<String>>,
    /// Only batches holding a purge of this rule.
    pub rule: Option<String>,
}

/// One object as a bucket listing shows it (the bucket poller's memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub etag: String,
    pub size: u64,
    /// `LastModified` as the listing gave it.
    pub modified: String,
}

/// A poller's stored listing: what it last saw, and of what (`scope` names the endpoint,
/// bucket and prefix; a listing of another scope is not compared with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub scope: String,
    pub objects: Vec<ListedObject>,
}

/// What changed in a poller's listing since it was saved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingChanges {
    /// Forget what was stored (another scope, or the first listing) before applying these.
    pub reset: bool,
    /// New or changed objects.
    pub upsert: Vec<ListedObject>,
    /// Keys no longer listed.
    pub remove: Vec<String>,
}

/// New work for a lane, queued by another process sharing the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkNotice {
    pub lane: String,
    /// Jobs queued (new or merged).
    pub jobs: u64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Announcements of work queued by *other* processes, so their idle lanes wake at once
    /// rather than at their next poll; `None` when the backend has none (SQLite: lanes poll).
    /// Announcements may be lost (a reconnect); polling stays the safety net.
    fn work_notices(&self) -> Option<tokio::sync::broadcast::Receiver<WorkNotice>> {
        None
    }

    // --- rules
    async fn rules(&self) -> StoreResult<Vec<StoredRule>>;
    /// Adds a CLI rule; a rule of that name must not exist.
    async fn add_rule(&self, spec: RuleSpec, now: Ms) -> StoreResult<()>;
    /// Replaces every config rule with `specs`; fails if a name is taken by a CLI rule.
    /// Says what changed, so a node whose file differs from the others' is noticed.
    async fn sync_config_rules(
        &self,
        specs: Vec<RuleSpec>,
        now: Ms,
    ) -> StoreResult<ConfigRulesChange>;
    async fn delete_rule(&self, name: &str) -> StoreResult<()>;
    async fn set_rule_enabled(&self, name: &str, enabled: bool, now: Ms) -> StoreResult<()>;
    /// Changes whenever a rule changes, so servers reload.
    async fn rules_version(&self) -> StoreResult<i64>;

    // --- ingest
    /// Commits records and their jobs; `Busy` when too much is already waiting to be written.
    async fn ingest(&self, records: Vec<IngestRecord>, now: Ms) -> StoreResult<IngestReceipt>;
    /// Commits the records `source` makes exactly as [`Store::ingest`] commits a list of them
    /// (one transaction: all or none). A backend may make them while it writes, so they are
    /// never all held at once; this default makes the list first.
    async fn ingest_from(
        &self,
        source: Arc<dyn RecordSource>,
        now: Ms,
    ) -> StoreResult<IngestReceipt> {
        let mut records = Vec::with_capacity(source.records());
        source.each(&mut |r| {
            records.push(r);
            Ok(())
        })?;
        self.ingest(records, now).await
    }

    // --- lanes
    /// Takes or extends the lease on `lane` for `ttl_ms` of the store's clock; `None` when
    /// another owner holds it. On taking it over (new fencing token), batches left in flight
    /// under an older token become ready to resend.
    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<Lease>>;
    /// Gives the lane up at once (keeping its token, so the next holder's is higher).
    async fn release_lane(&self, lane: &str, owner: &str) -> StoreResult<()>;
    /// Takes the next batch to send; `LeaseLost` unless the caller holds the lane with the
    /// token it presents.
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Claim>;
    /// Records an answer. One carrying an older fencing token than the batch's is recorded as
    /// a request but changes nothing else.
    async fn finish(&self, finish: Finish) -> StoreResult<FinishReceipt>;
    /// Tasks of `lane` to ask the provider about at `now`: batches that succeeded with a
    /// followed task not yet complete, whose next check is due; at most `limit`, the most
    /// overdue first.
    async fn tasks_due(&self, lane: &str, now: Ms, limit: usize) -> StoreResult<Vec<FollowedTask>>;
    /// Records what the provider said about followed tasks (an update for a batch no longer
    /// followed, e.g. resent meanwhile, changes nothing); returns the records that changed.
    async fn note_tasks(&self, updates: Vec<TaskUpdate>, now: Ms) -> StoreResult<FinishReceipt>;
    /// Records of `provider` to verify at `now`: verification pending and due, and the purge
    /// completed at or before `settled_before` (or ended: dead, or its completion given up);
    /// at most `limit`, the longest due first. Each is taken until `now + lease_ms`: no other
    /// caller gets it meanwhile, and after that (the taker crashed) it is due again.
    async fn verifications_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueVerification>>;
    /// The newest record after record `of` (same rule and provider account) for the same
    /// object, if any. A verification that finds another copy asks whether the object changed
    /// again meanwhile (that record is verified on its own).
    async fn newer_record(&self, of: &DueVerification) -> StoreResult<Option<i64>>;
    /// Records what verifying found (an update of a record not pending changes nothing);
    /// returns the records that changed.
    async fn note_verifications(
        &self,
        updates: Vec<VerifyUpdate>,
        now: Ms,
    ) -> StoreResult<FinishReceipt>;
    /// Records of `provider` to warm at `now`: warming pending and due, verification not
    /// pending, and the purge completed at or before `settled_before` (or ended: dead, or its
    /// completion given up); at most `limit`, the longest due first. Each is taken until
    /// `now + lease_ms`, as [`Store::verifications_due`].
    async fn warmings_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<DueWarming>>;
    /// Records what warming did (an update of a record not pending changes nothing); returns
    /// the records that changed.
    async fn note_warmings(&self, updates: Vec<WarmUpdate>, now: Ms) -> StoreResult<FinishReceipt>;
    /// Raises a day's used quota to at least `used` (the provider reported it).
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
    /// The newest change position's `seq` (start point for following the log).
    async fn log_cursor(&self) -> StoreResult<i64>;
    /// The newest `limit` provider requests (oldest first) started at or after `since` and,
    /// with `before`, numbered below it (paging back in time).
    async fn requests(
        &self,
        since: Option<Ms>,
        before: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RequestRecord>>;
    async fn depths(&self) -> StoreResult<Vec<LaneDepth>>;
    /// Per account with fan-out targets waiting to be expanded into its lanes' jobs, by
    /// account name.
    async fn fanout_depths(&self) -> StoreResult<Vec<FanoutDepth>>;
    /// [`Store::depths`] and [`Store::fanout_depths`] from one snapshot: a target fanned out
    /// between two separate reads would count in neither (or both), a dip or spike in the
    /// gauges and alerts that read them.
    async fn queue_depths(&self) -> StoreResult<(Vec<LaneDepth>, Vec<FanoutDepth>)>;
    /// Makes the lane's batches waiting after a failure (backoff, or held while the provider
    /// was down) due at `now`: the provider answers again. Batches waiting for quota stay.
    /// Returns how many.
    async fn release_held(&self, lane: &str, now: Ms) -> StoreResult<u64>;
    /// Re-queues dead batches; returns how many.
    async fn retry_dead(&self, filter: RetryFilter, now: Ms) -> StoreResult<u64>;
    /// Deletes at most about `max_rows` finished records, batches and requests older than
    /// `before`; returns how many rows went. Callers repeat until it returns 0, so no single
    /// transaction holds the writer long.
    async fn prune(&self, before: Ms, max_rows: usize) -> StoreResult<u64>;
    /// Deletes at most `max_rows` rows of the backend's own bookkeeping that nothing needs
    /// any more (none by default); callers repeat until it returns 0.
    async fn prune_bookkeeping(&self, _max_rows: usize) -> StoreResult<u64> {
        Ok(0)
    }
    /// Checks the store can commit a write now (for /readyz): the error says what is wrong
    /// (locked, read-only, failing disk, too little free space).
    async fn ping(&self) -> StoreResult<()>;

    // --- bucket poller
    /// The listing `source` saved last, if any.
    async fn listing(&self, source: &str) -> StoreResult<Option<Listing>>;
    /// Saves what changed in `source`'s listing of `scope`, in one transaction.
    async fn save_listing(
        &self,
        source: &str,
        scope: &str,
        changes: ListingChanges,
        now: Ms,
    ) -> StoreResult<()>;
}
