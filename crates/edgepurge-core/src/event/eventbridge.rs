//! Amazon S3 events delivered through EventBridge (apis.md §F.3).
//!
//! The event kind is spread over `detail-type`, `detail.reason` and `detail.deletion-type`;
//! it is mapped to the S3 notification name so rules treat both deliveries alike. The key is
//! decoded as `%XX` escapes with `+` kept literal (a plain key passes through unchanged).

use super::{Event, Fields, Format, ParseError};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

pub(super) fn parse(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let env = Fields::new(obj, path);
    let source = env.string("source")?;
    if source != "aws.s3" {
        return Err(ParseError::invalid(
            super::join(path, "source"),
            format!("EventBridge event from {source:?} is not an S3 event (expected \"aws.s3\")"),
        ));
    }
    let detail_type = env.nonempty_string("detail-type")?;
    let detail = env.object("detail")?;
    let bucket = detail.object("bucket")?.nonempty_string("name")?;
    let object = detail.object("object")?;
    let raw_key = object.string("key")?;
    let key = decode_key(raw_key, KeyEncoding::Percent)
        .map_err(|e| ParseError::invalid(format!("{}.key", object.path), e.to_string()))?;
    let reason = detail.opt_text("reason").unwrap_or_default();
    let deletion = detail.opt_text("deletion-type").unwrap_or_default();
    Ok(Event {
        format: Format::EventBridge,
        bucket: bucket.to_owned(),
        key,
        raw_key: raw_key.to_owned(),
        name: s3_name(detail_type, &reason, &deletion),
        native_name: detail_type.to_owned(),
        size: object.opt_u64("size")?,
        etag: object.opt_text("etag"),
        version_id: object.opt_text("version-id"),
        sequencer: object.opt_text("sequencer"),
        time: env.opt_text("time"),
        id: env.opt_text("id"),
    })
}

fn s3_name(detail_type: &str, reason: &str, deletion: &str) -> String {
    let delete_marker = deletion == "Delete Marker Created";
    let name = match (detail_type, reason) {
        ("Object Created", "PutObject") => "ObjectCreated:Put",
        ("Object Created", "POST Object") => "ObjectCreated:Post",
        ("Object Created", "CopyObject") => "ObjectCreated:Copy",
        ("Object Created", "CompleteMultipartUpload") => "ObjectCreated:CompleteMultipartUpload",
        ("Object Created", _) => "ObjectCreated",
        ("Object Deleted", "Lifecycle Expiration") if delete_marker => {
            "LifecycleExpiration:DeleteMarkerCreated"
        }
        ("Object Deleted", "Lifecycle Expiration") => "LifecycleExpiration:Delete",
        ("Object Deleted", _) if delete_marker => "ObjectRemoved:DeleteMarkerCreated",
        ("Object Deleted", _) => "ObjectRemoved:Delete",
        ("Object Restore Initiated", _) => "ObjectRestore:Post",
        ("Object Restore Completed", _) => "ObjectRestore:Completed",
        ("Object Restore Expired", _) => "ObjectRestore:Delete",
        ("Object Storage Class Changed", _) => "LifecycleTransition",
        ("Object Access Tier Changed", _) => "IntelligentTiering",
        ("Object ACL Updated", _) => "ObjectAcl:Put",
        ("Object Tags Added", _) => "ObjectTagging:Put",
        ("Object Tags Deleted", _) => "ObjectTagging:Delete",
        // Unknown kinds are kept as data; no built-in group selects them.
        (other, _) => return other.to_owned(),
    };
    name.to_owned()
}
