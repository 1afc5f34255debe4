//! The real binary against a loopback CloudFront API stand-in that recomputes every SigV4
//! signature with botocore, enforces the documented invalidation limits and CallerReference
//! idempotency, and answers with CloudFront's XML shapes.

mod common;

use common::*;
use edgepurge_testkit::cloudfront::{
    FakeCloudFront, Options, ACCESS_KEY_ID, DISTRIBUTION_ID, SECRET_ACCESS_KEY, SESSION_TOKEN,
};
use serde_json::Value;
use std::time::Duration;

fn fake() -> FakeCloudFront {
    FakeCloudFront::start(Options {
        token: Some(SESSION_TOKEN.into()),
        ..Default::default()
    })
}

/// A config with a CloudFront provider `cf` pointing at `fake`, fast retries, and `rules`.
fn config(fake: &FakeCloudFront, provider_extra: &str, rules: &str) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"

[store]
path = "edgepurge.db"

[dispatch]
linger_ms = 100
backoff_base_ms = 100
backoff_max_ms = 500
lane_lease_s = 2
poll_ms = 100
max_attempts = 5

[providers.cf]
kind = "cloudfront"
distribution_id = "{DISTRIBUTION_ID}"
endpoint = "{endpoint}"
access_key_id_env = "EP_TEST_CF_KEY_ID"
secret_access_key_env = "EP_TEST_CF_SECRET"
session_token_env = "EP_TEST_CF_TOKEN"
timeout_s = 5
rate_per_s = 20
busy_retry_s = 1
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

fn edgepurge(config: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(config);
    ep.env.extend([
        ("EP_TEST_CF_KEY_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
        ("EP_TEST_CF_SECRET".to_owned(), SECRET_ACCESS_KEY.to_owned()),
        ("EP_TEST_CF_TOKEN".to_owned(), SESSION_TOKEN.to_owned()),
    ]);
    ep
}

const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com", "https://d111111abcdef8.cloudfront.net"]
provider = "cf"
"#;

const DIR_RULE: &str = r#"
[[rules]]
name = "dirs"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
mode = "dir"
allow_host_purge = true
"#;

fn creates(fake: &FakeCloudFront) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn url_rules_invalidate_the_encoded_paths_in_one_signed_call() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    let keys: Vec<String> = ["img/猫 cat+1.jpg", "100%.png", "a b+c.css", "deep/x~y.js"]
        .map(String::from)
        .to_vec();
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    assert_eq!(answer["accepted"], 4);
    assert_eq!(answer["targets"], 8, "two domains per key");

    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 4);
    let invalidations = fake.invalidations();
    assert_eq!(invalidations.len(), 1, "{invalidations:#?}");
    let inv = &invalidations[0];
    // Both domains name the same distribution: each path once. Encoded once, as viewers
    // request them (space %20, `+` kept, `%` as %25, UTF-8 %XX, `~` kept).
    assert_eq!(
        inv["paths"],
        serde_json::json!([
            "/100%25.png",
            "/a%20b+c.css",
            "/deep/x~y.js",
            "/img/%E7%8C%AB%20cat+1.jpg"
        ])
    );
    assert_eq!(inv["distribution"], DISTRIBUTION_ID);
    assert_eq!(inv["status"], "InProgress");
    assert!(inv["caller_reference"]
        .as_str()
        .unwrap()
        .starts_with("edgepurge-"));
    for rec in &log {
        assert_eq!(rec["status"], "succeeded", "{rec}");
        assert_eq!(rec["attempts"], 1);
        assert_eq!(
            rec["task_id"], inv["id"],
            "the log's task id is the invalidation's Id"
        );
    }
    let reqs = creates(&fake);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["signature_ok"], true);
    assert_eq!(r["status"], 201);
    assert_eq!(
        r["path"],
        format!("/2020-05-31/distribution/{DISTRIBUTION_ID}/invalidation")
    );
    assert_eq!(r["headers"]["content-type"], "application/xml");
    assert_eq!(
        r["headers"]["x-amz-security-token"], "***",
        "session token sent (masked by the fake)"
    );
    assert_eq!(log[0]["request_id"], r["request_id"]);
}

#[test]
fn dir_rules_invalidate_one_wildcard_per_folder() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", DIR_RULE));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &[
            "docs/a/x.html".into(),
            "docs/a/y.html".into(),
            "docs/b.html".into(),
            "top.html".into(),
        ],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    assert_eq!(fake.invalidations().len(), 1);
    assert_eq!(
        sorted(fake.invalidated()),
        vec!["/*", "/docs/*", "/docs/a/*"]
    );
}

#[test]
fn tag_rules_invalidate_cache_tags() {
    let fake = fake();
    let ep = edgepurge(&config(
        &fake,
        "",
        r#"
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
mode = "tag"
tags = ["{seg1}", "product-{stem}"]
"#,
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["products/42.png".into(), "products/a b.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    assert_eq!(fake.invalidations().len(), 1);
    assert_eq!(
        sorted(fake.invalidated()),
        vec!["#product-42", "#product-a%20b", "#products"]
    );
}

#[test]
fn a_burst_of_events_becomes_one_invalidation() {
    let fake = fake();
    let ep =
        edgepurge(&config(&fake, "", SITE_RULE).replace("linger_ms = 100", "linger_ms = 1500"));
    let server = ep.serve();
    for chunk in 0..5 {
        let keys: Vec<String> = (0..100).map(|i| format!("burst/{chunk}/{i}.js")).collect();
        server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    }
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log.len(), 500);
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    let invalidations = fake.invalidations();
    assert_eq!(invalidations.len(), 1, "one request for 500 paths");
    assert_eq!(
        invalidations[0]["paths"].as_array().map(Vec::len),
        Some(500)
    );
}

#[test]
fn a_wrong_secret_is_refused_by_the_signature_check_and_never_logged() {
    let fake = fake();
    let mut ep = edgepurge(&config(&fake, "", SITE_RULE));
    for (k, v) in &mut ep.env {
        if k == "EP_TEST_CF_SECRET" {
            *v = "wrong-secret-access-key-EXAMPLE".into();
        }
    }
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["c.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1, "a refused signature is not retried");
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("check the secret access key"),
        "{err}"
    );
    assert!(fake.invalidations().is_empty());
    let reqs = creates(&fake);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["status"], 403);
    let everything = ep.ok(&["log", "--json"]) + &ep.ok(&["log", "--requests", "--json"]);
    for secret in [
        "wrong-secret-access-key-EXAMPLE",
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn too_many_invalidations_in_progress_is_retried_until_some_complete() {
    let fake = fake();
    let ep = edgepurge(
        &config(&fake, "max_wildcards_per_request = 15", DIR_RULE)
            .replace("max_attempts = 5", "max_attempts = 30"),
    );
    let server = ep.serve();
    // 15 folders: one invalidation holding CloudFront's 15 wildcards in progress.
    let keys: Vec<String> = (0..15).map(|i| format!("d{i:02}/x.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(20));
    assert!(log.iter().all(|r| r["status"] == "succeeded"));
    assert_eq!(fake.invalidations().len(), 1);

    // One more folder: refused while those are in progress, sent again later.
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["late/x.css".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(20), "two refusals", || {
        let refused = creates(&fake)
            .iter()
            .filter(|r| r["error_code"] == "TooManyInvalidationsInProgress")
            .count();
        (refused >= 2).then_some(())
    });
    let rec = ep
        .log(&[])
        .into_iter()
        .find(|r| r["key"] == "late/x.css")
        .unwrap();
    assert!(
        rec["status"] == "failed" && rec["attempts"].as_u64() >= Some(2),
        "retrying, not dead: {rec}"
    );
    assert_eq!(fake.complete(), 1);
    let log = ep.settle(Duration::from_secs(20));
    let rec = log.iter().find(|r| r["key"] == "late/x.css").unwrap();
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert!(rec["attempts"].as_u64().unwrap() >= 3, "{rec}");
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    assert!(reqs.contains("TooManyInvalidationsInProgress"), "{reqs}");
    assert_eq!(fake.invalidations().len(), 2);
    assert_eq!(
        fake.invalidations()[1]["paths"],
        serde_json::json!(["/late/*"])
    );
}

#[test]
fn an_unknown_distribution_is_a_clear_fatal_error() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE).replace(DISTRIBUTION_ID, "ENOSUCHDIST000"));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["n.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "dead");
    assert_eq!(log[0]["attempts"], 1);
    let err = log[0]["error"].as_str().unwrap();
    assert!(
        err.contains("NoSuchDistribution")
            && err.contains("check distribution_id \"ENOSUCHDIST000\""),
        "{err}"
    );
    assert_eq!(creates(&fake)[0]["status"], 404);
}

#[test]
fn a_retry_after_a_lost_answer_reuses_the_caller_reference() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.lose_answers(1);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["lost.css".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 2);
    let reqs = creates(&fake);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["caller_reference"], reqs[1]["caller_reference"]);
    assert_eq!(
        reqs[1]["replayed"], true,
        "CloudFront answered with the first one"
    );
    let invalidations = fake.invalidations();
    assert_eq!(invalidations.len(), 1, "no duplicate invalidation");
    assert_eq!(log[0]["task_id"], invalidations[0]["id"]);

    // The same object changed again: a new invalidation, not the earlier one returned.
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["lost.css".into()],
    ));
    ep.settle(Duration::from_secs(20));
    let invalidations = fake.invalidations();
    assert_eq!(invalidations.len(), 2);
    assert_ne!(
        invalidations[0]["caller_reference"],
        invalidations[1]["caller_reference"]
    );
    assert_eq!(invalidations[1]["paths"], serde_json::json!(["/lost.css"]));
}

#[test]
fn throttling_and_answers_that_are_not_cloudfronts_are_retried() {
    let fake = fake();
    let ep = edgepurge(&config(&fake, "", SITE_RULE));
    let server = ep.serve();
    fake.fail("Throttling", 400, 1);
    fake.answer_raw(502, "text/html", "<html><body>bad gateway</body></html>", 1);
    fake.answer_raw(200, "text/html", "<html>captive portal</html>", 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{}", log[0]);
    assert_eq!(log[0]["attempts"], 4);
    let reqs = ep.ok(&["log", "--requests", "--json"]);
    for what in ["Throttling", "HTTP 502", "bad gateway", "captive portal"] {
        assert!(reqs.contains(what), "{what} in {reqs}");
    }
    // Every attempt carried the same reference: at most one invalidation, whatever the
    // proxy's 200 meant.
    let refs: Vec<Value> = creates(&fake)
        .iter()
        .map(|r| r["caller_reference"].clone())
        .collect();
    assert!(refs.windows(2).all(|w| w[0] == w[1]), "{refs:?}");
    assert_eq!(fake.invalidations().len(), 1);
}

#[test]
fn simulate_shows_the_cloudfront_targets() {
    // Nothing is sent: the endpoint is never called.
    let ep = edgepurge(&format!(
        r#"
[providers.cf]
kind = "cloudfront"
distribution_id = "{DISTRIBUTION_ID}"

{SITE_RULE}
[[rules]]
name = "tags"
bucket = "assets"
events = ["created"]
domains = ["https://cdn.example.com"]
provider = "cf"
mode = "tag"
tags = ["{{seg1}}"]
"#
    ));
    let event = ep.dir.path().join("e.json");
    std::fs::write(
        &event,
        ceph_body("assets", "ObjectCreated:Put", &["img/猫 1.png".into()]),
    )
    .unwrap();
    let out = ep.ok(&["simulate", "--event", event.to_str().unwrap()]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["provider"], "cf", "{l}");
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "url".to_owned(),
                "https://cdn.example.com/img/%E7%8C%AB%201.png".to_owned()
            ),
            (
                "url".to_owned(),
                "https://d111111abcdef8.cloudfront.net/img/%E7%8C%AB%201.png".to_owned()
            ),
            ("tag".to_owned(), "img".to_owned()),
        ]
    );
    // The keys default to the AWS_* variables.
    let out = ep.run(&["config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AWS_SECRET_ACCESS_KEY is not set"),
        "{err}"
    );
    let mut ep = ep;
    ep.env.extend([
        ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            SECRET_ACCESS_KEY.to_owned(),
        ),
    ]);
    ep.ok(&["config", "check"]);
}

#[test]
fn the_stand_in_accepts_boto3s_own_calls_and_refuses_bad_signatures() {
    // The stand-in checks signatures with botocore; this checks it against boto3's client
    // too, so a bug shared by edgepurge's signer and the check would show.
    let fake = fake();
    let script = r#"
import sys, boto3, botocore.config, botocore.exceptions
url, akid, secret, token, dist = sys.argv[1:6]
cfg = botocore.config.Config(retries={"max_attempts": 0})
def client(secret):
    return boto3.client("cloudfront", endpoint_url=url, region_name="us-east-1", config=cfg,
                        aws_access_key_id=akid, aws_secret_access_key=secret,
                        aws_session_token=token)
batch = {"Paths": {"Quantity": 2, "Items": ["/a%20b.png", "/d/*"]}, "CallerReference": "boto3-1"}
r = client(secret).create_invalidation(DistributionId=dist, InvalidationBatch=batch)
again = client(secret).create_invalidation(DistributionId=dist, InvalidationBatch=batch)
print(r["ResponseMetadata"]["HTTPStatusCode"], r["Invalidation"]["Status"],
      again["Invalidation"]["Id"] == r["Invalidation"]["Id"], r["Location"].endswith(r["Invalidation"]["Id"]))
for what, c, b in [("secret", client("wrong"), batch),
                   ("quantity", client(secret), {"Paths": {"Quantity": 3, "Items": ["/x"]}, "CallerReference": "boto3-2"}),
                   ("reference", client(secret), {"Paths": {"Quantity": 1, "Items": ["/y"]}, "CallerReference": "boto3-1"})]:
    try:
        c.create_invalidation(DistributionId=dist, InvalidationBatch=b)
        print(what, "accepted")
    except botocore.exceptions.ClientError as e:
        print(what, e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
"#;
    let out = edgepurge_testkit::run(
        "boto3 against the stand-in",
        std::process::Command::new(edgepurge_testkit::python()).args([
            "-c",
            script,
            &fake.endpoint(),
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            SESSION_TOKEN,
            DISTRIBUTION_ID,
        ]),
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "201 InProgress True True",
            "secret 403 SignatureDoesNotMatch",
            "quantity 400 InconsistentQuantities",
            "reference 409 InvalidationBatchAlreadyExists",
        ]
    );
    assert_eq!(fake.invalidations().len(), 1);
}
