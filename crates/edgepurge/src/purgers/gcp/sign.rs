//! The OAuth 2.0 JWT bearer grant's assertion for a service account (RFC 7523; Google's
//! "Using OAuth 2.0 for server to server applications"): an RS256 JWT whose `iss` is the
//! account, `scope` the Compute API, `aud` the token endpoint the key names, `iat` now and
//! `exp` an hour later (Google's maximum, and what google-auth asks for).
//!
//! Signed with `ring`'s `RsaKeyPair` (PKCS#1 v1.5, SHA-256): ring is already in the build
//! (rustls, the Pub/Sub push token check) and reads the PKCS#8 keys Google issues, so no JWT
//! crate is needed for one fixed header and five claims.

use super::credentials::ServiceAccount;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::RSA_PKCS1_SHA256;
use serde_json::json;

/// The scope asked for: Compute Engine read-write (`urlMaps.invalidateCache` and
/// `globalOperations.get` need no more).
pub const SCOPE: &str = "https://www.googleapis.com/auth/compute";
/// The assertion's lifetime: Google accepts at most an hour.
pub const LIFETIME_S: i64 = 3600;
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims of an assertion made at `now_s` (seconds since the epoch).
pub fn claims(sa: &ServiceAccount, now_s: i64) -> serde_json::Value {
    json!({
        "iss": sa.client_email,
        "scope": SCOPE,
        "aud": sa.token_uri,
        "iat": now_s,
        "exp": now_s + LIFETIME_S,
    })
}

/// The JWT header: RS256, with the key's id when the key file names it.
pub fn header(kid: Option<&str>) -> serde_json::Value {
    match kid {
        Some(kid) => json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        None => json!({"alg": "RS256", "typ": "JWT"}),
    }
}

/// The signed assertion (`header.claims.signature`, base64url without padding).
pub fn assertion(sa: &ServiceAccount, now_s: i64) -> Result<String, String> {
    let header = header(sa.private_key_id.as_deref());
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims(sa, now_s).to_string().as_bytes())
    );
    let mut signature = vec![0; sa.key.public().modulus_len()];
    sa.key
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "signing the token request with the service-account key failed".to_owned())?;
    Ok(format!("{signed}.{}", b64(&signature)))
}

/// The form body of the token request.
pub fn token_request_body(assertion: &str) -> String {
    form_urlencoded(&[("grant_type", GRANT_TYPE), ("assertion", assertion)])
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    /// A throwaway 2048-bit key made now by `cryptography` (never stored): the PKCS#8 PEM,
    /// and its public key as PKCS#1 DER, independently of ring.
    fn throwaway_key() -> (String, Vec<u8>) {
        let script = r#"
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
print(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                      serialization.NoEncryption()).decode().replace("\n", "\\n"))
print(k.public_key().public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.PKCS1).hex())
"#;
        let out = edgepurge_testkit::run(
            "make a throwaway RSA key",
            std::process::Command::new(edgepurge_testkit::python()).args(["-c", script]),
        );
        let mut lines = out.lines();
        let pem = lines.next().unwrap().replace("\\n", "\n");
        let public = hex::decode(lines.next().unwrap()).unwrap();
        (pem, public)
    }

    fn account(pem: &str) -> ServiceAccount {
        let json = json!({
            "type": "service_account",
            "project_id": "my-project-1",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": pem,
            "client_email": "purger@my-project-1.iam.gserviceaccount.com",
            "client_id": "100000000000000000000",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        super::super::credentials::parse(&json.to_string()).unwrap()
    }

    fn decode(part: &str) -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_assertion_carries_the_grant_claims_and_verifies_with_the_public_key() {
        let (pem, public) = throwaway_key();
        let sa = account(&pem);
        let now = 1_764_547_200; // 2025-12-01T00:00:00Z
        let jwt = assertion(&sa, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode(parts[0]),
            json!({"alg": "RS256", "typ": "JWT",
                   "kid": "0123456789abcdef0123456789abcdef01234567"})
        );
        assert_eq!(
            decode(parts[1]),
            json!({
                "iss": "purger@my-project-1.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/compute",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": now,
                "exp": now + 3600,
            })
        );
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        assert_eq!(signature.len(), 256);
        let signed = format!("{}.{}", parts[0], parts[1]);
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public);
        key.verify(signed.as_bytes(), &signature)
            .expect("the signature verifies with the key's public half");
        // Any change to what was signed fails.
        let tampered = signed.replacen(parts[1], &b64(b"{\"iss\":\"x\"}"), 1);
        assert!(key.verify(tampered.as_bytes(), &signature).is_err());
    }

    #[test]
    fn googles_worked_example_header_and_claim_times() {
        // developers.google.com/identity/protocols/oauth2/service-account ("Forming the JWT
        // header"): {"alg":"RS256","typ":"JWT"} is eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.
        assert_eq!(
            b64(header(None).to_string().as_bytes()),
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
        );
        // Its claim-set example: iat 1328550785, exp 1328554385 (an hour, the maximum), aud
        // "always https://oauth2.googleapis.com/token".
        let (pem, _) = throwaway_key();
        let c = claims(&account(&pem), 1_328_550_785);
        assert_eq!(
            (c["iat"].as_i64(), c["exp"].as_i64()),
            (Some(1_328_550_785), Some(1_328_554_385))
        );
        assert_eq!(c["aud"], "https://oauth2.googleapis.com/token");
    }

    #[test]
    fn the_token_request_is_the_jwt_bearer_grant_form() {
        assert_eq!(
            token_request_body("a.b-c_d.e"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d.e"
        );
    }
}
