//! `scripts/demo.sh`: a real Ceph RGW bucket, a Varnish cache in front of it, and edgepurge
//! between the bucket's notifications and the cache. Shows the stale copy a cache serves without
//! purging, then the same change made fresh by edgepurge, then read-after-write freshness.

use edgepurge_testkit::caches::{Cache, CacheKind};
use edgepurge_testkit::ceph::{object_path, Ceph};
use edgepurge_testkit::process::Proc;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const HOST: &str = "cdn.demo";
const BUCKET: &str = "demo";
const KEY: &str = "images/logo.png";
const TOKEN: &str = "demo-webhook-token";

fn step(text: &str) {
    println!("\n\x1b[1m{text}\x1b[0m");
}

fn show_get(cache: &Cache, note: &str) -> String {
    let (status, hit, body) = cache.get(HOST, &object_path(BUCKET, KEY));
    let cached = match hit {
        Some(true) => "HIT ",
        Some(false) => "MISS",
        None => "?   ",
    };
    println!("   GET http://{HOST}/{BUCKET}/{KEY} -> {status} {cached} {body:?} {note}");
    body
}

fn edgepurge(bin: &PathBuf, dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(["--config", "edgepurge.toml"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "edgepurge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text
}

fn main() {
    let bin = PathBuf::from(std::env::var_os("EDGEPURGE_BIN").unwrap_or_else(|| {
        edgepurge_testkit::repo_root()
            .join("target/release/edgepurge")
            .into_os_string()
    }));
    assert!(
        bin.exists(),
        "{} is missing: run scripts/demo.sh",
        bin.display()
    );

    step("edgepurge demo: Ceph RGW bucket -> edgepurge -> Varnish cache, all on loopback");
    let t = Instant::now();
    let ceph = Ceph::start();
    println!(
        "   Ceph RGW (S3) up at {} in {:.1?}",
        ceph.endpoint(),
        t.elapsed()
    );
    let varnish = Cache::start(CacheKind::Varnish, ceph.rgw_addr());
    println!(
        "   Varnish cache up at {} (serving http://{HOST}/...)",
        varnish.addr
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = format!(
        r#"[server]
webhook_token_env = "DEMO_TOKEN"
[dispatch]
linger_ms = 100
[providers.varnish]
kind = "http-purge"
preset = "varnish"
nodes = ["{}"]
"#,
        varnish.addr
    );
    std::fs::write(dir.path().join("edgepurge.toml"), config)
        .unwrap_or_else(|e| panic!("write config: {e}"));
    let mut cmd = Command::new(&bin);
    cmd.current_dir(dir.path())
        .args(["--config", "edgepurge.toml", "--log-level", "warn", "serve"])
        .args(["--listen", "127.0.0.1:0"])
        .env("DEMO_TOKEN", TOKEN);
    let (_server, line) = Proc::spawn_until("edgepurge", cmd, Duration::from_secs(30), |l| {
        l.starts_with("listening on ")
    });
    let addr: SocketAddr = line["listening on ".len()..]
        .parse()
        .unwrap_or_else(|e| panic!("address: {e}"));
    println!("   edgepurge up at {addr}");
    print!(
        "{}",
        edgepurge(
            &bin,
            dir.path(),
            &[
                "rule",
                "add",
                "--name",
                "demo-site",
                "--bucket",
                BUCKET,
                "--event",
                "created,removed",
                "--domain",
                &format!("http://{HOST}/{BUCKET}"),
                "--provider",
                "varnish",
            ],
        )
        .replace("rule", "   rule")
    );

    ceph.create_bucket(BUCKET);
    let plain = ceph.create_topic(
        "demo",
        &format!("http://{addr}/v1/events?token={TOKEN}"),
        false,
    );
    ceph.notify(BUCKET, &plain, None);
    println!("   bucket {BUCKET:?} notifies edgepurge of every change (synchronous topic)");

    step("1. Upload v1 and read it twice through the cache");
    ceph.put(BUCKET, KEY, "logo v1");
    // Let edgepurge's purge of the new object land before the cache is filled.
    std::thread::sleep(Duration::from_millis(500));
    show_get(&varnish, "");
    show_get(&varnish, "(cached for an hour)");

    step("2. The problem: with purging off, a new upload stays invisible");
    edgepurge(&bin, dir.path(), &["rule", "disable", "demo-site"]);
    std::thread::sleep(Duration::from_millis(1500));
    ceph.put(BUCKET, KEY, "logo v2");
    println!("   PUT v2 to the bucket");
    show_get(&varnish, "<- stale: the bucket has v2");
    std::thread::sleep(Duration::from_secs(1));
    show_get(&varnish, "<- still stale, for up to an hour");

    step("3. With edgepurge: the change is purged from the cache");
    edgepurge(&bin, dir.path(), &["rule", "enable", "demo-site"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (took, started) = ceph.put_timed(BUCKET, KEY, "logo v3");
    println!(
        "   PUT v3 to the bucket (returned after {} ms)",
        took.as_millis()
    );
    loop {
        let since = started.elapsed().unwrap_or_default();
        let body = show_get(
            &varnish,
            &format!("({} ms after the PUT began)", since.as_millis()),
        );
        if body == "logo v3" || since > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    step("4. Read-after-write: the uploader's PUT returns once the cache is purged");
    let waiting = ceph.create_topic(
        "demo-wait",
        &format!("http://{addr}/v1/events?token={TOKEN}&wait=purged&timeout_ms=5000"),
        false,
    );
    ceph.notify(BUCKET, &waiting, None);
    let took = ceph.put(BUCKET, KEY, "logo v4");
    println!("   PUT v4 returned after {} ms", took.as_millis());
    show_get(&varnish, "<- fresh on the very next read");

    step("5. The purge log (edgepurge log)");
    for line in edgepurge(&bin, dir.path(), &["log", "--limit", "5"]).lines() {
        println!("   {line}");
    }
    println!("\nStopping Ceph, Varnish and edgepurge.");
}
