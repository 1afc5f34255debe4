//! The purge lifecycle, "warmed", with real parts: a real Ceph RADOS Gateway sends its bucket
//! notifications to the real edgepurge binary, which purges two real Varnish caches. One rule
//! warms: after its purge completed, edgepurge GETs the URL through its cache (`hot`), so the
//! next visitor's GET is a hit with the new object. The other rule does not (`cold`): the next
//! visitor there is a miss. A rule asking `warm` of an account that cannot prefetch is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::caches::{Cache, CacheKind};
use edgepurge_testkit::ceph::Ceph;
use serde_json::Value;
use std::time::Duration;

const HOST: &str = "cdn.test";
const BUCKET: &str = "wrm";

fn path(key: &str) -> String {
    format!("/{BUCKET}/{}", edgepurge_core::urlpath::encode_path(key))
}

fn config(hot: &Cache, cold: &Cache) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 50
poll_ms = 100

[providers.hot]
kind = "http-purge"
preset = "varnish"
nodes = ["{hot}"]

[providers.cold]
kind = "http-purge"
preset = "varnish"
nodes = ["{cold}"]

[[rules]]
name = "warmed"
bucket = "{BUCKET}"
events = ["created", "removed"]
domains = ["http://{HOST}/{BUCKET}"]
provider = "hot"
warm = true

[[rules]]
name = "plain"
bucket = "{BUCKET}"
events = ["created", "removed"]
domains = ["http://{HOST}/{BUCKET}"]
provider = "cold"
"#,
        hot = hot.addr,
        cold = cold.addr
    )
}

/// The records of `key` through `provider`, oldest first, once there are at least `n` and
/// none is waiting (to be purged, or warmed when the rule warms).
fn settled(ep: &Edgepurge, key: &str, provider: &str, n: usize) -> Vec<Value> {
    edgepurge_testkit::wait_for(
        Duration::from_secs(60),
        &format!("{n} settled record(s) of {key} through {provider}"),
        || {
            let recs: Vec<Value> = ep
                .log(&[])
                .into_iter()
                .filter(|r| r["key"] == key && r["provider"] == provider)
                .collect();
            let done = recs.len() >= n
                && recs
                    .iter()
                    .all(|r| r["status"] == "succeeded" && r["warmed"] != "pending");
            done.then_some(recs)
        },
    )
}

/// Fills `cache` with `want` for `key` and checks the next GET is a hit.
fn fill(cache: &Cache, key: &str, want: &str) {
    for _ in 0..2 {
        let (status, _, body) = cache.get(HOST, &path(key));
        assert_eq!((status, body.as_str()), (200, want), "GET {key}");
    }
    assert_eq!(cache.get(HOST, &path(key)).1, Some(true), "{key} cached");
}

#[test]
fn a_warmed_url_is_a_cache_hit_with_the_new_object_after_an_overwrite() {
    let ceph = Ceph::start();
    let origin = ceph.rgw_addr();
    let hot = Cache::start(CacheKind::Varnish, origin);
    let cold = Cache::start(CacheKind::Varnish, origin);
    let ep = Edgepurge::new(&config(&hot, &cold));
    let server = ep.serve();
    let endpoint = format!("http://{}/v1/events?token={WEBHOOK_TOKEN}", server.addr);
    let topic = ceph.create_topic("warm", &endpoint, false);
    ceph.create_bucket(BUCKET);
    ceph.notify(BUCKET, &topic, None);

    let key = "img/hero 猫.png";
    ceph.put(BUCKET, key, "v1");
    settled(&ep, key, "hot", 1);
    settled(&ep, key, "cold", 1);
    fill(&hot, key, "v1");
    fill(&cold, key, "v1");

    ceph.put(BUCKET, key, "v2 is longer");
    let hot_recs = settled(&ep, key, "hot", 2);
    let rec = hot_recs.last().unwrap();
    assert_eq!(rec["warmed"], "warmed", "{rec}");
    let note = rec["warm_note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("node {}: HTTP 200", hot.addr)),
        "the note names the node and its answer: {note}"
    );
    assert!(
        note.contains("x-cache: MISS"),
        "fetched from the origin: {note}"
    );
    assert!(
        note.ends_with(", 12 bytes"),
        "the whole body was read: {note}"
    );
    assert!(ms(&rec["completed_at"]).is_some(), "{rec}");
    // The first visitor after the purge: a hit, with the new object.
    let (status, hit, body) = hot.get(HOST, &path(key));
    assert_eq!(
        (status, hit, body.as_str()),
        (200, Some(true), "v2 is longer")
    );

    // Without warming, the first visitor pays the miss.
    let cold_recs = settled(&ep, key, "cold", 2);
    assert!(
        cold_recs.iter().all(|r| r["warmed"].is_null()),
        "{cold_recs:?}"
    );
    let (status, hit, body) = cold.get(HOST, &path(key));
    assert_eq!(
        (status, hit, body.as_str()),
        (200, Some(false), "v2 is longer")
    );

    // A delete is purged, not warmed.
    ceph.delete(BUCKET, key);
    let recs = settled(&ep, key, "hot", 3);
    let gone = recs.last().unwrap();
    assert_eq!(gone["warmed"], "skipped", "{gone}");
    assert_eq!(gone["warm_note"], "a delete: nothing to prefetch");

    // The log says so, in text and JSON.
    let text = ep.ok(&["log", "--rule", "warmed"]);
    assert!(text.contains("warmed=warmed (node "), "{text}");
    assert!(text.contains("warmed=skipped (a delete"), "{text}");

    // Counted per account and outcome.
    let r = edgepurge_testkit::http::request(
        server.addr,
        "GET",
        "/metrics",
        &server.addr.to_string(),
        &[],
        b"",
    )
    .expect("GET /metrics");
    let text = r.text();
    let warmed_count = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("edgepurge_warmings_total{provider=\"hot\",warmed=\"warmed\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert_eq!(warmed_count, Some(2), "{text}");

    a_rule_cannot_warm_through_an_account_without_prefetch(&ep);
}

fn a_rule_cannot_warm_through_an_account_without_prefetch(ep: &Edgepurge) {
    // http-purge accounts can: the rule is added and shows warm.
    ep.ok(&[
        "rule",
        "add",
        "--name",
        "cli-warm",
        "--bucket",
        "other",
        "--event",
        "put",
        "--domain",
        &format!("http://{HOST}/other"),
        "--provider",
        "hot",
        "--warm",
    ]);
    let json: Value =
        serde_json::from_str(&ep.ok(&["rule", "show", "cli-warm", "--json"])).unwrap();
    assert_eq!(json["warm"], true, "{json}");
    // A dir rule has no URL to prefetch: refused, with why, and nothing stored.
    let out = ep.run(&[
        "rule",
        "add",
        "--name",
        "cli-warm-dir",
        "--bucket",
        "other",
        "--event",
        "put",
        "--domain",
        &format!("http://{HOST}/other"),
        "--provider",
        "hot",
        "--mode",
        "dir",
        "--allow-host-purge",
        "--warm",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warm = true needs mode = \"url\""), "{err}");
    assert!(!ep.ok(&["rule", "list"]).contains("cli-warm-dir"));
}
