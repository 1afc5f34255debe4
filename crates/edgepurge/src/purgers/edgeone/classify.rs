//! What EdgeOne's error codes mean for a batch (apis.md §A.6, §A.8; the codes of
//! `tencentcloud-sdk-python-teo`'s `errorcodes.py`), and what the operator should do about
//! the ones that need a person.

use crate::purgers::tencent::classify as tencent;
use crate::purgers::Verdict;

/// Codes that condemn one target of the request (a malformed URL or tag, a domain not in
/// the zone), not the request: a batch is split until the bad target is alone, so the good
/// ones in it still go out.
const PER_TARGET: &[&str] = &[
    "InvalidParameter.Target",
    "InvalidParameter.DomainNotFound",
    "InvalidParameter.UploadUrl",
];

/// The code edgepurge gives a target the answer's `FailedList` names.
pub const FAILED_LIST: &str = "FailedList";

/// Whether a code (or a `FailedList` entry) refuses the target itself, so that sending it
/// again can never purge it.
pub fn is_target_refusal(code: &str) -> bool {
    PER_TARGET.contains(&code) || code == FAILED_LIST
}

/// Classifies an error code for a request that carried `targets` targets.
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

/// Classifies an error code of the EdgeOne API.
pub fn classify(code: &str) -> Verdict {
    match code {
        // "本次提交的资源数超过上限": more targets than the plan's batch.
        "LimitExceeded.BatchQuota" => Verdict::Split,
        // "当天提交的资源数超过上限": the zone's daily quota is spent.
        "LimitExceeded.DailyQuota" => Verdict::QuotaExhausted,
        // The plan does not offer this purge type (e.g. cache tags): no retry changes that.
        "LimitExceeded.PackNotAllow" => Verdict::Fatal,
        // Calls per second over the limit.
        "LimitExceeded.RateLimitExceeded" => Verdict::RetryLater { after: None },
        // "任务无法生成" / the task system's internal error: the service's side.
        "InvalidParameter.TaskNotGenerated" | "InvalidParameter.TaskSystemError" => {
            Verdict::RetryLater { after: None }
        }
        // The zone is not the account's: fix `zone_id`.
        "InvalidParameter.ZoneNotFound"
        | "InvalidParameterValue.ZoneNotFound"
        | "ResourceNotFound.ZoneNotFound"
        | "ResourceUnavailable.ZoneNotFound" => Verdict::Fatal,
        // The common API 3.0 codes (throttling, internal errors, credentials, parameters).
        _ => tencent::classify(code),
    }
}

/// What the operator should do about a code that stops `action` (`CreatePurgeTask`, …),
/// appended to its message.
pub fn hint(code: &str, action: &str, zone_id: &str) -> Option<String> {
    let family = code.split('.').next().unwrap_or(code);
    let h = match (family, code) {
        (_, "AuthFailure.SignatureExpire") => return None,
        (_, "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId") => {
            "the SecretId is unknown: check secret_id_env / secret_id_file".to_owned()
        }
        (_, "AuthFailure.SignatureFailure") => {
            "the signature does not match: check that secret_key_env / secret_key_file holds \
             the SecretKey of this SecretId"
                .to_owned()
        }
        (_, "AuthFailure.TokenFailure") => {
            "the session token is wrong or expired: check session_token_env, or unset it for \
             long-lived keys"
                .to_owned()
        }
        ("UnauthorizedOperation", _) | ("AuthFailure", "AuthFailure.UnauthorizedOperation") => {
            format!(
                "the key may not call {action} on this zone: grant teo:{action} on {zone_id} \
                 (see docs/providers/edgeone.md for the policy)"
            )
        }
        (_, "LimitExceeded.PackNotAllow") => {
            "the zone's plan does not offer this purge type (cache-tag purges need the \
             Enterprise plan): use another mode for this rule"
                .to_owned()
        }
        (_, c) if c.ends_with("ZoneNotFound") => {
            format!("no zone {zone_id} in this account: check zone_id")
        }
        (_, "InvalidParameter.DomainNotFound") => {
            format!("the domain is not in zone {zone_id}: check the rule's domains")
        }
        _ => return None,
    };
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_per_their_meaning() {
        let retry = Verdict::RetryLater { after: None };
        let table = [
            ("LimitExceeded.BatchQuota", Verdict::Split),
            ("LimitExceeded.DailyQuota", Verdict::QuotaExhausted),
            ("LimitExceeded.PackNotAllow", Verdict::Fatal),
            ("LimitExceeded.RateLimitExceeded", retry.clone()),
            ("RequestLimitExceeded", retry.clone()),
            ("RequestLimitExceeded.UinLimitExceeded", retry.clone()),
            ("InternalError.BackendError", retry.clone()),
            ("InternalError.QuotaSystem", retry.clone()),
            ("InternalError.ProxyServer", retry.clone()),
            ("InvalidParameter.TaskNotGenerated", retry.clone()),
            ("AuthFailure.SignatureExpire", retry.clone()),
            ("AuthFailure.SecretIdNotFound", Verdict::Fatal),
            ("AuthFailure.SignatureFailure", Verdict::Fatal),
            ("UnauthorizedOperation.CamUnauthorized", Verdict::Fatal),
            ("UnauthorizedOperation.NoPermission", Verdict::Fatal),
            ("UnauthorizedOperation.Unknown", Verdict::Fatal),
            ("ResourceNotFound.ZoneNotFound", Verdict::Fatal),
            ("InvalidParameter.ParameterError", Verdict::Fatal),
            ("InvalidParameter.Target", Verdict::Fatal),
            ("SomethingNew.Unheard", retry),
        ];
        for (code, want) in table {
            assert_eq!(classify_for(code, 1), want, "{code}");
        }
    }

    #[test]
    fn a_bad_target_is_bisected_out_of_a_batch() {
        for code in PER_TARGET {
            assert_eq!(classify_for(code, 50), Verdict::Split, "{code}");
            assert_eq!(classify_for(code, 1), Verdict::Fatal, "{code}");
            assert!(is_target_refusal(code));
        }
        assert_eq!(
            classify_for("UnauthorizedOperation.NoPermission", 50),
            Verdict::Fatal,
            "a key problem is not bisected"
        );
        assert!(is_target_refusal(FAILED_LIST));
        assert!(!is_target_refusal("UnauthorizedOperation.NoPermission"));
    }

    #[test]
    fn refusals_that_need_a_person_say_what_to_fix() {
        let h = |c| hint(c, "CreatePurgeTask", "zone-abc").unwrap_or_default();
        assert!(h("AuthFailure.SecretIdNotFound").contains("secret_id_env"));
        assert!(h("AuthFailure.SignatureFailure").contains("secret_key_env"));
        assert!(h("UnauthorizedOperation.CamUnauthorized")
            .contains("grant teo:CreatePurgeTask on zone-abc"));
        assert!(h("ResourceNotFound.ZoneNotFound").contains("check zone_id"));
        assert!(h("LimitExceeded.PackNotAllow").contains("plan"));
        assert!(hint(
            "UnauthorizedOperation.NoPermission",
            "DescribeContentQuota",
            "z"
        )
        .is_some_and(|h| h.contains("grant teo:DescribeContentQuota on z")));
        assert_eq!(
            hint("AuthFailure.SignatureExpire", "CreatePurgeTask", "z"),
            None
        );
        assert_eq!(hint("InternalError", "CreatePurgeTask", "z"), None);
    }
}
