//! Tencent Cloud COS trigger records (apis.md §F.1).
//!
//! The key arrives as `/<appid>/<bucket-name>/<object key>`; the bucket as rules name it is
//! `<bucket-name>-<appid>`. Escapes in the key are decoded once (`%XX`), `+` stays a plus.

use super::{names, Event, Fields, Format, ParseError};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

pub(super) fn parse_record(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let rec = Fields::new(obj, path);
    let cos = rec.object("cos")?;
    let event = rec.object("event")?;
    let native_name = event.nonempty_string("eventName")?;
    let bucket_f = cos.object("cosBucket")?;
    let name = bucket_f.nonempty_string("name")?;
    let appid = bucket_f
        .opt_text("appid")
        .ok_or_else(|| ParseError::invalid(format!("{}.appid", bucket_f.path), "missing"))?;
    let object = cos.object("cosObject")?;
    let full_key = object.string("key")?;
    let key_path = format!("{}.key", object.path);

    let expected = format!("/{appid}/{name}/");
    let raw_key = full_key.strip_prefix(&expected).ok_or_else(|| {
        ParseError::invalid(
            &key_path,
            format!("expected the form \"{expected}<object key>\", got {full_key:?}"),
        )
    })?;
    let key = decode_key(raw_key, KeyEncoding::Percent)
        .map_err(|e| ParseError::invalid(&key_path, e.to_string()))?;
    let suffix = format!("-{appid}");
    let bucket = if name.ends_with(&suffix) {
        name.to_owned()
    } else {
        format!("{name}{suffix}")
    };
    let request_id = object
        .opt_object("meta")
        .and_then(|m| m.opt_text("x-cos-request-id"))
        .or_else(|| event.opt_text("reqid"));
    Ok(Event {
        format: Format::Cos,
        bucket,
        key,
        raw_key: raw_key.to_owned(),
        name: names::normalize(native_name),
        native_name: native_name.to_owned(),
        size: object.opt_u64("size")?,
        etag: None,
        version_id: object.opt_text("vid"),
        sequencer: None,
        time: event.opt_text("eventTime"),
        id: request_id,
    })
}
