//! The OpenAPI document against the implementation: the route table, and the running router
//! walked path by path and method by method, so an undocumented route, method or status
//! code fails here.

use super::openapi::DOCUMENT;
use super::routes;
use crate::service::Service;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use tower_service::Service as _;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// Every `(METHOD, path)` the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The status codes documented for an operation.
fn statuses(doc: &Value, method: &str, path: &str) -> BTreeSet<u16> {
    doc["paths"][path][method.to_lowercase()]["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|k| k.parse().expect("a status code"))
        .collect()
}

#[test]
fn the_document_names_every_route_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let described = documented(&doc);
    let undocumented: Vec<_> = table.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from openapi.json: {undocumented:?}; documented but not routed: \
         {unrouted:?}"
    );
    for r in routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        let open = op["security"] == serde_json::json!([]);
        assert_eq!(open, !r.authorized, "{} {}: security", r.method, r.path);
        let codes = statuses(&doc, r.method.as_str(), r.path);
        if r.authorized {
            assert!(
                codes.contains(&401) && codes.contains(&403),
                "{} {}: 401 and 403 documented",
                r.method,
                r.path
            );
        }
        // Every $ref points somewhere.
        check_refs(&doc, op);
    }
}

fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.strip_prefix('#').expect("local $ref");
                let target = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} is missing"));
                check_refs(doc, target);
            }
            map.values().for_each(|v| check_refs(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
        _ => {}
    }
}

/// A path with its parameters filled in: rules added beforehand (a config file rule cannot
/// be deleted, and the one deleted is not the one enabled after).
fn concrete(method: &str, path: &str) -> String {
    path.replace(
        "{name}",
        if method == "DELETE" {
            "walk-b"
        } else {
            "walk-a"
        },
    )
}

/// A body the operation takes, if it takes one.
fn body_for(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("POST", "/v1/rules") => Some(
            r#"{"name": "walked", "bucket": "assets", "events": ["created"],
                "domains": ["https://cdn.example.com"], "provider": "varnish"}"#,
        ),
        ("POST", "/v1/purge") => Some(r#"{"targets": ["https://cdn.example.com/a.css"]}"#),
        ("POST", "/v1/retry") => Some("{}"),
        ("POST", "/v1/discard") => Some("{\"lane\":\"x\"}"),
        _ => None,
    }
}

#[tokio::test]
async fn the_running_router_answers_every_documented_operation_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = crate::config::parse(&format!(
        "[store]\npath = {:?}\n\
         [providers.varnish]\nkind = \"http-purge\"\npreset = \"varnish\"\n\
         nodes = [\"127.0.0.1:9\"]\n\
         [[rules]]\nname = \"site\"\nbucket = \"assets\"\nevents = [\"created\"]\n\
         domains = [\"https://cdn.example.com\"]\nprovider = \"varnish\"\n",
        dir.path().join("t.db").display().to_string()
    ))
    .expect("config parses")
    .validate()
    .expect("config is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let service = Service::start(cfg, listener).await.expect("service starts");
    for name in ["walk-a", "walk-b"] {
        let spec = crate::rules::example(name, "varnish", edgepurge_core::Mode::Url);
        service
            .state
            .admin
            .add_rule(spec)
            .await
            .expect("rule added");
    }
    // Work on lane "x", which no account of the config serves: what POST /v1/discard takes.
    service
        .state
        .store
        .ingest(
            vec![crate::store::conformance::record(
                "walk-a",
                &[("x", "https://cdn.example.com/x.css")],
            )],
            1_000,
        )
        .await
        .expect("ingest");
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let mut router =
        crate::server::router(std::sync::Arc::clone(&service.state)).layer(MockConnectInfo(peer));
    let doc = document();

    let mut call = |method: &str, path: &str, body: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_owned()))
            .expect("request");
        router.call(req)
    };

    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            let method = m.to_uppercase();
            let target = concrete(&method, path);
            let status = call(&method, &target, body_for(&method, path))
                .await
                .expect("router answers")
                .status();
            if item.get(m).is_none() {
                // Not documented: the router must not serve it either.
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
                continue;
            }
            assert!(
                statuses(&doc, &method, path).contains(&status.as_u16()),
                "{method} {path} answered {status}, which openapi.json does not list"
            );
            assert!(
                status.is_success(),
                "{method} {path}: a well-formed call answered {status}"
            );
        }
    }

    // The failures every authorized operation documents happen as documented.
    for r in routes().iter().filter(|r| r.authorized) {
        let target = concrete(r.method.as_str(), r.path);
        let req = Request::builder()
            .method(r.method.clone())
            .uri(&target)
            .header("authorization", "Bearer not-configured")
            .body(Body::empty())
            .expect("request");
        let status = router.call(req).await.expect("router answers").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {}", r.method, r.path);
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/rules")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name": "x", "colour": "red"}"#))
        .expect("request");
    let status = router.call(req).await.expect("router answers").status();
    assert!(statuses(&doc, "POST", "/v1/rules").contains(&status.as_u16()));
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Discard: malformed, crafted and conflicting inputs are refused with the field at fault,
    // and nothing is echoed raw; a served lane is a conflict.
    let long = format!(r#"{{"lane": "{}"}}"#, "x".repeat(100_000));
    for (body, want, field) in [
        ("{}", StatusCode::BAD_REQUEST, Some("lane")),
        (
            r#"{"lane": "x", "provider": "p"}"#,
            StatusCode::BAD_REQUEST,
            Some("lane"),
        ),
        (
            r#"{"lane": "a\u001b[31m b"}"#,
            StatusCode::BAD_REQUEST,
            Some("lane"),
        ),
        (long.as_str(), StatusCode::BAD_REQUEST, Some("lane")),
        (
            r#"{"provider": "gone"}"#,
            StatusCode::BAD_REQUEST,
            Some("provider"),
        ),
        (
            r#"{"lane": "varnish@127.0.0.1:9"}"#,
            StatusCode::CONFLICT,
            None,
        ),
        (r#"{"provider": "varnish"}"#, StatusCode::CONFLICT, None),
        (r#"{"lane": ["x"]}"#, StatusCode::BAD_REQUEST, None),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/discard")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let resp = router.call(req).await.expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes);
        let shown: String = body.chars().take(60).collect();
        assert_eq!(status, want, "{shown}: {text}");
        assert!(statuses(&doc, "POST", "/v1/discard").contains(&status.as_u16()));
        assert!(
            !text.contains('\u{1b}') && text.len() < 2_000,
            "{shown}: {text}"
        );
        if let Some(field) = field {
            let v: Value = serde_json::from_slice(&bytes).expect("JSON error");
            assert_eq!(v["field"], field, "{shown}: {v}");
        }
    }

    service.stop().await.expect("service stops");
}
