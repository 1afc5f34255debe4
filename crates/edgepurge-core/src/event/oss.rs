//! Alibaba Cloud OSS events (apis.md §F.8), in the two shapes a function receives them:
//!
//! * Function Compute's OSS trigger: `{"events": [record, ...]}`;
//! * EventBridge (and FC's EventBridge-based OSS trigger): one CloudEvent, `specversion`,
//!   `source` `acs.oss`, `type` `oss:ObjectCreated:PutObject`, ..., whose `data` is one record.
//!
//! A record: `eventName` (`ObjectCreated:PutObject`: no `oss:` prefix, operation names that
//! [`names::normalize`] spells as S3 does), `eventSource` `acs:oss`, `eventTime`,
//! `oss.bucket.name`, `oss.object.key|size|eTag`, `responseElements.requestId`.
//!
//! The key is the object name as stored, not escaped: Alibaba's own Function Compute samples
//! hand `oss.object.key` straight to GetObject, and an EventBridge event's `subject`
//! (`acs:oss:<region>:<uid>:<bucket>/<key>`) carries the same name unescaped. (No Alibaba
//! document we found states the encoding outright.)

use super::{join, names, Event, Fields, Format, ParseError, Parsed};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

/// Whether `obj` is a CloudEvent (an EventBridge delivery).
pub(super) fn is_cloudevent(obj: &Map<String, Value>) -> bool {
    obj.contains_key("specversion") && obj.contains_key("data")
}

/// `{"events": [...]}`, Function Compute's OSS trigger: one event per record.
pub(super) fn parse_events(
    obj: &Map<String, Value>,
    path: &str,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let epath = join(path, "events");
    let Some(Value::Array(records)) = obj.get("events") else {
        return Err(ParseError::invalid(epath, "must be an array of OSS events"));
    };
    for (i, record) in records.iter().enumerate() {
        let rpath = format!("{epath}[{i}]");
        let Value::Object(rec) = record else {
            return Err(ParseError::invalid(
                rpath,
                "OSS event must be a JSON object",
            ));
        };
        out.events.push(parse_record(rec, &rpath, None)?);
    }
    Ok(())
}

/// An EventBridge CloudEvent from OSS: its `data` is one record, its `type` the event name
/// with the `oss:` prefix (kept as the native name, as EventBridge rules match it).
pub(super) fn parse_cloudevent(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let env = Fields::new(obj, path);
    env.string("specversion")?;
    let source = env.string("source")?;
    if source != "acs.oss" {
        return Err(ParseError::invalid(
            join(path, "source"),
            format!(
                "CloudEvent from {:?} is not an OSS event (expected \"acs.oss\")",
                crate::printable(source)
            ),
        ));
    }
    let kind = env.nonempty_string("type")?;
    let data = env.object("data")?;
    let mut event = parse_record(data.obj, &data.path, Some(kind))?;
    if event.id.is_none() {
        event.id = env.opt_text("id");
    }
    if event.time.is_none() {
        event.time = env.opt_text("time");
    }
    Ok(event)
}

/// One OSS record; `kind` is the event name when an envelope gives it (the record's own
/// `eventName` is then not needed).
fn parse_record(
    obj: &Map<String, Value>,
    path: &str,
    kind: Option<&str>,
) -> Result<Event, ParseError> {
    let rec = Fields::new(obj, path);
    if let Some(source) = rec.obj.get("eventSource") {
        if source.as_str() != Some("acs:oss") {
            let shown = match source {
                Value::String(s) => format!("{:?}", crate::printable(s)),
                other => format!("a {}", super::json_type(other)),
            };
            return Err(ParseError::invalid(
                join(path, "eventSource"),
                format!("{shown} is not OSS (expected \"acs:oss\")"),
            ));
        }
    }
    let native_name = match kind {
        Some(k) => k,
        None => rec.nonempty_string("eventName")?,
    };
    let oss = rec.object("oss")?;
    let bucket = oss.object("bucket")?.nonempty_string("name")?;
    let object = oss.object("object")?;
    let raw_key = object.string("key")?;
    let key = decode_key(raw_key, KeyEncoding::Raw)
        .map_err(|e| ParseError::invalid(join(&object.path, "key"), e.to_string()))?;
    Ok(Event {
        format: Format::Oss,
        bucket: bucket.to_owned(),
        key,
        raw_key: raw_key.to_owned(),
        name: names::normalize(native_name),
        native_name: native_name.to_owned(),
        size: object.opt_u64("size")?,
        etag: object.opt_text("eTag"),
        version_id: None,
        sequencer: None,
        time: rec.opt_text("eventTime"),
        id: rec
            .opt_object("responseElements")
            .and_then(|r| r.opt_text("requestId")),
    })
}
