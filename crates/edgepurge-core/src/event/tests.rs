use super::*;
use serde_json::json;

/// Cloud Storage (Pub/Sub push), OSS and R2.
mod cloud;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn one(body: &[u8]) -> Event {
    let parsed = parse_body(body).unwrap();
    assert_eq!(parsed.events.len(), 1, "{parsed:?}");
    parsed.events.into_iter().next().unwrap()
}

#[test]
fn a_key_twice_anywhere_is_refused_by_both_parsers() {
    let record = |extra: &str| {
        format!(
            r#"{{"Records":[{{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",{extra}
            "s3":{{"bucket":{{"name":"b"}},"object":{{"key":"k"}}}}}}]}}"#
        )
    };
    // Known to the fast path, unknown to it, nested in an unknown field, at the top.
    for body in [
        record(r#""awsRegion":"a","awsRegion":"b","#),
        record(r#""userIdentity":{"principalId":"a","principalId":"b"},"#),
        record(r#""eventName":"ObjectCreated:Put","#),
        format!(r#"{{"x":1,"x":2,{}"#, &record("")[1..]),
    ] {
        let err = parse_body(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("duplicate"), "{body}: {err}");
        assert!(fast::parse(body.as_bytes()).is_none(), "{body}");
    }
    assert_eq!(one(record(r#""awsRegion":"a","#).as_bytes()).key, "k");
}

#[test]
fn aws_s3_record_is_form_decoded() {
    let e = one(&fixture("aws-s3-put.json"));
    assert_eq!(e.format, Format::AwsS3);
    assert_eq!(e.bucket, "amzn-s3-demo-bucket");
    assert_eq!(e.key, "img/red flower+1.jpg");
    assert_eq!(e.raw_key, "img/red+flower%2B1.jpg");
    assert_eq!(e.name, "ObjectCreated:Put");
    assert_eq!(e.size, Some(1024));
    assert_eq!(e.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    assert_eq!(e.id.as_deref(), Some("C3D13FE58DE4C810"));
}

#[test]
fn sns_envelope_is_unwrapped() {
    let e = one(&fixture("aws-s3-sns-delete.json"));
    assert_eq!(e.format, Format::AwsS3);
    assert_eq!(e.name, "ObjectRemoved:Delete");
    assert_eq!(e.key, "img/red flower+1.jpg");
    assert_eq!(e.size, None);
}

#[test]
fn s3_test_event_is_skipped_with_a_notice() {
    let parsed = parse_body(&fixture("aws-s3-test-event.json")).unwrap();
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.notices, vec!["s3:TestEvent ignored".to_owned()]);
}

#[test]
fn sns_subscription_confirmation_is_a_notice_not_an_error() {
    let body = json!({
        "Type": "SubscriptionConfirmation",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "Message": "You have chosen to subscribe"
    });
    let parsed = parse_body(body.to_string().as_bytes()).unwrap();
    assert!(parsed.events.is_empty());
    assert!(parsed.notices[0].contains("SubscribeURL"));
}

#[test]
fn minio_key_escapes_slash_and_space() {
    let e = one(&fixture("minio-put.json"));
    assert_eq!(e.format, Format::Minio);
    assert_eq!(e.key, "img/a b+c.png");
    assert_eq!(e.name, "ObjectCreated:Put");
    assert_eq!(e.native_name, "s3:ObjectCreated:Put");
}

#[test]
fn ceph_key_is_raw() {
    let e = one(&fixture("ceph-put.json"));
    assert_eq!(e.format, Format::Ceph);
    assert_eq!(e.key, "img/a b+c.png");
    assert_eq!(
        e.id.as_deref(),
        Some("1714557600.123456.5d41402abc4b2a76b9719d911017c592")
    );
}

#[test]
fn cos_records_strip_appid_and_bucket_and_name_the_bucket_with_appid() {
    let parsed = parse_body(&fixture("cos-put.json")).unwrap();
    assert_eq!(parsed.events.len(), 2);
    let put = &parsed.events[0];
    assert_eq!(put.format, Format::Cos);
    assert_eq!(put.bucket, "testpic-1253970026");
    assert_eq!(put.key, "img/猫 cat+1.jpg");
    assert_eq!(put.name, "ObjectCreated:Put");
    assert_eq!(put.time.as_deref(), Some("1545205770"));
    let del = &parsed.events[1];
    assert_eq!(del.key, "old.css");
    assert_eq!(del.name, "ObjectRemoved:Delete");
    assert_eq!(del.native_name, "cos:ObjectRemove:Delete");
}

#[test]
fn without_a_url_a_cos_key_outside_its_bucket_is_refused_with_the_path() {
    let mut body: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let object = body["Records"][1]["cos"]["cosObject"]
        .as_object_mut()
        .unwrap();
    object.remove("url");
    object.insert("key".into(), json!("/999/other/x.css"));
    let err = parse_body(body.to_string().as_bytes()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("Records[1].cos.cosObject.key:"), "{msg}");
    assert!(msg.contains("/1253970026/testpic/"), "{msg}");
}

/// A COS record whose object URL and `key` field say `url_path` and `key_field`.
fn cos_record(url_path: Option<&str>, key_field: &str) -> Value {
    let mut object = json!({"key": key_field});
    if let Some(p) = url_path {
        object["url"] = json!(format!(
            "http://b-1250000000.cos.ap-guangzhou.myqcloud.com/{p}"
        ));
    }
    json!({"Records": [{
        "cos": {"cosObject": object, "cosBucket": {"name": "b", "appid": "1250000000"}},
        "event": {"eventName": "cos:ObjectCreated:Put"}
    }]})
}

#[test]
fn a_cos_key_comes_from_its_url_decoded_once() {
    // The object literally named `50%25off.png`: its URL escapes the `%` once.
    let body = cos_record(Some("50%2525off.png"), "/1250000000/b/50%25off.png");
    let e = one(body.to_string().as_bytes());
    assert_eq!(e.key, "50%25off.png");
    assert_eq!(e.raw_key, "50%2525off.png");
    assert_eq!(e.bucket, "b-1250000000");
    // `+` stays a plus; UTF-8 escapes decode.
    let body = cos_record(Some("a+b/%E7%8C%AB.png"), "/1250000000/b/a+b/x");
    assert_eq!(one(body.to_string().as_bytes()).key, "a+b/猫.png");
    // A dot segment is kept as written (the rules refuse it), never resolved away.
    let body = cos_record(Some("a/../b.png"), "/1250000000/b/a/../b.png");
    assert_eq!(one(body.to_string().as_bytes()).key, "a/../b.png");
    // Without a URL, the `key` field (decoded once).
    let body = cos_record(None, "/1250000000/b/dir/%E7%8C%AB.png");
    assert_eq!(one(body.to_string().as_bytes()).key, "dir/猫.png");
}

#[test]
fn a_path_style_or_custom_domain_cos_url_gives_the_key() {
    let mut body = cos_record(None, "/1250000000/b/x");
    body["Records"][0]["cos"]["cosObject"]["url"] =
        json!("https://cos.ap-guangzhou.myqcloud.com/b-1250000000/img/a.png");
    assert_eq!(one(body.to_string().as_bytes()).key, "img/a.png");
    body["Records"][0]["cos"]["cosObject"]["url"] = json!("https://static.example.com/img/a.png");
    assert_eq!(one(body.to_string().as_bytes()).key, "img/a.png");
    body["Records"][0]["cos"]["cosObject"]["url"] = json!("not a url");
    let err = parse_body(body.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("Records[0].cos.cosObject.url:"), "{err}");
}

#[test]
fn cos_bodies_relayed_through_ckafka_are_unwrapped() {
    let parsed = parse_body(&fixture("cos-ckafka.json")).unwrap();
    assert_eq!(parsed.events.len(), 1);
    let e = &parsed.events[0];
    assert_eq!(e.format, Format::Cos);
    assert_eq!(e.bucket, "testpic-1253970026");
    assert_eq!(e.key, "img/猫 cat+1.jpg");
    assert_eq!(e.name, "ObjectCreated:Put");

    let bad = json!({"Records": [{"Ckafka": {"msgBody": "{not json"}}]});
    let err = parse_body(bad.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Records[0].Ckafka.msgBody: is not a JSON body"),
        "{err}"
    );
    let missing = json!({"Records": [{"Ckafka": {"topic": "t"}}]});
    let err = parse_body(missing.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("msgBody"), "{err}");
    // A relay of a relay of ... is bounded like any envelope.
    let mut body = fixture("cos-put.json");
    // (Each level escapes the one inside, so a few levels are enough.)
    for _ in 0..6 {
        let text = String::from_utf8(body).unwrap();
        body = json!({"Records": [{"Ckafka": {"msgBody": text}}]})
            .to_string()
            .into_bytes();
    }
    let err = parse_body(&body).unwrap_err().to_string();
    assert!(err.contains("nested too deeply"), "{err}");
}

#[test]
fn cos_workflow_bodies_name_bucket_and_object() {
    let e = one(&fixture("cos-workflow.json"));
    assert_eq!(e.format, Format::Cos);
    assert_eq!(e.bucket, "testpic-1253970026");
    assert_eq!(e.key, "img/poster.jpg");
    assert_eq!(e.name, "ObjectCreated:Workflow");
    let bad = json!({"ObjectInfo": {"BucketId": "b-1", "Object": "/"}});
    let err = parse_body(bad.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ObjectInfo.Object"), "{err}");
}

#[test]
fn eventbridge_events_map_to_s3_names() {
    let e = one(&fixture("eventbridge-created.json"));
    assert_eq!(e.format, Format::EventBridge);
    assert_eq!(e.name, "ObjectCreated:Put");
    assert_eq!(e.bucket, "amzn-s3-demo-bucket1");
    assert_eq!(
        e.version_id.as_deref(),
        Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
    );
    let d = one(&fixture("eventbridge-deleted.json"));
    assert_eq!(d.name, "ObjectRemoved:DeleteMarkerCreated");
}

#[test]
fn eventbridge_from_another_service_is_refused() {
    let mut body: Value = serde_json::from_slice(&fixture("eventbridge-created.json")).unwrap();
    body["source"] = json!("aws.ec2");
    let err = parse_body(body.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("aws.ec2"), "{err}");
}

#[test]
fn an_array_of_bodies_is_accepted() {
    let a: Value = serde_json::from_slice(&fixture("ceph-put.json")).unwrap();
    let b: Value = serde_json::from_slice(&fixture("eventbridge-created.json")).unwrap();
    let parsed = parse_body(json!([a, b]).to_string().as_bytes()).unwrap();
    assert_eq!(parsed.events.len(), 2);
}

#[test]
fn one_bad_record_refuses_the_whole_body_and_names_it() {
    let mut body: Value = serde_json::from_slice(&fixture("ceph-put.json")).unwrap();
    let good = body["Records"][0].clone();
    let mut bad = good.clone();
    bad["s3"]["object"].as_object_mut().unwrap().remove("key");
    body["Records"] = json!([good, bad]);
    let err = parse_body(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "Records[1].s3.object.key: missing");
}

#[test]
fn malformed_bodies_have_precise_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "body is empty"),
        (b"   \n", "body is empty"),
        (b"{not json", "body is not JSON"),
        (b"{}", "an empty JSON object"),
        (b"42", "a JSON number"),
        (b"{\"foo\": 1}", "top-level fields: foo"),
        (b"{\"Records\": {}}", "Records: must be an array"),
        (b"{\"Records\": [1]}", "Records[0]: record must be a JSON object"),
        (b"{\"Records\": [{\"x\": 1}]}", "Records[0]: record has none of `s3`, `cos` or `Ckafka`"),
        (
            b"{\"Records\": [{\"eventName\": \"ObjectCreated:Put\", \"s3\": {\"bucket\": {\"name\": \"b\"}, \"object\": {\"key\": 5}}}]}",
            "Records[0].s3.object.key: must be a string, found a number",
        ),
        (
            b"{\"Records\": [{\"eventName\": \"ObjectCreated:Put\", \"s3\": {\"bucket\": {\"name\": \"\"}, \"object\": {\"key\": \"k\"}}}]}",
            "Records[0].s3.bucket.name: is empty",
        ),
        (
            b"{\"Records\": [{\"eventName\": \"ObjectCreated:Put\", \"s3\": {\"bucket\": {\"name\": \"b\"}, \"object\": {\"key\": \"k\", \"size\": -1}}}]}",
            "Records[0].s3.object.size: must be a non-negative integer",
        ),
    ];
    for (body, want) in cases {
        let err = parse_body(body).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "body {:?}: error {err:?} lacks {want:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn sns_message_that_is_not_json_is_refused() {
    let body = json!({"Type": "Notification", "TopicArn": "arn:t", "Message": "hello"});
    let err = parse_body(body.to_string().as_bytes()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Message: SNS Message is not JSON"),
        "{err}"
    );
}

#[test]
fn deeply_nested_envelopes_are_refused() {
    let mut v = json!({"Records": []});
    for _ in 0..6 {
        v = json!([v]);
    }
    let err = parse_body(v.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("nested too deeply"), "{err}");
}

/// Hard keys: each format encodes them its own way; every format must decode them back to
/// the same object name.
pub(crate) const HARD_KEYS: &[&str] = &[
    "plain.png",
    "a b.png",
    "a+b.png",
    "a%b.png",
    "100%25.png",
    "a#b?.png",
    "a&b=c;d.png",
    "图片/猫 1.jpg",
    "Ünïcødé/ёжик.txt",
    "a//b.png",
    "/leading.png",
    "emoji 😀.png",
    "quote'\"<>.txt",
];

/// Go's `url.QueryEscape` (MinIO): everything but unreserved is escaped, space as `+`.
fn query_escape(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Amazon S3: like `QueryEscape` but `/` kept.
fn aws_escape(key: &str) -> String {
    query_escape(key).replace("%2F", "/")
}

/// `%XX` escaping with space as `%20` (COS, EventBridge when they escape).
fn percent_escape(key: &str) -> String {
    query_escape(key).replace('+', "%20").replace("%2F", "/")
}

fn s3_body(source: &str, key: &str) -> Vec<u8> {
    json!({"Records": [{
        "eventSource": source,
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key}}
    }]})
    .to_string()
    .into_bytes()
}

fn cos_body(key: &str) -> Vec<u8> {
    json!({"Records": [{
        "cos": {
            "cosObject": {"key": format!("/1250000000/b/{key}")},
            "cosBucket": {"name": "b", "appid": "1250000000"}
        },
        "event": {"eventName": "cos:ObjectCreated:Put"}
    }]})
    .to_string()
    .into_bytes()
}

fn eventbridge_body(key: &str) -> Vec<u8> {
    json!({
        "detail-type": "Object Created", "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": key}, "reason": "PutObject"}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn hard_keys_decode_exactly_once_in_every_format() {
    for &key in HARD_KEYS {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("aws-s3", s3_body("aws:s3", &aws_escape(key))),
            ("minio", s3_body("minio:s3", &query_escape(key))),
            ("ceph", s3_body("ceph:s3", key)),
            ("cos escaped", cos_body(&percent_escape(key))),
            (
                "eventbridge escaped",
                eventbridge_body(&percent_escape(key)),
            ),
        ];
        for (format, body) in cases {
            let e = one(&body);
            assert_eq!(e.key, key, "format {format}, key {key:?}");
        }
    }
}

#[test]
fn unescaped_keys_without_percent_survive_cos_and_eventbridge() {
    for &key in HARD_KEYS.iter().filter(|k| !k.contains('%')) {
        assert_eq!(one(&cos_body(key)).key, key);
        assert_eq!(one(&eventbridge_body(key)).key, key);
    }
}

mod fast_path {
    use super::*;
    use proptest::prelude::*;

    /// The fast path either gives up or agrees with the tree parser exactly.
    fn agrees(body: &[u8]) -> bool {
        match super::super::fast::parse(body) {
            None => true,
            Some(fast) => parse_tree(body).as_ref() == Ok(&fast),
        }
    }

    #[test]
    fn relayed_and_workflow_cos_bodies_agree_on_both_paths() {
        for name in ["cos-ckafka.json", "cos-workflow.json"] {
            assert!(agrees(&fixture(name)), "{name}");
        }
    }

    #[test]
    fn common_bodies_take_the_fast_path_and_agree() {
        for name in ["aws-s3-put.json", "ceph-put.json", "minio-put.json"] {
            let body = fixture(name);
            assert!(
                super::super::fast::parse(&body).is_some(),
                "{name} should take the fast path"
            );
            assert!(agrees(&body), "{name}");
        }
        for name in [
            "aws-s3-sns-delete.json",
            "aws-s3-test-event.json",
            "cos-put.json",
            "eventbridge-created.json",
            "eventbridge-deleted.json",
        ] {
            assert!(agrees(&fixture(name)), "{name}");
        }
        for &key in HARD_KEYS {
            for body in [
                s3_body("aws:s3", &aws_escape(key)),
                s3_body("minio:s3", &query_escape(key)),
                s3_body("ceph:s3", key),
            ] {
                assert!(super::super::fast::parse(&body).is_some());
                assert!(agrees(&body), "{key:?}");
            }
        }
    }

    #[test]
    fn events_handed_over_one_at_a_time_are_the_parsed_events_and_stop_when_asked() {
        let keys: Vec<String> = (0..5).map(|i| format!("img/{i}.png")).collect();
        let records: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    r#"{{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"assets"}},"object":{{"key":"{k}"}}}}}}"#
                )
            })
            .collect();
        let body = format!(r#"{{"other":[1],"Records":[{}]}}"#, records.join(","));
        let mut seen = Vec::new();
        let n = crate::event::each_event(body.as_bytes(), &mut |e| {
            seen.push(e);
            true
        });
        assert_eq!(n, Some(5));
        assert_eq!(seen, parse_body(body.as_bytes()).unwrap().events);
        // Stopped after the second: no count, two seen.
        let mut calls = 0;
        let stopped = crate::event::each_event(body.as_bytes(), &mut |_| {
            calls += 1;
            calls < 2
        });
        assert_eq!((stopped, calls), (None, 2));
        // Not plainly S3 records (no Records, trailing text, a COS record): left to parse_body.
        for other in [
            r#"{"Recs":[]}"#.to_owned(),
            format!("{body} x"),
            String::from_utf8(fixture("cos-put.json")).unwrap(),
        ] {
            assert_eq!(
                crate::event::each_event(other.as_bytes(), &mut |_| true),
                None
            );
        }
    }

    fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<u32>().prop_map(|n| json!(n)),
            (-5i64..5).prop_map(|n| json!(n)),
            Just(json!(1.5)),
            "[a-z%+ /\\\\\"é]{0,6}".prop_map(serde_json::Value::String),
            Just(json!({})),
            Just(json!([])),
        ]
    }

    /// A field that is usually well-formed text, sometimes anything, sometimes absent.
    fn field() -> impl Strategy<Value = Option<serde_json::Value>> {
        prop_oneof![
            12 => "[a-zA-Z0-9:%+ /.]{0,8}".prop_map(|s| Some(serde_json::Value::String(s))),
            1 => json_leaf().prop_map(Some),
            1 => Just(None),
        ]
    }

    pub(super) fn record_strategy() -> impl Strategy<Value = serde_json::Value> {
        (
            prop_oneof![
                Just(Some(json!("aws:s3"))),
                Just(Some(json!("minio:s3"))),
                Just(Some(json!("ceph:s3"))),
                field()
            ],
            field(),
            field(),
            field(),
            field(),
            prop_oneof![6 => any::<u32>().prop_map(|n| Some(json!(n))), 1 => field()],
            field(),
            prop::bool::weighted(0.1),
            any::<bool>(),
        )
            .prop_map(|(source, name, bucket, key, etag, size, id, cos, extra)| {
                let mut object = serde_json::Map::new();
                let put = |m: &mut serde_json::Map<_, _>, k: &str, v: Option<_>| {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                };
                put(&mut object, "key", key);
                put(&mut object, "eTag", etag);
                put(&mut object, "size", size);
                let mut bucket_obj = serde_json::Map::new();
                put(&mut bucket_obj, "name", bucket);
                let mut rec = serde_json::Map::new();
                put(&mut rec, "eventSource", source);
                put(&mut rec, "eventName", name);
                put(&mut rec, "eventId", id);
                rec.insert("s3".into(), json!({"bucket": bucket_obj, "object": object}));
                if cos {
                    rec.insert("cos".into(), json!({}));
                }
                if extra {
                    rec.insert("awsRegion".into(), json!("eu-west-1"));
                }
                serde_json::Value::Object(rec)
            })
    }

    #[test]
    fn arrays_in_place_of_objects_and_null_cos_go_to_the_tree_parser() {
        for body in [
            // A JSON array standing for a struct, its fields in order.
            r#"[[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]]"#,
            r#"[[[null,"ObjectCreated:Put",null,null,null,[["b"],["k"]]]]]"#,
            r#"{"Records":[[null,"ObjectCreated:Put",null,null,null,[["b"],["k"]]]]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":[["b"],["k"]]}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":["b"],"object":{"key":"k"}}}]}"#,
            // A COS key with no value is still not an S3 record.
            r#"{"Records":[{"cos":null,"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#,
        ] {
            assert!(
                super::super::fast::parse(body.as_bytes()).is_none(),
                "{body}"
            );
            assert!(parse_body(body.as_bytes()).is_err(), "{body}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn the_fast_path_never_disagrees_with_the_tree_parser(
            records in prop::collection::vec(record_strategy(), 0..4),
            as_array in prop::bool::weighted(0.1),
        ) {
            // Sometimes an object becomes the array of its values (what a derived
            // deserializer would also take, and the tree parser refuses).
            let records: Vec<serde_json::Value> = if as_array {
                records
                    .into_iter()
                    .map(|r| match r {
                        serde_json::Value::Object(m) => {
                            serde_json::Value::Array(m.into_iter().map(|(_, v)| v).collect())
                        }
                        other => other,
                    })
                    .collect()
            } else {
                records
            };
            let body = json!({ "Records": records }).to_string();
            prop_assert!(agrees(body.as_bytes()), "{}", body);
        }
    }
}

#[test]
fn the_generated_bodies_exercise_both_paths() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(fast_path_record(), 1..3);
    let (mut fast, mut slow) = (0, 0);
    for _ in 0..500 {
        let records = strategy.new_tree(&mut runner).unwrap().current();
        let body = json!({ "Records": records }).to_string();
        match super::fast::parse(body.as_bytes()) {
            Some(_) => fast += 1,
            None => slow += 1,
        }
    }
    assert!(fast > 50 && slow > 50, "fast {fast}, slow {slow}");
}

fn fast_path_record() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    fast_path::record_strategy()
}
