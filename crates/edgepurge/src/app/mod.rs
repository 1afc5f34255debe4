//! The application layer between the adapters (webhook, CLI, and next the admin API, queue
//! consumers and function mode) and the core: [`Ingestor`] is the one path from a body or a
//! manual purge to the queue, [`Admin`] the one place rules, the log, retries and status are
//! handled. Adapters translate their input into these calls and map the typed errors to their
//! own answers (HTTP status, exit code), each once.

mod admin;
mod ingest;
mod outcomes;
mod planner;

pub use admin::{Admin, AdminError, AdminResult};
pub use ingest::{Accepted, IngestError, IngestOptions, Ingestor, LaneWaker};
pub use outcomes::{Outcomes, WaitOutcome};
pub use planner::Planner;

impl LaneWaker for crate::dispatch::Dispatcher {
    fn notify(&self, lane: &str, jobs: usize) {
        crate::dispatch::Dispatcher::notify(self, lane, jobs);
    }

    fn expedite(&self, lane: &str) {
        crate::dispatch::Dispatcher::expedite(self, lane);
    }
}
