//! ACS3-HMAC-SHA256 request signing (Alibaba Cloud "V3" signature), apis.md §D.3: the
//! canonical request (method, path, sorted query, signed headers, hex SHA-256 of the body),
//! hashed, then HMAC-SHA256 with the AccessKey secret itself (no key derivation chain).

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - _ . ~` (space is `%20`), as the
/// official SDKs encode query values (Python: `quote(v, safe='~')`).
pub const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986).to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `key=value` pairs sorted by key, each encoded per RFC 3986, joined by `&`: both the
/// canonical query string and the query (or form body) actually sent.
pub fn encode_params(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What goes into one signature.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The canonical URI (`/` for RPC-style APIs).
    pub path: &'a str,
    /// The query parameters, unencoded.
    pub query: &'a [(&'a str, String)],
    /// The signed headers as `(name, value)`: `host`, `content-type` when there is a body,
    /// and every `x-acs-*` header sent. Names are lower-cased and sorted here.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body (the `x-acs-content-sha256` header's value).
    pub payload_hash: &'a str,
}

/// The intermediate values, exposed so tests can check each step against the worked example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
}

pub fn sign(access_key_secret: &str, input: &SignInput<'_>) -> Signed {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.path,
        encode_params(input.query),
        canonical_headers,
        signed_headers,
        input.payload_hash
    );
    let string_to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(access_key_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    }
}

/// The `Authorization` header: comma-separated, no spaces after the commas.
pub fn authorization(access_key_id: &str, signed: &Signed) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={}",
        signed.signed_headers, signed.signature
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alibaba's published V3 signature example (ECS `RunInstances`), apis.md §D.3; the same
    /// signature comes out of the official SDK's `get_authorization`
    /// (alibabacloud-openapi-util 0.2.4).
    #[test]
    fn the_official_worked_example_signs_alike() {
        let empty = sha256_hex(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let query = [
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd".to_owned(),
            ),
            ("RegionId", "cn-shanghai".to_owned()),
        ];
        let signed = sign(
            "YourAccessKeySecret",
            &SignInput {
                method: "POST",
                path: "/",
                query: &query,
                headers: &[
                    ("host", "ecs.cn-shanghai.aliyuncs.com"),
                    ("x-acs-action", "RunInstances"),
                    ("x-acs-version", "2014-05-26"),
                    ("x-acs-date", "2023-10-26T10:22:32Z"),
                    ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
                    ("x-acs-content-sha256", &empty),
                ],
                payload_hash: &empty,
            },
        );
        assert_eq!(
            signed.canonical_request,
            format!(
                "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&\
                 RegionId=cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:\
                 RunInstances\nx-acs-content-sha256:{empty}\nx-acs-date:2023-10-26T10:22:32Z\n\
                 x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:\
                 2014-05-26\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;\
                 x-acs-signature-nonce;x-acs-version\n{empty}"
            )
        );
        assert_eq!(
            signed.string_to_sign,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            signed.signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            authorization("YourAccessKeyId", &signed),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn values_are_encoded_per_rfc_3986_and_sorted_by_key() {
        let params = [
            ("ObjectType", "File".to_owned()),
            (
                "ObjectPath",
                "https://c.example.com/a b+c/猫.jpg\nhttps://c.example.com/~x*".to_owned(),
            ),
        ];
        assert_eq!(
            encode_params(&params),
            "ObjectPath=https%3A%2F%2Fc.example.com%2Fa%20b%2Bc%2F%E7%8C%AB.jpg%0A\
             https%3A%2F%2Fc.example.com%2F~x%2A&ObjectType=File"
        );
    }

    #[test]
    fn header_names_are_lower_cased_sorted_and_values_trimmed() {
        let hash = sha256_hex(b"a=1");
        let signed = sign(
            "k",
            &SignInput {
                method: "POST",
                path: "/",
                query: &[],
                headers: &[
                    ("X-Acs-Date", " 2026-12-01T00:00:00Z "),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("host", "cdn.aliyuncs.com"),
                ],
                payload_hash: &hash,
            },
        );
        assert_eq!(signed.signed_headers, "content-type;host;x-acs-date");
        assert!(signed
            .canonical_request
            .starts_with("POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"));
        assert!(signed
            .canonical_request
            .contains("\nx-acs-date:2026-12-01T00:00:00Z\n\n"));
    }
}
