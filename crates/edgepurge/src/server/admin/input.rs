//! Reading what an admin caller sent: a JSON body (bounded, `application/json`, unknown keys
//! refused) and query parameters (unknown or repeated ones refused), each refusal a 400 that
//! names the field or parameter at fault: `{"error": "...", "field": "..."}`.

use super::super::answer::error;
use super::super::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

/// The largest admin request body: a rule is a few hundred bytes; a purge of
/// [`super::purge::MAX_TARGETS`] long URLs fits.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the caller sent, refused: answered as `{"error": "...", "field": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// The body field or query parameter at fault.
    pub field: Option<String>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self.field {
            Some(field) => (
                self.status,
                Json(json!({ "error": self.message, "field": field })),
            )
                .into_response(),
            None => error(self.status, self.message),
        }
    }
}

/// 400 naming `field`.
pub fn invalid(field: &str, message: impl Into<String>) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        field: Some(field.to_owned()),
    }
}

/// A JSON body decoded into `T`; an empty body reads as `{}` when `T` allows it.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Refusal> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let read = tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, MAX_BODY));
        let bytes = match read.await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                // `to_bytes` fails on the limit or on a broken connection.
                let text = e.to_string();
                let inner = e.into_inner();
                return Err(if inner.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body: {text}"),
                    )
                });
            }
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within server.body_timeout_s ({} s); nothing \
                         was changed",
                        state.body_timeout.as_secs()
                    ),
                ))
            }
        };
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        if !blank {
            let json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the body as JSON with `Content-Type: application/json`",
                ));
            }
        }
        let text: &[u8] = if blank { b"{}" } else { &bytes };
        // Every admin body is an object (serde would also read a struct from an array).
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object ({...})",
            ));
        }
        decode(text).map(JsonBody)
    }
}

fn too_large() -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {MAX_BODY} bytes; nothing was changed"),
    )
}

/// Decodes `bytes` as `T`, naming the field of the first problem.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {message}"),
            );
        }
        let path = e.path().to_string();
        // The path reaches an unknown key itself, but only the object missing a key.
        let field = match named_field(&message) {
            Some(f) if path == "." => f.to_owned(),
            Some(f) if path != f && !path.ends_with(&format!(".{f}")) => format!("{path}.{f}"),
            _ => path,
        };
        if named_field(&message).is_some() {
            invalid(&field, message)
        } else {
            invalid(&field, format!("{field}: {message}"))
        }
    })?;
    de.end().map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not one JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// The key a serde message is about: "unknown field `colour`, expected ..." → `colour`,
/// likewise for missing and duplicate fields.
fn named_field(message: &str) -> Option<&str> {
    ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
}

/// The query string as `(name, value)` pairs, each name one of `allowed` and given once.
pub fn query<'a>(
    raw: Option<&str>,
    allowed: &[&'a str],
) -> Result<Vec<(&'a str, String)>, Refusal> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("bad query string: {e}")))?;
    let mut out: Vec<(&'a str, String)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let Some(known) = allowed.iter().find(|a| **a == name) else {
            return Err(invalid(
                &edgepurge_core::printable(&name),
                format!(
                    "unknown query parameter {:?}; this route takes {}",
                    edgepurge_core::printable(&name),
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        };
        if out.iter().any(|(n, _)| n == known) {
            return Err(invalid(
                known,
                format!("query parameter {known} is given more than once"),
            ));
        }
        out.push((known, value));
    }
    Ok(out)
}

/// `limit`: 1 to `max`, `default` when absent.
pub fn limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, Refusal> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            "limit",
            format!(
                "limit={:?} must be a whole number from 1 to {max}",
                edgepurge_core::printable(text)
            ),
        )),
    }
}

/// `since`: an RFC 3339 time (`2026-12-01T02:00:00Z`) or an age (`10m`, `2h`, `1day`),
/// as epoch milliseconds.
pub fn since(value: Option<&str>, now_ms: i64) -> Result<Option<i64>, Refusal> {
    let Some(text) = value else {
        return Ok(None);
    };
    if let Some(ms) = crate::clock::parse_rfc3339_ms(text) {
        return Ok(Some(ms));
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(Some(
            now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )),
        Err(_) => Err(invalid(
            "since",
            format!(
                "since={:?} is neither an RFC 3339 time (2026-12-01T02:00:00Z) nor an age \
                 (30s, 10m, 2h, 1day)",
                edgepurge_core::printable(text)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: Option<Vec<String>>,
    }

    async fn body_of(r: Refusal) -> serde_json::Value {
        let r = r.into_response();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn json_problems_name_their_field() {
        for (text, field) in [
            (r#"{"name": "a", "colour": 1}"#, "colour"),
            (r#"{"tags": []}"#, "name"),
            (r#"{"name": 5}"#, "name"),
            (r#"{"name": "a", "tags": ["x", 7]}"#, "tags[1]"),
            (r#"{"name": "a", "name": "b"}"#, "name"),
        ] {
            let r = decode::<Body>(text.as_bytes()).unwrap_err();
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            let v = body_of(r).await;
            assert_eq!(v["field"], field, "{text}: {v}");
            assert!(v["error"]
                .as_str()
                .unwrap()
                .contains(field.split('[').next().unwrap()));
        }
        let r = decode::<Body>(b"{\"name\": ").unwrap_err();
        let v = body_of(r).await;
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("the body is not JSON"),
            "{v}"
        );
        assert!(v.get("field").is_none());
        assert!(decode::<Body>(br#"{"name": "a"} {}"#).is_err());
        assert_eq!(decode::<Body>(br#"{"name": "a"}"#).unwrap().name, "a");
    }

    #[tokio::test]
    async fn query_parameters_are_known_once_and_bounded() {
        let q = query(Some("rule=a&limit=5"), &["rule", "limit"]).unwrap();
        assert_eq!(q, vec![("rule", "a".to_owned()), ("limit", "5".to_owned())]);
        let v = body_of(query(Some("rul=a"), &["rule"]).unwrap_err()).await;
        assert_eq!(v["field"], "rul");
        let v = body_of(query(Some("rule=a&rule=b"), &["rule"]).unwrap_err()).await;
        assert_eq!(v["field"], "rule");
        assert_eq!(limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(limit(Some("1000"), 100, 1000).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten"] {
            let v = body_of(limit(Some(bad), 100, 1000).unwrap_err()).await;
            assert_eq!(v["field"], "limit", "{bad}");
        }
        assert_eq!(since(Some("10s"), 60_000).unwrap(), Some(50_000));
        assert_eq!(since(Some("1970-01-01T00:00:01Z"), 0).unwrap(), Some(1_000));
        let v = body_of(since(Some("yesterday"), 0).unwrap_err()).await;
        assert_eq!(v["field"], "since");
    }
}
