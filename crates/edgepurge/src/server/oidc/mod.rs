//! Pub/Sub push subscriptions with authentication send `Authorization: Bearer <Google-signed
//! OIDC ID token>`. When `[server.pubsub_oidc]` is configured, such a token authenticates a
//! call to `/v1/events` if and only if it is RS256, signed by one of Google's current keys
//! (the JWKS at `jwks_url`, selected by `kid`), issued by Google, for the configured audience
//! and service account (`email`, verified), and within its lifetime (60 s of clock skew
//! allowed). The checks themselves are pure ([`jwt`], [`jwks`]); this module keeps the keys.
//!
//! Keys are fetched over HTTPS with a timeout, bounded in size, and kept for the answer's
//! `Cache-Control: max-age`. An unknown key id fetches them again (Google rotates its keys),
//! but never sooner than `refetch_interval_s` after the last fetch, nor after a failed one, so
//! a sender of made-up key ids cannot make edgepurge hammer Google. Concurrent requests share
//! one fetch. While the keys cannot be had, callers are told to retry (503), not refused.

mod config;
mod jwks;
mod jwt;

pub use config::{PubsubOidcConfig, RawPubsubOidc};
pub use jwt::{looks_like_jwt, Refusal};

use jwks::RsaKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait for Google's keys (connect, answer and body together).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long past their lifetime Google's keys are still used while they cannot be fetched
/// again (Google publishes a key long before it signs with it and keeps it long after): a
/// short outage between edgepurge and Google does not stop every push.
const STALE_GRACE: Duration = Duration::from_secs(6 * 3600);

/// Why a token did not authenticate its caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The token is not acceptable (401).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Google's keys cannot be had now, so the token cannot be checked: retry (503).
    #[error("{0}")]
    Unavailable(String),
}

/// A caller the push-token check let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The service account the token was issued to.
    pub service_account: String,
}

/// The push-token check and its cache of Google's keys.
pub struct PubsubOidc {
    cfg: PubsubOidcConfig,
    http: reqwest::Client,
    keys: Mutex<KeyCache>,
    /// Held while fetching, so concurrent requests share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    keys: Arc<HashMap<String, RsaKey>>,
    /// Until when `keys` may be used (`None`: never fetched).
    fresh_until: Option<Instant>,
    /// When the last fetch was tried, successful or not.
    last_try: Option<Instant>,
    /// Why the last fetch failed; `None` when it succeeded.
    last_error: Option<String>,
}

/// What the cache can say about a key id now.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Found(RsaKey),
    /// Fetch the keys (now allowed), then look again.
    Fetch,
    /// Not among the keys, which are fresh and were fetched too recently to fetch again.
    Unknown,
    /// The last fetch failed, too recently to try again.
    Failing(String),
}

impl KeyCache {
    fn lookup(&self, kid: &str, now: Instant, refetch_interval: Duration) -> Lookup {
        let fresh = self.fresh_until.is_some_and(|t| now < t);
        // Past their lifetime, while the last fetch failed: still used, for a while.
        let stale_usable =
            self.last_error.is_some() && self.fresh_until.is_some_and(|t| now < t + STALE_GRACE);
        if fresh || stale_usable {
            if let Some(k) = self.keys.get(kid) {
                return Lookup::Found(k.clone());
            }
        }
        let may_fetch = self
            .last_try
            .is_none_or(|t| now.saturating_duration_since(t) >= refetch_interval);
        match (&self.last_error, may_fetch) {
            (_, true) => Lookup::Fetch,
            (Some(e), false) => Lookup::Failing(e.clone()),
            (None, false) if fresh => Lookup::Unknown,
            // Keys outlived after a recent successful fetch (their lifetime is at least the
            // refetch interval, so this is a race at the boundary): fetch.
            (None, false) => Lookup::Fetch,
        }
    }

    fn record(
        &mut self,
        fetched: Result<(HashMap<String, RsaKey>, Duration), String>,
        at: Instant,
    ) {
        self.last_try = Some(at);
        match fetched {
            Ok((keys, ttl)) => {
                self.keys = Arc::new(keys);
                self.fresh_until = Some(at + ttl);
                self.last_error = None;
            }
            // Keys still fresh stay usable.
            Err(e) => self.last_error = Some(e),
        }
    }
}

impl PubsubOidc {
    pub fn new(cfg: PubsubOidcConfig) -> Result<PubsubOidc, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("edgepurge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Google's keys: {e}"))?;
        Ok(PubsubOidc {
            cfg,
            http,
            keys: Mutex::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured check, or `None` when `[server.pubsub_oidc]` is absent.
    pub fn from_config(cfg: Option<&PubsubOidcConfig>) -> Result<Option<Arc<PubsubOidc>>, String> {
        cfg.map(|c| PubsubOidc::new(c.clone()).map(Arc::new))
            .transpose()
    }

    pub fn config(&self) -> &PubsubOidcConfig {
        &self.cfg
    }

    /// The configured audience as it may be logged (a query, which may hold the webhook
    /// token, hidden).
    pub fn audience_shown(&self) -> String {
        jwt::shown_url(&self.cfg.audience)
    }

    /// Checks a bearer token at `now_s` (Unix seconds).
    pub async fn verify(&self, token: &str, now_s: i64) -> Result<Verified, OidcError> {
        let parsed = jwt::parse(token)?;
        let key = self.key(&parsed.kid).await?;
        parsed.verify_signature(&key)?;
        let expected = jwt::Expected {
            audience: &self.cfg.audience,
            service_account: &self.cfg.service_account,
        };
        let service_account = jwt::check_claims(parsed.claims(), expected, now_s)?;
        Ok(Verified { service_account })
    }

    /// The key `kid` names, fetching Google's keys when the cache allows.
    async fn key(&self, kid: &str) -> Result<RsaKey, OidcError> {
        if let Some(answer) = self.cached(kid) {
            return answer;
        }
        let _one_fetch = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(answer) = self.cached(kid) {
            return answer;
        }
        let fetched = self.fetch().await;
        if let Err(e) = &fetched {
            tracing::warn!(
                jwks_url = %self.cfg.jwks_url,
                "cannot fetch Google's signing keys for Pub/Sub push tokens: {e}"
            );
        }
        let now = Instant::now();
        self.cache().record(fetched, now);
        match self.cache().lookup(kid, now, Duration::MAX) {
            Lookup::Found(k) => Ok(k),
            Lookup::Failing(e) => Err(self.unavailable(&e)),
            Lookup::Unknown | Lookup::Fetch => Err(Refusal::UnknownKey(jwt::shown(kid)).into()),
        }
    }

    /// The cache's answer, or `None` when the keys should be fetched first.
    fn cached(&self, kid: &str) -> Option<Result<RsaKey, OidcError>> {
        let lookup = self
            .cache()
            .lookup(kid, Instant::now(), self.cfg.refetch_interval);
        match lookup {
            Lookup::Found(k) => Some(Ok(k)),
            Lookup::Fetch => None,
            Lookup::Unknown => Some(Err(Refusal::UnknownKey(jwt::shown(kid)).into())),
            Lookup::Failing(e) => Some(Err(self.unavailable(&e))),
        }
    }

    fn unavailable(&self, why: &str) -> OidcError {
        OidcError::Unavailable(format!(
            "Google's signing keys cannot be fetched from {}: {why}",
            self.cfg.jwks_url
        ))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetches and parses the key set; its lifetime from the answer's headers.
    async fn fetch(&self) -> Result<(HashMap<String, RsaKey>, Duration), String> {
        let mut resp = self
            .http
            .get(self.cfg.jwks_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ttl = jwks::lifetime(
            header(reqwest::header::CACHE_CONTROL).as_deref(),
            header(reqwest::header::AGE).as_deref(),
            self.cfg.refetch_interval,
        );
        if resp
            .content_length()
            .is_some_and(|n| n > jwks::MAX_JWKS_BYTES as u64)
        {
            return Err(format!(
                "the key set is larger than {} bytes",
                jwks::MAX_JWKS_BYTES
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > jwks::MAX_JWKS_BYTES {
                return Err(format!(
                    "the key set is larger than {} bytes",
                    jwks::MAX_JWKS_BYTES
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = jwks::parse(&body)?;
        tracing::info!(
            keys = keys.len(),
            valid_for_s = ttl.as_secs(),
            "fetched Google's signing keys for Pub/Sub push tokens"
        );
        Ok((keys, ttl))
    }
}

/// A transport error with its causes (reqwest's text names the URL, which holds no secret).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut msg = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RsaKey {
        RsaKey {
            n: vec![n],
            e: vec![1, 0, 1],
        }
    }

    fn keys(ids: &[&str]) -> HashMap<String, RsaKey> {
        ids.iter().map(|k| (k.to_string(), key(1))).collect()
    }

    const EVERY: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn an_empty_cache_fetches_and_a_fresh_one_answers() {
        let mut c = KeyCache::default();
        let t0 = Instant::now();
        assert_eq!(c.lookup("a", t0, EVERY), Lookup::Fetch);
        c.record(Ok((keys(&["a"]), Duration::from_secs(3600))), t0);
        assert_eq!(c.lookup("a", t0, EVERY), Lookup::Found(key(1)));
        // Past its lifetime the set is fetched again, even for a known id.
        let later = t0 + Duration::from_secs(3601);
        assert_eq!(c.lookup("a", later, EVERY), Lookup::Fetch);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_key_ids_refetch_at_most_once_per_interval() {
        let mut c = KeyCache::default();
        let t0 = Instant::now();
        c.record(Ok((keys(&["a"]), Duration::from_secs(3600))), t0);
        // Right after a fetch, a made-up id is unknown: no fetch.
        for i in 0..100 {
            let now = t0 + Duration::from_millis(i * 100);
            assert_eq!(c.lookup(&format!("random{i}"), now, EVERY), Lookup::Unknown);
        }
        // After the interval one fetch is allowed (Google may have rotated its keys)...
        let t1 = t0 + EVERY;
        assert_eq!(c.lookup("new", t1, EVERY), Lookup::Fetch);
        c.record(Ok((keys(&["a", "new"]), Duration::from_secs(3600))), t1);
        assert_eq!(c.lookup("new", t1, EVERY), Lookup::Found(key(1)));
        // ...and then none again for a while.
        assert_eq!(
            c.lookup("other", t1 + Duration::from_secs(1), EVERY),
            Lookup::Unknown
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_is_retried_after_the_interval_and_keeps_fresh_keys() {
        let mut c = KeyCache::default();
        let t0 = Instant::now();
        c.record(Err("cannot connect".into()), t0);
        assert_eq!(
            c.lookup("a", t0, EVERY),
            Lookup::Failing("cannot connect".into())
        );
        assert_eq!(c.lookup("a", t0 + EVERY, EVERY), Lookup::Fetch);
        let t1 = t0 + EVERY;
        c.record(Ok((keys(&["a"]), Duration::from_secs(3600))), t1);
        // A failed refetch for an unknown id leaves the known keys usable.
        let t2 = t1 + EVERY;
        c.record(Err("HTTP 500".into()), t2);
        assert_eq!(c.lookup("a", t2, EVERY), Lookup::Found(key(1)));
        assert_eq!(
            c.lookup("zz", t2, EVERY),
            Lookup::Failing("HTTP 500".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_serve_while_google_cannot_be_reached_for_a_while() {
        let mut c = KeyCache::default();
        let t0 = Instant::now();
        c.record(Ok((keys(&["a"]), Duration::from_secs(3600))), t0);
        let expired = t0 + Duration::from_secs(3601);
        assert_eq!(c.lookup("a", expired, EVERY), Lookup::Fetch);
        c.record(Err("cannot connect".into()), expired);
        assert_eq!(c.lookup("a", expired, EVERY), Lookup::Found(key(1)));
        assert_eq!(
            c.lookup("b", expired, EVERY),
            Lookup::Failing("cannot connect".into())
        );
        // Not forever.
        let much_later = t0 + Duration::from_secs(3600) + STALE_GRACE;
        c.record(Err("cannot connect".into()), much_later);
        assert_eq!(
            c.lookup("a", much_later, EVERY),
            Lookup::Failing("cannot connect".into())
        );
    }

    #[tokio::test]
    async fn a_jwks_that_cannot_be_reached_is_unavailable_not_a_refusal() {
        // A port nothing listens on: bind, then drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let oidc = PubsubOidc::new(PubsubOidcConfig {
            audience: "aud".into(),
            service_account: "sa@p.iam.gserviceaccount.com".into(),
            jwks_url: url::Url::parse(&format!("http://127.0.0.1:{port}/certs")).unwrap(),
            refetch_interval: EVERY,
        })
        .unwrap();
        // The token's shape is checked first: no fetch for garbage.
        let err = oidc.verify("a.b.c", 0).await.unwrap_err();
        assert!(
            matches!(err, OidcError::Refused(Refusal::Malformed(_))),
            "{err}"
        );
        assert!(oidc.cache().last_try.is_none());
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(r#"{"iss":"accounts.google.com"}"#),
            "A".repeat(342)
        );
        let err = oidc.verify(&token, 0).await.unwrap_err();
        let OidcError::Unavailable(msg) = err else {
            panic!("{err:?}")
        };
        assert!(
            msg.contains(&format!(
                "from http://127.0.0.1:{port}/certs: cannot connect"
            )),
            "{msg}"
        );
        // Within the interval it is not tried again.
        let tried = oidc.cache().last_try;
        assert!(matches!(
            oidc.verify(&token, 0).await,
            Err(OidcError::Unavailable(_))
        ));
        assert_eq!(oidc.cache().last_try, tried);
    }
}
