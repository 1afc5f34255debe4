//! `[[sources]] kind = "poll"` against the real Ceph RGW of the test kit: a bucket that sends
//! no notifications is listed every second; new, overwritten and deleted objects are purged
//! through the Tencent stand-in, what was there before the first listing is not, and a
//! restart compares with the listing kept in the store (no purge of everything again, and a
//! change made while edgepurge was down is still purged).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::ceph::{self, Ceph};
use std::time::Duration;

fn config(fake: &edgepurge_testkit::tencent::FakeTencent, ceph: &Ceph, extra: &str) -> String {
    tencent_config(fake, "", SITE_RULE)
        + &format!(
            "\n[[sources]]\nkind = \"poll\"\nendpoint = \"{}\"\nbucket = \"assets\"\n\
             interval_s = 1\naccess_key_id_env = \"RGW_KEY\"\nsecret_access_key_env = \
             \"RGW_SECRET\"\n{extra}",
            ceph.endpoint()
        )
}

fn with_keys(mut ep: Edgepurge) -> Edgepurge {
    ep.env.push(("RGW_KEY".into(), ceph::ACCESS_KEY.into()));
    ep.env.push(("RGW_SECRET".into(), ceph::SECRET_KEY.into()));
    ep
}

fn health(server: &Server) -> serde_json::Value {
    edgepurge_testkit::http::get(server.addr, "/healthz")
        .unwrap()
        .json()
}

/// Waits for one more complete listing than `after` (the `/healthz` counters move only when
/// something changed, so this waits for the log line instead: two seconds of listings).
fn listings_pass() {
    std::thread::sleep(Duration::from_millis(2500));
}

#[test]
fn a_bucket_that_sends_nothing_is_polled_and_its_changes_purged() {
    let ceph = Ceph::start();
    ceph.create_bucket("assets");
    ceph.put("assets", "old.png", "v1");
    ceph.put("assets", "keep.css", "v1");
    let fake = fake_tencent();
    let ep = with_keys(Edgepurge::new(&config(&fake, &ceph, "")));
    let mut server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the first listing", || {
        (health(&server)["sources"][0]["connected"] == true).then_some(())
    });
    listings_pass();
    assert!(
        fake.purged().is_empty(),
        "what was there before is not news"
    );

    ceph.put("assets", "new 猫+1.png", "v1");
    ceph.put("assets", "old.png", "v2");
    ceph.delete("assets", "keep.css");
    let purged = edgepurge_testkit::wait_for(Duration::from_secs(20), "three purges", || {
        let mut p = fake.purged();
        p.sort();
        p.dedup();
        (p.len() >= 3).then_some(p)
    });
    assert_eq!(
        purged,
        [
            "https://cdn.example.com/keep.css",
            "https://cdn.example.com/new%20%E7%8C%AB+1.png",
            "https://cdn.example.com/old.png",
        ]
    );
    let h = health(&server);
    assert_eq!(h["sources"][0]["kind"], "poll", "{h}");
    assert_eq!(h["sources"][0]["name"], "poll:assets", "{h}");
    assert_eq!(h["sources"][0]["acked"], 3, "{h}");
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 3, "{log:#?}");

    // Stopped, a change meanwhile, started again: only that change is purged.
    server.proc.terminate(Duration::from_secs(10));
    let before = fake.purged().len();
    ceph.put("assets", "while-down.js", "v1");
    let server = ep.serve();
    edgepurge_testkit::wait_for(
        Duration::from_secs(20),
        "the change made while down",
        || {
            fake.purged()
                .iter()
                .any(|u| u.ends_with("/while-down.js"))
                .then_some(())
        },
    );
    listings_pass();
    assert_eq!(
        fake.purged().len(),
        before + 1,
        "nothing else purged again: {:?}",
        fake.purged()
    );
    drop(server);
}

#[test]
fn a_listing_that_fails_purges_nothing_and_says_why() {
    let ceph = Ceph::start();
    ceph.create_bucket("assets");
    ceph.put("assets", "a.png", "v1");
    let fake = fake_tencent();
    let mut ep = Edgepurge::new(&config(&fake, &ceph, ""));
    ep.env.push(("RGW_KEY".into(), ceph::ACCESS_KEY.into()));
    ep.env.push(("RGW_SECRET".into(), "not-the-secret".into()));
    let server = ep.serve();
    let error = edgepurge_testkit::wait_for(Duration::from_secs(20), "the error", || {
        let h = health(&server);
        h["sources"][0]["last_error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("SignatureDoesNotMatch"), "{error}");
    assert!(error.contains("check the keys"), "{error}");
    assert!(!error.contains("not-the-secret"), "{error}");
    assert_eq!(health(&server)["status"], "degraded");
    assert!(fake.purged().is_empty());

    // `edgepurge status` asks the running server for its sources.
    let addr = server.addr.to_string();
    let text = ep.ok(&["status", "--server", &addr]);
    let row = text
        .lines()
        .find(|l| l.contains("poll:assets"))
        .unwrap_or_else(|| panic!("no source row: {text}"));
    assert!(
        row.contains("poll") && row.contains("false") && row.contains("SignatureDoesNotMatch"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ep.ok(&["status", "--json", "--server", &addr])).unwrap();
    assert_eq!(json["sources"][0]["name"], "poll:assets", "{json}");
    assert_eq!(json["sources"][0]["connected"], false, "{json}");
    assert!(json["lanes"].is_array(), "{json}");
    // No server there: said so, and the lanes are still shown.
    drop(server);
    let text = ep.ok(&["status", "--server", &addr]);
    assert!(text.contains("does not answer"), "{text}");
}

#[test]
fn listings_of_many_pages_and_a_prefix() {
    let ceph = Ceph::start();
    ceph.create_bucket("assets");
    // 1,000 keys a page: 1,203 objects under the prefix take two pages.
    let keys: Vec<String> = (0..1203).map(|i| format!("site/p{i:04}.html")).collect();
    ceph.put_many("assets", &keys, "v1");
    ceph.put("assets", "other/x.png", "v1");
    let fake = fake_tencent();
    let ep = with_keys(Edgepurge::new(&config(
        &fake,
        &ceph,
        "prefix = \"site/\"\n",
    )));
    let server = ep.serve();
    edgepurge_testkit::wait_for(Duration::from_secs(30), "the first listing", || {
        (health(&server)["sources"][0]["connected"] == true).then_some(())
    });
    ceph.delete("assets", "site/p1202.html");
    ceph.put("assets", "site/p0000.html", "v2");
    ceph.put("assets", "other/x.png", "v2");
    let purged = edgepurge_testkit::wait_for(Duration::from_secs(30), "two purges", || {
        let mut p = fake.purged();
        p.sort();
        p.dedup();
        (p.len() >= 2).then_some(p)
    });
    listings_pass();
    let mut all = fake.purged();
    all.sort();
    all.dedup();
    assert_eq!(purged, all, "outside the prefix: not listed, not purged");
    assert_eq!(
        all,
        [
            "https://cdn.example.com/site/p0000.html",
            "https://cdn.example.com/site/p1202.html",
        ]
    );
}
