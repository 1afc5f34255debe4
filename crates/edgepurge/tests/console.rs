//! The web console in a browser (headless Chromium driven by playwright-core,
//! testkit/console/console.test.js): the token asked for and kept for the tab, a rule added
//! with the server's refusal shown beside its field, enabled, disabled and deleted after
//! confirmation, a rule's log filtered by status, providers with their quota, no script
//! error and nothing fetched from elsewhere.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const CHROMIUM: &str = "/usr/bin/chromium-headless-shell";

#[test]
fn the_console_manages_rules_and_shows_the_log_in_a_browser() {
    let tests = edgepurge_testkit::repo_root().join("testkit/console");
    let chromium = std::env::var("EDGEPURGE_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    assert!(
        Path::new(&chromium).exists() && tests.join("node_modules/playwright-core").exists(),
        "{chromium} or {}/node_modules is missing: run scripts/setup-test-deps.sh",
        tests.display()
    );
    let fake = fake_tencent();
    let config = tencent_config(&fake, "", SITE_RULE).replace(
        "[store]",
        "[admin]\ntoken_env = \"EP_TEST_ADMIN_TOKEN\"\n\n[store]",
    );
    // Work queued through an account named "old", and through "oldedge" (two cache nodes:
    // stored once for them, never fanned out), which the config then no longer has: a lane
    // and fan-out targets nothing serves, for the console to show (and the lane to discard).
    let mut ep = Edgepurge::new(&format!(
        "{}\n[providers.oldedge]\nkind = \"http-purge\"\npreset = \"varnish\"\n\
         nodes = [\"127.0.0.1:9\", \"127.0.0.2:9\"]\n",
        config
            .replace("[providers.tencent]", "[providers.old]")
            .replace("provider = \"tencent\"", "provider = \"old\"")
    ));
    ep.ok(&[
        "purge",
        "--no-wait",
        "--provider",
        "old",
        "https://cdn.example.com/left.css",
    ]);
    ep.ok(&[
        "purge",
        "--no-wait",
        "--provider",
        "oldedge",
        "https://cdn.example.com/edge.css",
    ]);
    std::fs::write(&ep.config, &config).expect("write the config");
    ep.env
        .push(("EP_TEST_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    // The rule's record purged (the one of lane "old" stays queued: nothing serves it).
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the site purge", || {
        let log = ep.log(&["--rule", "site"]);
        (!log.is_empty() && log.iter().all(|r| r["status"] == "succeeded")).then_some(())
    });

    // Screenshots of the rule list and a rule's log: test artifacts (docs/console.png is one).
    let shots = edgepurge_testkit::repo_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("create target/console-screenshots");
    let out = Command::new("node")
        .arg(tests.join("console.test.js"))
        .current_dir(&tests)
        .env("EDGEPURGE_URL", format!("http://{}", server.addr))
        .env("EDGEPURGE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .expect("run node (Node.js is needed for the console test)");
    assert!(
        out.status.success(),
        "the console test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser did is in the store: the rule it added is gone again, the file's stays.
    let rules = ep.ok(&["rule", "list"]);
    assert!(
        rules.contains("site") && !rules.contains("ui-rule"),
        "{rules}"
    );
    // The browser discarded lane "old": its record is a dead letter with the reason.
    let left = ep.log(&["--status", "dead"]);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("not sent: discarded"),
        "{left:?}"
    );
    for name in ["rules.png", "log.png"] {
        let png = std::fs::read(shots.join(name)).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
}
