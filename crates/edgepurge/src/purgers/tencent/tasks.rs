//! `DescribePurgeTasks` (apis.md §A.4, §J.6): how far a purge task has got.

use crate::purgers::{snippet, PurgeError, TaskState};
use serde_json::Value;

/// URLs named in a failure message, at most.
const FAILED_SHOWN: usize = 5;
/// Entries asked for per `DescribePurgeTasks` call (its maximum; the default is 20).
pub const PAGE: u64 = 1000;
/// Pages read per check at most (a task holds at most one batch of URLs).
pub const MAX_PAGES: usize = 5;

/// Whether `id` looks like a Tencent task id (`1796092808-auks79j3`): anything else is not
/// asked about, so an odd answer never goes into a request or a log line raw.
pub fn is_task_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One page of a `DescribePurgeTasks` answer: the entries of task `task_id` (others are not
/// ours, whatever the provider sent), how many entries the page held, and the total.
pub fn page_of<'a>(task_id: &str, response: &'a Value) -> (Vec<&'a Value>, usize, u64) {
    let logs = response
        .get("PurgeLogs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = response
        .get("TotalCount")
        .and_then(Value::as_u64)
        .unwrap_or(logs.len() as u64);
    let ours = logs
        .iter()
        .filter(|l| l.get("TaskId").and_then(Value::as_str) == Some(task_id))
        .collect();
    (ours, logs.len(), total)
}

/// The state of a task from its entries: done when every URL is `done` and every entry was
/// read (`whole`), failed when any is `fail` (naming them), running otherwise. Statuses are
/// compared without case (the API's own examples differ).
pub fn state_of(logs: &[&Value], whole: bool) -> TaskState {
    if logs.is_empty() {
        return TaskState::Unknown("DescribePurgeTasks lists no URL for it".to_owned());
    }
    let status = |l: &Value| {
        l.get("Status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let failed: Vec<&str> = logs
        .iter()
        .filter(|l| status(l) == "fail")
        .map(|l| l.get("Url").and_then(Value::as_str).unwrap_or("?"))
        .collect();
    if !failed.is_empty() {
        let mut shown: Vec<String> = failed
            .iter()
            .take(FAILED_SHOWN)
            .map(|u| snippet(u, 200))
            .collect();
        if failed.len() > FAILED_SHOWN {
            shown.push(format!("and {} more", failed.len() - FAILED_SHOWN));
        }
        return TaskState::Failed(format!(
            "{} of {} URLs failed: {}",
            failed.len(),
            logs.len(),
            shown.join(", ")
        ));
    }
    if whole && logs.iter().all(|l| status(l) == "done") {
        TaskState::Done
    } else {
        TaskState::Running
    }
}

/// A refusal to answer that asking again will not change (the key may not read tasks):
/// `grant` names the permission that would let it (`cdn:DescribePurgeTasks`).
pub fn unconfirmable(error: &PurgeError, grant: &str) -> Option<TaskState> {
    let PurgeError::Answer {
        code: Some(code),
        message,
    } = error
    else {
        return None;
    };
    let denied = (code.starts_with("UnauthorizedOperation")
        && !code.ends_with("OperationTooOften"))
        || (code.starts_with("AuthFailure") && code != "AuthFailure.SignatureExpire");
    denied.then(|| {
        TaskState::Unconfirmable(format!(
            "{message} (grant {grant} to the key to confirm purges)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(task: &str, statuses: &[&str], total: usize) -> Value {
        json!({"PurgeLogs": statuses.iter().enumerate().map(|(i, s)| json!({
            "TaskId": task, "Url": format!("https://c/{i}"), "Status": s,
            "PurgeType": "url", "CreateTime": "2026-12-01 10:00:00"
        })).collect::<Vec<_>>(), "TotalCount": total})
    }

    fn state(a: &Value, whole: bool) -> TaskState {
        state_of(&page_of("t", a).0, whole)
    }

    #[test]
    fn every_url_done_is_done_and_any_failure_names_the_urls() {
        assert_eq!(
            state(&answer("t", &["done", "Done"], 2), true),
            TaskState::Done
        );
        assert_eq!(
            state(&answer("t", &["done", "process"], 2), true),
            TaskState::Running
        );
        assert_eq!(
            state(&answer("t", &["done", "fail", "process"], 3), true),
            TaskState::Failed("1 of 3 URLs failed: https://c/1".into())
        );
        let TaskState::Failed(many) = state(&answer("t", &["fail"; 8], 8), true) else {
            panic!("failed");
        };
        assert!(
            many.starts_with("8 of 8 URLs failed") && many.ends_with("and 3 more"),
            "{many}"
        );
        assert!(matches!(
            state(&json!({"PurgeLogs": [], "TotalCount": 0}), true),
            TaskState::Unknown(_)
        ));
    }

    #[test]
    fn a_first_page_of_done_is_not_a_done_task_and_other_tasks_are_not_ours() {
        let first = answer("t", &["done"; 20], 1000);
        let (ours, n, total) = page_of("t", &first);
        assert_eq!((ours.len(), n, total), (20, 20, 1000));
        assert_eq!(state_of(&ours, false), TaskState::Running);
        let other = answer("x", &["done"; 3], 3);
        assert!(page_of("t", &other).0.is_empty());
        assert!(matches!(state(&other, true), TaskState::Unknown(_)));
    }

    #[test]
    fn task_ids_and_refusals() {
        assert!(is_task_id("1796092808-auks79j3"));
        assert!(!is_task_id("t\nx") && !is_task_id("") && !is_task_id(&"a".repeat(65)));
        let denied = PurgeError::Answer {
            code: Some("UnauthorizedOperation.CdnCamUnauthorized".into()),
            message: "no".into(),
        };
        assert!(
            matches!(unconfirmable(&denied, "cdn:DescribePurgeTasks"), Some(TaskState::Unconfirmable(m)) if m.contains("cdn:DescribePurgeTasks"))
        );
        let busy = PurgeError::Answer {
            code: Some("UnauthorizedOperation.OperationTooOften".into()),
            message: "slow down".into(),
        };
        assert_eq!(unconfirmable(&busy, "cdn:DescribePurgeTasks"), None);
    }
}
