//! `[server.pubsub_oidc]`: the Pub/Sub push subscription whose signed tokens the webhook
//! accepts (beside the webhook token), checked purely.

use crate::validate::{endpoint, Problems};
use serde::Deserialize;
use std::time::Duration;

/// Google's signing keys for ID tokens, as a JWKS document.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const DEFAULT_REFETCH_INTERVAL_S: u64 = 30;
const MAX_REFETCH_INTERVAL_S: u64 = 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPubsubOidc {
    /// The token's `aud`: the subscription's `--push-auth-token-audience` (by default its
    /// push endpoint URL).
    pub audience: Option<String>,
    /// The token's `email`: the subscription's `--push-auth-service-account`.
    pub service_account: Option<String>,
    /// Where Google's signing keys are fetched (https; http for loopback test endpoints).
    pub jwks_url: Option<String>,
    /// Least time between two fetches of the keys (an unknown key id or a failed fetch
    /// cannot make edgepurge fetch more often).
    pub refetch_interval_s: Option<u64>,
}

/// A checked `[server.pubsub_oidc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubOidcConfig {
    pub audience: String,
    pub service_account: String,
    pub jwks_url: url::Url,
    pub refetch_interval: Duration,
}

impl PubsubOidcConfig {
    /// Checks the section at `at`, recording every problem.
    pub fn check(raw: RawPubsubOidc, at: &str, p: &mut Problems) -> Option<PubsubOidcConfig> {
        let field = |name: &str| format!("{at}.{name}");
        let audience = match raw.audience.as_deref().map(str::trim) {
            None | Some("") => {
                p.push(
                    field("audience"),
                    "required: the audience the push subscription puts in its tokens \
                     (--push-auth-token-audience; by default its push endpoint URL, e.g. \
                     https://edgepurge.example.com/v1/events)",
                );
                None
            }
            Some(a) if a.len() > 2048 || a.chars().any(|c| c.is_control()) => {
                p.push(
                    field("audience"),
                    "must be at most 2048 characters, without control characters",
                );
                None
            }
            Some(a) => Some(a.to_owned()),
        };
        let service_account = match raw.service_account.as_deref().map(str::trim) {
            None | Some("") => {
                p.push(
                    field("service_account"),
                    "required: the service account email the push subscription signs as \
                     (--push-auth-service-account, e.g. \
                     pubsub-push@PROJECT.iam.gserviceaccount.com)",
                );
                None
            }
            Some(sa) if !is_email(sa) => {
                p.push(
                    field("service_account"),
                    format!(
                        "{:?} is not an email address (the service account's, e.g. \
                         pubsub-push@PROJECT.iam.gserviceaccount.com)",
                        edgepurge_core::printable(sa)
                    ),
                );
                None
            }
            Some(sa) => Some(sa.to_owned()),
        };
        let jwks_url = endpoint(
            raw.jwks_url.as_deref().unwrap_or(GOOGLE_JWKS_URL),
            &field("jwks_url"),
            p,
        );
        let refetch_interval = match raw.refetch_interval_s {
            Some(n) if n == 0 || n > MAX_REFETCH_INTERVAL_S => {
                p.push(
                    field("refetch_interval_s"),
                    format!("must be 1 to {MAX_REFETCH_INTERVAL_S} seconds"),
                );
                None
            }
            n => Some(Duration::from_secs(n.unwrap_or(DEFAULT_REFETCH_INTERVAL_S))),
        };
        Some(PubsubOidcConfig {
            audience: audience?,
            service_account: service_account?,
            jwks_url: jwks_url?,
            refetch_interval: refetch_interval?,
        })
    }
}

fn is_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && text.len() <= 320
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(text)?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_is_optional_and_defaults_to_googles_keys() {
        assert_eq!(check("").unwrap().server.pubsub_oidc, None);
        let cfg = check(
            r#"
            [server.pubsub_oidc]
            audience = "https://edgepurge.example.com/v1/events"
            service_account = "pubsub-push@my-project.iam.gserviceaccount.com"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.server.pubsub_oidc,
            Some(PubsubOidcConfig {
                audience: "https://edgepurge.example.com/v1/events".into(),
                service_account: "pubsub-push@my-project.iam.gserviceaccount.com".into(),
                jwks_url: url::Url::parse(GOOGLE_JWKS_URL).unwrap(),
                refetch_interval: Duration::from_secs(DEFAULT_REFETCH_INTERVAL_S),
            })
        );
    }

    #[test]
    fn every_problem_is_named() {
        let err = check(
            r#"
            [server.pubsub_oidc]
            service_account = "not an email"
            jwks_url = "http://certs.example.com/certs"
            refetch_interval_s = 0
            "#,
        )
        .unwrap_err();
        for want in [
            "server.pubsub_oidc.audience: required",
            "server.pubsub_oidc.service_account: \"not an email\" is not an email address",
            "server.pubsub_oidc.jwks_url: \"http://certs.example.com/certs\": plain http",
            "server.pubsub_oidc.refetch_interval_s: must be 1 to 3600 seconds",
        ] {
            assert!(err.contains(want), "{err}\nlacks {want}");
        }
        let err = check("[server.pubsub_oidc]\naudince = \"x\"").unwrap_err();
        assert!(err.contains("unknown field `audince`"), "{err}");
        // Loopback http is for test endpoints.
        let cfg = check(
            r#"
            [server.pubsub_oidc]
            audience = "a"
            service_account = "sa@p.iam.gserviceaccount.com"
            jwks_url = "http://127.0.0.1:9/certs"
            refetch_interval_s = 1
            "#,
        )
        .unwrap();
        let oidc = cfg.server.pubsub_oidc.unwrap();
        assert_eq!(oidc.jwks_url.as_str(), "http://127.0.0.1:9/certs");
        assert_eq!(oidc.refetch_interval, Duration::from_secs(1));
    }
}
