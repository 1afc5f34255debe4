//! The `[function]` section: how function mode (`edgepurge function`, `edgepurge handle`)
//! treats a body. Without `forward_to` it purges directly; with it, it relays the body to a
//! running edgepurge server.

use crate::secret::SecretSource;
use crate::validate::{self, Problems};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    pub forward_to: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct FunctionConfig {
    /// The server's webhook (`https://host/v1/events`) to relay bodies to, instead of purging.
    pub forward_to: Option<url::Url>,
    /// The server's webhook token, sent as `Authorization: Bearer`.
    pub token: Option<SecretSource>,
}

impl FunctionConfig {
    pub fn check(raw: RawFunction, p: &mut Problems) -> FunctionConfig {
        let forward_to = raw.forward_to.as_deref().and_then(|text| {
            let url = validate::endpoint(text, "function.forward_to", p)?;
            if !url.username().is_empty() || url.password().is_some() {
                p.push(
                    "function.forward_to",
                    "holds a user or password; give the server's token with token_env or \
                     token_file instead (it is sent as a bearer token)",
                );
                return None;
            }
            if url.path() == "/" {
                p.push(
                    "function.forward_to",
                    format!("{text:?} has no path; give the webhook's, e.g. {text}v1/events"),
                );
            }
            Some(url)
        });
        let token = p
            .check(
                SecretSource::from_fields(
                    "token",
                    raw.token_env.as_deref(),
                    raw.token_file.as_deref(),
                ),
                "function",
            )
            .flatten();
        if token.is_some() && forward_to.is_none() {
            p.push(
                "function",
                "token_env/token_file is only used with forward_to; set forward_to or remove it",
            );
        }
        FunctionConfig { forward_to, token }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (FunctionConfig, Vec<String>) {
        let raw: RawFunction = toml::from_str(text).unwrap();
        let mut p = Problems::default();
        let cfg = FunctionConfig::check(raw, &mut p);
        (cfg, p.into_vec().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn forwarding_needs_https_and_the_webhook_path() {
        let (cfg, problems) =
            check("forward_to = \"https://purge.example.com/v1/events\"\ntoken_env = \"EP_TOKEN\"");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            cfg.forward_to.unwrap().as_str(),
            "https://purge.example.com/v1/events"
        );
        assert_eq!(cfg.token, Some(SecretSource::Env("EP_TOKEN".into())));

        let (_, problems) = check("forward_to = \"http://purge.example.com/v1/events\"");
        assert!(problems[0].contains("plain http"), "{problems:?}");
        let (_, problems) = check("forward_to = \"https://purge.example.com\"");
        assert!(problems[0].contains("no path"), "{problems:?}");
        let (_, problems) = check("forward_to = \"https://u:pw@purge.example.com/v1/events\"");
        assert!(problems[0].contains("user or password"), "{problems:?}");
        assert!(
            !problems[0].contains("pw"),
            "the password is not repeated: {problems:?}"
        );
        let (_, problems) = check("token_env = \"EP_TOKEN\"");
        assert!(
            problems[0].contains("only used with forward_to"),
            "{problems:?}"
        );
        // Loopback may be plain http (a server beside the function, tests).
        let (_, problems) = check("forward_to = \"http://127.0.0.1:8470/v1/events\"");
        assert!(problems.is_empty(), "{problems:?}");
    }
}
