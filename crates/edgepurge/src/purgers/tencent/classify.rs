//! Which Tencent error codes are worth retrying (apis.md §A.6).

use crate::purgers::Verdict;

/// Codes that condemn one target (its domain or URL), not the request: a multi-target batch is
/// split until the bad target is alone, so the good ones in the same batch still go out.
const PER_TARGET: &[&str] = &[
    "InvalidParameter.CdnUrlExceedLength",
    "InvalidParameter.CdnParamError",
    "InvalidParameter.CdnPurgeWildcardNotAllowed",
    "InvalidParameter.CdnHostInvalidStatus",
    "ResourceNotFound.CdnHostNotExists",
    "ResourceUnavailable.CdnHostIsNotOnline",
    "UnauthorizedOperation.CdnHostUnauthorized",
];

/// Whether a code condemns one target of a request (its domain or URL), not the request.
pub fn is_per_target(code: &str) -> bool {
    PER_TARGET.contains(&code)
}

/// Of those, the ones no later attempt can change: the URL itself is refused, or its domain is
/// not in the account. (An unauthorized, offline or suspended domain can be fixed in minutes.)
pub fn is_target_refusal(code: &str) -> bool {
    matches!(
        code,
        "InvalidParameter.CdnUrlExceedLength"
            | "InvalidParameter.CdnParamError"
            | "InvalidParameter.CdnPurgeWildcardNotAllowed"
            | "ResourceNotFound.CdnHostNotExists"
    )
}

/// Classifies an API 3.0 error code for a request that carried `targets` targets.
pub fn classify_for(code: &str, targets: usize) -> Verdict {
    if PER_TARGET.contains(&code) {
        return if targets > 1 {
            Verdict::Split
        } else {
            Verdict::Fatal
        };
    }
    classify(code)
}

/// Classifies an API 3.0 error code.
pub fn classify(code: &str) -> Verdict {
    let family = code.split('.').next().unwrap_or(code);
    if code.starts_with("LimitExceeded.") && code.ends_with("ExceedBatchLimit") {
        return Verdict::Split;
    }
    if code.starts_with("LimitExceeded.") && code.ends_with("ExceedDayLimit") {
        return Verdict::QuotaExhausted;
    }
    match code {
        // Throttling and call frequency.
        "UnauthorizedOperation.OperationTooOften" => return Verdict::RetryLater { after: None },
        // Clock skew: the next attempt is signed with a fresh timestamp.
        "AuthFailure.SignatureExpire" => return Verdict::RetryLater { after: None },
        // The body was too large for one request.
        "RequestSizeLimitExceeded" => return Verdict::Split,
        // Account verification in progress; may clear.
        "UnauthorizedOperation.CdnUserAuthWait" => return Verdict::RetryLater { after: None },
        _ => {}
    }
    match family {
        "RequestLimitExceeded"
        | "InternalError"
        | "ServiceUnavailable"
        | "FailedOperation"
        | "ResourceInsufficient"
        | "ResourceInUse"
        | "LimitExceeded" => Verdict::RetryLater { after: None },
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidParameter"
        | "InvalidParameterValue"
        | "MissingParameter"
        | "UnknownParameter"
        | "ResourceNotFound"
        | "ResourceUnavailable"
        | "InvalidAction"
        | "UnsupportedOperation"
        | "NoSuchVersion"
        | "NoSuchProduct"
        | "ActionOffline"
        | "UnsupportedProtocol"
        | "UnsupportedRegion"
        | "InvalidRequest"
        | "IpInBlacklist"
        | "IpNotInWhitelist"
        | "DryRunOperation" => Verdict::Fatal,
        // Codes we do not know: retry (bounded by max_attempts) rather than drop the purge.
        _ => Verdict::RetryLater { after: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_per_the_retry_table() {
        let retry = Verdict::RetryLater { after: None };
        let table = [
            ("RequestLimitExceeded", retry.clone()),
            ("RequestLimitExceeded.UinLimitExceeded", retry.clone()),
            ("UnauthorizedOperation.OperationTooOften", retry.clone()),
            ("InternalError.CdnSystemError", retry.clone()),
            ("InternalError", retry.clone()),
            ("ServiceUnavailable", retry.clone()),
            ("AuthFailure.SignatureExpire", retry.clone()),
            ("LimitExceeded.CdnPurgeUrlExceedBatchLimit", Verdict::Split),
            ("LimitExceeded.CdnPurgePathExceedBatchLimit", Verdict::Split),
            ("LimitExceeded.CdnPurgeExceedBatchLimit", Verdict::Split),
            (
                "LimitExceeded.CdnPurgeUrlExceedDayLimit",
                Verdict::QuotaExhausted,
            ),
            (
                "LimitExceeded.CdnPurgePathExceedDayLimit",
                Verdict::QuotaExhausted,
            ),
            ("AuthFailure.SecretIdNotFound", Verdict::Fatal),
            ("AuthFailure.SignatureFailure", Verdict::Fatal),
            ("UnauthorizedOperation.CdnHostUnauthorized", Verdict::Fatal),
            ("InvalidParameter.CdnUrlExceedLength", Verdict::Fatal),
            ("ResourceNotFound.CdnHostNotExists", Verdict::Fatal),
            ("ResourceUnavailable.CdnHostIsNotOnline", Verdict::Fatal),
            ("MissingParameter", Verdict::Fatal),
            ("SomethingNew.Unheard", retry),
        ];
        for (code, want) in table {
            assert_eq!(classify(code), want, "{code}");
        }
    }

    #[test]
    fn a_bad_domain_or_url_is_bisected_out_of_a_batch() {
        for code in [
            "UnauthorizedOperation.CdnHostUnauthorized",
            "InvalidParameter.CdnUrlExceedLength",
        ] {
            assert_eq!(classify_for(code, 1000), Verdict::Split, "{code}");
            assert_eq!(classify_for(code, 1), Verdict::Fatal, "{code}");
        }
        assert_eq!(
            classify_for("AuthFailure.SecretIdNotFound", 1000),
            Verdict::Fatal
        );
    }
}
