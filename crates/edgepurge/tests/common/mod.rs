//! Helpers for integration tests that run the real `edgepurge` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use edgepurge_testkit::cloudfront::{self, FakeCloudFront};
use edgepurge_testkit::http;
use edgepurge_testkit::process::Proc;
use edgepurge_testkit::tencent::{self, FakeTencent};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub const WEBHOOK_TOKEN: &str = "test-webhook-token-0123456789";

/// A working directory with a config file, and the environment the config refers to.
pub struct Edgepurge {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Edgepurge {
    pub fn new(config_toml: &str) -> Edgepurge {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("edgepurge.toml");
        std::fs::write(&config, config_toml).expect("write config");
        Edgepurge {
            dir,
            config,
            env: vec![
                ("EP_TEST_SECRET_ID".into(), tencent::SECRET_ID.into()),
                ("EP_TEST_SECRET_KEY".into(), tencent::SECRET_KEY.into()),
                (
                    "EP_TEST_SESSION_TOKEN".into(),
                    tencent::SESSION_TOKEN.into(),
                ),
                ("EP_TEST_WEBHOOK_TOKEN".into(), WEBHOOK_TOKEN.into()),
            ],
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgepurge"));
        cmd.current_dir(self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("EDGEPURGE_CONFIG")
            .env_remove("EDGEPURGE_DB")
            .env("EDGEPURGE_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run edgepurge")
    }

    /// Runs a CLI command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "edgepurge {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn serve(&self) -> Server {
        self.serve_with_stderr(std::process::Stdio::inherit())
    }

    /// Starts the server with its log (standard error) going to `stderr`.
    pub fn serve_with_stderr(&self, stderr: std::process::Stdio) -> Server {
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.stderr(stderr);
        start_server(cmd)
    }

    /// Starts the server under `wrapper` (e.g. `prlimit --nofile=300:300 --`).
    pub fn serve_under(&self, wrapper: &[&str]) -> Server {
        let inner = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(inner.get_program())
            .args(inner.get_args());
        if let Some(dir) = inner.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        start_server(cmd)
    }

    /// The purge log as JSON records.
    pub fn log(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["log", "--json", "--limit", "100000"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line is JSON"))
            .collect()
    }

    /// Waits until every log record is final (succeeded, dead or skipped).
    pub fn settle(&self, timeout: Duration) -> Vec<Value> {
        edgepurge_testkit::wait_for(timeout, "every purge record to be final", || {
            let log = self.log(&[]);
            let done = !log.is_empty()
                && log.iter().all(|r| {
                    matches!(r["status"].as_str(), Some("succeeded" | "dead" | "skipped"))
                });
            done.then_some(log)
        })
    }
}

/// Epoch milliseconds of a time as the CLI's `--json` and the admin API show it (RFC 3339),
/// `None` for anything else (`null`, a number).
pub fn ms(v: &Value) -> Option<i64> {
    let text = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// This machine's address on its default route, if it has one (a UDP "connect" only picks
/// the route; nothing is sent).
pub fn non_loopback_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

pub struct Server {
    pub addr: SocketAddr,
    pub proc: Proc,
}

impl Server {
    pub fn post(&self, body: &[u8], token: Option<&str>) -> http::Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        http::request(
            self.addr,
            "POST",
            "/v1/events",
            &self.addr.to_string(),
            &headers,
            body,
        )
        .expect("POST /v1/events")
    }

    /// Posts with the right token and asserts 200.
    pub fn send(&self, body: &[u8]) -> Value {
        let r = self.post(body, Some(WEBHOOK_TOKEN));
        assert_eq!(r.status, 200, "POST /v1/events: {}", r.text());
        r.json()
    }
}

/// Posts a body to `addr` with the webhook token (for threads that have no `Server`).
pub fn post_events(addr: SocketAddr, body: &[u8]) -> http::Response {
    let auth = format!("Bearer {WEBHOOK_TOKEN}");
    http::request(
        addr,
        "POST",
        "/v1/events",
        "x",
        &[("Authorization", &auth)],
        body,
    )
    .expect("POST /v1/events")
}

pub fn start_server(cmd: Command) -> Server {
    let (proc, line) = Proc::spawn_until("edgepurge serve", cmd, Duration::from_secs(20), |l| {
        l.starts_with("listening on ")
    });
    let addr: SocketAddr = line["listening on ".len()..]
        .trim()
        .parse()
        .expect("listen address");
    Server { addr, proc }
}

/// A config with a Tencent provider pointing at `fake`, fast retry settings, and `rules`.
pub fn tencent_config(fake: &FakeTencent, provider_extra: &str, rules: &str) -> String {
    format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"

[store]
path = "edgepurge.db"

[dispatch]
linger_ms = 100
backoff_base_ms = 100
backoff_max_ms = 500
lane_lease_s = 2
poll_ms = 100
max_attempts = 5

[providers.tencent]
kind = "tencent-cdn"
endpoint = "{endpoint}"
secret_id_env = "EP_TEST_SECRET_ID"
secret_key_env = "EP_TEST_SECRET_KEY"
session_token_env = "EP_TEST_SESSION_TOKEN"
{provider_extra}

{rules}
"#,
        endpoint = fake.endpoint()
    )
}

/// A Tencent stand-in that requires the test session token.
pub fn fake_tencent() -> FakeTencent {
    FakeTencent::start(tencent::Options {
        token: Some(tencent::SESSION_TOKEN.into()),
        ..Default::default()
    })
}

pub const SITE_RULE: &str = r#"
[[rules]]
name = "site"
bucket = "assets"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
"#;

/// An S3-style (Ceph, raw keys) body with one record per key.
pub fn ceph_body(bucket: &str, event: &str, keys: &[String]) -> Vec<u8> {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "eventVersion": "2.2", "eventSource": "ceph:s3", "eventName": event,
                "eventTime": "2026-01-01T00:00:00.000Z",
                "s3": {"bucket": {"name": bucket}, "object": {"key": k, "size": 1}}
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
        .to_string()
        .into_bytes()
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../edgepurge-core/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// A CloudFront stand-in that requires the test session token.
pub fn fake_cloudfront() -> FakeCloudFront {
    FakeCloudFront::start(cloudfront::Options {
        token: Some(cloudfront::SESSION_TOKEN.into()),
        ..Default::default()
    })
}

/// A `[providers.cf]` CloudFront account pointing at `fake`, reading its credentials from the
/// variables [`Edgepurge::with_cloudfront_keys`] sets.
pub fn cloudfront_section(fake: &FakeCloudFront) -> String {
    format!(
        r#"
[providers.cf]
kind = "cloudfront"
distribution_id = "{dist}"
endpoint = "{endpoint}"
access_key_id_env = "EP_TEST_CF_KEY_ID"
secret_access_key_env = "EP_TEST_CF_SECRET"
session_token_env = "EP_TEST_CF_TOKEN"
timeout_s = 5
rate_per_s = 20
"#,
        dist = cloudfront::DISTRIBUTION_ID,
        endpoint = fake.endpoint()
    )
}

impl Edgepurge {
    /// Sets the CloudFront stand-in's dummy credentials for [`cloudfront_section`].
    pub fn with_cloudfront_keys(mut self) -> Edgepurge {
        self.env.extend([
            (
                "EP_TEST_CF_KEY_ID".to_owned(),
                cloudfront::ACCESS_KEY_ID.to_owned(),
            ),
            (
                "EP_TEST_CF_SECRET".to_owned(),
                cloudfront::SECRET_ACCESS_KEY.to_owned(),
            ),
            (
                "EP_TEST_CF_TOKEN".to_owned(),
                cloudfront::SESSION_TOKEN.to_owned(),
            ),
        ]);
        self
    }
}
