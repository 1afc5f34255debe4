//! Function mode: `edgepurge handle`, `edgepurge function` under loopback stand-ins of the
//! Tencent SCF and AWS Lambda runtime APIs, and `edgepurge package`, against the Tencent CDN
//! API stand-in (signatures recomputed with the official SDK's signer).

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::process::Proc;
use edgepurge_testkit::runtime::{Dialect, FakeRuntime};
use edgepurge_testkit::tencent::{FakeTencent, Options, SESSION_TOKEN};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COS_RULE: &str = r#"
[[rules]]
name = "cos-site"
bucket = "testpic-1253970026"
events = ["cos:ObjectCreated:*", "cos:ObjectRemove:*"]
domains = ["https://cdn.example.com", "https://img.example.com"]
provider = "tencent"
"#;

const COS_URLS: [&str; 4] = [
    "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
    "https://cdn.example.com/old.css",
    "https://img.example.com/img/%E7%8C%AB%20cat+1.jpg",
    "https://img.example.com/old.css",
];

fn fake(domains: &[&str]) -> FakeTencent {
    FakeTencent::start(Options {
        token: Some(SESSION_TOKEN.into()),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    })
}

/// Runs `edgepurge handle` with `body` on standard input.
fn handle(ep: &Edgepurge, body: &[u8], extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["handle", "--event", "-"];
    args.extend_from_slice(extra);
    let mut child = ep
        .command(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON object on stdout: {stdout}\n{stderr}"
    );
    let value: Value = serde_json::from_str(lines[0]).unwrap();
    (out.status.code(), value, stderr)
}

fn sorted_purges(fake: &FakeTencent) -> Vec<String> {
    let mut p = fake.purged();
    p.sort();
    p
}

#[test]
fn handle_purges_a_cos_body_in_one_signed_call_and_exits_0() {
    let fake = fake(&["cdn.example.com", "img.example.com"]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let (code, out, stderr) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(0), "{out}\n{stderr}");
    assert_eq!(out["ok"], true);
    assert_eq!(out["events"], 2);
    assert_eq!(out["purged"], 4);
    let targets = out["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4);
    for t in targets {
        assert_eq!(t["outcome"], "purged", "{t}");
        assert_eq!(t["attempts"], 1);
        assert_eq!(t["provider"], "tencent");
        assert_eq!(t["rules"], json!(["cos-site"]));
        assert!(t["task_id"].is_string(), "{t}");
    }
    assert_eq!(sorted_purges(&fake), COS_URLS);
    let purges = fake.purges();
    assert_eq!(purges.len(), 1, "one batched request: {purges:#?}");
    assert_eq!(purges[0]["signature_ok"], true);
    // Nothing was stored: function mode keeps no state.
    assert!(!ep.dir.path().join("edgepurge.db").exists());
}

#[test]
fn handle_retries_a_throttled_call_within_the_deadline() {
    let fake = fake(&[]);
    fake.fail("RequestLimitExceeded", 1);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let (code, out, stderr) = handle(&ep, &fixture("cos-put.json"), &["--deadline-ms", "5000"]);
    assert_eq!(code, Some(0), "{out}\n{stderr}");
    for t in out["targets"].as_array().unwrap() {
        assert_eq!(t["outcome"], "purged", "{t}");
        assert_eq!(t["attempts"], 2, "{t}");
    }
    let calls = fake
        .requests()
        .into_iter()
        .filter(|r| r["action"] == "PurgeUrlsCache")
        .count();
    assert_eq!(calls, 2);
}

#[test]
fn handle_gives_up_at_the_deadline_and_exits_1_when_the_provider_is_down() {
    let fake = fake(&[]);
    fake.outage(Some(503));
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let started = Instant::now();
    let (code, out, stderr) = handle(&ep, &fixture("cos-put.json"), &["--deadline-ms", "1500"]);
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{out}\n{stderr}");
    assert_eq!(out["ok"], false);
    assert_eq!(out["failed"], 4);
    for t in out["targets"].as_array().unwrap() {
        assert_eq!(t["outcome"], "failed", "{t}");
        assert!(t["attempts"].as_u64().unwrap() >= 2, "retried: {t}");
        assert!(t["error"].as_str().unwrap().contains("503"), "{t}");
    }
    // The deadline holds (the process's own start and exit are on top).
    assert!(took < Duration::from_millis(1500 + 1500), "{took:?}");
    assert!(stderr.contains("not purged"), "{stderr}");
}

#[test]
fn handle_refuses_an_unparseable_body_with_exit_2_and_sends_nothing() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let (code, out, _) = handle(&ep, b"{\"Records\": [", &[]);
    assert_eq!(code, Some(2));
    assert_eq!(out["ok"], false);
    assert!(out["error"].as_str().unwrap().contains("JSON"), "{out}");
    assert!(fake.requests().is_empty());
}

#[test]
fn handle_explains_an_event_that_no_rule_matches_and_exits_0() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let (code, out, stderr) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(0), "{out}\n{stderr}");
    assert_eq!(out["targets"], json!([]));
    let skipped = out["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert!(skipped[0]["note"]
        .as_str()
        .unwrap()
        .contains("no enabled rule matches"));
    assert!(stderr.contains("purges nothing"), "{stderr}");
}

#[test]
fn handle_without_credentials_names_them_and_exits_2() {
    let fake = fake(&[]);
    let mut ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    ep.env.retain(|(k, _)| k != "EP_TEST_SECRET_KEY");
    let (code, out, _) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(2));
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("EP_TEST_SECRET_KEY"),
        "{out}"
    );
    assert!(fake.requests().is_empty());
}

/// Starts `edgepurge function` under `rt`, with the config as `EDGEPURGE_CONFIG_TOML`; its
/// output goes to `function.log` in the working directory.
fn start_function(ep: &Edgepurge, rt: &FakeRuntime) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepurge"));
    cmd.arg("function")
        .current_dir(ep.dir.path())
        .env_remove("EDGEPURGE_CONFIG")
        .env(
            "EDGEPURGE_CONFIG_TOML",
            std::fs::read_to_string(&ep.config).unwrap(),
        )
        .env("EDGEPURGE_LOG_FORMAT", "json");
    for (k, v) in ep.env.iter().cloned().chain(rt.env()) {
        cmd.env(k, v);
    }
    Proc::spawn_group(
        "edgepurge-function",
        cmd,
        &ep.dir.path().join("function.log"),
    )
}

fn function_log(ep: &Edgepurge) -> String {
    std::fs::read_to_string(ep.dir.path().join("function.log")).unwrap_or_default()
}

fn run_invocations(dialect: Dialect) {
    let fake = fake(&["cdn.example.com", "img.example.com"]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(dialect);
    let _function = start_function(&ep, &rt);

    // 1. A COS body with two records: one call, the invocation succeeds.
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let id = rt.invoke(cos.clone(), 3000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "response", "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["purged"], 4, "{body}");
    assert_eq!(sorted_purges(&fake), COS_URLS);

    // 2. The same event delivered again (platform retry): harmless, purged again.
    let id = rt.invoke(cos.clone(), 3000);
    assert_eq!(rt.result(&id, Duration::from_secs(20))["kind"], "response");

    // 3. The provider is down: the invocation fails inside its budget, so the platform
    //    retries it.
    fake.outage(Some(503));
    let id = rt.invoke(cos.clone(), 1200);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "error", "{r}");
    let answered_after = r["at_ms"].as_i64().unwrap() - r["received_ms"].as_i64().unwrap();
    assert!(
        answered_after < 1200,
        "answered within the budget: {answered_after} ms"
    );
    let text = r["body"].as_str().unwrap();
    assert!(text.contains("4 of 4 target(s) not purged"), "{text}");
    fake.outage(None);

    // 4. Not an event: the invocation fails (to the platform's dead-letter queue).
    let id = rt.invoke(json!("this is not JSON"), 3000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "error", "{r}");
    assert!(r["body"].as_str().unwrap().contains("InvalidEvent"), "{r}");

    let log: Vec<Value> = rt
        .log()
        .into_iter()
        .filter(|l| !l["path"].as_str().unwrap().starts_with("/__control/"))
        .collect();
    if dialect == Dialect::Scf {
        assert_eq!(log[0]["path"], "/runtime/init/ready", "{log:#?}");
        assert_eq!(log[0]["status"], 200, "ready carried a body");
    } else {
        let errors: Vec<Value> = rt
            .results()
            .into_iter()
            .filter(|r| r["kind"] == "error")
            .collect();
        assert_eq!(errors.len(), 2);
        for e in &errors {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            assert!(body["errorMessage"].is_string(), "{body}");
            assert!(body["errorType"].is_string(), "{body}");
            assert!(
                e["error_type"].as_str().unwrap().starts_with("Runtime."),
                "{e}"
            );
        }
    }
    // Every runtime API call was understood.
    assert!(
        log.iter().all(|l| l["status"].as_i64().unwrap() < 300),
        "{log:#?}"
    );
}

#[test]
fn a_tencent_scf_function_answers_each_invocation() {
    run_invocations(Dialect::Scf);
}

#[test]
fn an_aws_lambda_function_answers_each_invocation() {
    run_invocations(Dialect::Lambda);
}

#[test]
fn a_refused_domain_settles_the_invocation_and_is_logged() {
    let fake = fake(&["cdn.example.com"]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(Dialect::Scf);
    let _function = start_function(&ep, &rt);
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let id = rt.invoke(cos, 3000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(
        r["kind"], "response",
        "refused for good is not retried: {r}"
    );
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["purged"], 2, "{body}");
    assert_eq!(body["refused"], 2, "{body}");
    assert_eq!(body["ok"], false);
    let refused: Vec<&Value> = body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "refused")
        .collect();
    assert!(refused.iter().all(|t| t["target"]
        .as_str()
        .unwrap()
        .starts_with("https://img.example.com/")));
    assert!(refused[0]["error"]
        .as_str()
        .unwrap()
        .contains("CdnHostNotExists"));
    let log = edgepurge_testkit::wait_for(Duration::from_secs(5), "the refusal logged", || {
        let log = function_log(&ep);
        log.contains("refused for good").then_some(log)
    });
    assert!(log.contains("img.example.com"), "{log}");
}

#[test]
fn a_lambda_function_with_a_bad_config_reports_an_init_error() {
    let fake = fake(&[]);
    let mut ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    ep.env.retain(|(k, _)| k != "EP_TEST_SECRET_ID");
    let rt = FakeRuntime::start(Dialect::Lambda);
    let _function = start_function(&ep, &rt);
    let r = edgepurge_testkit::wait_for(Duration::from_secs(20), "an init error", || {
        rt.results().into_iter().find(|r| r["kind"] == "init_error")
    });
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("EP_TEST_SECRET_ID"),
        "{body}"
    );
    assert_eq!(body["errorType"], "InvalidConfig");
}

#[test]
fn forwarding_succeeds_only_when_the_server_queued_the_body() {
    let fake = fake(&[]);
    let server_ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let server = server_ep.serve();
    let forward = |to: &str| {
        format!(
            "[function]\nforward_to = \"http://{to}/v1/events\"\ntoken_env = \"EP_TEST_WEBHOOK_TOKEN\"\n"
        )
    };
    let ep = Edgepurge::new(&forward(&server.addr.to_string()));
    let (code, out, stderr) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(0), "{out}\n{stderr}");
    assert_eq!(out["status"], 200);
    assert_eq!(out["answer"]["accepted"], 2, "{out}");
    let log = server_ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 2);

    // A wrong token: refused, not retried, exit 1.
    let mut bad = Edgepurge::new(&forward(&server.addr.to_string()));
    for (k, v) in &mut bad.env {
        if k == "EP_TEST_WEBHOOK_TOKEN" {
            *v = "wrong".into();
        }
    }
    let (code, out, _) = handle(&bad, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["status"], 401);
    assert_eq!(out["attempts"], 1);

    // Nobody listening: retried until the deadline, then exit 1.
    let port = edgepurge_testkit::free_port();
    let gone = Edgepurge::new(&forward(&format!("127.0.0.1:{port}")));
    let (code, out, _) = handle(&gone, &fixture("cos-put.json"), &["--deadline-ms", "800"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out["attempts"].as_u64().unwrap() >= 2, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("cannot reach"),
        "{out}"
    );
}

#[test]
fn a_packaged_zip_runs_as_the_function_from_its_bootstrap() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let zip_path = ep.dir.path().join("function.zip");
    // EDGEPURGE_FUNCTION_BIN: the static build scripts/test.sh makes (what users deploy);
    // else this test's own binary packages itself.
    let out = match std::env::var("EDGEPURGE_FUNCTION_BIN") {
        Ok(bin) => {
            let out = Command::new(&bin)
                .args(["--config", ep.config.to_str().unwrap()])
                .args(["package", "scf", "-o", zip_path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{bin} package: {out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("glibc"), "a static build: {stderr}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Err(_) => ep.ok(&["package", "scf", "-o", zip_path.to_str().unwrap()]),
    };
    assert!(out.contains("bootstrap + edgepurge.toml"), "{out}");

    // Unpacked as the platform does (into an empty directory, modes kept).
    let code_root = tempfile::tempdir().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    zip.extract(code_root.path()).unwrap();
    let bootstrap = code_root.path().join("bootstrap");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&bootstrap).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "bootstrap is executable: {mode:o}");

    // The platform runs `bootstrap` with no arguments, from another directory.
    let rt = FakeRuntime::start(Dialect::Scf);
    let mut cmd = Command::new(&bootstrap);
    cmd.current_dir("/")
        .env_remove("EDGEPURGE_CONFIG")
        .env_remove("EDGEPURGE_CONFIG_TOML");
    for (k, v) in ep.env.iter().cloned().chain(rt.env()) {
        cmd.env(k, v);
    }
    let _function = Proc::spawn_group("bootstrap", cmd, &ep.dir.path().join("bootstrap.log"));
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let id = rt.invoke(cos, 3000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "response", "{r}");
    assert_eq!(fake.purged().len(), 4);
}

#[test]
fn package_refuses_a_config_that_would_purge_nothing() {
    let ep = Edgepurge::new("[providers.t]\nkind = \"tencent-cdn\"\n");
    let out = ep.run(&["package", "lambda", "-o", "f.zip"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no [[rules]]"), "{stderr}");
    assert!(!ep.dir.path().join("f.zip").exists());
}

#[test]
fn the_lambda_loop_runs_under_cargo_lambdas_emulator() {
    use edgepurge_testkit::runtime::CargoLambda;
    let fake = fake(&["cdn.example.com", "img.example.com"]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let emulator = CargoLambda::start(&ep.dir.path().join("cargo-lambda.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepurge"));
    cmd.arg("function")
        .current_dir(ep.dir.path())
        .env_remove("EDGEPURGE_CONFIG_TOML")
        .env("EDGEPURGE_CONFIG", &ep.config);
    for (k, v) in ep.env.iter().cloned().chain(emulator.env()) {
        cmd.env(k, v);
    }
    let _function = Proc::spawn_group(
        "edgepurge-function",
        cmd,
        &ep.dir.path().join("function.log"),
    );

    let r = emulator.invoke(&fixture("cos-put.json"));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["purged"], 4, "{body}");
    assert_eq!(sorted_purges(&fake), COS_URLS);

    // A failing provider: the invoker gets Lambda's error shape. The emulator's deadline
    // header is not a time, so the function takes Lambda's default budget (3 s).
    fake.outage(Some(503));
    let r = emulator.invoke(&fixture("cos-put.json"));
    assert_eq!(r.status, 500, "{}", r.text());
    let body = r.json();
    assert_eq!(body["errorType"], "PurgeFailed", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not purged"),
        "{body}"
    );
}

#[test]
fn a_refusal_of_the_credentials_fails_the_invocation_so_the_event_is_not_lost() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(Dialect::Scf);
    let _function = start_function(&ep, &rt);
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    for code in [
        "AuthFailure.SecretIdNotFound",
        "UnauthorizedOperation.CdnHostUnauthorized",
    ] {
        // Every call, until fixed (a request over two domains is also resent per domain).
        fake.fail(code, 10);
        let id = rt.invoke(cos.clone(), 3000);
        let r = rt.result(&id, Duration::from_secs(20));
        assert_eq!(
            r["kind"], "error",
            "{code} can be fixed; the event must come again: {r}"
        );
        assert!(r["body"].as_str().unwrap().contains(code), "{r}");
        fake.reset();
    }
    // The same refusal from `handle`: failed, not refused.
    fake.fail("AuthFailure.SecretIdNotFound", 1);
    let (code, out, _) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(out["failed"], 4, "{out}");
    assert_eq!(out["refused"], 0, "{out}");
}

#[test]
fn a_warm_function_asks_again_about_a_domain_refused_in_an_earlier_invocation() {
    let fake = fake(&["cdn.example.com"]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(Dialect::Scf);
    let _function = start_function(&ep, &rt);
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    for _ in 0..2 {
        let id = rt.invoke(cos.clone(), 3000);
        assert_eq!(rt.result(&id, Duration::from_secs(20))["kind"], "response");
    }
    // Each invocation sent the refused domain's URLs for real (after the domain is added to
    // the account, the next delivery purges them): twice each, once with the other domain's
    // and once alone.
    let img_calls = fake
        .requests()
        .iter()
        .filter(|r| r["action"] == "PurgeUrlsCache" && r.to_string().contains("img.example.com"))
        .count();
    assert_eq!(img_calls, 4);
}

#[test]
fn an_answer_the_platform_refuses_is_replaced_by_a_brief_error_not_purged_again() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(Dialect::Scf);
    let _function = start_function(&ep, &rt);
    rt.refuse("response", 413);
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let id = rt.invoke(cos, 3000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "error", "{r}");
    assert!(r["body"].as_str().unwrap().contains("AnswerRefused"), "{r}");
    // SCF hands an unanswered invocation out again: the event was purged once, not in a loop.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.purges().len(), 1);
}

#[test]
fn a_lambda_invocation_already_past_its_deadline_fails_at_once() {
    let fake = fake(&[]);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let rt = FakeRuntime::start(Dialect::Lambda);
    let _function = start_function(&ep, &rt);
    let cos: Value = serde_json::from_slice(&fixture("cos-put.json")).unwrap();
    let id = rt.invoke(cos, -1000);
    let r = rt.result(&id, Duration::from_secs(20));
    assert_eq!(r["kind"], "error", "{r}");
    let answered_after = r["at_ms"].as_i64().unwrap() - r["received_ms"].as_i64().unwrap();
    assert!(answered_after < 1000, "{answered_after} ms");
    assert!(fake.requests().is_empty(), "nothing sent past the deadline");
}

#[test]
fn a_retry_after_longer_than_the_deadline_is_honoured_by_not_retrying() {
    let fake = fake(&[]);
    fake.answer_raw(503, "text/plain", "busy", &[("Retry-After", "30")], 1);
    let ep = Edgepurge::new(&tencent_config(&fake, "", COS_RULE));
    let started = Instant::now();
    let (code, out, _) = handle(&ep, &fixture("cos-put.json"), &["--deadline-ms", "8000"]);
    assert_eq!(code, Some(1), "{out}");
    for t in out["targets"].as_array().unwrap() {
        assert_eq!(t["attempts"], 1, "{t}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "gave up at once"
    );
}

#[test]
fn forwarding_to_something_that_is_not_edgepurge_fails() {
    // Another service that answers 200 with JSON (the Tencent stand-in's reset endpoint).
    let fake = fake(&[]);
    let ep = Edgepurge::new(&format!(
        "[function]\nforward_to = \"{}/__control/reset\"\n",
        fake.endpoint()
    ));
    let (code, out, _) = handle(&ep, &fixture("cos-put.json"), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["status"], 200);
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("not as edgepurge does"),
        "{out}"
    );
}
