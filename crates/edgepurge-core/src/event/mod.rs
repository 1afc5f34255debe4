//! Bucket notifications: the normalized [`Event`] and a parser per wire format.
//!
//! [`parse_body`] detects the format of a body (which may hold many records, or wrap them in
//! an SNS or Pub/Sub envelope) and returns every event in it, or one precise error. A body is
//! accepted or refused whole: one bad record refuses the body and the error names that record.

mod cos;
mod eventbridge;
mod fast;
mod gcs;
pub mod names;
mod oss;
mod r2;
mod s3;
mod sns;
mod strict;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The wire format an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Amazon S3 event notification (`eventSource` `aws:s3`), direct, via SQS or SNS.
    AwsS3,
    /// MinIO webhook (`eventSource` `minio:s3`).
    Minio,
    /// Ceph RADOS Gateway bucket notification (`eventSource` `ceph:s3`).
    Ceph,
    /// Another S3-compatible store sending S3-shaped records.
    S3Compatible,
    /// Tencent Cloud COS trigger (COS → SCF).
    Cos,
    /// Amazon S3 event delivered through EventBridge.
    EventBridge,
    /// Google Cloud Storage notification delivered by a Pub/Sub push subscription.
    Gcs,
    /// Alibaba Cloud OSS event (Function Compute trigger, or an EventBridge CloudEvent).
    Oss,
    /// Cloudflare R2 event notification (a Cloudflare Queue message body).
    R2,
    /// A change edgepurge's bucket poller found by comparing two listings.
    Poll,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::AwsS3 => "aws-s3",
            Format::Minio => "minio",
            Format::Ceph => "ceph",
            Format::S3Compatible => "s3-compatible",
            Format::Cos => "cos",
            Format::EventBridge => "eventbridge",
            Format::Gcs => "gcs",
            Format::Oss => "oss",
            Format::R2 => "r2",
            Format::Poll => "poll",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to one object, whatever format it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub format: Format,
    /// Bucket name as rules name it (for COS the `name-appid` form).
    pub bucket: String,
    /// The object key, decoded exactly once.
    pub key: String,
    /// The key exactly as the notification carried it.
    pub raw_key: String,
    /// S3-style event name without vendor prefix, e.g. `ObjectCreated:Put`,
    /// `ObjectRemoved:DeleteMarkerCreated` (COS `ObjectRemove` is spelled `ObjectRemoved`, OSS
    /// `ObjectCreated:PutObject` is `ObjectCreated:Put`; Cloud Storage event types and R2
    /// actions are mapped by their parsers).
    pub name: String,
    /// The event name exactly as sent (`cos:ObjectCreated:Put`, `Object Created`,
    /// `OBJECT_FINALIZE`, `PutObject`, ...).
    pub native_name: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
    /// Event time as sent (ISO-8601 / RFC 3339, or Unix seconds for COS).
    pub time: Option<String>,
    /// The sender's id for this event or request, when it has one (Pub/Sub's message id for
    /// Cloud Storage, the request id for OSS; R2 has none).
    pub id: Option<String>,
}

/// What a body held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<Event>,
    /// Control messages that carry no object change and were deliberately skipped
    /// (S3 test events, SNS subscription confirmations, the replaced generation of a Cloud
    /// Storage overwrite).
    pub notices: Vec<String>,
}

/// Why a body was refused. The message says what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is empty; expected a JSON bucket notification")]
    Empty,
    #[error(
        "unrecognized notification format ({found}); expected S3/MinIO/Ceph `Records` with `s3`, \
         COS `Records` with `cos` (or `Ckafka` relaying them), a COS workflow `ObjectInfo`, an \
         EventBridge event with `source: aws.s3`, an SNS envelope, a Pub/Sub push body \
         (`message` and `subscription`) carrying a Cloud Storage notification, OSS `events` \
         (or an EventBridge CloudEvent with `source: acs.oss`), or an R2 event notification \
         (`action` and `object`, alone or in an array)"
    )]
    Unrecognized { found: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl ParseError {
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// How deep envelopes may nest (SNS inside an array inside SNS ...).
const MAX_DEPTH: usize = 4;

/// Parses one request or message body, detecting its format.
pub fn parse_body(body: &[u8]) -> Result<Parsed, ParseError> {
    if let Some(parsed) = fast::parse(body) {
        return Ok(parsed);
    }
    parse_tree(body)
}

/// The events of `body` handed to `f` one at a time as they are read, never all held at once,
/// when the body is plainly a list of S3-shaped records (the commonest large body): the number
/// of events, the same events [`parse_body`] would return, in order. `None` for any other body
/// or any error (use [`parse_body`]), and when `f` returned false to stop; `f` may have been
/// called for some events before that.
pub fn each_event(body: &[u8], f: &mut dyn FnMut(Event) -> bool) -> Option<usize> {
    fast::each(body, f)
}

/// [`parse_body`] without the fast path: a JSON tree, walked with precise errors.
pub fn parse_tree(body: &[u8]) -> Result<Parsed, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let value: Value = strict::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let mut parsed = Parsed::default();
    parse_value(&value, "", 0, &mut parsed)?;
    Ok(parsed)
}

pub(crate) fn parse_value(
    value: &Value,
    path: &str,
    depth: usize,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError::invalid(
            display_path(path),
            "envelopes nested too deeply",
        ));
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                parse_value(item, &format!("{path}[{i}]"), depth + 1, out)?;
            }
            Ok(())
        }
        Value::Object(obj) => {
            if let Some(records) = obj.get("Records") {
                return parse_records(records, &join(path, "Records"), depth, out);
            }
            if obj.contains_key("ObjectInfo") {
                out.events.push(cos::parse_workflow(obj, path)?);
                return Ok(());
            }
            if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
                out.notices.push("s3:TestEvent ignored".to_owned());
                return Ok(());
            }
            if sns::is_envelope(obj) {
                return sns::parse(obj, path, depth, out);
            }
            if obj.contains_key("detail-type") && obj.contains_key("detail") {
                out.events.push(eventbridge::parse(obj, path)?);
                return Ok(());
            }
            // The formats below are tried only after every older one, so no body those
            // accepted changes meaning; their keys appear in none of the shapes above.
            if gcs::is_push(obj) {
                return gcs::parse_push(obj, path, out);
            }
            if gcs::is_unwrapped(obj) {
                return Err(gcs::unwrapped(path));
            }
            if obj.contains_key("events") {
                return oss::parse_events(obj, path, out);
            }
            if oss::is_cloudevent(obj) {
                out.events.push(oss::parse_cloudevent(obj, path)?);
                return Ok(());
            }
            if r2::is_message(obj) {
                out.events.push(r2::parse(obj, path)?);
                return Ok(());
            }
            Err(ParseError::Unrecognized {
                found: describe_keys(obj),
            })
        }
        other => Err(ParseError::Unrecognized {
            found: format!("a JSON {}", json_type(other)),
        }),
    }
}

fn parse_records(
    records: &Value,
    path: &str,
    depth: usize,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let Value::Array(items) = records else {
        return Err(ParseError::invalid(path, "must be an array of records"));
    };
    for (i, record) in items.iter().enumerate() {
        let rpath = format!("{path}[{i}]");
        let Value::Object(obj) = record else {
            return Err(ParseError::invalid(rpath, "record must be a JSON object"));
        };
        if obj.contains_key("cos") {
            out.events.push(cos::parse_record(obj, &rpath)?);
        } else if obj.contains_key("s3") {
            out.events.push(s3::parse_record(obj, &rpath)?);
        } else if obj.contains_key("Ckafka") {
            // A COS body relayed through CKafka, as JSON text.
            let text = cos::ckafka_body(obj, &rpath)?;
            let inner_path = format!("{rpath}.Ckafka.msgBody");
            let inner: Value = strict::from_slice(text.as_bytes()).map_err(|e| {
                ParseError::invalid(&inner_path, format!("is not a JSON body: {e}"))
            })?;
            parse_value(&inner, &inner_path, depth + 1, out)?;
        } else {
            return Err(ParseError::invalid(
                rpath,
                format!(
                    "record has none of `s3`, `cos` or `Ckafka` ({})",
                    describe_keys(obj)
                ),
            ));
        }
    }
    Ok(())
}

fn describe_keys(obj: &serde_json::Map<String, Value>) -> String {
    if obj.is_empty() {
        return "an empty JSON object".to_owned();
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    let more = if obj.len() > 8 { ", ..." } else { "" };
    format!(
        "top-level fields: {}{more}",
        crate::printable(&keys.join(", "))
    )
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    }
}

/// Field access with errors that name the full path of what is missing.
pub(crate) struct Fields<'a> {
    pub obj: &'a serde_json::Map<String, Value>,
    pub path: String,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a serde_json::Map<String, Value>, path: impl Into<String>) -> Self {
        Fields {
            obj,
            path: path.into(),
        }
    }

    pub fn object(&self, field: &str) -> Result<Fields<'a>, ParseError> {
        let path = join(&self.path, field);
        match self.obj.get(field) {
            Some(Value::Object(o)) => Ok(Fields { obj: o, path }),
            Some(other) => Err(ParseError::invalid(
                path,
                format!("must be an object, found a {}", json_type(other)),
            )),
            None => Err(ParseError::invalid(path, "missing")),
        }
    }

    pub fn string(&self, field: &str) -> Result<&'a str, ParseError> {
        let path = join(&self.path, field);
        match self.obj.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(ParseError::invalid(
                path,
                format!("must be a string, found a {}", json_type(other)),
            )),
            None => Err(ParseError::invalid(path, "missing")),
        }
    }

    pub fn nonempty_string(&self, field: &str) -> Result<&'a str, ParseError> {
        let s = self.string(field)?;
        if s.is_empty() {
            return Err(ParseError::invalid(join(&self.path, field), "is empty"));
        }
        Ok(s)
    }

    /// A string or number, rendered as text; absent or null gives `None`.
    pub fn opt_text(&self, field: &str) -> Option<String> {
        match self.obj.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn opt_u64(&self, field: &str) -> Result<Option<u64>, ParseError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                ParseError::invalid(join(&self.path, field), "must be a non-negative integer")
            }),
            // Some senders quote sizes.
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
                ParseError::invalid(join(&self.path, field), "must be a non-negative integer")
            }),
            Some(other) => Err(ParseError::invalid(
                join(&self.path, field),
                format!("must be a number, found a {}", json_type(other)),
            )),
        }
    }

    pub fn opt_object(&self, field: &str) -> Option<Fields<'a>> {
        match self.obj.get(field) {
            Some(Value::Object(o)) => Some(Fields {
                obj: o,
                path: join(&self.path, field),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
