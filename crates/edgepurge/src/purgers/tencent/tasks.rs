//! `DescribePurgeTasks` (apis.md §A.4, §J.6): how far a purge task has got.

use crate::purgers::{snippet, TaskState};
use serde_json::Value;

/// URLs named in a failure message, at most.
const FAILED_SHOWN: usize = 5;

/// The state of a task from the `Response` of `DescribePurgeTasks` with its `TaskId`: done
/// when every URL is `done`, failed when any is `fail` (naming them), running otherwise.
/// Statuses are compared without case (the API's own examples differ).
pub fn state_of(response: &Value) -> TaskState {
    let logs = response
        .get("PurgeLogs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
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
    if logs.iter().all(|l| status(l) == "done") {
        TaskState::Done
    } else {
        TaskState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_url_done_is_done_and_any_failure_names_the_urls() {
        let r = |statuses: &[&str]| {
            json!({"PurgeLogs": statuses.iter().enumerate().map(|(i, s)| json!({
                "TaskId": "t", "Url": format!("https://c/{i}"), "Status": s,
                "PurgeType": "url", "CreateTime": "2026-12-01 10:00:00"
            })).collect::<Vec<_>>(), "TotalCount": statuses.len()})
        };
        assert_eq!(state_of(&r(&["done", "Done"])), TaskState::Done);
        assert_eq!(state_of(&r(&["done", "process"])), TaskState::Running);
        assert_eq!(
            state_of(&r(&["done", "fail", "process"])),
            TaskState::Failed("1 of 3 URLs failed: https://c/1".into())
        );
        let TaskState::Failed(many) = state_of(&r(&["fail"; 8])) else {
            panic!("failed");
        };
        assert!(
            many.starts_with("8 of 8 URLs failed") && many.ends_with("and 3 more"),
            "{many}"
        );
        assert!(matches!(
            state_of(&json!({"PurgeLogs": [], "TotalCount": 0})),
            TaskState::Unknown(_)
        ));
    }
}
