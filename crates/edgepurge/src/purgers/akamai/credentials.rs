//! The EdgeGrid credentials of one API client: the four values of an `.edgerc` section
//! (`host`, `client_token`, `client_secret`, `access_token`), each read from an environment
//! variable or a file at every request (a rotated file needs no restart). Errors name where
//! a value was looked for, never the value (a token pasted into the wrong variable must not
//! end up in the log).

use crate::secret::{Secret, SecretSource};
use crate::validate::Problems;
use std::path::PathBuf;

/// The variables Akamai's own tools read (edgegrid-golang's environment config).
pub const DEFAULT_HOST_ENV: &str = "AKAMAI_HOST";
pub const DEFAULT_CLIENT_TOKEN_ENV: &str = "AKAMAI_CLIENT_TOKEN";
pub const DEFAULT_CLIENT_SECRET_ENV: &str = "AKAMAI_CLIENT_SECRET";
pub const DEFAULT_ACCESS_TOKEN_ENV: &str = "AKAMAI_ACCESS_TOKEN";

/// Where each credential is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSources {
    pub host: SecretSource,
    pub client_token: SecretSource,
    pub client_secret: SecretSource,
    pub access_token: SecretSource,
}

/// The `*_env` / `*_file` fields of the config section, as written.
pub struct RawSources {
    pub host: (Option<String>, Option<PathBuf>),
    pub client_token: (Option<String>, Option<PathBuf>),
    pub client_secret: (Option<String>, Option<PathBuf>),
    pub access_token: (Option<String>, Option<PathBuf>),
}

/// Credentials read for one request.
pub struct Loaded {
    /// The API host (`akab-….luna.akamaiapis.net`), without scheme or slash.
    pub host: String,
    pub client_token: Secret,
    pub client_secret: Secret,
    pub access_token: Secret,
}

impl CredentialSources {
    /// Checks the fields; each defaults to Akamai's `AKAMAI_*` variable.
    pub fn check(raw: RawSources, at: &str, p: &mut Problems) -> Option<CredentialSources> {
        let mut one = |name: &str, (env, file): (Option<String>, Option<PathBuf>), default| {
            crate::validate::secret(name, env, file, Some(default), at, p).flatten()
        };
        let host = one("host", raw.host, DEFAULT_HOST_ENV);
        let client_token = one("client_token", raw.client_token, DEFAULT_CLIENT_TOKEN_ENV);
        let client_secret = one(
            "client_secret",
            raw.client_secret,
            DEFAULT_CLIENT_SECRET_ENV,
        );
        let access_token = one("access_token", raw.access_token, DEFAULT_ACCESS_TOKEN_ENV);
        Some(CredentialSources {
            host: host?,
            client_token: client_token?,
            client_secret: client_secret?,
            access_token: access_token?,
        })
    }

    pub fn all(&self) -> Vec<&SecretSource> {
        vec![
            &self.host,
            &self.client_token,
            &self.client_secret,
            &self.access_token,
        ]
    }

    /// Reads the four values now. The error says which one is missing or malformed, and
    /// where it was looked for.
    pub async fn load(&self) -> Result<Loaded, String> {
        let host = self.host.load().await.map_err(|e| format!("host: {e}"))?;
        let host = api_host(host.expose()).ok_or_else(|| {
            format!(
                "host from {} is not an API host name: it should look like \
                 akab-xxxxxxxxxxxxxxxx-xxxxxxxxxxxxxxxx.luna.akamaiapis.net (the `host` of the \
                 .edgerc section, without a path)",
                self.host
            )
        })?;
        Ok(Loaded {
            host,
            client_token: load(&self.client_token, "client_token").await?,
            client_secret: load(&self.client_secret, "client_secret").await?,
            access_token: load(&self.access_token, "access_token").await?,
        })
    }
}

async fn load(src: &SecretSource, name: &str) -> Result<Secret, String> {
    src.load().await.map_err(|e| format!("{name}: {e}"))
}

/// The API host of an `.edgerc` `host` value: a DNS name (optionally with a port), also
/// accepted with a leading `https://` and a trailing `/`, as some tools write it.
pub fn api_host(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("https://").unwrap_or(v);
    let v = v.strip_suffix('/').unwrap_or(v);
    let (name, port) = match v.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (v, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (name_ok && port_ok).then(|| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hosts_are_dns_names() {
        let h = "akab-abcdefghijklmnop-qrstuvwxyz012345.luna.akamaiapis.net";
        assert_eq!(api_host(h).as_deref(), Some(h));
        assert_eq!(api_host(&format!(" https://{h}/\n")).as_deref(), Some(h));
        assert_eq!(
            api_host("Example.COM:8443").as_deref(),
            Some("example.com:8443")
        );
        for bad in [
            "",
            "https://",
            "http://x.example.com",
            "x.example.com/ccu/v3",
            "a b.example.com",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
            "x.example.com:0",
            "-x.example.com",
        ] {
            assert_eq!(api_host(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_malformed_host_is_named_by_its_source_not_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, value: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, value).unwrap();
            SecretSource::File(p)
        };
        let sources = CredentialSources {
            // A secret pasted into the host file by mistake.
            host: file("host", "s3cr3t-VALUE+/="),
            client_token: file("ct", "akab-ct"),
            client_secret: file("cs", "secret"),
            access_token: SecretSource::Env("EP_AKAMAI_UNIT_SURELY_UNSET".into()),
        };
        let err = sources.load().await.err().unwrap();
        assert!(
            err.contains("host from file") && err.contains("not an API host"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let sources = CredentialSources {
            host: file("host2", "akab-x.luna.akamaiapis.net\n"),
            ..sources
        };
        let err = sources.load().await.err().unwrap();
        assert!(
            err.starts_with("access_token: environment variable EP_AKAMAI_UNIT_SURELY_UNSET"),
            "{err}"
        );
    }
}
