//! The systemd unit in `packaging/systemd/` as systemd reads it: `systemd-analyze verify`
//! finds nothing to say about it (an unknown or misspelled setting is only a warning there,
//! so the test asserts there is none), and `systemd-analyze security --offline` rates its
//! sandbox well.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn unit() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(
        edgepurge_testkit::repo_root().join("packaging/systemd/edgepurge.service"),
    )
    .unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/edgepurge --config"));
    // The installed path does not exist here: point at the binary under test.
    let text = text.replace("/usr/local/bin/edgepurge", env!("CARGO_BIN_EXE_edgepurge"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgepurge.service");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn analyze(args: &[&str]) -> std::process::Output {
    edgepurge_testkit::require_programs("the systemd unit test", &["systemd-analyze"]);
    Command::new(edgepurge_testkit::program("systemd-analyze"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let (_dir, path) = unit();
    let out = analyze(&["verify", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd has something to say: {stderr}"
    );

    // The check itself catches a bad setting.
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ProtectSystem=strict", "ProtectSystem=bogus");
    std::fs::write(&path, bad).unwrap();
    let out = analyze(&["verify", path.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bogus"),
        "{out:?}"
    );
}

#[test]
fn the_systemd_unit_is_sandboxed() {
    let (_dir, path) = unit();
    let out = analyze(&["security", "--offline=true", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let level = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for edgepurge.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    // 0 is fully sandboxed, 10 not at all; systemd calls up to 2 "OK".
    assert!(level <= 2.0, "exposure {level}: {text}");
}
