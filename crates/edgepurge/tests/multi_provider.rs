//! A rule that names several provider accounts (`providers = ["tencent", "cf"]`): each
//! account is purged on its own lane and logged on its own record, so one CDN's outage never
//! delays the other's purges. Run against the Tencent and CloudFront stand-ins, which check
//! every signature.

mod common;

use common::*;
use edgepurge_testkit::cloudfront::FakeCloudFront;
use edgepurge_testkit::wait_for;
use serde_json::Value;
use std::time::Duration;

const BOTH_RULE: &str = r#"
[[rules]]
name = "both"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
providers = ["tencent", "cf"]
"#;

/// Tencent (`tencent`) and CloudFront (`cf`) accounts pointing at the stand-ins, and `rules`.
fn edgepurge(
    tencent: &edgepurge_testkit::tencent::FakeTencent,
    cf: &FakeCloudFront,
    rules: &str,
) -> Edgepurge {
    Edgepurge::new(&tencent_config(tencent, &cloudfront_section(cf), rules)).with_cloudfront_keys()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("img/{i} 猫.png")).collect()
}

fn by_provider<'a>(log: &'a [Value], provider: &str) -> Vec<&'a Value> {
    log.iter().filter(|r| r["provider"] == provider).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn one_event_purges_through_every_account_and_logs_each() {
    let tencent = fake_tencent();
    let cf = fake_cloudfront();
    let ep = edgepurge(&tencent, &cf, BOTH_RULE);
    let server = ep.serve();
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(3)));
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["targets"], 6, "each URL once per account");

    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 6, "{log:#?}");
    for provider in ["tencent", "cf"] {
        let records = by_provider(&log, provider);
        assert_eq!(records.len(), 3, "{provider}: {log:#?}");
        assert!(
            records
                .iter()
                .all(|r| r["status"] == "succeeded" && r["rule"] == "both"),
            "{provider}: {records:#?}"
        );
    }
    let urls: Vec<String> = keys(3)
        .iter()
        .map(|k| {
            format!(
                "https://cdn.example.com/{}",
                k.replace(' ', "%20").replace('猫', "%E7%8C%AB")
            )
        })
        .collect();
    assert_eq!(sorted(tencent.purged()), sorted(urls.clone()));
    let paths: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("https://cdn.example.com").to_owned())
        .collect();
    assert_eq!(sorted(cf.invalidated()), sorted(paths));
}

#[test]
fn one_accounts_outage_does_not_delay_the_other() {
    let tencent = fake_tencent();
    let cf = fake_cloudfront();
    let ep = edgepurge(&tencent, &cf, BOTH_RULE);
    tencent.outage(Some(503));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(2)));

    // CloudFront's records finish while Tencent's lane is still failing.
    let log = wait_for(
        Duration::from_secs(15),
        "CloudFront's records to succeed",
        || {
            let log = ep.log(&[]);
            let cf_done = by_provider(&log, "cf").len() == 2
                && by_provider(&log, "cf")
                    .iter()
                    .all(|r| r["status"] == "succeeded");
            cf_done.then_some(log)
        },
    );
    assert_eq!(cf.invalidated().len(), 2);
    assert!(
        by_provider(&log, "tencent")
            .iter()
            .all(|r| r["status"] != "succeeded"),
        "{log:#?}"
    );
    assert!(tencent.purged().is_empty());

    // Tencent answers again: its records catch up on their own.
    tencent.outage(None);
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:#?}");
    assert_eq!(tencent.purged().len(), 2);
    assert_eq!(
        cf.invalidations().len(),
        1,
        "CloudFront was not called again"
    );
}

#[test]
fn rule_add_takes_several_providers_and_refuses_an_unknown_one() {
    let tencent = fake_tencent();
    let cf = fake_cloudfront();
    let ep = edgepurge(&tencent, &cf, "");
    let server = ep.serve();
    let add = |providers: &str| {
        ep.run(&[
            "rule",
            "add",
            "--name",
            "both",
            "--bucket",
            "assets",
            "--event",
            "created",
            "--domain",
            "https://cdn.example.com",
            "--provider",
            providers,
        ])
    };
    let refused = add("tencent,cfx");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("provider \"cfx\" is not defined")
            && stderr.contains("did you mean \"cf\""),
        "{stderr}"
    );
    let added = add("tencent,cf");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let list = ep.ok(&["rule", "list"]);
    assert!(list.contains("tencent,cf"), "{list}");
    let show = ep.ok(&["rule", "show", "both"]);
    let compact: String = show.split_whitespace().collect();
    assert!(
        compact.contains("providers=[\"tencent\",\"cf\",]"),
        "{show}"
    );
    assert!(!show.contains("provider ="), "{show}");

    // The server picks the rule up within a second and purges through both accounts.
    wait_for(Duration::from_secs(10), "the rule to apply", || {
        let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys(1)));
        (answer["targets"] == 2).then_some(())
    });
    let log = ep.settle(Duration::from_secs(20));
    assert!(by_provider(&log, "tencent")
        .iter()
        .any(|r| r["status"] == "succeeded"));
    assert!(by_provider(&log, "cf")
        .iter()
        .any(|r| r["status"] == "succeeded"));
}
