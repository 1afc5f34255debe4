//! The `http-purge` provider against a real Varnish node: a node that refuses some purges
//! gets only those again (after its `Retry-After`), what it accepted is not purged twice, and
//! the request log shows the node's real status.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use edgepurge_testkit::caches::{Cache, CacheKind};
use std::time::Duration;

#[test]
fn a_node_that_refuses_some_urls_gets_only_those_again_after_its_retry_after() {
    // Purges never reach the origin: an address where nothing listens will do.
    let origin = edgepurge_testkit::loopback(edgepurge_testkit::free_port());
    let varnish = Cache::start(CacheKind::Varnish, origin);
    let ep = Edgepurge::new(&format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
[dispatch]
linger_ms = 300
backoff_base_ms = 100
backoff_max_ms = 200
poll_ms = 100
max_attempts = 3

[providers.edge]
kind = "http-purge"
preset = "varnish"
nodes = ["{node}"]

[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["http://cdn.test"]
provider = "edge"
"#,
        node = varnish.addr
    ));
    let server = ep.serve();
    let keys: Vec<String> = ["a/1.png", "busy-node/2.png", "a/3.png"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let log = ep.settle(Duration::from_secs(30));
    let by_key = |k: &str| log.iter().find(|r| r["key"] == k).unwrap().clone();
    for k in ["a/1.png", "a/3.png"] {
        let r = by_key(k);
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["attempts"], 1, "accepted once, never resent: {r}");
    }
    let busy = by_key("busy-node/2.png");
    assert_eq!(busy["status"], "dead", "{busy}");
    assert_eq!(busy["attempts"], 3, "{busy}");
    assert!(
        busy["error"]
            .as_str()
            .is_some_and(|e| e.contains("503") && e.contains("busy-node/2.png")),
        "{busy}"
    );

    let requests: Vec<serde_json::Value> = ep
        .ok(&["log", "--requests", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut requests = requests;
    requests.sort_by_key(|r| ms(&r["started_at"]));
    assert_eq!(requests.len(), 3, "{requests:?}");
    // The first request carried all three and the node answered 200 for two of them.
    assert_eq!(requests[0]["targets"], 3);
    assert_eq!(requests[0]["http_status"], 200, "{}", requests[0]);
    // Then only the refused URL, each time after the node's Retry-After (2 s).
    for pair in requests.windows(2) {
        assert_eq!(pair[1]["targets"], 1, "{}", pair[1]);
        let gap = ms(&pair[1]["started_at"]).unwrap() - ms(&pair[0]["finished_at"]).unwrap();
        assert!(gap >= 1900, "Retry-After honoured: resent {gap} ms later");
    }
    assert_eq!(requests[2]["http_status"], 503);
    drop(server);
}
