//! Access tokens for the service account: fetched with the JWT bearer grant, kept until
//! shortly before they expire (google-auth refreshes 3 min 45 s early; a short-lived token
//! a quarter of its life early), fetched again at once when the Compute API refuses one.
//! Token fetch failures are classified: the key or the account refused for good (deleted or
//! rotated key, disabled or deleted account, refused scope) is fatal with what to fix; the
//! endpoint failing (5xx, throttled, no answer) or a skewed clock is retried later. Neither
//! the key nor a token is ever logged or put into an error.

use super::credentials::{self, ServiceAccount};
use super::sign;
use crate::purgers::{snippet, PurgeError, Verdict};
use crate::secret::{Secret, SecretSource};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Refresh at most this long before a token expires (google-auth's `REFRESH_THRESHOLD`).
const EARLY: Duration = Duration::from_secs(225);

/// Why a call got no answer to classify (no token, or no answer at all): what to tell the
/// lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer {
    pub verdict: Verdict,
    pub http_status: Option<u16>,
    pub error: PurgeError,
}

/// A token and when to stop using it.
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// The longest an access token is believed to live (Google's: one hour).
const MAX_LIFETIME_S: u64 = 3600;

/// When to fetch a new token for one that `expires_in` from `now`.
pub fn refresh_at(now: Instant, expires_in: Duration) -> Instant {
    let expires_in = expires_in.min(Duration::from_secs(MAX_LIFETIME_S));
    now + expires_in.saturating_sub(EARLY.min(expires_in / 4))
}

pub struct Tokens {
    source: SecretSource,
    token_uri: Option<url::Url>,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
    /// One fetch at a time: concurrent requests wait for it rather than fetch too.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Deserialize)]
struct Granted {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Refused {
    error: Option<String>,
    error_description: Option<String>,
}

impl Tokens {
    pub fn new(source: SecretSource, token_uri: Option<url::Url>, http: reqwest::Client) -> Self {
        Tokens {
            source,
            token_uri,
            http,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self, now: Instant) -> Option<Secret> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// Forgets `token` (the API refused it); a newer one is kept.
    pub fn forget(&self, token: &Secret) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|c| c.token == *token) {
            *cached = None;
        }
    }

    /// A token valid now: the cached one, or a new one.
    pub async fn get(&self) -> Result<Secret, NoAnswer> {
        if let Some(t) = self.current(Instant::now()) {
            return Ok(t);
        }
        let _one = self.fetching.lock().await;
        if let Some(t) = self.current(Instant::now()) {
            return Ok(t);
        }
        let (token, expires_in) = self.fetch().await?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(Instant::now(), expires_in),
        });
        Ok(token)
    }

    /// Where the token request goes: the configured `token_uri`, else the key's own.
    fn endpoint(&self, sa: &ServiceAccount) -> Result<String, NoAnswer> {
        if let Some(u) = &self.token_uri {
            return Ok(u.to_string());
        }
        let mut p = crate::validate::Problems::default();
        match crate::validate::endpoint(&sa.token_uri, "token_uri", &mut p) {
            Some(u) => Ok(u.to_string()),
            None => Err(NoAnswer {
                verdict: Verdict::Fatal,
                http_status: None,
                error: PurgeError::Credentials(format!(
                    "the token_uri of the service-account key in {}: {}",
                    self.source,
                    p.into_vec()
                        .first()
                        .map(|x| x.message.clone())
                        .unwrap_or_default()
                )),
            }),
        }
    }

    async fn fetch(&self) -> Result<(Secret, Duration), NoAnswer> {
        let sa = credentials::load(&self.source)
            .await
            .map_err(|e| NoAnswer {
                verdict: Verdict::RetryLater { after: None },
                http_status: None,
                error: PurgeError::Credentials(e),
            })?;
        let url = self.endpoint(&sa)?;
        let now_s = crate::clock::now_ms() / 1000;
        let assertion = sign::assertion(&sa, now_s).map_err(|e| NoAnswer {
            verdict: Verdict::Fatal,
            http_status: None,
            error: PurgeError::Credentials(format!("{e} (key from {})", self.source)),
        })?;
        let what = format!("token request for {} to {url}", sa.client_email);
        let resp = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(sign::token_request_body(&assertion))
            .send()
            .await
            .map_err(|e| NoAnswer {
                verdict: Verdict::RetryLater { after: None },
                http_status: None,
                error: PurgeError::Transport(format!(
                    "{what}: {}",
                    crate::purgers::describe_transport_error(&e)
                )),
            })?;
        let status = resp.status().as_u16();
        let wait = crate::purgers::retry_after(resp.headers());
        let text = crate::purgers::answer_text(resp)
            .await
            .map_err(|e| NoAnswer {
                verdict: Verdict::RetryLater { after: wait },
                http_status: Some(status),
                error: PurgeError::Transport(format!("{what}: reading the answer failed: {e}")),
            })?;
        if (200..300).contains(&status) {
            let granted: Option<Granted> = serde_json::from_str(&text).ok();
            let token = granted.as_ref().and_then(|g| g.access_token.clone());
            let expires_in = granted
                .as_ref()
                .and_then(|g| g.expires_in.as_ref())
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3600);
            return match token.filter(|t| !t.is_empty()) {
                // Google's tokens live an hour at most; a larger figure is not believed
                // (and would overflow the refresh time).
                Some(t) => Ok((
                    Secret::new(t),
                    Duration::from_secs(expires_in.clamp(1, MAX_LIFETIME_S)),
                )),
                None => Err(NoAnswer {
                    verdict: Verdict::RetryLater { after: wait },
                    http_status: Some(status),
                    error: PurgeError::Answer {
                        code: None,
                        message: format!("{what}: HTTP {status} without an access_token"),
                    },
                }),
            };
        }
        let refused: Option<Refused> = serde_json::from_str(&text).ok();
        let (code, description) = match &refused {
            Some(Refused {
                error: Some(code),
                error_description,
            }) => (code.clone(), error_description.clone().unwrap_or_default()),
            _ => {
                return Err(NoAnswer {
                    verdict: Verdict::RetryLater { after: wait },
                    http_status: Some(status),
                    error: PurgeError::Answer {
                        code: None,
                        message: format!(
                            "{what}: HTTP {status} without an OAuth answer (check token_uri): \
                             {:?}",
                            snippet(&text, 200)
                        ),
                    },
                })
            }
        };
        let (verdict, hint) = classify(status, &code, &description);
        let verdict = match verdict {
            Verdict::RetryLater { after } => Verdict::RetryLater {
                after: after.or(wait),
            },
            v => v,
        };
        let mut message = format!(
            "{what}: HTTP {status} {code}: {}",
            snippet(&description, 300)
        );
        if let Some(h) = hint(&sa, &self.source) {
            message.push_str(&format!(" ({h})"));
        }
        Err(NoAnswer {
            verdict,
            http_status: Some(status),
            error: PurgeError::Answer {
                code: Some(code),
                message,
            },
        })
    }
}

/// What to tell the operator, given the account and where its key was read.
type Hint = fn(&ServiceAccount, &SecretSource) -> Option<String>;

/// Classifies a refused token request (`error`, `error_description` and the HTTP status),
/// with a hint on what to fix.
pub fn classify(status: u16, error: &str, description: &str) -> (Verdict, Hint) {
    let retry = Verdict::RetryLater { after: None };
    let d = description.to_ascii_lowercase();
    // google-auth's retryable answers (`_client._can_retry`).
    if matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
        || matches!(
            error,
            "internal_failure" | "server_error" | "temporarily_unavailable"
        )
    {
        return (retry, |_, _| None);
    }
    if d.contains("reasonable timeframe") || d.contains("short-lived") {
        return (retry, |_, _| {
            Some(
                "the assertion's iat/exp were refused: check this machine's clock (NTP); \
                 retried"
                    .to_owned(),
            )
        });
    }
    if d.contains("invalid jwt signature") {
        return (Verdict::Fatal, |sa, src| {
            Some(format!(
                "the key {} in {src} is not a current key of {}: it was deleted or rotated, \
                 or the file mixes two accounts; create a key (gcloud iam service-accounts \
                 keys create) and put it there, then `edgepurge retry`",
                sa.private_key_id
                    .as_deref()
                    .unwrap_or("(no private_key_id)"),
                sa.client_email
            ))
        });
    }
    if d.contains("disabled") {
        return (Verdict::Fatal, |sa, _| {
            Some(format!(
                "the service account {} is disabled: enable it (gcloud iam service-accounts \
                 enable {}), then `edgepurge retry`",
                sa.client_email, sa.client_email
            ))
        });
    }
    if d.contains("not found") || error == "deleted_client" {
        return (Verdict::Fatal, |sa, _| {
            Some(format!(
                "the service account {} does not exist (any more): create one with a custom \
                 role holding compute.urlMaps.invalidateCache and compute.globalOperations.get",
                sa.client_email
            ))
        });
    }
    if error == "invalid_scope" {
        return (Verdict::Fatal, |_, _| {
            Some(format!("the scope {} was refused", sign::SCOPE))
        });
    }
    // invalid_grant, invalid_client, unauthorized_client, invalid_request …: the grant
    // itself is refused, and sending it again will not change that.
    (Verdict::Fatal, |_, src| {
        Some(format!("check the service-account key in {src}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_refusals_are_fatal_and_endpoint_trouble_retries() {
        let retry = Verdict::RetryLater { after: None };
        for (status, error, description, want) in [
            (
                400,
                "invalid_grant",
                "Invalid JWT Signature.",
                Verdict::Fatal,
            ),
            (400, "invalid_grant", "Robot is disabled.", Verdict::Fatal),
            (
                400,
                "invalid_grant",
                "Invalid grant: account not found",
                Verdict::Fatal,
            ),
            (
                401,
                "deleted_client",
                "The OAuth client was deleted.",
                Verdict::Fatal,
            ),
            (400, "invalid_scope", "Invalid OAuth scope", Verdict::Fatal),
            (401, "invalid_client", "", Verdict::Fatal),
            (
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                 reasonable timeframe. Check your iat and exp values in the JWT claim.",
                retry.clone(),
            ),
            (500, "internal_failure", "", retry.clone()),
            (503, "unknown", "", retry.clone()),
            (429, "rate_limit_exceeded", "", retry.clone()),
            (400, "temporarily_unavailable", "", retry.clone()),
        ] {
            assert_eq!(
                classify(status, error, description).0,
                want,
                "{error} {description}"
            );
        }
    }

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let now = Instant::now();
        // An hour's token: 225 s early, like google-auth.
        assert_eq!(
            refresh_at(now, Duration::from_secs(3600)),
            now + Duration::from_secs(3375)
        );
        // A short-lived one: a quarter of its life early.
        assert_eq!(
            refresh_at(now, Duration::from_secs(8)),
            now + Duration::from_secs(6)
        );
        // A hostile or broken endpoint's lifetime is not believed past an hour (it overflowed
        // the refresh time and panicked before).
        assert_eq!(
            refresh_at(now, Duration::from_secs(u64::MAX)),
            now + Duration::from_secs(3375)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_token_is_used_until_its_refresh_time_and_a_refused_one_is_forgotten() {
        let http = crate::purgers::api_client(Duration::from_secs(1)).unwrap();
        let tokens = Tokens::new(SecretSource::Env("EP_GCP_UNIT_UNSET".into()), None, http);
        let start = Instant::now();
        *tokens.cached.lock().unwrap() = Some(Cached {
            token: Secret::new("ya29.first"),
            refresh_at: refresh_at(start, Duration::from_secs(100)),
        });
        assert_eq!(tokens.get().await.unwrap().expose(), "ya29.first");
        tokio::time::advance(Duration::from_secs(74)).await;
        assert_eq!(tokens.get().await.unwrap().expose(), "ya29.first");
        // Past the refresh time a new one is fetched: here the key cannot be read, which is
        // retried later and says where it looked.
        tokio::time::advance(Duration::from_secs(2)).await;
        let failure = tokens.get().await.unwrap_err();
        assert_eq!(failure.verdict, Verdict::RetryLater { after: None });
        assert!(
            failure.error.to_string().contains("EP_GCP_UNIT_UNSET"),
            "{:?}",
            failure.error
        );
        // forget() drops only the token it names.
        *tokens.cached.lock().unwrap() = Some(Cached {
            token: Secret::new("ya29.second"),
            refresh_at: refresh_at(Instant::now(), Duration::from_secs(3600)),
        });
        tokens.forget(&Secret::new("ya29.first"));
        assert_eq!(tokens.get().await.unwrap().expose(), "ya29.second");
        tokens.forget(&Secret::new("ya29.second"));
        assert!(
            tokens.get().await.is_err(),
            "fetched again, and failed here"
        );
    }
}
