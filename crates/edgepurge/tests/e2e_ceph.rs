//! The real thing, end to end: a real Ceph RADOS Gateway sends its real bucket notifications
//! to the real edgepurge binary, which purges real Varnish (two nodes), Squid, Apache Traffic
//! Server and nginx caches; the next GET through each cache returns the new object.
//!
//! One test runs every scenario in order on one Ceph (it starts in about a second). Measured
//! latencies are printed (see docs/performance.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use edgepurge_testkit::caches::{Cache, CacheKind};
use edgepurge_testkit::ceph::Ceph;
use std::time::{Duration, Instant};

const HOST: &str = "cdn.test";

/// `/bucket/key` percent-encoded as a browser requests it.
fn path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", edgepurge_core::urlpath::encode_path(key))
}

struct Rig {
    ceph: Ceph,
    varnish_a: Cache,
    varnish_b: Cache,
    squid: Cache,
    ats: Cache,
    nginx: Cache,
    ep: Edgepurge,
    server: Server,
}

impl Rig {
    fn all(&self) -> Vec<(&str, &Cache)> {
        vec![
            ("varnish-a", &self.varnish_a),
            ("varnish-b", &self.varnish_b),
            ("squid", &self.squid),
            ("trafficserver", &self.ats),
            ("nginx", &self.nginx),
        ]
    }

    /// Fills every cache with the object and checks the second GET is a hit.
    fn warm(&self, bucket: &str, key: &str, want: &str) {
        let p = path(bucket, key);
        for (name, cache) in self.all() {
            let (status, _, body) = cache.get(HOST, &p);
            assert_eq!(
                (status, body.as_str()),
                (200, want),
                "{name}: first GET {p}"
            );
            let (status, hit, body) = cache.get(HOST, &p);
            assert_eq!(
                (status, body.as_str()),
                (200, want),
                "{name}: second GET {p}"
            );
            assert_eq!(hit, Some(true), "{name}: second GET of {p} is a cache hit");
        }
    }
}

fn config(caches: &[(&str, &Cache)]) -> String {
    let node = |c: &Cache| format!("\"{}\"", c.addr);
    let mut text = format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 100
backoff_base_ms = 200
backoff_max_ms = 1000
lane_lease_s = 2
poll_ms = 100
max_attempts = 100

[providers.varnish]
kind = "http-purge"
preset = "varnish"
nodes = [{}, {}]
timeout_s = 2

[providers.squid]
kind = "http-purge"
preset = "squid"
nodes = [{}]

[providers.trafficserver]
kind = "http-purge"
preset = "trafficserver"
nodes = [{}]

[providers.nginx]
kind = "http-purge"
preset = "nginx"
nodes = [{}]
"#,
        node(caches[0].1),
        node(caches[1].1),
        node(caches[2].1),
        node(caches[3].1),
        node(caches[4].1),
    );
    for provider in ["varnish", "squid", "trafficserver", "nginx"] {
        text.push_str(&format!(
            r#"
[[rules]]
name = "e2e-{provider}"
bucket = "e2e"
events = ["created", "removed"]
domains = ["http://{HOST}/e2e"]
provider = "{provider}"

[[rules]]
name = "nowait-{provider}"
bucket = "nowait"
events = ["created", "removed"]
domains = ["http://{HOST}/nowait"]
provider = "{provider}"

[[rules]]
name = "persist-{provider}"
bucket = "persist"
events = ["created", "removed"]
domains = ["http://{HOST}/persist"]
provider = "{provider}"
"#
        ));
    }
    text.push_str(&format!(
        r#"
[[rules]]
name = "docs-dir"
bucket = "e2e"
events = ["created"]
prefix = "docs/"
domains = ["http://{HOST}/e2e"]
provider = "varnish"
mode = "dir"

[[rules]]
name = "tagged"
bucket = "e2e"
events = ["created"]
prefix = "tagged/"
domains = ["http://{HOST}/e2e"]
provider = "varnish"
mode = "tag"
tags = ["{{seg1}}"]
"#
    ));
    text
}

#[test]
fn ceph_notifications_purge_real_caches() {
    let t0 = Instant::now();
    let ceph = Ceph::start();
    eprintln!("ceph up in {:?}", t0.elapsed());
    let origin = ceph.rgw_addr();
    let varnish_a = Cache::start(CacheKind::Varnish, origin);
    let varnish_b = Cache::start(CacheKind::Varnish, origin);
    let squid = Cache::start(CacheKind::Squid, origin);
    let ats = Cache::start(CacheKind::TrafficServer, origin);
    let nginx = Cache::start(CacheKind::Nginx, origin);
    let caches = [
        ("a", &varnish_a),
        ("b", &varnish_b),
        ("s", &squid),
        ("t", &ats),
        ("n", &nginx),
    ];
    let ep = Edgepurge::new(&config(&caches));
    let server = ep.serve();
    let mut rig = Rig {
        ceph,
        varnish_a,
        varnish_b,
        squid,
        ats,
        nginx,
        ep,
        server,
    };
    eprintln!("everything up in {:?}", t0.elapsed());

    // Synchronous topic, and the uploader waits for the purge: the PUT returns fresh.
    let endpoint = format!(
        "http://{}/v1/events?token={WEBHOOK_TOKEN}&wait=purged&timeout_ms=3000",
        rig.server.addr
    );
    let sync_topic = rig.ceph.create_topic("sync-purge", &endpoint, false);
    rig.ceph.create_bucket("e2e");
    rig.ceph.notify("e2e", &sync_topic, None);

    read_after_write_is_fresh_through_every_cache(&rig);
    a_delete_purges_so_the_next_get_misses(&rig);
    a_dir_rule_bans_the_whole_prefix_on_both_varnish_nodes(&rig);
    a_tag_rule_purges_by_surrogate_key(&rig);
    a_node_that_is_down_is_retried_until_it_is_back(&mut rig);
    persistent_topics_purge_asynchronously(&rig);
    measure_put_to_fresh_get(&rig);
    no_event_was_refused(&rig);
    eprintln!("all scenarios in {:?}", t0.elapsed());
}

fn read_after_write_is_fresh_through_every_cache(rig: &Rig) {
    let key = "img/hero image+1 猫.png";
    rig.ceph.put("e2e", key, "v1");
    rig.warm("e2e", key, "v1");
    let took = rig.ceph.put("e2e", key, "v2");
    let p = path("e2e", key);
    for (name, cache) in rig.all() {
        let (status, hit, body) = cache.get(HOST, &p);
        assert_eq!(
            (status, body.as_str()),
            (200, "v2"),
            "{name}: GET right after PUT v2"
        );
        assert_eq!(hit, Some(false), "{name}: refetched from the origin");
    }
    eprintln!("PERF sync topic + wait=purged: PUT v2 returned in {took:?}, next GET fresh on all 5 caches");
    let log = rig.ep.log(&["--rule", "e2e-varnish"]);
    let rec = log
        .iter()
        .rev()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no log record for {key}: {log:?}"));
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["format"], "ceph");
    assert_eq!(
        rec["targets"][0], "http://cdn.test/e2e/img/hero%20image+1%20%E7%8C%AB.png",
        "raw Ceph key encoded once"
    );
}

fn a_delete_purges_so_the_next_get_misses(rig: &Rig) {
    let key = "img/to-delete.css";
    rig.ceph.put("e2e", key, "v1");
    rig.warm("e2e", key, "v1");
    rig.ceph.delete("e2e", key);
    let p = path("e2e", key);
    for (name, cache) in rig.all() {
        let (status, hit, _) = cache.get(HOST, &p);
        assert_eq!(status, 404, "{name}: GET after DELETE reaches the origin");
        assert_ne!(hit, Some(true), "{name}");
    }
}

fn a_dir_rule_bans_the_whole_prefix_on_both_varnish_nodes(rig: &Rig) {
    rig.ceph.put("e2e", "docs/a.html", "a1");
    rig.ceph.put("e2e", "docs/b.html", "b1");
    for key in ["docs/a.html", "docs/b.html"] {
        for cache in [&rig.varnish_a, &rig.varnish_b] {
            cache.get(HOST, &path("e2e", key));
            assert_eq!(cache.get(HOST, &path("e2e", key)).1, Some(true));
        }
    }
    // Only a.html changes; the rule purges its directory, so b.html is refetched too.
    rig.ceph.put("e2e", "docs/a.html", "a2");
    for (name, cache) in [("varnish-a", &rig.varnish_a), ("varnish-b", &rig.varnish_b)] {
        let (_, hit, body) = cache.get(HOST, &path("e2e", "docs/a.html"));
        assert_eq!((hit, body.as_str()), (Some(false), "a2"), "{name}");
        let (_, hit, body) = cache.get(HOST, &path("e2e", "docs/b.html"));
        assert_eq!(
            (hit, body.as_str()),
            (Some(false), "b1"),
            "{name}: banned with its directory"
        );
    }
    let reqs = rig.ep.ok(&["log", "--requests", "--json"]);
    assert!(
        reqs.contains("\"kind\":\"dir\""),
        "a dir (BAN) request was logged"
    );
}

fn a_tag_rule_purges_by_surrogate_key(rig: &Rig) {
    // Varnish tags each object with its first path segment ("tagged"); a change to one
    // object purges every object with that tag.
    rig.ceph.put("e2e", "tagged/one.js", "one1");
    rig.ceph.put("e2e", "tagged/two.js", "two1");
    for key in ["tagged/one.js", "tagged/two.js"] {
        rig.varnish_a.get(HOST, &path("e2e", key));
        assert_eq!(rig.varnish_a.get(HOST, &path("e2e", key)).1, Some(true));
    }
    rig.ceph.put("e2e", "tagged/one.js", "one2");
    let (_, hit, _) = rig.varnish_a.get(HOST, &path("e2e", "tagged/two.js"));
    assert_eq!(
        hit,
        Some(false),
        "the sibling with the same surrogate key was purged"
    );
}

fn a_node_that_is_down_is_retried_until_it_is_back(rig: &mut Rig) {
    // Only varnish B goes down; its purges queue up and go through once it is back, while
    // varnish A and the other caches are purged at once.
    let key = "img/while-b-is-down.png";
    rig.ceph.put("e2e", key, "v1");
    rig.warm("e2e", key, "v1");
    rig.varnish_b.stop();
    let took = rig.ceph.put("e2e", key, "v2");
    assert!(
        took >= Duration::from_millis(2500),
        "the waiting PUT timed out on node B: {took:?}"
    );
    let p = path("e2e", key);
    for (name, cache) in rig.all().into_iter().filter(|(n, _)| *n != "varnish-b") {
        let (_, _, body) = cache.get(HOST, &p);
        assert_eq!(body, "v2", "{name} is unaffected by node B being down");
    }
    std::thread::sleep(Duration::from_secs(2));
    let rec = rig
        .ep
        .log(&["--rule", "e2e-varnish"])
        .into_iter()
        .rev()
        .find(|r| r["key"] == key)
        .unwrap();
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"].as_str().unwrap().contains("connection failed"),
        "{rec}"
    );

    rig.varnish_b.restart();
    edgepurge_testkit::wait_for(
        Duration::from_secs(30),
        "node B's purge after restart",
        || {
            rig.ep
                .log(&["--rule", "e2e-varnish"])
                .into_iter()
                .rev()
                .find(|r| r["key"] == key)
                .filter(|r| r["status"] == "succeeded")
        },
    );
    let reqs = rig.ep.ok(&["log", "--requests", "--json"]);
    let b_lane = format!("varnish@{}", rig.varnish_b.addr);
    let b_attempts = reqs
        .lines()
        .filter(|l| l.contains(&b_lane) && l.contains("\"outcome\":\"retry\""))
        .count();
    assert!(
        b_attempts >= 1,
        "node B's purge was retried while it was down"
    );
}

fn persistent_topics_purge_asynchronously(rig: &Rig) {
    // Persistent topic: queued in RADOS and retried by Ceph; the PUT does not wait.
    let endpoint = format!("http://{}/v1/events?token={WEBHOOK_TOKEN}", rig.server.addr);
    let topic = rig.ceph.create_topic("persistent-purge", &endpoint, true);
    rig.ceph.create_bucket("persist");
    rig.ceph.notify("persist", &topic, None);
    let key = "img/persistent.png";
    rig.ceph.put("persist", key, "v1");
    rig.warm("persist", key, "v1");
    let took = rig.ceph.put("persist", key, "v2");
    let start = Instant::now();
    let p = path("persist", key);
    let fresh = edgepurge_testkit::wait_for(Duration::from_secs(90), "persistent purge", || {
        rig.all()
            .iter()
            .all(|(_, c)| c.get(HOST, &p).2 == "v2")
            .then(|| start.elapsed())
    });
    eprintln!(
        "PERF persistent topic: PUT v2 returned in {took:?}; all 5 caches fresh {fresh:?} after it"
    );
}

fn no_event_was_refused(rig: &Rig) {
    let log = rig.ep.log(&[]);
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|r| r["status"] != "dead"),
        "no purge was given up: {log:?}"
    );
}

/// PUT request start → every cache serves the new body (checked every 50 ms), for each way
/// Ceph can deliver.
fn put_to_fresh(rig: &Rig, bucket: &str, key: &str, body: &str) -> (Duration, Duration) {
    let p = path(bucket, key);
    let (put, started) = rig.ceph.put_timed(bucket, key, body);
    let fresh = edgepurge_testkit::wait_for(Duration::from_secs(90), "fresh content", || {
        rig.all()
            .iter()
            .all(|(_, c)| c.get(HOST, &p).2 == body)
            .then(|| started.elapsed().unwrap_or_default())
    });
    (put, fresh)
}

fn measure_put_to_fresh_get(rig: &Rig) {
    let nowait = format!("http://{}/v1/events?token={WEBHOOK_TOKEN}", rig.server.addr);
    let topic = rig.ceph.create_topic("sync-nowait", &nowait, false);
    rig.ceph.create_bucket("nowait");
    rig.ceph.notify("nowait", &topic, None);
    let modes: [(&str, &str, usize); 3] = [
        ("synchronous topic, ?wait=purged", "e2e", 5),
        ("synchronous topic, no wait", "nowait", 5),
        ("persistent topic", "persist", 3),
    ];
    for (label, bucket, rounds) in modes {
        let key = format!("perf/{bucket}.txt");
        rig.ceph.put(bucket, &key, "v0");
        std::thread::sleep(Duration::from_millis(300));
        let mut puts = Vec::new();
        let mut fresh = Vec::new();
        for i in 1..=rounds {
            rig.warm_quietly(bucket, &key);
            let (put, f) = put_to_fresh(rig, bucket, &key, &format!("v{i}"));
            puts.push(put);
            fresh.push(f);
        }
        fresh.sort();
        puts.sort();
        eprintln!(
            "PERF {label}: PUT returned in median {:?}; PUT start -> all 5 caches fresh: \
             min {:?}, median {:?}, max {:?} ({rounds} rounds)",
            puts[rounds / 2],
            fresh[0],
            fresh[rounds / 2],
            fresh[rounds - 1]
        );
        if bucket == "e2e" {
            assert!(
                fresh[rounds - 1] < Duration::from_secs(2),
                "with wait=purged the first GET after the PUT is fresh"
            );
        }
    }
}

impl Rig {
    /// Makes sure every cache holds the current object (so the next change must be purged).
    fn warm_quietly(&self, bucket: &str, key: &str) {
        let p = path(bucket, key);
        for (_, cache) in self.all() {
            cache.get(HOST, &p);
        }
    }
}
