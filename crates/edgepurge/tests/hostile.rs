//! Hostile senders: connections that send nothing, dribble their head or body, pile up past
//! the open-file limit, or announce a body larger than allowed. Each test is named for what
//! broke before (the service could be stopped by anyone reaching its port).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::http;
use edgepurge_testkit::tencent::{FakeTencent, Options};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn config(fake: &FakeTencent, server: &str, dispatch: &str) -> String {
    tencent_config(fake, "", SITE_RULE)
        .replace("[server]", &format!("[server]\n{server}"))
        .replace("[dispatch]", &format!("[dispatch]\n{dispatch}"))
}

/// Opens `n` connections that send nothing.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect()
}

/// Whether the server closed `s` (or answered and closed) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn healthz_ok(addr: SocketAddr) -> bool {
    http::get(addr, "/healthz").is_ok_and(|r| r.status == 200)
}

#[test]
fn idle_and_slow_header_connections_are_closed_and_cannot_fill_the_server() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "max_connections = 40\nheader_timeout_s = 2",
        "",
    ));
    let server = ep.serve();
    // Connections that never send a byte, and one that sends a header byte every 300 ms
    // (each byte in time, the whole head never).
    let mut idle = idle_connections(server.addr, 30);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    let dribble = std::thread::spawn(move || {
        let start = Instant::now();
        for b in b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*b]).is_err() || start.elapsed() > Duration::from_secs(8) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        start.elapsed()
    });
    // Over the cap: answered 503 with Retry-After at once, not left hanging.
    let mut extra = idle_connections(server.addr, 15);
    let mut refused = 0;
    for s in &mut extra {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("Retry-After: 1"), "{text}");
            refused += 1;
        }
    }
    assert!(
        refused >= 5,
        "connections over the cap get 503 (got {refused} of 15)"
    );
    // Idle connections are closed after the header timeout (2 s), not kept forever.
    let start = Instant::now();
    for s in &mut idle {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "an idle connection is still open {:?} after the header timeout",
            start.elapsed()
        );
    }
    let dribbled = dribble.join().unwrap();
    assert!(
        dribbled < Duration::from_secs(5),
        "a head sent a byte at a time was cut at the header timeout (lasted {dribbled:?})"
    );
    // The service answers again, and purges.
    edgepurge_testkit::wait_for(Duration::from_secs(5), "healthz to answer", || {
        healthz_ok(server.addr).then_some(())
    });
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["after.css".into()],
    ));
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the purge", || {
        fake.purged()
            .contains(&"https://cdn.example.com/after.css".to_string())
            .then_some(())
    });
}

#[test]
fn a_caller_that_stops_reading_its_answers_loses_its_slot() {
    // Pipelined requests whose answers are never read filled the socket buffers; hyper then
    // waited to write and never read another head, so no timer ran and the slot was held
    // for good (found by an adversarial review).
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "max_connections = 1\nheader_timeout_s = 1",
        "",
    ));
    let server = ep.serve();
    let mut hog = TcpStream::connect(server.addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let requests = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let start = Instant::now();
    // Write until the buffers are full both ways (a write times out), never reading.
    while start.elapsed() < Duration::from_secs(20) && hog.write_all(&requests).is_ok() {}
    // The slot frees once a write has stalled for the header timeout.
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the slot to be freed", || {
        healthz_ok(server.addr).then_some(())
    });
    drop(hog);
}

#[test]
fn incoming_connections_cannot_starve_a_purge_of_its_outgoing_connection() {
    // The process may open 300 files; without a reserve, 300 idle callers took them all and
    // the purge accepted just before could not connect to its provider.
    let fake = FakeTencent::start(Options::default());
    // No kept-alive provider connection to fall back on: the purge needs a new one.
    fake.close_connections(true);
    let ep = Edgepurge::new(
        &config(&fake, "max_connections = 5000\nheader_timeout_s = 60", "")
            .replace("linger_ms = 100", "linger_ms = 500"),
    );
    let mut server = ep.serve_under(&["prlimit", "--nofile=300:300", "--"]);
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["first.css".into()],
    ));
    // Flood while the purge lingers, and keep the flood open.
    let flood = idle_connections(server.addr, 320);
    edgepurge_testkit::wait_for(
        Duration::from_secs(15),
        "the purge during the flood",
        || {
            fake.purged()
                .contains(&"https://cdn.example.com/first.css".to_string())
                .then_some(())
        },
    );
    assert!(
        server.proc.is_running(),
        "the server survived the flood of {} connections",
        flood.len()
    );
    drop(flood);
    // The slots free as the server notices the closed connections; until then a POST is
    // refused over the cap (503, or a reset as the socket closes): try again.
    let body = ceph_body("assets", "ObjectCreated:Put", &["second.css".into()]);
    let auth = format!("Bearer {WEBHOOK_TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    edgepurge_testkit::wait_for(Duration::from_secs(5), "a POST after the flood", || {
        http::request(server.addr, "POST", "/v1/events", "x", &headers, &body)
            .is_ok_and(|r| r.status == 200)
            .then_some(())
    });
}

#[test]
fn sigterm_stops_within_the_drain_time_even_with_half_sent_requests() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "header_timeout_s = 120\nbody_timeout_s = 120",
        "drain_s = 2",
    ));
    let mut server = ep.serve();
    let mut half_heads = idle_connections(server.addr, 5);
    for s in &mut half_heads {
        s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
    }
    let mut half_bodies = idle_connections(server.addr, 5);
    for s in &mut half_bodies {
        write!(
            s,
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
             Content-Length: 1000\r\n\r\n{{\"Records\":["
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let code = server.proc.terminate(Duration::from_secs(10));
    let took = start.elapsed();
    assert_eq!(code, Some(0), "clean exit");
    assert!(
        took < Duration::from_secs(4),
        "SIGTERM took {took:?} with drain_s = 2"
    );
    assert!(ep.log(&[]).is_empty(), "nothing half-sent was stored");
}

#[test]
fn a_declared_oversized_body_is_refused_from_the_head_and_a_stalled_body_times_out() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "max_body_bytes = 4096\nbody_timeout_s = 1",
        "",
    ));
    let server = ep.serve();
    // Content-Length over the limit: 413 before a byte of the body is sent.
    let mut s = TcpStream::connect(server.addr).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
         Content-Length: 10485760\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .expect("an answer without sending the body");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // A body that stops arriving: 408 after body_timeout_s, nothing stored.
    let mut s = TcpStream::connect(server.addr).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
         Content-Length: 200\r\n\r\n{{\"Records\":["
    )
    .unwrap();
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout_s"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(ep.log(&[]).is_empty());
}

#[test]
fn large_bodies_wait_for_the_parse_budget_instead_of_all_being_held_at_once() {
    let fake = FakeTencent::start(Options::default());
    let ep = Edgepurge::new(&config(
        &fake,
        "max_body_bytes = 200000\nparse_budget_bytes = 300000\nbody_timeout_s = 5",
        "",
    ));
    let server = ep.serve();
    // Senders that declare the largest body and then send nothing hold no budget...
    let _idle: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            write!(
                s,
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
                 Content-Length: 200000\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // ... so a small chunked body (no Content-Length) goes through at once.
    let tiny = ceph_body("assets", "ObjectCreated:Put", &["chunked.css".into()]);
    let mut chunked = TcpStream::connect(server.addr).unwrap();
    write!(
        chunked,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        tiny.len()
    )
    .unwrap();
    chunked.write_all(&tiny).unwrap();
    chunked.write_all(b"\r\n0\r\n\r\n").unwrap();
    let t = Instant::now();
    let mut answer = String::new();
    chunked
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = chunked.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // A sender that declares a large body and sends it slowly holds most of the budget...
    let mut slow = TcpStream::connect(server.addr).unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("budget/{i:04}.css")).collect();
    let body = ceph_body("assets", "ObjectCreated:Put", &keys);
    assert!(
        body.len() > 150_000 && body.len() <= 200_000,
        "{}",
        body.len()
    );
    write!(
        slow,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.write_all(&body[..1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // ... so a second large one waits for room (nothing of it is read meanwhile) ...
    let addr = server.addr;
    let other_keys: Vec<String> = (0..1000).map(|i| format!("other/{i:04}.css")).collect();
    let other = std::thread::spawn(move || {
        let body = ceph_body("assets", "ObjectCreated:Put", &other_keys);
        let start = Instant::now();
        let r = post_events(addr, &body);
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // ... while small bodies do not wait at all.
    let small = ceph_body("assets", "ObjectCreated:Put", &["small.css".into()]);
    let t = Instant::now();
    assert_eq!(server.send(&small)["accepted"], 1);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(!other.is_finished(), "the second large body waits");
    std::thread::sleep(Duration::from_millis(500));
    // The slow body finishes and is accepted; then the other goes through.
    slow.write_all(&body[1000..]).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (r, waited) = other.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        waited >= Duration::from_millis(700),
        "it waited for room: {waited:?}"
    );
    assert_eq!(ep.log(&[]).len(), 2002);
}

fn get_with(addr: SocketAddr, path: &str, token: Option<&str>) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::request(addr, "GET", path, "x", &headers, b"").unwrap()
}

#[test]
fn healthz_shows_lanes_and_errors_only_to_the_admin() {
    let fake = FakeTencent::start(Options::default());
    let mut ep = Edgepurge::new(&config(&fake, "", "").replace(
        "[store]",
        "[admin]\ntoken_env = \"EP_TEST_ADMIN_TOKEN\"\n\n[store]",
    ));
    ep.env
        .push(("EP_TEST_ADMIN_TOKEN".into(), "admin-token-for-tests".into()));
    let server = ep.serve();
    // Anyone, even on loopback, without the admin token: the status and nothing else.
    for token in [None, Some(WEBHOOK_TOKEN), Some("wrong")] {
        let r = get_with(server.addr, "/healthz", token);
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), serde_json::json!({"status": "ok"}), "{token:?}");
    }
    let r = get_with(server.addr, "/healthz", Some("admin-token-for-tests"));
    assert_eq!(r.status, 200);
    let details = r.json();
    assert_eq!(details["status"], "ok");
    assert_eq!(details["lanes"][0]["lane"], "tencent");
    assert_eq!(details["lanes"][0]["restarts"], 0);
    assert_eq!(
        get_with(server.addr, "/readyz", None).json(),
        serde_json::json!({"status": "ready"})
    );
    // Metrics are the admin's too.
    for token in [None, Some(WEBHOOK_TOKEN)] {
        assert_eq!(
            get_with(server.addr, "/metrics", token).status,
            401,
            "{token:?}"
        );
    }
    let m = get_with(server.addr, "/metrics", Some("admin-token-for-tests"));
    assert_eq!(m.status, 200);
    assert!(m.text().contains("edgepurge_lane_state{"), "{}", m.text());
    // An unknown path is answered 404 naming it as sent (never percent-decoded into
    // control characters).
    let r = get_with(server.addr, "/%1b[31mnope", None);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("GET /%1b[31mnope"), "{}", r.text());
}

/// `/readyz` once it answers `status` (a probe's answer is reused for a second).
fn readyz_until(addr: SocketAddr, status: u16) -> http::Response {
    edgepurge_testkit::wait_for(Duration::from_secs(5), "readyz to change", || {
        let r = get_with(addr, "/readyz", None);
        (r.status == status).then_some(r)
    })
}

/// A tmpfs of `size` on a fresh directory, unmounted when dropped. Mounting needs root,
/// which the test environment (and CI) has.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a {size} tmpfs failed: this test needs root (as CI runs)"
        );
        SmallDisk { dir }
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn readyz_says_not_ready_when_the_store_cannot_write_and_ready_again_after() {
    let fake = FakeTencent::start(Options::default());
    let disk = SmallDisk::mount("24m");
    let store = disk.dir.path().join("edgepurge.db");
    let ep = Edgepurge::new(&config(&fake, "", "").replace(
        "path = \"edgepurge.db\"",
        &format!(
            "path = {:?}\nmin_free_bytes = 4194304",
            store.display().to_string()
        ),
    ));
    let server = ep.serve();
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["first.png".into()],
    ));
    assert_eq!(get_with(server.addr, "/readyz", None).status, 200);

    // Nearly full: writes still work, but readiness warns before they fail.
    let filler = disk.fill();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(f.metadata().unwrap().len() - 2 * 1024 * 1024)
        .unwrap();
    let r = readyz_until(server.addr, 503);
    let body = r.json();
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("below store.min_free_bytes")),
        "{body}"
    );
    server.send(&ceph_body(
        "assets",
        "ObjectCreated:Put",
        &["second.png".into()],
    ));
    // Full: the write probe itself fails.
    drop(f);
    let filler = disk.fill();
    // A probe's answer is reused for a second: wait for one made after the disk filled.
    let r = edgepurge_testkit::wait_for(Duration::from_secs(5), "a probe on the full disk", || {
        let r = get_with(server.addr, "/readyz", None);
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("disk is full"))
            .then_some(r)
    });
    assert_eq!(r.status, 503, "{}", r.text());
    // Ingest fails the same way (the store cannot grow) and stores nothing.
    let keys: Vec<String> = (0..4000).map(|i| format!("full/{i:05}.png")).collect();
    let big = ceph_body("assets", "ObjectCreated:Put", &keys);
    let r = server.post(&big, Some(WEBHOOK_TOKEN));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("5"));

    std::fs::remove_file(filler).unwrap();
    readyz_until(server.addr, 200);
    assert_eq!(server.send(&big)["accepted"], 4000);
    let log = ep.settle(Duration::from_secs(60));
    assert_eq!(log.len(), 4002, "the refused body was not half-stored");
    drop(server);
}

#[test]
fn a_body_fanned_out_to_many_cache_nodes_cannot_hold_the_store_for_minutes() {
    // Ten cache nodes (nothing listens there; only the queue matters here).
    let nodes: Vec<String> = (0..10)
        .map(|_| {
            format!(
                "\"{}\"",
                edgepurge_testkit::loopback(edgepurge_testkit::free_port())
            )
        })
        .collect();
    let ep = Edgepurge::new(&format!(
        r#"
[server]
webhook_token_env = "EP_TEST_WEBHOOK_TOKEN"
[store]
path = "edgepurge.db"
max_jobs_per_body = 100

[providers.edge]
kind = "http-purge"
preset = "varnish"
nodes = [{}]

[[rules]]
name = "site"
bucket = "assets"
events = ["created"]
domains = ["http://cdn.test"]
provider = "edge"
"#,
        nodes.join(", ")
    ));
    let server = ep.serve();
    // A target is stored once whatever the node count (expanded into the nodes' jobs
    // later, in bounded slices): the cap counts targets. 101 events: refused whole, with why.
    let keys: Vec<String> = (0..101).map(|i| format!("fan/{i}.css")).collect();
    let r = server.post(
        &ceph_body("assets", "ObjectCreated:Put", &keys),
        Some(WEBHOOK_TOKEN),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text()
            .contains("more than store.max_jobs_per_body (100) purges"),
        "{}",
        r.text()
    );
    assert!(ep.log(&[]).is_empty(), "nothing stored");
    // Within the cap: accepted, 100 targets × 10 nodes as 100 rows (they were 1,000 jobs,
    // refused by this cap, before).
    let answer = server.send(&ceph_body("assets", "ObjectCreated:Put", &keys[..100]));
    assert_eq!(answer["targets"], 100);
}

/// `VmRSS` and `VmHWM` (the process's peak) of `pid`, in bytes.
fn rss_and_peak(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .trim()
            .trim_end_matches(" kB")
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

#[test]
fn a_large_body_took_ten_times_its_size_in_memory() {
    // One 10 MiB body once took the server from 10 MB to 276 MB, and 48,000 records of
    // 7 MiB still took 9.7 × their size: every event, then every log record with its jobs,
    // held at once. Now it takes at most 4 × the body, plus the store's page cache and
    // allocator pages (the allowance), measured on a fresh process: VmHWM is its lifetime peak.
    let fake = FakeTencent::start(Options {
        quiet: true,
        ..Default::default()
    });
    let ep = Edgepurge::new(&config(&fake, "", ""));
    let server = ep.serve();
    let keys: Vec<String> = (0..40_000)
        .map(|i| format!("mem/{i:07}/some/longer/path/name-{i}.png"))
        .collect();
    let body = ceph_body("assets", "ObjectCreated:Put", &keys);
    assert!(
        body.len() > 8 << 20 && body.len() < 10 << 20,
        "{}",
        body.len()
    );
    // Idle, as started (its peak so far is its start-up's).
    let (idle, _) = rss_and_peak(server.proc.pid());
    let answer = server.send(&body);
    let (_, peak) = rss_and_peak(server.proc.pid());
    assert_eq!(answer["accepted"], 40_000);
    let growth = peak.saturating_sub(idle);
    let allowance = 16 << 20;
    println!(
        "one body of {:.1} MiB: peak RSS {:.1} MiB over the idle {:.1} MiB = {:.2} × the body",
        body.len() as f64 / 1048576.0,
        growth as f64 / 1048576.0,
        idle as f64 / 1048576.0,
        growth as f64 / body.len() as f64
    );
    assert!(
        growth <= 4 * body.len() as u64 + allowance,
        "peak RSS grew by {} MiB for a body of {} MiB",
        growth >> 20,
        body.len() >> 20
    );
    // Every record is stored.
    assert_eq!(ep.log(&[]).len(), 40_000);
}
