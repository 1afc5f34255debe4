//! Whether a lane's provider is reachable. After outage failures ([`PurgeResponse::is_outage`])
//! of `down_after` different batches in a row the lane is *down* (one batch failing again and
//! again is about that batch, e.g. a URL a cache errors on, not the provider): it holds
//! its batches (they do not spend attempts) and sends one probe at a time, at most one per
//! `probe_interval`. The first answer that is not an outage (success, or a refusal of one
//! batch: the provider is answering) brings it back *up*, and it drains at the full rate.
//!
//! [`PurgeResponse::is_outage`]: crate::purgers::PurgeResponse::is_outage

use crate::store::Ms;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Outage failures in a row that take the lane down.
    pub down_after: u32,
    /// While down: the time between one probe's answer and the next probe.
    pub probe_interval_ms: i64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            down_after: 3,
            probe_interval_ms: 5_000,
        }
    }
}

/// What an answer changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// The lane just went down.
    WentDown,
    /// The lane is up again after being down since `since`.
    CameBack {
        since: Ms,
    },
}

#[derive(Debug, Default)]
struct State {
    /// The batches whose outage failures make the current run (distinct, at most
    /// `down_after`).
    run: Vec<i64>,
    /// When the lane went down; `None` while up.
    down_since: Option<Ms>,
    /// While down: when the next probe may go.
    probe_at: Ms,
}

#[derive(Debug)]
pub struct Health {
    settings: HealthSettings,
    state: Mutex<State>,
}

impl Health {
    pub fn new(settings: HealthSettings) -> Health {
        Health {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the answer for `batch` at `now`. Returns what changed and, for an outage
    /// answer while the lane is down, until when its batch is held (the next probe).
    pub fn answered(&self, outage: bool, batch: i64, now: Ms) -> (Change, Option<Ms>) {
        let mut s = self.state();
        if !outage {
            s.run.clear();
            return match s.down_since.take() {
                Some(since) => (Change::CameBack { since }, None),
                None => (Change::None, None),
            };
        }
        let needed = self.settings.down_after.max(1) as usize;
        if !s.run.contains(&batch) && s.run.len() < needed {
            s.run.push(batch);
        }
        let mut change = Change::None;
        if s.down_since.is_none() && s.run.len() >= needed {
            s.down_since = Some(now);
            change = Change::WentDown;
        }
        if s.down_since.is_some() {
            s.probe_at = now.saturating_add(self.settings.probe_interval_ms);
            return (change, Some(s.probe_at));
        }
        (change, None)
    }

    /// While down: since when, and when the next probe may go.
    pub fn down(&self) -> Option<(Ms, Ms)> {
        let s = self.state();
        s.down_since.map(|since| (since, s.probe_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_failures_in_a_row_up_at_the_first_answer() {
        let h = Health::new(HealthSettings {
            down_after: 3,
            probe_interval_ms: 5_000,
        });
        assert_eq!(h.answered(true, 1, 10), (Change::None, None));
        assert_eq!(h.answered(true, 2, 20), (Change::None, None));
        // A failure about one batch (or a success) breaks the run.
        assert_eq!(h.answered(false, 3, 30), (Change::None, None));
        assert_eq!(h.answered(true, 4, 40), (Change::None, None));
        assert_eq!(h.answered(true, 5, 50), (Change::None, None));
        assert_eq!(h.down(), None);
        assert_eq!(h.answered(true, 6, 60), (Change::WentDown, Some(5_060)));
        assert_eq!(h.down(), Some((60, 5_060)));
        // Probes that fail push the next probe on and hold their batch until then.
        assert_eq!(h.answered(true, 6, 5_100), (Change::None, Some(10_100)));
        assert_eq!(h.down(), Some((60, 10_100)));
        assert_eq!(
            h.answered(false, 7, 10_200),
            (Change::CameBack { since: 60 }, None)
        );
        assert_eq!(h.down(), None);
        // Up again: it takes another full run to go down.
        assert_eq!(h.answered(true, 8, 10_300), (Change::None, None));
    }

    #[test]
    fn one_batch_failing_again_and_again_does_not_take_the_lane_down() {
        let h = Health::new(HealthSettings::default());
        for t in 0..20 {
            assert_eq!(h.answered(true, 42, t), (Change::None, None));
        }
        assert_eq!(h.down(), None);
        assert_eq!(h.answered(true, 43, 30), (Change::None, None));
        assert_eq!(h.answered(true, 44, 40).0, Change::WentDown);
    }
}
