//! The Tencent EdgeOne API stand-in (`testkit/fake_edgeone.py`): checks every request like
//! Tencent (TC3 signature for `teo` recomputed with the official SDK's signer), enforces the
//! zone's batch and daily quota per purge type, answers with Tencent's shapes, and exposes
//! what it received. It takes the Tencent stand-in's dummy credentials.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

pub use crate::tencent::{SECRET_ID, SECRET_KEY, SESSION_TOKEN};

pub const ZONE_ID: &str = "zone-2o0i41pv2h8c";

pub struct FakeEdgeOne {
    pub addr: SocketAddr,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require this session token (`X-TC-Token`).
    pub token: Option<String>,
    /// The zone's domains (others are `InvalidParameter.DomainNotFound`).
    pub domains: Vec<String>,
    pub url_batch: Option<u64>,
    pub url_daily: Option<u64>,
    pub prefix_batch: Option<u64>,
    pub tag_batch: Option<u64>,
    pub rate: Option<u64>,
    /// Prefetch (`CreatePrefetchTask`) URLs per request and a day.
    pub prefetch_batch: Option<u64>,
    pub prefetch_daily: Option<u64>,
    /// Actions the key may not call (`UnauthorizedOperation.CamUnauthorized`).
    pub deny: Vec<String>,
}

impl FakeEdgeOne {
    pub fn start(opts: Options) -> FakeEdgeOne {
        let script = crate::repo_root().join("testkit/fake_edgeone.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script)
            .args(["--port", "0", "--zone", ZONE_ID])
            .args(["--secret-id", SECRET_ID, "--secret-key", SECRET_KEY]);
        if let Some(t) = &opts.token {
            cmd.args(["--token", t]);
        }
        if !opts.domains.is_empty() {
            cmd.args(["--domains", &opts.domains.join(",")]);
        }
        if !opts.deny.is_empty() {
            cmd.args(["--deny", &opts.deny.join(",")]);
        }
        for (flag, v) in [
            ("--url-batch", opts.url_batch),
            ("--url-daily", opts.url_daily),
            ("--prefix-batch", opts.prefix_batch),
            ("--tag-batch", opts.tag_batch),
            ("--rate", opts.rate),
            ("--prefetch-batch", opts.prefetch_batch),
            ("--prefetch-daily", opts.prefetch_daily),
        ] {
            if let Some(v) = v {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let (proc, addr) = crate::spawn_stand_in("fake_edgeone", cmd);
        FakeEdgeOne { addr, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "edgeone", path, body)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Value> {
        match self.control("/__control/requests", None) {
            Value::Array(a) => a,
            other => panic!("requests: {other}"),
        }
    }

    /// Requests of one action.
    pub fn calls(&self, action: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["action"] == action)
            .collect()
    }

    /// Accepted `CreatePurgeTask` requests.
    pub fn purges(&self) -> Vec<Value> {
        self.calls("CreatePurgeTask")
            .into_iter()
            .filter(|r| r["error_code"].is_null())
            .collect()
    }

    /// Every target of an accepted purge of `Type` `purge_type`, minus those its
    /// `FailedList` named.
    pub fn purged(&self, purge_type: &str) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.purges() {
            if r["body"]["Type"] != purge_type {
                continue;
            }
            let refused: Vec<&Value> = r["failed_list"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .flat_map(|f| f["Targets"].as_array())
                        .flatten()
                        .collect()
                })
                .unwrap_or_default();
            for t in r["body"]["Targets"].as_array().into_iter().flatten() {
                if !refused.contains(&t) {
                    out.extend(t.as_str().map(str::to_owned));
                }
            }
        }
        out
    }

    /// `CreatePrefetchTask` takes the others and lists these targets in `FailedList`.
    pub fn reject_prefetch(&self, targets: &[&str], reason: &str) {
        self.control(
            "/__control/reject",
            Some(json!({ "targets": targets, "reason": reason, "action": "CreatePrefetchTask" })),
        );
    }

    /// The next `CreatePrefetchTask` call fails with this Tencent error code.
    pub fn control_fail_prefetch(&self, code: &str) {
        self.control(
            "/__control/fail",
            Some(
                json!({"code": code, "message": format!("injected {code}"), "count": 1,
                        "action": "CreatePrefetchTask"}),
            ),
        );
    }

    /// The next `count` `CreatePurgeTask` calls fail with this Tencent error code.
    pub fn fail(&self, code: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "message": format!("injected {code}"), "count": count})),
        );
    }

    /// New jobs' tasks start with this status (`processing`, `success`, `failed`, …).
    pub fn task_status(&self, status: &str) {
        self.control("/__control/tasks", Some(json!({ "status": status })));
    }

    /// Sets every existing task (or only `target`'s) to `status`; failed ones get
    /// `fail_type` and `fail_message`.
    pub fn set_tasks(&self, status: &str, target: Option<&str>, fail: Option<(&str, &str)>) {
        let mut arg = match target {
            Some(t) => json!({ "status": status, "target": t }),
            None => json!({ "status": status, "all": true }),
        };
        if let Some((kind, message)) = fail {
            arg["fail_type"] = json!(kind);
            arg["fail_message"] = json!(message);
        }
        self.control("/__control/tasks", Some(arg));
    }

    /// The key may call none of `actions` from now on (an empty list allows all again).
    pub fn deny(&self, actions: &[&str]) {
        self.control("/__control/deny", Some(json!({ "actions": actions })));
    }

    /// `CreatePurgeTask` takes the other targets and lists these in `FailedList`.
    pub fn reject(&self, targets: &[&str], reason: &str) {
        self.control(
            "/__control/reject",
            Some(json!({ "targets": targets, "reason": reason })),
        );
    }

    pub fn stats(&self) -> Value {
        self.control("/__control/stats", None)
    }
}
