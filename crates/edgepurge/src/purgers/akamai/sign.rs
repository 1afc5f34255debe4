//! EdgeGrid V1 request signing (`EG1-HMAC-SHA256`), apis.md §D.2, as the official
//! `edgegrid-python` client does it:
//!
//! 1. timestamp `YYYYMMDDTHH:MM:SS+0000` (UTC) and a fresh nonce (a random UUID);
//! 2. the unsigned header `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;nonce=…;`;
//! 3. signing key = base64(HMAC-SHA256(key = client secret, timestamp)), used as text;
//! 4. data to sign = tab-joined method, scheme, host, path (+ `?query`), the signed headers
//!    (`name:value`, in the configured order, value trimmed with inner whitespace collapsed),
//!    base64(SHA-256(body)) for a POST with a body (at most `max_body` bytes of it, else
//!    empty), and the unsigned header;
//! 5. header = unsigned header + `signature=` + base64(HMAC-SHA256(signing key, data)).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "EG1-HMAC-SHA256";

/// Bytes of a POST body the content hash covers: what current official clients send
/// (`edgegrid-python` 2.x, `edgegrid-golang`). A Fast Purge body (50,000 bytes at most) is
/// always hashed whole.
pub const MAX_BODY: usize = 131_072;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn base64_hmac(key: &[u8], msg: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(msg);
    B64.encode(mac.finalize().into_bytes())
}

/// The EdgeGrid credentials of one API client (the `.edgerc` section's tokens; `host` is
/// not part of the signature's key, it is signed as the request's host).
pub struct Credentials<'a> {
    pub client_token: &'a str,
    pub client_secret: &'a str,
    pub access_token: &'a str,
}

/// One request to sign.
pub struct Call<'a> {
    pub method: &'a str,
    /// Always `https` for Akamai (also when a loopback stand-in is reached over http: the
    /// signature is what Akamai's gateway would check).
    pub scheme: &'a str,
    /// The credential's API host, as sent in the `Host` header.
    pub host: &'a str,
    /// Path and query as sent (`/ccu/v3/invalidate/url/production`).
    pub path_and_query: &'a str,
    /// The headers to sign, in the order they are to be signed (none for Fast Purge).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Bytes of a POST body the content hash covers.
    pub max_body: usize,
}

/// `YYYYMMDDTHH:MM:SS+0000` for a Unix time in milliseconds.
pub fn timestamp(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H:%M:%S+0000")
        .to_string()
}

/// A fresh nonce: a random (version 4) UUID, as the official clients make them.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Step 3: the signing key for `timestamp`.
pub fn signing_key(client_secret: &str, timestamp: &str) -> String {
    base64_hmac(client_secret.as_bytes(), timestamp.as_bytes())
}

/// The content hash: base64(SHA-256) of at most `max_body` bytes of a POST body; empty for
/// other methods and empty bodies.
pub fn content_hash(method: &str, body: &[u8], max_body: usize) -> String {
    if method != "POST" || body.is_empty() {
        return String::new();
    }
    B64.encode(Sha256::digest(&body[..body.len().min(max_body)]))
}

fn canonical_headers(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let value: Vec<&str> = value.split_whitespace().collect();
            format!("{}:{}", name.to_ascii_lowercase(), value.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// Step 4: the data to sign.
pub fn data_to_sign(call: &Call<'_>, unsigned_header: &str) -> String {
    [
        call.method,
        call.scheme,
        call.host,
        call.path_and_query,
        &canonical_headers(call.headers),
        &content_hash(call.method, call.body, call.max_body),
        unsigned_header,
    ]
    .join("\t")
}

/// The `Authorization` header value for `call`, signed at `timestamp` with `nonce`.
pub fn authorization(
    call: &Call<'_>,
    creds: &Credentials<'_>,
    timestamp: &str,
    nonce: &str,
) -> String {
    let unsigned = format!(
        "{ALGORITHM} client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        creds.client_token, creds.access_token
    );
    let key = signing_key(creds.client_secret, timestamp);
    let signature = base64_hmac(key.as_bytes(), data_to_sign(call, &unsigned).as_bytes());
    format!("{unsigned}signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official vectors: edgegrid-python `akamai/edgegrid/test/testdata.json` and
    // `testcases.json` (apis.md §D.2).
    const HOST: &str = "akaa-baseurl-xxxxxxxxxxx-xxxxxxxxxxxxx.luna.akamaiapis.net";
    const TIMESTAMP: &str = "20140321T19:34:21+0000";
    const NONCE: &str = "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    const CREDS: Credentials<'static> = Credentials {
        client_token: "akab-client-token-xxx-xxxxxxxxxxxxxxxx",
        client_secret: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
        access_token: "akab-access-token-xxx-xxxxxxxxxxxxxxxx",
    };
    /// The vectors sign only these headers, in this order.
    const HEADERS_TO_SIGN: [&str; 3] = ["X-Test1", "X-Test2", "X-Test3"];

    /// Signs like the official client: of `headers`, those in HEADERS_TO_SIGN, in its order.
    fn sign(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
        let signed: Vec<(&str, &str)> = HEADERS_TO_SIGN
            .iter()
            .filter_map(|want| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(want))
                    .copied()
            })
            .collect();
        let call = Call {
            method,
            scheme: "https",
            host: HOST,
            path_and_query: path,
            headers: &signed,
            body: body.as_bytes(),
            max_body: 2048,
        };
        authorization(&call, &CREDS, TIMESTAMP, NONCE)
    }

    fn expected(signature: &str) -> String {
        format!(
            "EG1-HMAC-SHA256 client_token=akab-client-token-xxx-xxxxxxxxxxxxxxxx;\
             access_token=akab-access-token-xxx-xxxxxxxxxxxxxxxx;\
             timestamp=20140321T19:34:21+0000;nonce=nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx;\
             signature={signature}"
        )
    }

    #[test]
    fn the_signing_key_matches_the_official_vector() {
        assert_eq!(
            signing_key(CREDS.client_secret, TIMESTAMP),
            "znsRMDBRqTXGJ7Ojip3/h2FGPu3LuoMYWgv9PKEnE/o="
        );
    }

    #[test]
    fn requests_sign_like_the_official_vectors() {
        let d2049 = "d".repeat(2049);
        let d2048 = "d".repeat(2048);
        // name, method, path, headers, body, signature
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Vec<(&'a str, &'a str)>,
            &'a str,
            &'a str,
        );
        let cases: [Case; 11] = [
            (
                "simple GET",
                "GET",
                "/",
                vec![],
                "",
                "tL+y4hxyHxgWVD30X3pWnGKHcPzmrIF+LThiAOhMxYU=",
            ),
            (
                "GET with querystring",
                "GET",
                "/testapi/v1/t1?p1=1&p2=2",
                vec![],
                "",
                "hKDH1UlnQySSHjvIcZpDMbQHihTQ0XyVAKZaApabdeA=",
            ),
            (
                "POST inside limit",
                "POST",
                "/testapi/v1/t3",
                vec![],
                "datadatadatadatadatadatadatadata",
                "hXm4iCxtpN22m4cbZb4lVLW5rhX8Ca82vCFqXzSTPe4=",
            ),
            (
                "POST too large (hashed up to max_body)",
                "POST",
                "/testapi/v1/t3",
                vec![],
                &d2049,
                "6Q6PiTipLae6n4GsSIDTCJ54bEbHUBp+4MUXrbQCBoY=",
            ),
            (
                "POST length equals max_body",
                "POST",
                "/testapi/v1/t3",
                vec![],
                &d2048,
                "6Q6PiTipLae6n4GsSIDTCJ54bEbHUBp+4MUXrbQCBoY=",
            ),
            (
                "POST empty body",
                "POST",
                "/testapi/v1/t6",
                vec![],
                "",
                "1gEDxeQGD5GovIkJJGcBaKnZ+VaPtrc4qBUHixjsPCQ=",
            ),
            (
                "simple header",
                "GET",
                "/testapi/v1/t4",
                vec![("X-Test1", "test-simple-header")],
                "",
                "8F9AybcRw+PLxnvT+H0JRkjROrrUgsxJTnRXMzqvcwY=",
            ),
            (
                "header containing spaces",
                "GET",
                "/testapi/v1/t4",
                vec![("X-Test1", "\"     test-header-with-spaces     \"")],
                "",
                "ucq2AbjCNtobHfCTuS38fdkl5UDdWHZhQX46fYR8CqI=",
            ),
            (
                "headers out of order",
                "GET",
                "/testapi/v1/t4",
                vec![("X-Test2", "t2"), ("X-Test1", "t1"), ("X-Test3", "t3")],
                "",
                "Wus73Nx8jOYM+kkBFF2q8D1EATRIMr0WLWwpLBgkBqY=",
            ),
            (
                "extra unsigned header",
                "GET",
                "/testapi/v1/t5",
                vec![
                    ("X-Test2", "t2"),
                    ("X-Test1", "t1"),
                    ("X-Test3", "t3"),
                    ("X-Extra", "this won't be included"),
                ],
                "",
                "Knd/jc0A5Ghhizjayr0AUUvl2MZjBpS3FDSzvtq4Ixc=",
            ),
            (
                "PUT (no content hash)",
                "PUT",
                "/testapi/v1/t6",
                vec![],
                "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP",
                "GNBWEYSEWOLtu+7dD52da2C39aX/Jchpon3K/AmBqBU=",
            ),
        ];
        for (name, method, path, headers, body, signature) in cases {
            assert_eq!(
                sign(method, path, &headers, body),
                expected(signature),
                "{name}"
            );
        }
    }

    #[test]
    fn the_timestamp_and_nonce_have_the_documented_shape() {
        // 2014-03-21T19:34:21.500Z
        assert_eq!(timestamp(1_395_430_461_500), TIMESTAMP);
        let n = nonce();
        assert_eq!(n.len(), 36, "{n}");
        assert_eq!(
            uuid::Uuid::parse_str(&n).map(|u| u.get_version_num()),
            Ok(4)
        );
        assert_ne!(nonce(), n, "a fresh nonce for every request");
    }

    #[test]
    fn the_content_hash_covers_only_post_bodies_up_to_max_body() {
        assert_eq!(content_hash("GET", b"x", MAX_BODY), "");
        assert_eq!(content_hash("POST", b"", MAX_BODY), "");
        let fifty_kb = vec![b'a'; 50_000];
        assert_eq!(
            content_hash("POST", &fifty_kb, MAX_BODY),
            B64.encode(Sha256::digest(&fifty_kb)),
            "a Fast Purge body is hashed whole"
        );
    }
}
