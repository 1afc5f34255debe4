//! Which batch a lane sends next.
//!
//! Order: a batch due for another attempt first (oldest due first), then a new batch from
//! pending jobs, kind by kind in the lane's order. A new batch is formed once it is full or its
//! oldest job has waited `linger_ms`. Daily quotas are reserved when a batch is formed or
//! resent on a new quota day, and a batch that would exceed the quota waits for the reset.
//! Jobs held by a rule's `min_interval_ms` are not pending until their hold ends (the lane is
//! woken then), and a lane that collapses URLs into directories ([`super::collapse`]) does so
//! before it forms a batch.

use super::{collapse, ClaimRequest, KindLimits, Ms, QuotaChange};
use edgepurge_core::TargetKind;

/// A ready batch whose `not_before` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBatch {
    pub id: i64,
    pub kind: TargetKind,
    pub n_jobs: u64,
    /// The quota day its reservation counts on, if it holds one.
    pub quota_day: Option<i64>,
}

/// Jobs of one kind not yet in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub kind: TargetKind,
    pub count: u64,
    /// Arrival of the oldest of them.
    pub oldest: Ms,
}

/// What a backend reads about a lane before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneView {
    /// Ready batches due now, in the order to serve them (`not_before`, then id).
    pub due: Vec<DueBatch>,
    /// Pending jobs per kind (kinds with none may be left out).
    pub pending: Vec<Pending>,
    /// The earliest `not_before` of any ready batch of the lane.
    pub next_ready: Option<Ms>,
    /// Quota used (reserved) today per kind, for kinds with a daily quota.
    pub used_today: Vec<(TargetKind, u64)>,
    /// When the first pending job held by a rule's `min_interval_ms` may go (held jobs are
    /// not in `pending`).
    pub held_until: Option<Ms>,
    /// The pending URL jobs that may go now, read only when the lane collapses
    /// (`collapse_to_dir_over`) and its URL quota left would not cover them
    /// ([`collapse::short`]).
    pub pending_urls: Option<Vec<collapse::PendingUrl>>,
}

impl LaneView {
    /// Quota used (reserved) today for `kind`.
    pub fn used(&self, kind: TargetKind) -> u64 {
        self.used_today
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, u)| *u)
    }

    fn pending(&self, kind: TargetKind) -> Option<Pending> {
        self.pending
            .iter()
            .find(|p| p.kind == kind && p.count > 0)
            .copied()
    }
}

/// The step a backend carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this ready batch again; set its quota day to `quota_day` when `Some`.
    Resend {
        batch: i64,
        quota_day: Option<Option<i64>>,
    },
    /// Form a batch from the `take` oldest pending jobs of `kind`; it holds a reservation on
    /// `quota_day` when `Some`.
    Form {
        kind: TargetKind,
        take: u64,
        quota_day: Option<i64>,
    },
    /// Replace these pending URL jobs by directory jobs (`collapse_to_dir_over`), then plan
    /// again without collapsing.
    Collapse {
        dirs: Vec<collapse::DirPurge>,
    },
    /// Nothing to send before `until`; see [`crate::queue::Claim::Wait`] for `fill_after`.
    Wait {
        until: Ms,
        fill_after: Option<u64>,
    },
    Idle,
}

/// Everything a claim changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Quota counters to change (reservations made or returned).
    pub quota: Vec<QuotaChange>,
    /// Batches skipped for quota whose stale reservation was returned: set their quota day to
    /// none.
    pub clear_quota_day: Vec<i64>,
    pub step: Step,
}

/// Decides the next claim of a lane from what the backend read.
pub fn plan(req: &ClaimRequest, view: &LaneView) -> ClaimPlan {
    let mut quota = Vec::new();
    let mut clear_quota_day = Vec::new();
    let mut wake: Option<Ms> = None;
    // Whether every reason to wait is jobs lingering for their batch to fill, and how many
    // more jobs would fill the closest one.
    let mut only_linger = true;
    let mut fill = u64::MAX;
    let mut wake_at = |t: Ms| wake = Some(wake.map_or(t, |w: Ms| w.min(t)));
    let today = req.quota_day;

    // 1. A batch due for another attempt.
    for due in &view.due {
        let Some(limits) = req.limits(due.kind) else {
            continue;
        };
        let n = i64::try_from(due.n_jobs).unwrap_or(i64::MAX);
        // A reservation counts on the day it was made; a batch resent on a later day is
        // counted again on that day (and the old day's reservation returned).
        let stale = due.quota_day.filter(|d| *d != today);
        if let Some(old) = stale {
            quota.push(QuotaChange {
                kind: due.kind,
                day: old,
                delta: -n,
            });
        }
        // A quota of 0 (the provider said today's is spent) holds even what was reserved.
        if due.quota_day == Some(today) && limits.daily_quota != Some(0) {
            return ClaimPlan {
                quota,
                clear_quota_day,
                step: Step::Resend {
                    batch: due.id,
                    quota_day: None,
                },
            };
        }
        match limits.daily_quota {
            Some(limit) if view.used(due.kind).saturating_add(due.n_jobs) > limit => {
                if stale.is_some() {
                    clear_quota_day.push(due.id);
                }
                wake_at(req.quota_reset_at);
                only_linger = false;
                continue;
            }
            Some(_) => {
                quota.push(QuotaChange {
                    kind: due.kind,
                    day: today,
                    delta: n,
                });
                return ClaimPlan {
                    quota,
                    clear_quota_day,
                    step: Step::Resend {
                        batch: due.id,
                        quota_day: Some(Some(today)),
                    },
                };
            }
            None => {
                return ClaimPlan {
                    quota,
                    clear_quota_day,
                    step: Step::Resend {
                        batch: due.id,
                        quota_day: stale.map(|_| None),
                    },
                };
            }
        }
    }

    // 2. Pending URLs the day's URL quota would not cover: those sharing a directory with
    // enough others become one directory purge each.
    if let Some(urls) = &view.pending_urls {
        let dirs_pending = view.pending(TargetKind::Dir).map_or(0, |p| p.count);
        let dirs = collapse::plan(req, urls, view.used(TargetKind::Dir), dirs_pending);
        if !dirs.is_empty() {
            return ClaimPlan {
                quota,
                clear_quota_day,
                step: Step::Collapse { dirs },
            };
        }
    }

    // 3. A new batch from pending jobs, once full or lingered long enough.
    for &(kind, limits) in &req.kinds {
        let Some(pending) = view.pending(kind) else {
            continue;
        };
        let max = limits.max_batch.max(1) as u64;
        let lingering = pending.count < max;
        if let Some(step) = form(req, view, kind, limits, pending, &mut wake_at) {
            if let Step::Form {
                take,
                quota_day: Some(day),
                ..
            } = step
            {
                quota.push(QuotaChange {
                    kind,
                    day,
                    delta: i64::try_from(take).unwrap_or(i64::MAX),
                });
            }
            return ClaimPlan {
                quota,
                clear_quota_day,
                step,
            };
        }
        if lingering && pending.oldest.saturating_add(req.linger_ms) > req.now {
            fill = fill.min(max - pending.count);
        } else {
            // Waiting for the quota: new jobs of this kind cannot go sooner either, but say so
            // plainly.
            only_linger = false;
        }
    }

    // 4. Nothing to send now: when is the next thing due? A job held by a rule's
    // min_interval_ms goes when its hold ends, whatever else arrives.
    if let Some(t) = view.held_until.filter(|t| *t > req.now) {
        wake_at(t);
        only_linger = false;
    }
    if let Some(t) = view.next_ready {
        // A due batch skipped for quota already put the reset time in `wake`.
        if t > req.now {
            wake_at(t);
            only_linger = false;
        }
    }
    ClaimPlan {
        quota,
        clear_quota_day,
        step: match wake {
            Some(until) => Step::Wait {
                until,
                fill_after: (only_linger && fill != u64::MAX).then_some(fill),
            },
            None => Step::Idle,
        },
    }
}

fn form(
    req: &ClaimRequest,
    view: &LaneView,
    kind: TargetKind,
    limits: KindLimits,
    pending: Pending,
    wake_at: &mut impl FnMut(Ms),
) -> Option<Step> {
    let max = limits.max_batch.max(1) as u64;
    if pending.count < max && pending.oldest.saturating_add(req.linger_ms) > req.now {
        wake_at(pending.oldest.saturating_add(req.linger_ms));
        return None;
    }
    let mut take = pending.count.min(max);
    if let Some(limit) = limits.daily_quota {
        let left = limit.saturating_sub(view.used(kind));
        if left == 0 {
            wake_at(req.quota_reset_at);
            return None;
        }
        take = take.min(left);
    }
    Some(Step::Form {
        kind,
        take,
        quota_day: limits.daily_quota.map(|_| req.quota_day),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn req(now: Ms, max_batch: usize, daily_quota: Option<u64>) -> ClaimRequest {
        ClaimRequest {
            lane: "p".into(),
            owner: "A".into(),
            token: 1,
            now,
            linger_ms: 100,
            kinds: vec![
                (
                    TargetKind::Url,
                    KindLimits {
                        max_batch,
                        daily_quota,
                    },
                ),
                (
                    TargetKind::Dir,
                    KindLimits {
                        max_batch: 20,
                        daily_quota: None,
                    },
                ),
            ],
            quota_day: now.div_euclid(DAY),
            quota_reset_at: (now.div_euclid(DAY) + 1) * DAY,
            collapse_to_dir_over: None,
            fanout: None,
        }
    }

    fn pending(count: u64, oldest: Ms) -> Vec<Pending> {
        vec![Pending {
            kind: TargetKind::Url,
            count,
            oldest,
        }]
    }

    #[test]
    fn a_partial_batch_lingers_and_a_full_one_goes_at_once() {
        let view = LaneView {
            pending: pending(3, 1000),
            ..Default::default()
        };
        assert_eq!(
            plan(&req(1050, 10, None), &view).step,
            Step::Wait {
                until: 1100,
                fill_after: Some(7)
            },
            "three lingering of ten: seven more would fill the batch"
        );
        assert_eq!(
            plan(&req(1100, 10, None), &view).step,
            Step::Form {
                kind: TargetKind::Url,
                take: 3,
                quota_day: None
            }
        );
        assert_eq!(
            plan(&req(1000, 3, None), &view).step,
            Step::Form {
                kind: TargetKind::Url,
                take: 3,
                quota_day: None
            }
        );
        let big = LaneView {
            pending: pending(2500, 1000),
            ..Default::default()
        };
        assert!(matches!(
            plan(&req(1000, 1000, None), &big).step,
            Step::Form { take: 1000, .. }
        ));
    }

    #[test]
    fn jobs_held_for_min_interval_wake_the_lane_when_their_hold_ends() {
        let held = LaneView {
            held_until: Some(5_000),
            ..Default::default()
        };
        assert_eq!(
            plan(&req(1_000, 10, None), &held).step,
            Step::Wait {
                until: 5_000,
                fill_after: None
            }
        );
        // Lingering jobs besides: the sooner of the two, and any new work may change it.
        let both = LaneView {
            pending: pending(3, 1_000),
            ..held.clone()
        };
        assert_eq!(
            plan(&req(1_050, 10, None), &both).step,
            Step::Wait {
                until: 1_100,
                fill_after: None
            }
        );
        // A hold already over holds nothing back.
        let over = LaneView {
            held_until: Some(500),
            ..Default::default()
        };
        assert_eq!(plan(&req(1_000, 10, None), &over).step, Step::Idle);
    }

    #[test]
    fn urls_the_quota_would_not_cover_collapse_before_a_batch_is_formed() {
        let mut r = req(1_000, 100, Some(10));
        r.kinds[1].1.daily_quota = Some(100);
        r.collapse_to_dir_over = Some(2);
        let urls: Vec<collapse::PendingUrl> = ["a/1", "a/2", "a/3", "b/1"]
            .iter()
            .enumerate()
            .map(|(i, p)| collapse::PendingUrl {
                job: i as i64 + 1,
                target: format!("https://h/{p}"),
                host_ok: false,
            })
            .collect();
        let view = LaneView {
            pending: pending(4, 0),
            used_today: vec![(TargetKind::Url, 8), (TargetKind::Dir, 0)],
            pending_urls: Some(urls.clone()),
            ..Default::default()
        };
        let p = plan(&r, &view);
        assert_eq!(
            p.step,
            Step::Collapse {
                dirs: vec![collapse::DirPurge {
                    dir: "https://h/a/".into(),
                    jobs: vec![1, 2, 3]
                }]
            }
        );
        assert!(p.quota.is_empty(), "nothing is reserved by a collapse");
        // Planned again without the URLs (the backend's second pass): a batch as usual.
        let after = LaneView {
            pending_urls: None,
            ..view.clone()
        };
        assert!(matches!(plan(&r, &after).step, Step::Form { take: 2, .. }));
        // Nothing qualifies: a batch as usual, within the quota left.
        let few = LaneView {
            pending_urls: Some(urls[2..].to_vec()),
            ..view
        };
        assert!(matches!(plan(&r, &few).step, Step::Form { take: 2, .. }));
    }

    #[test]
    fn due_batches_go_before_new_ones() {
        let view = LaneView {
            due: vec![DueBatch {
                id: 7,
                kind: TargetKind::Url,
                n_jobs: 2,
                quota_day: None,
            }],
            pending: pending(5000, 0),
            ..Default::default()
        };
        assert_eq!(
            plan(&req(DAY, 1000, None), &view).step,
            Step::Resend {
                batch: 7,
                quota_day: None
            }
        );
    }

    #[test]
    fn a_new_batch_takes_only_what_the_quota_leaves() {
        let view = LaneView {
            pending: pending(8, 0),
            used_today: vec![(TargetKind::Url, 3)],
            ..Default::default()
        };
        let p = plan(&req(500, 100, Some(5)), &view);
        assert_eq!(
            p.step,
            Step::Form {
                kind: TargetKind::Url,
                take: 2,
                quota_day: Some(0)
            }
        );
        assert_eq!(
            p.quota,
            vec![QuotaChange {
                kind: TargetKind::Url,
                day: 0,
                delta: 2
            }]
        );
        let spent = LaneView {
            used_today: vec![(TargetKind::Url, 5)],
            ..view
        };
        assert_eq!(
            plan(&req(500, 100, Some(5)), &spent).step,
            Step::Wait {
                until: DAY,
                fill_after: None
            }
        );
    }

    #[test]
    fn a_batch_resent_on_a_later_day_moves_its_reservation() {
        let due = |quota_day| LaneView {
            due: vec![DueBatch {
                id: 1,
                kind: TargetKind::Url,
                n_jobs: 4,
                quota_day,
            }],
            ..Default::default()
        };
        // Reserved yesterday (day 0), resent today (day 1): returned there, counted here.
        let p = plan(&req(DAY + 5, 100, Some(10)), &due(Some(0)));
        assert_eq!(
            p.step,
            Step::Resend {
                batch: 1,
                quota_day: Some(Some(1))
            }
        );
        assert_eq!(
            p.quota,
            vec![
                QuotaChange {
                    kind: TargetKind::Url,
                    day: 0,
                    delta: -4
                },
                QuotaChange {
                    kind: TargetKind::Url,
                    day: 1,
                    delta: 4
                }
            ]
        );
        // Reserved today already: nothing moves.
        let p = plan(&req(DAY + 5, 100, Some(10)), &due(Some(1)));
        assert!(p.quota.is_empty());
        // ... unless today's quota is 0 (spent, by the provider's word): it waits for the reset.
        let p = plan(&req(DAY + 5, 100, Some(0)), &due(Some(1)));
        assert_eq!(
            p.step,
            Step::Wait {
                until: 2 * DAY,
                fill_after: None
            }
        );
        assert!(p.quota.is_empty() && p.clear_quota_day.is_empty());
        // Today's quota cannot hold it: the stale reservation is returned and it waits.
        let full = LaneView {
            used_today: vec![(TargetKind::Url, 9)],
            ..due(Some(0))
        };
        let p = plan(&req(DAY + 5, 100, Some(10)), &full);
        assert_eq!(
            p.step,
            Step::Wait {
                until: 2 * DAY,
                fill_after: None
            }
        );
        assert_eq!(p.clear_quota_day, vec![1]);
        assert_eq!(p.quota.len(), 1);
        // No quota for the kind any more: the stale reservation is returned and cleared.
        let p = plan(&req(DAY + 5, 100, None), &due(Some(0)));
        assert_eq!(
            p.step,
            Step::Resend {
                batch: 1,
                quota_day: Some(None)
            }
        );
    }

    #[test]
    fn batches_of_kinds_the_lane_does_not_send_are_left_alone() {
        let view = LaneView {
            due: vec![DueBatch {
                id: 3,
                kind: TargetKind::Tag,
                n_jobs: 1,
                quota_day: None,
            }],
            next_ready: Some(10),
            ..Default::default()
        };
        assert_eq!(plan(&req(10, 100, None), &view).step, Step::Idle);
        assert_eq!(
            plan(&req(5, 100, None), &view).step,
            Step::Wait {
                until: 10,
                fill_after: None
            },
            "a batch backing off: new work may be sendable sooner"
        );
    }
}
