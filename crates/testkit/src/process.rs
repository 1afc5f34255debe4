//! Child processes that stop when dropped.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child process; dropped, it gets SIGTERM, then SIGKILL if still alive after 5 s.
///
/// Servers started with [`Proc::spawn_group`] lead their own process group: the signals go to
/// the whole group, so the workers they fork (nginx, varnish, ...) stop with them.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    /// Lines of standard output not consumed by [`Proc::spawn_until`].
    pub stdout: mpsc::Receiver<String>,
    /// Leads its own process group (signal the group, not only the leader).
    group: bool,
    /// Where standard output and error go ([`Proc::spawn_group`]).
    pub log: Option<PathBuf>,
}

impl Proc {
    /// Starts `cmd` and waits until a line of its standard output satisfies `ready`,
    /// returning that line. Standard error is inherited (shows in test output on failure).
    pub fn spawn_until(
        name: &str,
        mut cmd: Command,
        timeout: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> (Proc, String) {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{name}: no stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proc = Proc {
            name: name.to_owned(),
            child: Some(child),
            stdout: rx,
            group: false,
            log: None,
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match proc.stdout.recv_timeout(left) {
                Ok(line) if ready(&line) => return (proc, line),
                Ok(_) => continue,
                Err(_) => {
                    let status = proc
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok())
                        .flatten();
                    panic!(
                        "{name} did not become ready within {timeout:?} (exit status: {status:?})"
                    );
                }
            }
        }
    }

    /// Starts `cmd` as the leader of a new process group, standard output and error appended
    /// to `log`, and returns at once (wait for readiness with [`Proc::wait_ready`]).
    pub fn spawn_group(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{name}: cannot open log {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{name}: cannot clone log handle: {e}"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let (_tx, rx) = mpsc::channel();
        Proc {
            name: name.to_owned(),
            child: Some(child),
            stdout: rx,
            group: true,
            log: Some(log.to_owned()),
        }
    }

    /// Polls `ready` until it returns `Some`; panics after `timeout`, or as soon as the process
    /// exits, with the end of its log and of `extra_logs`.
    pub fn wait_ready<T>(
        &mut self,
        timeout: Duration,
        extra_logs: &[&Path],
        mut ready: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = ready() {
                return v;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let mut logs: Vec<&Path> = self.log.iter().map(PathBuf::as_path).collect();
                logs.extend_from_slice(extra_logs);
                let tails: String = logs
                    .iter()
                    .map(|p| format!("\n--- {}:\n{}", p.display(), crate::log_tail(p, 30)))
                    .collect();
                match exited {
                    Some(status) => {
                        panic!("{} exited during start-up ({status}){tails}", self.name)
                    }
                    None => panic!("{} not ready within {timeout:?}{tails}", self.name),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, no chance to clean up (crash tests). A group leader's whole group gets it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                signal_group(c.id(), "KILL");
            }
            let _ = c.kill();
            let _ = c.wait();
            if self.group {
                wait_group_gone(c.id(), Duration::from_secs(2));
            }
        }
    }

    /// SIGTERM and wait up to `timeout`; returns the exit code if it exited in time. A group
    /// leader's whole group gets the signal; what is left of the group 2 s after the leader is
    /// gone (or at `timeout`) gets SIGKILL.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let pid = c.id();
        if self.group {
            signal_group(pid, "TERM");
        } else {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Ok(Some(status)) = c.try_wait() {
                break status.code();
            }
            if Instant::now() >= deadline {
                if self.group {
                    signal_group(pid, "KILL");
                }
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if self.group {
            // Workers usually exit with their leader; give them a moment, then force.
            if !wait_group_gone(pid, Duration::from_secs(2)) {
                signal_group(pid, "KILL");
                wait_group_gone(pid, Duration::from_secs(2));
            }
        }
        code
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if group_members(pgid).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live (not zombie) processes whose process group is `pgid`, as `(pid, command name)`.
pub fn group_members(pgid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat.get(open + 1..close)?.to_owned();
            let mut rest = stat.get(close + 1..)?.split_whitespace();
            let state = rest.next()?;
            let _ppid = rest.next()?;
            let pgrp: u32 = rest.next()?.parse().ok()?;
            (pgrp == pgid && state != "Z" && state != "X").then_some((pid, comm))
        })
        .collect()
}
