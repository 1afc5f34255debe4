//! A moto server (PyPI `moto[server]`, an in-memory AWS) on a free loopback port, and
//! `testkit/sqsctl.py` to drive its SQS and S3 with boto3; stopped when dropped.

use crate::process::Proc;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

pub struct Moto {
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl Moto {
    pub fn start() -> Moto {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let bin = crate::repo_root().join(".venv-test/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup-test-deps.sh (testkit/requirements.txt)",
            bin.display()
        );
        let port = crate::free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut proc = Proc::spawn_group("moto_server", cmd, &dir.path().join("moto.log"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        proc.wait_ready(Duration::from_secs(30), &[], || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        });
        Moto {
            addr,
            _dir: dir,
            _proc: proc,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `sqsctl.py ENDPOINT args…`; its standard output, trimmed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let script = crate::repo_root().join("testkit/sqsctl.py");
        let mut cmd = Command::new(crate::python());
        cmd.arg(script).arg(self.endpoint()).args(args);
        crate::run("sqsctl", &mut cmd).trim().to_owned()
    }
}
