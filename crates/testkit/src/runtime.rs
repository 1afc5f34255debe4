//! The function runtime API stand-in (`testkit/fake_function_runtime.py`): Tencent SCF's or
//! AWS Lambda's custom-runtime exchange, with invocations queued by the test and every answer
//! recorded.

use crate::http;
use crate::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Scf,
    Lambda,
}

pub struct FakeRuntime {
    pub addr: SocketAddr,
    pub dialect: Dialect,
    _proc: Proc,
}

impl FakeRuntime {
    pub fn start(dialect: Dialect) -> FakeRuntime {
        Self::start_with(dialect, false)
    }

    /// [`FakeRuntime::start`]; `quiet`: no log line per request (benchmarks).
    pub fn start_with(dialect: Dialect, quiet: bool) -> FakeRuntime {
        let script = crate::repo_root().join("testkit/fake_function_runtime.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).args([
            "--dialect",
            match dialect {
                Dialect::Scf => "scf",
                Dialect::Lambda => "lambda",
            },
        ]);
        if quiet {
            cmd.arg("--quiet");
        }
        let (proc, line) = Proc::spawn_until("fake_runtime", cmd, Duration::from_secs(20), |l| {
            l.starts_with("LISTENING ")
        });
        let port: u16 = line["LISTENING ".len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad LISTENING line {line:?}: {e}"));
        FakeRuntime {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dialect,
            _proc: proc,
        }
    }

    /// The environment a function started by this platform sees.
    pub fn env(&self) -> Vec<(String, String)> {
        match self.dialect {
            Dialect::Scf => vec![
                ("SCF_RUNTIME_API".into(), "127.0.0.1".into()),
                ("SCF_RUNTIME_API_PORT".into(), self.addr.port().to_string()),
                ("SCF_FUNCTIONNAME".into(), "edgepurge".into()),
                ("TENCENTCLOUD_RUNENV".into(), "SCF".into()),
            ],
            Dialect::Lambda => vec![
                ("AWS_LAMBDA_RUNTIME_API".into(), self.addr.to_string()),
                ("AWS_LAMBDA_FUNCTION_NAME".into(), "edgepurge".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
            ],
        }
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        let r = match body {
            Some(b) => http::post_json(self.addr, path, &b),
            None => http::get(self.addr, path),
        }
        .unwrap_or_else(|e| panic!("fake runtime {path}: {e}"));
        assert_eq!(r.status, 200, "fake runtime {path}: {}", r.text());
        r.json()
    }

    /// Queues an invocation (`event` as JSON, or a string sent as it is) with a budget of
    /// `budget_ms`; returns its request id.
    pub fn invoke(&self, event: Value, budget_ms: i64) -> String {
        let r = self.control(
            "/__control/invoke",
            Some(json!({ "event": event, "budget_ms": budget_ms })),
        );
        r["request_id"].as_str().unwrap_or_default().to_owned()
    }

    /// Refuses every answer of `kind` (`response` or `error`) with `status` (0: accept again).
    pub fn refuse(&self, kind: &str, status: u16) {
        self.control(
            "/__control/refuse",
            Some(json!({ "kind": kind, "status": status })),
        );
    }

    /// Every answer so far.
    pub fn results(&self) -> Vec<Value> {
        match self.control("/__control/results", None) {
            Value::Array(a) => a,
            other => panic!("results: {other}"),
        }
    }

    /// Every runtime API call so far.
    pub fn log(&self) -> Vec<Value> {
        match self.control("/__control/log", None) {
            Value::Array(a) => a,
            other => panic!("log: {other}"),
        }
    }

    /// Waits for the answer to `request_id`.
    pub fn result(&self, request_id: &str, timeout: Duration) -> Value {
        crate::wait_for(timeout, &format!("the answer to {request_id}"), || {
            self.results()
                .into_iter()
                .find(|r| r["request_id"] == request_id)
        })
    }
}

/// cargo-lambda's Lambda emulator (`cargo lambda watch --only-lambda-apis`, PyPI
/// `cargo-lambda`): a real local implementation of the Lambda runtime API, invoked through
/// Lambda's own Invoke API.
pub struct CargoLambda {
    pub addr: SocketAddr,
    _proc: Proc,
}

impl CargoLambda {
    pub fn start(log: &std::path::Path) -> CargoLambda {
        let bin = crate::repo_root().join(".venv-test/bin/cargo-lambda");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup-test-deps.sh (testkit/requirements.txt)",
            bin.display()
        );
        let port = crate::free_port();
        let mut cmd = Command::new(bin);
        // It wants a Cargo project in its directory, though it builds nothing here.
        cmd.current_dir(crate::repo_root().join("crates/edgepurge"))
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()]);
        let mut proc = Proc::spawn_group("cargo-lambda", cmd, log);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        proc.wait_ready(Duration::from_secs(30), &[], || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        });
        CargoLambda { addr, _proc: proc }
    }

    /// What the emulator tells a function to set.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_LAMBDA_RUNTIME_API".into(),
                format!("http://{}/.rt", self.addr),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), "_".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "4096".into()),
        ]
    }

    /// Invokes the function synchronously with `event`, as the Lambda Invoke API does.
    pub fn invoke(&self, event: &[u8]) -> http::Response {
        http::request(
            self.addr,
            "POST",
            "/2015-03-31/functions/_/invocations",
            &self.addr.to_string(),
            &[("Content-Type", "application/json")],
            event,
        )
        .unwrap_or_else(|e| panic!("cargo-lambda invoke: {e}"))
    }
}
