//! The Amazon CloudFront API stand-in (`testkit/fake_cloudfront.py`): checks every request
//! like AWS (SigV4 recomputed with botocore's signer, the rest-xml body, the in-progress
//! limits, CallerReference idempotency), answers with CloudFront's XML shapes, and exposes
//! what it received and made.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

// Dummy credentials in the shape of AWS's documentation examples.
pub const ACCESS_KEY_ID: &str = "AKIDCLOUDFRONTEXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "cfEXAMPLEsecretKEY0000000000000000000000";
pub const SESSION_TOKEN: &str = "cf-session-token-EXAMPLE";
pub const DISTRIBUTION_ID: &str = "EDFDVBD6EXAMPLE";

pub struct FakeCloudFront {
    pub addr: SocketAddr,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require this session token (`X-Amz-Security-Token`).
    pub token: Option<String>,
    /// The distributions that exist (others: `NoSuchDistribution`); empty: only
    /// [`DISTRIBUTION_ID`].
    pub distributions: Vec<String>,
    /// Paths in progress per distribution (CloudFront: 3,000).
    pub max_paths: Option<u64>,
    /// Wildcard paths in progress per distribution (CloudFront: 15).
    pub max_wildcards: Option<u64>,
    /// Invalidations complete on their own after this many seconds (default: only when
    /// [`FakeCloudFront::complete`] says so).
    pub complete_after_s: Option<f64>,
}

impl FakeCloudFront {
    pub fn start(opts: Options) -> FakeCloudFront {
        let script = crate::repo_root().join("testkit/fake_cloudfront.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).args(["--port", "0"]).args([
            "--access-key-id",
            ACCESS_KEY_ID,
            "--secret-access-key",
            SECRET_ACCESS_KEY,
        ]);
        if let Some(t) = &opts.token {
            cmd.args(["--token", t]);
        }
        let distributions = if opts.distributions.is_empty() {
            DISTRIBUTION_ID.to_owned()
        } else {
            opts.distributions.join(",")
        };
        cmd.args(["--distributions", &distributions]);
        for (flag, v) in [
            ("--max-paths", opts.max_paths),
            ("--max-wildcards", opts.max_wildcards),
        ] {
            if let Some(v) = v {
                cmd.args([flag, &v.to_string()]);
            }
        }
        if let Some(s) = opts.complete_after_s {
            cmd.args(["--complete-after-s", &s.to_string()]);
        }
        let (proc, addr) = crate::spawn_stand_in("fake_cloudfront", cmd);
        FakeCloudFront { addr, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "cloudfront", path, body)
    }

    fn list(&self, path: &str) -> Vec<Value> {
        match self.control(path, None) {
            Value::Array(a) => a,
            other => panic!("{path}: {other}"),
        }
    }

    /// Every API call received, in order: `method`, `path`, `headers` (secrets masked),
    /// `body`, `signature_ok`, `caller_reference`, `paths`, `status`, `error_code`,
    /// `invalidation_id`, `replayed` (answered with an earlier invalidation).
    pub fn requests(&self) -> Vec<Value> {
        self.list("/__control/requests")
    }

    /// Every invalidation made: `id`, `distribution`, `caller_reference`, `paths`, `status`.
    pub fn invalidations(&self) -> Vec<Value> {
        self.list("/__control/invalidations")
    }

    /// Every path (or `#tag`) of every invalidation made.
    pub fn invalidated(&self) -> Vec<String> {
        self.invalidations()
            .iter()
            .flat_map(|i| {
                i["paths"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
            })
            .collect()
    }

    /// The next `count` API calls fail with this CloudFront error and HTTP status.
    pub fn fail(&self, code: &str, http_status: u16, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"code": code, "http_status": http_status, "count": count})),
        );
    }

    /// The next `count` API calls get this raw answer (status, content type, body).
    pub fn answer_raw(&self, http_status: u16, content_type: &str, body: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"http_status": http_status, "raw": body,
                        "content_type": content_type, "count": count})),
        );
    }

    /// The next `count` API calls are carried out, then left unanswered (the connection
    /// closes): the caller cannot know whether the invalidation was made.
    pub fn lose_answers(&self, count: u32) {
        self.control(
            "/__control/fail",
            Some(json!({"lose_answer": true, "count": count})),
        );
    }

    /// Marks every invalidation in progress `Completed`.
    pub fn complete(&self) -> u64 {
        self.control("/__control/complete", Some(json!({})))["completed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Forgets requests, invalidations and faults.
    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }
}
