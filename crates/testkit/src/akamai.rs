//! The Akamai Fast Purge stand-in (`testkit/fake_akamai.py`): checks every request like
//! Akamai's API gateway and Fast Purge (EdgeGrid signature recomputed with the official
//! `edgegrid-python`, host, timestamp, nonce; path, JSON shape, one object type, 50,000-byte
//! body, the account's hosts and CP codes, the token buckets), answers with Akamai's shapes,
//! and exposes what it received and accepted.

use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;

// Dummy credentials in the shape of an `.edgerc` section (not real ones).
pub const HOST: &str = "akab-edgepurgetest0000-fakefakefake0000.luna.akamaiapis.net";
pub const CLIENT_TOKEN: &str = "akab-client-token-edgepurge-0000000000000";
pub const CLIENT_SECRET: &str = "EdgepurgeTestClientSecretNotReal0000000000=";
pub const ACCESS_TOKEN: &str = "akab-access-token-edgepurge-0000000000000";

pub struct FakeAkamai {
    pub addr: SocketAddr,
    _proc: Proc,
}

/// A token bucket: how many at once, and how many per minute.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub burst: f64,
    pub per_min: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// URL hostnames of the account (others: 403 `unauthorized arl`); empty: any.
    pub hosts: Vec<String>,
    /// CP codes of the account (others: 403 `unauthorized cpcode`); empty: any.
    pub cpcodes: Vec<u64>,
    /// The API client lacks the "CCU APIs" grant: every call is 403 pep-authz.
    pub no_grant: bool,
    /// Buckets other than Akamai's documented ones.
    pub url_bucket: Option<Bucket>,
    pub tag_bucket: Option<Bucket>,
    pub cpcode_bucket: Option<Bucket>,
    /// The `estimatedSeconds` of an accepted purge (default: 5, Akamai's example).
    pub estimated_seconds: Option<u64>,
}

impl FakeAkamai {
    pub fn start(opts: Options) -> FakeAkamai {
        let script = crate::repo_root().join("testkit/fake_akamai.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).args(["--port", "0"]).args([
            "--host",
            HOST,
            "--client-token",
            CLIENT_TOKEN,
            "--client-secret",
            CLIENT_SECRET,
            "--access-token",
            ACCESS_TOKEN,
        ]);
        if !opts.hosts.is_empty() {
            cmd.args(["--hosts", &opts.hosts.join(",")]);
        }
        if !opts.cpcodes.is_empty() {
            let codes: Vec<String> = opts.cpcodes.iter().map(u64::to_string).collect();
            cmd.args(["--cpcodes", &codes.join(",")]);
        }
        if let Some(s) = opts.estimated_seconds {
            cmd.args(["--estimated-seconds", &s.to_string()]);
        }
        if opts.no_grant {
            cmd.arg("--no-grant");
        }
        for (name, bucket) in [
            ("url", opts.url_bucket),
            ("tag", opts.tag_bucket),
            ("cpcode", opts.cpcode_bucket),
        ] {
            if let Some(b) = bucket {
                cmd.args([format!("--{name}-burst"), b.burst.to_string()]);
                cmd.args([format!("--{name}-per-min"), b.per_min.to_string()]);
            }
        }
        let (proc, addr) = crate::spawn_stand_in("fake_akamai", cmd);
        FakeAkamai { addr, _proc: proc }
    }

    /// The `endpoint` to configure (requests carry the credential's host in `Host`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        crate::control(self.addr, "akamai", path, body)
    }

    fn list(&self, path: &str) -> Vec<Value> {
        match self.control(path, None) {
            Value::Array(a) => a,
            other => panic!("{path}: {other}"),
        }
    }

    /// Every API call received, in order: `time`, `method`, `path`, `headers`
    /// (Authorization masked), `body`, `body_bytes`, `signature_ok`, `status`, `title`,
    /// `detail`, `objects`, `action`, `type`, `network`, `purge_id`, `support_id`.
    pub fn requests(&self) -> Vec<Value> {
        self.list("/__control/requests")
    }

    /// Every purge accepted: `purge_id`, `action`, `type`, `network`, `objects`, `time`.
    pub fn purges(&self) -> Vec<Value> {
        self.list("/__control/purges")
    }

    /// Every object of every accepted purge, as JSON values (strings, or CP code numbers).
    pub fn purged(&self) -> Vec<Value> {
        self.purges()
            .iter()
            .flat_map(|p| p["objects"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The next `count` API calls (after authentication) get this problem.
    pub fn fail(&self, http_status: u16, title: &str, detail: &str, count: u32) {
        self.control(
            "/__control/fail",
            Some(
                json!({"http_status": http_status, "title": title, "detail": detail,
                        "count": count}),
            ),
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

    /// Forgets requests, purges and faults; refills the buckets.
    pub fn reset(&self) {
        self.control("/__control/reset", Some(json!({})));
    }
}
