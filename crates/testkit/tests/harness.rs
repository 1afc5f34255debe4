//! Smoke test of the test harness itself: a real Ceph RGW origin and the four real caches.
//! Needs `scripts/setup-test-deps.sh` (Debian packages + the test virtualenv).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgepurge_testkit::caches::{Cache, CacheKind};
use edgepurge_testkit::ceph::{object_path, Ceph};
use edgepurge_testkit::{http, process};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const HOST: &str = "cdn.test";
const OTHER_HOST: &str = "other.test";
const OUTSIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn harness_smoke() {
    let t0 = Instant::now();
    let mut groups: Vec<(String, u32)> = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    {
        let ceph = Ceph::start();
        eprintln!("ceph: up in {:.1?} at {}", ceph.startup, ceph.endpoint());
        for pid in ceph.pids() {
            groups.push(("ceph".into(), pid));
        }
        dirs.push(ceph.dir().to_owned());

        ceph.create_bucket("smoke");
        let key = "img/a b+猫.txt";
        let path = object_path("smoke", key);
        assert_eq!(path, "/smoke/img/a%20b%2B%E7%8C%AB.txt");
        let mut version = 1;
        let took = ceph.put("smoke", key, "v1");
        eprintln!("ceph: PUT took {took:.1?}");
        assert_eq!(ceph.get("smoke", key), "v1");
        // Anonymous path-style GET, as the caches do.
        let r = http::get(ceph.rgw_addr(), &path).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "v1"), "anonymous GET");

        let mut caches = Vec::new();
        for kind in CacheKind::ALL {
            let cache = Cache::start(kind, ceph.rgw_addr());
            eprintln!("{kind}: up in {:.1?} on {}", cache.startup, cache.addr);
            groups.push((kind.name().into(), cache.pid().unwrap()));
            dirs.push(cache.dir().to_owned());

            let current = format!("v{version}");
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(false), current.clone()),
                "{kind}: first GET"
            );
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(true), current.clone()),
                "{kind}: second GET"
            );
            assert_eq!(
                cache.get(OTHER_HOST, &path).2,
                current,
                "{kind}: other host"
            );

            version += 1;
            let next = format!("v{version}");
            ceph.put("smoke", key, &next);
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(true), current.clone()),
                "{kind}: stale hit"
            );

            let refused = cache.request_from(Some(OUTSIDER), "PURGE", HOST, &path, &[]);
            assert_eq!(
                refused.status,
                kind.purge_refused_status(),
                "{kind}: PURGE from 127.0.0.2"
            );
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(true), current.clone()),
                "{kind}: still cached"
            );

            assert_eq!(cache.purge(HOST, &path), 200, "{kind}: PURGE");
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(false), next.clone()),
                "{kind}: after PURGE"
            );
            assert_eq!(
                cache.get(HOST, &path),
                (200, Some(true), next.clone()),
                "{kind}: cached again"
            );
            // The purge was for cdn.test only: other.test still has the old copy.
            assert_eq!(
                cache.get(OTHER_HOST, &path),
                (200, Some(true), current.clone()),
                "{kind}: other host kept"
            );

            let status = cache.purge(HOST, "/smoke/never-cached.txt");
            assert_eq!(
                status,
                kind.purge_not_cached_status(),
                "{kind}: PURGE of a URL not cached"
            );
            caches.push(cache);
        }

        // Varnish extras: BAN by regex on the path (this Host only) and PURGEKEY (xkey tags).
        let varnish = &caches[0];
        assert_eq!(varnish.kind, CacheKind::Varnish);
        for k in ["img/b.txt", "css/c.txt"] {
            ceph.put("smoke", k, "old");
            assert_eq!(varnish.get(HOST, &object_path("smoke", k)).2, "old");
        }
        for k in ["img/b.txt", "css/c.txt"] {
            ceph.put("smoke", k, "new");
            assert_eq!(
                varnish.get(HOST, &object_path("smoke", k)),
                (200, Some(true), "old".into())
            );
        }
        let ban = varnish.request("BAN", HOST, "/", &[("X-Ban-Url", "^/smoke/img/")]);
        assert_eq!(ban.status, 200, "BAN: {}", ban.text());
        assert_eq!(
            varnish.get(HOST, &object_path("smoke", "img/b.txt")),
            (200, Some(false), "new".into())
        );
        assert_eq!(
            varnish.get(HOST, &object_path("smoke", "css/c.txt")),
            (200, Some(true), "old".into())
        );
        let bad = varnish.request("BAN", HOST, "/", &[("X-Ban-Url", "(")]);
        assert_eq!(bad.status, 400, "BAN with a bad regex: {}", bad.text());
        let pk = varnish.request("PURGEKEY", HOST, "/", &[("xkey-purge", "css")]);
        assert_eq!(pk.status, 200);
        assert!(
            pk.text().contains("Invalidated 1 objects"),
            "PURGEKEY: {}",
            pk.text()
        );
        assert_eq!(
            varnish.get(HOST, &object_path("smoke", "css/c.txt")),
            (200, Some(false), "new".into())
        );
        let refused = varnish.request_from(
            Some(OUTSIDER),
            "PURGEKEY",
            HOST,
            "/",
            &[("xkey-purge", "css")],
        );
        assert_eq!(refused.status, 405);

        // Node down, then back on the same port.
        for cache in &mut caches {
            let kind = cache.kind;
            let pid = cache.pid().unwrap();
            cache.stop();
            assert!(
                http::get(cache.addr, "/").is_err(),
                "{kind}: still answers after stop"
            );
            assert!(
                process::group_members(pid).is_empty(),
                "{kind}: processes left after stop"
            );
            cache.restart();
            eprintln!("{kind}: restarted in {:.1?}", cache.startup);
            groups.push((kind.name().into(), cache.pid().unwrap()));
            let (status, _, body) = cache.get(HOST, &path);
            assert_eq!(
                (status, body.as_str()),
                (200, format!("v{version}").as_str()),
                "{kind}: after restart"
            );
        }

        ceph.delete("smoke", key);
        assert_eq!(http::get(ceph.rgw_addr(), &path).unwrap().status, 404);
        eprintln!("checks done at {:.1?}; stopping everything", t0.elapsed());
        let stop = Instant::now();
        drop(caches);
        eprintln!("caches stopped in {:.1?}", stop.elapsed());
        let stop = Instant::now();
        drop(ceph);
        eprintln!("ceph stopped in {:.1?}", stop.elapsed());
    }
    // Everything dropped: no process of any group left, no temp dir left.
    for (name, pgid) in &groups {
        let left = process::group_members(*pgid);
        assert!(
            left.is_empty(),
            "{name}: processes left in group {pgid}: {left:?}"
        );
        let pgrep = std::process::Command::new("pgrep")
            .args(["-g", &pgid.to_string()])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&pgrep.stdout).into_owned();
        for pid in listed.split_whitespace() {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                state
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
                    || state.is_empty(),
                "{name}: pgrep -g {pgid} lists live process {pid}: {state}"
            );
        }
    }
    for d in &dirs {
        assert!(!d.exists(), "{} not removed", d.display());
    }
    eprintln!("harness_smoke: {:.1?} in all", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(120));
}
