//! Which Tencent error codes are worth retrying (apis.md §A.6).

use crate::purgers::Verdict;

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
}
