//! Cloudflare R2 event notifications (apis.md §F.6): the body of a message R2 puts on a
//! Cloudflare Queue, `{"account", "action", "bucket", "object": {"key", "size", "eTag"},
//! "eventTime", "copySource"}`, alone or several in a JSON array (a consumer relaying a batch).
//! `size` and `eTag` are absent for deletes; `copySource` (only for `CopyObject`) names the
//! source, which a copy does not change, so it is not read.
//!
//! The key is the object name as stored, not escaped (Cloudflare's docs: "the key (or name) of
//! the object within the bucket"). R2 gives no event or request id.

use super::{join, Event, Fields, Format, ParseError};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

/// Whether `obj` is an R2 event notification.
pub(super) fn is_message(obj: &Map<String, Value>) -> bool {
    obj.contains_key("action") && obj.contains_key("object")
}

pub(super) fn parse(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let msg = Fields::new(obj, path);
    let action = msg.nonempty_string("action")?;
    let bucket = msg.nonempty_string("bucket")?;
    let object = msg.object("object")?;
    let raw_key = object.string("key")?;
    let key = decode_key(raw_key, KeyEncoding::Raw)
        .map_err(|e| ParseError::invalid(join(&object.path, "key"), e.to_string()))?;
    if obj.contains_key("eventTime") {
        msg.string("eventTime")?;
    }
    Ok(Event {
        format: Format::R2,
        bucket: bucket.to_owned(),
        key,
        raw_key: raw_key.to_owned(),
        name: s3_name(action),
        native_name: action.to_owned(),
        size: object.opt_u64("size")?,
        etag: object.opt_text("eTag"),
        version_id: None,
        sequencer: None,
        time: msg.opt_text("eventTime"),
        id: None,
    })
}

/// The S3-style name of an R2 action. A lifecycle deletion is named as S3 names its lifecycle
/// expirations (and as the EventBridge parser does): a removal, but not a rule's `delete`.
fn s3_name(action: &str) -> String {
    match action {
        "PutObject" => "ObjectCreated:Put",
        "CopyObject" => "ObjectCreated:Copy",
        "CompleteMultipartUpload" => "ObjectCreated:CompleteMultipartUpload",
        "DeleteObject" => "ObjectRemoved:Delete",
        "LifecycleDeletion" => "LifecycleExpiration:Delete",
        // Unknown actions are kept as data; no built-in group selects them.
        other => other,
    }
    .to_owned()
}
