//! The Fastly purge API stand-in (`testkit/fake_fastly.py`): checks every request like Fastly
//! (`Fastly-Key` and its scope, the service id, the cached URL's shape, surrogate keys:
//! printable ASCII, 1,024 bytes, 256 per batch), answers with Fastly's bodies and error
//! shapes, and exposes what it received.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

/// A dummy API token with the purge_select scope on [`SERVICE_ID`].
pub const API_TOKEN: &str = "fastly-test-token-EXAMPLE-0123456789";
/// A dummy API token Fastly knows, without the purge_select scope.
pub const READ_ONLY_TOKEN: &str = "fastly-read-only-token-EXAMPLE-0123";
/// A service id in Fastly's shape.
pub const SERVICE_ID: &str = "SU1Z0isxPaozGVKXdv0eY";

pub struct FakeFastly {
    pub addr: SocketAddr,
    _proc: Proc,
}

impl FakeFastly {
    pub fn start() -> FakeFastly {
        let script = crate::repo_root().join("testkit/fake_fastly.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).args(["--port", "0"]).args([
            "--token",
            API_TOKEN,
            "--read-only-token",
            READ_ONLY_TOKEN,
            "--service",
            SERVICE_ID,
        ]);
        let (proc, addr) = crate::spawn_stand_in("fake_fastly", cmd);
        FakeFastly { addr, _proc: proc }
    }

    /// The API base, as the official SDK's `host`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "fastly", path, body)
    }

    fn list(&self, path: &str) -> Vec<Value> {
        match self.control(path, None) {
            Value::Array(a) => a,
            other => panic!("{path}: {other}"),
        }
    }

    /// Every API call received, in order: `time`, `method`, `path`, `headers` (Fastly-Key
    /// masked), `body` (raw text), `json`, `kind` (`url`, `keys`, `key`), `cached_url`,
    /// `host`, `keys`, `keys_from`, `service`, `soft`, `status`, `msg`, `detail`,
    /// `purge_ids`, `throttled`, `reset` (of a 429).
    pub fn requests(&self) -> Vec<Value> {
        self.list("/__control/requests")
    }

    /// Every purge accepted: `id`, `kind` (`url` or `key`), `url` or `key`, `service`,
    /// `soft`, `time`.
    pub fn purges(&self) -> Vec<Value> {
        self.list("/__control/purges")
    }

    /// The next `count` API calls fail with this status and Fastly error body; a 429 also
    /// carries `Fastly-RateLimit-Reset` `reset_in` seconds ahead (rounded up).
    pub fn fail(&self, status: u16, msg: &str, count: u32, reset_in: Option<f64>) {
        self.control(
            "/__control/fail",
            Some(json!({"status": status, "msg": msg, "count": count, "reset_in": reset_in})),
        );
    }

    /// The next `count` API calls get this raw answer.
    pub fn answer_raw(&self, status: u16, content_type: &str, body: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(
                json!({"status": status, "raw": body, "content_type": content_type,
                        "count": count}),
            ),
        );
    }

    /// Forgets requests, purges and faults.
    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }
}
