//! Signing a CloudFront call: SigV4 (the shared signer in `aws::sigv4`) with the signing
//! name `cloudfront` and the global endpoint's region `us-east-1` (apis.md §B.1, §B.5).

use crate::aws::sigv4::{self, Credentials};

pub const SERVICE: &str = "cloudfront";
pub const DEFAULT_REGION: &str = "us-east-1";

/// One CloudFront call to sign.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: &'a str,
    /// The request path as sent (ASCII: `/2020-05-31/distribution/ID/invalidation`).
    pub path: &'a str,
    /// `host[:port]` as sent in the Host header.
    pub host: &'a str,
    /// Empty for a call without a body (not sent, not signed).
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// The headers to add (`authorization`, `x-amz-date`, and `x-amz-security-token` with session
/// credentials). `content-type` is signed too, so it cannot be changed on the way.
pub fn sign(
    call: &Call<'_>,
    creds: &Credentials,
    region: &str,
    amz_date: &str,
) -> Vec<(&'static str, String)> {
    // A GET has no body and sends no Content-Type.
    let with_type = [("content-type", call.content_type)];
    let headers: &[(&str, &str)] = if call.content_type.is_empty() {
        &[]
    } else {
        &with_type
    };
    sigv4::sign(
        &sigv4::Request {
            method: call.method,
            path: call.path,
            query: &[],
            headers,
            host: call.host,
            body: call.body,
        },
        creds,
        region,
        SERVICE,
        amz_date,
    )
    .headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_names_cloudfront_and_the_region_and_the_token_is_signed() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: Some("tok".into()),
        };
        let call = Call {
            method: "POST",
            path: "/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation",
            host: "cloudfront.amazonaws.com",
            content_type: "application/xml",
            body: b"<x/>",
        };
        let headers = sign(&call, &creds, DEFAULT_REGION, "20260102T030405Z");
        let auth = &headers[0].1;
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/cloudfront/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{auth}"
        );
        assert!(headers.contains(&("x-amz-date", "20260102T030405Z".into())));
        assert!(headers.contains(&("x-amz-security-token", "tok".into())));
        // The same call signed again gives the same signature; another body another one.
        assert_eq!(
            sign(&call, &creds, DEFAULT_REGION, "20260102T030405Z"),
            headers
        );
        let other = Call {
            body: b"<y/>",
            ..call
        };
        assert_ne!(
            sign(&other, &creds, DEFAULT_REGION, "20260102T030405Z")[0],
            headers[0]
        );
    }
}
