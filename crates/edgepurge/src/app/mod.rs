//! The application layer between the adapters (webhook, CLI, and next the admin API, queue
//! consumers and function mode) and the core: [`Ingestor`] is the one path from a body or a
//! manual purge to the queue, [`Admin`] the one place rules, the log, retries and status are
//! handled. Adapters translate their input into these calls and map the typed errors to their
//! own answers (HTTP status, exit code), each once.

mod admin;
mod direct;
mod ingest;
mod large_body;
mod manual;
mod outcomes;
mod planner;

use crate::clock::Clock;
use crate::dispatch::{DispatchSettings, Dispatcher, OutcomeSink};
use crate::purgers::Purger;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use admin::{Admin, AdminError, AdminResult, DiscardTarget, Discarded};
pub use direct::{
    short_backoff, DirectError, DirectPurge, DirectReport, Outcome, Skipped, TargetReport,
};
pub use ingest::{
    Accepted, IngestError, IngestLimits, IngestOptions, Ingestor, LaneWaker, Reservation,
    DEFAULT_MAX_JOBS, DEFAULT_PARSE_BUDGET, SMALL_BODY,
};
pub use manual::{check_targets, TargetRefusal};
pub use outcomes::{Outcomes, WaitFor, WaitOutcome};
pub use planner::Planner;

impl LaneWaker for crate::dispatch::Dispatcher {
    fn notify(&self, lane: &str, jobs: usize) {
        crate::dispatch::Dispatcher::notify(self, lane, jobs);
    }

    fn expedite(&self, lane: &str) {
        crate::dispatch::Dispatcher::expedite(self, lane);
    }
}

/// The ingest path with lanes of its own: a dispatcher sending for `purgers` (lanes another
/// process holds stand by), and waiters woken by its answers and, every `poll`, by answers
/// other processes record. `edgepurge serve` and `edgepurge purge` both start one.
pub struct Pipeline {
    pub ingestor: Arc<Ingestor>,
    pub dispatcher: Arc<Dispatcher>,
}

/// How a pipeline runs.
#[derive(Clone)]
pub struct PipelineSettings {
    pub dispatch: DispatchSettings,
    pub clock: Clock,
    /// How often answers recorded by other processes are looked for (for waiters).
    pub poll: Duration,
    pub limits: IngestLimits,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Pipeline {
    pub fn start(
        store: Arc<dyn Store>,
        purgers: Vec<Arc<dyn Purger>>,
        planner: Planner,
        settings: PipelineSettings,
        shutdown: &CancellationToken,
    ) -> Pipeline {
        let outcomes = Outcomes::new(Arc::clone(&store));
        outcomes.spawn_poller(settings.poll, shutdown.child_token());
        let dispatcher = Arc::new(Dispatcher::start(
            Arc::clone(&store),
            purgers,
            settings.dispatch.clone(),
            settings.clock,
            Arc::clone(&outcomes) as Arc<dyn OutcomeSink>,
            Arc::clone(&settings.metrics),
            shutdown.child_token(),
        ));
        let ingestor = Arc::new(Ingestor::new(
            store,
            planner,
            Arc::clone(&dispatcher) as Arc<dyn LaneWaker>,
            outcomes,
            &settings,
            shutdown.clone(),
        ));
        Pipeline {
            ingestor,
            dispatcher,
        }
    }
}
