//! The command line: first run on defaults, config check, simulate, rules, log.

mod common;

use common::*;
use edgepurge_testkit::http;
use edgepurge_testkit::process::Proc;
use edgepurge_testkit::tencent::{FakeTencent, Options};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bare_command(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepurge"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("EDGEPURGE_CONFIG")
        .env_remove("EDGEPURGE_DB");
    cmd
}

#[test]
fn serve_without_a_config_starts_on_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bare_command(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    let log = dir.path().join("stderr.log");
    cmd.stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let (mut proc, line) =
        Proc::spawn_until("edgepurge serve", cmd, Duration::from_secs(20), |l| {
            l.starts_with("listening on ")
        });
    let addr: std::net::SocketAddr = line["listening on ".len()..].parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert!(
        dir.path().join("edgepurge.db").exists(),
        "SQLite store in the working directory"
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains("loopback callers only"), "{stderr}");
    let body = ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]);
    let r = http::request(addr, "POST", "/v1/events", "x", &[], &body).unwrap();
    assert_eq!(
        r.status,
        200,
        "loopback callers need no token: {}",
        r.text()
    );
    assert_eq!(
        proc.terminate(Duration::from_secs(15)),
        Some(0),
        "clean exit on SIGTERM"
    );
    let out = bare_command(dir.path(), &["log", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"status\":\"skipped\""), "{text}");
}

#[test]
fn config_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../edgepurge.example.toml"),
        dir.path().join("ok.toml"),
    )
    .unwrap();
    // The example names its credentials' variables; config check wants them set.
    let out = bare_command(dir.path(), &["config", "check", "--config", "ok.toml"])
        .env("TENCENTCLOUD_SECRETID", "dummy-id")
        .env("TENCENTCLOUD_SECRETKEY", "dummy-key")
        .env("EDGEPURGE_WEBHOOK_TOKEN", "dummy-webhook-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 provider(s), 1 rule(s)"));

    std::fs::write(
        dir.path().join("bad.toml"),
        "[dispatch]\nlinger_ms = 1\nmax_attempts = 0\n[[rules]]\nname = \"x\"\nbucket = \"b\"\nevents = [\"put\"]\ndomains = [\"cdn\"]\nprovider = \"p\"\n",
    )
    .unwrap();
    let out = bare_command(dir.path(), &["config", "check", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dispatch.max_attempts: must be at least 1"),
        "{err}"
    );
    assert!(err.contains("rules[0]: rule \"x\": domains:"), "{err}");
    // Every problem of one rule, not only its first.
    assert!(
        err.contains("rules[0]: rule \"x\": provider \"p\" is not defined"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok"));
}

fn sim_env() -> (FakeTencent, Edgepurge) {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(
        &fake,
        "",
        r#"
[[rules]]
name = "imgs"
bucket = "assets"
events = ["created"]
prefix = "img/"
domains = ["https://cdn.example.com", "http://img.example.com/base"]
provider = "tencent"
index_document = "index.html"

[[rules]]
name = "docs"
bucket = "assets"
events = ["removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
mode = "dir"
allow_host_purge = true
"#,
    ));
    (fake, ep)
}

#[test]
fn simulate_prints_one_json_line_per_target() {
    let (_fake, ep) = sim_env();
    let event = ep.dir.path().join("e.json");
    std::fs::write(
        &event,
        ceph_body(
            "assets",
            "ObjectCreated:Put",
            &["img/猫 1.png".into(), "img/index.html".into()],
        ),
    )
    .unwrap();
    let out = ep.ok(&["simulate", "--event", event.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let targets: Vec<&str> = lines
        .iter()
        .map(|l| l["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        vec![
            "https://cdn.example.com/img/%E7%8C%AB%201.png",
            "http://img.example.com/base/img/%E7%8C%AB%201.png",
            "https://cdn.example.com/img/index.html",
            "https://cdn.example.com/img/",
            "http://img.example.com/base/img/index.html",
            "http://img.example.com/base/img/",
        ]
    );
    assert!(lines
        .iter()
        .all(|l| l["rule"] == "imgs" && l["provider"] == "tencent" && l["kind"] == "url"));

    std::fs::write(
        &event,
        ceph_body("assets", "ObjectRemoved:Delete", &["a/b/c.css".into()]),
    )
    .unwrap();
    let out = ep.ok(&["simulate", "--event", event.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        r#"{"kind":"dir","provider":"tencent","rule":"docs","target":"https://cdn.example.com/a/b/"}"#
    );

    // No target: no line, success.
    std::fs::write(
        &event,
        ceph_body("assets", "ObjectCreated:Put", &["img/folder/".into()]),
    )
    .unwrap();
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("ObjectCreated:Put assets/img/folder/") && why.contains("folder marker"),
        "{why}"
    );

    // A `..` segment addresses no URL: said why, and with --json on standard output too.
    std::fs::write(
        &event,
        ceph_body("assets", "ObjectCreated:Put", &["img/../secret.png".into()]),
    )
    .unwrap();
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'..' path segment"));
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let why: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(why["key"], "img/../secret.png");
    assert_eq!(why["purges_nothing"], "the matching rules give no target");
    assert_eq!(why["rules"][0]["rule"], "imgs");
    assert!(
        why["rules"][0]["why"].as_str().unwrap().contains("'..'"),
        "{why}"
    );

    // Nothing matches: each rule says why.
    std::fs::write(
        &event,
        ceph_body("other-bucket", "ObjectCreated:Put", &["img/a.png".into()]),
    )
    .unwrap();
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("no rule matches"), "{why}");
    assert!(
        why.contains("rule \"imgs\": bucket \"other-bucket\" is not the rule's \"assets\""),
        "{why}"
    );
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let why: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(why["purges_nothing"], "no rule matches");
    let rules = why["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "every rule says why: {why}");
    assert!(rules.iter().any(|r| r["rule"] == "imgs"
        && r["why"] == "bucket \"other-bucket\" is not the rule's \"assets\""));

    // Unparseable: non-zero with the reason.
    std::fs::write(&event, "{\"Records\": [{\"s3\": {}}]}").unwrap();
    let out = ep.run(&["simulate", "--event", event.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Records[0].eventName: missing"));
    // Nothing was stored or sent by simulate.
    assert!(!ep.dir.path().join("edgepurge.db").exists());
}

#[test]
fn the_readme_simulate_example_says_why_nothing_matches() {
    // The README's "try a rule" command: the example config and the COS fixture, whose
    // buckets differ. Nothing to purge, exit 0, and the rule says why.
    let dir = tempfile::tempdir().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = bare_command(
        dir.path(),
        &[
            "simulate",
            "--config",
            &format!("{root}/edgepurge.example.toml"),
            "--event",
            &format!("{root}/crates/edgepurge-core/fixtures/events/cos-put.json"),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("purges nothing: no rule matches")
            && why.contains(
                "rule \"site-images\": bucket \"testpic-1253970026\" is not the rule's \
                 \"assets-1250000000\""
            ),
        "{why}"
    );
}

#[test]
fn rules_are_managed_from_the_cli_and_a_running_server_follows() {
    let (fake, ep) = sim_env();
    let server = ep.serve();
    // Config rules are listed and read-only.
    let list = ep.ok(&["rule", "list"]);
    assert!(list.contains("imgs") && list.contains("config"), "{list}");
    let out = ep.run(&["rule", "delete", "imgs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("comes from the config file"));

    // Nothing matches bucket "media" yet.
    server.send(&ceph_body(
        "media",
        "ObjectCreated:Put",
        &["v/1.mp4".into()],
    ));
    assert_eq!(ep.log(&["--status", "skipped"]).len(), 1);

    ep.ok(&[
        "rule",
        "add",
        "--name",
        "media",
        "--bucket",
        "media",
        "--event",
        "put,delete",
        "--suffix",
        ".mp4",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
    ]);
    let dup = ep.run(&[
        "rule",
        "add",
        "--name",
        "media",
        "--bucket",
        "x",
        "--event",
        "put",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
    ]);
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let bad = ep.run(&[
        "rule",
        "add",
        "--name",
        "m2",
        "--bucket",
        "x",
        "--event",
        "put",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("provider \"nope\" is not defined"));
    let show = ep.ok(&["rule", "show", "media"]);
    assert!(
        show.contains("suffix = \".mp4\"") && show.contains("# origin: cli"),
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ep.ok(&["rule", "show", "media", "--json"])).unwrap();
    assert_eq!(json["events"], serde_json::json!(["put", "delete"]));

    // The running server applies it within about a second.
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the new rule to apply", || {
        server.send(&ceph_body(
            "media",
            "ObjectCreated:Put",
            &["v/2.mp4".into()],
        ));
        ep.log(&["--rule", "media"]).first().cloned()
    });
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the purge", || {
        fake.purged()
            .contains(&"https://cdn.example.com/v/2.mp4".to_owned())
            .then_some(())
    });

    ep.ok(&["rule", "disable", "media"]);
    let list = ep.ok(&["rule", "list", "--json"]);
    assert!(list.contains("\"enabled\":false"), "{list}");
    ep.ok(&["rule", "enable", "media"]);
    ep.ok(&["rule", "delete", "media"]);
    assert!(!ep.ok(&["rule", "list"]).contains("media "));
    let gone = ep.run(&["rule", "show", "media"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no rule named"));
}

#[test]
fn log_filters_and_follow() {
    let (fake, ep) = sim_env();
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/a.png".into()],
    ));
    server.send(&ceph_body(
        "assets",
        "ObjectRemoved:Delete",
        &["x/y.css".into()],
    ));
    ep.settle(Duration::from_secs(20));
    assert_eq!(ep.log(&["--rule", "imgs"]).len(), 1);
    assert_eq!(ep.log(&["--rule", "docs"]).len(), 1);
    assert_eq!(ep.log(&["--status", "succeeded"]).len(), 2);
    assert_eq!(ep.log(&["--status", "dead"]).len(), 0);
    assert_eq!(ep.log(&["--since", "1h"]).len(), 2);
    let text = ep.ok(&["log"]);
    assert!(
        text.contains("succeeded  rule=imgs  ObjectCreated:Put assets/img/a.png"),
        "{text}"
    );
    assert!(text.contains("task_id="), "{text}");
    let bad = ep.run(&["log", "--status", "great"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = ep.run(&["log", "--since", "yesterday-ish"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a duration"));
    let requests = ep.ok(&["log", "--requests"]);
    assert!(
        requests.contains("succeeded") && requests.contains("lane=tencent"),
        "{requests}"
    );

    // --follow prints new records and their status changes.
    let cmd = ep.command(&["log", "--follow", "--json", "--limit", "0"]);
    let (mut follow, _) = Proc::spawn_until("log --follow", cmd, Duration::from_secs(10), |l| {
        l.contains("img/a.png") || l.contains("y.css")
    });
    fake.delay(1500, 1); // long enough for follow's 500 ms poll to see it in flight
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/new.png".into()],
    ));
    let mut statuses = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !statuses.contains(&"succeeded".to_owned()) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = follow.stdout.recv_timeout(left).expect("follow output");
        let rec: serde_json::Value = serde_json::from_str(&line).unwrap();
        if rec["key"] == "img/new.png" {
            statuses.push(rec["status"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        matches!(statuses[0].as_str(), "queued" | "sent"),
        "a change is printed before the outcome: {statuses:?}"
    );
    follow.kill9();
}

#[test]
fn a_tag_rule_for_a_provider_without_tags_is_refused_with_the_reason() {
    let (_fake, ep) = sim_env();
    let out = ep.run(&[
        "rule",
        "add",
        "--name",
        "by-tag",
        "--bucket",
        "assets",
        "--event",
        "created",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
        "--mode",
        "tag",
        "--tag",
        "{seg1}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "provider \"tencent\" (tencent-cdn) cannot purge with mode = \"tag\"; it purges url, dir"
        ),
        "{err}"
    );
    assert_eq!(err.matches("cannot purge").count(), 1, "said once: {err}");
    assert!(
        !ep.ok(&["rule", "list"]).contains("by-tag"),
        "nothing stored"
    );
    // A misspelled account gets a suggestion.
    let out = ep.run(&[
        "rule",
        "add",
        "--name",
        "typo",
        "--bucket",
        "assets",
        "--event",
        "created",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencnet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean \"tencent\""));
}

#[test]
fn rule_add_takes_a_min_interval_and_refuses_one_over_a_day() {
    let (_fake, ep) = sim_env();
    let add = |interval: &str| {
        ep.run(&[
            "rule",
            "add",
            "--name",
            "hot",
            "--bucket",
            "assets",
            "--event",
            "created",
            "--domain",
            "https://cdn.example.com",
            "--provider",
            "tencent",
            "--min-interval-ms",
            interval,
            "--json",
        ])
    };
    let out = add("86400001");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("min_interval_ms") && err.contains("one day"),
        "{err}"
    );
    assert!(!ep.ok(&["rule", "list"]).contains("hot"), "nothing stored");
    let out = add("5000");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rule: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rule["min_interval_ms"], 5000);
}

#[test]
fn a_dir_rule_that_could_purge_a_whole_domain_needs_the_opt_in() {
    let (_fake, ep) = sim_env();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "rule",
            "add",
            "--name",
            "root-dirs",
            "--bucket",
            "assets",
            "--event",
            "created",
            "--domain",
            "https://cdn.example.com",
            "--provider",
            "tencent",
            "--mode",
            "dir",
        ];
        args.extend_from_slice(extra);
        ep.run(&args)
    };
    let out = add(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("allow_host_purge") && err.contains("whole domain"),
        "{err}"
    );
    assert!(
        !ep.ok(&["rule", "list"]).contains("root-dirs"),
        "nothing stored"
    );
    let out = add(&["--allow-host-purge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ep.ok(&["rule", "list"]).contains("root-dirs"));
}

#[test]
fn retry_names_an_unknown_provider_or_rule_and_exits_2() {
    let (_fake, ep) = sim_env();
    let server = ep.serve();
    drop(server); // the store exists now
    let out = ep.run(&["retry", "--provider", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider \"nope\" is not in the config"));
    let out = ep.run(&["retry", "--rule", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rule named \"nope\""));
    assert!(ep
        .ok(&["retry", "--provider", "tencent"])
        .contains("re-queued 0"));
}

#[test]
fn missing_provider_credentials_are_named_by_config_check_and_stop_serve() {
    let fake = FakeTencent::start(Options::default());
    let ep0 = Edgepurge::new("");
    let key = ep0.dir.path().join("secret-key");
    let text = tencent_config(&fake, "", SITE_RULE).replace(
        "secret_key_env = \"EP_TEST_SECRET_KEY\"",
        &format!("secret_key_file = {:?}", key.display().to_string()),
    );
    let ep = Edgepurge::new(&text);
    let out = ep.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("providers.tencent: cannot read secret file") && err.contains("secret-key"),
        "{err}"
    );
    let out = ep.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2), "serve refuses to start");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-missing-secrets"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Asked to, it starts anyway, and /healthz says the lane cannot sign (503, degraded).
    let cmd = ep.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-missing-secrets",
    ]);
    let server = start_server(cmd);
    let health = |code: u16| {
        edgepurge_testkit::wait_for(Duration::from_secs(10), "the health to change", || {
            let r = edgepurge_testkit::http::get(server.addr, "/healthz").ok()?;
            (r.status == code).then(|| r.json())
        })
    };
    let h = health(503);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["lanes"][0]["missing_credentials"], true, "{h}");
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["k.css".into()]));
    // Longer than every retry of max_attempts = 5 put together: the batch is held, not
    // tried (it was once dead-lettered within a second, before the file appeared).
    std::thread::sleep(Duration::from_millis(2500));
    assert!(fake.purges().is_empty(), "nothing was sent unsigned");
    let held = ep.log(&[]);
    assert_eq!(
        (held[0]["status"].as_str(), held[0]["attempts"].as_u64()),
        (Some("queued"), Some(0)),
        "{held:?}"
    );
    // The key file appears: the lane clears the flag by itself and the purge goes out.
    std::fs::write(&key, edgepurge_testkit::tencent::SECRET_KEY).unwrap();
    let log = ep.settle(Duration::from_secs(30));
    assert_eq!(log[0]["status"], "succeeded", "{log:?}");
    let h = health(200);
    assert_eq!(h["lanes"][0]["missing_credentials"], false, "{h}");
}

#[test]
fn sighup_reloads_the_config_rules_and_keeps_them_when_the_file_is_bad() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let pid = server.proc.pid().to_string();
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    let rules = || ep.ok(&["rule", "list", "--json"]);
    assert!(rules().contains("\"site\""));
    // A new rule in the file: in force after SIGHUP, without a restart.
    let renamed = tencent_config(&fake, "", &SITE_RULE.replace("\"site\"", "\"renamed\""));
    std::fs::write(&ep.config, renamed).unwrap();
    hup();
    // The server says so once the new rules are in force.
    edgepurge_testkit::wait_for(Duration::from_secs(5), "the reload line", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.contains("SIGHUP: config rules reloaded").then_some(())
    });
    let r = rules();
    assert!(r.contains("\"renamed\"") && !r.contains("\"site\""), "{r}");
    let answer = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["hup.css".into()],
    ));
    assert_eq!(answer["accepted"], 1);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["rule"], "renamed", "the running server uses it");
    // A broken file: refused, the rules in force stay, the server keeps running.
    std::fs::write(&ep.config, "[[rules]]\nname = 3\n").unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(500));
    let answer = server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["after.css".into()],
    ));
    assert_eq!(answer["accepted"], 1);
    // (The CLI reads the broken file too, so the log is read from the store alone.)
    let out = bare_command(ep.dir.path(), &["--db", "edgepurge.db", "log", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("after.css") && l.contains("\"rule\":\"renamed\"")),
        "{text}"
    );
    assert_eq!(
        edgepurge_testkit::http::get(server.addr, "/readyz")
            .unwrap()
            .status,
        200
    );
    // Providers changed: refused as a whole (their lanes are running).
    let faster = tencent_config(
        &fake,
        "rate_per_s = 5",
        &SITE_RULE.replace("\"site\"", "\"other\""),
    );
    std::fs::write(&ep.config, faster).unwrap();
    hup();
    edgepurge_testkit::wait_for(Duration::from_secs(5), "the refusal line", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.contains("SIGHUP: providers changed in the file; restart to apply them")
            .then_some(())
    });
    // A stop right behind a reload is not lost.
    let mut server = server;
    hup();
    assert_eq!(server.proc.terminate(Duration::from_secs(10)), Some(0));
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("SIGHUP: config rules reloaded"), "{text}");
    assert!(text.contains("stopped"), "{text}");
    assert!(
        text.contains("SIGHUP: the config file was refused; the rules in force stay"),
        "{text}"
    );
}

#[test]
fn rule_list_reads_the_config_file_as_it_is_now() {
    let (_fake, ep) = sim_env();
    // A server installs the file's rules in the store, then stops.
    drop(ep.serve());
    assert!(ep.ok(&["rule", "list"]).contains("docs"));
    let text = std::fs::read_to_string(&ep.config).unwrap();
    std::fs::write(
        &ep.config,
        text.replace("name = \"docs\"", "name = \"manuals\""),
    )
    .unwrap();
    let list = ep.ok(&["rule", "list"]);
    assert!(list.contains("manuals") && !list.contains("docs"), "{list}");
}

#[test]
fn completions_and_the_manual_page_are_printed_for_every_command() {
    let ep = Edgepurge::new("");
    let script = ep.ok(&["completions", "bash"]);
    for word in ["serve", "status", "package", "completions", "--server"] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completions"
        );
    }
    let mut bash = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(bash.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    assert!(
        bash.wait().unwrap().success(),
        "the bash script is not valid bash"
    );
    assert!(ep
        .ok(&["completions", "zsh"])
        .contains("#compdef edgepurge"));
    let out = ep.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad input");

    // The manual page, rendered by groff with every warning on: none, and every command in it.
    let page = ep.ok(&["man"]);
    edgepurge_testkit::require_programs("the manual page test", &["groff"]);
    let mut groff = std::process::Command::new(edgepurge_testkit::program("groff"))
        .args(["-man", "-Tutf8", "-ww"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(groff.stdin.as_mut().unwrap(), page.as_bytes()).unwrap();
    let rendered = groff.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&rendered.stdout);
    let warnings = String::from_utf8_lossy(&rendered.stderr);
    assert!(warnings.trim().is_empty(), "groff: {warnings}");
    // (groff typesets `-` as a hyphen and bolds by overstriking: options are found by their help.)
    for word in [
        "edgepurge",
        "serve",
        "status",
        "package",
        "running server listens",
    ] {
        assert!(text.contains(word), "{word} missing from the manual page");
    }
}

/// `2026-12-01T05:09:49.123Z` (UTC, milliseconds) as every `--json` output shows times.
fn assert_utc_rfc3339(v: &serde_json::Value, what: &str) -> i64 {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(
        text.ends_with('Z') && text.len() == "2026-12-01T05:09:49.123Z".len(),
        "{what}: {text}"
    );
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{what}: {text}: {e}"))
        .timestamp_millis()
}

/// A local time with the offset of Asia/Tokyo (+09:00, no summer time), to the second.
fn tokyo_times(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| {
            let w = w.trim_start_matches("completed=");
            w.ends_with("+09:00") && chrono::DateTime::parse_from_rfc3339(w).is_ok()
        })
        .count()
}

#[test]
fn times_are_rfc3339_utc_in_json_and_local_in_text() {
    let (_fake, ep) = sim_env();
    let tokyo = |args: &[&str]| {
        let out = ep.command(args).env("TZ", "Asia/Tokyo").output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/t.png".into()],
    ));
    ep.settle(Duration::from_secs(20));
    // Complete once the stand-in's purge task is done.
    let log = edgepurge_testkit::wait_for(Duration::from_secs(20), "completion", || {
        let log = ep.log(&[]);
        log[0]["completed_at"].is_string().then_some(log)
    });
    let time = assert_utc_rfc3339(&log[0]["time"], "log time");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        (now - time).abs() < 60_000,
        "a time of now: {}",
        log[0]["time"]
    );
    assert_utc_rfc3339(&log[0]["updated"], "log updated");
    assert_utc_rfc3339(&log[0]["completed_at"], "log completed_at");
    assert!(
        log[0].get("seq").is_none(),
        "the admin API's shape: {}",
        log[0]
    );
    // Text: local times with their offset (here +09:00), one per time shown.
    let text = tokyo(&["log"]);
    assert_eq!(tokyo_times(&text), 2, "time and completed=: {text}");

    let reqs: Vec<serde_json::Value> = ep
        .ok(&["log", "--requests", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = assert_utc_rfc3339(&reqs[0]["started_at"], "started_at");
    let finished = assert_utc_rfc3339(&reqs[0]["finished_at"], "finished_at");
    assert_eq!(reqs[0]["took_ms"], finished - started);
    assert_eq!(tokyo_times(&tokyo(&["log", "--requests"])), 1);

    // Rules: installed by the server, so with a creation time.
    let rules: serde_json::Value =
        serde_json::from_str(&ep.ok(&["rule", "list", "--json"])).unwrap();
    let imgs = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "imgs")
        .unwrap();
    assert_utc_rfc3339(&imgs["created_at"], "created_at");
    assert_eq!(imgs["origin"], "config");
    assert_eq!(imgs["in_force"], true);
    let show = tokyo(&["rule", "show", "imgs"]);
    assert!(show.contains("# origin: config, created 20"), "{show}");
    assert_eq!(tokyo_times(&show), 1, "{show}");

    // Status with the server: each lane's state from it, its times in RFC 3339 too.
    let addr = server.addr.to_string();
    let status: serde_json::Value =
        serde_json::from_str(&ep.ok(&["status", "--json", "--server", &addr])).unwrap();
    assert!(status["server_error"].is_null(), "{status}");
    let lane = &status["lanes"][0];
    assert_eq!(lane["lane"], "tencent", "{status}");
    assert!(lane["state"].is_string(), "{status}");
    assert_utc_rfc3339(&lane["last_success_at"], "last_success_at");
    let health = http::get(server.addr, "/healthz").unwrap().json();
    assert_utc_rfc3339(
        &health["lanes"][0]["last_success_at"],
        "/healthz last_success_at",
    );

    // Status: a purge queued while no server runs waits in its lane, with its time.
    drop(server);
    ep.ok(&[
        "purge",
        "--no-wait",
        "--provider",
        "tencent",
        "https://cdn.example.com/waiting.css",
    ]);
    // (No server answers at port 1: the lanes' states are unknown, and said so.)
    let status: serde_json::Value =
        serde_json::from_str(&ep.ok(&["status", "--json", "--server", "127.0.0.1:1"])).unwrap();
    let lane = &status["lanes"][0];
    assert_eq!(lane["lane"], "tencent", "{status}");
    assert_eq!(lane["pending"], 1, "{status}");
    assert_utc_rfc3339(&lane["oldest_pending_at"], "oldest_pending_at");
    assert!(
        status["server_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not answer")),
        "{status}"
    );
    let text = tokyo(&["status", "--server", "127.0.0.1:1"]);
    assert_eq!(tokyo_times(&text), 1, "{text}");
    assert!(
        text.contains("lane states: the server at 127.0.0.1:1 does not answer"),
        "{text}"
    );
}

#[test]
fn log_requests_honours_status_and_unknown_names_get_a_suggestion() {
    let (fake, ep) = sim_env();
    let server = ep.serve();
    // One purge given up (the host is not on the CDN; rule "docs" has one domain), one
    // retried once and then done.
    fake.fail("ResourceNotFound.CdnHostNotExists", 1);
    server.send(&ceph_body(
        "assets",
        "ObjectRemoved:Delete",
        &["gone/dead.css".into()],
    ));
    ep.settle(Duration::from_secs(20));
    fake.fail("InternalError.CdnSystemError", 1);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["img/late.png".into()],
    ));
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2, "{log:?}");
    // The record is dead as soon as its target on the refused domain is; its other target's
    // retry may still be on its way: wait for the third request.
    edgepurge_testkit::wait_for(Duration::from_secs(20), "the retried purge", || {
        (ep.ok(&["log", "--requests", "--json"]).lines().count() == 3).then_some(())
    });
    let outcomes = |status: &str| -> Vec<String> {
        ep.ok(&["log", "--requests", "--json", "--status", status])
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["outcome"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(outcomes("dead"), vec!["dead"]);
    assert_eq!(outcomes("retry"), vec!["retry"]);
    assert_eq!(outcomes("succeeded"), vec!["succeeded"]);
    assert_eq!(ep.ok(&["log", "--requests"]).lines().count(), 3);
    let text = ep.ok(&["log", "--requests", "--status", "dead"]);
    assert!(
        text.lines().count() == 1 && text.contains("dead") && text.contains("CdnHostNotExists"),
        "{text}"
    );
    let bad = ep.run(&["log", "--requests", "--status", "failed"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("succeeded, retry, split, quota, held, dead"),
        "{err}"
    );
    // Requests serve many rules at once: --rule is refused with them, not ignored.
    let bad = ep.run(&["log", "--requests", "--rule", "imgs"]);
    assert_eq!(bad.status.code(), Some(2));

    // A misspelled rule or provider: exit 2 and the name meant.
    let bad = ep.run(&["log", "--rule", "imsg"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no rule named \"imsg\" (did you mean \"imgs\"?)"),
        "{err}"
    );
    let bad = ep.run(&["retry", "--provider", "tencnet"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("(did you mean \"tencent\"?)"), "{err}");
    let bad = ep.run(&["rule", "show", "doc"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("did you mean \"docs\""));
    // The dead one goes again.
    let again: serde_json::Value =
        serde_json::from_str(&ep.ok(&["retry", "--rule", "docs", "--json"])).unwrap();
    assert_eq!(again["requeued"], 1);
}

#[test]
fn config_check_lists_every_problem_with_its_place_and_never_says_ok_then_fails() {
    let (_fake, ep) = sim_env();
    let check = |json: bool| {
        let mut args = vec!["config", "check"];
        if json {
            args.push("--json");
        }
        ep.run(&args)
    };
    let out = check(true);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["summary"]["rules"], 2);

    // A rule added with the CLI that the file now also defines: a problem, not "ok".
    drop(ep.serve());
    ep.ok(&[
        "rule",
        "add",
        "--name",
        "media",
        "--bucket",
        "media",
        "--event",
        "put",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
    ]);
    let text = std::fs::read_to_string(&ep.config).unwrap();
    std::fs::write(
        &ep.config,
        format!(
            "{text}\n[[rules]]\nname = \"media\"\nbucket = \"m\"\nevents = [\"put\"]\n\
             domains = [\"https://cdn.example.com\"]\nprovider = \"tencent\"\n"
        ),
    )
    .unwrap();
    let out = check(false);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("ok"), "no ok before a failure: {stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule \"media\" is in the config file and was also added"),
        "{err}"
    );
    let out = check(true);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["problems"][0]["at"]
            .as_str()
            .unwrap()
            .contains("rules added with `edgepurge rule add`"),
        "{v}"
    );

    // Every problem of the file, each with its place; a missing secret too.
    std::fs::write(
        &ep.config,
        "[dispatch]\nmax_attempts = 0\n[[rules]]\nname = \"x\"\nbucket = \"b\"\n\
         events = [\"put\"]\ndomains = [\"cdn\"]\nprovider = \"p\"\n",
    )
    .unwrap();
    let out = check(true);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let places: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["at"].as_str().unwrap())
        .collect();
    let file = ep.config.display().to_string();
    assert!(
        places.contains(&format!("{file}: dispatch.max_attempts").as_str()),
        "{v}"
    );
    assert!(
        places
            .iter()
            .any(|p| p.starts_with(&format!("{file}: rules[0]"))),
        "{v}"
    );
    assert_eq!(v["summary"], serde_json::Value::Null);

    let fake = FakeTencent::start(Options::default());
    std::fs::write(&ep.config, tencent_config(&fake, "", SITE_RULE)).unwrap();
    let out = ep
        .command(&["config", "check", "--json"])
        .env_remove("EP_TEST_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["problems"][0]["at"],
        format!("{file}: providers.tencent"),
        "{v}"
    );
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("EP_TEST_SECRET_KEY"),
        "{v}"
    );
}

#[test]
fn a_config_rule_is_refused_with_one_message_whatever_the_change() {
    let (_fake, ep) = sim_env();
    drop(ep.serve());
    let said = |args: &[&str]| {
        let out = ep.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.lines()
            .filter(|l| l.starts_with("error:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let add = said(&[
        "rule",
        "add",
        "--name",
        "imgs",
        "--bucket",
        "x",
        "--event",
        "put",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
    ]);
    assert!(
        add.contains("rule \"imgs\" comes from the config file: change or remove it there"),
        "{add}"
    );
    for verb in ["delete", "disable", "enable"] {
        assert_eq!(said(&["rule", verb, "imgs"]), add, "rule {verb}");
    }
}

#[test]
fn every_printing_command_has_json() {
    let (_fake, ep) = sim_env();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = ep.ok(args);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let m = json(&["migrate", "--json"]);
    assert!(m["schema_version"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["store"].as_str().unwrap().contains("edgepurge.db"), "{m}");
    let added = json(&[
        "rule",
        "add",
        "--name",
        "media",
        "--bucket",
        "media",
        "--event",
        "put",
        "--domain",
        "https://cdn.example.com",
        "--provider",
        "tencent",
        "--json",
    ]);
    assert_eq!(added["name"], "media");
    assert_eq!(added["origin"], "cli");
    assert_eq!(added["in_force"], true);
    assert_utc_rfc3339(&added["created_at"], "created_at");
    assert_eq!(
        json(&["rule", "show", "media", "--json"])["bucket"],
        "media"
    );
    assert_eq!(
        json(&["rule", "disable", "media", "--json"]),
        serde_json::json!({"rule": "media", "enabled": false})
    );
    assert_eq!(
        json(&["rule", "show", "media", "--json"])["in_force"],
        false
    );
    assert_eq!(
        json(&["rule", "enable", "media", "--json"]),
        serde_json::json!({"rule": "media", "enabled": true})
    );
    assert_eq!(
        json(&["rule", "delete", "media", "--json"]),
        serde_json::json!({"deleted": "media"})
    );
    let queued = json(&[
        "purge",
        "--no-wait",
        "--json",
        "https://cdn.example.com/a.css",
    ]);
    assert_eq!(queued["queued"], 1, "{queued}");
    // A purge by hand shows its URL, not a bucket-less "manual /https://…".
    let text = ep.ok(&["log"]);
    assert!(
        text.contains(" manual https://cdn.example.com/a.css  -> https://cdn.example.com/a.css"),
        "{text}"
    );
    assert!(!text.contains("manual /"), "{text}");
    assert_eq!(json(&["retry", "--json"])["requeued"], 0);
}

#[test]
fn sighup_rotates_the_token_files_and_the_old_tokens_are_refused() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new("");
    let hook = ep.dir.path().join("webhook-token");
    let admin = ep.dir.path().join("admin-token");
    let write = |path: &std::path::Path, token: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, token).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write(&hook, "hook-one-0123456789");
    write(&admin, "admin-one-0123456789");
    let text = tencent_config(&fake, "", SITE_RULE).replace(
        "webhook_token_env = \"EP_TEST_WEBHOOK_TOKEN\"",
        &format!("webhook_token_file = {:?}", hook.display().to_string()),
    );
    std::fs::write(
        &ep.config,
        format!(
            "{text}\n[admin]\ntoken_file = {:?}\n",
            admin.display().to_string()
        ),
    )
    .unwrap();
    let log_path = ep.dir.path().join("server.log");
    let server = ep.serve_with_stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let hup = || {
        let pid = server.proc.pid().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    let said = |what: &str| {
        edgepurge_testkit::wait_for(Duration::from_secs(5), what, || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            text.contains(what).then_some(())
        })
    };
    let body = ceph_body("assets", "ObjectCreated:Put", &["t.css".into()]);
    let events = |token: &str| server.post(&body, Some(token)).status;
    let api = |token: &str| {
        let auth = format!("Bearer {token}");
        let host = server.addr.to_string();
        http::request(
            server.addr,
            "GET",
            "/v1/rules",
            &host,
            &[("Authorization", &auth)],
            b"",
        )
        .unwrap()
        .status
    };
    assert_eq!(events("hook-one-0123456789"), 200);
    assert_eq!(api("admin-one-0123456789"), 200);

    // New files, SIGHUP: the new tokens pass, the old ones are refused.
    write(&hook, "hook-two-0123456789\n");
    write(&admin, "admin-two-0123456789");
    hup();
    said("SIGHUP: admin token replaced");
    said("SIGHUP: webhook token replaced");
    assert_eq!(events("hook-one-0123456789"), 401);
    assert_eq!(api("admin-one-0123456789"), 401);
    assert_eq!(events("hook-two-0123456789"), 200);
    assert_eq!(api("admin-two-0123456789"), 200);

    // An empty admin token file refuses the reload whole: neither token changes.
    write(&hook, "hook-three-0123456789");
    write(&admin, "");
    hup();
    said("SIGHUP: refused, nothing reloaded");
    assert_eq!(events("hook-two-0123456789"), 200);
    assert_eq!(events("hook-three-0123456789"), 401);
    assert_eq!(api("admin-two-0123456789"), 200);
    let log = std::fs::read_to_string(&log_path).unwrap();
    for secret in [
        "hook-one",
        "hook-two",
        "hook-three",
        "admin-one",
        "admin-two",
    ] {
        assert!(!log.contains(secret), "a token in the log: {log}");
    }
}

#[test]
fn work_of_a_removed_account_is_shown_unserved_then_discarded_and_retried_once_it_is_back() {
    let fake = FakeTencent::start(Options::default());
    let text = tencent_config(&fake, "", SITE_RULE);
    let ep = Edgepurge::new(&text);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = ep.ok(args);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    // Queued while no server runs: lane "tencent".
    let urls = [
        "https://cdn.example.com/a.css",
        "https://cdn.example.com/b.css",
    ];
    let mut args = vec!["purge", "--no-wait", "--json"];
    args.extend(urls);
    assert_eq!(json(&args)["queued"], 2);
    // The account is renamed: nothing serves lane "tencent" any more.
    let renamed = text
        .replace("[providers.tencent]", "[providers.cdn]")
        .replace("provider = \"tencent\"", "provider = \"cdn\"");
    std::fs::write(&ep.config, &renamed).unwrap();

    let status = json(&["status", "--json"]);
    let lane = &status["lanes"][0];
    assert_eq!(
        (
            lane["lane"].as_str(),
            lane["served"].as_bool(),
            lane["pending"].as_u64()
        ),
        (Some("tencent"), Some(false), Some(2)),
        "{status}"
    );
    let text_status = ep.ok(&["status"]);
    // One table row per lane (the table's line breaks are not escaped).
    assert!(
        text_status
            .lines()
            .any(|l| l.trim_start().starts_with("tencent ")
                && l.contains("unserved: no account of the config serves it")),
        "{text_status}"
    );
    assert!(
        text_status.contains("edgepurge discard --lane tencent"),
        "{text_status}"
    );
    let check = ep.run(&["config", "check"]);
    assert_eq!(check.status.code(), Some(0), "a warning, not a problem");
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("lane \"tencent\" holds 2 pending job(s)") && err.contains("discard"),
        "{err}"
    );

    // A server on the renamed config says so at start, in /metrics and in GET /v1/status.
    let log_path = ep.dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let server = ep.serve_with_stderr(std::process::Stdio::from(log_file));
    let started = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        started.contains("no provider account of the config serves lane \"tencent\""),
        "{started}"
    );
    let metrics = edgepurge_testkit::http::get(server.addr, "/metrics").unwrap();
    assert!(
        metrics
            .text()
            .lines()
            .any(|l| l == "edgepurge_lane_state{lane=\"tencent\",state=\"unserved\"} 1"),
        "{}",
        metrics.text()
    );
    let st = edgepurge_testkit::http::get(server.addr, "/v1/status").unwrap();
    let lanes = st.json()["lanes"].clone();
    let served: Vec<(String, bool)> = lanes
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["lane"].as_str().unwrap().to_owned(), l["served"] == true))
        .collect();
    assert_eq!(served, vec![("tencent".to_owned(), false)], "{lanes}");
    drop(server);
    assert!(
        fake.purges().is_empty(),
        "nothing was sent for the unserved lane"
    );

    // Only a lane nothing serves, and one with work, can be discarded; each refusal says why.
    let out = ep.run(&["discard", "--lane", "cdn"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("served by provider account \"cdn\""), "{err}");
    let out = ep.run(&["discard", "--lane", "tencnet"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no queued work") && err.contains("did you mean \"tencent\""),
        "{err}"
    );
    let d = json(&["discard", "--lane", "tencent", "--json"]);
    assert_eq!(
        d,
        serde_json::json!({"lanes": ["tencent"], "batches": 1, "targets": 2, "dead_before": 0,
            "fanout_left": 0, "waiting_until": null})
    );
    let log = ep.log(&[]);
    assert_eq!(log.len(), 2);
    for r in &log {
        assert_eq!(r["status"], "dead", "{r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap_or("")
                .contains("not sent: discarded"),
            "{r}"
        );
    }
    // Discarded already: dead letters alone are not queued work.
    let out = ep.run(&["discard", "--lane", "tencent"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 dead batch(es) are dead letters already") && !err.contains("did you mean"),
        "{err}"
    );
    let out = ep.run(&["discard", "--lane", "a\u{1b}[31m b"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a lane name") && !err.contains('\u{1b}'),
        "{err}"
    );
    // A plain retry leaves the dead letters of a lane no account serves: they would only
    // queue up again, unsent.
    assert_eq!(json(&["retry", "--json"])["requeued"], 0);
    let said = ep.ok(&["retry"]);
    assert!(
        said.contains("left: dead batches of lanes no provider account")
            && said.contains("tencent (1)"),
        "{said}"
    );
    let status = json(&["status", "--json"]);
    assert_eq!(status["lanes"][0]["pending"], 0, "{status}");
    assert_eq!(status["lanes"][0]["dead_batches"], 1, "{status}");
    // Dead letters alone: not "unserved" work any more.
    let text_status = ep.ok(&["status"]);
    assert!(
        !text_status.contains("nothing sends") && !text_status.contains("unserved"),
        "{text_status}"
    );
    let check = ep.run(&["config", "check"]);
    assert!(!String::from_utf8_lossy(&check.stderr).contains("discard"));

    // The account is back under its old name: retry queues the dead letters and they go out.
    std::fs::write(&ep.config, &text).unwrap();
    assert_eq!(
        json(&["retry", "--provider", "tencent", "--json"])["requeued"],
        1
    );
    let _server = ep.serve();
    let log = ep.settle(Duration::from_secs(30));
    assert!(log.iter().all(|r| r["status"] == "succeeded"), "{log:?}");
    let mut purged = fake.purged();
    purged.sort();
    assert_eq!(purged, urls.map(str::to_owned).to_vec());
}
