//! A real RabbitMQ broker (Debian package `rabbitmq-server`) on a free loopback port, with its
//! own Erlang port mapper (epmd) on another, its data and logs in a temporary directory, no
//! plugins; both stopped when dropped.

use crate::process::Proc;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

pub struct RabbitMq {
    pub addr: SocketAddr,
    // Dropped in this order: the broker, then its port mapper, then the directory.
    _broker: Proc,
    _epmd: Proc,
    _dir: tempfile::TempDir,
}

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

impl RabbitMq {
    pub fn start() -> RabbitMq {
        Self::start_with(|_| String::new())
    }

    /// Starts with more `rabbitmq.conf` lines, made from the broker's directory (where the
    /// caller may write certificates first).
    pub fn start_with(extra_conf: impl FnOnce(&std::path::Path) -> String) -> RabbitMq {
        crate::require_programs("the AMQP source tests", &["epmd"]);
        assert!(
            std::path::Path::new(SERVER).is_file(),
            "the AMQP source tests: rabbitmq-server is not installed: run \
             scripts/setup-test-deps.sh"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        let (port, epmd_port, dist_port) =
            (crate::free_port(), crate::free_port(), crate::free_port());
        std::fs::write(d.join("enabled_plugins"), "[].\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n\
                 disk_free_limit.absolute = 1MB\n{}",
                extra_conf(d)
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));

        // The port mapper in the foreground (its own, not the machine's shared daemon).
        let mut epmd = Command::new(crate::program("epmd"));
        epmd.args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"]);
        let mut epmd = Proc::spawn_group("epmd", epmd, &d.join("epmd.log"));
        let epmd_addr = SocketAddr::from(([127, 0, 0, 1], epmd_port));
        epmd.wait_ready(Duration::from_secs(10), &[], || {
            std::net::TcpStream::connect(epmd_addr).ok().map(|_| ())
        });

        let mut cmd = Command::new(SERVER);
        cmd.env("HOME", d)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODENAME", format!("rabbit-{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid"));
        let mut broker = Proc::spawn_group("rabbitmq-server", cmd, &d.join("rabbitmq.log"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        broker.wait_ready(Duration::from_secs(60), &[], || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        });
        RabbitMq {
            addr,
            _broker: broker,
            _epmd: epmd,
            _dir: dir,
        }
    }

    /// `amqp://127.0.0.1:PORT` (the default virtual host, guest access from loopback).
    pub fn url(&self) -> String {
        format!("amqp://{}", self.addr)
    }
}
