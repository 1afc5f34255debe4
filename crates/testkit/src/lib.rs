//! Test-only helpers: start real servers and provider stand-ins on loopback ports chosen at
//! run time, talk to them, and stop them when dropped.
//!
//! Python helpers run in the virtualenv `scripts/test.sh` creates (`.venv-test`), or the
//! interpreter named by `EDGEPURGE_TEST_PYTHON`.

pub mod http;
pub mod process;
pub mod tencent;

use std::path::PathBuf;
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
