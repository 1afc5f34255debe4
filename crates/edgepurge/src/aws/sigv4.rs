//! AWS Signature Version 4 (apis.md §B.5), for the AWS APIs edgepurge calls (SQS now;
//! S3 listings and CloudFront next). Pure: the time is passed in, nothing is read or sent.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Credentials to sign with (never printed: `Debug` hides the secret and the token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One request to sign.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent, already percent-encoded (`/`, `/123456789012/queue`).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign besides `host`, `x-amz-date` and `x-amz-security-token` (which are
    /// added): name and value as sent.
    pub headers: &'a [(&'a str, &'a str)],
    pub host: &'a str,
    pub body: &'a [u8],
}

/// What to add to the request: these headers (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` with session credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    /// For tests and debugging: the canonical request and the string to sign.
    pub canonical_request: String,
    pub string_to_sign: String,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 accepts any key length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is
/// `%XX` (upper case); `/` too unless `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Collapses runs of blanks inside a header value and trims its ends.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Signs `req` for `region` and `service` at `amz_date` (`YYYYMMDDTHHMMSSZ`). The path is
/// used as given (already encoded once, as S3 and most services want it).
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v)))
        .collect();
    headers.push(("host".into(), req.host.to_owned()));
    headers.push(("x-amz-date".into(), amz_date.to_owned()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    headers.sort();
    // Repeated names join their values with commas, in the order given.
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        match merged.last_mut() {
            Some((last, value)) if *last == k => {
                value.push(',');
                value.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let signed_headers = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_request = format!(
        "{}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        sha256_hex(req.body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let key = signing_key(&creds.secret_access_key, date, region, service);
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    let mut out = vec![
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
                 Signature={signature}",
                creds.access_key_id
            ),
        ),
        ("x-amz-date", amz_date.to_owned()),
    ];
    if let Some(t) = &creds.session_token {
        out.push(("x-amz-security-token", t.clone()));
    }
    Signed {
        headers: out,
        canonical_request,
        string_to_sign,
    }
}

/// `YYYYMMDDTHHMMSSZ` for a time in milliseconds since the epoch.
pub fn amz_date(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AWS SigV4 test suite's constants (botocore tests/unit/auth/aws4_testsuite).
    const DATE: &str = "20150830T123600Z";
    const HOST: &str = "example.amazonaws.com";

    fn suite_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn signature(s: &Signed) -> String {
        let auth = &s.headers[0].1;
        auth.rsplit("Signature=").next().unwrap().to_owned()
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
        headers: &'a [(&'a str, &'a str)],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            headers,
            host: HOST,
            body,
        }
    }

    #[test]
    fn the_signing_key_matches_the_aws_documentation() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn get_vanilla() {
        let s = sign(
            &req("GET", "/", &[], &[], b""),
            &suite_creds(None),
            "us-east-1",
            "service",
            DATE,
        );
        assert_eq!(
            s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signature(&s),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            s.headers[0].1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla_and_form_bodies() {
        let s = sign(
            &req("POST", "/", &[], &[], b""),
            &suite_creds(None),
            "us-east-1",
            "service",
            DATE,
        );
        assert_eq!(
            signature(&s),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        let s = sign(
            &req(
                "POST",
                "/",
                &[],
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1",
            ),
            &suite_creds(None),
            "us-east-1",
            "service",
            DATE,
        );
        assert!(s.headers[0]
            .1
            .contains("SignedHeaders=content-type;host;x-amz-date"));
        assert_eq!(
            signature(&s),
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn query_order_utf8_paths_and_session_tokens() {
        let s = sign(
            &req(
                "GET",
                "/",
                &[("Param2", "value2"), ("Param1", "value1")],
                &[],
                b"",
            ),
            &suite_creds(None),
            "us-east-1",
            "service",
            DATE,
        );
        assert!(s
            .canonical_request
            .contains("\nParam1=value1&Param2=value2\n"));
        assert_eq!(
            signature(&s),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        let path = uri_encode("/ሴ", true);
        assert_eq!(path, "/%E1%88%B4");
        let s = sign(
            &req("GET", &path, &[], &[], b""),
            &suite_creds(None),
            "us-east-1",
            "service",
            DATE,
        );
        assert_eq!(
            signature(&s),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        );
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let s = sign(
            &req("GET", "/", &[], &[], b""),
            &suite_creds(Some(token)),
            "us-east-1",
            "service",
            DATE,
        );
        assert_eq!(
            signature(&s),
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
        assert!(s
            .headers
            .iter()
            .any(|(k, v)| *k == "x-amz-security-token" && v == token));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let text = format!("{:?}", suite_creds(Some("SeCrEtToKeN")));
        assert!(
            !text.contains("EXAMPLEKEY") && !text.contains("SeCrEtToKeN"),
            "{text}"
        );
        assert_eq!(amz_date(1_440_938_160_000), DATE);
    }
}
