//! Prometheus metrics (`GET /metrics`, text format), all named `edgepurge_…`. Counters and
//! histograms are updated where the work happens (ingest, lanes); queue depths, lane states
//! and quotas are read at scrape time, so they are never stale.

use crate::dispatch::LaneStatus;
use crate::store::{FanoutDepth, LaneDepth};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabel {
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    provider: String,
    lane: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerifiedLabels {
    provider: String,
    verified: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarmedLabels {
    provider: String,
    warmed: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabel {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneKindLabels {
    lane: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneStateLabels {
    lane: String,
    state: String,
}

type Seconds = Family<LaneLabel, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    // 10 ms … about 5.7 h.
    Histogram::new(exponential_buckets(0.01, 2.0, 22))
}

fn size_histogram() -> Histogram {
    // 1 … 16384 targets.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// Every lane state `/healthz` can report, for the one-hot `edgepurge_lane_state`.
const LANE_STATES: &[&str] = &[
    "starting",
    "standby",
    "idle",
    "busy",
    "throttled",
    "waiting",
    "parked",
    "down",
    "restarting",
    "stopped",
];

pub struct Metrics {
    registry: Registry,
    bodies: Family<OutcomeLabel, Counter>,
    events: Family<FormatLabel, Counter>,
    targets_queued: Counter,
    targets_merged: Counter,
    requests: Family<RequestLabels, Counter>,
    batch_targets: Family<LaneLabel, Histogram, fn() -> Histogram>,
    to_request: Seconds,
    to_done: Seconds,
    pending: Family<LaneLabel, Gauge>,
    oldest_pending: Family<LaneLabel, FloatGauge>,
    fanout_pending: Family<AccountLabel, Gauge>,
    fanout_oldest: Family<AccountLabel, FloatGauge>,
    /// Accounts that had fan-out targets at a scrape: shown as 0 once expanded.
    fanout_seen: Mutex<std::collections::BTreeSet<String>>,
    /// Lanes with work that no lane of this process serves, seen so far (zeroed once gone).
    unserved_seen: Mutex<std::collections::BTreeSet<String>>,
    waiting_batches: Family<LaneLabel, Gauge>,
    dead_batches: Family<LaneLabel, Gauge>,
    lane_state: Family<LaneStateLabels, Gauge>,
    quota_left: Family<LaneKindLabels, Gauge>,
    verifications: Family<VerifiedLabels, Counter>,
    warmings: Family<WarmedLabels, Counter>,
    /// Scrapes render one at a time (the gauges are set, then encoded).
    render: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            bodies: Family::default(),
            events: Family::default(),
            targets_queued: Counter::default(),
            targets_merged: Counter::default(),
            requests: Family::default(),
            batch_targets: Family::new_with_constructor(size_histogram),
            to_request: Family::new_with_constructor(seconds_histogram),
            to_done: Family::new_with_constructor(seconds_histogram),
            pending: Family::default(),
            oldest_pending: Family::default(),
            fanout_pending: Family::default(),
            fanout_oldest: Family::default(),
            fanout_seen: Mutex::new(Default::default()),
            unserved_seen: Mutex::new(Default::default()),
            waiting_batches: Family::default(),
            dead_batches: Family::default(),
            lane_state: Family::default(),
            quota_left: Family::default(),
            verifications: Family::default(),
            warmings: Family::default(),
            registry: Registry::default(),
            render: Mutex::new(()),
        };
        registry.register(
            "edgepurge_bodies",
            "Notification bodies received, by outcome (accepted; refused: bad input, too \
             large or too slow; unauthorized: wrong or missing token, or not loopback; \
             unavailable: the sender should retry)",
            m.bodies.clone(),
        );
        registry.register(
            "edgepurge_events",
            "Object events accepted, by notification format",
            m.events.clone(),
        );
        registry.register(
            "edgepurge_targets_queued",
            "Purge targets queued as new jobs (one per lane)",
            m.targets_queued.clone(),
        );
        registry.register(
            "edgepurge_targets_merged",
            "Purge targets merged into a job already pending for the same lane and target",
            m.targets_merged.clone(),
        );
        registry.register(
            "edgepurge_provider_requests",
            "Purge requests sent to providers and cache nodes, by outcome (succeeded, retry, \
             held, quota, split, dead)",
            m.requests.clone(),
        );
        registry.register(
            "edgepurge_batch_targets",
            "Targets per purge request",
            m.batch_targets.clone(),
        );
        registry.register(
            "edgepurge_event_to_request_seconds",
            "From the arrival of the oldest event of a batch to its request being sent",
            m.to_request.clone(),
        );
        registry.register(
            "edgepurge_event_to_purged_seconds",
            "From the arrival of the oldest event of a batch to the provider's success",
            m.to_done.clone(),
        );
        registry.register(
            "edgepurge_queue_pending",
            "Targets waiting to be sent, per lane",
            m.pending.clone(),
        );
        registry.register(
            "edgepurge_queue_oldest_pending_seconds",
            "Age of the oldest target waiting to be sent, per lane (0 when none waits)",
            m.oldest_pending.clone(),
        );
        registry.register(
            "edgepurge_queue_fanout_pending",
            "Targets of a provider account with several lanes (http-purge nodes) not yet \
             expanded into its lanes' jobs: each becomes one more pending target on every lane",
            m.fanout_pending.clone(),
        );
        registry.register(
            "edgepurge_queue_fanout_oldest_seconds",
            "Age of the oldest event among an account's fan-out targets not yet expanded (0 \
             when none waits)",
            m.fanout_oldest.clone(),
        );
        registry.register(
            "edgepurge_queue_waiting_batches",
            "Batches waiting for a retry, a probe or the quota, per lane",
            m.waiting_batches.clone(),
        );
        registry.register(
            "edgepurge_queue_dead_batches",
            "Batches given up (see `edgepurge retry`), per lane",
            m.dead_batches.clone(),
        );
        registry.register(
            "edgepurge_lane_state",
            "1 for each lane's current state (down: the provider fails every request)",
            m.lane_state.clone(),
        );
        registry.register(
            "edgepurge_quota_remaining",
            "Purges the provider says are left today, per lane and kind",
            m.quota_left.clone(),
        );
        registry.register(
            "edgepurge_verifications",
            "Purged URLs fetched through the caches (rules with verify = true), by what the \
             record shows: fresh, stale (after the re-purges allowed, or before one), \
             unverifiable",
            m.verifications.clone(),
        );
        registry.register(
            "edgepurge_warmings",
            "Records whose purged URLs were to be prefetched (rules with warm = true), by \
             outcome: warmed, failed, skipped",
            m.warmings.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A body was answered: `accepted`, `refused` (bad input) or `unavailable`.
    pub fn body(&self, outcome: &str) {
        self.bodies
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// `n` events of `format` were accepted.
    pub fn events(&self, format: &str, n: u64) {
        self.events
            .get_or_create(&FormatLabel {
                format: format.to_owned(),
            })
            .inc_by(n);
    }

    pub fn targets(&self, queued: u64, merged: u64) {
        self.targets_queued.inc_by(queued);
        self.targets_merged.inc_by(merged);
    }

    /// A request of `targets` targets was answered with `outcome`; `age_s` is the time from
    /// the batch's oldest event to the send, `done_s` to the success (when it succeeded).
    pub fn request(
        &self,
        provider: &str,
        lane: &str,
        outcome: &str,
        targets: usize,
        age_s: f64,
        done_s: Option<f64>,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                provider: provider.to_owned(),
                lane: lane.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        let lane = LaneLabel {
            lane: lane.to_owned(),
        };
        self.batch_targets
            .get_or_create(&lane)
            .observe(targets as f64);
        self.to_request.get_or_create(&lane).observe(age_s.max(0.0));
        if let Some(d) = done_s {
            self.to_done.get_or_create(&lane).observe(d.max(0.0));
        }
    }

    /// A record of `provider` was verified `verified` (`fresh`, `stale`, `unverifiable`).
    pub fn verification(&self, provider: &str, verified: &str) {
        self.verifications
            .get_or_create(&VerifiedLabels {
                provider: provider.to_owned(),
                verified: verified.to_owned(),
            })
            .inc();
    }

    /// A record of `provider` was warmed `warmed` (`warmed`, `failed`, `skipped`).
    pub fn warming(&self, provider: &str, warmed: &str) {
        self.warmings
            .get_or_create(&WarmedLabels {
                provider: provider.to_owned(),
                warmed: warmed.to_owned(),
            })
            .inc();
    }

    /// What the provider says is left of today's quota.
    pub fn quota_remaining(&self, lane: &str, kind: &str, left: u64) {
        self.quota_left
            .get_or_create(&LaneKindLabels {
                lane: lane.to_owned(),
                kind: kind.to_owned(),
            })
            .set(i64::try_from(left).unwrap_or(i64::MAX));
    }

    /// The text exposition, with queue depths and lane states as of now.
    pub fn render(
        &self,
        depths: &[LaneDepth],
        fanout: &[FanoutDepth],
        lanes: &[LaneStatus],
        now_ms: i64,
    ) -> String {
        let _one = self.render.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut seen = self.fanout_seen.lock().unwrap_or_else(|p| p.into_inner());
            // Every account this process runs several lanes of has a series from the start.
            for s in lanes {
                if lanes.iter().filter(|o| o.provider == s.provider).count() > 1 {
                    seen.insert(s.provider.clone());
                }
            }
            for account in seen.iter() {
                if !fanout.iter().any(|f| &f.account == account) {
                    let l = AccountLabel {
                        account: account.clone(),
                    };
                    self.fanout_pending.get_or_create(&l).set(0);
                    self.fanout_oldest.get_or_create(&l).set(0.0);
                }
            }
            for f in fanout {
                let l = AccountLabel {
                    account: f.account.clone(),
                };
                self.fanout_pending
                    .get_or_create(&l)
                    .set(i64::try_from(f.targets).unwrap_or(i64::MAX));
                let age = f
                    .oldest_at
                    .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
                self.fanout_oldest.get_or_create(&l).set(age);
                seen.insert(f.account.clone());
            }
        }
        // Lanes with work that no lane of this process runs (their account was removed from
        // the config or renamed): nothing sends it; state `unserved` says so.
        let unserved_now: std::collections::BTreeSet<String> = depths
            .iter()
            .filter(|d| !lanes.iter().any(|s| s.lane == d.lane))
            // Dead letters alone wait for nobody (`edgepurge retry` brings them back).
            .filter(|d| d.has_live_work())
            .map(|d| d.lane.clone())
            .collect();
        let gone: Vec<String> = {
            let mut seen = self.unserved_seen.lock().unwrap_or_else(|p| p.into_inner());
            let gone = seen.difference(&unserved_now).cloned().collect();
            *seen = unserved_now.clone();
            gone
        };
        for lane in unserved_now.iter().chain(&gone) {
            self.lane_state
                .get_or_create(&LaneStateLabels {
                    lane: lane.clone(),
                    state: "unserved".to_owned(),
                })
                .set(i64::from(unserved_now.contains(lane)));
        }
        // Lanes with nothing queued have no depth row: they count as empty.
        let empty: Vec<LaneDepth> = lanes
            .iter()
            .map(|s| &s.lane)
            .chain(&gone)
            .filter(|lane| !depths.iter().any(|d| &d.lane == *lane))
            .map(|lane| LaneDepth {
                lane: lane.clone(),
                ..LaneDepth::default()
            })
            .collect();
        for d in depths.iter().chain(&empty) {
            let l = LaneLabel {
                lane: d.lane.clone(),
            };
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.pending.get_or_create(&l).set(gauge(d.pending));
            self.waiting_batches
                .get_or_create(&l)
                .set(gauge(d.waiting_batches));
            self.dead_batches
                .get_or_create(&l)
                .set(gauge(d.dead_batches));
            let age = d
                .oldest_pending_at
                .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
            self.oldest_pending.get_or_create(&l).set(age);
        }
        for s in lanes {
            let current = lane_state_name(s);
            for state in LANE_STATES {
                self.lane_state
                    .get_or_create(&LaneStateLabels {
                        lane: s.lane.clone(),
                        state: (*state).to_owned(),
                    })
                    .set(i64::from(*state == current));
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# cannot encode metrics\n");
        }
        out
    }
}

fn lane_state_name(s: &LaneStatus) -> &'static str {
    use crate::dispatch::LaneState::*;
    match s.state {
        Starting => "starting",
        Standby => "standby",
        Idle => "idle",
        Busy => "busy",
        Throttled => "throttled",
        Waiting { .. } => "waiting",
        Parked { .. } => "parked",
        Down { .. } => "down",
        Restarting { .. } => "restarting",
        Stopped => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::LaneState;

    fn status(lane: &str, state: LaneState) -> LaneStatus {
        LaneStatus::in_state(lane, state)
    }

    #[test]
    fn an_account_of_several_lanes_shows_an_empty_fan_out_before_any_backlog() {
        let m = Metrics::new();
        let lanes = [
            LaneStatus::new("edge@a", "edge"),
            LaneStatus::new("edge@b", "edge"),
            LaneStatus::new("tencent", "tencent"),
        ];
        let text = m.render(&[], &[], &lanes, 1_000);
        assert!(
            text.lines()
                .any(|l| l == "edgepurge_queue_fanout_pending{account=\"edge\"} 0"),
            "{text}"
        );
        // One lane: nothing is ever fanned out.
        assert!(!text.contains("account=\"tencent\""), "{text}");
    }

    #[test]
    fn a_lane_with_work_that_no_running_lane_serves_is_unserved_until_its_work_is_gone() {
        let m = Metrics::new();
        let lanes = [status("tencent", LaneState::Idle)];
        let old = LaneDepth {
            lane: "old".into(),
            pending: 3,
            oldest_pending_at: Some(1_000),
            ..LaneDepth::default()
        };
        let text = m.render(std::slice::from_ref(&old), &[], &lanes, 11_000);
        for line in [
            "edgepurge_lane_state{lane=\"old\",state=\"unserved\"} 1",
            "edgepurge_queue_pending{lane=\"old\"} 3",
            "edgepurge_queue_oldest_pending_seconds{lane=\"old\"} 10.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // A served lane is never unserved.
        assert!(
            !text.contains("lane=\"tencent\",state=\"unserved\""),
            "{text}"
        );
        // Its work discarded: dead letters are left, which nothing waits on.
        let dead = LaneDepth {
            lane: "old".into(),
            dead_batches: 1,
            ..LaneDepth::default()
        };
        let text = m.render(std::slice::from_ref(&dead), &[], &lanes, 12_000);
        for line in [
            "edgepurge_lane_state{lane=\"old\",state=\"unserved\"} 0",
            "edgepurge_queue_pending{lane=\"old\"} 0",
            "edgepurge_queue_dead_batches{lane=\"old\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // Back with work, then pruned: every gauge of it reads 0, not its last figure.
        m.render(std::slice::from_ref(&old), &[], &lanes, 12_500);
        let text = m.render(&[], &[], &lanes, 13_000);
        for line in [
            "edgepurge_lane_state{lane=\"old\",state=\"unserved\"} 0",
            "edgepurge_queue_pending{lane=\"old\"} 0",
            "edgepurge_queue_oldest_pending_seconds{lane=\"old\"} 0.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn counts_and_scrape_time_gauges_render_as_prometheus_text() {
        let m = Metrics::new();
        m.body("accepted");
        m.body("accepted");
        m.body("refused");
        m.events("ceph", 3);
        m.targets(5, 2);
        m.request("tencent", "tencent", "succeeded", 3, 0.2, Some(0.25));
        m.quota_remaining("tencent", "url", 9_997);
        m.verification("edge", "stale");
        m.warming("edge", "warmed");
        let depths = [LaneDepth {
            lane: "tencent".into(),
            pending: 4,
            waiting_batches: 1,
            inflight_batches: 0,
            dead_batches: 2,
            oldest_pending_at: Some(1_000),
        }];
        let lanes = [
            status("tencent", LaneState::Idle),
            status(
                "edge@10.0.0.1:6081",
                LaneState::Down {
                    since: 1,
                    next_probe_at: 2,
                },
            ),
        ];
        let fanout = [FanoutDepth {
            account: "edge".into(),
            targets: 7,
            oldest_at: Some(11_000),
        }];
        let text = m.render(&depths, &fanout, &lanes, 31_000);
        for line in [
            "edgepurge_bodies_total{outcome=\"accepted\"} 2",
            "edgepurge_bodies_total{outcome=\"refused\"} 1",
            "edgepurge_events_total{format=\"ceph\"} 3",
            "edgepurge_targets_queued_total 5",
            "edgepurge_targets_merged_total 2",
            "edgepurge_provider_requests_total{provider=\"tencent\",lane=\"tencent\",outcome=\"succeeded\"} 1",
            "edgepurge_batch_targets_count{lane=\"tencent\"} 1",
            "edgepurge_event_to_purged_seconds_count{lane=\"tencent\"} 1",
            "edgepurge_queue_pending{lane=\"tencent\"} 4",
            "edgepurge_queue_oldest_pending_seconds{lane=\"tencent\"} 30.0",
            "edgepurge_queue_dead_batches{lane=\"tencent\"} 2",
            "edgepurge_lane_state{lane=\"tencent\",state=\"idle\"} 1",
            "edgepurge_lane_state{lane=\"tencent\",state=\"down\"} 0",
            "edgepurge_quota_remaining{lane=\"tencent\",kind=\"url\"} 9997",
            "edgepurge_verifications_total{provider=\"edge\",verified=\"stale\"} 1",
            "edgepurge_warmings_total{provider=\"edge\",warmed=\"warmed\"} 1",
            // A lane with nothing queued reports an empty queue.
            "edgepurge_queue_pending{lane=\"edge@10.0.0.1:6081\"} 0",
            "edgepurge_lane_state{lane=\"edge@10.0.0.1:6081\",state=\"down\"} 1",
            "edgepurge_queue_fanout_pending{account=\"edge\"} 7",
            "edgepurge_queue_fanout_oldest_seconds{account=\"edge\"} 20.0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Expanded since: the account reads 0 rather than its last figure.
        let text = m.render(&depths, &[], &lanes, 32_000);
        for line in [
            "edgepurge_queue_fanout_pending{account=\"edge\"} 0",
            "edgepurge_queue_fanout_oldest_seconds{account=\"edge\"} 0.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
