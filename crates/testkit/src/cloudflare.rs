//! The Cloudflare purge API stand-in (`testkit/fake_cloudflare.py`): checks every request like
//! Cloudflare (bearer token, zone id, one purge mode per body, items per request, prefix
//! form, the per-plan token buckets), answers with Cloudflare's envelope and error bodies,
//! and exposes what it received.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

/// A dummy API token with the Cache Purge permission on [`ZONE_ID`].
pub const API_TOKEN: &str = "cf-test-token-EXAMPLE-0123456789abcdef";
/// A dummy API token Cloudflare knows, without the Cache Purge permission.
pub const READ_ONLY_TOKEN: &str = "cf-read-only-token-EXAMPLE-0123456789";
/// The zone id of Cloudflare's API documentation examples.
pub const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";

pub struct FakeCloudflare {
    pub addr: SocketAddr,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `free` (default), `pro`, `business` or `enterprise`: the limits it enforces.
    pub plan: Option<String>,
    /// Most `files` per request (default: the plan's).
    pub max_files: Option<u64>,
    /// Single-file purge bucket, URLs per second (default: the plan's).
    pub url_rate: Option<f64>,
    /// Tag/host/prefix bucket refill, requests per minute (default: the plan's).
    pub bulk_per_minute: Option<f64>,
    /// Tag/host/prefix bucket size (default: the plan's).
    pub bulk_bucket: Option<f64>,
}

impl FakeCloudflare {
    pub fn start(opts: Options) -> FakeCloudflare {
        let script = crate::repo_root().join("testkit/fake_cloudflare.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).args(["--port", "0"]).args([
            "--token",
            API_TOKEN,
            "--read-only-token",
            READ_ONLY_TOKEN,
            "--zone",
            ZONE_ID,
        ]);
        if let Some(p) = &opts.plan {
            cmd.args(["--plan", p]);
        }
        for (flag, v) in [
            ("--max-files", opts.max_files.map(|v| v as f64)),
            ("--url-rate", opts.url_rate),
            ("--bulk-per-minute", opts.bulk_per_minute),
            ("--bulk-bucket", opts.bulk_bucket),
        ] {
            if let Some(v) = v {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let (proc, addr) = crate::spawn_stand_in("fake_cloudflare", cmd);
        FakeCloudflare { addr, _proc: proc }
    }

    /// The API base, as the official SDK's `base_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "cloudflare", path, body)
    }

    fn list(&self, path: &str) -> Vec<Value> {
        match self.control(path, None) {
            Value::Array(a) => a,
            other => panic!("{path}: {other}"),
        }
    }

    /// Every API call received, in order: `method`, `path`, `headers` (authorization
    /// masked), `body` (raw text), `json`, `action`, `mode`, `items`, `status`,
    /// `error_codes`, `purge_id`, `throttled`, `ray`, `time`.
    pub fn requests(&self) -> Vec<Value> {
        self.list("/__control/requests")
    }

    /// Every purge accepted: `id`, `zone`, `action`, `mode`, `items`, `time`.
    pub fn purges(&self) -> Vec<Value> {
        self.list("/__control/purges")
    }

    /// The next `count` API calls fail with this status and Cloudflare error (and
    /// `Retry-After`, when given).
    pub fn fail(
        &self,
        status: u16,
        code: i64,
        message: &str,
        count: u32,
        retry_after: Option<u64>,
    ) {
        self.control(
            "/__control/fail",
            Some(
                json!({"status": status, "code": code, "message": message, "count": count,
                        "retry_after": retry_after}),
            ),
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

    /// New token buckets (full).
    pub fn limits(
        &self,
        bulk_per_minute: Option<f64>,
        bulk_bucket: Option<f64>,
        url_rate: Option<f64>,
    ) {
        self.control(
            "/__control/limits",
            Some(
                json!({"bulk_per_minute": bulk_per_minute, "bulk_bucket": bulk_bucket,
                        "url_rate": url_rate}),
            ),
        );
    }

    /// Forgets requests, purges and faults; the buckets are full again.
    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }
}
