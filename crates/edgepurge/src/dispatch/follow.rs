//! The purge lifecycle, step one: a provider's "accepted" is not "done". A lane whose provider
//! returns purge tasks it can be asked about (Tencent `DescribePurgeTasks`, CloudFront
//! `GetInvalidation`) asks about each task after its purge succeeded, at doubling intervals,
//! until the provider says it completed or failed; the log then shows when the purge took
//! effect. Status requests have their own rate limit (the lane's `rate_per_s`: providers
//! limit each API action on its own) and run only while this process holds the lane. A
//! provider that says when its purge will be done instead (Akamai's `estimatedSeconds`, with
//! no status to ask) gives that time through [`Purger::first_task_check`]: the task is first
//! asked about then, and its `task_state` says done without a request.

use crate::clock::Clock;
use crate::purgers::{PurgeError, Purger, TaskState};
use crate::store::{FollowedTask, Ms, Store, TaskProgress, TaskUpdate};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ratelimit::RateLimiter;
use super::OutcomeSink;

/// Tasks asked about per round.
const ROUND: usize = 32;
/// "Unknown task" answers believed before giving up (a task may not be visible at once).
const UNKNOWN_CHECKS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// First ask about a task this long after its purge was answered.
    pub first_check_ms: i64,
    /// Then at doubling intervals, up to this.
    pub max_interval_ms: i64,
    /// Give up (completion not confirmed) on a task still running this long after its purge.
    pub timeout_ms: i64,
}

impl Default for FollowSettings {
    fn default() -> Self {
        FollowSettings {
            first_check_ms: 5_000,
            max_interval_ms: 60_000,
            timeout_ms: 3_600_000,
        }
    }
}

impl FollowSettings {
    /// When to ask again about a task asked about `checks` times (this time included).
    pub fn next_check(&self, now: Ms, checks: u32) -> Ms {
        let first = self.first_check_ms.max(1);
        let interval = first
            .saturating_mul(1i64 << checks.min(30))
            .min(self.max_interval_ms.max(first));
        now.saturating_add(interval)
    }

    /// What an answer about `task` means.
    pub fn progress(
        &self,
        task: &FollowedTask,
        answer: &Result<TaskState, PurgeError>,
        now: Ms,
    ) -> TaskProgress {
        let checks = task.checks.saturating_add(1);
        // From the provider: shown escaped and cut, never raw in a log line.
        let id = &crate::purgers::snippet(&task.task_id, 80);
        let running = |why: String| {
            if now.saturating_sub(task.sent_at) >= self.timeout_ms {
                TaskProgress::Abandoned {
                    reason: format!(
                        "completion not confirmed: task {id} {why} {} s after the purge",
                        now.saturating_sub(task.sent_at) / 1000
                    ),
                }
            } else {
                TaskProgress::Running {
                    next_check_at: self.next_check(now, checks),
                }
            }
        };
        let esc = |t: &str| crate::purgers::snippet(t, 600);
        match answer {
            Ok(TaskState::Done) => TaskProgress::Completed { at: now },
            Ok(TaskState::Failed(what)) => TaskProgress::Failed {
                error: format!("the provider reports purge task {id} failed: {}", esc(what)),
            },
            Ok(TaskState::Unconfirmable(what)) => TaskProgress::Abandoned {
                reason: format!("completion not confirmed for task {id}: {}", esc(what)),
            },
            Ok(TaskState::Unknown(what)) if checks >= UNKNOWN_CHECKS => TaskProgress::Abandoned {
                reason: format!(
                    "completion not confirmed: the provider does not know task {id} ({})",
                    esc(what)
                ),
            },
            Ok(TaskState::Unknown(what)) => {
                running(format!("unknown to the provider ({})", esc(what)))
            }
            Ok(TaskState::Running) => running("still running".to_owned()),
            Err(e) => running(format!(
                "could not be asked about ({})",
                esc(&e.to_string())
            )),
        }
    }
}

pub(super) struct Follower {
    pub store: Arc<dyn Store>,
    pub purger: Arc<dyn Purger>,
    pub settings: FollowSettings,
    pub clock: Clock,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub shutdown: CancellationToken,
    /// The lane's fencing token while this process holds it.
    pub held: watch::Receiver<Option<i64>>,
}

impl Follower {
    pub async fn run(mut self) {
        let lane = self.purger.lane().to_owned();
        let mut limiter = RateLimiter::per_second(self.purger.limits().rate_per_s);
        // Looks for due tasks this often (a task's own schedule is in the store).
        let idle = Duration::from_millis(self.settings.first_check_ms.clamp(50, 1000) as u64);
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            if self.held.borrow_and_update().is_none() {
                tokio::select! {
                    changed = self.held.changed() => if changed.is_err() { return },
                    _ = self.shutdown.cancelled() => return,
                }
                continue;
            }
            let now = self.clock.now_ms();
            let tasks = match self.store.tasks_due(&lane, now, ROUND).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(lane = %lane, error = %e, "cannot read purge tasks to follow");
                    Vec::new()
                }
            };
            if tasks.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {},
                    _ = self.shutdown.cancelled() => return,
                }
                continue;
            }
            let mut updates = Vec::with_capacity(tasks.len());
            for task in &tasks {
                // Another process took the lane: it asks from now on.
                if self.held.borrow().is_none() {
                    break;
                }
                // One place in the rate window per call the check may make (pages, chunks).
                for _ in 0..self.purger.task_calls(&task.task_id).max(1) {
                    tokio::select! {
                        _ = limiter.ready() => {},
                        _ = self.shutdown.cancelled() => return,
                    }
                    limiter.record();
                }
                let answer = self.purger.task_state(&task.task_id).await;
                let now = self.clock.now_ms();
                let progress = self.settings.progress(task, &answer, now);
                self.report(task, &answer, &progress, now);
                updates.push(TaskUpdate {
                    batch_id: task.batch_id,
                    progress,
                });
            }
            match self.store.note_tasks(updates, self.clock.now_ms()).await {
                Ok(receipt) if !receipt.records.is_empty() => {
                    self.outcomes.changed(&receipt.records)
                }
                Ok(_) => {}
                // Asked again at the next round, after a pause: the store may be busy.
                Err(e) => {
                    tracing::warn!(lane = %lane, error = %e, "cannot record purge tasks");
                    tokio::select! {
                        _ = tokio::time::sleep(idle) => {},
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    fn report(
        &self,
        task: &FollowedTask,
        answer: &Result<TaskState, PurgeError>,
        progress: &TaskProgress,
        now: Ms,
    ) {
        let lane = self.purger.lane();
        let (batch, task_id) = (task.batch_id, task.task_id.as_str());
        match progress {
            TaskProgress::Completed { .. } => tracing::info!(
                lane,
                batch,
                task_id,
                after_ms = now.saturating_sub(task.sent_at),
                "purge completed"
            ),
            TaskProgress::Failed { error } => {
                tracing::warn!(lane, batch, task_id, error = %error, "purge task failed")
            }
            TaskProgress::Abandoned { reason } => {
                tracing::warn!(lane, batch, task_id, reason = %reason, "stopped following purge task")
            }
            TaskProgress::Running { .. } => {
                if let Err(e) = answer {
                    let error = e.to_string();
                    tracing::warn!(
                        lane,
                        batch,
                        task_id,
                        error = %edgepurge_core::printable(&error),
                        "cannot ask about purge task"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(checks: u32) -> FollowedTask {
        FollowedTask {
            batch_id: 7,
            task_id: "t-1".into(),
            sent_at: 1_000,
            checks,
        }
    }

    #[test]
    fn intervals_double_up_to_the_maximum() {
        let s = FollowSettings::default();
        assert_eq!(s.next_check(0, 0), 5_000);
        assert_eq!(s.next_check(0, 1), 10_000);
        assert_eq!(s.next_check(0, 3), 40_000);
        assert_eq!(s.next_check(0, 4), 60_000);
        assert_eq!(s.next_check(0, 400), 60_000);
    }

    #[test]
    fn answers_become_progress() {
        let s = FollowSettings::default();
        assert_eq!(
            s.progress(&task(0), &Ok(TaskState::Done), 9_000),
            TaskProgress::Completed { at: 9_000 }
        );
        assert_eq!(
            s.progress(&task(0), &Ok(TaskState::Running), 9_000),
            TaskProgress::Running {
                next_check_at: 19_000
            }
        );
        let TaskProgress::Failed { error } = s.progress(
            &task(2),
            &Ok(TaskState::Failed("https://a/x".into())),
            9_000,
        ) else {
            panic!("a failed task is a failure");
        };
        assert!(
            error.contains("t-1") && error.contains("https://a/x"),
            "{error}"
        );
        // A provider error is asked about again; so is a task not visible yet, a few times.
        let flaky = Err(PurgeError::Transport("connection reset".into()));
        assert!(matches!(
            s.progress(&task(0), &flaky, 9_000),
            TaskProgress::Running { .. }
        ));
        let unknown = Ok(TaskState::Unknown("NoSuchInvalidation".into()));
        assert!(matches!(
            s.progress(&task(0), &unknown, 9_000),
            TaskProgress::Running { .. }
        ));
        let TaskProgress::Abandoned { reason } = s.progress(&task(2), &unknown, 9_000) else {
            panic!("an unknown task is given up after {UNKNOWN_CHECKS} answers");
        };
        assert!(reason.contains("does not know task t-1"), "{reason}");
        // No permission to ask: given up at once, with what to grant.
        let denied = Ok(TaskState::Unconfirmable(
            "grant cdn:DescribePurgeTasks".into(),
        ));
        let TaskProgress::Abandoned { reason } = s.progress(&task(0), &denied, 9_000) else {
            panic!("a refusal to tell is not asked again");
        };
        assert!(reason.contains("grant cdn:DescribePurgeTasks"), "{reason}");
        // A task id from the provider is never raw in the text.
        let evil = FollowedTask {
            task_id: "t\nFAKE LOG LINE\u{1b}[31m".into(),
            ..task(0)
        };
        let TaskProgress::Failed { error } =
            s.progress(&evil, &Ok(TaskState::Failed("x".into())), 9_000)
        else {
            panic!("failed");
        };
        assert!(
            !error.contains('\n') && !error.contains('\u{1b}'),
            "{error:?}"
        );
    }

    #[test]
    fn a_task_running_past_the_timeout_is_given_up_with_the_reason() {
        let s = FollowSettings {
            timeout_ms: 60_000,
            ..FollowSettings::default()
        };
        let TaskProgress::Abandoned { reason } =
            s.progress(&task(5), &Ok(TaskState::Running), 61_000)
        else {
            panic!("past the timeout");
        };
        assert!(
            reason.contains("still running 60 s after the purge"),
            "{reason}"
        );
    }
}
