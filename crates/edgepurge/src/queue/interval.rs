//! A rule's `min_interval_ms`: a target purged at time t is not purged again before
//! t + min_interval_ms.
//!
//! Claiming a job of such a rule *holds* its target (lane, kind, target) until then; a job for
//! that target queued meanwhile gets a `not_before` at the hold's end and is not claimed
//! before it (later events merge into it: several changes, one purge). The held job is
//! always claimed once its time comes, so the last change is purged after it happened
//! (invariant 2). Backends keep the holds and the jobs' `not_before`; these are the rules.

use super::Ms;

/// Until when a target is held by a purge claimed at `now` for a job whose rules ask for
/// `min_interval_ms` (`None`: no interval, nothing held).
pub fn hold_after_claim(now: Ms, min_interval_ms: Ms) -> Option<Ms> {
    (min_interval_ms > 0).then(|| now.saturating_add(min_interval_ms))
}

/// When a job queued at `now` may be claimed, given the hold on its target (`held`, if any)
/// and the `not_before` of the pending job it merges into (0 when new or not held).
pub fn not_before(now: Ms, held: Option<Ms>, pending: Ms) -> Ms {
    held.filter(|h| *h > now).unwrap_or(0).max(pending)
}

/// What the log record of a held job says.
pub fn held_note(until: Ms) -> String {
    format!("held until {} (min_interval_ms)", rfc3339(until))
}

/// A time as RFC 3339 UTC with milliseconds.
fn rfc3339(ms: Ms) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_purge_holds_its_target_only_with_an_interval() {
        assert_eq!(hold_after_claim(1_000, 5_000), Some(6_000));
        assert_eq!(hold_after_claim(1_000, 0), None);
        assert_eq!(hold_after_claim(i64::MAX - 1, 5_000), Some(i64::MAX));
    }

    #[test]
    fn a_job_waits_for_the_later_of_the_hold_and_the_job_it_joins() {
        assert_eq!(not_before(1_000, Some(6_000), 0), 6_000);
        // A hold already over holds nothing.
        assert_eq!(not_before(7_000, Some(6_000), 0), 0);
        assert_eq!(not_before(1_000, None, 0), 0);
        // Merging never lets a held job go sooner.
        assert_eq!(not_before(1_000, Some(3_000), 6_000), 6_000);
        assert_eq!(not_before(1_000, None, 6_000), 6_000);
    }

    #[test]
    fn the_note_names_the_time_in_rfc3339() {
        assert_eq!(
            held_note(1_704_124_800_500),
            "held until 2024-01-01T16:00:00.500Z (min_interval_ms)"
        );
    }
}
