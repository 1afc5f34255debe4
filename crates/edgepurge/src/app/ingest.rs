//! [`Ingestor`]: the one path from any source to the queue. Parse (format auto-detected),
//! plan (rules → targets → lanes), commit, wake the lanes, and optionally wait for the
//! outcome. The webhook, `edgepurge purge` and every future source (queue consumers, function
//! mode) call it; none of them repeats any of it.

use super::large_body;
use super::outcomes::{Outcomes, WaitFor, WaitOutcome};
use super::planner::Planner;
use crate::clock::Clock;
use crate::store::{IngestReceipt, IngestRecord, Store, StoreError};
use edgepurge_core::{ParseError, TargetKind};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Body bytes parsed at once by default (`server.parse_budget_bytes`). Parsing and planning
/// take a few times a body's size in memory, so this bounds what a burst of large bodies can
/// take, whatever their number.
pub const DEFAULT_PARSE_BUDGET: usize = 32 * 1024 * 1024;

/// Most queue rows one body may add by default (`store.max_jobs_per_body`): events × targets
/// × lanes, where a target of an account with several lanes (`http-purge` cache nodes)
/// counts once: it is stored once and expanded into the nodes' jobs later, in small
/// transactions. Everything of a body is one
/// transaction, and the single writer is held while it runs (about 20 µs a row), so this
/// bounds how long one body can keep every other sender waiting (a few seconds).
pub const DEFAULT_MAX_JOBS: usize = 250_000;

/// Limits on what one body may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Body bytes parsed at once.
    pub parse_budget: usize,
    /// Most queue jobs one body may add.
    pub max_jobs: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            parse_budget: DEFAULT_PARSE_BUDGET,
            max_jobs: DEFAULT_MAX_JOBS,
        }
    }
}

/// Bodies up to this size do not wait for the budget: everyday notifications are small, and
/// a queue of large bodies must not hold them up (their total is bounded by the connection
/// cap anyway).
pub const SMALL_BODY: usize = 64 * 1024;

/// Where new work is announced: the dispatcher's lanes (a port, so the application does not
/// depend on how lanes run).
pub trait LaneWaker: Send + Sync {
    /// `jobs` new jobs were queued for `lane`.
    fn notify(&self, lane: &str, jobs: usize);
    /// Someone waits for `lane`'s next purge: send what is pending without lingering.
    fn expedite(&self, lane: &str);
}

/// How to accept a body.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Wait at most this long for every purge of the body to finish.
    pub wait: Option<Duration>,
    /// What "finish" means for that wait.
    pub wait_for: WaitFor,
}

/// What was accepted (everything in it is durably committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub events: usize,
    /// Log record ids, in order.
    pub records: Vec<i64>,
    pub targets: usize,
    pub merged: usize,
    /// Control messages skipped on purpose (S3 test events, SNS confirmations).
    pub notices: Vec<String>,
    /// The outcome, when asked to wait.
    pub wait: Option<WaitOutcome>,
}

impl From<ParseError> for IngestError {
    fn from(e: ParseError) -> Self {
        // Not a `source`: the message already holds it, and error chains would repeat it.
        IngestError::Parse(e)
    }
}

/// Why a body was not accepted. Nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body is not a notification edgepurge understands (the sender must fix it).
    #[error("{0}; nothing was stored")]
    Parse(ParseError),
    /// A manual purge asked for something the configuration cannot do.
    #[error("{0}")]
    Refused(String),
    /// The store cannot take it now (the sender should retry).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many bodies are being parsed at once (the sender should retry soon).
    #[error("{0}")]
    Overloaded(String),
    /// The body would add more work than one transaction may hold (the sender must split it).
    #[error("{0}")]
    TooLarge(String),
}

/// Room in the parse budget for one body, held from before its bytes are read until it is
/// committed; freed when dropped.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

pub struct Ingestor {
    store: Arc<dyn Store>,
    planner: RwLock<Arc<Planner>>,
    /// Held by whoever reads the stored rules to put them in force, until they are: a reload
    /// that read the rules before a change cannot then replace the planner made after it.
    reloading: tokio::sync::Mutex<()>,
    lanes: Arc<dyn LaneWaker>,
    outcomes: Arc<Outcomes>,
    clock: Clock,
    shutdown: CancellationToken,
    /// Body bytes that may be parsed at once (permits are bytes).
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    max_jobs: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn Store>,
        planner: Planner,
        lanes: Arc<dyn LaneWaker>,
        outcomes: Arc<Outcomes>,
        settings: &super::PipelineSettings,
        shutdown: CancellationToken,
    ) -> Ingestor {
        let (clock, limits) = (settings.clock, settings.limits);
        let metrics = Arc::clone(&settings.metrics);
        // Permits are counted in u32 by the semaphore's acquire_many.
        let budget_bytes = limits.parse_budget.clamp(1, u32::MAX as usize);
        Ingestor {
            store,
            planner: RwLock::new(Arc::new(planner)),
            reloading: tokio::sync::Mutex::new(()),
            lanes,
            outcomes,
            clock,
            shutdown,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            max_jobs: limits.max_jobs.max(1),
            metrics,
        }
    }

    fn too_many(&self, max: usize) -> IngestError {
        IngestError::TooLarge(format!(
            "this body would queue more than store.max_jobs_per_body ({max}) purges (events × \
             targets; a target of an http-purge account counts once, whatever its nodes) in one \
             transaction; send it in smaller parts (nothing was stored)"
        ))
    }

    /// Reserves room to parse a body of `bytes` (the whole budget at most), waiting up to
    /// `within` while other large bodies use it (first come, first served). Bodies up to
    /// [`SMALL_BODY`] never wait.
    pub async fn reserve(
        &self,
        bytes: usize,
        within: Duration,
    ) -> Result<Reservation, IngestError> {
        if bytes <= SMALL_BODY {
            return Ok(Reservation { _permit: None });
        }
        let n = u32::try_from(bytes.min(self.budget_bytes)).unwrap_or(u32::MAX);
        let acquire = Arc::clone(&self.budget).acquire_many_owned(n);
        match tokio::time::timeout(within, acquire).await {
            Ok(Ok(permit)) => Ok(Reservation {
                _permit: Some(permit),
            }),
            Ok(Err(_)) => Err(IngestError::Overloaded("the server is stopping".into())),
            Err(_) => Err(IngestError::Overloaded(format!(
                "other bodies use the parse budget (server.parse_budget_bytes = {} bytes); \
                 retry later",
                self.budget_bytes
            ))),
        }
    }

    /// The rules in force.
    pub fn planner(&self) -> Arc<Planner> {
        match self.planner.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// To hold from reading the stored rules until [`Ingestor::set_planner`] put them in
    /// force, so reloads (the poll, an admin API change, SIGHUP) apply in the order they read.
    pub async fn reloading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reloading.lock().await
    }

    /// Puts new rules in force (a reload).
    pub fn set_planner(&self, planner: Planner) {
        match self.planner.write() {
            Ok(mut p) => *p = Arc::new(planner),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(planner),
        }
    }

    /// Accepts one notification body: parsed and refused whole, or committed whole. Waits
    /// for room in the parse budget first (at most `within`).
    pub async fn accept<B: AsRef<[u8]>>(
        &self,
        body: B,
        within: Duration,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let reservation = self.reserve(body.as_ref().len(), within).await?;
        let parsed = edgepurge_core::parse_body(body.as_ref())?;
        drop(body);
        self.accept_parsed(reservation, parsed, opts).await
    }

    /// [`Ingestor::accept`] with room already reserved (before the body was read). A large
    /// body of S3-shaped records is written record by record from the body itself
    /// ([`super::large_body`]); others are parsed whole, and the body, the parsed events and
    /// the reservation are let go as soon as each is no longer needed.
    pub async fn accept_reserved(
        &self,
        reservation: Reservation,
        body: Vec<u8>,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        if body.len() > SMALL_BODY {
            let planner = self.planner();
            let survey = large_body::survey(&planner, &body, self.max_jobs)
                .map_err(|e| self.too_many(e.max))?;
            if let Some(survey) = survey {
                return self
                    .accept_surveyed(reservation, body, planner, survey, opts)
                    .await;
            }
        }
        let parsed = edgepurge_core::parse_body(&body)?;
        drop(body);
        self.accept_parsed(reservation, parsed, opts).await
    }

    async fn accept_surveyed(
        &self,
        reservation: Reservation,
        body: Vec<u8>,
        planner: Arc<Planner>,
        survey: large_body::Survey,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let receipt = if survey.records == 0 {
            IngestReceipt::default()
        } else {
            let source = large_body::BodyRecords {
                body,
                planner,
                records: survey.records,
            };
            self.store
                .ingest_from(Arc::new(source), self.clock.now_ms())
                .await?
        };
        let mut accepted = self
            .committed(receipt, survey.lanes, survey.jobs, Some(reservation), opts)
            .await;
        for (format, n) in survey.formats {
            self.metrics.events(format, n);
        }
        accepted.events = survey.events;
        Ok(accepted)
    }

    /// Accepts events a source made itself (the bucket poller), committed whole.
    pub async fn accept_events(
        &self,
        events: Vec<edgepurge_core::Event>,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let parsed = edgepurge_core::event::Parsed {
            events,
            notices: Vec::new(),
        };
        self.accept_parsed(Reservation { _permit: None }, parsed, opts)
            .await
    }

    async fn accept_parsed(
        &self,
        reservation: Reservation,
        parsed: edgepurge_core::event::Parsed,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let events = parsed.events.len();
        let mut formats: BTreeMap<&'static str, u64> = BTreeMap::new();
        for e in &parsed.events {
            *formats.entry(e.format.as_str()).or_default() += 1;
        }
        let records = self
            .planner()
            .records_within(parsed.events, self.max_jobs)
            .map_err(|e| self.too_many(e.max))?;
        let mut accepted = self.commit(records, Some(reservation), opts).await?;
        for (format, n) in formats {
            self.metrics.events(format, n);
        }
        accepted.events = events;
        accepted.notices = parsed.notices;
        Ok(accepted)
    }

    /// Accepts targets purged by hand through `provider`.
    pub async fn accept_manual(
        &self,
        provider: &str,
        kind: TargetKind,
        targets: &[String],
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let planner = self.planner();
        let Some(account) = planner.providers().get(provider) else {
            return Err(IngestError::Refused(format!(
                "provider {provider:?} is not in the config"
            )));
        };
        if !account.supports(kind) {
            return Err(IngestError::Refused(format!(
                "provider {provider:?} ({}) cannot purge {} targets",
                account.kind(),
                kind.as_str()
            )));
        }
        let records = planner.manual_records(provider, kind, targets);
        let mut accepted = self.commit(records, None, opts).await?;
        accepted.events = targets.len();
        Ok(accepted)
    }

    async fn commit(
        &self,
        records: Vec<IngestRecord>,
        reservation: Option<Reservation>,
        opts: &IngestOptions,
    ) -> Result<Accepted, IngestError> {
        let mut lanes: BTreeMap<String, usize> = BTreeMap::new();
        for job in records.iter().flat_map(|r| &r.jobs) {
            *lanes.entry(job.lane.clone()).or_default() += 1;
        }
        // A fan-out target wakes every lane of its account: any of them expands it (counted
        // per account first: a body's cost stays O(targets), whatever the node count).
        let mut accounts: BTreeMap<&str, (&[String], usize)> = BTreeMap::new();
        for f in records.iter().flat_map(|r| &r.fanout) {
            accounts.entry(&f.account).or_insert((&f.lanes, 0)).1 += 1;
        }
        for (of, n) in accounts.into_values() {
            for lane in of {
                *lanes.entry(lane.clone()).or_default() += n;
            }
        }
        let targets: usize = records.iter().map(|r| r.jobs.len() + r.fanout.len()).sum();
        if targets > self.max_jobs {
            return Err(self.too_many(self.max_jobs));
        }
        // One transaction for the whole body: it is stored whole or not at all.
        let receipt = if records.is_empty() {
            IngestReceipt::default()
        } else {
            self.store.ingest(records, self.clock.now_ms()).await?
        };
        Ok(self
            .committed(receipt, lanes, targets, reservation, opts)
            .await)
    }

    /// After the commit: frees the budget, wakes the lanes, waits if asked.
    async fn committed(
        &self,
        receipt: IngestReceipt,
        lanes: BTreeMap<String, usize>,
        targets: usize,
        reservation: Option<Reservation>,
        opts: &IngestOptions,
    ) -> Accepted {
        // Committed: the budget is free for the next body, also while this one waits.
        drop(reservation);
        self.metrics
            .targets(receipt.jobs_new as u64, receipt.jobs_merged as u64);
        for (lane, jobs) in &lanes {
            if opts.wait.is_some() {
                self.lanes.expedite(lane);
            } else {
                self.lanes.notify(lane, *jobs);
            }
        }
        let wait = match opts.wait {
            Some(timeout) => Some(
                self.outcomes
                    .wait(
                        &receipt.purge_ids,
                        opts.wait_for,
                        timeout,
                        &self.shutdown,
                        |_, _| {},
                    )
                    .await,
            ),
            None => None,
        };
        Accepted {
            events: 0,
            records: receipt.purge_ids,
            targets,
            merged: receipt.jobs_merged,
            notices: Vec::new(),
            wait,
        }
    }

    /// Waits for records committed earlier (e.g. by `accept` with no wait).
    pub async fn wait(
        &self,
        ids: &[i64],
        timeout: Duration,
        stop: &CancellationToken,
        progress: impl FnMut(usize, usize),
    ) -> WaitOutcome {
        self.outcomes
            .wait(ids, WaitFor::Purged, timeout, stop, progress)
            .await
    }
}
