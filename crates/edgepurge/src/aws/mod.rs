//! What the AWS APIs edgepurge calls share: request signing (SigV4).

pub mod sigv4;

use crate::secret::SecretSource;
use crate::validate::{self, Problems};
use std::path::PathBuf;

/// Where a source's AWS-style keys come from: `access_key_id_env` / `_file` (default
/// `AWS_ACCESS_KEY_ID`), `secret_access_key_env` / `_file` (`AWS_SECRET_ACCESS_KEY`) and,
/// optional, `session_token_env` / `_file` (`AWS_SESSION_TOKEN`; unset means long-lived keys).
#[derive(Debug, Clone, PartialEq)]
pub struct KeySources {
    pub access_key_id: SecretSource,
    pub secret_access_key: SecretSource,
    pub session_token: Option<SecretSource>,
}

/// The six config fields [`KeySources`] is made from, as `(env, file)` pairs.
pub struct RawKeys {
    pub access_key_id: (Option<String>, Option<PathBuf>),
    pub secret_access_key: (Option<String>, Option<PathBuf>),
    pub session_token: (Option<String>, Option<PathBuf>),
}

impl KeySources {
    pub fn check(raw: RawKeys, at: &str, p: &mut Problems) -> Option<KeySources> {
        let mut one = |name: &str, (env, file): (Option<String>, Option<PathBuf>), default| {
            validate::secret(name, env, file, Some(default), at, p).flatten()
        };
        let access_key_id = one("access_key_id", raw.access_key_id, "AWS_ACCESS_KEY_ID");
        let secret_access_key = one(
            "secret_access_key",
            raw.secret_access_key,
            "AWS_SECRET_ACCESS_KEY",
        );
        let session_token = one("session_token", raw.session_token, "AWS_SESSION_TOKEN");
        Some(KeySources {
            access_key_id: access_key_id?,
            secret_access_key: secret_access_key?,
            session_token,
        })
    }

    /// Those that must be there (checked at start).
    pub fn required(&self) -> Vec<&SecretSource> {
        vec![&self.access_key_id, &self.secret_access_key]
    }

    /// All of them (checked for loose file permissions).
    pub fn all(&self) -> Vec<&SecretSource> {
        let mut v = self.required();
        v.extend(self.session_token.iter());
        v
    }

    /// Reads the keys now (a file may have been rotated since the last call).
    pub async fn load(&self) -> Result<sigv4::Credentials, String> {
        Ok(sigv4::Credentials {
            access_key_id: self.access_key_id.load().await?.expose().to_owned(),
            secret_access_key: self.secret_access_key.load().await?.expose().to_owned(),
            session_token: match &self.session_token {
                // An unset token variable means long-lived keys.
                Some(s) if s.check_present().is_ok() => Some(s.load().await?.expose().to_owned()),
                _ => None,
            },
        })
    }
}
