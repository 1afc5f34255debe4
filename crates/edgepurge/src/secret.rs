//! Secrets come from environment variables or files, never from the config text, and never
//! show up in `Debug` output, logs or errors.

use std::fmt;
use std::path::PathBuf;

/// A secret value. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison (for tokens presented by callers).
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let ours = self.0.as_bytes();
        // Length is not secret-dependent timing worth hiding for random tokens, but compare
        // fixed-size digests anyway so the comparison time does not depend on either input.
        use sha2::{Digest, Sha256};
        let a = Sha256::digest(ours);
        let b = Sha256::digest(presented);
        a.ct_eq(&b).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    /// Re-read at every use, so rotating the file needs no restart.
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

impl SecretSource {
    /// From an `*_env` / `*_file` pair of config fields; both set is an error, neither is
    /// `None`.
    pub fn from_fields(
        field: &str,
        env: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> Result<Option<SecretSource>, String> {
        match (env, file) {
            (Some(_), Some(_)) => Err(format!("set either {field}_env or {field}_file, not both")),
            (Some(v), None) if v.trim().is_empty() => Err(format!(
                "{field}_env is empty; name an environment variable"
            )),
            (Some(v), None) => Ok(Some(SecretSource::Env(v.to_owned()))),
            (None, Some(p)) => Ok(Some(SecretSource::File(p.to_owned()))),
            (None, None) => Ok(None),
        }
    }

    /// Reads the secret now, without blocking the async runtime (files are read at every
    /// use, so they can rotate). The error says where it looked, never what it found.
    pub async fn load(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::Env(var) => env_value(var)?,
            SecretSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| file_error(path, &e))?,
        };
        self.checked(&value)
    }

    /// Whether the secret can be read now (without its value): `Err` says what is missing.
    pub fn check_present(&self) -> Result<(), String> {
        let value = match self {
            SecretSource::Env(var) => env_value(var)?,
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| file_error(path, &e))?
            }
        };
        self.checked(&value).map(drop)
    }

    /// A warning when this is a file every user of the machine can read; `None` otherwise
    /// (also for a file that cannot be read now: loading it says why).
    pub fn exposure(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let SecretSource::File(path) = self else {
            return None;
        };
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o004 != 0).then(|| {
            format!(
                "secret file {} is readable by every user (mode {mode:03o}); restrict it, e.g. \
                 chmod 600 {}",
                path.display(),
                path.display()
            )
        })
    }

    fn checked(&self, value: &str) -> Result<Secret, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(Secret::new(value))
    }
}

fn env_value(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("environment variable {var} is not set (or not UTF-8)"))
}

fn file_error(path: &std::path::Path, e: &std::io::Error) -> String {
    format!("cannot read secret file {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("AKIDsupersecret");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }

    #[test]
    fn token_comparison() {
        let s = Secret::new("token-1");
        assert!(s.matches(b"token-1"));
        assert!(!s.matches(b"token-2"));
        assert!(!s.matches(b"token-1 "));
        assert!(!s.matches(b""));
    }

    #[tokio::test]
    async fn file_secrets_are_trimmed_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "one\n").unwrap();
        let src = SecretSource::File(path.clone());
        assert_eq!(src.load().await.unwrap().expose(), "one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(src.load().await.unwrap().expose(), "two");
        std::fs::write(&path, "  \n").unwrap();
        assert!(src.load().await.unwrap_err().contains("is empty"));
    }

    #[tokio::test]
    async fn file_secrets_read_without_blocking_match_the_blocking_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, " three\n").unwrap();
        let src = SecretSource::File(path);
        assert_eq!(src.load().await.unwrap().expose(), "three");
        let missing = SecretSource::File(dir.path().join("none")).load().await;
        assert!(missing.unwrap_err().contains("cannot read secret file"));
    }

    #[test]
    fn presence_is_checked_without_reading_out_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let src = SecretSource::File(path.clone());
        assert!(src
            .check_present()
            .unwrap_err()
            .contains("cannot read secret file"));
        std::fs::write(&path, " \n").unwrap();
        assert!(src.check_present().unwrap_err().contains("is empty"));
        std::fs::write(&path, "value").unwrap();
        assert_eq!(src.check_present(), Ok(()));
        let unset = SecretSource::Env("EDGEPURGE_TEST_SURELY_UNSET_2".into());
        assert!(unset
            .check_present()
            .unwrap_err()
            .contains("EDGEPURGE_TEST_SURELY_UNSET_2 is not set"));
    }

    #[test]
    fn world_readable_secret_files_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "x").unwrap();
        let src = SecretSource::File(path.clone());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = src.exposure().unwrap();
        assert!(w.contains("readable by every user (mode 644)"), "{w}");
        assert!(w.contains("chmod 600"), "{w}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(src.exposure(), None);
        assert_eq!(SecretSource::Env("X".into()).exposure(), None);
        assert_eq!(SecretSource::File(dir.path().join("none")).exposure(), None);
    }

    #[tokio::test]
    async fn missing_sources_say_where_they_looked() {
        let err = SecretSource::Env("EDGEPURGE_TEST_SURELY_UNSET".into())
            .load()
            .await
            .unwrap_err();
        assert!(err.contains("EDGEPURGE_TEST_SURELY_UNSET"));
        assert!(SecretSource::from_fields("secret_key", Some("A"), Some("/x".as_ref())).is_err());
        assert_eq!(
            SecretSource::from_fields("secret_key", None, None),
            Ok(None)
        );
    }
}
