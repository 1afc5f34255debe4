//! Which CloudFront errors are worth retrying (apis.md §B.4; botocore `_retry.json`).

use crate::purgers::Verdict;
use std::time::Duration;

/// Codes that say one of the paths is bad, not the request: a multi-path request is split
/// until the bad path is alone, so the good ones still go out.
pub fn is_per_target(code: &str) -> bool {
    code == "InvalidArgument"
}

/// Of those, the ones no later attempt can change (the path itself is refused).
pub fn is_target_refusal(code: &str) -> bool {
    code == "InvalidArgument"
}

/// Throttling codes botocore retries (`_retry.json`), besides HTTP 429.
fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
    )
}

/// Classifies a CloudFront error answer (`ErrorResponse/Error/Code`, its message and the
/// HTTP status) for a request that carried `items` paths. `busy` is the least wait after
/// `TooManyInvalidationsInProgress` (invalidations take minutes to complete).
pub fn classify(code: &str, message: &str, status: u16, items: usize, busy: Duration) -> Verdict {
    if is_per_target(code) {
        return if items > 1 {
            Verdict::Split
        } else {
            Verdict::Fatal
        };
    }
    if is_throttling(code) || status == 429 {
        return Verdict::RetryLater { after: None };
    }
    match code {
        // 3,000 paths or 15 wildcards in progress: wait for some to complete.
        "TooManyInvalidationsInProgress" => Verdict::RetryLater { after: Some(busy) },
        // More than one request may carry.
        "BatchTooLarge" => Verdict::Split,
        // Our CallerReference met another batch's: sent again with a new one.
        "InvalidationBatchAlreadyExists" => Verdict::RetryLater {
            after: Some(Duration::ZERO),
        },
        // Clock skew: the next attempt is signed with a fresh time.
        "RequestExpired" | "RequestTimeTooSkewed" => Verdict::RetryLater { after: None },
        "SignatureDoesNotMatch" if message.contains("Signature expired") => {
            Verdict::RetryLater { after: None }
        }
        // Session credentials expired: a rotated key file fixes it without a restart.
        "ExpiredToken" | "ExpiredTokenException" => Verdict::RetryLater { after: None },
        "AccessDenied"
        | "AccessDeniedException"
        | "NoSuchDistribution"
        | "InconsistentQuantities"
        | "MissingBody"
        | "MalformedXML"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "UnrecognizedClientException"
        | "OptInRequired"
        | "InvalidAction" => Verdict::Fatal,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" => {
            Verdict::RetryLater { after: None }
        }
        // Codes we do not know: retry (bounded by max_attempts) rather than drop the purge;
        // a 4xx that is not one of the above is still CloudFront refusing, a 5xx is not.
        _ => Verdict::RetryLater { after: None },
    }
}

/// What the operator can do about a code, appended to the error text.
pub fn hint(code: &str, distribution_id: &str) -> Option<String> {
    Some(match code {
        "NoSuchDistribution" => format!(
            "check distribution_id {distribution_id:?}: no distribution has it in this account"
        ),
        "AccessDenied" | "AccessDeniedException" => format!(
            "the keys need cloudfront:CreateInvalidation on \
             arn:aws:cloudfront::ACCOUNT:distribution/{distribution_id}"
        ),
        "SignatureDoesNotMatch" => {
            "check the secret access key (and that nothing rewrites the request on the way)"
                .to_owned()
        }
        "InvalidClientTokenId" | "UnrecognizedClientException" => {
            "check the access key id and the session token".to_owned()
        }
        "TooManyInvalidationsInProgress" => "CloudFront allows 3,000 paths and 15 wildcard paths \
                                              in progress per distribution; sent again when \
                                              some have completed"
            .to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_per_the_retry_table() {
        let busy = Duration::from_secs(30);
        let retry = Verdict::RetryLater { after: None };
        let table = [
            (
                "TooManyInvalidationsInProgress",
                "",
                400,
                Verdict::RetryLater { after: Some(busy) },
            ),
            ("Throttling", "Rate exceeded", 400, retry.clone()),
            ("ThrottlingException", "", 400, retry.clone()),
            ("SlowDown", "", 429, retry.clone()),
            ("BatchTooLarge", "", 413, Verdict::Split),
            ("AccessDenied", "", 403, Verdict::Fatal),
            ("NoSuchDistribution", "", 404, Verdict::Fatal),
            ("InconsistentQuantities", "", 400, Verdict::Fatal),
            ("MissingBody", "", 400, Verdict::Fatal),
            ("InvalidClientTokenId", "", 403, Verdict::Fatal),
            (
                "SignatureDoesNotMatch",
                "The request signature we calculated",
                403,
                Verdict::Fatal,
            ),
            (
                "SignatureDoesNotMatch",
                "Signature expired: 20260101T000000Z is now earlier",
                403,
                retry.clone(),
            ),
            ("ExpiredToken", "", 403, retry.clone()),
            (
                "InvalidationBatchAlreadyExists",
                "",
                409,
                Verdict::RetryLater {
                    after: Some(Duration::ZERO),
                },
            ),
            ("InternalError", "", 500, retry.clone()),
            ("SomethingNew", "", 400, retry),
        ];
        for (code, message, status, want) in table {
            assert_eq!(
                classify(code, message, status, 1, busy),
                want,
                "{code} {message}"
            );
        }
    }

    #[test]
    fn a_bad_path_is_bisected_out_of_a_batch() {
        let busy = Duration::from_secs(1);
        assert_eq!(
            classify("InvalidArgument", "", 400, 1000, busy),
            Verdict::Split
        );
        assert_eq!(
            classify("InvalidArgument", "", 400, 1, busy),
            Verdict::Fatal
        );
        assert!(is_target_refusal("InvalidArgument"));
        assert!(!is_target_refusal("NoSuchDistribution"));
        assert!(!is_target_refusal("AccessDenied"));
        assert_eq!(
            classify("AccessDenied", "", 403, 1000, busy),
            Verdict::Fatal
        );
    }

    #[test]
    fn hints_name_the_distribution_and_the_permission() {
        let h = hint("AccessDenied", "E1").unwrap();
        assert!(h.contains("cloudfront:CreateInvalidation") && h.contains("distribution/E1"));
        assert!(hint("NoSuchDistribution", "E1").unwrap().contains("\"E1\""));
        assert_eq!(hint("Throttling", "E1"), None);
    }
}
