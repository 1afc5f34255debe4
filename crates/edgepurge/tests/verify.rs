//! The purge lifecycle, "verified fresh", with real parts: a real Ceph RADOS Gateway sends its
//! bucket notifications to the real edgepurge binary, which purges two real Varnish caches
//! and then fetches each purged URL through them to see what they serve.
//!
//! One rule purges through two accounts, so each event gets one record per account:
//! * `edge`: a Varnish node purged with `PURGE` — its copy is fresh after the purge;
//! * `deaf`: a Varnish node "purged" with a method it does not treat as a purge (`GET`
//!   answers 200 from the cache), i.e. a cache that ignores purges — still stale after the
//!   purge, purged once more through the queue, then reported stale.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::caches::{Cache, CacheKind};
use edgepurge_testkit::ceph::Ceph;
use serde_json::Value;
use std::time::Duration;

const HOST: &str = "cdn.test";
const BUCKET: &str = "vfy";

fn path(key: &str) -> String {
    format!("/{BUCKET}/{}", edgepurge_core::urlpath::encode_path(key))
}

fn config(edge: &Cache, deaf: &Cache) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 50
poll_ms = 100
verify_settle_ms = 0
verify_timeout_s = 5

[providers.edge]
kind = "http-purge"
preset = "varnish"
nodes = ["{edge}"]

[providers.deaf]
kind = "http-purge"
preset = "varnish"
purge_method = "GET"
nodes = ["{deaf}"]

[[rules]]
name = "verified"
bucket = "{BUCKET}"
events = ["created", "removed"]
domains = ["http://{HOST}/{BUCKET}"]
providers = ["edge", "deaf"]
verify = true
"#,
        edge = edge.addr,
        deaf = deaf.addr
    )
}

/// The records of `key` through `provider`, oldest first, once every one of them is verified
/// (none pending) and there are at least `n`.
fn verified(ep: &Edgepurge, key: &str, provider: &str, n: usize) -> Vec<Value> {
    edgepurge_testkit::wait_for(
        Duration::from_secs(60),
        &format!("{n} verified record(s) of {key} through {provider}"),
        || {
            let recs: Vec<Value> = ep
                .log(&[])
                .into_iter()
                .filter(|r| r["key"] == key && r["provider"] == provider)
                .collect();
            let done = recs.len() >= n
                && recs
                    .iter()
                    .all(|r| r["verified"].is_string() && r["verified"] != "pending");
            done.then_some(recs)
        },
    )
}

/// Fills both caches with `want` for `key` and checks the second GET is a hit.
fn warm(caches: &[&Cache], key: &str, want: &str) {
    for cache in caches {
        for _ in 0..2 {
            let (status, _, body) = cache.get(HOST, &path(key));
            assert_eq!((status, body.as_str()), (200, want), "GET {key}");
        }
        assert_eq!(cache.get(HOST, &path(key)).1, Some(true), "{key} cached");
    }
}

#[test]
fn purged_urls_are_verified_through_real_caches() {
    let ceph = Ceph::start();
    let origin = ceph.rgw_addr();
    let edge = Cache::start(CacheKind::Varnish, origin);
    let deaf = Cache::start(CacheKind::Varnish, origin);
    let ep = Edgepurge::new(&config(&edge, &deaf));
    let server = ep.serve();
    let endpoint = format!("http://{}/v1/events?token={WEBHOOK_TOKEN}", server.addr);
    let topic = ceph.create_topic("verify", &endpoint, false);
    ceph.create_bucket(BUCKET);
    ceph.notify(BUCKET, &topic, None);

    an_overwrite_is_verified_fresh_or_purged_again_then_stale(&ceph, &ep, &edge, &deaf);
    a_delete_is_fresh_when_the_cache_answers_404(&ceph, &ep, &edge, &deaf);
    an_object_changed_again_is_not_reported_stale(&ceph, &ep);
    an_event_without_a_validator_is_unverifiable(&ep, &server);
    the_log_shows_the_verification(&ep);
    metrics_count_the_verifications(&server);
    rule_add_takes_verify(&ep);
}

fn metrics_count_the_verifications(server: &Server) {
    let r = edgepurge_testkit::http::request(
        server.addr,
        "GET",
        "/metrics",
        &server.addr.to_string(),
        &[],
        b"",
    )
    .expect("GET /metrics");
    assert_eq!(r.status, 200);
    let text = r.text();
    let count = |provider: &str, verified: &str| -> u64 {
        let prefix = format!(
            "edgepurge_verifications_total{{provider=\"{provider}\",verified=\"{verified}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    // Overwrite, delete, hot key: each records at least one of each below.
    assert!(count("edge", "fresh") >= 3, "{text}");
    assert!(count("deaf", "stale") >= 4, "{text}");
}

fn an_overwrite_is_verified_fresh_or_purged_again_then_stale(
    ceph: &Ceph,
    ep: &Edgepurge,
    edge: &Cache,
    deaf: &Cache,
) {
    let key = "img/hero 猫.png";
    ceph.put(BUCKET, key, "v1");
    // The first PUT's records are verified too (both caches fetch v1 from the origin).
    verified(ep, key, "edge", 1);
    warm(&[edge, deaf], key, "v1");
    let before = ep
        .log(&[])
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .max()
        .unwrap();
    ceph.put(BUCKET, key, "v2");
    let newer = |recs: Vec<Value>| -> Vec<Value> {
        recs.into_iter()
            .filter(|r| r["id"].as_i64().unwrap() > before)
            .collect()
    };

    // The purged cache serves v2: fresh, by the ETag Ceph gave in the event.
    let fresh = newer(verified(ep, key, "edge", 2));
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    let rec = &fresh[0];
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["verified"], "fresh", "{rec}");
    let etag = rec["etag"]
        .as_str()
        .expect("the event's ETag is kept")
        .to_owned();
    let md5 = etag.trim_matches('"');
    assert_eq!(md5.len(), 32, "Ceph's ETag is an MD5 hex: {etag}");
    let note = rec["verify_note"].as_str().unwrap();
    assert!(
        note.contains(&format!("node {}", edge.addr)) && note.contains(md5),
        "the note names the node and the ETag seen: {note}"
    );
    assert!(
        note.contains("X-Cache: MISS"),
        "refetched after the purge: {note}"
    );
    assert_eq!(edge.get(HOST, &path(key)).2, "v2");

    // The cache that ignores purges: stale, purged again as a new record, stale again.
    let deaf_recs = newer(verified(ep, key, "deaf", 3));
    assert_eq!(
        deaf_recs.len(),
        2,
        "the event's record and one re-purge: {deaf_recs:?}"
    );
    let (first, again) = (&deaf_recs[0], &deaf_recs[1]);
    for r in [first, again] {
        assert_eq!(r["status"], "succeeded", "the purge outcome is kept: {r}");
        assert_eq!(r["verified"], "stale", "{r}");
        assert_eq!(r["etag"], etag.as_str());
    }
    let first_note = first["verify_note"].as_str().unwrap();
    assert!(
        first_note.contains(&format!("purged again as #{}", again["id"])),
        "the stale record names its re-purge: {first_note}"
    );
    assert!(
        first_note.contains(&format!("node {}", deaf.addr)) && first_note.contains("X-Cache: HIT"),
        "{first_note}"
    );
    let again_note = again["verify_note"].as_str().unwrap();
    assert!(
        again_note.ends_with("(after 1 re-purge)") && !again_note.contains("purged again"),
        "bounded: one re-purge, then reported stale: {again_note}"
    );
    assert_eq!(again["rule"], "verified");
    assert_eq!(again["targets"], first["targets"]);
    // The re-purge went through the queue like any purge: a second request to the node.
    assert_eq!(
        deaf.get(HOST, &path(key)).2,
        "v1",
        "the deaf cache still serves v1"
    );
    // Nothing more: no third round.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        newer(
            ep.log(&[])
                .into_iter()
                .filter(|r| r["key"] == key && r["provider"] == "deaf")
                .collect()
        )
        .len(),
        2
    );
}

fn a_delete_is_fresh_when_the_cache_answers_404(
    ceph: &Ceph,
    ep: &Edgepurge,
    edge: &Cache,
    deaf: &Cache,
) {
    let key = "img/to-delete.css";
    ceph.put(BUCKET, key, "v1");
    verified(ep, key, "edge", 1);
    warm(&[edge, deaf], key, "v1");
    ceph.delete(BUCKET, key);
    let recs = verified(ep, key, "edge", 2);
    let rec = recs.last().unwrap();
    assert!(
        rec["event"].as_str().unwrap().starts_with("ObjectRemoved"),
        "{rec}"
    );
    assert_eq!(rec["verified"], "fresh", "{rec}");
    let note = rec["verify_note"].as_str().unwrap();
    assert!(note.contains("HTTP 404"), "{note}");
    // The deaf cache still serves the deleted object.
    let deaf_recs = verified(ep, key, "deaf", 3);
    let deleted = deaf_recs
        .iter()
        .find(|r| r["event"].as_str().unwrap().starts_with("ObjectRemoved"))
        .unwrap();
    assert_eq!(deleted["verified"], "stale", "{deleted}");
    assert!(
        deleted["verify_note"]
            .as_str()
            .unwrap()
            .contains("still served after the delete"),
        "{deleted}"
    );
}

/// A hot key: overwritten again before the first overwrite's purge is verified. The cache
/// then serves the newer copy, which is not the first event's: that record is not "stale"
/// (nor purged again); the newer record is verified on its own.
fn an_object_changed_again_is_not_reported_stale(ceph: &Ceph, ep: &Edgepurge) {
    let key = "hot.txt";
    ceph.put(BUCKET, key, "v1");
    verified(ep, key, "edge", 1);
    ceph.put(BUCKET, key, "v2");
    ceph.put(BUCKET, key, "v3");
    let recs = verified(ep, key, "edge", 3);
    assert_eq!(recs.len(), 3, "no re-purge: {recs:#?}");
    let v2 = &recs[1];
    let note = v2["verify_note"].as_str().unwrap();
    match v2["verified"].as_str() {
        // Verified before v3 was written.
        Some("fresh") => {}
        Some("unverifiable") => assert!(
            note.contains(&format!(
                "the object changed again since (record #{}",
                recs[2]["id"]
            )),
            "{note}"
        ),
        other => panic!("v2 is {other:?} ({note})"),
    }
    assert_eq!(recs[2]["verified"], "fresh", "{}", recs[2]);
}

fn an_event_without_a_validator_is_unverifiable(ep: &Edgepurge, server: &Server) {
    // An S3-shaped event with neither eTag nor size: nothing to compare with.
    let body = serde_json::json!({"Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "no-etag.txt"}}
    }]});
    server.send(body.to_string().as_bytes());
    let recs = verified(ep, "no-etag.txt", "edge", 1);
    assert_eq!(recs[0]["verified"], "unverifiable");
    assert_eq!(
        recs[0]["verify_note"],
        "no validator in the event (no ETag or size)"
    );
    // The purge itself goes ahead.
    let settled = ep.settle(Duration::from_secs(30));
    let rec = settled
        .iter()
        .find(|r| r["key"] == "no-etag.txt" && r["provider"] == "edge")
        .unwrap();
    assert_eq!(rec["status"], "succeeded");
}

fn the_log_shows_the_verification(ep: &Edgepurge) {
    let text = ep.ok(&["log", "--limit", "1000"]);
    assert!(
        text.lines()
            .any(|l| l.contains("provider=edge") && l.contains("verified=fresh (node ")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("provider=deaf")
            && l.contains("verified=stale (")
            && l.contains("(after 1 re-purge)")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l
                .contains("verified=unverifiable (no validator in the event (no ETag or size))")),
        "{text}"
    );
}

fn rule_add_takes_verify(ep: &Edgepurge) {
    ep.ok(&[
        "rule",
        "add",
        "--name",
        "cli-verified",
        "--bucket",
        "other",
        "--event",
        "put",
        "--domain",
        &format!("http://{HOST}/other"),
        "--provider",
        "edge",
        "--verify",
    ]);
    let json: Value =
        serde_json::from_str(&ep.ok(&["rule", "show", "cli-verified", "--json"])).unwrap();
    assert_eq!(json["verify"], true, "{json}");
    let toml = ep.ok(&["rule", "show", "cli-verified"]);
    assert!(toml.contains("verify = true"), "{toml}");
}
