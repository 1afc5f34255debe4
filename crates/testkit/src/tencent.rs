//! The Tencent Cloud CDN API stand-in (`testkit/fake_tencent_cdn.py`): checks every request
//! like Tencent (signature recomputed with the official SDK's signer), answers with
//! Tencent's shapes, and exposes what it received.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

pub const SECRET_ID: &str = "AKIDtestEXAMPLEid0000000000000000";
pub const SECRET_KEY: &str = "testEXAMPLEkey0000000000000000";
pub const SESSION_TOKEN: &str = "session-token-EXAMPLE";

pub struct FakeTencent {
    pub addr: SocketAddr,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require this session token (`X-TC-Token`).
    pub token: Option<String>,
    /// Accept only these CDN hosts.
    pub domains: Vec<String>,
    pub url_quota: Option<u64>,
    pub path_quota: Option<u64>,
    pub url_batch: Option<u64>,
    pub path_batch: Option<u64>,
    pub rate: Option<u64>,
    /// Prefetch (`PushUrlsCache`) URLs a day per area, and per request.
    pub push_quota: Option<u64>,
    pub push_batch: Option<u64>,
    /// Listen on this port (to restart on the same address); 0 picks a free one.
    pub port: u16,
    /// No log line per request (benchmarks send thousands).
    pub quiet: bool,
}

impl FakeTencent {
    pub fn start(opts: Options) -> FakeTencent {
        let script = crate::repo_root().join("testkit/fake_tencent_cdn.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script)
            .args(["--port", &opts.port.to_string()])
            .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY]);
        if let Some(t) = &opts.token {
            cmd.args(["--token", t]);
        }
        if opts.quiet {
            cmd.arg("--quiet");
        }
        if !opts.domains.is_empty() {
            cmd.args(["--domains", &opts.domains.join(",")]);
        }
        for (flag, v) in [
            ("--url-quota", opts.url_quota),
            ("--path-quota", opts.path_quota),
            ("--url-batch", opts.url_batch),
            ("--path-batch", opts.path_batch),
            ("--rate", opts.rate),
            ("--push-quota", opts.push_quota),
            ("--push-batch", opts.push_batch),
        ] {
            if let Some(v) = v {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let (proc, addr) = crate::spawn_stand_in("fake_tencent_cdn", cmd);
        FakeTencent { addr, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "tencent", path, body)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Value> {
        match self.control("/__control/requests", None) {
            Value::Array(a) => a,
            other => panic!("requests: {other}"),
        }
    }

    /// Successful purge requests only.
    pub fn purges(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["error_code"].is_null()
                    && matches!(
                        r["action"].as_str(),
                        Some("PurgeUrlsCache" | "PurgePathCache")
                    )
            })
            .collect()
    }

    /// Every URL or path purged successfully.
    pub fn purged(&self) -> Vec<String> {
        self.purges()
            .iter()
            .flat_map(|r| {
                let list = if r["body"]["Urls"].is_array() {
                    &r["body"]["Urls"]
                } else {
                    &r["body"]["Paths"]
                };
                list.as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
            })
            .collect()
    }

    /// The next `count` `PushUrlsCache` calls answer with Tencent error `code`.
    pub fn fail_push(&self, code: &str, message: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "message": message, "count": count, "action": "PushUrlsCache"})),
        );
    }

    /// Every `PushUrlsCache` call received, in order.
    pub fn pushes(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["action"] == "PushUrlsCache")
            .collect()
    }

    /// The next `count` purge requests fail with this Tencent error code.
    pub fn fail(&self, code: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "message": format!("injected {code}"), "count": count})),
        );
    }

    /// Forgets the requests, faults, delays, quota use and rate windows so far.
    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }

    /// The next `count` purge requests answer a raw HTTP status.
    pub fn fail_http(&self, status: u16, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"http_status": status, "raw": "upstream trouble", "count": count})),
        );
    }

    /// The next `count` purge requests get this raw answer (status, content type, body and
    /// extra headers), e.g. an HTML page, truncated JSON or a redirect.
    pub fn answer_raw(
        &self,
        status: u16,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
        count: u32,
    ) {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.control(
            "/__control/fail",
            Some(
                json!({"http_status": status, "raw": body, "content_type": content_type,
                        "headers": headers, "count": count}),
            ),
        );
    }

    /// Whether every API answer closes its connection (each call then needs a new one).
    pub fn close_connections(&self, close: bool) {
        self.control("/__control/connections", Some(json!({"close": close})));
    }

    /// Every purge request answers this raw HTTP status until `outage(None)`.
    pub fn outage(&self, http_status: Option<u16>) {
        let arg = match http_status {
            Some(s) => json!({"http_status": s, "raw": "service unavailable"}),
            None => json!({"off": true}),
        };
        self.control("/__control/outage", Some(arg));
    }

    /// A share (0..1) of purge requests fail at random with this Tencent error code.
    pub fn flaky(&self, rate: f64, code: &str) {
        self.control(
            "/__control/flaky",
            Some(json!({"rate": rate, "code": code})),
        );
    }

    pub fn delay(&self, ms: u64, count: u32) {
        self.control("/__control/delay", Some(json!({"ms": ms, "count": count})));
    }

    /// New purge tasks' URLs start with this status (`process`, `done` or `fail`).
    pub fn task_status(&self, status: &str) {
        self.control("/__control/tasks", Some(json!({ "status": status })));
    }

    /// Sets every existing task's URLs (or only `url`'s entries) to `status`.
    pub fn set_tasks(&self, status: &str, url: Option<&str>) {
        let arg = match url {
            Some(u) => json!({ "status": status, "url": u }),
            None => json!({ "status": status, "all": true }),
        };
        self.control("/__control/tasks", Some(arg));
    }

    pub fn stats(&self) -> Value {
        self.control("/__control/stats", None)
    }
}
