//! Tencent Cloud COS events (apis.md §F.1), in every shape Tencent's own CDN refresh function
//! reads: COS trigger records, COS bodies relayed through CKafka (`Records[].Ckafka.msgBody`,
//! the COS body as a JSON string), and COS workflow bodies (`ObjectInfo`).
//!
//! The key comes from the path of `cosObject.url`, percent-decoded once: a URL escapes
//! exactly once, so `50%25off.png` there is the object `50%off.png`. Only without a URL is it
//! taken from `cosObject.key` (`/<appid>/<bucket-name>/<object key>`, decoded once too). The
//! bucket as rules name it is `<bucket-name>-<appid>`. `+` stays a plus.

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
    let suffix = format!("-{appid}");
    let bucket = if name.ends_with(&suffix) {
        name.to_owned()
    } else {
        format!("{name}{suffix}")
    };
    let object = cos.object("cosObject")?;
    let url = object
        .obj
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    let (raw_key, key_path) = match url {
        Some(url) => (
            key_from_url(url, &bucket).ok_or_else(|| {
                ParseError::invalid(
                    format!("{}.url", object.path),
                    format!("expected http(s)://<host>/<object key>, got {url:?}"),
                )
            })?,
            format!("{}.url", object.path),
        ),
        None => {
            let full_key = object.string("key")?;
            let key_path = format!("{}.key", object.path);
            let expected = format!("/{appid}/{name}/");
            let raw = full_key.strip_prefix(&expected).ok_or_else(|| {
                ParseError::invalid(
                    &key_path,
                    format!("expected the form \"{expected}<object key>\", got {full_key:?}"),
                )
            })?;
            (raw, key_path)
        }
    };
    let key = decode_key(raw_key, KeyEncoding::Percent)
        .map_err(|e| ParseError::invalid(&key_path, e.to_string()))?;
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

/// The object key, still escaped, from an object URL: the path without its leading `/`
/// (and without `/<bucket>/` for a path-style URL). The path is taken as written, never
/// normalized: `a/../b` stays itself (and is then refused by the rules, not turned into `b`).
fn key_from_url<'a>(url: &'a str, bucket: &str) -> Option<&'a str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let (host, path) = rest.split_at(slash);
    if host.is_empty() {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let virtual_hosted = host.starts_with(&format!("{bucket}."));
    let key = match path.strip_prefix(&format!("/{bucket}/")) {
        Some(k) if !virtual_hosted => k,
        _ => &path[1..],
    };
    (!key.is_empty()).then_some(key)
}

/// `Records[].Ckafka`: a COS body relayed through CKafka, as the JSON text `msgBody`.
pub(super) fn ckafka_body<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
) -> Result<&'a str, ParseError> {
    let rec = Fields::new(obj, path);
    rec.object("Ckafka")?.string("msgBody")
}

/// A COS workflow body: `ObjectInfo` with `BucketId` (`<bucket-name>-<appid>`), `Region` and
/// `Object` (the key as it is, one leading `/` dropped). A workflow runs on new objects, so
/// the event is `ObjectCreated:Workflow`.
pub(super) fn parse_workflow(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let body = Fields::new(obj, path);
    let info = body.object("ObjectInfo")?;
    let bucket = info.nonempty_string("BucketId")?;
    let raw = info.nonempty_string("Object")?;
    let key = raw.strip_prefix('/').unwrap_or(raw);
    if key.is_empty() {
        return Err(ParseError::invalid(
            format!("{}.Object", info.path),
            "names no object",
        ));
    }
    Ok(Event {
        format: Format::Cos,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        raw_key: raw.to_owned(),
        name: "ObjectCreated:Workflow".to_owned(),
        native_name: "cos:Workflow".to_owned(),
        size: None,
        etag: None,
        version_id: None,
        sequencer: None,
        time: None,
        id: body
            .opt_text("WorkflowId")
            .or_else(|| info.opt_text("RequestId")),
    })
}
