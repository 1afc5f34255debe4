//! The Cloudflare Queues HTTP API stand-in (`testkit/fake_cf_queues.py`): pull, ack and push
//! with Cloudflare's leases, retries, dead-letter queues, token check, error shape and 429s,
//! on a free loopback port; stopped when dropped.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

/// A dummy account id (32 hex digits, as Cloudflare's).
pub const ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// The queue R2 notifications go to, and a dead-letter queue.
pub const QUEUE_ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
pub const DEAD_QUEUE_ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2";
/// The API token the stand-in accepts (a dummy).
pub const TOKEN: &str = "cf-queues-test-token-EXAMPLE-0123456789";

pub struct FakeCfQueues {
    pub addr: SocketAddr,
    _proc: Proc,
}

impl FakeCfQueues {
    /// Starts the stand-in with [`QUEUE_ID`] and [`DEAD_QUEUE_ID`] (each with
    /// `max_retries`, no dead-letter queue of its own).
    pub fn start(max_retries: u32) -> FakeCfQueues {
        let script = crate::repo_root().join("testkit/fake_cf_queues.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script)
            .args(["--port", "0", "--account", ACCOUNT_ID, "--token", TOKEN])
            .args(["--queue", QUEUE_ID, "--queue", DEAD_QUEUE_ID])
            .args(["--max-retries", &max_retries.to_string()]);
        let (proc, addr) = crate::spawn_stand_in("fake_cf_queues", cmd);
        FakeCfQueues { addr, _proc: proc }
    }

    /// The API root, as `https://api.cloudflare.com/client/v4` is for the real one.
    pub fn endpoint(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "cfqueues", path, body)
    }

    /// Publishes a message: `content_type` `json` takes any JSON value, `text` a string,
    /// `bytes` and `v8` base64. Returns its id.
    pub fn send(&self, queue: &str, body: Value, content_type: &str) -> String {
        let r = self.control(
            "/__control/send",
            Some(json!({"queue": queue, "body": body, "content_type": content_type})),
        );
        r["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Sets a queue's `max_retries`, `dead_letter_queue` or `http_pull`.
    pub fn configure(&self, queue: &str, settings: Value) {
        let mut arg = settings;
        arg["queue"] = json!(queue);
        self.control("/__control/queue", Some(arg));
    }

    /// `{"ready", "delayed", "leased", "messages", "acked", "deleted"}` of a queue.
    pub fn state(&self, queue: &str) -> Value {
        self.control(&format!("/__control/state?queue={queue}"), None)
    }

    /// (ready, delayed, leased) of a queue.
    pub fn counts(&self, queue: &str) -> (u64, u64, u64) {
        let s = self.state(queue);
        let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
        (n("ready"), n("delayed"), n("leased"))
    }

    /// The next `count` API calls answer 429 with `Retry-After: retry_after_s`.
    pub fn throttle(&self, count: u32, retry_after_s: u64) {
        self.control(
            "/__control/throttle",
            Some(json!({"count": count, "retry_after": retry_after_s})),
        );
    }

    /// The next `count` API calls answer this HTTP status.
    pub fn fail(&self, count: u32, status: u16) {
        self.control(
            "/__control/fail",
            Some(json!({"count": count, "status": status})),
        );
    }

    /// Every API call received, in order: `{"time", "path", "body", "authorization",
    /// "status", "error_code"}`.
    pub fn requests(&self) -> Vec<Value> {
        match self.control("/__control/requests", None) {
            Value::Array(a) => a,
            other => panic!("requests: {other}"),
        }
    }
}
