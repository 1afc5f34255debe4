//! The status of a purge log record from its jobs.

use super::{Ms, Status};

/// One job of a record, as the record sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobView<'a> {
    pub status: Status,
    pub attempts: u32,
    pub request_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub error: Option<&'a str>,
    /// When its purge completed at the provider (`None`: not yet, or not known).
    pub completed_at: Option<Ms>,
    /// Why completion could not be confirmed (the provider's task failed, or was lost).
    pub task_error: Option<&'a str>,
}

impl JobView<'_> {
    /// A job not yet in any batch.
    pub const PENDING: JobView<'static> = JobView {
        status: Status::Queued,
        attempts: 0,
        request_id: None,
        task_id: None,
        error: None,
        completed_at: None,
        task_error: None,
    };
}

/// What a log record shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    pub status: Status,
    pub attempts: u32,
    /// Every provider request id, comma-separated, in job order.
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    pub error: Option<String>,
    /// When every job's purge had completed at the provider: set once the record succeeded
    /// and each provider confirmed (or needs no confirming).
    pub completed_at: Option<Ms>,
}

/// A record shows the worst status of its jobs, the most attempts, every provider id, and the
/// error of the first job that has not succeeded (else the first reason a completion could
/// not be confirmed), and when the last of its purges completed. A record without jobs is
/// skipped.
pub fn summarize<'a>(jobs: impl IntoIterator<Item = JobView<'a>>) -> RecordSummary {
    let mut status: Option<Status> = None;
    let mut attempts = 0;
    let mut request_ids: Vec<&str> = Vec::new();
    let mut task_ids: Vec<&str> = Vec::new();
    let mut error: Option<&str> = None;
    let mut task_error: Option<&str> = None;
    let mut completed_at: Option<Ms> = None;
    let mut all_completed = true;
    for job in jobs {
        match job.completed_at {
            Some(at) if job.status == Status::Succeeded => {
                completed_at = Some(completed_at.map_or(at, |c| c.max(at)));
            }
            _ => all_completed = false,
        }
        if task_error.is_none() {
            task_error = job.task_error;
        }
        status = Some(status.map_or(job.status, |s| s.max(job.status)));
        attempts = attempts.max(job.attempts);
        for (list, id) in [
            (&mut request_ids, job.request_id),
            (&mut task_ids, job.task_id),
        ] {
            if let Some(id) = id {
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
        if job.status != Status::Succeeded && error.is_none() {
            error = job.error;
        }
    }
    let join = |v: Vec<&str>| (!v.is_empty()).then(|| v.join(","));
    RecordSummary {
        status: status.unwrap_or(Status::Skipped),
        attempts,
        request_id: join(request_ids),
        task_id: join(task_ids),
        error: error.or(task_error).map(str::to_owned),
        completed_at: completed_at.filter(|_| all_completed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        status: Status,
        attempts: u32,
        id: &'static str,
        error: Option<&'static str>,
    ) -> JobView<'static> {
        JobView {
            status,
            attempts,
            request_id: Some(id),
            task_id: None,
            error,
            completed_at: None,
            task_error: None,
        }
    }

    #[test]
    fn a_record_completes_when_every_job_completed() {
        let done = |at: Ms| JobView {
            completed_at: Some(at),
            ..job(Status::Succeeded, 1, "a", None)
        };
        let s = summarize([done(5), done(9)]);
        assert_eq!((s.status, s.completed_at), (Status::Succeeded, Some(9)));
        // One purge still running at the provider: not complete yet.
        let s = summarize([done(5), job(Status::Succeeded, 1, "b", None)]);
        assert_eq!((s.status, s.completed_at), (Status::Succeeded, None));
        // A job resent after a failure is not complete, whatever an earlier answer said.
        let s = summarize([
            done(5),
            JobView {
                completed_at: Some(3),
                ..job(Status::Failed, 2, "c", Some("timeout"))
            },
        ]);
        assert_eq!(
            (s.completed_at, s.error.as_deref()),
            (None, Some("timeout"))
        );
        // A task the provider failed shows its reason while nothing else is wrong.
        let s = summarize([
            done(5),
            JobView {
                task_error: Some("the provider's task failed"),
                ..job(Status::Succeeded, 1, "d", None)
            },
        ]);
        assert_eq!(
            (s.status, s.completed_at, s.error.as_deref()),
            (Status::Succeeded, None, Some("the provider's task failed"))
        );
    }

    #[test]
    fn the_worst_job_decides_and_every_id_is_kept() {
        let s = summarize([
            job(Status::Succeeded, 1, "a", None),
            job(Status::Failed, 3, "b", Some("timeout")),
            job(Status::Succeeded, 1, "a", None),
        ]);
        assert_eq!(s.status, Status::Failed);
        assert_eq!(s.attempts, 3);
        assert_eq!(s.request_id.as_deref(), Some("a,b"));
        assert_eq!(s.error.as_deref(), Some("timeout"));
    }

    #[test]
    fn a_succeeded_jobs_old_error_is_not_shown() {
        let s = summarize([
            job(Status::Succeeded, 2, "a", Some("old")),
            JobView::PENDING,
        ]);
        assert_eq!((s.status, s.error), (Status::Queued, None));
    }

    #[test]
    fn no_jobs_means_skipped_and_dead_outranks_everything() {
        assert_eq!(summarize([]).status, Status::Skipped);
        let order = [
            Status::Succeeded,
            Status::Sent,
            Status::Queued,
            Status::Failed,
            Status::Dead,
        ];
        for w in order.windows(2) {
            let s = summarize([job(w[0], 1, "x", None), job(w[1], 1, "y", None)]);
            assert_eq!(s.status, w[1]);
        }
    }
}
