//! What to do after an answer: the one place retry decisions are made.
//!
//! retry later → full-jitter exponential backoff with a cap, `Retry-After` honoured but
//! clamped; split → the store halves the batch; quota spent → wait for the provider's next
//! quota day; provider down (the lane says so) → hold until the lane's next probe, not counted
//! as an attempt; fatal → dead letter. Anything retried past `max_attempts` or `max_age` is
//! dead-lettered too, and `edgepurge retry` can re-queue it.

use crate::purgers::{TargetFailure, Verdict};
use crate::store::{ClaimedBatch, Detached, FinishOutcome, Ms};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_age_ms: i64,
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Longest `Retry-After` honoured.
    pub retry_after_max_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            max_age_ms: DAY_MS,
            backoff_base_ms: 1000,
            backoff_max_ms: 300_000,
            retry_after_max_ms: 600_000,
        }
    }
}

/// The provider's quota day for `now` and when it ends, for a quota that resets at midnight
/// in the zone `offset_s` seconds from UTC.
pub fn quota_day(now: Ms, offset_s: i32) -> (i64, Ms) {
    let offset = i64::from(offset_s) * 1000;
    let day = (now + offset).div_euclid(DAY_MS);
    (day, (day + 1) * DAY_MS - offset)
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`, given a uniform random `unit` in [0, 1).
    pub fn backoff_ms(&self, attempt: u32, retry_after_ms: Option<i64>, unit: f64) -> i64 {
        let exp = attempt.saturating_sub(1).min(40);
        let ceiling = self
            .backoff_base_ms
            .saturating_mul(1i64 << exp)
            .min(self.backoff_max_ms)
            .max(1);
        let jittered = (ceiling as f64 * unit.clamp(0.0, 1.0)) as i64;
        match retry_after_ms {
            Some(ra) => jittered.max(ra.clamp(0, self.retry_after_max_ms)),
            None => jittered,
        }
    }

    /// Decides the batch's fate. `held_until` is set when the lane is down (the provider
    /// fails every request): a retryable failure then holds the batch until the next probe.
    /// `unit` is a uniform random number in [0, 1) for jitter; the returned text, if any, is
    /// appended to the error.
    pub fn decide(
        &self,
        verdict: &Verdict,
        batch: &ClaimedBatch,
        now: Ms,
        quota_reset_at: Ms,
        held_until: Option<Ms>,
        unit: f64,
    ) -> (FinishOutcome, Option<String>) {
        let too_old = now - batch.created_at >= self.max_age_ms;
        let give_up = |why: String| (FinishOutcome::Dead, Some(why));
        match verdict {
            Verdict::Done => (FinishOutcome::Succeeded, None),
            Verdict::Fatal => (FinishOutcome::Dead, None),
            Verdict::Split => (FinishOutcome::Split, None),
            Verdict::QuotaExhausted if too_old => give_up(format!(
                "gave up: still waiting for quota after {}",
                human_ms(now - batch.created_at)
            )),
            Verdict::QuotaExhausted => (
                FinishOutcome::WaitUntil(quota_reset_at.max(now + 1000)),
                Some("daily quota spent; waiting for the provider's reset".into()),
            ),
            Verdict::RetryLater { .. } if too_old => give_up(format!(
                "gave up: first event is {} old (dispatch.max_age_s)",
                human_ms(now - batch.created_at)
            )),
            Verdict::RetryLater { after } if held_until.is_some() => {
                // The next probe, or later when the provider asked for more time.
                let asked = after.map_or(now, |d| {
                    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                    now.saturating_add(ms.clamp(0, self.retry_after_max_ms))
                });
                (
                    FinishOutcome::Held(held_until.unwrap_or(now).max(asked).max(now)),
                    Some("provider down: held until it answers again".into()),
                )
            }
            Verdict::RetryLater { .. } if batch.attempt >= self.max_attempts => give_up(format!(
                "gave up after {} attempts (dispatch.max_attempts)",
                batch.attempt
            )),
            Verdict::RetryLater { after } => {
                let ra = after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let wait = self.backoff_ms(batch.attempt, ra, unit);
                (FinishOutcome::RetryAt(now + wait), None)
            }
        }
    }
}

impl RetryPolicy {
    /// Decides what happens to targets that failed on their own: the fatal ones die, the
    /// others are retried (the same backoff and limits as a whole batch). One group per
    /// outcome, each with a few of its errors.
    pub fn decide_targets(
        &self,
        failures: &[TargetFailure],
        batch: &ClaimedBatch,
        now: Ms,
        quota_reset_at: Ms,
        unit: f64,
    ) -> Vec<Detached> {
        let mut groups: Vec<(Detached, Vec<String>, u32)> = Vec::new();
        // A target named twice counts once (its first failure), so groups never overlap.
        let mut seen = std::collections::BTreeSet::new();
        for f in failures
            .iter()
            .filter(|f| f.index < batch.targets.len() && seen.insert(f.index))
        {
            let (outcome, why) = match &f.verdict {
                Verdict::Fatal => (FinishOutcome::Dead, None),
                v @ Verdict::RetryLater { .. } => {
                    self.decide(v, batch, now, quota_reset_at, None, unit)
                }
                // Other verdicts are about a whole request: retry the target.
                _ => self.decide(
                    &Verdict::RetryLater { after: None },
                    batch,
                    now,
                    quota_reset_at,
                    None,
                    unit,
                ),
            };
            let text = match why {
                Some(w) => format!("{}: {}; {w}", batch.targets[f.index], f.error),
                None => format!("{}: {}", batch.targets[f.index], f.error),
            };
            let same =
                |g: &FinishOutcome| std::mem::discriminant(g) == std::mem::discriminant(&outcome);
            match groups
                .iter_mut()
                .find(|(g, _, key)| same(&g.outcome) && *key == f.group)
            {
                Some((g, errors, _)) => {
                    g.indices.push(f.index);
                    errors.push(text);
                    // The group goes when its latest target may (a later Retry-After wins).
                    if let (FinishOutcome::RetryAt(at), FinishOutcome::RetryAt(mine)) =
                        (&mut g.outcome, &outcome)
                    {
                        *at = (*at).max(*mine);
                    }
                }
                None => groups.push((
                    Detached {
                        indices: vec![f.index],
                        outcome,
                        error: String::new(),
                    },
                    vec![text],
                    f.group,
                )),
            }
        }
        groups
            .into_iter()
            .map(|(mut g, errors, _)| {
                g.indices.sort_unstable();
                g.indices.dedup();
                let shown: Vec<&str> = errors.iter().take(3).map(String::as_str).collect();
                g.error = shown.join("; ");
                if errors.len() > 3 {
                    g.error
                        .push_str(&format!("; and {} more", errors.len() - 3));
                }
                g
            })
            .collect()
    }
}

fn human_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs((ms.max(0) / 1000) as u64))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepurge_core::TargetKind;
    use std::time::Duration;

    fn batch(attempt: u32, created_at: Ms) -> ClaimedBatch {
        ClaimedBatch {
            id: 1,
            lane: "p".into(),
            kind: TargetKind::Url,
            targets: vec!["https://c/a".into()],
            attempt,
            created_at,
            requeued: false,
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_full_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ms(1, None, 0.999_999), 999);
        assert_eq!(p.backoff_ms(2, None, 0.999_999), 1999);
        assert_eq!(p.backoff_ms(5, None, 0.5), 8000);
        assert_eq!(p.backoff_ms(30, None, 0.999_999), 299_999);
        assert_eq!(p.backoff_ms(u32::MAX, None, 1.0), 300_000);
        assert_eq!(p.backoff_ms(3, None, 0.0), 0);
    }

    #[test]
    fn retry_after_is_honoured_but_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_ms(1, Some(30_000), 0.1), 30_000);
        assert_eq!(p.backoff_ms(1, Some(86_400_000), 0.1), 600_000);
    }

    #[test]
    fn verdicts_map_to_outcomes() {
        let p = RetryPolicy::default();
        let b = batch(1, 0);
        let retry = Verdict::RetryLater { after: None };
        assert_eq!(
            p.decide(&Verdict::Done, &b, 10, 0, None, 0.5).0,
            FinishOutcome::Succeeded
        );
        assert_eq!(
            p.decide(&Verdict::Fatal, &b, 10, 0, None, 0.5).0,
            FinishOutcome::Dead
        );
        assert_eq!(
            p.decide(&Verdict::Split, &b, 10, 0, None, 0.5).0,
            FinishOutcome::Split
        );
        assert_eq!(
            p.decide(&retry, &b, 10, 0, None, 0.5).0,
            FinishOutcome::RetryAt(510)
        );
        let ra = Verdict::RetryLater {
            after: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            p.decide(&ra, &b, 10, 0, None, 0.5).0,
            FinishOutcome::RetryAt(5010)
        );
        assert_eq!(
            p.decide(&Verdict::QuotaExhausted, &b, 10, 99_000, None, 0.5)
                .0,
            FinishOutcome::WaitUntil(99_000)
        );
    }

    #[test]
    fn retries_stop_at_max_attempts_or_max_age() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_age_ms: 60_000,
            ..Default::default()
        };
        let retry = Verdict::RetryLater { after: None };
        let (o, why) = p.decide(&retry, &batch(3, 0), 10, 0, None, 0.5);
        assert_eq!(o, FinishOutcome::Dead);
        assert!(why.unwrap().contains("3 attempts"));
        let (o, why) = p.decide(&retry, &batch(1, 0), 60_000, 0, None, 0.5);
        assert_eq!(o, FinishOutcome::Dead);
        assert!(why.unwrap().contains("max_age"));
        let (o, _) = p.decide(&Verdict::QuotaExhausted, &batch(1, 0), 60_000, 0, None, 0.5);
        assert_eq!(o, FinishOutcome::Dead);
    }

    #[test]
    fn a_down_provider_holds_batches_without_spending_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_age_ms: 60_000,
            ..Default::default()
        };
        let retry = Verdict::RetryLater { after: None };
        // Even at the last attempt: an outage is not the batch's fault.
        let (o, why) = p.decide(&retry, &batch(3, 0), 10, 0, Some(5_010), 0.5);
        assert_eq!(o, FinishOutcome::Held(5_010));
        assert!(why.unwrap().contains("provider down"));
        // Age still bounds it.
        let (o, _) = p.decide(&retry, &batch(1, 0), 60_000, 0, Some(65_000), 0.5);
        assert_eq!(o, FinishOutcome::Dead);
        // A provider's Retry-After longer than the probe interval is kept.
        let ra = Verdict::RetryLater {
            after: Some(Duration::from_secs(60)),
        };
        let (o, _) = p.decide(&ra, &batch(1, 0), 10, 0, Some(5_010), 0.5);
        assert_eq!(o, FinishOutcome::Held(60_010));
        // Only retryable failures are held.
        let (o, _) = p.decide(&Verdict::Fatal, &batch(1, 0), 10, 0, Some(5_010), 0.5);
        assert_eq!(o, FinishOutcome::Dead);
    }

    #[test]
    fn targets_that_failed_alone_are_grouped_by_what_happens_to_them() {
        use crate::purgers::PurgeError;
        let p = RetryPolicy::default();
        let mut b = batch(1, 0);
        b.targets = (0..5).map(|i| format!("https://c/{i}")).collect();
        let fail = |index, verdict| TargetFailure {
            index,
            verdict,
            error: PurgeError::Transport(format!("err {index}")),
            group: 0,
        };
        let groups = p.decide_targets(
            &[
                fail(3, Verdict::RetryLater { after: None }),
                fail(1, Verdict::Fatal),
                fail(0, Verdict::RetryLater { after: None }),
                fail(9, Verdict::Fatal),
            ],
            &b,
            10,
            0,
            0.5,
        );
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].indices, vec![0, 3]);
        assert_eq!(groups[0].outcome, FinishOutcome::RetryAt(510));
        assert!(
            groups[0].error.contains("https://c/3: err 3"),
            "{:?}",
            groups[0]
        );
        assert_eq!(groups[1].indices, vec![1]);
        assert_eq!(groups[1].outcome, FinishOutcome::Dead);
        // A purger naming a target twice (or out of range): counted once, never in two groups.
        let twice = p.decide_targets(
            &[
                fail(0, Verdict::Fatal),
                fail(0, Verdict::RetryLater { after: None }),
                fail(7, Verdict::Fatal),
            ],
            &b,
            10,
            0,
            0.5,
        );
        assert_eq!(twice.len(), 1);
        assert_eq!(
            (twice[0].indices.clone(), twice[0].outcome.clone()),
            (vec![0], FinishOutcome::Dead)
        );
        // At the last attempt, retryable targets die too (with the reason).
        let last = ClaimedBatch {
            attempt: 12,
            ..b.clone()
        };
        let g = p.decide_targets(
            &[fail(2, Verdict::RetryLater { after: None })],
            &last,
            10,
            0,
            0.5,
        );
        assert_eq!(g[0].outcome, FinishOutcome::Dead);
        assert!(
            g[0].error.contains("gave up after 12 attempts"),
            "{:?}",
            g[0]
        );
    }

    #[test]
    fn tencent_quota_day_ends_at_beijing_midnight() {
        // 2024-01-01T15:59:59Z is 23:59:59 in Beijing; one second later is a new day there.
        let before = 1_704_124_799_000;
        let (d1, reset) = quota_day(before, 8 * 3600);
        assert_eq!(reset, 1_704_124_800_000);
        let (d2, _) = quota_day(reset, 8 * 3600);
        assert_eq!(d2, d1 + 1);
        let (_, utc_reset) = quota_day(before, 0);
        assert_eq!(utc_reset, 1_704_153_600_000);
    }
}
