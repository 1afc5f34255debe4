//! The dispatcher: one lane per provider account (or per cache node), the only place that
//! decides *when* to call a provider.
//!
//! Each lane dedups and batches pending targets (in the store), lingers at most `linger_ms`
//! for a batch to fill, keeps a sliding-window rate limit and the daily quota, retries with
//! full-jitter backoff, dead-letters what keeps failing, and holds a lease on its lane (with
//! a fencing token) so every process sharing the store respects the same limits. Each answer
//! it records is told to an [`OutcomeSink`], so callers waiting for a purge are woken at
//! once rather than polling. A lane whose provider fails every request goes down, holds its
//! batches and probes ([`health`]); a lane that crashes is started again ([`supervise`]).

mod follow;
pub mod health;
mod lane;
pub mod policy;
pub mod ratelimit;
mod supervise;
pub mod verify;
mod wake;
pub mod warm;

use crate::clock::Clock;
use crate::purgers::Purger;
use crate::store::{Ms, RecordChange, Store};
pub use follow::FollowSettings;
pub use health::HealthSettings;
pub use policy::RetryPolicy;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
pub use verify::VerifySettings;
pub use warm::WarmSettings;

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub linger_ms: i64,
    pub retry: RetryPolicy,
    /// How long a lane lease lasts without renewal (renewed every third of it).
    pub lane_lease_ms: i64,
    /// How often an idle lane looks for work written by other processes.
    pub poll_ms: u64,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
    /// When a lane counts its provider as down, and how often it probes then.
    pub health: HealthSettings,
    /// How provider tasks are followed until they complete.
    pub tasks: follow::FollowSettings,
    /// A lane warns (once a quota day per kind) when this share of a daily quota is used.
    pub quota_warn_percent: u8,
    /// How purged URLs are fetched to verify they are fresh (rules with `verify = true`).
    pub verify: VerifySettings,
    /// How purged URLs are prefetched after the purge (rules with `warm = true`).
    pub warm: WarmSettings,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            linger_ms: 200,
            retry: RetryPolicy::default(),
            lane_lease_ms: 15_000,
            poll_ms: 500,
            drain: Duration::from_secs(10),
            health: HealthSettings::default(),
            tasks: follow::FollowSettings::default(),
            quota_warn_percent: 80,
            verify: VerifySettings::default(),
            warm: WarmSettings::default(),
        }
    }
}

/// What a lane is doing, for /healthz and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LaneState {
    Starting,
    /// Another process holds this lane.
    Standby,
    Idle,
    Busy,
    /// Waiting for the rate limit.
    Throttled,
    /// Nothing due before `until` (linger, backoff, quota).
    Waiting {
        until: Ms,
    },
    /// The provider fails every request: batches are held, one probe goes at a time, the
    /// next no sooner than `next_probe_at`.
    Down {
        since: Ms,
        next_probe_at: Ms,
    },
    /// The provider said today's quota is spent: nothing of the parked kinds goes before
    /// `until` (its reset).
    Parked {
        until: Ms,
    },
    /// The lane crashed (a bug) and starts again at `at`.
    Restarting {
        at: Ms,
    },
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneStatus {
    pub lane: String,
    pub provider: String,
    #[serde(flatten)]
    pub state: LaneState,
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub last_success_at: Option<Ms>,
    pub last_error: Option<String>,
    /// Times the lane crashed and was started again.
    pub restarts: u64,
    /// The last request could not be made because the credentials could not be read (set
    /// until a request gets past that).
    pub missing_credentials: bool,
}

impl LaneStatus {
    /// A lane that has not started yet: no requests, no errors.
    pub fn new(lane: &str, provider: &str) -> LaneStatus {
        LaneStatus {
            lane: lane.to_owned(),
            provider: provider.to_owned(),
            state: LaneState::Starting,
            requests: 0,
            succeeded: 0,
            failed: 0,
            last_success_at: None,
            last_error: None,
            restarts: 0,
            missing_credentials: false,
        }
    }

    /// A fresh lane of provider `p` in `state`, for tests.
    #[cfg(test)]
    pub fn in_state(lane: &str, state: LaneState) -> LaneStatus {
        LaneStatus {
            state,
            ..LaneStatus::new(lane, "p")
        }
    }
}

/// Where the dispatcher tells which log records changed after an answer (the port the
/// application's waiters implement).
pub trait OutcomeSink: Send + Sync {
    fn changed(&self, records: &[RecordChange]);
}

/// A sink that ignores every outcome.
pub struct NoOutcomes;

impl OutcomeSink for NoOutcomes {
    fn changed(&self, _: &[RecordChange]) {}
}

struct LaneHandle {
    notify: Arc<Notify>,
    /// Jobs announced for this lane so far (a lane waiting for a batch to fill counts them).
    added: Arc<AtomicU64>,
    /// Set when someone waits for this lane's next purge: claim without lingering.
    expedite: Arc<AtomicBool>,
    status: Arc<Mutex<LaneStatus>>,
}

pub struct Dispatcher {
    lanes: BTreeMap<String, LaneHandle>,
    tasks: Mutex<Option<JoinSet<()>>>,
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// Starts one lane per purger. Lanes stop when `shutdown` is cancelled.
    pub fn start(
        store: Arc<dyn Store>,
        purgers: Vec<Arc<dyn Purger>>,
        settings: DispatchSettings,
        clock: Clock,
        outcomes: Arc<dyn OutcomeSink>,
        metrics: Arc<crate::metrics::Metrics>,
        shutdown: CancellationToken,
    ) -> Dispatcher {
        let owner = format!(
            "{}/{}/{}",
            hostname(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let mut lanes = BTreeMap::new();
        let mut tasks = JoinSet::new();
        // Each provider account's lanes, and where its caches are asked, for its verifier.
        let mut accounts: BTreeMap<String, (Vec<verify::LaneWake>, Vec<verify::probe::Route>)> =
            BTreeMap::new();
        // And its purgers, for its warmer.
        let mut warmers: BTreeMap<String, Vec<Arc<dyn Purger>>> = BTreeMap::new();
        // Accounts with several lanes: their targets are stored once and expanded by any of
        // their lanes (crate::queue::fanout). An account with one lane named for its node
        // (an http-purge account whose nodes were cut to one) expands too: targets stored
        // for its former nodes would otherwise wait forever.
        let mut account_lanes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &purgers {
            account_lanes
                .entry(p.provider().to_owned())
                .or_default()
                .push(p.lane().to_owned());
        }
        let fanouts: BTreeMap<String, crate::store::FanoutClaim> = account_lanes
            .into_iter()
            .filter(|(account, lanes)| lanes.len() > 1 || lanes.iter().any(|l| l != account))
            .map(|(account, lanes)| {
                let claim = crate::store::FanoutClaim {
                    account: account.clone(),
                    lanes: lanes.into(),
                };
                (account, claim)
            })
            .collect();
        for purger in purgers {
            let notify = Arc::new(Notify::new());
            let added = Arc::new(AtomicU64::new(0));
            let expedite = Arc::new(AtomicBool::new(false));
            let status = Arc::new(Mutex::new(LaneStatus::new(
                purger.lane(),
                purger.provider(),
            )));
            lanes.insert(
                purger.lane().to_owned(),
                LaneHandle {
                    notify: Arc::clone(&notify),
                    added: Arc::clone(&added),
                    expedite: Arc::clone(&expedite),
                    status: Arc::clone(&status),
                },
            );
            warmers
                .entry(purger.provider().to_owned())
                .or_default()
                .push(Arc::clone(&purger));
            let account = accounts.entry(purger.provider().to_owned()).or_default();
            account.0.push(verify::LaneWake {
                lane: purger.lane().to_owned(),
                notify: Arc::clone(&notify),
                added: Arc::clone(&added),
            });
            let route = match purger.probe_via() {
                Some(node) => verify::probe::Route::Node(node),
                None => verify::probe::Route::Direct,
            };
            if !account.1.contains(&route) {
                account.1.push(route);
            }
            let fanout = fanouts.get(purger.provider()).cloned();
            let lane = lane::Lane {
                store: Arc::clone(&store),
                purger,
                settings: settings.clone(),
                owner: owner.clone(),
                clock,
                notify,
                added,
                kick: Arc::new(AtomicBool::new(false)),
                expedite,
                status,
                outcomes: Arc::clone(&outcomes),
                shutdown: shutdown.clone(),
                parked: Default::default(),
                health: Arc::new(health::Health::new(settings.health)),
                metrics: Arc::clone(&metrics),
                fanout,
            };
            tasks.spawn(supervise::run(lane));
        }
        for (provider, (lanes, routes)) in accounts {
            let verifier = verify::Verifier {
                store: Arc::clone(&store),
                provider: provider.clone(),
                routes,
                lanes,
                settings: settings.verify.clone(),
                clock,
                outcomes: Arc::clone(&outcomes),
                metrics: Arc::clone(&metrics),
                shutdown: shutdown.clone(),
            };
            // Like a lane, started again if it crashes (the records it held are taken again
            // when their lease ends).
            tasks.spawn(supervise::keep_running(
                format!("verifier of {provider}"),
                shutdown.clone(),
                move || verifier.clone().run(),
            ));
        }
        // Accounts that cannot prefetch get no warmer (rules cannot ask them to warm).
        let warmers = warmers
            .into_iter()
            .filter(|(_, purgers)| purgers.iter().any(|p| p.prefetch_limits().is_some()));
        for (provider, purgers) in warmers {
            let warmer = warm::Warmer {
                store: Arc::clone(&store),
                provider: provider.clone(),
                purgers,
                settings: settings.warm.clone(),
                clock,
                outcomes: Arc::clone(&outcomes),
                metrics: Arc::clone(&metrics),
                owner: owner.clone(),
                shutdown: shutdown.clone(),
            };
            tasks.spawn(supervise::keep_running(
                format!("warmer of {provider}"),
                shutdown.clone(),
                move || warmer.clone().run(),
            ));
        }
        if let Some(notices) = store.work_notices() {
            let wakers: wake::Wakers = lanes
                .iter()
                .map(|(name, h)| (name.clone(), (Arc::clone(&h.notify), Arc::clone(&h.added))))
                .collect();
            tasks.spawn(wake::run(notices, wakers, shutdown.clone()));
        }
        Dispatcher {
            lanes,
            tasks: Mutex::new(Some(tasks)),
            shutdown,
        }
    }

    /// Wakes a lane: `jobs` new jobs were queued for it.
    pub fn notify(&self, lane: &str, jobs: usize) {
        if let Some(h) = self.lanes.get(lane) {
            h.added.fetch_add(jobs as u64, Ordering::SeqCst);
            h.notify.notify_one();
        }
    }

    /// Wakes a lane and has it send what is pending now, without lingering (someone is
    /// waiting for the purge).
    pub fn expedite(&self, lane: &str) {
        if let Some(h) = self.lanes.get(lane) {
            h.expedite.store(true, Ordering::SeqCst);
            h.notify.notify_one();
        }
    }

    pub fn lane_names(&self) -> impl Iterator<Item = &str> {
        self.lanes.keys().map(String::as_str)
    }

    pub fn statuses(&self) -> Vec<LaneStatus> {
        self.lanes
            .values()
            .filter_map(|h| h.status.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// Whether the lanes were told to stop.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops every lane and waits for them (bounded by each lane's drain time).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// This machine's name (a system call, no file read), for lane owner ids.
fn hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() {
        "host".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests;
