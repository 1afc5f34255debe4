//! The Google Cloud CDN stand-in (`testkit/fake_gcp.py`): Google's OAuth 2.0 token endpoint
//! (the JWT bearer assertion checked with the official `google-auth`: signature, `aud`,
//! `iat`/`exp`, scope, account) and the Compute API's `urlMaps.invalidateCache` and
//! `globalOperations.get` (bearer token, body, rate limit, Google's error shapes,
//! operations completed when the test says so).

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

pub const PROJECT: &str = "edgepurge-test";
pub const URL_MAP: &str = "web-map";
/// The audience Google requires (and the `token_uri` of the keys the stand-in writes).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

pub struct FakeGcp {
    pub addr: SocketAddr,
    /// Holds `key.json` (the account's key) and `wrong-key.json` (a key it does not have).
    pub dir: tempfile::TempDir,
    _proc: Proc,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lifetime of the access tokens issued (default 3600 s).
    pub token_lifetime_s: Option<u64>,
    /// Invalidations accepted in any 60 s (default 500, Cloud CDN's).
    pub rate_per_min: Option<u64>,
    /// Operations finish on their own after this long (default: when told).
    pub complete_after_s: Option<f64>,
    /// The account lacks compute.urlMaps.invalidateCache.
    pub no_permission: bool,
    /// The account lacks compute.globalOperations.get.
    pub no_operations_permission: bool,
}

impl FakeGcp {
    pub fn start(opts: Options) -> FakeGcp {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("fake_gcp: tempdir: {e}"));
        let script = crate::repo_root().join("testkit/fake_gcp.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script)
            .args(["--port", "0", "--project", PROJECT, "--url-map", URL_MAP])
            .arg("--state")
            .arg(dir.path());
        if let Some(s) = opts.token_lifetime_s {
            cmd.args(["--token-lifetime-s", &s.to_string()]);
        }
        if let Some(n) = opts.rate_per_min {
            cmd.args(["--rate-per-min", &n.to_string()]);
        }
        if let Some(s) = opts.complete_after_s {
            cmd.args(["--complete-after-s", &s.to_string()]);
        }
        if opts.no_permission {
            cmd.arg("--no-permission");
        }
        if opts.no_operations_permission {
            cmd.arg("--no-operations-permission");
        }
        let (proc, addr) = crate::spawn_stand_in("fake_gcp", cmd);
        FakeGcp {
            addr,
            dir,
            _proc: proc,
        }
    }

    /// The Compute API `endpoint` to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `token_uri` to configure.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The service account's key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.json")
    }

    /// A key file of the same account with a key it does not have.
    pub fn wrong_key_file(&self) -> PathBuf {
        self.dir.path().join("wrong-key.json")
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "gcp", path, body)
    }

    fn list(&self, path: &str) -> Vec<Value> {
        match self.control(path, None) {
            Value::Array(a) => a,
            other => panic!("{path}: {other}"),
        }
    }

    /// Every call, in order: `kind` (`token` or `api`), `method`, `path`, `headers`
    /// (Authorization masked), `body`, `status`, and for tokens `jwt_header`, `claims`,
    /// `signature_ok`, `error`, `token_n`; for API calls `token_n`, `token_refused`, `rule`,
    /// `reason`, `message`, `operation`, `operation_status`.
    pub fn requests(&self) -> Vec<Value> {
        self.list("/__control/requests")
    }

    /// The API calls (not token requests).
    pub fn api_calls(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["kind"] == "api")
            .collect()
    }

    /// The token requests.
    pub fn token_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["kind"] == "token")
            .collect()
    }

    /// Every invalidation accepted: `operation`, `time`, and the rule's `host`, `path`,
    /// `cacheTags`.
    pub fn invalidations(&self) -> Vec<Value> {
        self.list("/__control/invalidations")
    }

    /// Every access token issued: `token`, `n`, `expires_at`, `revoked`, `scope`.
    pub fn tokens(&self) -> Vec<Value> {
        self.list("/__control/tokens")
    }

    /// The next `count` API calls (after authentication) get this Google error.
    pub fn fail(&self, http_status: u16, reason: &str, status: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(
                json!({"http_status": http_status, "reason": reason, "status": status,
                        "message": format!("injected {reason}"), "count": count}),
            ),
        );
    }

    /// The next `count` token requests get this OAuth error.
    pub fn token_fail(&self, http_status: u16, error: &str, count: u32) {
        self.control(
            "/__control/token_fail",
            Some(json!({"http_status": http_status, "error": error,
                        "error_description": format!("injected {error}"), "count": count})),
        );
    }

    /// Marks every running operation DONE; with `error`, DONE with that error.
    pub fn complete(&self, error: Option<(&str, &str)>) -> u64 {
        let body = match error {
            Some((code, message)) => json!({"error": {"code": code, "message": message}}),
            None => json!({}),
        };
        self.control("/__control/complete", Some(body))["completed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Every access token issued so far is refused from now on.
    pub fn revoke_tokens(&self) {
        self.control("/__control/revoke", Some(json!({})));
    }

    /// Disables (or enables) the service account.
    pub fn set_disabled(&self, disabled: bool) {
        self.control("/__control/account", Some(json!({"disabled": disabled})));
    }

    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }
}
