//! Google Cloud Storage notifications delivered by a Pub/Sub push subscription (apis.md §F.7).
//!
//! The body is Pub/Sub's push envelope: `{"message": {"attributes", "data", "messageId",
//! "publishTime"}, "subscription"}` (Pub/Sub also writes `message_id` and `publish_time`; an
//! Eventarc `MessagePublishedData` has the same shape). The event is read from the attributes
//! Cloud Storage sets: `eventType`, `bucketId`, `objectId` (the object name as stored, not
//! escaped), `objectGeneration`, `eventTime`, `payloadFormat`. With `payloadFormat` `NONE`
//! there is no data; with `JSON_API_V1` the data is the object resource as base64 JSON, from
//! which size and etag are taken, and data that is not that refuses the body.
//!
//! An overwrite sends two notifications: `OBJECT_FINALIZE` of the new generation (with
//! `overwroteGeneration`) and `OBJECT_DELETE`, or `OBJECT_ARCHIVE` in a versioned bucket, of
//! the old one (with `overwrittenByGeneration`). The second is skipped with a notice, so one
//! overwrite purges once.
//!
//! With payload unwrapping on, a push subscription posts the bare data and moves the attributes
//! into HTTP headers, which a body parser never sees: such a body is refused, saying so.

use super::{join, names, Event, Fields, Format, ParseError, Parsed};
use crate::key::{decode_key, KeyEncoding};
use serde_json::{Map, Value};

/// The Cloud Storage attributes; a Pub/Sub message with none of them is from another topic.
const GCS_ATTRIBUTES: [&str; 3] = ["eventType", "bucketId", "objectId"];

/// Whether `obj` is a Pub/Sub push body.
pub(super) fn is_push(obj: &Map<String, Value>) -> bool {
    obj.contains_key("message") && obj.contains_key("subscription")
}

/// Whether `obj` is a bare Cloud Storage object resource: the body a push subscription with
/// payload unwrapping sends for a `JSON_API_V1` notification.
pub(super) fn is_unwrapped(obj: &Map<String, Value>) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("storage#object")
}

/// The error for an unwrapped push body (see [`is_unwrapped`]).
pub(super) fn unwrapped(path: &str) -> ParseError {
    ParseError::invalid(
        super::display_path(path),
        "a bare Cloud Storage object resource, as a Pub/Sub push subscription with payload \
         unwrapping sends it: the notification's attributes (eventType, bucketId, objectId) \
         then travel as HTTP headers, which are not read. Disable payload unwrapping \
         (\"no wrapper\") on the push subscription so that the message arrives in its JSON \
         envelope {\"message\": {\"attributes\": ...}, \"subscription\": ...}",
    )
}

/// One push body: its event, or a notice when it is the replaced generation of an overwrite.
pub(super) fn parse_push(
    obj: &Map<String, Value>,
    path: &str,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let env = Fields::new(obj, path);
    let subscription = env.string("subscription")?;
    let message = env.object("message")?;
    let attrs_path = join(&message.path, "attributes");
    let attrs = match message.obj.get("attributes") {
        Some(Value::Object(a)) => Fields::new(a, &attrs_path),
        None | Some(Value::Null) => {
            return Err(ParseError::invalid(
                attrs_path,
                format!(
                    "missing: a Pub/Sub message without attributes is not a Cloud Storage \
                     notification (is subscription {} on a bucket's notification topic?)",
                    crate::printable(subscription)
                ),
            ))
        }
        Some(_) => message.object("attributes")?,
    };
    if !GCS_ATTRIBUTES.iter().any(|a| attrs.obj.contains_key(*a)) {
        let mut keys: Vec<&str> = attrs.obj.keys().map(String::as_str).take(8).collect();
        keys.sort_unstable();
        return Err(ParseError::invalid(
            attrs_path,
            format!(
                "not a Cloud Storage notification: none of the attributes eventType, bucketId, \
                 objectId (found: {}); is subscription {} on a bucket's notification topic?",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    crate::printable(&keys.join(", ")).into_owned()
                },
                crate::printable(subscription)
            ),
        ));
    }
    let event_type = attrs.nonempty_string("eventType")?;
    let bucket = attrs.nonempty_string("bucketId")?;
    let raw_key = attrs.string("objectId")?;
    let key = decode_key(raw_key, KeyEncoding::Raw)
        .map_err(|e| ParseError::invalid(join(&attrs.path, "objectId"), e.to_string()))?;
    for optional in [
        "objectGeneration",
        "eventTime",
        "overwroteGeneration",
        "overwrittenByGeneration",
    ] {
        if attrs.obj.contains_key(optional) {
            attrs.string(optional)?;
        }
    }
    let generation = attrs.opt_text("objectGeneration");
    let data = match message.obj.get("data") {
        None | Some(Value::Null) => "",
        Some(_) => message.string("data")?,
    };
    let payload = match attrs.obj.get("payloadFormat") {
        None => None,
        Some(_) => match attrs.string("payloadFormat")? {
            "JSON_API_V1" if !data.is_empty() => Some(resource(data, &message.path)?),
            "JSON_API_V1" | "NONE" => None,
            other => {
                return Err(ParseError::invalid(
                    join(&attrs.path, "payloadFormat"),
                    format!(
                        "must be JSON_API_V1 or NONE, got {:?}",
                        crate::printable(other)
                    ),
                ))
            }
        },
    };
    let (size, etag) = match &payload {
        Some(res) => {
            let res = Fields::new(res, join(&message.path, "data"));
            (res.opt_u64("size")?, etag_of(&res))
        }
        None => (None, None),
    };

    if matches!(event_type, "OBJECT_DELETE" | "OBJECT_ARCHIVE") {
        if let Some(by) = attrs.opt_text("overwrittenByGeneration") {
            out.notices.push(format!(
                "GCS {} of gs://{}/{} generation {} ignored: it was overwritten by generation {}, \
                 whose OBJECT_FINALIZE purges",
                crate::printable(event_type),
                crate::printable(bucket),
                crate::printable(raw_key),
                crate::printable(generation.as_deref().unwrap_or("?")),
                crate::printable(&by)
            ));
            return Ok(());
        }
    }
    let id = message
        .opt_text("messageId")
        .or_else(|| message.opt_text("message_id"));
    let time = attrs
        .opt_text("eventTime")
        .or_else(|| message.opt_text("publishTime"))
        .or_else(|| message.opt_text("publish_time"));
    out.events.push(Event {
        format: Format::Gcs,
        bucket: bucket.to_owned(),
        key,
        raw_key: raw_key.to_owned(),
        name: s3_name(event_type),
        native_name: event_type.to_owned(),
        size,
        etag,
        version_id: generation,
        sequencer: None,
        time,
        id,
    });
    Ok(())
}

/// The S3-style name of a Cloud Storage event type.
///
/// `OBJECT_FINALIZE` is every new generation (upload, copy, compose, rewrite, restore: the
/// notification does not say which), named as the commonest, a plain upload, so that a rule's
/// `put` matches it. `OBJECT_ARCHIVE` is the live version becoming noncurrent in a versioned
/// bucket, as an S3 delete marker makes it. A metadata update changes no content.
fn s3_name(event_type: &str) -> String {
    match event_type {
        "OBJECT_FINALIZE" => "ObjectCreated:Put",
        "OBJECT_DELETE" => "ObjectRemoved:Delete",
        "OBJECT_ARCHIVE" => "ObjectRemoved:DeleteMarkerCreated",
        "OBJECT_METADATA_UPDATE" => names::METADATA_UPDATE,
        // Unknown kinds are kept as data; no built-in group selects them.
        other => other,
    }
    .to_owned()
}

/// The object resource that `data`, the message's (under `message_path`), holds with payload
/// `JSON_API_V1`.
fn resource(data: &str, message_path: &str) -> Result<Map<String, Value>, ParseError> {
    let path = join(message_path, "data");
    let bytes = base64_decode(data).map_err(|e| {
        ParseError::invalid(
            &path,
            format!(
                "is not base64 ({e}); with payloadFormat JSON_API_V1 it is the object resource \
                 as base64 JSON"
            ),
        )
    })?;
    match super::strict::from_slice(&bytes) {
        Ok(Value::Object(res)) => Ok(res),
        Ok(other) => Err(ParseError::invalid(
            path,
            format!(
                "decodes to a JSON {}, not the object resource payloadFormat JSON_API_V1 sends",
                super::json_type(&other)
            ),
        )),
        Err(e) => Err(ParseError::invalid(
            path,
            format!(
                "decodes to no JSON ({e}); with payloadFormat JSON_API_V1 it is the object \
                 resource as base64 JSON"
            ),
        )),
    }
}

/// The object's ETag as its public URL serves it: the MD5 in hex for an object that has one
/// (`md5Hash` is its base64); otherwise (a composite object) the JSON API `etag`.
fn etag_of(res: &Fields<'_>) -> Option<String> {
    let md5 = res
        .obj
        .get("md5Hash")
        .and_then(Value::as_str)
        .and_then(|b64| base64_decode(b64).ok())
        .filter(|d| d.len() == 16);
    match md5 {
        Some(digest) => Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
        None => res.opt_text("etag"),
    }
}

/// Decodes base64: the standard alphabet or the URL-safe one, padding optional, as proto3's
/// JSON mapping of `bytes` allows. Whitespace is refused.
pub(super) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{general_purpose, DecodePaddingMode, Engine, GeneralPurpose};
    let lenient = |alphabet| {
        GeneralPurpose::new(
            alphabet,
            general_purpose::GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent),
        )
    };
    let engine = if text.contains(['-', '_']) {
        lenient(&base64::alphabet::URL_SAFE)
    } else {
        lenient(&base64::alphabet::STANDARD)
    };
    engine.decode(text).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, byte) => format!(
            "{:?} at offset {at} is not a base64 character",
            crate::printable(&char::from(byte).to_string())
        ),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_both_alphabets_with_or_without_padding() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(
            base64_decode("-_-_").unwrap(),
            base64_decode("+/+/").unwrap()
        );
        assert!(base64_decode("a").is_err());
        assert!(base64_decode("aGk==").is_err());
        assert!(base64_decode("aG k").unwrap_err().contains("offset 2"));
        assert!(base64_decode("{\"x\":1}").is_err());
    }
}
