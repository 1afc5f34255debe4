//! Real HTTP caches (CDN edge nodes) in front of an origin, each on a free loopback port with
//! its own temporary directory, in the foreground, stopped on drop.
//!
//! All four behave alike for the tests:
//! - GET responses are cached for 1 h whatever the origin says, so a stale hit is visible;
//! - the request path goes to the origin unchanged (path-style `/bucket/key`), the origin is
//!   asked with its own address as Host;
//! - objects are keyed on the client's Host + path: a `PURGE` with `Host: cdn.test` removes
//!   exactly what a GET with that Host stored;
//! - every response says hit or miss in `X-Cache` ([`Cache::get`] parses it);
//! - purges are accepted from 127.0.0.1 only.
//!
//! | kind | PURGE cached / not cached | PURGE from 127.0.0.2 | extras |
//! |---|---|---|---|
//! | Varnish 7.1 | 200 / 200 | 405 | `BAN` + `X-Ban-Url: <regex on path>` (this Host), `PURGEKEY` + `xkey-purge: k1 k2` |
//! | Squid 5.7 | 200 / 404 | 403 | |
//! | Traffic Server 9.2 | 200 / 404 | 403 | |
//! | nginx 1.22 + lua | 200 / 404 | 403 | |
//!
//! Configurations: `testkit/varnish.vcl`, `testkit/squid.conf.tmpl`, `testkit/ats/`,
//! `testkit/nginx.conf.tmpl`.

use crate::http::{self, Response};
use crate::process::Proc;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    Varnish,
    Squid,
    TrafficServer,
    Nginx,
}

impl CacheKind {
    pub const ALL: [CacheKind; 4] = [
        CacheKind::Varnish,
        CacheKind::Squid,
        CacheKind::TrafficServer,
        CacheKind::Nginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Varnish => "varnish",
            CacheKind::Squid => "squid",
            CacheKind::TrafficServer => "trafficserver",
            CacheKind::Nginx => "nginx",
        }
    }

    /// The status a PURGE of a URL that is not cached gets (Varnish does not tell).
    pub fn purge_not_cached_status(self) -> u16 {
        match self {
            CacheKind::Varnish => 200,
            _ => 404,
        }
    }

    /// The status a PURGE from a client outside the allowed addresses gets.
    pub fn purge_refused_status(self) -> u16 {
        match self {
            CacheKind::Varnish => 405,
            _ => 403,
        }
    }

    fn programs(self) -> &'static [&'static str] {
        match self {
            CacheKind::Varnish => &["varnishd"],
            CacheKind::Squid => &["squid"],
            CacheKind::TrafficServer => &["traffic_server"],
            CacheKind::Nginx => &["nginx"],
        }
    }

    /// The unprivileged user the server (or its workers) runs as: owns the temp dir.
    fn user(self) -> &'static str {
        match self {
            CacheKind::Varnish => "varnish",
            CacheKind::Squid => "proxy",
            CacheKind::TrafficServer => "trafficserver",
            CacheKind::Nginx => "www-data",
        }
    }
}

impl std::fmt::Display for CacheKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub struct Cache {
    pub kind: CacheKind,
    /// Where clients (and purges) connect; the same across [`Cache::restart`].
    pub addr: SocketAddr,
    pub origin: SocketAddr,
    /// How long the last start took.
    pub startup: Duration,
    /// Varnish's management port (`-T`).
    admin_port: u16,
    proc: Option<Proc>,
    dir: TempDir,
}

impl Cache {
    /// Starts a cache of `kind` in front of `origin` (e.g. [`crate::ceph::Ceph::rgw_addr`])
    /// on a free loopback port, and waits until it answers.
    pub fn start(kind: CacheKind, origin: SocketAddr) -> Cache {
        crate::require_programs(kind.name(), kind.programs());
        let dir = tempfile::Builder::new()
            .prefix(&format!("edgepurge-{}-", kind.name()))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for {kind}: {e}"));
        let mut cache = Cache {
            kind,
            addr: crate::loopback(crate::free_port()),
            origin,
            startup: Duration::ZERO,
            admin_port: if kind == CacheKind::Varnish {
                crate::free_port()
            } else {
                0
            },
            proc: None,
            dir,
        };
        cache.configure();
        cache.launch();
        cache
    }

    /// Stops the server (SIGTERM to its process group, then SIGKILL); the port stops answering.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(10));
        }
    }

    /// Starts it again on the same port with the same configuration (what it had cached may
    /// or may not survive: Varnish and Squid keep objects in memory only, Traffic Server and
    /// nginx on disk).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Process id of the server, the leader of its own process group (workers included).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The temporary directory with configuration, logs and cache data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// GET `path` with `Host: host`: (status, hit (from `X-Cache`; `None` without the
    /// header), body).
    pub fn get(&self, host: &str, path: &str) -> (u16, Option<bool>, String) {
        let r = self.request("GET", host, path, &[]);
        (r.status, hit(&r), r.text())
    }

    /// Any request to the cache (e.g. `PURGE`, `BAN`, `PURGEKEY`); panics on I/O errors.
    pub fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        self.request_from(None, method, host, path, headers)
    }

    /// [`Cache::request`] from a chosen local address (e.g. 127.0.0.2, refused by the ACLs).
    pub fn request_from(
        &self,
        source: Option<IpAddr>,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        http::request_from(source, self.addr, method, path, host, headers, b"").unwrap_or_else(
            |e| {
                panic!(
                    "{} {method} {path} (Host {host}) on {}: {e}",
                    self.kind, self.addr
                )
            },
        )
    }

    /// `PURGE path` with `Host: host`; returns the status.
    pub fn purge(&self, host: &str, path: &str) -> u16 {
        self.request("PURGE", host, path, &[]).status
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the configuration into the temp dir and hands the dir to the server's user.
    fn configure(&mut self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let port = self.addr.port().to_string();
        let origin = self.origin.to_string();
        let origin_host = self.origin.ip().to_string();
        let origin_port = self.origin.port().to_string();
        match self.kind {
            CacheKind::Varnish => {
                let vcl = crate::render_template(
                    "varnish.vcl",
                    &[("ORIGIN_HOST", &origin_host), ("ORIGIN_PORT", &origin_port)],
                );
                crate::write_file(&self.path("edge.vcl"), &vcl);
            }
            CacheKind::Squid => {
                let conf = crate::render_template(
                    "squid.conf.tmpl",
                    &[
                        ("PORT", &port),
                        ("ORIGIN_HOST", &origin_host),
                        ("ORIGIN_PORT", &origin_port),
                        ("DIR", &dir),
                    ],
                );
                crate::write_file(&self.path("squid.conf"), &conf);
            }
            CacheKind::TrafficServer => {
                let etc = self.path("etc");
                // Debian's configuration (body_factory, logging.yaml, ...) with ours on top.
                crate::run(
                    "copy /etc/trafficserver",
                    Command::new("cp")
                        .arg("-r")
                        .arg("/etc/trafficserver")
                        .arg(&etc),
                );
                for sub in ["run", "log", "cache"] {
                    std::fs::create_dir_all(self.path(sub))
                        .unwrap_or_else(|e| panic!("cannot create {dir}/{sub}: {e}"));
                }
                let records = crate::render_template(
                    "ats/records.config.tmpl",
                    &[("PORT", &port), ("DIR", &dir)],
                );
                let base = std::fs::read_to_string(etc.join("records.config")).unwrap_or_default();
                crate::write_file(&etc.join("records.config"), &format!("{base}\n{records}"));
                let remap = crate::render_template("ats/remap.config.tmpl", &[("ORIGIN", &origin)]);
                crate::write_file(&etc.join("remap.config"), &remap);
                for file in ["ip_allow.yaml", "cache_status.conf"] {
                    let text = crate::render_template(&format!("ats/{file}"), &[]);
                    crate::write_file(&etc.join(file), &text);
                }
                let status_rules = etc.join("cache_status.conf");
                crate::write_file(
                    &etc.join("plugin.config"),
                    &format!("header_rewrite.so {}\n", status_rules.display()),
                );
                crate::write_file(&etc.join("storage.config"), &format!("{dir}/cache 64M\n"));
            }
            CacheKind::Nginx => {
                for sub in ["tmp", "cache"] {
                    std::fs::create_dir_all(self.path(sub))
                        .unwrap_or_else(|e| panic!("cannot create {dir}/{sub}: {e}"));
                }
                let conf = crate::render_template(
                    "nginx.conf.tmpl",
                    &[("PORT", &port), ("ORIGIN", &origin), ("DIR", &dir)],
                );
                crate::write_file(&self.path("nginx.conf"), &conf);
            }
        }
        // tempfile makes the dir 0700 root: the server's user must be able to use it.
        std::fs::set_permissions(
            self.dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap_or_else(|e| panic!("cannot chmod {dir}: {e}"));
        let user = self.kind.user();
        crate::run(
            "chown the cache dir",
            Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(self.dir.path()),
        );
    }

    fn launch(&mut self) {
        let t0 = Instant::now();
        let dir = self.dir.path().to_owned();
        let log = dir.join("server.out");
        let (cmd, extra_logs): (Command, Vec<PathBuf>) = match self.kind {
            CacheKind::Varnish => {
                let mut c = Command::new(crate::program("varnishd"));
                c.arg("-F")
                    .args(["-a", &self.addr.to_string()])
                    .args(["-T", &crate::loopback(self.admin_port).to_string()])
                    .arg("-n")
                    .arg(dir.join("varnish"))
                    .arg("-f")
                    .arg(dir.join("edge.vcl"))
                    .args(["-s", "malloc,64m"]);
                (c, vec![])
            }
            CacheKind::Squid => {
                let mut c = Command::new(crate::program("squid"));
                c.arg("-N").arg("-f").arg(dir.join("squid.conf"));
                (c, vec![dir.join("cache.log")])
            }
            CacheKind::TrafficServer => {
                let mut c = Command::new(crate::program("traffic_server"));
                c.env("PROXY_CONFIG_CONFIG_DIR", dir.join("etc"));
                (c, vec![dir.join("log/diags.log")])
            }
            CacheKind::Nginx => {
                let mut c = Command::new(crate::program("nginx"));
                c.arg("-p")
                    .arg(&dir)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(dir.join("nginx.conf"))
                    .args(["-g", "daemon off;"]);
                (c, vec![dir.join("error.log")])
            }
        };
        let mut proc = Proc::spawn_group(self.kind.name(), cmd, &log);
        let extra: Vec<&Path> = extra_logs.iter().map(PathBuf::as_path).collect();
        let addr = self.addr;
        // Any HTTP answer means it serves requests; a PURGE on a host nobody uses touches
        // neither the origin nor the cache.
        proc.wait_ready(Duration::from_secs(30), &extra, || {
            http::request(
                addr,
                "PURGE",
                "/__edgepurge_ready",
                "ready.invalid",
                &[],
                b"",
            )
            .ok()
        });
        self.proc = Some(proc);
        self.startup = t0.elapsed();
    }
}

/// Hit or miss from `X-Cache` (`HIT`, `MISS`, Squid's `HIT from squid-edge`, nginx's
/// `$upstream_cache_status`: HIT/STALE/UPDATING/REVALIDATED are served from the cache).
pub fn hit(r: &Response) -> Option<bool> {
    let v = r.header("X-Cache")?.trim().to_ascii_uppercase();
    Some(
        ["HIT", "STALE", "UPDATING", "REVALIDATED"]
            .iter()
            .any(|h| v.starts_with(h)),
    )
}
