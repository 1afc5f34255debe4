//! The Compute API's answers: its error shape and how to treat it, and the `Operation` an
//! invalidation returns (Google's REST error model: `{"error": {"code", "message",
//! "errors": [{"reason", "message", "domain"}], "status"}}`; `Operation.status` `PENDING`,
//! `RUNNING`, `DONE`, with `error.errors[]` when it failed).

use crate::purgers::{snippet, TaskState, Verdict};
use serde_json::Value;

/// An error answer of a Google API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Option<u64>,
    pub message: String,
    /// `errors[0].reason` (`rateLimitExceeded`, `forbidden`, `notFound`, …).
    pub reason: Option<String>,
    /// The canonical status (`PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`, …).
    pub status: Option<String>,
}

impl ApiError {
    /// The code the log shows: the reason, else the status.
    pub fn code_text(&self) -> Option<String> {
        self.reason.clone().or_else(|| self.status.clone())
    }
}

/// The error of an answer body, if it is Google's error shape.
pub fn api_error(text: &str) -> Option<ApiError> {
    let doc: Value = serde_json::from_str(text).ok()?;
    let e = doc.get("error")?.as_object()?;
    let first = e
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    Some(ApiError {
        code: e.get("code").and_then(Value::as_u64),
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        reason: first
            .and_then(|f| f.get("reason"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        status: e.get("status").and_then(Value::as_str).map(str::to_owned),
    })
}

/// What an error answer to `invalidateCache` means for the batch.
pub fn classify(http_status: u16, e: &ApiError) -> Verdict {
    let retry = Verdict::RetryLater { after: None };
    match e.reason.as_deref() {
        Some("rateLimitExceeded" | "userRateLimitExceeded" | "RATE_LIMIT_EXCEEDED") => {
            return retry
        }
        Some("quotaExceeded" | "dailyLimitExceeded") => return Verdict::QuotaExhausted,
        Some(
            "forbidden"
            | "insufficientPermissions"
            | "accessNotConfigured"
            | "notFound"
            | "invalid"
            | "badRequest"
            | "required"
            | "invalidParameter"
            | "resourceNotReady",
        ) => {
            // resourceNotReady: the URL map is being changed; retried.
            return if e.reason.as_deref() == Some("resourceNotReady") {
                retry
            } else {
                Verdict::Fatal
            };
        }
        _ => {}
    }
    match (http_status, e.status.as_deref()) {
        (429, _) | (_, Some("RESOURCE_EXHAUSTED")) => retry,
        (500..=599, _) => retry,
        (400 | 403 | 404, _) => Verdict::Fatal,
        // Codes we do not know: retried (up to max_attempts) rather than dropped.
        _ => retry,
    }
}

/// Whether the error is about the target itself (a path or tag Google refuses), so that no
/// later attempt or event can purge it.
pub fn is_target_refusal(code: &str) -> bool {
    matches!(code, "invalid" | "badRequest" | "invalidParameter")
}

/// What the operator can do about an error, appended to its text.
pub fn hint(e: &ApiError, project: &str, url_map: &str) -> Option<String> {
    Some(match (e.reason.as_deref(), e.code) {
        (Some("forbidden" | "insufficientPermissions"), _) | (_, Some(403))
            if !matches!(
                e.reason.as_deref(),
                Some(
                    "rateLimitExceeded"
                        | "userRateLimitExceeded"
                        | "quotaExceeded"
                        | "accessNotConfigured"
                )
            ) =>
        {
            format!(
                "grant the service account a role with compute.urlMaps.invalidateCache (and \
                 compute.globalOperations.get to confirm completion) on project {project}"
            )
        }
        (Some("accessNotConfigured"), _) => {
            format!("enable the Compute Engine API in project {project}")
        }
        (Some("notFound"), _) | (_, Some(404)) => format!(
            "no URL map {url_map:?} in project {project:?}: check url_map and project \
             (gcloud compute url-maps list --project {project})"
        ),
        (Some("rateLimitExceeded" | "userRateLimitExceeded"), _) => {
            "Cloud CDN takes up to 500 invalidations a minute; retried".to_owned()
        }
        _ => return None,
    })
}

/// The state of an `Operation`, or `None` when `op` is not one.
pub fn operation_state(op: &Value) -> Option<TaskState> {
    let status = op.get("status")?.as_str()?;
    Some(match status {
        "DONE" => match operation_error(op) {
            Some(what) => TaskState::Failed(what),
            None => TaskState::Done,
        },
        _ => TaskState::Running,
    })
}

/// The errors a finished operation reports, if any.
fn operation_error(op: &Value) -> Option<String> {
    let errors = op
        .get("error")
        .and_then(|e| e.get("errors"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())?;
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "{}: {}",
                e.get("code").and_then(Value::as_str).unwrap_or("ERROR"),
                snippet(e.get("message").and_then(Value::as_str).unwrap_or(""), 300)
            )
        })
        .collect();
    Some(shown.join("; "))
}

/// The name of an `Operation` answer (its task id), if it has a usable one.
pub fn operation_name(op: &Value) -> Option<String> {
    op.get("name")
        .and_then(Value::as_str)
        .filter(|n| is_operation_name(n))
        .map(str::to_owned)
}

/// Whether `name` looks like a Compute operation name (`operation-1700000000000-…`):
/// anything else is never put into a request path or a log line raw.
pub fn is_operation_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(code: u64, reason: &str, status: &str) -> ApiError {
        api_error(
            &json!({"error": {"code": code, "message": "m",
                    "errors": [{"message": "m", "domain": "global", "reason": reason}],
                    "status": status}})
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn errors_classify_per_their_reason() {
        let retry = Verdict::RetryLater { after: None };
        for (http, reason, status, want) in [
            (403, "rateLimitExceeded", "PERMISSION_DENIED", retry.clone()),
            (
                429,
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
                retry.clone(),
            ),
            (403, "userRateLimitExceeded", "", retry.clone()),
            (403, "quotaExceeded", "", Verdict::QuotaExhausted),
            (403, "forbidden", "PERMISSION_DENIED", Verdict::Fatal),
            (
                403,
                "accessNotConfigured",
                "PERMISSION_DENIED",
                Verdict::Fatal,
            ),
            (404, "notFound", "NOT_FOUND", Verdict::Fatal),
            (400, "invalid", "INVALID_ARGUMENT", Verdict::Fatal),
            (400, "resourceNotReady", "", retry.clone()),
            (500, "backendError", "INTERNAL", retry.clone()),
            (503, "", "UNAVAILABLE", retry.clone()),
            (409, "somethingNew", "", retry.clone()),
        ] {
            assert_eq!(
                classify(http, &err(http as u64, reason, status)),
                want,
                "{reason}"
            );
        }
        assert!(is_target_refusal("invalid") && !is_target_refusal("forbidden"));
    }

    #[test]
    fn hints_name_the_permission_and_the_url_map() {
        let h = hint(
            &err(403, "forbidden", "PERMISSION_DENIED"),
            "p-123456",
            "web",
        )
        .unwrap();
        assert!(
            h.contains("compute.urlMaps.invalidateCache") && h.contains("p-123456"),
            "{h}"
        );
        let h = hint(&err(404, "notFound", "NOT_FOUND"), "p-123456", "web").unwrap();
        assert!(h.contains("no URL map \"web\""), "{h}");
        let h = hint(&err(403, "rateLimitExceeded", ""), "p", "w").unwrap();
        assert!(h.contains("500 invalidations a minute"), "{h}");
        assert_eq!(hint(&err(500, "backendError", ""), "p", "w"), None);
        assert_eq!(api_error("<html>"), None);
        assert_eq!(api_error("{\"name\": \"x\"}"), None);
    }

    #[test]
    fn operations_are_done_failed_or_running() {
        let done = json!({"kind": "compute#operation", "name": "operation-1-a", "status": "DONE"});
        assert_eq!(operation_state(&done), Some(TaskState::Done));
        for s in ["PENDING", "RUNNING"] {
            assert_eq!(
                operation_state(&json!({"status": s})),
                Some(TaskState::Running)
            );
        }
        let failed = json!({"status": "DONE", "error": {"errors": [
            {"code": "INVALID_USAGE", "message": "The path is not valid."}]}});
        assert_eq!(
            operation_state(&failed),
            Some(TaskState::Failed(
                "INVALID_USAGE: The path is not valid.".into()
            ))
        );
        assert_eq!(operation_state(&json!({"error": {}})), None);
        assert_eq!(operation_name(&done).as_deref(), Some("operation-1-a"));
        assert_eq!(operation_name(&json!({"name": "a/../b"})), None);
    }
}
