//! A real PostgreSQL server (Debian package `postgresql`) on a free loopback port, its data
//! directory and socket in a temporary directory, trust authentication for the superuser
//! `edgepurge`.
//!
//! Tests that only need a database share one server per test binary
//! ([`Postgres::shared`]) and take a fresh database each ([`Postgres::create_database`]), so
//! they run in parallel without paying a server start each. A test that stops and starts the
//! server ([`Postgres::stop`], [`Postgres::restart`]) owns one ([`Postgres::start`]), stopped
//! when dropped.
//!
//! The server runs as the `postgres` system user when the tests run as root (PostgreSQL
//! refuses to run as root).

use crate::process::Proc;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The superuser `initdb` creates (trust authentication: tests only, loopback only).
pub const USER: &str = "edgepurge";

/// How the server is set up.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Flush commits to disk (off in tests: faster, and a crash of the machine loses only
    /// test data; on for benchmarks, as in production).
    pub fsync: bool,
    pub max_connections: u32,
    /// Accept TLS with a certificate for 127.0.0.1 signed by a test CA ([`Postgres::ca_file`]).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: false,
            max_connections: 300,
            tls: false,
        }
    }
}

pub struct Postgres {
    pub port: u16,
    opts: Options,
    bin: PathBuf,
    run_as: Option<String>,
    // A mutex only so the shared server can live in a static.
    server: std::sync::Mutex<Option<Proc>>,
    // Dropped last: the data directory.
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/VERSION/bin` that has `postgres` and `initdb`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                .then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `postgres`'s uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = crate::run(
            "find the postgres user",
            Command::new("id").args([flag, "postgres"]),
        );
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("id {flag} postgres gave {out:?}: {e}"))
    };
    (id("-u"), id("-g"))
}

impl Postgres {
    /// A server of this test's own (stopped when dropped).
    pub fn start() -> Postgres {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Postgres {
        let bin = bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): run \
                 scripts/setup-test-deps.sh"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("edgepurge-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let run_as = is_root().then(|| "postgres".to_owned());
        let data = dir.path().join("data");
        let run = dir.path().join("run");
        for d in [&data, &run] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        }
        if run_as.is_some() {
            // The server's user must reach its data directory and socket.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
            let (uid, gid) = postgres_ids();
            for d in [&data, &run] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", d.display()));
            }
        }
        let mut pg = Postgres {
            port: crate::free_port(),
            opts,
            bin,
            run_as,
            server: std::sync::Mutex::new(None),
            dir,
        };
        let mut initdb = pg.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .arg("--no-instructions");
        crate::run("initdb", &mut initdb);
        if opts.tls {
            pg.make_certificates();
        }
        pg.launch();
        pg
    }

    /// The test CA's certificate (PEM), for servers started with `tls`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A test CA and a server certificate for 127.0.0.1 and localhost, its key readable by
    /// the server's user only.
    fn make_certificates(&self) {
        crate::require_programs("PostgreSQL over TLS", &["openssl"]);
        let d = self.dir.path();
        let ssl = |args: &[&str]| {
            crate::run(
                "make test certificates",
                Command::new(crate::program("openssl"))
                    .current_dir(d)
                    .args(args),
            );
        };
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=edgepurge test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        ssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        crate::write_file(
            &d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        );
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let key = d.join("server.key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", key.display()));
        if self.run_as.is_some() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&key, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", key.display()));
        }
    }

    /// One server for every test of this test binary, started on first use. It stops when
    /// the test process exits (a watcher process stops it and removes its directory), since
    /// statics are never dropped.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let pg = Postgres::start();
            pg.watch_parent();
            pg
        })
    }

    /// A command for one of the server's programs, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server on its port (again, after [`Postgres::stop`]).
    fn launch(&mut self) {
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path().join("run"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("max_connections={}", self.opts.max_connections),
            ])
            .args([
                "-c",
                if self.opts.fsync {
                    "fsync=on"
                } else {
                    "fsync=off"
                },
            ])
            .args([
                "-c",
                if self.opts.fsync {
                    "synchronous_commit=on"
                } else {
                    "synchronous_commit=off"
                },
            ])
            .args([
                "-c",
                "full_page_writes=off",
                "-c",
                "log_min_messages=warning",
            ]);
        if self.opts.tls {
            let d = self.dir.path();
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(format!("ssl_cert_file={}", d.join("server.pem").display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", d.join("server.key").display()));
        }
        let log = self.dir.path().join("postgres.log");
        let mut server = Proc::spawn_group("postgres", cmd, &log);
        let addr = self.addr();
        server.wait_ready(Duration::from_secs(30), &[], || {
            // Accepting connections is not enough (it answers "starting up" a moment):
            // pg_isready says when it takes sessions.
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            (ok && std::net::TcpStream::connect(addr).is_ok()).then_some(())
        });
        *self.server_slot() = Some(server);
    }

    fn server_slot(&self) -> std::sync::MutexGuard<'_, Option<Proc>> {
        self.server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn addr(&self) -> SocketAddr {
        crate::loopback(self.port)
    }

    /// `postgres://edgepurge@127.0.0.1:PORT/DB`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        crate::run(
            "create a test database",
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .arg(&name),
        );
        self.url(&name)
    }

    /// Runs SQL as the superuser in `database`; returns what `psql` printed (unaligned, no
    /// headers).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        crate::run(
            "psql",
            Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args([
                    "-d",
                    database,
                    "-X",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                ])
                .arg(sql),
        )
    }

    /// The postmaster's pid (from its pid file), while it runs.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Stops the server: fast shutdown (sessions are ended), or immediate (as a crash) when
    /// `immediate`. Clients see their connections close.
    pub fn stop(&mut self, immediate: bool) {
        let Some(mut server) = self.server_slot().take() else {
            return;
        };
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("kill")
                .args([if immediate { "-QUIT" } else { "-INT" }, &pid.to_string()])
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while server.is_running() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        server.terminate(Duration::from_secs(5));
    }

    /// Starts a stopped server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop(false);
        self.launch();
    }

    /// Starts the server again after [`Postgres::stop`].
    pub fn start_again(&mut self) {
        if self.server_slot().is_none() {
            self.launch();
        }
    }

    /// Has a watcher stop the server and remove its directory once this process is gone.
    fn watch_parent(&self) {
        let Some(pid) = self.postmaster_pid() else {
            return;
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; \
             kill -INT {pid} 2>/dev/null; \
             for i in $(seq 1 100); do kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; \
             kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
            parent = std::process::id(),
            dir = self.dir.path().display()
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!(
                "cannot start the PostgreSQL watcher (the server may outlive the tests): {e}"
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_takes_databases_and_restarts_on_its_port() {
        let mut pg = Postgres::start();
        let url = pg.create_database();
        let db = url.rsplit('/').next().unwrap_or_default().to_owned();
        pg.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        pg.restart();
        assert_eq!(pg.psql(&db, "SELECT x FROM t").trim(), "7");
        pg.stop(true);
        assert!(std::net::TcpStream::connect(pg.addr()).is_err(), "stopped");
        pg.start_again();
        assert_eq!(pg.psql(&db, "SELECT x FROM t").trim(), "7");
    }
}
