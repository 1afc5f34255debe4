//! The web console at `/`: plain HTML, CSS and JavaScript embedded in the binary, working
//! only through the admin API (`/v1/`), which does every check (the console asks for the
//! admin token when the API answers 401 and keeps it in the tab's session storage). Nothing
//! is fetched from elsewhere: the Content-Security-Policy allows this origin only, and no
//! framing.
//!
//! The pages hold no data and no secret, so they are served to anyone who can reach the
//! listener; what they show comes from the API, under its authorization.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The console's paths and what each serves.
pub const ASSETS: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", INDEX),
    ("/console/app.js", "text/javascript; charset=utf-8", SCRIPT),
    ("/console/app.css", "text/css; charset=utf-8", STYLE),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Always the assets of the running version.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new();
    for (path, content_type, body) in ASSETS {
        r = r.route(path, get(move || async move { asset(content_type, body) }));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_nothing_from_elsewhere_and_name_every_asset() {
        // Every src= and href= of the page is one of the console's own assets.
        for attr in ["src=\"", "href=\""] {
            for (at, _) in INDEX.match_indices(attr) {
                let rest = &INDEX[at + attr.len()..];
                let target = &rest[..rest.find('"').unwrap_or(rest.len())];
                assert!(
                    ASSETS.iter().any(|(path, ..)| *path == target),
                    "index.html loads {target}"
                );
            }
        }
        for (path, ..) in &ASSETS[1..] {
            assert!(INDEX.contains(path), "index.html loads {path}");
        }
        for (name, text) in [("app.js", SCRIPT), ("app.css", STYLE)] {
            for outside in ["http://", "https://", "@import", "url("] {
                assert!(!text.contains(outside), "{name} refers to {outside}");
            }
        }
        // Data is only ever set as text.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("eval("));
    }
}
