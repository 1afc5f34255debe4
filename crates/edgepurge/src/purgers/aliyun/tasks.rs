//! `DescribeRefreshTaskById` (apis.md §J.6): how far refresh tasks have got, and
//! `DescribeRefreshQuota`: what is left of the day's quota.

use crate::purgers::{snippet, KindQuota, PurgeError, TaskState};
use edgepurge_core::TargetKind;
use serde_json::Value;

/// Task ids one `DescribeRefreshTaskById` call takes at most.
pub const IDS_PER_CALL: usize = 10;
/// Paths named in a failure message, at most.
const FAILED_SHOWN: usize = 5;

/// The ids in a `RefreshTaskId` (comma-separated when the refresh made several tasks), or
/// `None` when any is not an Alibaba task id (digits), so an odd answer never goes into a
/// request raw.
pub fn task_ids(task_id: &str) -> Option<Vec<&str>> {
    let ids: Vec<&str> = task_id.split(',').map(str::trim).collect();
    let ok = !ids.is_empty()
        && ids.len() <= 100
        && ids
            .iter()
            .all(|id| !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(ids)
}

/// The entries of an answer that belong to `ids` (others are not ours, whatever was sent).
pub fn entries_of<'a>(ids: &[&str], response: &'a Value) -> Vec<&'a Value> {
    response
        .get("Tasks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            let id = match t.get("TaskId") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return false,
            };
            ids.contains(&id.as_str())
        })
        .collect()
}

/// The state of tasks `ids` from their entries: failed when any entry is `Failed` (naming its
/// paths and Alibaba's reason), done when every id has entries and all are `Complete`,
/// unknown when none is listed, running otherwise (`Refreshing`, `Pending`, an id not
/// visible yet).
pub fn state_of(ids: &[&str], entries: &[&Value]) -> TaskState {
    if entries.is_empty() {
        return TaskState::Unknown("DescribeRefreshTaskById lists nothing for it".to_owned());
    }
    fn field<'v>(e: &'v Value, name: &str) -> &'v str {
        e.get(name).and_then(Value::as_str).unwrap_or("")
    }
    let failed: Vec<String> = entries
        .iter()
        .filter(|e| field(e, "Status").eq_ignore_ascii_case("failed"))
        .map(|e| {
            let why = field(e, "Description");
            let path = snippet(field(e, "ObjectPath"), 200);
            if why.is_empty() {
                path
            } else {
                format!("{path} ({})", snippet(why, 100))
            }
        })
        .collect();
    if !failed.is_empty() {
        let mut shown: Vec<String> = failed.iter().take(FAILED_SHOWN).cloned().collect();
        if failed.len() > FAILED_SHOWN {
            shown.push(format!("and {} more", failed.len() - FAILED_SHOWN));
        }
        return TaskState::Failed(format!(
            "{} of {} paths failed: {}",
            failed.len(),
            entries.len(),
            shown.join(", ")
        ));
    }
    let every_id_seen = ids.iter().all(|id| {
        entries.iter().any(|e| match e.get("TaskId") {
            Some(Value::String(s)) => s == id,
            Some(Value::Number(n)) => n.to_string() == *id,
            _ => false,
        })
    });
    if every_id_seen
        && entries
            .iter()
            .all(|e| field(e, "Status").eq_ignore_ascii_case("complete"))
    {
        TaskState::Done
    } else {
        TaskState::Running
    }
}

/// A refusal to answer that asking again will not change (the key may not read tasks).
pub fn unconfirmable(error: &PurgeError) -> Option<TaskState> {
    let PurgeError::Answer {
        code: Some(code),
        message,
    } = error
    else {
        return None;
    };
    let denied = code.starts_with("Forbidden")
        || code.starts_with("Forbbiden")
        || code == "ActionUnauthorized"
        || code.starts_with("NoPermission");
    denied.then(|| {
        TaskState::Unconfirmable(format!(
            "{message} (grant cdn:DescribeRefreshTaskById to the key to confirm purges)"
        ))
    })
}

/// A count in a `DescribeRefreshQuota` answer (strings in Alibaba's examples; numbers taken
/// too).
fn count(response: &Value, field: &str) -> Option<u64> {
    match response.get(field)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The URL and directory quotas of a `DescribeRefreshQuota` answer. The answer has no
/// per-request maximum (`batch` 0: the configured one stays).
/// The prefetch (`PushObjectCache`) quota of a `DescribeRefreshQuota` answer:
/// `PreloadQuota` URLs a day, `PreloadRemain` left.
pub fn preload_quota_of(response: &Value) -> Option<KindQuota> {
    let total = count(response, "PreloadQuota")?;
    let available = count(response, "PreloadRemain")?;
    Some(KindQuota {
        batch: 0,
        total,
        available: available.min(total),
    })
}

pub fn quota_of(response: &Value) -> Vec<(TargetKind, KindQuota)> {
    let mut out = Vec::new();
    for (kind, total, remain) in [
        (TargetKind::Url, "UrlQuota", "UrlRemain"),
        (TargetKind::Dir, "DirQuota", "DirRemain"),
    ] {
        if let (Some(total), Some(available)) = (count(response, total), count(response, remain)) {
            out.push((
                kind,
                KindQuota {
                    batch: 0,
                    total,
                    available: available.min(total),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(entries: &[(&str, &str, &str)]) -> Value {
        json!({"RequestId": "r", "TotalCount": entries.len(), "Tasks": entries.iter().map(
            |(id, path, status)| json!({"TaskId": id, "ObjectPath": path, "Status": status,
                "ObjectType": "file", "Process": "100%", "Description": "",
                "CreationTime": "2026-12-01T10:00:00Z"})).collect::<Vec<_>>()})
    }

    fn state(ids: &[&str], a: &Value) -> TaskState {
        state_of(ids, &entries_of(ids, a))
    }

    #[test]
    fn every_path_complete_is_done_and_a_failure_names_its_paths() {
        let ids = ["17772470184"];
        let done = answer(&[
            ("17772470184", "https://c/a", "Complete"),
            ("17772470184", "https://c/b", "Complete"),
        ]);
        assert_eq!(state(&ids, &done), TaskState::Done);
        let running = answer(&[
            ("17772470184", "https://c/a", "Complete"),
            ("17772470184", "https://c/b", "Refreshing"),
        ]);
        assert_eq!(state(&ids, &running), TaskState::Running);
        let pending = answer(&[("17772470184", "https://c/a", "Pending")]);
        assert_eq!(state(&ids, &pending), TaskState::Running);
        let mut failed = answer(&[
            ("17772470184", "https://c/a", "Complete"),
            ("17772470184", "https://c/b", "Failed"),
        ]);
        failed["Tasks"][1]["Description"] = json!("Origin Timeout");
        assert_eq!(
            state(&ids, &failed),
            TaskState::Failed("1 of 2 paths failed: https://c/b (Origin Timeout)".into())
        );
    }

    #[test]
    fn several_ids_are_done_only_when_each_is_listed_and_others_are_not_ours() {
        let ids = ["1", "2"];
        let half = answer(&[("1", "https://c/a", "Complete")]);
        assert_eq!(state(&ids, &half), TaskState::Running);
        let both = answer(&[
            ("1", "https://c/a", "Complete"),
            ("2", "https://d/a", "Complete"),
        ]);
        assert_eq!(state(&ids, &both), TaskState::Done);
        let other = answer(&[("9", "https://c/a", "Failed")]);
        assert!(matches!(state(&ids, &other), TaskState::Unknown(_)));
        let numeric = json!({"Tasks": [{"TaskId": 1, "Status": "Complete"},
                                       {"TaskId": 2, "Status": "Complete"}]});
        assert_eq!(state(&ids, &numeric), TaskState::Done);
    }

    #[test]
    fn task_ids_are_digits_separated_by_commas() {
        assert_eq!(task_ids("17772470184"), Some(vec!["17772470184"]));
        assert_eq!(task_ids("1,22, 333"), Some(vec!["1", "22", "333"]));
        assert_eq!(task_ids("1,,2"), None);
        assert_eq!(task_ids("t\nx"), None);
        assert_eq!(task_ids(""), None);
    }

    #[test]
    fn a_key_that_may_not_read_tasks_is_unconfirmable() {
        let denied = PurgeError::Answer {
            code: Some("Forbidden.RAM".into()),
            message: "no".into(),
        };
        assert!(
            matches!(unconfirmable(&denied), Some(TaskState::Unconfirmable(m)) if m.contains("cdn:DescribeRefreshTaskById"))
        );
        let busy = PurgeError::Answer {
            code: Some("Throttling.User".into()),
            message: "slow down".into(),
        };
        assert_eq!(unconfirmable(&busy), None);
    }

    #[test]
    fn quota_is_read_from_strings_or_numbers() {
        assert_eq!(
            preload_quota_of(&json!({"PreloadQuota": "1000", "PreloadRemain": "998"})),
            Some(KindQuota {
                batch: 0,
                total: 1000,
                available: 998
            })
        );
        assert_eq!(preload_quota_of(&json!({"UrlQuota": "10000"})), None);
        let q = quota_of(&json!({"UrlQuota": "10000", "UrlRemain": "9990",
                                  "DirQuota": 100, "DirRemain": 7, "RequestId": "r"}));
        assert_eq!(
            q,
            vec![
                (
                    TargetKind::Url,
                    KindQuota {
                        batch: 0,
                        total: 10_000,
                        available: 9_990
                    }
                ),
                (
                    TargetKind::Dir,
                    KindQuota {
                        batch: 0,
                        total: 100,
                        available: 7
                    }
                ),
            ]
        );
        assert!(quota_of(&json!({"UrlQuota": "lots"})).is_empty());
    }
}
