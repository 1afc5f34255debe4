//! Google Cloud Storage via Pub/Sub push, Alibaba Cloud OSS (Function Compute and
//! EventBridge) and Cloudflare R2.

use super::*;
use crate::rule::{Mode, RuleSpec};

/// The one key the fixtures share in spirit: a space, a `+`, a literal `%25` and non-ASCII.
/// All three formats send the name as stored, so it must come out exactly as it went in.
const HARD: &str = "猫 cat+1 50%25";

fn err(body: &Value) -> String {
    parse_body(body.to_string().as_bytes())
        .unwrap_err()
        .to_string()
}

/// Standard base64 with padding, as Pub/Sub writes `message.data`.
fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(ABC[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A push body for a Cloud Storage notification with `attributes` and, if given, `data`.
fn push(attributes: Value, data: Option<Value>) -> Value {
    let mut message = json!({
        "attributes": attributes,
        "messageId": "136969346945",
        "publishTime": "2024-04-05T19:34:39.012Z"
    });
    if let Some(d) = data {
        message["data"] = d;
    }
    json!({"message": message, "subscription": "projects/p/subscriptions/s"})
}

fn gcs_attrs(event_type: &str, key: &str) -> Value {
    json!({
        "eventType": event_type,
        "bucketId": "my-bucket",
        "objectId": key,
        "objectGeneration": "1712345678901234",
        "eventTime": "2024-04-05T19:34:38.901Z",
        "payloadFormat": "NONE"
    })
}

fn gcs_fixture() -> Value {
    serde_json::from_slice(&fixture("gcs-pubsub-push.json")).unwrap()
}

#[test]
fn gcs_push_reads_the_attributes_and_the_object_resource() {
    let e = one(&fixture("gcs-pubsub-push.json"));
    assert_eq!(e.format, Format::Gcs);
    assert_eq!(e.format.as_str(), "gcs");
    assert_eq!(e.bucket, "my-bucket");
    assert_eq!(e.key, format!("photos/{HARD}.jpg"));
    assert_eq!(e.raw_key, e.key);
    assert_eq!(e.name, "ObjectCreated:Put");
    assert_eq!(e.native_name, "OBJECT_FINALIZE");
    assert_eq!(e.size, Some(1029));
    // md5Hash (base64) in hex, as the object's public URL serves its ETag.
    assert_eq!(e.etag.as_deref(), Some("5d41402abc4b2a76b9719d911017c592"));
    assert_eq!(e.version_id.as_deref(), Some("1712345678901234"));
    assert_eq!(e.id.as_deref(), Some("10563212345678901"));
    assert_eq!(e.time.as_deref(), Some("2024-04-05T19:34:38.901Z"));
    assert!(fast::parse(&fixture("gcs-pubsub-push.json")).is_none());
}

#[test]
fn gcs_event_types_map_to_s3_names() {
    for (event_type, name) in [
        ("OBJECT_FINALIZE", "ObjectCreated:Put"),
        ("OBJECT_DELETE", "ObjectRemoved:Delete"),
        ("OBJECT_ARCHIVE", "ObjectRemoved:DeleteMarkerCreated"),
        ("OBJECT_METADATA_UPDATE", "ObjectCreated:MetadataUpdate"),
        ("OBJECT_SOMETHING_NEW", "OBJECT_SOMETHING_NEW"),
    ] {
        let e = one(push(gcs_attrs(event_type, "a.png"), None)
            .to_string()
            .as_bytes());
        assert_eq!(e.name, name, "{event_type}");
        assert_eq!(e.native_name, event_type);
        assert_eq!(e.size, None);
        assert_eq!(e.id.as_deref(), Some("136969346945"));
    }
    // A metadata update is selectable, but not a purge of `created`.
    assert!(!names::is_creation("ObjectCreated:MetadataUpdate"));
    assert!(names::is_removal("ObjectRemoved:DeleteMarkerCreated"));
}

#[test]
fn an_overwrite_purges_once_the_replaced_generation_is_a_notice() {
    let finalize = gcs_fixture();
    let mut replaced = gcs_attrs("OBJECT_DELETE", &format!("photos/{HARD}.jpg"));
    replaced["objectGeneration"] = json!("1712345600000000");
    replaced["overwrittenByGeneration"] = json!("1712345678901234");
    let mut archived = replaced.clone();
    archived["eventType"] = json!("OBJECT_ARCHIVE");
    let body = json!([finalize, push(replaced, None), push(archived, None)]);
    let parsed = parse_body(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.events.len(), 1, "{parsed:?}");
    assert_eq!(parsed.events[0].name, "ObjectCreated:Put");
    assert_eq!(parsed.notices.len(), 2, "{parsed:?}");
    assert!(
        parsed.notices[0].starts_with(&format!(
            "GCS OBJECT_DELETE of gs://my-bucket/photos/{HARD}.jpg generation 1712345600000000 \
             ignored: it was overwritten by generation 1712345678901234"
        )),
        "{}",
        parsed.notices[0]
    );
    assert!(parsed.notices[1].contains("OBJECT_ARCHIVE"));
    // A plain delete (no overwrite) purges.
    let e = one(push(gcs_attrs("OBJECT_DELETE", "old.css"), None)
        .to_string()
        .as_bytes());
    assert_eq!(e.name, "ObjectRemoved:Delete");
}

#[test]
fn a_skipped_generation_is_still_checked_whole() {
    let mut attrs = gcs_attrs("OBJECT_DELETE", "a.png");
    attrs["overwrittenByGeneration"] = json!("2");
    attrs["payloadFormat"] = json!("JSON_API_V1");
    let msg = err(&push(attrs, Some(json!("%%%"))));
    assert!(msg.starts_with("message.data: is not base64"), "{msg}");
}

#[test]
fn gcs_ids_and_times_fall_back_to_the_older_push_fields() {
    let mut attrs = gcs_attrs("OBJECT_FINALIZE", "a.png");
    attrs.as_object_mut().unwrap().remove("eventTime");
    let body = json!({
        "message": {
            "attributes": attrs,
            "message_id": "42",
            "publish_time": "2021-02-26T19:13:55.749Z"
        },
        "subscription": "projects/p/subscriptions/s"
    });
    let e = one(body.to_string().as_bytes());
    assert_eq!(e.id.as_deref(), Some("42"));
    assert_eq!(e.time.as_deref(), Some("2021-02-26T19:13:55.749Z"));
}

#[test]
fn gcs_data_is_read_only_for_json_api_v1_and_must_then_be_base64_json() {
    // NONE: whatever the data, it is not read.
    let e = one(push(
        gcs_attrs("OBJECT_FINALIZE", "a.png"),
        Some(json!("not base64!")),
    )
    .to_string()
    .as_bytes());
    assert_eq!(e.size, None);
    let mut v1 = gcs_attrs("OBJECT_FINALIZE", "a.png");
    v1["payloadFormat"] = json!("JSON_API_V1");
    // JSON_API_V1 without data: the attributes are enough.
    assert_eq!(
        one(push(v1.clone(), None).to_string().as_bytes()).key,
        "a.png"
    );
    // A composite object has no md5Hash: its JSON API etag is kept.
    let res = json!({"kind": "storage#object", "name": "a.png", "size": 7, "etag": "CAE="});
    let e = one(
        push(v1.clone(), Some(json!(b64(res.to_string().as_bytes()))))
            .to_string()
            .as_bytes(),
    );
    assert_eq!((e.size, e.etag.as_deref()), (Some(7), Some("CAE=")));
    for (data, want) in [
        (json!("eyJub3QgYmFzZTY0Ij!!"), "message.data: is not base64"),
        (json!("eyJhI"), "message.data: is not base64"),
        // Non-zero bits after the last byte: not canonical base64.
        (json!("eyJ"), "message.data: is not base64"),
        (json!("eyI"), "message.data: decodes to no JSON"),
        (json!(b64(b"{not json")), "message.data: decodes to no JSON"),
        (
            json!(b64(b"[1,2]")),
            "message.data: decodes to a JSON array",
        ),
        (
            json!(b64(br#"{"size":"big"}"#)),
            "message.data.size: must be a non-negative integer",
        ),
        (json!(42), "message.data: must be a string, found a number"),
    ] {
        let msg = err(&push(v1.clone(), Some(data.clone())));
        assert!(msg.starts_with(want), "{data}: {msg}");
    }
}

#[test]
fn gcs_bad_attributes_name_the_attribute() {
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut a = gcs_attrs("OBJECT_FINALIZE", "a.png");
                a.as_object_mut().unwrap().remove("bucketId");
                a
            },
            "message.attributes.bucketId: missing",
        ),
        (
            {
                let mut a = gcs_attrs("OBJECT_FINALIZE", "a.png");
                a["bucketId"] = json!("");
                a
            },
            "message.attributes.bucketId: is empty",
        ),
        (
            {
                let mut a = gcs_attrs("OBJECT_FINALIZE", "a.png");
                a["objectId"] = json!(5);
                a
            },
            "message.attributes.objectId: must be a string, found a number",
        ),
        (
            {
                let mut a = gcs_attrs("OBJECT_FINALIZE", "a.png");
                a["payloadFormat"] = json!("XML");
                a
            },
            "message.attributes.payloadFormat: must be JSON_API_V1 or NONE",
        ),
        (
            {
                let mut a = gcs_attrs("OBJECT_FINALIZE", "a.png");
                a["objectGeneration"] = json!(17);
                a
            },
            "message.attributes.objectGeneration: must be a string",
        ),
        (
            json!("x"),
            "message.attributes: must be an object, found a string",
        ),
    ];
    for (attrs, want) in cases {
        let msg = err(&push(attrs.clone(), None));
        assert!(msg.starts_with(want), "{attrs}: {msg}");
    }
    let bad_message = json!({"message": "hi", "subscription": "projects/p/subscriptions/s"});
    assert_eq!(
        err(&bad_message),
        "message: must be an object, found a string"
    );
}

#[test]
fn a_pub_sub_message_from_another_topic_is_an_error_not_an_empty_body() {
    let other = push(
        json!({"origin": "billing", "kind": "invoice"}),
        Some(json!(b64(b"{}"))),
    );
    let msg = err(&other);
    assert!(
        msg.starts_with("message.attributes: not a Cloud Storage notification"),
        "{msg}"
    );
    assert!(msg.contains("kind, origin"), "{msg}");
    assert!(msg.contains("projects/p/subscriptions/s"), "{msg}");
    let bare =
        json!({"message": {"data": b64(b"hello")}, "subscription": "projects/p/subscriptions/s"});
    let msg = err(&bare);
    assert!(msg.starts_with("message.attributes: missing"), "{msg}");
}

#[test]
fn an_unwrapped_push_is_refused_with_how_to_fix_it() {
    // Wrapped: the fixture. Unwrapped: the same notification as payload unwrapping posts it,
    // the object resource alone (its attributes went to HTTP headers).
    let wrapped = gcs_fixture();
    assert_eq!(
        one(wrapped.to_string().as_bytes()).key,
        format!("photos/{HARD}.jpg")
    );
    let data = wrapped["message"]["data"].as_str().unwrap();
    let unwrapped = super::super::gcs::base64_decode(data).unwrap();
    let msg = parse_body(&unwrapped).unwrap_err().to_string();
    assert!(
        msg.starts_with("body: a bare Cloud Storage object resource"),
        "{msg}"
    );
    assert!(msg.contains("Disable payload unwrapping"), "{msg}");
    assert!(fast::parse(&unwrapped).is_none());
}

#[test]
fn oss_function_compute_events_take_s3_names_and_raw_keys() {
    let parsed = parse_body(&fixture("oss-fc.json")).unwrap();
    assert_eq!(parsed.events.len(), 2);
    let put = &parsed.events[0];
    assert_eq!(put.format, Format::Oss);
    assert_eq!(put.format.as_str(), "oss");
    assert_eq!(put.bucket, "testbucket");
    assert_eq!(put.key, format!("image/{HARD}.jpg"));
    assert_eq!(put.raw_key, put.key);
    assert_eq!(put.name, "ObjectCreated:Put");
    assert_eq!(put.native_name, "ObjectCreated:PutObject");
    assert_eq!(put.size, Some(122_539));
    assert_eq!(
        put.etag.as_deref(),
        Some("688A7BF4F233DC9C88A80BF985AB7329")
    );
    assert_eq!(put.id.as_deref(), Some("58F9FF2D3DF792092E12044C"));
    assert_eq!(put.time.as_deref(), Some("2017-04-21T12:46:37.000Z"));
    let del = &parsed.events[1];
    assert_eq!(del.key, "css/old.css");
    assert_eq!(del.name, "ObjectRemoved:Delete");
    assert_eq!(del.native_name, "ObjectRemoved:DeleteObject");
    assert!(fast::parse(&fixture("oss-fc.json")).is_none());
}

#[test]
fn oss_eventbridge_cloudevents_are_unwrapped() {
    let e = one(&fixture("oss-eventbridge.json"));
    assert_eq!(e.format, Format::Oss);
    assert_eq!(e.bucket, "dwoss1024");
    assert_eq!(e.key, "input/报表 2026+Q1 50%25.csv");
    assert_eq!(e.name, "ObjectCreated:Post");
    assert_eq!(e.native_name, "oss:ObjectCreated:PostObject");
    assert_eq!(e.size, Some(59_537));
    assert_eq!(e.id.as_deref(), Some("69B1A2C3D4E5F60718293C0A8"));
    assert!(fast::parse(&fixture("oss-eventbridge.json")).is_none());
    // Without a request id, the CloudEvent's own id.
    let mut body: Value = serde_json::from_slice(&fixture("oss-eventbridge.json")).unwrap();
    body["data"]
        .as_object_mut()
        .unwrap()
        .remove("responseElements");
    let e = one(body.to_string().as_bytes());
    assert_eq!(e.id.as_deref(), Some("69B1A2C3D4E5F60718293E0A8"));
}

#[test]
fn oss_operation_names_decide_what_purges() {
    for (native, name, creation, removal) in [
        (
            "ObjectCreated:AppendObject",
            "ObjectCreated:AppendObject",
            true,
            false,
        ),
        (
            "ObjectCreated:PutSymlink",
            "ObjectCreated:PutSymlink",
            true,
            false,
        ),
        (
            "ObjectCreated:CompleteMultipartUpload",
            "ObjectCreated:CompleteMultipartUpload",
            true,
            false,
        ),
        (
            "ObjectCreated:UploadPart",
            "ObjectCreated:UploadPart",
            false,
            false,
        ),
        (
            "ObjectCreated:InitiateMultipartUpload",
            "ObjectCreated:InitiateMultipartUpload",
            false,
            false,
        ),
        (
            "ObjectRemoved:DeleteObjects",
            "ObjectRemoved:Delete",
            false,
            true,
        ),
        (
            "ObjectRemoved:AbortMultipartUpload",
            "ObjectRemoved:AbortMultipartUpload",
            false,
            false,
        ),
        (
            "ObjectModified:UpdateObjectMeta",
            "ObjectCreated:MetadataUpdate",
            false,
            false,
        ),
    ] {
        let body = oss_body(native, "k");
        let e = one(body.to_string().as_bytes());
        assert_eq!(e.name, name, "{native}");
        assert_eq!(e.native_name, native);
        assert_eq!(names::is_creation(&e.name), creation, "{native}");
        assert_eq!(names::is_removal(&e.name), removal, "{native}");
    }
}

fn oss_body(event_name: &str, key: &str) -> Value {
    json!({"events": [{
        "eventName": event_name,
        "eventSource": "acs:oss",
        "oss": {"bucket": {"name": "b"}, "object": {"key": key}},
        "responseElements": {"requestId": "r"}
    }]})
}

#[test]
fn bad_oss_bodies_name_the_field() {
    let mut no_bucket: Value = serde_json::from_slice(&fixture("oss-fc.json")).unwrap();
    no_bucket["events"][1]["oss"]["bucket"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let mut key_number = oss_body("ObjectCreated:PutObject", "k");
    key_number["events"][0]["oss"]["object"]["key"] = json!(7);
    let mut other_source = oss_body("ObjectCreated:PutObject", "k");
    other_source["events"][0]["eventSource"] = json!("acs:mns");
    let mut eb_other: Value = serde_json::from_slice(&fixture("oss-eventbridge.json")).unwrap();
    eb_other["source"] = json!("acs.ecs");
    let mut eb_no_data = eb_other.clone();
    eb_no_data["source"] = json!("acs.oss");
    eb_no_data["data"] = json!("text");
    let cases: Vec<(Value, &str)> = vec![
        (no_bucket, "events[1].oss.bucket.name: missing"),
        (
            key_number,
            "events[0].oss.object.key: must be a string, found a number",
        ),
        (
            other_source,
            "events[0].eventSource: \"acs:mns\" is not OSS",
        ),
        (
            json!({"events": {}}),
            "events: must be an array of OSS events",
        ),
        (
            json!({"events": [1]}),
            "events[0]: OSS event must be a JSON object",
        ),
        (
            json!({"events": [{"eventName": "ObjectCreated:PutObject"}]}),
            "events[0].oss: missing",
        ),
        (
            eb_other,
            "source: CloudEvent from \"acs.ecs\" is not an OSS event",
        ),
        (eb_no_data, "data: must be an object, found a string"),
    ];
    for (body, want) in cases {
        let msg = err(&body);
        assert!(msg.starts_with(want), "{want}: {msg}");
    }
}

#[test]
fn r2_messages_alone_or_in_an_array() {
    let parsed = parse_body(&fixture("r2-queue.json")).unwrap();
    let got: Vec<(&str, &str, &str, Option<u64>)> = parsed
        .events
        .iter()
        .map(|e| {
            (
                e.key.as_str(),
                e.name.as_str(),
                e.native_name.as_str(),
                e.size,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "img/猫 cat+1 50%25.png",
                "ObjectCreated:Put",
                "PutObject",
                Some(65536)
            ),
            (
                "my-new-object",
                "ObjectCreated:Copy",
                "CopyObject",
                Some(65536)
            ),
            (
                "my-original-object",
                "ObjectRemoved:Delete",
                "DeleteObject",
                None
            ),
            (
                "logs/2024-04-01.log",
                "LifecycleExpiration:Delete",
                "LifecycleDeletion",
                None
            ),
        ]
    );
    for e in &parsed.events {
        assert_eq!(e.format, Format::R2);
        assert_eq!(e.format.as_str(), "r2");
        assert_eq!(e.bucket, "my-bucket");
        assert_eq!(e.raw_key, e.key);
        assert_eq!(e.id, None);
    }
    assert_eq!(
        parsed.events[0].etag.as_deref(),
        Some("c846ff7a18f28c2e262116d6e8719ef0")
    );
    assert_eq!(
        parsed.events[1].time.as_deref(),
        Some("2024-05-24T19:36:44.379Z")
    );
    assert!(fast::parse(&fixture("r2-queue.json")).is_none());
    let single: Value = serde_json::from_slice(&fixture("r2-queue.json")).unwrap();
    let e = one(single[1].to_string().as_bytes());
    assert_eq!(e.name, "ObjectCreated:Copy");
}

#[test]
fn bad_r2_messages_name_the_field_and_refuse_the_whole_batch() {
    let all: Value = serde_json::from_slice(&fixture("r2-queue.json")).unwrap();
    let mut no_bucket = all.clone();
    no_bucket[1].as_object_mut().unwrap().remove("bucket");
    let mut key_array = all.clone();
    key_array[0]["object"]["key"] = json!(["a"]);
    let mut negative = all.clone();
    negative[0]["object"]["size"] = json!(-1);
    let mut object_text = all[0].clone();
    object_text["object"] = json!("img/a.png");
    let mut time_number = all[0].clone();
    time_number["eventTime"] = json!(1_716_579_404);
    let cases: Vec<(Value, &str)> = vec![
        (no_bucket, "[1].bucket: missing"),
        (key_array, "[0].object.key: must be a string, found a array"),
        (negative, "[0].object.size: must be a non-negative integer"),
        (object_text, "object: must be an object, found a string"),
        (time_number, "eventTime: must be a string, found a number"),
        (
            json!({"action": "", "object": {"key": "k"}, "bucket": "b"}),
            "action: is empty",
        ),
    ];
    for (body, want) in cases {
        let msg = err(&body);
        assert!(msg.starts_with(want), "{want}: {msg}");
    }
}

#[test]
fn hard_keys_pass_unchanged_through_gcs_oss_and_r2() {
    for &key in HARD_KEYS {
        let bodies = [
            ("gcs", push(gcs_attrs("OBJECT_FINALIZE", key), None)),
            ("oss", oss_body("ObjectCreated:PutObject", key)),
            (
                "r2",
                json!({"action": "PutObject", "bucket": "b", "object": {"key": key}}),
            ),
        ];
        for (format, body) in bodies {
            let e = one(body.to_string().as_bytes());
            assert_eq!((e.key.as_str(), e.raw_key.as_str()), (key, key), "{format}");
        }
    }
}

#[test]
fn the_unrecognized_message_names_the_new_shapes() {
    let msg = err(&json!({"foo": 1}));
    assert!(msg.starts_with("unrecognized notification format"), "{msg}");
    for shape in [
        "Pub/Sub push",
        "OSS `events`",
        "acs.oss",
        "R2 event notification",
    ] {
        assert!(msg.contains(shape), "{shape}: {msg}");
    }
}

#[test]
fn formats_serialize_as_their_names() {
    for f in [Format::Gcs, Format::Oss, Format::R2] {
        assert_eq!(serde_json::to_value(f).unwrap(), json!(f.as_str()));
    }
}

/// What the rules make of the new names: `created`/`removed` and OSS's own spelling.
#[test]
fn rules_select_the_new_formats_events_as_intended() {
    let rule = |events: &[&str]| {
        RuleSpec {
            name: "r".into(),
            bucket: "b".into(),
            events: events.iter().map(|s| (*s).to_owned()).collect(),
            prefix: None,
            suffix: None,
            domains: vec!["https://cdn.example.com".into()],
            provider: "p".into(),
            providers: Vec::new(),
            mode: Mode::Url,
            index_document: None,
            strip_prefix: None,
            tags: Vec::new(),
            allow_host_purge: false,
            verify: false,
            warm: false,
            min_interval_ms: 0,
            enabled: true,
        }
        .validate()
        .unwrap()
    };
    let event = |name: &str| Event {
        format: Format::Oss,
        bucket: "b".into(),
        key: "k".into(),
        raw_key: "k".into(),
        name: name.into(),
        native_name: name.into(),
        size: None,
        etag: None,
        version_id: None,
        sequencer: None,
        time: None,
        id: None,
    };
    let default = rule(&["created", "removed"]);
    assert!(default.matches(&event("LifecycleExpiration:Delete")));
    assert!(!default.matches(&event("ObjectCreated:MetadataUpdate")));
    assert!(!default.matches(&event("ObjectCreated:UploadPart")));
    assert!(!default.matches(&event("ObjectRemoved:AbortMultipartUpload")));
    assert!(!rule(&["delete"]).matches(&event("LifecycleExpiration:Delete")));
    let oss_native = rule(&[
        "oss:ObjectCreated:PutObject",
        "oss:ObjectRemoved:DeleteObject",
    ]);
    assert!(oss_native.matches(&event("ObjectCreated:Put")));
    assert!(oss_native.matches(&event("ObjectRemoved:Delete")));
    assert!(rule(&["oss:ObjectModified:UpdateObjectMeta"])
        .matches(&event("ObjectCreated:MetadataUpdate")));
    assert!(rule(&["s3:ObjectCreated:*"]).matches(&event("ObjectCreated:MetadataUpdate")));
}
