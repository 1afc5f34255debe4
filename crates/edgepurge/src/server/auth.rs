//! Who may call what: a bearer token when one is configured (the webhook token, or a
//! Pub/Sub push token when `[server.pubsub_oidc]` is), else loopback callers only. Tokens are
//! compared in constant time and never logged.

use crate::secret::Secret;
use axum::http::{header, HeaderMap};
use std::net::SocketAddr;

/// A token the running server checks callers against, which a reload (SIGHUP) can replace:
/// requests after the swap are checked against the new one only.
#[derive(Debug, Default)]
pub struct Token(std::sync::RwLock<Option<Secret>>);

impl Token {
    pub fn new(token: Option<Secret>) -> Token {
        Token(std::sync::RwLock::new(token))
    }

    /// The token now (`None`: none is configured).
    pub fn get(&self) -> Option<Secret> {
        // A panic while holding the lock cannot leave a half-written token: take it as is.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, token: Option<Secret>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    pub fn is_set(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

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

/// Who a caller that passed [`check`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// Presented the webhook token, or is on loopback where no token is configured.
    Trusted,
    /// Presented a bearer JWT, which the Pub/Sub push-token check must verify.
    Jwt(&'a str),
}

/// Checks a caller against `token`: the `Authorization: Bearer` header (or `query_token`,
/// for senders that cannot set headers) when a token is configured, else a loopback address.
pub fn check(
    token: Option<&Secret>,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: SocketAddr,
) -> Result<(), Denied> {
    check_caller(token, false, headers, query_token, peer).map(|_| ())
}

/// [`check`], and with `jwt` (Pub/Sub push tokens accepted) a bearer JWT that is not the
/// webhook token is handed on for verification; loopback is then no excuse either.
pub fn check_caller<'a>(
    token: Option<&Secret>,
    jwt: bool,
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
    peer: SocketAddr,
) -> Result<Caller<'a>, Denied> {
    let bearer = bearer(headers);
    if let Some(token) = token {
        if [bearer, query_token]
            .into_iter()
            .flatten()
            .any(|t| token.matches(t.as_bytes()))
        {
            return Ok(Caller::Trusted);
        }
    }
    if let Some(t) = bearer.filter(|t| jwt && super::oidc::looks_like_jwt(t)) {
        return Ok(Caller::Jwt(t));
    }
    if token.is_some() || jwt {
        return match bearer.or(query_token) {
            Some(_) => Err(Denied::WrongToken),
            None => Err(Denied::MissingToken),
        };
    }
    // A dual-stack listener sees IPv4 callers as ::ffff:a.b.c.d.
    if peer.ip().to_canonical().is_loopback() {
        Ok(Caller::Trusted)
    } else {
        Err(Denied::NotLoopback)
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
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
        let check = |token, headers: &HeaderMap, query, peer| {
            check(token, headers, query, peer).map(|()| true)
        };
        assert_eq!(check(None, &headers(None), None, local), Ok(true));
        assert_eq!(check(None, &headers(None), None, mapped), Ok(true));
        assert_eq!(
            check(None, &headers(None), None, remote),
            Err(Denied::NotLoopback)
        );
        let ok = headers(Some("bearer s3cret"));
        assert_eq!(check(Some(&t), &ok, None, remote), Ok(true));
        assert_eq!(
            check(Some(&t), &headers(None), Some("s3cret"), remote),
            Ok(true)
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
        // Without push tokens configured, a JWT is just a wrong token.
        let jwt = headers(Some("Bearer aaa.bbb.ccc"));
        assert_eq!(check(Some(&t), &jwt, None, remote), Err(Denied::WrongToken));
    }

    #[test]
    fn push_tokens_go_to_their_check_and_the_webhook_token_still_works() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let t = Secret::new("s3cret");
        let jwt = headers(Some("Bearer aaa.bbb.ccc"));
        for token in [Some(&t), None] {
            assert_eq!(
                check_caller(token, true, &jwt, None, remote),
                Ok(Caller::Jwt("aaa.bbb.ccc"))
            );
            // Loopback is no excuse once push tokens are accepted.
            assert_eq!(
                check_caller(token, true, &headers(None), None, local),
                Err(Denied::MissingToken)
            );
            assert_eq!(
                check_caller(token, true, &headers(Some("Bearer nope")), None, remote),
                Err(Denied::WrongToken)
            );
        }
        // The webhook token authenticates beside a push token (`?token=` in the endpoint).
        assert_eq!(
            check_caller(Some(&t), true, &jwt, Some("s3cret"), remote),
            Ok(Caller::Trusted)
        );
        assert_eq!(
            check_caller(
                Some(&t),
                true,
                &headers(Some("Bearer s3cret")),
                None,
                remote
            ),
            Ok(Caller::Trusted)
        );
        // A webhook token that happens to have two dots is still the webhook token.
        let dotted = Secret::new("a.b.c");
        assert_eq!(
            check_caller(
                Some(&dotted),
                true,
                &headers(Some("Bearer a.b.c")),
                None,
                remote
            ),
            Ok(Caller::Trusted)
        );
    }
}
