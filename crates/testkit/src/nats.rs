//! A real `nats-server` with JetStream (Debian package `nats-server`) on a free loopback
//! port, its store in a temporary directory; stopped when dropped.

use crate::process::Proc;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

pub struct NatsServer {
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        crate::require_programs("the NATS source tests", &["nats-server"]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = crate::free_port();
        let mut cmd = Command::new(crate::program("nats-server"));
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("js"));
        let mut proc = Proc::spawn_group("nats-server", cmd, &dir.path().join("nats.log"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        proc.wait_ready(Duration::from_secs(20), &[], || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        });
        NatsServer {
            addr,
            _dir: dir,
            _proc: proc,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}
