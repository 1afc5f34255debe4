//! `DescribePurgeTasks` (apis.md §A.8, §J.6): how far a purge job has got. A job
//! (`CreatePurgeTask`'s `JobId`) lists one task per target; each is `processing`, `success`,
//! `failed`, `timeout` or `canceled`.

use crate::purgers::{snippet, TaskState};
use serde_json::{json, Value};

/// Targets named in a failure message, at most.
const FAILED_SHOWN: usize = 5;
/// Tasks asked for per call (the API's maximum; its default is 20).
pub const PAGE: u64 = 1000;
/// Pages read per check at most (a job holds at most one batch: 5,000 targets).
pub const MAX_PAGES: usize = 5;

/// Whether `id` looks like an EdgeOne job id (`20ga521cpwch`): anything else is not asked
/// about, so an odd answer never goes into a request or a log line raw.
pub fn is_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The body asking for one page of job `job_id`'s tasks in `zone_id`.
pub fn request(zone_id: &str, job_id: &str, offset: u64) -> Value {
    json!({
        "ZoneId": zone_id,
        "Offset": offset,
        "Limit": PAGE,
        "Filters": [{"Name": "job-id", "Values": [job_id]}],
    })
}

/// One page of an answer: the tasks of job `job_id` (others are not ours, whatever the
/// provider sent), how many tasks the page held, and the total.
pub fn page_of<'a>(job_id: &str, response: &'a Value) -> (Vec<&'a Value>, usize, u64) {
    let tasks = response
        .get("Tasks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = response
        .get("TotalCount")
        .and_then(Value::as_u64)
        .unwrap_or(tasks.len() as u64);
    let ours = tasks
        .iter()
        .filter(|t| t.get("JobId").and_then(Value::as_str) == Some(job_id))
        .collect();
    (ours, tasks.len(), total)
}

fn status(t: &Value) -> String {
    t.get("Status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// How a failed task is shown: its target, and why (`FailType: FailMessage`) when given.
fn failure(t: &Value) -> String {
    let target = snippet(t.get("Target").and_then(Value::as_str).unwrap_or("?"), 200);
    let status = status(t);
    let kind = t.get("FailType").and_then(Value::as_str).unwrap_or("");
    let msg = t.get("FailMessage").and_then(Value::as_str).unwrap_or("");
    let why = match (kind.is_empty(), msg.is_empty()) {
        (true, true) => status,
        (false, true) => kind.to_owned(),
        (true, false) => msg.to_owned(),
        (false, false) => format!("{kind}: {msg}"),
    };
    format!("{target} ({})", snippet(&why, 200))
}

/// The state of a job from its tasks: done when every task is `success` and every task was
/// read (`whole`), failed when any is `failed`, `timeout` or `canceled` (naming them),
/// running otherwise. Statuses are compared without case.
pub fn state_of(tasks: &[&Value], whole: bool) -> TaskState {
    if tasks.is_empty() {
        return TaskState::Unknown("DescribePurgeTasks lists no task for it".to_owned());
    }
    let failed: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| matches!(status(t).as_str(), "failed" | "timeout" | "canceled"))
        .collect();
    if !failed.is_empty() {
        let mut shown: Vec<String> = failed
            .iter()
            .take(FAILED_SHOWN)
            .map(|t| failure(t))
            .collect();
        if failed.len() > FAILED_SHOWN {
            shown.push(format!("and {} more", failed.len() - FAILED_SHOWN));
        }
        return TaskState::Failed(format!(
            "{} of {} targets failed: {}",
            failed.len(),
            tasks.len(),
            shown.join(", ")
        ));
    }
    if whole && tasks.iter().all(|t| status(t) == "success") {
        TaskState::Done
    } else {
        TaskState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(job: &str, statuses: &[&str], total: usize) -> Value {
        json!({"Tasks": statuses.iter().enumerate().map(|(i, s)| json!({
            "JobId": job, "Target": format!("https://c/{i}"), "Type": "purge_url",
            "Method": "delete", "Status": s, "CreateTime": "2026-12-01T02:28:43Z",
            "UpdateTime": "2026-12-01T02:28:52Z"
        })).collect::<Vec<_>>(), "TotalCount": total})
    }

    fn state(a: &Value, whole: bool) -> TaskState {
        state_of(&page_of("j", a).0, whole)
    }

    #[test]
    fn every_task_success_is_done_and_any_failure_names_the_targets() {
        assert_eq!(
            state(&answer("j", &["success", "Success"], 2), true),
            TaskState::Done
        );
        assert_eq!(
            state(&answer("j", &["success", "processing"], 2), true),
            TaskState::Running
        );
        for bad in ["failed", "timeout", "canceled"] {
            assert_eq!(
                state(&answer("j", &["success", bad, "processing"], 3), true),
                TaskState::Failed(format!("1 of 3 targets failed: https://c/1 ({bad})")),
            );
        }
        let mut a = answer("j", &["failed"], 1);
        a["Tasks"][0]["FailType"] = json!("originPullFailed");
        a["Tasks"][0]["FailMessage"] = json!("origin answered 502");
        assert_eq!(
            state(&a, true),
            TaskState::Failed(
                "1 of 1 targets failed: https://c/0 (originPullFailed: origin answered 502)".into()
            )
        );
        let TaskState::Failed(many) = state(&answer("j", &["failed"; 8], 8), true) else {
            panic!("failed");
        };
        assert!(
            many.starts_with("8 of 8 targets failed") && many.ends_with("and 3 more"),
            "{many}"
        );
        assert!(matches!(
            state(&json!({"Tasks": [], "TotalCount": 0}), true),
            TaskState::Unknown(_)
        ));
    }

    #[test]
    fn a_first_page_of_success_is_not_a_done_job_and_other_jobs_are_not_ours() {
        let first = answer("j", &["success"; 20], 1000);
        let (ours, n, total) = page_of("j", &first);
        assert_eq!((ours.len(), n, total), (20, 20, 1000));
        assert_eq!(state_of(&ours, false), TaskState::Running);
        let other = answer("x", &["success"; 3], 3);
        assert!(page_of("j", &other).0.is_empty());
        assert!(matches!(state(&other, true), TaskState::Unknown(_)));
    }

    #[test]
    fn the_request_filters_by_job_id_in_the_zone() {
        assert_eq!(
            request("zone-1", "20ga521cpwch", 1000),
            json!({"ZoneId": "zone-1", "Offset": 1000, "Limit": 1000,
                   "Filters": [{"Name": "job-id", "Values": ["20ga521cpwch"]}]})
        );
        assert!(is_job_id("20ga521cpwch"));
        assert!(!is_job_id("j\nx") && !is_job_id("") && !is_job_id(&"a".repeat(65)));
    }
}
