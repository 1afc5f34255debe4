//! The admin HTTP API against a running server: who may call it (401, 403), bad input refused
//! naming the field (400), taken names (409), config file rules left to the file, a rule
//! added over HTTP purging within a second, paging through the log without losing or
//! repeating a record, providers without secrets, retry and manual purge. Every answer is
//! checked against the OpenAPI document (its status listed for its route) and for secrets.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::http;
use edgepurge_testkit::tencent::{self, FakeTencent};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "test-admin-token-9876543210";

/// Values that must never appear in an answer.
const SECRETS: [&str; 5] = [
    tencent::SECRET_ID,
    tencent::SECRET_KEY,
    tencent::SESSION_TOKEN,
    WEBHOOK_TOKEN,
    ADMIN_TOKEN,
];

fn openapi() -> Value {
    serde_json::from_str(include_str!("../src/server/admin/openapi.json")).unwrap()
}

/// The documented path template a concrete path matches.
fn template<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or(path);
    let want: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().find_map(|t| {
        let have: Vec<&str> = t.split('/').collect();
        let same = have.len() == want.len()
            && have
                .iter()
                .zip(&want)
                .all(|(h, w)| h == w || (h.starts_with('{') && h.ends_with('}')));
        same.then_some(t.as_str())
    })
}

/// A client of one server's admin API.
struct Api {
    addr: SocketAddr,
    host: String,
    token: Option<String>,
    doc: Value,
}

impl Api {
    fn new(addr: SocketAddr, token: Option<&str>) -> Api {
        Api {
            addr,
            host: addr.to_string(),
            token: token.map(str::to_owned),
            doc: openapi(),
        }
    }

    fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            host: self.host.clone(),
            ..Api::new(self.addr, None)
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> http::Response {
        let text = body.map(Value::to_string);
        self.raw(method, path, text.as_deref(), "application/json")
    }

    /// Sends a request and checks the answer: its status is documented for the route, and
    /// it holds no secret.
    fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: &str,
    ) -> http::Response {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if body.is_some() {
            headers.push(("Content-Type", content_type));
        }
        let r = http::request(
            self.addr,
            method,
            path,
            &self.host,
            &headers,
            body.unwrap_or("").as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = r.text();
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{method} {path} shows a secret: {text}"
            );
        }
        let t = template(&self.doc, path).unwrap_or_else(|| panic!("{path} is not documented"));
        let operation = &self.doc["paths"][t][method.to_lowercase()];
        if operation.is_null() {
            assert_eq!(
                r.status, 405,
                "{method} {path} is served but not documented"
            );
            return r;
        }
        let documented = operation["responses"].get(r.status.to_string()).is_some();
        assert!(
            documented,
            "{method} {path} answered {}, not listed in openapi.json: {text}",
            r.status
        );
        r
    }

    fn get(&self, path: &str) -> http::Response {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: &Value) -> http::Response {
        self.call("POST", path, Some(body))
    }

    /// GET that must answer 200; its JSON.
    fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }
}

fn config_with_admin(fake: &FakeTencent, rules: &str) -> Edgepurge {
    let mut ep = Edgepurge::new(&tencent_config(fake, "", rules).replace(
        "[store]",
        "[admin]\ntoken_env = \"EP_TEST_ADMIN_TOKEN\"\n\n[store]",
    ));
    ep.env
        .push(("EP_TEST_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
    ep
}

fn api_rule(name: &str) -> Value {
    json!({
        "name": name,
        "bucket": "assets",
        "events": ["created"],
        "domains": ["https://cdn.example.com"],
        "provider": "tencent",
    })
}

/// The 400's field, asserting the status.
fn refused_field(r: &http::Response) -> String {
    assert_eq!(r.status, 400, "{}", r.text());
    r.json()["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field named: {}", r.text()))
        .to_owned()
}

#[test]
fn a_wrong_token_or_the_webhook_token_is_refused_with_401() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let admin = Api::new(server.addr, Some(ADMIN_TOKEN));
    for token in [None, Some("not-the-token"), Some(WEBHOOK_TOKEN)] {
        let api = admin.with_token(token);
        let r = api.get("/v1/rules");
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.json()["error"].as_str().unwrap().contains("admin token"));
        // Nothing changes for a refused caller.
        let r = api.post("/v1/rules", &api_rule("sneaky"));
        assert_eq!(r.status, 401);
    }
    assert_eq!(admin.get("/v1/rules/sneaky").status, 404);
    let rules = admin.ok("/v1/rules");
    assert_eq!(rules["rules"][0]["name"], "site");
    // The document itself is public: it is the same for every server.
    let doc = admin.with_token(None).ok("/v1/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    // The webhook token still works where it belongs, and the admin token does not.
    let body = ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]);
    assert_eq!(server.post(&body, Some(ADMIN_TOKEN)).status, 401);
    assert_eq!(server.post(&body, Some(WEBHOOK_TOKEN)).status, 200);
}

#[test]
fn without_an_admin_token_only_loopback_callers_addressed_by_ip_are_served() {
    let fake = fake_tencent();
    let ep = Edgepurge::new(&tencent_config(&fake, "", SITE_RULE));
    let server = start_server(ep.command(&["serve", "--listen", "0.0.0.0:0"]));
    let port = server.addr.port();
    let local = Api::new(SocketAddr::from(([127, 0, 0, 1], port)), None);
    assert_eq!(local.ok("/v1/rules")["rules"][0]["name"], "site");
    // A token where none is configured is a wrong token too.
    assert_eq!(
        local
            .with_token(Some(WEBHOOK_TOKEN))
            .get("/v1/rules")
            .status,
        401
    );
    // A web page reaching 127.0.0.1 through a rebound DNS name is not served.
    let mut rebound = Api::new(local.addr, None);
    rebound.host = format!("attacker.example:{port}");
    let r = rebound.get("/v1/rules");
    assert_eq!(r.status, 403, "{}", r.text());
    let Some(ip) = non_loopback_address() else {
        eprintln!("no non-loopback address on this machine: the 403 is covered by unit tests");
        return;
    };
    let remote = Api::new(SocketAddr::new(ip, port), None);
    let r = remote.get("/v1/rules");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("[admin] token_env"),
        "{}",
        r.text()
    );
    let r = remote.post("/v1/rules", &api_rule("from-afar"));
    assert_eq!(r.status, 403);
    assert_eq!(local.get("/v1/rules/from-afar").status, 404);
}

/// Sends the head of a POST declaring `length` body bytes (and none of them) with the admin
/// token; the answer's status and text.
fn declared_only(addr: SocketAddr, path: &str, length: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Sends a POST of `length` body bytes in chunks (no declared length) with the admin token;
/// the answer's status and text.
fn chunked(addr: SocketAddr, path: &str, length: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..length / chunk.len() {
        let sent = write!(s, "{:x}\r\n", chunk.len())
            .and_then(|()| s.write_all(&chunk))
            .and_then(|()| s.write_all(b"\r\n"));
        if sent.is_err() {
            break; // the server answered and closed
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn bad_rules_are_refused_naming_the_field_and_names_are_unique() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let api = Api::new(server.addr, Some(ADMIN_TOKEN));
    let with = |key: &str, value: Value| {
        let mut r = api_rule("bad");
        r[key] = value;
        r
    };
    let without = |key: &str| {
        let mut r = api_rule("bad");
        r.as_object_mut().unwrap().remove(key);
        r
    };
    let cases = [
        (with("domains", json!(["cdn.example.com"])), "domains"),
        (with("colour", json!("red")), "colour"),
        (without("bucket"), "bucket"),
        (with("mode", json!("everything")), "mode"),
        (with("events", json!("created")), "events"),
        (with("events", json!(["sometimes"])), "events"),
        (with("provider", json!("tencnet")), "provider"),
        (with("name", json!("no spaces")), "name"),
        (
            with("min_interval_ms", json!(86_400_001u64)),
            "min_interval_ms",
        ),
        (with("min_interval_ms", json!(-1)), "min_interval_ms"),
    ];
    for (body, field) in cases {
        let r = api.post("/v1/rules", &body);
        assert_eq!(refused_field(&r), field, "{body}: {}", r.text());
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }
    let r = api.post("/v1/rules", &with("provider", json!("tencnet")));
    assert!(r.text().contains("did you mean"), "{}", r.text());
    assert_eq!(api.get("/v1/rules/bad").status, 404, "nothing stored");
    // Not JSON, or not said to be.
    let r = api.raw(
        "POST",
        "/v1/rules",
        Some("name=x"),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = api.raw("POST", "/v1/rules", Some("{\"name\": "), "application/json");
    assert_eq!(r.status, 400, "{}", r.text());
    let (status, text) = declared_only(server.addr, "/v1/rules", 5 * 1024 * 1024);
    assert_eq!(status, 413, "{text}");
    let (status, text) = chunked(server.addr, "/v1/rules", 4 * 1024 * 1024 + 64 * 1024);
    assert_eq!(status, 413, "{text}");

    // A minimum interval is kept and shown (0 too: the reader need not know the default).
    let r = api.post("/v1/rules", &with("min_interval_ms", json!(5000)));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["min_interval_ms"], 5000);
    assert_eq!(api.get("/v1/rules/bad").json()["min_interval_ms"], 5000);
    assert_eq!(api.call("DELETE", "/v1/rules/bad", None).status, 204);

    let r = api.post("/v1/rules", &api_rule("api-rule"));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["min_interval_ms"], 0);
    assert_eq!(r.header("location"), Some("/v1/rules/api-rule"));
    let created = r.json();
    assert_eq!(created["origin"], "cli");
    assert_eq!(created["enabled"], true);
    let t = created["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
        "{t}"
    );
    assert_eq!(api.ok("/v1/rules/api-rule"), created);
    // Taken names: an added rule's, and the config file's.
    for name in ["api-rule", "site"] {
        let r = api.post("/v1/rules", &api_rule(name));
        assert_eq!(r.status, 409, "{name}: {}", r.text());
    }
    // The CLI sees what the API added.
    assert!(ep.ok(&["rule", "list"]).contains("api-rule"));

    // A config file rule is changed in the file only; the API says so in the CLI's words.
    let r = api.call("DELETE", "/v1/rules/site", None);
    assert_eq!(r.status, 409, "{}", r.text());
    let said = r.json()["error"].as_str().unwrap().to_owned();
    assert!(said.contains("remove it there"), "{said}");
    let cli = ep.run(&["rule", "delete", "site"]);
    assert_eq!(
        String::from_utf8_lossy(&cli.stderr).trim(),
        format!("error: {said}")
    );
    assert_eq!(api.call("POST", "/v1/rules/site/disable", None).status, 409);
    assert_eq!(api.ok("/v1/rules/site")["origin"], "config");

    assert_eq!(api.call("DELETE", "/v1/rules/api-rule", None).status, 204);
    assert_eq!(api.get("/v1/rules/api-rule").status, 404);
    assert_eq!(api.call("DELETE", "/v1/rules/api-rule", None).status, 404);
    // Methods a route does not take.
    let r = api.call("PUT", "/v1/rules/site", None);
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
}

/// Waits (at most a second) until the server has `n` rules in force.
fn in_force_within_a_second(api: &Api, n: u64) {
    let start = Instant::now();
    edgepurge_testkit::wait_for(Duration::from_secs(1), "the rule change to apply", || {
        (api.ok("/v1/status")["rules_in_force"] == n).then_some(())
    });
    eprintln!("{n} rule(s) in force after {:?}", start.elapsed());
}

#[test]
fn a_rule_added_over_the_api_purges_within_a_second_and_follows_enable_and_disable() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, "");
    let server = ep.serve();
    let api = Api::new(server.addr, Some(ADMIN_TOKEN));
    assert_eq!(api.ok("/v1/status")["rules_in_force"], 0);
    let r = api.post("/v1/rules", &api_rule("api-rule"));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["in_force"], true, "in force when the answer comes");
    in_force_within_a_second(&api, 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["a.css".into()]));
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the purge of a.css", || {
        fake.purged()
            .contains(&"https://cdn.example.com/a.css".to_owned())
            .then_some(())
    });

    let r = api.call("POST", "/v1/rules/api-rule/disable", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["in_force"], false);
    in_force_within_a_second(&api, 0);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["b.css".into()]));
    let r = api.call("POST", "/v1/rules/api-rule/enable", None);
    assert_eq!(r.json()["enabled"], true);
    in_force_within_a_second(&api, 1);
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["c.css".into()]));
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the purge of c.css", || {
        fake.purged()
            .contains(&"https://cdn.example.com/c.css".to_owned())
            .then_some(())
    });
    assert!(
        !fake
            .purged()
            .contains(&"https://cdn.example.com/b.css".to_owned()),
        "a disabled rule purges nothing"
    );
    assert_eq!(api.call("POST", "/v1/rules/nope/enable", None).status, 404);
}

/// Every record of `/v1/log?{query}`, page by page.
fn all_pages(api: &Api, query: &str, mut between: impl FnMut(usize)) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/log?{query}&cursor={c}"),
            None => format!("/v1/log?{query}"),
        };
        let page = api.ok(&path);
        pages += 1;
        out.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(page["next"].is_null());
                return (out, pages);
            }
        }
        between(pages);
    }
}

#[test]
fn the_log_pages_through_every_record_once_even_while_records_arrive() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let api = Api::new(server.addr, Some(ADMIN_TOKEN));
    let keys: Vec<String> = (0..25).map(|i| format!("page/{i}.css")).collect();
    server.send(&ceph_body("assets", "ObjectCreated:Put", &keys));
    let settled = ep.settle(Duration::from_secs(20));
    let ids: BTreeSet<i64> = settled.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 25);

    // New records arrive between pages: they are newer than the cursor, so they neither
    // repeat nor push older records off the pages.
    let (records, pages) = all_pages(&api, "limit=7", |_| {
        server.send(&ceph_body(
            "assets",
            "ObjectCreated:Put",
            &["late.css".into()],
        ));
    });
    let seen: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record repeated: {seen:?}");
    assert_eq!(unique, ids, "every record, once");
    assert_eq!(pages, 4);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    let first = &records[0];
    for key in ["time", "updated"] {
        let t = first[key].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
            "{t}"
        );
    }
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["rule"], "site");

    // Filters page the same way.
    let (succeeded, _) = all_pages(&api, "status=succeeded&rule=site&limit=10", |_| {});
    assert!(succeeded.len() >= 25);
    assert!(succeeded.iter().all(|r| r["status"] == "succeeded"));
    let (none, pages) = all_pages(&api, "rule=nope", |_| {});
    assert!(none.is_empty() && pages == 1);
    let recent = api.ok("/v1/log?since=1h&limit=1000")["records"]
        .as_array()
        .unwrap()
        .len();
    assert!(recent >= 25);
    assert!(api.ok("/v1/log?since=2999-01-01T00:00:00Z")["records"]
        .as_array()
        .unwrap()
        .is_empty());

    // Bad parameters are refused naming them.
    let other_list = api.ok("/v1/requests?limit=1")["next"]
        .as_str()
        .map(str::to_owned);
    let mut bad: Vec<(String, &str)> = vec![
        ("limit=0".into(), "limit"),
        ("limit=1001".into(), "limit"),
        ("limit=many".into(), "limit"),
        ("status=lost".into(), "status"),
        ("since=yesterday".into(), "since"),
        ("cursor=not-a-cursor".into(), "cursor"),
        ("colour=red".into(), "colour"),
        ("rule=a&rule=b".into(), "rule"),
    ];
    if let Some(c) = &other_list {
        bad.push((format!("cursor={c}"), "cursor"));
    }
    for (query, field) in bad {
        assert_eq!(
            refused_field(&api.get(&format!("/v1/log?{query}"))),
            field,
            "{query}"
        );
    }

    // Provider requests page the same way.
    let mut cursor: Option<String> = None;
    let mut requests = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/requests?limit=1&cursor={c}"),
            None => "/v1/requests?limit=1".to_owned(),
        };
        let page = api.ok(&path);
        requests.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let ids: BTreeSet<i64> = requests.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(!requests.is_empty());
    assert_eq!(ids.len(), requests.len());
    assert_eq!(requests[0]["lane"], "tencent");
    assert!(requests.iter().all(|r| r["outcome"] == "succeeded"));
    assert_eq!(refused_field(&api.get("/v1/requests?rule=site")), "rule");
}

#[test]
fn providers_show_lanes_and_quota_and_never_a_secret() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let api = Api::new(server.addr, Some(ADMIN_TOKEN));
    server.send(&ceph_body("assets", "ObjectCreated:Put", &["q.css".into()]));
    ep.settle(Duration::from_secs(20));
    let providers = api.ok("/v1/providers");
    let tencent = &providers["providers"][0];
    assert_eq!(tencent["name"], "tencent");
    assert_eq!(tencent["kind"], "tencent-cdn");
    assert_eq!(tencent["supports"], json!(["url", "dir"]));
    // One lane: nothing stored for fan-out.
    assert_eq!(
        tencent["fanout"],
        json!({"targets": 0, "oldest_at": null}),
        "{tencent}"
    );
    let lane = &tencent["lanes"][0];
    assert_eq!(lane["lane"], "tencent");
    assert!(lane["state"].is_string(), "{lane}");
    assert_eq!(lane["succeeded"], 1, "{lane}");
    let last = lane["last_success_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
    let url_quota = lane["quota"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "url")
        .unwrap_or_else(|| panic!("no url quota: {lane}"));
    assert_eq!(
        url_quota["left"].as_u64().unwrap() + url_quota["used"].as_u64().unwrap(),
        url_quota["daily"].as_u64().unwrap()
    );
    assert!(url_quota["used"].as_u64().unwrap() >= 1, "{url_quota}");
    // Nor where the secrets are kept.
    let text = providers.to_string();
    assert!(!text.contains("EP_TEST_SECRET"), "{text}");
    let status = api.ok("/v1/status");
    assert_eq!(status["status"], "ok");
    assert_eq!(status["rules_in_force"], 1);
    // (Every answer of this file is also checked for the secrets themselves.)
}

#[test]
fn purge_by_hand_and_retry_what_was_given_up() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let api = Api::new(server.addr, Some(ADMIN_TOKEN));

    let r = api.post(
        "/v1/purge?wait=purged&timeout_ms=20000",
        &json!({"targets": ["https://cdn.example.com/by-hand.css"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["provider"], "tencent", "the only account is the default");
    assert_eq!(a["purged"], true, "{a}");
    assert!(fake
        .purged()
        .contains(&"https://cdn.example.com/by-hand.css".to_owned()));
    let id = a["records"][0].as_i64().unwrap();
    let log = api.ok("/v1/log?limit=1");
    assert_eq!(log["records"][0]["id"], id);
    assert_eq!(log["records"][0]["format"], "manual");

    // Given up at once (the account refuses the host), then re-queued by retry.
    fake.fail("UnauthorizedOperation.CdnHostUnauthorized", 1);
    let r = api.post(
        "/v1/purge?wait=purged&timeout_ms=20000",
        &json!({"provider": "tencent", "kind": "dir", "targets": ["https://cdn.example.com/dir/"]}),
    );
    let a = r.json();
    assert_eq!(a["purged"], false, "{a}");
    assert_eq!(a["statuses"]["dead"], 1, "{a}");
    let dead = api.ok("/v1/log?status=dead");
    assert_eq!(dead["records"].as_array().unwrap().len(), 1);
    assert!(dead["records"][0]["error"]
        .as_str()
        .unwrap()
        .contains("CdnHostUnauthorized"));
    let r = api.post("/v1/retry", &json!({"provider": "tencent"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["requeued"], 1);
    edgepurge_testkit::wait_for(Duration::from_secs(10), "the retried purge", || {
        fake.purged()
            .contains(&"https://cdn.example.com/dir/".to_owned())
            .then_some(())
    });
    // An empty body retries everything (nothing is dead now).
    let r = api.raw("POST", "/v1/retry", None, "application/json");
    assert_eq!(r.json()["requeued"], 0, "{}", r.text());

    // Bad purges and retries are refused whole, naming the field.
    let before = api.ok("/v1/log?limit=1000")["records"]
        .as_array()
        .unwrap()
        .len();
    let cases = [
        (json!({"targets": ["cdn.example.com/a.css"]}), "targets"),
        (json!({"targets": ["https://x/ok", "ftp://x/a"]}), "targets"),
        (json!({"targets": []}), "targets"),
        (
            json!({"kind": "dir", "targets": ["https://x/no-slash"]}),
            "targets",
        ),
        (json!({"kind": "tag", "targets": ["t"]}), "kind"),
        (
            json!({"provider": "akamai", "targets": ["https://x/a"]}),
            "provider",
        ),
        (json!({"target": ["https://x/a"]}), "target"),
    ];
    for (body, field) in cases {
        assert_eq!(
            refused_field(&api.post("/v1/purge", &body)),
            field,
            "{body}"
        );
    }
    let r = api.post("/v1/purge?wait=soon", &json!({"targets": ["https://x/a"]}));
    assert_eq!(refused_field(&r), "wait");
    let after = api.ok("/v1/log?limit=1000")["records"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing queued for refused purges");
    assert_eq!(
        refused_field(&api.post("/v1/retry", &json!({"rule": "nope"}))),
        "rule"
    );
    assert_eq!(
        refused_field(&api.post("/v1/retry", &json!({"provider": "nope"}))),
        "provider"
    );
    assert_eq!(
        refused_field(&api.post("/v1/retry", &json!({"all": true}))),
        "all"
    );
    // A body that is not an object is refused, though serde would read a struct from it.
    let r = api.post("/v1/retry", &json!([null, null]));
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Schemathesis (PyPI) generates requests from openapi.json, valid and not, and checks every
/// answer against the document: status codes, content types, response schemas, that invalid
/// input is refused and that authorization is not ignored. Whether valid-looking input is
/// accepted is not checked: a schema cannot know the configured accounts or event names.
#[test]
fn schemathesis_finds_the_server_as_documented() {
    let st = edgepurge_testkit::repo_root().join(".venv-test/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run scripts/setup-test-deps.sh (testkit/requirements.txt)",
        st.display()
    );
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    let out = std::process::Command::new(st)
        .current_dir(ep.dir.path())
        .args([
            "run",
            &format!("http://{}/v1/openapi.json", server.addr),
            "--header",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            // wait=purged may take up to 60 s by design.
            "--request-timeout",
            "70",
            "--no-color",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found differences:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in SECRETS {
        assert!(!text.contains(secret));
    }
}

#[test]
fn the_console_is_served_from_the_binary_with_a_strict_content_policy() {
    let fake = fake_tencent();
    let ep = config_with_admin(&fake, SITE_RULE);
    let server = ep.serve();
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        // The pages hold no data: served without the token; the API they call needs it.
        let r = http::get(server.addr, path).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        for secret in SECRETS {
            assert!(!r.text().contains(secret));
        }
    }
    let page = http::get(server.addr, "/").unwrap().text();
    assert!(page.contains("/console/app.js") && page.contains("Add rule"));
    assert_eq!(http::get(server.addr, "/v1/rules").unwrap().status, 401);
}
