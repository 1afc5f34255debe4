//! A throw-away single-node Ceph on loopback: 1 monitor, 1 memstore OSD and radosgw (the S3
//! origin, with bucket notifications), no cephx. Every daemon runs in the foreground as a child
//! process with its data in a temporary directory; all stop when [`Ceph`] is dropped.
//!
//! S3 and topic calls go through `testkit/s3ctl.py` (boto3) in the test virtualenv.
//!
//! Pitfalls handled here (Ceph 16.2 "pacific", Debian 12):
//! - radosgw's default `beast` frontend crashes on a multi-object delete in a bucket with
//!   notifications: `civetweb` is used instead.
//! - `auth = none` also needs `ms (mon) client mode = crc secure`, or radosgw retries auth for
//!   minutes; pool size 1 needs `mon allow pool size one`.
//! - Every monitor change (radosgw creates ~8 pools on first start) waits for a Paxos round of
//!   `paxos propose interval` (1 s by default): 0.05 s here brings start-up from ~12 s to ~2 s.
//! - Pacific has no settings for the persistent-notification retry pace (the
//!   `rgw_topic_persistency_*` options came later): defaults are kept.

use crate::process::Proc;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "RGWACCESS";
pub const SECRET_KEY: &str = "RGWSECRET";
/// The zonegroup name RGW expects as the signing region.
pub const REGION: &str = "default";

const PROGRAMS: &[&str] = &[
    "monmaptool",
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
];

pub struct Ceph {
    rgw_addr: SocketAddr,
    mon_addr: SocketAddr,
    conf: PathBuf,
    /// How long [`Ceph::start`] took.
    pub startup: Duration,
    // Stopped in this order on drop (fields drop in declaration order), the directory last.
    rgw: Proc,
    osd: Proc,
    mon: Proc,
    dir: TempDir,
}

impl Ceph {
    /// Starts a monitor, a memstore OSD and radosgw on free loopback ports and creates the S3
    /// user `RGWACCESS`/`RGWSECRET`. Takes ~3 s.
    pub fn start() -> Ceph {
        crate::require_programs("Ceph", PROGRAMS);
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("edgepurge-ceph-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for Ceph: {e}"));
        let base = dir.path().to_owned();
        for sub in ["run", "log", "mon", "osd", "rgw"] {
            std::fs::create_dir_all(base.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}/{sub}: {e}", base.display()));
        }
        let mon_addr = crate::loopback(crate::free_port());
        let rgw_addr = crate::loopback(crate::free_port());
        let fsid = fsid();
        let conf = base.join("ceph.conf");
        crate::write_file(&conf, &config(&base, &fsid, mon_addr, rgw_addr));
        let c = conf.to_string_lossy().into_owned();
        let log = |name: &str| base.join("log").join(format!("{name}.out"));

        crate::run(
            "monmaptool",
            Command::new(crate::program("monmaptool"))
                .args(["--create", "--addv", "a"])
                .arg(format!("[v2:{mon_addr}]"))
                .args(["--fsid", &fsid])
                .arg(base.join("monmap")),
        );
        crate::run(
            "ceph-mon --mkfs",
            Command::new(crate::program("ceph-mon"))
                .args(["-c", &c, "--mkfs", "-i", "a", "--monmap"])
                .arg(base.join("monmap")),
        );
        let mut mon_cmd = Command::new(crate::program("ceph-mon"));
        mon_cmd.args(["-c", &c, "-f", "-i", "a"]);
        let mut mon = Proc::spawn_group("ceph-mon", mon_cmd, &log("mon"));
        let mon_log = base.join("log/ceph-mon.a.log");
        mon.wait_ready(Duration::from_secs(20), &[&mon_log], || {
            std::net::TcpStream::connect_timeout(&mon_addr, Duration::from_millis(200)).ok()
        });

        let id = crate::run(
            "ceph osd create",
            Command::new(crate::program("ceph")).args([
                "-c",
                &c,
                "--connect-timeout",
                "20",
                "osd",
                "create",
            ]),
        )
        .trim()
        .to_owned();
        std::fs::create_dir_all(base.join(format!("osd/ceph-{id}")))
            .unwrap_or_else(|e| panic!("cannot create the OSD dir: {e}"));
        crate::run(
            "ceph-osd --mkfs",
            Command::new(crate::program("ceph-osd")).args(["-c", &c, "-i", &id, "--mkfs"]),
        );
        let mut osd_cmd = Command::new(crate::program("ceph-osd"));
        osd_cmd.args(["-c", &c, "-f", "-i", &id]);
        let osd = Proc::spawn_group("ceph-osd", osd_cmd, &log("osd"));

        // radosgw waits for the OSD by itself (its first writes block until the OSD is up).
        let mut rgw_cmd = Command::new(crate::program("radosgw"));
        rgw_cmd.args(["-c", &c, "-f", "-n", "client.rgw.a"]);
        let mut rgw = Proc::spawn_group("radosgw", rgw_cmd, &log("rgw"));
        let rgw_log = base.join("log/ceph-client.rgw.a.log");
        let osd_log = base.join(format!("log/ceph-osd.{id}.log"));
        rgw.wait_ready(Duration::from_secs(60), &[&rgw_log, &osd_log], || {
            crate::http::get(rgw_addr, "/").ok()
        });

        crate::run(
            "radosgw-admin user create",
            Command::new(crate::program("radosgw-admin")).args([
                "-c",
                &c,
                "user",
                "create",
                "--uid=test",
                "--display-name=test",
                &format!("--access-key={ACCESS_KEY}"),
                &format!("--secret-key={SECRET_KEY}"),
            ]),
        );
        Ceph {
            rgw_addr,
            mon_addr,
            conf,
            startup: t0.elapsed(),
            rgw,
            osd,
            mon,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT` of radosgw (S3, path-style; the SNS-style topic API is at `/`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.rgw_addr)
    }

    pub fn rgw_addr(&self) -> SocketAddr {
        self.rgw_addr
    }

    pub fn mon_addr(&self) -> SocketAddr {
        self.mon_addr
    }

    /// The `ceph.conf` (for `ceph -c`, `radosgw-admin -c`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The temporary directory holding data, logs (`log/`) and admin sockets (`run/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process ids (each the leader of its own process group) of the monitor, OSD and radosgw.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.mon.pid(), self.osd.pid(), self.rgw.pid()]
    }

    /// Runs `testkit/s3ctl.py ARGS` against this radosgw; returns its JSON answer.
    pub fn s3ctl(&self, args: &[&str]) -> Value {
        let script = crate::repo_root().join("testkit/s3ctl.py");
        let out = Command::new(crate::python())
            .arg(&script)
            .args(["--endpoint", &self.endpoint()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--region", REGION])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "s3ctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "s3ctl {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Creates a bucket whose objects anyone may GET (bucket policy: `s3:GetObject` and
    /// `s3:ListBucket` for `*`), so caches fetch `http://127.0.0.1:PORT/<bucket>/<key>`
    /// anonymously, and a missing key is a 404 (not 403).
    pub fn create_bucket(&self, bucket: &str) {
        self.s3ctl(&["create-bucket", bucket, "--public-read"]);
    }

    /// PUTs `body` under every key, from one helper process (for listings of many pages).
    pub fn put_many(&self, bucket: &str, keys: &[String], body: &str) {
        let mut args = vec!["put-many", bucket, "--body", body];
        args.extend(keys.iter().map(String::as_str));
        self.s3ctl(&args);
    }

    /// PUTs `body` (text/plain, ACL public-read) and returns how long the PUT took: with a
    /// non-persistent topic RGW delivers the notification before it answers.
    pub fn put(&self, bucket: &str, key: &str, body: &str) -> Duration {
        self.put_timed(bucket, key, body).0
    }

    /// Like [`Ceph::put`], also returning the wall-clock time the PUT request started (the
    /// helper process's own start-up is not part of it).
    pub fn put_timed(&self, bucket: &str, key: &str, body: &str) -> (Duration, SystemTime) {
        let v = self.s3ctl(&["put", bucket, key, "--body", body, "--public-read"]);
        let secs = v["seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("s3ctl put: no seconds in {v}"));
        let finished = v["finished_at"]
            .as_f64()
            .unwrap_or_else(|| panic!("s3ctl put: no finished_at in {v}"));
        let took = Duration::from_secs_f64(secs);
        let started = UNIX_EPOCH + Duration::from_secs_f64(finished) - took;
        (took, started)
    }

    /// The object's body through a signed GET, or panics.
    pub fn get(&self, bucket: &str, key: &str) -> String {
        let v = self.s3ctl(&["get", bucket, key]);
        v["body"]
            .as_str()
            .unwrap_or_else(|| panic!("s3ctl get: no body in {v}"))
            .to_owned()
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        self.s3ctl(&["delete", bucket, key]);
    }

    /// Creates (or updates) a topic pushing S3-format events by HTTP POST to `push_endpoint`.
    /// `persistent`: queued in RADOS and delivered asynchronously (retried); otherwise sent
    /// synchronously during the S3 call. Returns the topic ARN.
    pub fn create_topic(&self, name: &str, push_endpoint: &str, persistent: bool) -> String {
        self.create_topic_with(name, push_endpoint, persistent, &[])
    }

    /// [`Ceph::create_topic`] with more topic attributes (e.g. `amqp-exchange`).
    pub fn create_topic_with(
        &self,
        name: &str,
        push_endpoint: &str,
        persistent: bool,
        attrs: &[(&str, &str)],
    ) -> String {
        let persistent = if persistent { "true" } else { "false" };
        let pairs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec![
            "create-topic",
            name,
            "--push-endpoint",
            push_endpoint,
            "--persistent",
            persistent,
        ];
        for p in &pairs {
            args.extend(["--attr", p.as_str()]);
        }
        let v = self.s3ctl(&args);
        v["arn"]
            .as_str()
            .unwrap_or_else(|| panic!("s3ctl create-topic: no arn in {v}"))
            .to_owned()
    }

    /// Sends `s3:ObjectCreated:*` and `s3:ObjectRemoved:*` of `bucket` (keys starting with
    /// `prefix`, if given) to the topic. Replaces the bucket's notification configuration.
    pub fn notify(&self, bucket: &str, topic_arn: &str, prefix: Option<&str>) {
        let mut args = vec!["notify", bucket, "--topic-arn", topic_arn];
        if let Some(p) = prefix {
            args.extend(["--prefix", p]);
        }
        self.s3ctl(&args);
    }
}

/// The path-style request path of an object: `/<bucket>/<key>` with the key percent-encoded
/// like S3 clients do (everything but unreserved characters and `/`; `+` becomes `%2B`).
pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{bucket}/{}", encode_key(key))
}

/// Percent-encodes an object key for a URL path (keeps `A-Z a-z 0-9 - . _ ~ /`).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn fsid() -> String {
    // Unique enough for a throw-away cluster: time and pid, formatted as a UUID.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = nanos ^ (u128::from(std::process::id()) << 64);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn config(base: &Path, fsid: &str, mon: SocketAddr, rgw: SocketAddr) -> String {
    let b = base.display();
    format!(
        r"[global]
fsid = {fsid}
mon initial members = a
mon host = v2:{mon}
public addr = 127.0.0.1
ms bind ipv6 = false
# auth none also needs crc mode allowed, else radosgw fails with
# get_initial_auth_request returned -13 and retries for minutes
ms mon client mode = crc secure
ms client mode = crc secure
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# one Paxos round per monitor change: 1 s by default, and radosgw's first start makes many
paxos propose interval = 0.05
osd crush chooseleaf type = 0
run dir = {b}/run
admin socket = {b}/run/$cluster-$name.asok
log file = {b}/log/$cluster-$name.log
pid file = {b}/run/$cluster-$name.pid
mon data = {b}/mon/$cluster-$id
osd data = {b}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.a]
# beast crashes on a multi-object delete in a bucket with notifications (16.2)
rgw frontends = civetweb port={rgw}
# s3 = the S3 API; notifications = the SNS-style topic API (CreateTopic, ...) and
# bucket notification configuration
rgw enable apis = s3, notifications
rgw data = {b}/rgw
rgw thread pool size = 32
"
    )
}
