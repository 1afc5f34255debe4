//! The service account's JSON key (the file `gcloud iam service-accounts keys create`
//! writes): `client_email`, `private_key` (PKCS#8 PEM), `private_key_id`, `token_uri`.
//! Read at every token fetch, so a rotated key needs no restart. Errors say which field is
//! missing or malformed and where the key was read from, never a value of it.

use crate::secret::SecretSource;
use base64::Engine;
use ring::signature::RsaKeyPair;
use serde::Deserialize;

/// The token endpoint when a key names none (Google's, as in every key it issues).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

#[derive(Deserialize)]
struct RawKey {
    #[serde(rename = "type")]
    ty: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// A parsed service-account key. `Debug` shows the account, never the key.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    /// The token endpoint the key names: the audience of every assertion.
    pub token_uri: String,
    pub key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Reads and parses the key from `source`.
pub async fn load(source: &SecretSource) -> Result<ServiceAccount, String> {
    let text = source.load().await?;
    parse(text.expose()).map_err(|e| format!("service-account key from {source}: {e}"))
}

/// Parses a service-account key's JSON. Messages name fields, never values.
pub fn parse(json: &str) -> Result<ServiceAccount, String> {
    let raw: RawKey = serde_json::from_str(json).map_err(|e| {
        // serde_json's own message may quote a value: say only where and what kind.
        format!(
            "not a service-account JSON key ({:?} error at line {} column {}); download a \
             JSON key with `gcloud iam service-accounts keys create`",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if let Some(ty) = raw.ty.as_deref() {
        if ty != "service_account" {
            return Err(format!(
                "its type is {:?}, not \"service_account\": give a service account's key, not a \
                 user's or workload identity's credentials",
                edgepurge_core::printable(ty)
            ));
        }
    }
    let client_email = raw
        .client_email
        .filter(|e| e.contains('@') && !e.chars().any(char::is_control))
        .ok_or("client_email is missing or not an e-mail address")?;
    let pem = raw.private_key.ok_or("private_key is missing")?;
    let der = pkcs8_der(&pem)?;
    let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
        format!("private_key is not an RSA key ring can use ({e}); create a new key")
    })?;
    let token_uri = raw
        .token_uri
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
    Ok(ServiceAccount {
        client_email,
        private_key_id: raw.private_key_id.filter(|k| {
            !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric())
        }),
        token_uri,
        key,
    })
}

/// The DER bytes of a `-----BEGIN PRIVATE KEY-----` PEM block (PKCS#8, as Google writes).
pub fn pkcs8_der(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN).ok_or_else(|| {
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            "private_key is a PKCS#1 key (BEGIN RSA PRIVATE KEY); Google's keys are PKCS#8 \
             (BEGIN PRIVATE KEY): convert it with `openssl pkcs8 -topk8 -nocrypt`"
                .to_owned()
        } else {
            "private_key is not a PEM private key (-----BEGIN PRIVATE KEY-----)".to_owned()
        }
    })? + BEGIN.len();
    let end = pem[start..]
        .find(END)
        .ok_or("private_key's PEM block has no END line")?
        + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "private_key's PEM block is not base64".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_keys_are_named_by_field_never_by_value() {
        let cases = [
            ("{", "not a service-account JSON key"),
            ("{\"private_key\": 12345678}", "not a service-account JSON key"),
            (
                "{\"type\": \"authorized_user\", \"client_email\": \"a@b\"}",
                "its type is \"authorized_user\"",
            ),
            ("{\"private_key\": \"x\"}", "client_email is missing"),
            ("{\"client_email\": \"sa@p.iam.gserviceaccount.com\"}", "private_key is missing"),
            (
                "{\"client_email\": \"a@b\", \"private_key\": \"SECRET-MATERIAL\"}",
                "not a PEM private key",
            ),
            (
                "{\"client_email\": \"a@b\", \"private_key\": \"-----BEGIN RSA PRIVATE KEY-----\\nSECRET\\n-----END RSA PRIVATE KEY-----\"}",
                "PKCS#1",
            ),
            (
                "{\"client_email\": \"a@b\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nSECRET!!\\n-----END PRIVATE KEY-----\"}",
                "not base64",
            ),
            (
                "{\"client_email\": \"a@b\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nU0VDUkVU\\n-----END PRIVATE KEY-----\"}",
                "not an RSA key ring can use",
            ),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
            assert!(
                !err.contains("SECRET") && !err.contains("12345678"),
                "{err}"
            );
        }
    }
}
