//! Who may use the admin API: with `[admin] token_env` / `token_file` set, callers presenting
//! that token as `Authorization: Bearer` (compared in constant time; the webhook token is
//! just a wrong token here); without one, loopback callers only, and only for requests
//! addressed to an IP address or `localhost` (a web page cannot then reach the API through
//! a DNS name rebound to 127.0.0.1). Refusals are logged with the peer, rate-limited, never
//! with the token.

use super::super::answer::error;
use super::super::AppState;
use crate::secret::Secret;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A token was presented and it is not the admin token (the webhook token included).
    WrongToken,
    /// The admin token is configured and none was presented.
    MissingToken,
    /// No admin token is configured and a token was presented anyway.
    UnexpectedToken,
    /// No admin token is configured and the caller is not on loopback.
    NotLoopback,
    /// No admin token is configured and the request names a host other than an IP address
    /// or `localhost`.
    ForeignHost,
}

impl Denied {
    pub fn status(self) -> StatusCode {
        match self {
            Denied::WrongToken | Denied::MissingToken | Denied::UnexpectedToken => {
                StatusCode::UNAUTHORIZED
            }
            Denied::NotLoopback | Denied::ForeignHost => StatusCode::FORBIDDEN,
        }
    }

    /// What the caller reads.
    pub fn message(self) -> &'static str {
        match self {
            Denied::WrongToken => {
                "the bearer token is not the admin token ([admin] token_env or token_file; the \
                 webhook token is not accepted here)"
            }
            Denied::MissingToken => {
                "missing `Authorization: Bearer <admin token>` ([admin] token_env or token_file)"
            }
            Denied::UnexpectedToken => {
                "this server has no admin token, so it takes none: loopback callers need no \
                 Authorization header (set [admin] token_env to require a token)"
            }
            Denied::NotLoopback => {
                "no admin token is configured, so only loopback callers may use the admin API; \
                 set [admin] token_env (or token_file) and send it as `Authorization: Bearer`"
            }
            Denied::ForeignHost => {
                "no admin token is configured, so the admin API answers only requests addressed \
                 to an IP address or localhost (Host header); set [admin] token_env to use a \
                 host name"
            }
        }
    }

    /// What the log says (never the token).
    fn log_text(self) -> &'static str {
        match self {
            Denied::WrongToken => "wrong bearer token (401)",
            Denied::MissingToken => "no bearer token (401)",
            Denied::UnexpectedToken => "a bearer token, but none is configured (401)",
            Denied::NotLoopback => "not loopback and no admin token is configured (403)",
            Denied::ForeignHost => "a Host name that is not an IP or localhost (403)",
        }
    }
}

/// The decision for a caller at `peer` sending `headers`, given the admin `token`.
pub fn decide(token: Option<&Secret>, headers: &HeaderMap, peer: SocketAddr) -> Result<(), Denied> {
    let presented = headers.contains_key(header::AUTHORIZATION);
    let bearer = super::super::auth::bearer(headers);
    match (token, bearer) {
        (Some(t), Some(b)) if t.matches(b.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(Denied::WrongToken),
        (Some(_), None) => Err(Denied::MissingToken),
        (None, _) if presented => Err(Denied::UnexpectedToken),
        (None, _) => {
            // A dual-stack listener sees IPv4 callers as ::ffff:a.b.c.d.
            if !peer.ip().to_canonical().is_loopback() {
                return Err(Denied::NotLoopback);
            }
            match headers.get(header::HOST) {
                Some(host) if !local_host(host) => Err(Denied::ForeignHost),
                _ => Ok(()),
            }
        }
    }
}

/// Whether a Host header names an IP address or `localhost` (with or without a port).
fn local_host(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let host = match text.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        },
        None => text.rsplit_once(':').map_or(text, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok()
}

/// The middleware before every authorized admin route.
pub async fn require(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let token = state.admin_token.get();
    match decide(token.as_ref(), request.headers(), peer) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let what = format!(
                "{} {}: {}",
                request.method(),
                request.uri().path(),
                denied.log_text()
            );
            state.refused.admin.note(peer, &what);
            let mut r = error(denied.status(), denied.message());
            if denied.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        if let Some(host) = host {
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    const LOCAL: &str = "127.0.0.1:1";
    const MAPPED: &str = "[::ffff:127.0.0.1]:1";
    const REMOTE: &str = "192.0.2.1:1";

    fn peer(p: &str) -> SocketAddr {
        p.parse().unwrap()
    }

    #[test]
    fn with_a_token_only_that_token_passes_from_anywhere() {
        let admin = Secret::new("admin-s3cret");
        let t = Some(&admin);
        for p in [LOCAL, REMOTE] {
            assert_eq!(
                decide(t, &headers(Some("Bearer admin-s3cret"), None), peer(p)),
                Ok(())
            );
            // Loopback is no excuse once a token is set.
            assert_eq!(
                decide(t, &headers(None, None), peer(p)),
                Err(Denied::MissingToken)
            );
            // The webhook token (or any other) is a wrong token: 401.
            let webhook = headers(Some("Bearer webhook-token"), None);
            assert_eq!(decide(t, &webhook, peer(p)), Err(Denied::WrongToken));
            assert_eq!(Denied::WrongToken.status(), StatusCode::UNAUTHORIZED);
            // Not a bearer token at all.
            assert_eq!(
                decide(t, &headers(Some("Basic admin-s3cret"), None), peer(p)),
                Err(Denied::MissingToken)
            );
        }
    }

    #[test]
    fn without_a_token_loopback_callers_only_and_a_non_loopback_caller_is_told_how() {
        for p in [LOCAL, MAPPED] {
            assert_eq!(decide(None, &headers(None, None), peer(p)), Ok(()));
        }
        let denied = decide(None, &headers(None, None), peer(REMOTE)).unwrap_err();
        assert_eq!(denied, Denied::NotLoopback);
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(denied.message().contains("[admin] token_env"));
        // A token sent where none is configured is refused, not ignored.
        assert_eq!(
            decide(None, &headers(Some("Bearer x"), None), peer(LOCAL)),
            Err(Denied::UnexpectedToken)
        );
    }

    #[test]
    fn without_a_token_a_rebound_host_name_is_refused() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "192.0.2.2",
        ] {
            assert_eq!(
                decide(None, &headers(None, Some(host)), peer(LOCAL)),
                Ok(()),
                "{host}"
            );
        }
        for host in ["attacker.example", "attacker.example:8080", "[nope]:1"] {
            assert_eq!(
                decide(None, &headers(None, Some(host)), peer(LOCAL)),
                Err(Denied::ForeignHost),
                "{host}"
            );
        }
        // With a token configured the host does not matter.
        let admin = Secret::new("a");
        assert_eq!(
            decide(
                Some(&admin),
                &headers(Some("Bearer a"), Some("edgepurge.internal")),
                peer(REMOTE)
            ),
            Ok(())
        );
    }
}
