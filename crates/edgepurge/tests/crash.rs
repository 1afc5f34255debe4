//! Invariant 1: nothing accepted is lost. A SIGKILL at any moment between the 200 and the
//! purge loses no event: after a restart everything acknowledged is purged.

mod common;

use common::*;
use edgepurge_testkit::tencent::{FakeTencent, Options};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn urls(keys: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    keys.into_iter()
        .map(|k| format!("https://cdn.example.com/{k}"))
        .collect()
}

#[test]
fn sigkill_while_a_request_is_in_flight_resends_it_after_restart() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "concurrency = 1", SITE_RULE));
    let mut server = ep.serve();
    fake.delay(30_000, 1); // the first purge hangs: in flight when we kill

    let first: Vec<String> = (0..50).map(|i| format!("crash/a{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &first));
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the first purge in flight", || {
        fake.requests()
            .iter()
            .any(|r| r["action"] == "PurgeUrlsCache")
            .then_some(())
    });
    let second: Vec<String> = (0..50).map(|i| format!("crash/b{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &second));
    server.proc.kill9();

    // Restart on the same store: once the dead process's lane lease runs out, the batch it
    // left in flight is resent and the queued one sent.
    let _server = ep.serve();
    let want = urls(first.iter().chain(&second).cloned());
    edgepurge_testkit::wait_for(
        Duration::from_secs(30),
        "every acknowledged URL purged",
        || {
            let got: BTreeSet<String> = fake.purged().into_iter().collect();
            want.is_subset(&got).then_some(())
        },
    );
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 100, "one record per acknowledged event");
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    for rec in &log {
        let in_flight_batch = rec["key"].as_str().unwrap().starts_with("crash/a");
        let want = if in_flight_batch { 2 } else { 1 };
        assert_eq!(rec["attempts"], want, "{rec}");
    }
}

#[test]
fn sigkill_during_an_ingest_burst_loses_no_acknowledged_event() {
    // A burst of this size exceeds the default 10,000 URLs a day: raise the quota.
    let fake = FakeTencent::start(Options {
        url_quota: Some(10_000_000),
        ..Default::default()
    });
    let ep = Edgepurge::new(&tencent_config(&fake, "url_daily_quota = 0", SITE_RULE));
    let mut server = ep.serve();
    let addr = server.addr;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..4 {
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        senders.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let keys: Vec<String> = (0..5).map(|j| format!("burst/t{t}/{i}-{j}.js")).collect();
                let body = ceph_body("assets", "ObjectCreated:Put", &keys);
                let auth = format!("Bearer {WEBHOOK_TOKEN}");
                let r = edgepurge_testkit::http::request(
                    addr,
                    "POST",
                    "/v1/events",
                    &addr.to_string(),
                    &[("Authorization", auth.as_str())],
                    &body,
                );
                match r {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().extend(keys),
                    _ => {} // refused or cut off by the kill: not acknowledged
                }
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    server.proc.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the burst got going: {} acknowledged",
        acked.len()
    );

    let _server = ep.serve();
    let want = urls(acked.iter().cloned());
    eprintln!("acknowledged {} URLs before the kill", want.len());
    edgepurge_testkit::wait_for(
        Duration::from_secs(60),
        "every acknowledged URL purged",
        || {
            let got: BTreeSet<String> = fake.purged().into_iter().collect();
            want.is_subset(&got).then_some(())
        },
    );
    let logged: BTreeSet<String> = ep
        .log(&[])
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    for key in &acked {
        assert!(logged.contains(key), "acknowledged {key} is not in the log");
    }
}
