//! The status of a purge log record from its jobs.

use super::Status;

/// One job of a record, as the record sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobView<'a> {
    pub status: Status,
    pub attempts: u32,
    pub request_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl JobView<'_> {
    /// A job not yet in any batch.
    pub const PENDING: JobView<'static> = JobView {
        status: Status::Queued,
        attempts: 0,
        request_id: None,
        task_id: None,
        error: None,
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
}

/// A record shows the worst status of its jobs, the most attempts, every provider id, and the
/// error of the first job that has not succeeded. A record without jobs is skipped.
pub fn summarize<'a>(jobs: impl IntoIterator<Item = JobView<'a>>) -> RecordSummary {
    let mut status: Option<Status> = None;
    let mut attempts = 0;
    let mut request_ids: Vec<&str> = Vec::new();
    let mut task_ids: Vec<&str> = Vec::new();
    let mut error: Option<&str> = None;
    for job in jobs {
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
        error: error.map(str::to_owned),
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
        }
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
