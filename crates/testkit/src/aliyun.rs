//! The Alibaba Cloud CDN API stand-in (`testkit/fake_aliyun_cdn.py`): checks every request
//! like Alibaba's gateway (ACS3 signature recomputed with the official SDK's signing code),
//! answers with Alibaba's shapes, and exposes what it received.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

pub const ACCESS_KEY_ID: &str = "LTAI5tTESTexampleKeyId00";
pub const ACCESS_KEY_SECRET: &str = "testEXAMPLEsecret000000000000a";
pub const SECURITY_TOKEN: &str = "sts-token-EXAMPLE";

pub struct FakeAliyun {
    pub addr: SocketAddr,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require this STS security token (`x-acs-security-token`).
    pub token: Option<String>,
    /// Accept only these accelerated domains.
    pub domains: Vec<String>,
    pub url_quota: Option<u64>,
    pub dir_quota: Option<u64>,
    /// Prefetch (`PushObjectCache`) URLs a day.
    pub preload_quota: Option<u64>,
    /// Calls per second per account.
    pub rate: Option<u64>,
}

impl FakeAliyun {
    pub fn start(opts: Options) -> FakeAliyun {
        let script = crate::repo_root().join("testkit/fake_aliyun_cdn.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script)
            .args(["--port", "0"])
            .args(["--access-key-id", ACCESS_KEY_ID])
            .args(["--access-key-secret", ACCESS_KEY_SECRET]);
        if let Some(t) = &opts.token {
            cmd.args(["--token", t]);
        }
        if !opts.domains.is_empty() {
            cmd.args(["--domains", &opts.domains.join(",")]);
        }
        for (flag, v) in [
            ("--url-quota", opts.url_quota),
            ("--dir-quota", opts.dir_quota),
            ("--preload-quota", opts.preload_quota),
            ("--rate", opts.rate),
        ] {
            if let Some(v) = v {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let (proc, addr) = crate::spawn_stand_in("fake_aliyun_cdn", cmd);
        FakeAliyun { addr, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "aliyun", path, body)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Value> {
        match self.control("/__control/requests", None) {
            Value::Array(a) => a,
            other => panic!("requests: {other}"),
        }
    }

    /// Successful refresh requests of `action` only.
    pub fn refreshes(&self, action: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["error_code"].is_null() && r["action"] == action)
            .collect()
    }

    /// Every path refreshed successfully by `RefreshObjectCaches`.
    pub fn refreshed(&self) -> Vec<String> {
        self.refreshes("RefreshObjectCaches")
            .iter()
            .flat_map(|r| {
                r["params"]["ObjectPath"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The next `count` `PushObjectCache` calls fail with that Alibaba error.
    pub fn fail_push(&self, code: &str, http_status: u16, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "message": format!("injected {code}"),
                        "http_status": http_status, "count": count,
                        "action": "PushObjectCache"})),
        );
    }

    /// The next `count` refresh requests fail with this Alibaba error code and HTTP status.
    pub fn fail(&self, code: &str, http_status: u16, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "message": format!("injected {code}"),
                        "http_status": http_status, "count": count})),
        );
    }

    /// The next `count` refresh requests get a raw answer (status, content type, body).
    pub fn answer_raw(&self, status: u16, content_type: &str, body: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(
                json!({"http_status": status, "raw": body, "content_type": content_type,
                        "count": count}),
            ),
        );
    }

    /// New tasks' entries start with this status (`Refreshing`, `Complete`, `Failed`).
    pub fn task_status(&self, status: &str) {
        self.control("/__control/tasks", Some(json!({ "status": status })));
    }

    /// Sets every existing task entry (or only `path`'s) to `status`.
    pub fn set_tasks(&self, status: &str, path: Option<&str>) {
        let arg = match path {
            Some(p) => json!({ "status": status, "path": p, "description": "Origin Timeout" }),
            None => json!({ "status": status, "all": true }),
        };
        self.control("/__control/tasks", Some(arg));
    }

    /// The key lacks the RAM permission for these actions.
    pub fn deny(&self, actions: &[&str]) {
        self.control("/__control/deny", Some(json!({ "actions": actions })));
    }

    pub fn stats(&self) -> Value {
        self.control("/__control/stats", None)
    }
}
