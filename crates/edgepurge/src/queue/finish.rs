//! What a provider's answer does to a batch.

use super::{BatchState, Detached, Finish, FinishOutcome, Ms, QuotaChange, Status};
use edgepurge_core::TargetKind;

/// The batch as stored when its answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    pub kind: TargetKind,
    pub state: BatchState,
    /// The fencing token of the claim that sent it (`None` when not in flight).
    pub token: Option<i64>,
    pub attempts: u32,
    pub n_jobs: u64,
    pub quota_day: Option<i64>,
}

/// New values for a batch's columns; `None` leaves a column as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpdate {
    pub state: BatchState,
    /// What its jobs are now.
    pub status: Status,
    pub not_before: Option<Ms>,
    pub finished_at: Option<Ms>,
    pub attempts: Option<u32>,
    /// Counts its age from here (a requeued dead letter starts afresh).
    pub created_at: Option<Ms>,
    /// Set the quota day to none (its reservation was returned).
    pub clear_quota_day: bool,
    pub request_id: Option<Option<String>>,
    pub task_id: Option<Option<String>>,
    pub last_error: Option<String>,
    /// When its purge is complete at the provider (set for a purge without a task to follow;
    /// any other update clears it).
    pub completed_at: Option<Ms>,
    /// Follow the provider's task, asking first at this time (any other update stops it).
    pub task_check_at: Option<Ms>,
}

/// How a finished answer changes the queue.
// Made and taken apart once per answer: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishPlan {
    /// The batch is no longer this sender's (its lane changed hands and the batch was
    /// reclaimed, or it was already answered): record the request only.
    Stale,
    Apply {
        update: BatchUpdate,
        /// A quota reservation to return.
        quota: Option<QuotaChange>,
        /// Split: the first `keep` jobs stay in this batch, the rest move to a new ready
        /// batch that copies this one's lane, kind, attempts, age and quota day.
        split_keep: Option<u64>,
    },
}

/// Decides what an answer does to `batch`.
pub fn plan(batch: &BatchRow, f: &Finish) -> FinishPlan {
    if batch.state != BatchState::Inflight || batch.token != Some(f.token) {
        return FinishPlan::Stale;
    }
    let release = batch.quota_day.map(|day| QuotaChange {
        kind: batch.kind,
        day,
        delta: -i64::try_from(batch.n_jobs).unwrap_or(i64::MAX),
    });
    let ids = (Some(f.request_id.clone()), Some(f.task_id.clone()));
    let base = BatchUpdate {
        state: BatchState::Ready,
        status: Status::Queued,
        not_before: None,
        finished_at: None,
        attempts: None,
        created_at: None,
        clear_quota_day: false,
        request_id: ids.0.clone(),
        task_id: ids.1.clone(),
        last_error: f.error.clone(),
        completed_at: None,
        task_check_at: None,
    };
    match &f.outcome {
        FinishOutcome::Succeeded => FinishPlan::Apply {
            update: BatchUpdate {
                state: BatchState::Succeeded,
                status: Status::Succeeded,
                finished_at: Some(f.now),
                last_error: None,
                // A task to follow is complete when the provider says so; any other purge
                // when it is answered.
                completed_at: match (&f.task_id, f.follow_task_at) {
                    (Some(_), Some(_)) => None,
                    _ => Some(f.now),
                },
                task_check_at: f.task_id.as_ref().and(f.follow_task_at),
                ..base
            },
            quota: None,
            split_keep: None,
        },
        FinishOutcome::RetryAt(at) => FinishPlan::Apply {
            update: BatchUpdate {
                status: Status::Failed,
                not_before: Some(*at),
                ..base
            },
            quota: None,
            split_keep: None,
        },
        FinishOutcome::Held(at) => FinishPlan::Apply {
            // The provider could not be reached: not an attempt against the retry limit. Its
            // quota reservation (if any) stays: it is resent today when the provider is back.
            update: BatchUpdate {
                status: Status::Failed,
                not_before: Some(*at),
                attempts: Some(batch.attempts.saturating_sub(1)),
                ..base
            },
            quota: None,
            split_keep: None,
        },
        FinishOutcome::WaitUntil(at) => FinishPlan::Apply {
            // Waiting for quota is not an attempt against the retry limit.
            update: BatchUpdate {
                not_before: Some(*at),
                attempts: Some(batch.attempts.saturating_sub(1)),
                clear_quota_day: true,
                task_id: None,
                ..base
            },
            quota: release,
            split_keep: None,
        },
        FinishOutcome::Split if batch.n_jobs > 1 => FinishPlan::Apply {
            update: BatchUpdate {
                not_before: Some(f.now),
                request_id: None,
                task_id: None,
                ..base
            },
            quota: None,
            split_keep: Some(split_point(batch.n_jobs)),
        },
        FinishOutcome::Split | FinishOutcome::Dead => {
            let last_error = match (&f.outcome, &f.error) {
                (FinishOutcome::Split, Some(e)) => {
                    Some(format!("{e} (even a single target was refused)"))
                }
                (_, e) => e.clone(),
            };
            FinishPlan::Apply {
                update: BatchUpdate {
                    state: BatchState::Dead,
                    status: Status::Dead,
                    finished_at: Some(f.now),
                    clear_quota_day: true,
                    last_error,
                    ..base
                },
                quota: release,
                split_keep: None,
            }
        }
    }
}

/// What a detached group's answer does to the batch it moves into: the same as an answer for
/// a batch of just those jobs (a dead group returns its share of the quota reservation).
/// `None` for an outcome a group cannot have (`Succeeded`, `Split`, `WaitUntil`): those
/// targets stay with the batch.
pub fn plan_detached(batch: &BatchRow, group: &Detached, f: &Finish) -> Option<FinishPlan> {
    if !matches!(
        group.outcome,
        FinishOutcome::RetryAt(_) | FinishOutcome::Held(_) | FinishOutcome::Dead
    ) {
        return None;
    }
    let part = BatchRow {
        n_jobs: group.indices.len() as u64,
        ..batch.clone()
    };
    let alone = Finish {
        outcome: group.outcome.clone(),
        error: Some(group.error.clone()),
        detached: Vec::new(),
        follow_task_at: None,
        ..f.clone()
    };
    Some(plan(&part, &alone))
}

/// How many jobs the first half of a split keeps (the larger half).
pub fn split_point(n_jobs: u64) -> u64 {
    n_jobs - n_jobs / 2
}

/// A batch whose sender stopped before recording an answer (the lane changed hands): it is
/// sent again at once (it was due when it was claimed, and stays so).
pub fn reclaim() -> BatchUpdate {
    BatchUpdate {
        state: BatchState::Ready,
        status: Status::Failed,
        not_before: None,
        finished_at: None,
        attempts: None,
        created_at: None,
        clear_quota_day: false,
        request_id: None,
        task_id: None,
        completed_at: None,
        task_check_at: None,
        last_error: Some(
            "the previous sender stopped before recording an answer; resending".to_owned(),
        ),
    }
}

/// How a batch re-queued by `edgepurge retry` says so (its error until it is sent again).
pub const REQUEUED: &str = "requeued by edgepurge retry after: ";

/// Whether a batch about to be sent for the first time was re-queued by `edgepurge retry`
/// (from its attempt number and its last error).
pub fn is_requeued(attempt: u32, last_error: Option<&str>) -> bool {
    attempt == 1 && last_error.is_some_and(|e| e.starts_with(REQUEUED))
}

/// A dead batch queued again by `edgepurge retry`: a fresh start, counted as new.
pub fn requeue(now: Ms, last_error: Option<&str>) -> BatchUpdate {
    BatchUpdate {
        state: BatchState::Ready,
        status: Status::Queued,
        not_before: Some(now),
        finished_at: None,
        attempts: Some(0),
        created_at: Some(now),
        clear_quota_day: true,
        request_id: None,
        task_id: None,
        completed_at: None,
        task_check_at: None,
        last_error: Some(format!("{REQUEUED}{}", last_error.unwrap_or("?"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflight(n_jobs: u64, quota_day: Option<i64>) -> BatchRow {
        BatchRow {
            kind: TargetKind::Url,
            state: BatchState::Inflight,
            token: Some(3),
            attempts: 2,
            n_jobs,
            quota_day,
        }
    }

    fn answer(outcome: FinishOutcome) -> Finish {
        Finish {
            batch_id: 1,
            token: 3,
            started_at: 10,
            now: 20,
            outcome,
            http_status: Some(200),
            request_id: Some("r".into()),
            task_id: Some("t".into()),
            error: Some("boom".into()),
            detached: Vec::new(),
            follow_task_at: None,
        }
    }

    fn update(p: FinishPlan) -> (BatchUpdate, Option<QuotaChange>, Option<u64>) {
        match p {
            FinishPlan::Apply {
                update,
                quota,
                split_keep,
            } => (update, quota, split_keep),
            FinishPlan::Stale => panic!("stale"),
        }
    }

    #[test]
    fn an_answer_with_an_old_fencing_token_changes_nothing() {
        let mut f = answer(FinishOutcome::Succeeded);
        f.token = 2;
        assert_eq!(plan(&inflight(1, None), &f), FinishPlan::Stale);
        let mut done = inflight(1, None);
        done.state = BatchState::Ready;
        assert_eq!(
            plan(&done, &answer(FinishOutcome::Succeeded)),
            FinishPlan::Stale
        );
    }

    #[test]
    fn success_clears_the_error_and_keeps_the_provider_ids() {
        let (u, q, s) = update(plan(
            &inflight(4, Some(9)),
            &answer(FinishOutcome::Succeeded),
        ));
        assert_eq!(
            (u.state, u.status),
            (BatchState::Succeeded, Status::Succeeded)
        );
        assert_eq!(u.last_error, None);
        assert_eq!(u.task_id, Some(Some("t".into())));
        assert_eq!((q, s), (None, None), "a used reservation stays counted");
    }

    #[test]
    fn quota_waits_return_the_reservation_and_the_attempt() {
        let (u, q, _) = update(plan(
            &inflight(4, Some(9)),
            &answer(FinishOutcome::WaitUntil(99)),
        ));
        assert_eq!((u.state, u.status), (BatchState::Ready, Status::Queued));
        assert_eq!((u.not_before, u.attempts), (Some(99), Some(1)));
        assert!(u.clear_quota_day);
        assert_eq!(q.map(|q| (q.day, q.delta)), Some((9, -4)));
    }

    #[test]
    fn splits_keep_the_larger_half_and_single_targets_die() {
        let (u, _, s) = update(plan(&inflight(5, None), &answer(FinishOutcome::Split)));
        assert_eq!(
            (u.state, u.status, s),
            (BatchState::Ready, Status::Queued, Some(3))
        );
        let (u, q, s) = update(plan(&inflight(1, Some(2)), &answer(FinishOutcome::Split)));
        assert_eq!((u.state, s), (BatchState::Dead, None));
        assert!(u.last_error.unwrap().contains("even a single target"));
        assert_eq!(q.map(|q| q.delta), Some(-1));
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(1000), 500);
    }

    #[test]
    fn detached_targets_are_planned_as_a_batch_of_their_own() {
        let batch = inflight(10, Some(9));
        let f = answer(FinishOutcome::Succeeded);
        let dead = Detached {
            indices: vec![1, 4],
            outcome: FinishOutcome::Dead,
            error: "domain not in the account".into(),
        };
        let (u, q, s) = update(plan_detached(&batch, &dead, &f).unwrap());
        assert_eq!(
            (u.state, u.status, s),
            (BatchState::Dead, Status::Dead, None)
        );
        assert_eq!(u.last_error.as_deref(), Some("domain not in the account"));
        assert_eq!(
            q.map(|q| (q.day, q.delta)),
            Some((9, -2)),
            "their share only"
        );
        let retry = Detached {
            indices: vec![2],
            outcome: FinishOutcome::RetryAt(500),
            error: "node timed out".into(),
        };
        let (u, q, _) = update(plan_detached(&batch, &retry, &f).unwrap());
        assert_eq!((u.state, u.status), (BatchState::Ready, Status::Failed));
        assert_eq!((u.not_before, q), (Some(500), None));
        let odd = Detached {
            outcome: FinishOutcome::Split,
            ..retry
        };
        assert_eq!(plan_detached(&batch, &odd, &f), None);
    }

    #[test]
    fn retries_are_failed_until_their_time() {
        let (u, q, _) = update(plan(
            &inflight(2, Some(1)),
            &answer(FinishOutcome::RetryAt(50)),
        ));
        assert_eq!(
            (u.state, u.status, u.not_before),
            (BatchState::Ready, Status::Failed, Some(50))
        );
        assert_eq!(u.last_error.as_deref(), Some("boom"));
        assert_eq!(q, None, "a retried batch keeps its reservation");
    }
}
