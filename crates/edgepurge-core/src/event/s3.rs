//! S3-shaped records: Amazon S3, MinIO, Ceph RGW and other S3-compatible stores.
//!
//! Key encodings differ by sender (apis.md §F.2, §F.4, §F.5): Amazon S3 and MinIO form-encode
//! the key (`+` is a space, `%2B` a plus; MinIO also escapes `/` as `%2F`); Ceph sends the raw
//! key.

use super::{names, Event, Fields, Format, ParseError};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

pub(super) fn parse_record(obj: &Map<String, Value>, path: &str) -> Result<Event, ParseError> {
    let rec = Fields::new(obj, path);
    let source = rec.opt_text("eventSource").unwrap_or_default();
    let (format, encoding) = match source.as_str() {
        "aws:s3" => (Format::AwsS3, KeyEncoding::Form),
        "minio:s3" => (Format::Minio, KeyEncoding::Form),
        "ceph:s3" => (Format::Ceph, KeyEncoding::Raw),
        // Unknown S3-compatible senders follow the Amazon S3 convention they imitate.
        _ => (Format::S3Compatible, KeyEncoding::Form),
    };
    let native_name = rec.nonempty_string("eventName")?;
    let s3 = rec.object("s3")?;
    let bucket = s3.object("bucket")?.nonempty_string("name")?;
    let object = s3.object("object")?;
    let raw_key = object.string("key")?;
    let key = decode_key(raw_key, encoding)
        .map_err(|e| ParseError::invalid(format!("{}.key", object.path), e.to_string()))?;
    let id = rec.opt_text("eventId").or_else(|| {
        rec.opt_object("responseElements")
            .and_then(|r| r.opt_text("x-amz-request-id"))
    });
    Ok(Event {
        format,
        bucket: bucket.to_owned(),
        key,
        raw_key: raw_key.to_owned(),
        name: names::normalize(native_name),
        native_name: native_name.to_owned(),
        size: object.opt_u64("size")?,
        etag: object.opt_text("eTag"),
        version_id: object.opt_text("versionId"),
        sequencer: object.opt_text("sequencer"),
        time: rec.opt_text("eventTime"),
        id,
    })
}
