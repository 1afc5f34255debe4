//! Child processes that stop when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process; dropped, it gets SIGTERM, then SIGKILL if still alive after 5 s.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    /// Lines of standard output not consumed by [`Proc::spawn_until`].
    pub stdout: mpsc::Receiver<String>,
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

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, no chance to clean up (crash tests).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait up to `timeout`; returns the exit code if it exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
