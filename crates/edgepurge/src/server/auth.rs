//! Who may call what: a bearer token when one is configured, else loopback callers only.
//! Tokens are compared in constant time and never logged.

use crate::secret::Secret;
use axum::http::{header, HeaderMap};
use std::net::SocketAddr;

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A token was presented and it is not the configured one.
    WrongToken,
    /// A token is configured and none was presented.
    MissingToken,
    /// No token is configured and the caller is not on loopback.
    NotLoopback,
}

/// Checks a caller against `token`: the `Authorization: Bearer` header (or `query_token`,
/// for senders that cannot set headers) when a token is configured, else a loopback address.
pub fn check(
    token: Option<&Secret>,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: SocketAddr,
) -> Result<(), Denied> {
    match token {
        Some(token) => match bearer(headers).or(query_token) {
            Some(t) if token.matches(t.as_bytes()) => Ok(()),
            Some(_) => Err(Denied::WrongToken),
            None => Err(Denied::MissingToken),
        },
        // A dual-stack listener sees IPv4 callers as ::ffff:a.b.c.d.
        None if peer.ip().to_canonical().is_loopback() => Ok(()),
        None => Err(Denied::NotLoopback),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn tokens_and_loopback() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let t = Secret::new("s3cret");
        assert_eq!(check(None, &headers(None), None, local), Ok(()));
        assert_eq!(check(None, &headers(None), None, mapped), Ok(()));
        assert_eq!(
            check(None, &headers(None), None, remote),
            Err(Denied::NotLoopback)
        );
        let ok = headers(Some("bearer s3cret"));
        assert_eq!(check(Some(&t), &ok, None, remote), Ok(()));
        assert_eq!(
            check(Some(&t), &headers(None), Some("s3cret"), remote),
            Ok(())
        );
        // With a token configured, loopback is no excuse.
        assert_eq!(
            check(Some(&t), &headers(None), None, local),
            Err(Denied::MissingToken)
        );
        assert_eq!(
            check(Some(&t), &headers(Some("Bearer nope")), None, local),
            Err(Denied::WrongToken)
        );
        assert_eq!(
            check(Some(&t), &headers(Some("Basic s3cret")), None, local),
            Err(Denied::MissingToken)
        );
    }
}
