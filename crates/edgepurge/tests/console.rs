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
    let mut ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE).replace(
        "[store]",
        "[admin]\ntoken_env = \"EP_TEST_ADMIN_TOKEN\"\n\n[store]",
    ));
    ep.env
        .push(("EP_TEST_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
    let server = ep.serve();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    ep.settle(Duration::from_secs(20));

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
    for name in ["rules.png", "log.png"] {
        let png = std::fs::read(shots.join(name)).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    }
}
