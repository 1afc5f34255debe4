//! Which Alibaba Cloud CDN error codes are worth retrying (apis.md §D.3, §J.3, and the
//! OpenAPI gateway's common codes), and what to tell the operator about the fatal ones.

use crate::purgers::Verdict;

/// Codes that condemn one target (its URL or domain), not the request: a batch of several is
/// split until the bad target is alone, so the good ones in the same batch still go out.
const PER_TARGET: &[&str] = &[
    "InvalidDomain.NotFound",
    "InvalidDomain.Offline",
    "InvalidObjectPath.Malformed",
    "InvalidExtensiveDomain.ValueNotSupported",
];

/// Whether a code condemns one target of a request (its domain or URL), not the request.
pub fn is_per_target(code: &str) -> bool {
    PER_TARGET.contains(&code)
}

/// Of those, the ones no later attempt can change: the URL is refused, or its domain is not in
/// the account (an offline domain can be back in minutes).
pub fn is_target_refusal(code: &str) -> bool {
    matches!(
        code,
        "InvalidDomain.NotFound"
            | "InvalidObjectPath.Malformed"
            | "InvalidExtensiveDomain.ValueNotSupported"
    )
}

/// Classifies an error code for a request that carried `targets` targets.
pub fn classify_for(code: &str, targets: usize) -> Verdict {
    if is_per_target(code) {
        return if targets > 1 {
            Verdict::Split
        } else {
            Verdict::Fatal
        };
    }
    classify(code)
}

/// Classifies an error code.
pub fn classify(code: &str) -> Verdict {
    let retry = Verdict::RetryLater { after: None };
    match code {
        // Too many targets in one request.
        "SingleRequest.OverLimit" | "InvalidObjectPath.Size.Malformed" => return Verdict::Split,
        // The account's daily refresh (or prefetch: `PushObjectCache`) quota is spent.
        "QuotaExceeded.Refresh" | "QuotaExceeded.Preload" => return Verdict::QuotaExhausted,
        // Per-minute limit, a full refresh or prefetch queue, a busy service.
        "QuotaPerMinuteExceeded.Refresh"
        | "TooMany.Refresh"
        | "PreloadQueueFull"
        | "ServiceBusy" => return retry,
        // Clock skew or a reused nonce: the next attempt is signed afresh.
        "InvalidTimeStamp.Expired" | "SignatureNonceUsed" => return retry,
        _ => {}
    }
    let family = code.split('.').next().unwrap_or(code);
    match family {
        "Throttling" | "InternalError" | "ServiceUnavailable" | "ServiceTimeout" => retry,
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidSecurityToken"
        | "MissingSecurityToken"
        | "Forbidden"
        | "Forbbiden"
        | "ActionUnauthorized"
        | "NoPermission"
        | "InvalidAction"
        | "InvalidApi"
        | "NoSuchVersion"
        | "UnsupportedOperation"
        | "UnsupportedHTTPMethod"
        | "MissingParameter"
        | "InvalidParameter"
        | "InvalidObjectType"
        | "InvalidObjectPath"
        | "InvalidDomain"
        | "InvalidExtensiveDomain"
        | "InvalidTimeStamp"
        | "InvalidSignatureMethod"
        | "InsufficientBalance" => Verdict::Fatal,
        // Codes we do not know: retry (bounded by max_attempts) rather than drop the purge.
        _ => retry,
    }
}

/// What the operator should do about a fatal code, when it is about the account.
pub fn advice(code: &str) -> Option<&'static str> {
    let family = code.split('.').next().unwrap_or(code);
    Some(match family {
        "InvalidAccessKeyId" => {
            "the AccessKey ID is unknown or disabled: check access_key_id_env / \
             access_key_id_file, and that the key is enabled in the RAM console"
        }
        "SignatureDoesNotMatch" | "IncompleteSignature" => {
            "the signature was refused: check that access_key_secret_env / \
             access_key_secret_file holds the secret of this AccessKey ID"
        }
        "InvalidSecurityToken" | "MissingSecurityToken" => {
            "the STS security token is missing, expired or not for this key: refresh \
             security_token_env together with the temporary key"
        }
        "Forbidden" | "Forbbiden" | "ActionUnauthorized" | "NoPermission" => {
            "the key may not do this: grant its RAM user or role the cdn:RefreshObjectCaches \
             (and cdn:RefreshObjectCacheByCacheTag, cdn:DescribeRefreshTaskById, \
             cdn:DescribeRefreshQuota) actions; see docs/providers/aliyun-cdn.md"
        }
        "InvalidDomain" => {
            "the domain is not an accelerated domain of this Alibaba Cloud account (or is \
             offline): check the rule's domains"
        }
        "InvalidExtensiveDomain" => "wildcard domains cannot be refreshed by URL",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_per_the_retry_table() {
        let retry = Verdict::RetryLater { after: None };
        let table = [
            ("Throttling", retry.clone()),
            ("Throttling.User", retry.clone()),
            ("Throttling.Api", retry.clone()),
            ("QuotaPerMinuteExceeded.Refresh", retry.clone()),
            ("TooMany.Refresh", retry.clone()),
            ("ServiceUnavailable", retry.clone()),
            ("InternalError", retry.clone()),
            ("InvalidTimeStamp.Expired", retry.clone()),
            ("SignatureNonceUsed", retry.clone()),
            ("QuotaExceeded.Refresh", Verdict::QuotaExhausted),
            ("SingleRequest.OverLimit", Verdict::Split),
            ("InvalidObjectPath.Size.Malformed", Verdict::Split),
            ("InvalidAccessKeyId.NotFound", Verdict::Fatal),
            ("InvalidAccessKeyId.Inactive", Verdict::Fatal),
            ("SignatureDoesNotMatch", Verdict::Fatal),
            ("Forbidden.RAM", Verdict::Fatal),
            ("Forbidden.NoPermission", Verdict::Fatal),
            ("InvalidSecurityToken.Expired", Verdict::Fatal),
            ("InvalidObjectType.Malformed", Verdict::Fatal),
            ("MissingParameter", Verdict::Fatal),
            ("NoSuchVersion", Verdict::Fatal),
            ("SomethingNew.Unheard", retry),
        ];
        for (code, want) in table {
            assert_eq!(classify(code), want, "{code}");
        }
    }

    #[test]
    fn a_bad_domain_or_url_is_bisected_out_of_a_batch() {
        for code in [
            "InvalidDomain.NotFound",
            "InvalidObjectPath.Malformed",
            "InvalidExtensiveDomain.ValueNotSupported",
            "InvalidDomain.Offline",
        ] {
            assert_eq!(classify_for(code, 1000), Verdict::Split, "{code}");
            assert_eq!(classify_for(code, 1), Verdict::Fatal, "{code}");
        }
        assert_eq!(
            classify_for("SignatureDoesNotMatch", 1000),
            Verdict::Fatal,
            "an account-wide refusal is not bisected"
        );
        assert!(is_target_refusal("InvalidDomain.NotFound"));
        assert!(!is_target_refusal("InvalidDomain.Offline"));
    }

    #[test]
    fn account_refusals_say_what_to_fix() {
        assert!(advice("InvalidAccessKeyId.NotFound")
            .unwrap()
            .contains("access_key_id_env"));
        assert!(advice("SignatureDoesNotMatch")
            .unwrap()
            .contains("access_key_secret_env"));
        assert!(advice("Forbidden.RAM")
            .unwrap()
            .contains("cdn:RefreshObjectCaches"));
        assert_eq!(advice("Throttling.User"), None);
    }
}
