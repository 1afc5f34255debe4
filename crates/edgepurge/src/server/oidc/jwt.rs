//! The checks on one Pub/Sub push token, pure: split and decode it, refuse every algorithm
//! but RS256, verify its signature with a key from Google's JWKS, then its claims (`iss`,
//! `aud`, `email`, `email_verified`, `exp`, `iat`). Time is passed in.

use super::jwks::RsaKey;
use base64::Engine;
use serde_json::{Map, Value};

/// Longest token looked at. A Google ID token is about 1 KB; anything much longer is refused
/// before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `exp` and `iat`, in seconds.
pub const LEEWAY_S: i64 = 60;
/// The `iss` of a Google-signed ID token (as `google.oauth2.id_token` accepts it).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Longest key id accepted (Google's are 40 hex digits).
const MAX_KID: usize = 128;
/// Longest claim value echoed in an error.
const MAX_SHOWN: usize = 120;

/// base64url, padding optional (JWS uses none; tolerated).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// base64url bytes (padding optional).
pub fn b64url(text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text).map_err(|e| e.to_string())
}

/// Why a token is refused: the caller reads this, and the refused-caller log says it. It
/// never holds the token, only the claims that did not match (queries hidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the token is {0} bytes, more than the {MAX_TOKEN_BYTES} a Google ID token ever is")]
    TooLong(usize),
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm {0} is not RS256 (Google signs its ID tokens with RS256)")]
    Algorithm(String),
    #[error("signed by an unknown key: key id {0} is not among Google's current keys")]
    UnknownKey(String),
    #[error("the signature does not verify with Google's key {0}")]
    BadSignature(String),
    #[error("token issuer {0} is not Google ({iss})", iss = GOOGLE_ISSUERS.join(" or "))]
    Issuer(String),
    #[error(
        "token audience {got} is not the configured audience {want} \
         (server.pubsub_oidc.audience must equal the subscription's \
         --push-auth-token-audience, by default its push endpoint URL)"
    )]
    Audience { got: String, want: String },
    #[error(
        "token email {got} is not the configured service account {want} \
         (server.pubsub_oidc.service_account; the subscription's --push-auth-service-account)"
    )]
    ServiceAccount { got: String, want: String },
    #[error("token email {0} is not verified (email_verified is not true)")]
    EmailUnverified(String),
    #[error(
        "the token expired at {at} ({ago} s ago, beyond the {LEEWAY_S} s allowed for clock skew)"
    )]
    Expired { at: String, ago: i64 },
    #[error(
        "the token is issued in the future ({at}, {ahead} s from now, beyond the {LEEWAY_S} s \
         allowed for clock skew): is this server's clock right?"
    )]
    IssuedInFuture { at: String, ahead: i64 },
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
}

/// A decoded token whose signature is not yet checked.
#[derive(Debug)]
pub struct Token<'a> {
    /// The key id of the header.
    pub kid: String,
    /// `header.payload` as sent: what was signed.
    signed: &'a str,
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

/// Whether a bearer token has the shape of a JWT (three dot-separated parts), so that it is
/// given to the push-token check rather than compared with the webhook token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// Splits and decodes `token`; refuses it when it is too long, malformed, or not RS256.
pub fn parse(token: &str) -> Result<Token<'_>, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::TooLong(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed(
            "a JWT has three parts separated by dots".into(),
        ));
    };
    let header = json_object(header, "header")?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => return Err(Refusal::Algorithm(shown(alg))),
        Some(_) => {
            return Err(Refusal::Malformed(
                "the header's alg is not a string".into(),
            ))
        }
        None => return Err(Refusal::Malformed("the header has no alg".into())),
    }
    // RFC 7515 §4.1.11: extensions a verifier does not understand must be refused.
    if header.contains_key("crit") {
        return Err(Refusal::Malformed(
            "the header names critical extensions (crit), which are not supported".into(),
        ));
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID => k.clone(),
        Some(_) => {
            return Err(Refusal::Malformed(format!(
                "the header's kid is not a string of 1 to {MAX_KID} characters"
            )))
        }
        None => {
            return Err(Refusal::Malformed(
                "the header has no kid (the id of the Google key that signed it)".into(),
            ))
        }
    };
    let claims = json_object(payload, "payload")?;
    let signature = b64url(signature)
        .map_err(|e| Refusal::Malformed(format!("the signature is not base64url ({e})")))?;
    // RS256 with a 2048- to 8192-bit key: a 256- to 1024-byte signature.
    if !(256..=1024).contains(&signature.len()) {
        return Err(Refusal::Malformed(format!(
            "a {}-byte signature is not an RS256 signature of a 2048- to 8192-bit key",
            signature.len()
        )));
    }
    Ok(Token {
        kid,
        signed: &token[..header_and_payload_len(token)],
        signature,
        claims,
    })
}

/// The length of `header.payload` in a token with three parts.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn json_object(part: &str, what: &str) -> Result<Map<String, Value>, Refusal> {
    let bytes = b64url(part)
        .map_err(|e| Refusal::Malformed(format!("the {what} is not base64url ({e})")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refusal::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(Refusal::Malformed(format!("the {what} is not JSON ({e})"))),
    }
}

impl Token<'_> {
    /// Verifies the RS256 signature with `key` (the JWKS key whose id the header names).
    pub fn verify_signature(&self, key: &RsaKey) -> Result<(), Refusal> {
        let public = ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        };
        public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                self.signed.as_bytes(),
                &self.signature,
            )
            .map_err(|_| Refusal::BadSignature(shown(&self.kid)))
    }

    /// The claims, once the signature is verified.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// What a token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub audience: &'a str,
    pub service_account: &'a str,
}

/// Checks the claims of a token whose signature verified, at `now_s` (Unix seconds).
/// Returns the service account (`email`).
pub fn check_claims(
    claims: &Map<String, Value>,
    expected: Expected<'_>,
    now_s: i64,
) -> Result<String, Refusal> {
    let iss = string_claim(claims, "iss")?;
    if !GOOGLE_ISSUERS.contains(&iss) {
        return Err(Refusal::Issuer(shown(iss)));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expected.audience,
        // RFC 7519 allows a list; Pub/Sub sends one string.
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected.audience)),
        Some(_) => return Err(Refusal::Malformed("the aud claim is not a string".into())),
        None => return Err(Refusal::MissingClaim("aud")),
    };
    if !audience_ok {
        let got = match claims.get("aud") {
            Some(Value::String(a)) => shown_url(a),
            Some(other) => shown_url(&other.to_string()),
            None => String::new(),
        };
        return Err(Refusal::Audience {
            got,
            want: shown_url(expected.audience),
        });
    }
    let email = string_claim(claims, "email")?;
    if !email.eq_ignore_ascii_case(expected.service_account) {
        return Err(Refusal::ServiceAccount {
            got: shown(email),
            want: shown(expected.service_account),
        });
    }
    // Google has sent both `true` and `"true"`.
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    if !verified {
        return Err(Refusal::EmailUnverified(shown(email)));
    }
    let exp = time_claim(claims, "exp")?;
    if now_s > exp.saturating_add(LEEWAY_S) {
        return Err(Refusal::Expired {
            at: crate::clock::fmt_time(exp.saturating_mul(1000)),
            ago: now_s.saturating_sub(exp),
        });
    }
    let iat = time_claim(claims, "iat")?;
    if iat.saturating_sub(LEEWAY_S) > now_s {
        return Err(Refusal::IssuedInFuture {
            at: crate::clock::fmt_time(iat.saturating_mul(1000)),
            ahead: iat.saturating_sub(now_s),
        });
    }
    Ok(email.to_owned())
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, Refusal> {
    match claims.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Refusal::Malformed(format!(
            "the {name} claim is not a string"
        ))),
        None => Err(Refusal::MissingClaim(name)),
    }
}

/// A NumericDate claim (seconds since the epoch; a fraction is dropped).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<i64, Refusal> {
    match claims.get(name) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(|| Refusal::Malformed(format!("the {name} claim is not a time"))),
        Some(_) => Err(Refusal::Malformed(format!(
            "the {name} claim is not a number of seconds"
        ))),
        None => Err(Refusal::MissingClaim(name)),
    }
}

/// A claim value as it may be shown: quoted, printable, at most [`MAX_SHOWN`] characters.
pub(super) fn shown(value: &str) -> String {
    let cut: String = value.chars().take(MAX_SHOWN).collect();
    let more = if cut.len() < value.len() { "…" } else { "" };
    format!("\"{}\"{more}", edgepurge_core::printable(&cut))
}

/// An audience as it may be shown: its query is hidden, since a push endpoint URL (the
/// default audience) may carry `?token=<webhook token>`.
pub fn shown_url(value: &str) -> String {
    match value.split_once('?') {
        Some((base, _)) => shown(&format!("{base}?<query hidden>")),
        None => shown(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;
    const AUD: &str = "https://edgepurge.example.com/v1/events";
    const SA: &str = "pubsub-push@my-project.iam.gserviceaccount.com";

    fn expected() -> Expected<'static> {
        Expected {
            audience: AUD,
            service_account: SA,
        }
    }

    fn good_claims() -> Map<String, Value> {
        let v = json!({
            "aud": AUD, "azp": "113774264463038321964", "email": SA, "email_verified": true,
            "exp": NOW + 3000, "iat": NOW - 600, "iss": "https://accounts.google.com",
            "sub": "113774264463038321964",
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut c = good_claims();
        if let Value::Object(m) = changes {
            for (k, v) in m {
                if v.is_null() {
                    c.remove(&k);
                } else {
                    c.insert(k, v);
                }
            }
        }
        c
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with the given header and claims and a signature of `sig_len` bytes.
    fn token(header: Value, claims: &Map<String, Value>, sig_len: usize) -> String {
        format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(Value::Object(claims.clone()).to_string().as_bytes()),
            b64(&vec![7u8; sig_len])
        )
    }

    fn rs256() -> Value {
        json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
    }

    /// A 2048-bit RSA key made for this test run with the openssl CLI (never stored).
    struct TestKey {
        dir: tempfile::TempDir,
        public: RsaKey,
    }

    fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("the openssl command (Debian package openssl) makes the test keys");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn test_key() -> TestKey {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "key.pem",
            ],
        );
        let modulus =
            String::from_utf8(openssl(d, &["rsa", "-in", "key.pem", "-noout", "-modulus"]))
                .unwrap();
        let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        TestKey {
            dir,
            public: RsaKey {
                n,
                e: vec![1, 0, 1],
            },
        }
    }

    impl TestKey {
        /// `header.payload.signature`, signed RS256.
        fn sign(&self, header: Value, claims: &Map<String, Value>) -> String {
            let signed = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(Value::Object(claims.clone()).to_string().as_bytes())
            );
            std::fs::write(self.dir.path().join("data"), &signed).unwrap();
            let sig = openssl(
                self.dir.path(),
                &["dgst", "-sha256", "-sign", "key.pem", "data"],
            );
            format!("{signed}.{}", b64(&sig))
        }
    }

    #[test]
    fn the_signature_must_verify_with_the_named_key() {
        let google = test_key();
        let other = test_key();
        let claims = good_claims();
        let t = google.sign(rs256(), &claims);
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.verify_signature(&google.public), Ok(()));
        assert_eq!(
            parsed
                .verify_signature(&other.public)
                .unwrap_err()
                .to_string(),
            "the signature does not verify with Google's key \"k1\""
        );
        // Signed by another key under Google's key id.
        let forged = other.sign(rs256(), &claims);
        assert!(parse(&forged)
            .unwrap()
            .verify_signature(&google.public)
            .is_err());
        // A claim changed after signing.
        let (h, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut changed = claims.clone();
        changed.insert("email".into(), json!("attacker@evil.example.com"));
        let tampered = format!(
            "{h}.{}.{sig}",
            b64(Value::Object(changed).to_string().as_bytes())
        );
        assert!(parse(&tampered)
            .unwrap()
            .verify_signature(&google.public)
            .is_err());
        // A 1024-bit key is refused by the verifier even with a good signature shape.
        let short = RsaKey {
            n: google.public.n[..128].to_vec(),
            e: vec![1, 0, 1],
        };
        assert!(parsed.verify_signature(&short).is_err());
    }

    #[test]
    fn good_claims_pass_and_name_the_account() {
        assert_eq!(check_claims(&good_claims(), expected(), NOW), Ok(SA.into()));
        // Both issuer spellings, the string "true", an audience list, skew within leeway.
        let c = with(
            json!({"iss": "accounts.google.com", "email_verified": "true",
                            "aud": ["other", AUD], "exp": NOW - 59, "iat": NOW + 59}),
        );
        assert_eq!(check_claims(&c, expected(), NOW), Ok(SA.into()));
    }

    #[test]
    fn each_claim_is_checked_with_a_reason() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"iss": "https://evil.example.com"}), "token issuer \"https://evil.example.com\" is not Google"),
            (json!({"iss": null}), "no iss claim"),
            (json!({"aud": "https://other.example.com/v1/events"}),
             "token audience \"https://other.example.com/v1/events\" is not the configured audience \"https://edgepurge.example.com/v1/events\""),
            (json!({"aud": null}), "no aud claim"),
            (json!({"aud": 5}), "aud claim is not a string"),
            (json!({"email": "someone@evil.example.com"}),
             "token email \"someone@evil.example.com\" is not the configured service account \"pubsub-push@my-project.iam.gserviceaccount.com\""),
            (json!({"email": null}), "no email claim"),
            (json!({"email_verified": false}), "is not verified"),
            (json!({"email_verified": null}), "is not verified"),
            (json!({"email_verified": "yes"}), "is not verified"),
            (json!({"exp": NOW - 61}), "the token expired at 2025-06-15T15:05:39Z (61 s ago"),
            (json!({"exp": null}), "no exp claim"),
            (json!({"exp": "tomorrow"}), "exp claim is not a number"),
            (json!({"iat": NOW + 61}), "issued in the future (2025-06-15T15:07:41Z, 61 s from now"),
            (json!({"iat": null}), "no iat claim"),
        ];
        for (change, want) in cases {
            let err = check_claims(&with(change.clone()), expected(), NOW)
                .expect_err(&change.to_string())
                .to_string();
            assert!(err.contains(want), "{change}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn an_audience_query_is_never_shown() {
        // The default audience is the push endpoint URL, which may carry the webhook token.
        let c = with(json!({"aud": "https://h/v1/events?token=s3cret-webhook-token"}));
        let err = check_claims(&c, expected(), NOW).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(
            err.contains("\"https://h/v1/events?<query hidden>\""),
            "{err}"
        );
        let want = Expected {
            audience: "https://h/v1/events?token=s3cret",
            ..expected()
        };
        let err = check_claims(&good_claims(), want, NOW)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn only_rs256_is_accepted() {
        let c = good_claims();
        assert!(parse(&token(rs256(), &c, 256)).is_ok());
        for alg in ["none", "HS256", "RS512", "ES256", "PS256", "rs256", ""] {
            let t = token(json!({"alg": alg, "kid": "k1"}), &c, 256);
            assert_eq!(
                parse(&t).unwrap_err(),
                Refusal::Algorithm(format!("\"{alg}\"")),
                "{alg}"
            );
        }
        // `alg: none` with the empty signature an attacker sends.
        let t = token(json!({"alg": "none"}), &c, 0);
        assert!(matches!(parse(&t), Err(Refusal::Algorithm(_))));
        let t = token(json!({"kid": "k1"}), &c, 256);
        assert_eq!(
            parse(&t).unwrap_err().to_string(),
            "malformed token: the header has no alg"
        );
    }

    #[test]
    fn malformed_tokens_are_refused_with_what_is_wrong() {
        let c = good_claims();
        let good = token(rs256(), &c, 256);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "three parts"),
            ("abc".into(), "three parts"),
            (format!("{h}.{p}"), "three parts"),
            (format!("{h}.{p}.{s}.{s}"), "three parts"),
            (format!("!!.{p}.{s}"), "the header is not base64url"),
            (
                format!("{}.{p}.{s}", b64(b"not json")),
                "the header is not JSON",
            ),
            (
                format!("{}.{p}.{s}", b64(b"[1]")),
                "the header is not a JSON object",
            ),
            (
                format!("{h}.{}.{s}", b64(b"\"x\"")),
                "the payload is not a JSON object",
            ),
            (format!("{h}.%%.{s}"), "the payload is not base64url"),
            (format!("{h}.{p}.@@"), "the signature is not base64url"),
            (format!("{h}.{p}."), "a 0-byte signature"),
            (token(rs256(), &c, 2000), "a 2000-byte signature"),
            (
                token(json!({"alg": "RS256"}), &c, 256),
                "the header has no kid",
            ),
            (
                token(json!({"alg": "RS256", "kid": 7}), &c, 256),
                "kid is not a string",
            ),
            (
                token(json!({"alg": "RS256", "kid": "k".repeat(200)}), &c, 256),
                "kid is not a string",
            ),
            (
                token(
                    json!({"alg": "RS256", "kid": "k", "crit": ["exp"]}),
                    &c,
                    256,
                ),
                "critical extensions",
            ),
        ];
        for (t, want) in cases {
            let err = parse(&t).expect_err(&t).to_string();
            assert!(err.contains(want), "{t}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_huge_token_is_refused_before_it_is_decoded() {
        let huge = format!("{}.{}.{}", "x".repeat(MAX_TOKEN_BYTES), "y", "z");
        assert_eq!(
            parse(&huge).unwrap_err(),
            Refusal::TooLong(MAX_TOKEN_BYTES + 4)
        );
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("test-webhook-token-0123456789"));
        assert!(!looks_like_jwt("a.b.c.d"));
    }

    #[test]
    fn claim_values_are_shown_bounded_and_printable() {
        let long = "a".repeat(500);
        let s = shown(&long);
        assert!(s.len() < 140, "{s}");
        assert!(s.ends_with('…'));
        assert_eq!(shown("x\ny"), r#""x\ny""#);
    }
}
