//! Test-only helpers: start real servers and provider stand-ins on loopback ports chosen at
//! run time, talk to them, and stop them when dropped.
//!
//! Python helpers run in the virtualenv `scripts/test.sh` creates (`.venv-test`), or the
//! interpreter named by `EDGEPURGE_TEST_PYTHON`.
//!
//! Real servers ([`ceph::Ceph`], the caches in [`caches`], [`postgres::Postgres`]) come from Debian packages that
//! `scripts/setup-test-deps.sh` installs; nothing here installs anything. Each runs in the
//! foreground as a child process with its own temporary directory, and stops when dropped.

pub mod akamai;
pub mod aliyun;
pub mod caches;
pub mod ceph;
pub mod cfqueues;
pub mod cloudflare;
pub mod cloudfront;
pub mod edgeone;
pub mod fastly;
pub mod gcp;
pub mod http;
pub mod moto;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod rabbitmq;
pub mod runtime;
pub mod tencent;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// The Python interpreter with the test kit's packages.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGEPURGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv-test/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `scripts/test.sh` once (it creates the test virtualenv), or set \
         EDGEPURGE_TEST_PYTHON",
        venv.display()
    );
    venv
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP port free on 127.0.0.1 right now (bound to port 0, then released), never one this
/// process got before. Another process could take it before it is used: start the server
/// promptly.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
        if given.insert(port) {
            return port;
        }
    }
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Where `name` is installed: on `PATH`, or in the sbin directories (daemons such as
/// `varnishd`, `squid` and `nginx` live in `/usr/sbin`, which a user's `PATH` may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// [`find_program`], or a panic naming the setup script.
pub fn program(name: &str) -> PathBuf {
    find_program(name)
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/setup-test-deps.sh"))
}

/// Panics, naming the setup script, unless every program is installed.
pub fn require_programs(what: &str, programs: &[&str]) {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} not installed: run scripts/setup-test-deps.sh",
        missing.join(", ")
    );
}

/// The last `lines` lines of a text file (or why it cannot be read), for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// Reads `testkit/<name>` and replaces each `@KEY@` with its value; panics if a placeholder
/// is left.
pub fn render_template(name: &str, vars: &[(&str, &str)]) -> String {
    let path = repo_root().join("testkit").join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read template {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let mut rest = text.as_str();
    while let Some(at) = rest.find('@') {
        rest = &rest[at + 1..];
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        assert!(
            word.is_empty() || !rest[word.len()..].starts_with('@'),
            "template {name}: placeholder @{word}@ has no value"
        );
    }
    text
}

/// Writes `text` to `path`, panicking with the path on failure.
pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Runs a command to completion; panics with its output unless it succeeds. Returns stdout.
pub fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a Python stand-in that prints `LISTENING <port>` once it serves on loopback.
pub fn spawn_stand_in(name: &str, cmd: std::process::Command) -> (process::Proc, SocketAddr) {
    let (proc, line) = process::Proc::spawn_until(name, cmd, Duration::from_secs(20), |l| {
        l.starts_with("LISTENING ")
    });
    let port: u16 = line["LISTENING ".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: bad LISTENING line {line:?}: {e}"));
    (proc, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Calls a stand-in's `/__control/...` route (`body`: POST it as JSON, else GET) and returns
/// its JSON answer; any other answer than 200 fails the test.
pub fn control(
    addr: SocketAddr,
    name: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let r = match body {
        Some(b) => http::post_json(addr, path, &b),
        None => http::get(addr, path),
    }
    .unwrap_or_else(|e| panic!("fake {name} {path}: {e}"));
    assert_eq!(r.status, 200, "fake {name} {path}: {}", r.text());
    r.json()
}
