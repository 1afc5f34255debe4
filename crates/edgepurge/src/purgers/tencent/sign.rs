//! TC3-HMAC-SHA256 request signing (Tencent Cloud API 3.0), apis.md §A.7.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

fn hmac(key: &[u8], msg: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp, as the credential scope needs it.
pub fn utc_date(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// What goes into one signature.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// Signed headers as `(name, value)`; names are lower-cased and sorted here.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
    pub service: &'a str,
    pub timestamp: i64,
}

/// The intermediate values, exposed so tests can check each step against the worked example.
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub credential_scope: String,
    pub signature: String,
}

pub fn sign(secret_key: &str, input: &SignInput<'_>) -> Signed {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n/\n\n{}\n{}\n{}",
        input.method,
        canonical_headers,
        signed_headers,
        sha256_hex(input.payload)
    );
    let date = utc_date(input.timestamp);
    let credential_scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{}",
        input.timestamp,
        sha256_hex(canonical_request.as_bytes())
    );
    let secret_date = hmac(format!("TC3{secret_key}").as_bytes(), &date);
    let secret_service = hmac(&secret_date, input.service);
    let secret_signing = hmac(&secret_service, "tc3_request");
    let signature = hex::encode(hmac(&secret_signing, &string_to_sign));
    Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        credential_scope,
        signature,
    }
}

/// The `Authorization` header value.
pub fn authorization(secret_id: &str, signed: &Signed) -> String {
    format!(
        "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={}, Signature={}",
        signed.credential_scope, signed.signed_headers, signed.signature
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1_PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const CT: &str = "application/json; charset=utf-8";

    #[test]
    fn official_worked_example_t1_content_type_and_host() {
        let headers = [("Content-Type", CT), ("Host", "cvm.tencentcloudapi.com")];
        let s = sign(
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            &SignInput {
                method: "POST",
                headers: &headers,
                payload: T1_PAYLOAD.as_bytes(),
                service: "cvm",
                timestamp: 1551113065,
            },
        );
        assert_eq!(
            sha256_hex(T1_PAYLOAD.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            s.canonical_request,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            s.string_to_sign,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            s.signature,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        assert_eq!(
            authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", &s),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn official_worked_example_t2_signs_the_lowercased_action() {
        let headers = [
            ("Content-Type", CT),
            ("Host", "cvm.tencentcloudapi.com"),
            ("X-TC-Action", "DescribeInstances"),
        ];
        let s = sign(
            &"*".repeat(32),
            &SignInput {
                method: "POST",
                headers: &headers,
                payload: T1_PAYLOAD.as_bytes(),
                service: "cvm",
                timestamp: 1551113065,
            },
        );
        assert_eq!(s.signed_headers, "content-type;host;x-tc-action");
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        assert_eq!(
            s.signature,
            "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
        );
    }

    #[test]
    fn cdn_purge_vectors() {
        let body = br#"{"Urls":["http://www.test.com/1.jpg"]}"#;
        let base = [("Content-Type", CT), ("Host", "cdn.tencentcloudapi.com")];
        let s = sign(
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            &SignInput {
                method: "POST",
                headers: &base,
                payload: body,
                service: "cdn",
                timestamp: 1551113065,
            },
        );
        assert_eq!(
            sha256_hex(body),
            "c4f3df7fd64263da1be84d8f65d9942e762d4cecf26226f462ff5cbfa37efc99"
        );
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "c5734c5cae5c491def8114d9ba01a85274bd81661076811de6bff67ed0202056"
        );
        assert_eq!(
            s.signature,
            "6f334004e0e5939f09d92a5b39f3b6f50a0775fac6588ca85687d99f207d5104"
        );
        let with_action = [
            ("Content-Type", CT),
            ("Host", "cdn.tencentcloudapi.com"),
            ("X-TC-Action", "PurgeUrlsCache"),
        ];
        let s = sign(
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            &SignInput {
                method: "POST",
                headers: &with_action,
                payload: body,
                service: "cdn",
                timestamp: 1551113065,
            },
        );
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "508be6a5962dc637e72e3a0aa29bf7e12f087c87097baaa506726a1d0d96907f"
        );
        assert_eq!(
            s.signature,
            "d878e8444086f3133251b50000a79fa779f011ffb9345f010ce07d7597a58a64"
        );
    }

    #[test]
    fn credential_date_is_utc_not_beijing_time() {
        // 2019-02-26 00:44:25 in UTC+8 is still 2019-02-25 in UTC.
        assert_eq!(utc_date(1551113065), "2019-02-25");
    }
}
