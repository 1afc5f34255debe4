//! Google's signing keys as its JWKS document (`https://www.googleapis.com/oauth2/v3/certs`)
//! publishes them, and how long a fetched set may be kept (its `Cache-Control: max-age`,
//! less its `Age`), pure.

use super::jwt::b64url;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Largest JWKS document read (Google's is about 1.5 KB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys kept from one document (Google publishes two or three).
const MAX_KEYS: usize = 32;
/// How long keys are kept when the answer says nothing (or says not to cache).
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Longest time keys are kept, whatever the answer says.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// An RSA public key: modulus and exponent, big-endian, without leading zeros.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaKey {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaKey({} bits)", self.n.len() * 8)
    }
}

/// The RS256 signing keys of a JWKS document, by key id. Keys of other types or uses are
/// skipped; a document with none usable is an error.
pub fn parse(body: &[u8]) -> Result<HashMap<String, RsaKey>, String> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(format!(
            "the key set is {} bytes, more than {MAX_JWKS_BYTES}",
            body.len()
        ));
    }
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the key set is not JSON ({e})"))?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err("the key set has no \"keys\" list (is jwks_url a JWKS document?)".into());
    };
    let mut out = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let field = |name: &str| key.get(name).and_then(Value::as_str);
        if field("kty") != Some("RSA")
            || field("use").is_some_and(|u| u != "sig")
            || field("alg").is_some_and(|a| a != "RS256")
        {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
            return Err(format!("keys[{i}]: an RSA key needs kid, n and e"));
        };
        let component = |text: &str, name: &str| {
            b64url(text)
                .map(strip_leading_zeros)
                .map_err(|err| format!("keys[{i}].{name} is not base64url ({err})"))
        };
        out.insert(
            kid.to_owned(),
            RsaKey {
                n: component(n, "n")?,
                e: component(e, "e")?,
            },
        );
        if out.len() > MAX_KEYS {
            return Err(format!("the key set has more than {MAX_KEYS} keys"));
        }
    }
    if out.is_empty() {
        return Err("the key set has no RS256 signing key".into());
    }
    Ok(out)
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// How long a key set fetched with these headers may be used: `max-age` less `Age`, at least
/// `floor` (so the refetch limit always applies) and at most a day; a default when the answer
/// gives no lifetime.
pub fn lifetime(cache_control: Option<&str>, age: Option<&str>, floor: Duration) -> Duration {
    let max_age = cache_control.and_then(|cc| {
        let mut max_age = None;
        for directive in cc.split(',') {
            let d = directive.trim();
            let (name, value) = d.split_once('=').unwrap_or((d, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" => return Some(0),
                "max-age" => max_age = value.trim().trim_matches('"').parse::<u64>().ok(),
                _ => {}
            }
        }
        max_age
    });
    let ttl = match max_age {
        Some(secs) => {
            let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
            Duration::from_secs(secs.saturating_sub(age))
        }
        None => DEFAULT_TTL,
    };
    ttl.clamp(floor.min(MAX_TTL), MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Google's JWKS shape (public values shortened).
    const GOOGLE_LIKE: &str = r#"{"keys": [
        {"n": "AAEC", "kid": "a1", "e": "AQAB", "kty": "RSA", "alg": "RS256", "use": "sig"},
        {"kty": "RSA", "kid": "b2", "e": "AQAB", "n": "AwQ"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQ", "e": "AQAB"},
        {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQ", "e": "AQAB"}
    ]}"#;

    #[test]
    fn rs256_signing_keys_are_kept_by_id() {
        let keys = parse(GOOGLE_LIKE.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2, "{keys:?}");
        // A leading zero byte is dropped, as ring wants the modulus.
        assert_eq!(keys["a1"].n, vec![1, 2]);
        assert_eq!(keys["a1"].e, vec![1, 0, 1]);
        assert_eq!(keys["b2"].n, vec![3, 4]);
    }

    #[test]
    fn bad_documents_say_why() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"<html>".to_vec(), "not JSON"),
            (b"{}".to_vec(), "no \"keys\" list"),
            (br#"{"keys": []}"#.to_vec(), "no RS256 signing key"),
            (
                br#"{"keys": [{"kty": "RSA", "kid": "x", "n": "AQ"}]}"#.to_vec(),
                "needs kid, n and e",
            ),
            (
                br#"{"keys": [{"kty": "RSA", "kid": "x", "n": "!", "e": "AQAB"}]}"#.to_vec(),
                "keys[0].n is not base64url",
            ),
            (vec![b' '; MAX_JWKS_BYTES + 1], "more than 65536"),
        ];
        for (body, want) in cases {
            let err = parse(&body).unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        let many: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"kty":"RSA","kid":"k{i}","n":"AQ","e":"AQAB"}}"#))
            .collect();
        let body = format!(r#"{{"keys":[{}]}}"#, many.join(","));
        assert!(parse(body.as_bytes())
            .unwrap_err()
            .contains("more than 32 keys"));
    }

    #[test]
    fn keys_are_kept_for_max_age_less_age_within_bounds() {
        let floor = Duration::from_secs(30);
        let s = Duration::from_secs;
        // Google's header.
        let google = Some("public, max-age=19845, must-revalidate, no-transform");
        assert_eq!(lifetime(google, None, floor), s(19845));
        assert_eq!(lifetime(google, Some("845"), floor), s(19000));
        assert_eq!(lifetime(google, Some("99999"), floor), floor);
        assert_eq!(lifetime(Some("max-age=5"), None, floor), floor);
        assert_eq!(lifetime(Some("MAX-AGE=\"600\""), None, floor), s(600));
        assert_eq!(lifetime(Some("max-age=9999999"), None, floor), MAX_TTL);
        assert_eq!(lifetime(Some("no-store"), None, floor), floor);
        assert_eq!(lifetime(Some("no-cache, max-age=600"), None, floor), floor);
        assert_eq!(lifetime(None, None, floor), DEFAULT_TTL);
        assert_eq!(lifetime(Some("public"), None, floor), DEFAULT_TTL);
        assert_eq!(lifetime(Some("max-age=abc"), None, floor), DEFAULT_TTL);
    }
}
