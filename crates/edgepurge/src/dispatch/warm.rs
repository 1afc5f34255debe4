//! The purge lifecycle, step three: warming. For records of rules with `warm = true`, once
//! their purge completed (and, when the rule verifies, was verified), the purged URLs are
//! prefetched into the provider's caches: Tencent `PushUrlsCache`, EdgeOne
//! `CreatePrefetchTask`, Alibaba `PushObjectCache`, or a GET through every node of an
//! `http-purge` account ([`crate::purgers::Purger::prefetch`]).
//!
//! One warmer per provider account, apart from the lanes and the verifier: its own rate
//! (the lower of `warm_rate_per_s` and the provider's prefetch rate), its own quota counter
//! (lane `ACCOUNT#prefetch`: prefetch quotas are apart from purge quotas), read from the
//! provider where it can tell. In a cluster, only the process holding the lease on lane
//! `ACCOUNT#prefetch` warms (taken on the store's clock like a purge lane's, renewed every
//! third of its 30 s), so the rate and the quota count hold across processes; a new holder waits
//! one rate window before its first call. Records are taken from the store with a lease too,
//! so each is warmed once. A record is warmed at most once: a refusal (quota spent, bad URL) or
//! a failure that outlasts a few quick retries is recorded as `failed`, never retried later,
//! and never changes the record's purge outcome.

use crate::clock::Clock;
use crate::purgers::{PrefetchLimits, PrefetchResponse, Purger, Verdict};
use crate::store::{DueWarming, Status, Store, Verified, WarmStart, WarmUpdate, Warmed};
use edgepurge_core::event::names;
use edgepurge_core::TargetKind;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::ratelimit::RateLimiter;
use super::OutcomeSink;

/// Records taken per round.
const ROUND: usize = 16;
/// Attempts of one prefetch request that failed for a while (throttled, no answer).
const ATTEMPTS: u32 = 3;
/// How long the prefetch lease lasts unless renewed (renewed, or asked for by a process
/// without it, every third of that).
const LEASE_TTL_MS: i64 = 30_000;

#[derive(Debug, Clone, PartialEq)]
pub struct WarmSettings {
    /// Prefetch requests per second, per provider account (each node's GET counts); the
    /// provider's own prefetch rate applies too, whichever is lower.
    pub rate_per_s: f64,
    /// How long a taken record is this process's to warm.
    pub lease_ms: i64,
    /// How often an idle warmer looks for records.
    pub poll_ms: u64,
    /// First wait before a retry of a throttled or unanswered prefetch (doubling).
    pub retry_ms: u64,
}

impl Default for WarmSettings {
    fn default() -> Self {
        WarmSettings {
            rate_per_s: 5.0,
            lease_ms: 300_000,
            poll_ms: 1_000,
            retry_ms: 1_000,
        }
    }
}

/// How a record of a rule with `warm = true` starts: pending (prefetched after its purge), or
/// skipped at once with the reason.
pub fn start(event_name: &str, kinds: impl IntoIterator<Item = TargetKind>) -> WarmStart {
    let skipped = |why: String| WarmStart {
        state: Warmed::Skipped,
        note: Some(why),
    };
    if names::is_removal(event_name) {
        return skipped("a delete: nothing to prefetch".to_owned());
    }
    if let Some(kind) = kinds.into_iter().find(|k| *k != TargetKind::Url) {
        return skipped(format!(
            "not a URL: a {} purge has nothing to prefetch",
            kind.as_str()
        ));
    }
    WarmStart {
        state: Warmed::Pending,
        note: None,
    }
}

/// Why a due record is not prefetched, if it is not: its purge failed or was never confirmed,
/// or the CDN was still found serving a stale copy (its re-purge, if any, is warmed itself).
pub fn skip_reason(d: &DueWarming) -> Option<String> {
    if d.status == Status::Dead {
        return Some(format!(
            "the purge failed: {}",
            d.error.as_deref().unwrap_or("dead-lettered")
        ));
    }
    if d.completed_at.is_none() {
        return Some(format!(
            "the purge's completion was not confirmed: {}",
            d.error.as_deref().unwrap_or("unknown")
        ));
    }
    if d.verified == Some(Verified::Stale) {
        return Some("the CDN still served a stale copy: not prefetched".to_owned());
    }
    if names::is_removal(&d.event) {
        return Some("a delete: nothing to prefetch".to_owned());
    }
    if d.targets.is_empty() {
        return Some("nothing was purged".to_owned());
    }
    None
}

/// This process's hold on the account's prefetch lease.
#[derive(Default)]
struct Held {
    /// Its fencing token while held.
    token: Option<i64>,
    /// When it was last taken, renewed or asked for.
    asked: Option<tokio::time::Instant>,
}

/// The provider's prefetch quota for the current quota day, as counted here.
struct Quota {
    day: i64,
    /// URLs a day (`None`: unknown, the provider refuses when spent).
    total: Option<u64>,
    /// URLs per request, as the provider reported it.
    batch: Option<usize>,
    /// The provider said today's quota is spent.
    spent: bool,
}

#[derive(Clone)]
pub(super) struct Warmer {
    pub store: Arc<dyn Store>,
    pub provider: String,
    /// The account's lanes' purgers: one for a CDN, one per node for `http-purge`.
    pub purgers: Vec<Arc<dyn Purger>>,
    pub settings: WarmSettings,
    pub clock: Clock,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process, as lane leases name it.
    pub owner: String,
    pub shutdown: CancellationToken,
}

impl Warmer {
    /// Whether this process holds the account's prefetch lease, taking or renewing it when a
    /// third of its time passed since it was last asked for. A newly taken lease waits one
    /// rate window first (the last holder may have just sent).
    async fn hold(&self, lease: &mut Held) -> bool {
        let every = Duration::from_millis(LEASE_TTL_MS as u64 / 3);
        if lease.asked.is_some_and(|at| at.elapsed() < every) {
            return lease.token.is_some();
        }
        lease.asked = Some(tokio::time::Instant::now());
        match self
            .store
            .acquire_lane(&self.quota_lane(), &self.owner, LEASE_TTL_MS)
            .await
        {
            Ok(Some(l)) => {
                if lease.token != Some(l.token) {
                    lease.token = Some(l.token);
                    tracing::info!(provider = %self.provider, token = l.token, "warming for this account");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                true
            }
            Ok(None) => {
                lease.token = None;
                false
            }
            Err(e) => {
                tracing::warn!(provider = %self.provider, error = %e, "cannot take the prefetch lease");
                lease.token = None;
                false
            }
        }
    }

    /// The lane whose quota counter holds this account's prefetches.
    fn quota_lane(&self) -> String {
        format!("{}#prefetch", self.provider)
    }

    pub async fn run(self) {
        let limits = self
            .purgers
            .iter()
            .filter_map(|p| p.prefetch_limits())
            .next();
        let rate = limits
            .map_or(self.settings.rate_per_s, |l| l.rate_per_s)
            .min(self.settings.rate_per_s);
        let mut limiter = RateLimiter::per_second(rate);
        let mut quota: Option<Quota> = None;
        let mut lease = Held::default();
        let idle = Duration::from_millis(self.settings.poll_ms.max(10));
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let held = tokio::select! {
                h = self.hold(&mut lease) => h,
                _ = self.shutdown.cancelled() => break,
            };
            if !held {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {},
                    _ = self.shutdown.cancelled() => break,
                }
                continue;
            }
            let now = self.clock.now_ms();
            let due = match self
                .store
                .warmings_due(&self.provider, now, now, self.settings.lease_ms, ROUND)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot read purges to warm");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {},
                    _ = self.shutdown.cancelled() => break,
                }
                continue;
            }
            let mut updates = Vec::with_capacity(due.len());
            for d in due {
                // Lost to another process: the rest is taken again when its lease ends.
                if !self.hold(&mut lease).await {
                    break;
                }
                let update = tokio::select! {
                    u = self.warm(d, limits, &mut limiter, &mut quota, &mut lease) => u,
                    // What was taken is taken again when its lease ends.
                    _ = self.shutdown.cancelled() => break,
                };
                tracing::info!(
                    provider = %self.provider,
                    record = update.id,
                    warmed = update.warmed.as_str(),
                    note = %edgepurge_core::printable(update.note.as_deref().unwrap_or("")),
                    "purge warmed"
                );
                updates.push(update);
            }
            match self
                .store
                .note_warmings(updates.clone(), self.clock.now_ms())
                .await
            {
                Ok(receipt) if !receipt.records.is_empty() => {
                    for u in updates
                        .iter()
                        .filter(|u| receipt.records.iter().any(|r| r.id == u.id))
                    {
                        self.metrics.warming(&self.provider, u.warmed.as_str());
                    }
                    self.outcomes.changed(&receipt.records)
                }
                Ok(_) => {}
                // Warmed again when the lease ends.
                Err(e) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot record warming");
                    tokio::select! {
                        _ = tokio::time::sleep(idle) => {},
                        _ = self.shutdown.cancelled() => break,
                    }
                }
            }
        }
        // Another process may take over at once.
        if lease.token.is_some() {
            let _ = self
                .store
                .release_lane(&self.quota_lane(), &self.owner)
                .await;
        }
    }

    /// Warms one record: every URL through every lane of the account.
    async fn warm(
        &self,
        d: DueWarming,
        limits: Option<PrefetchLimits>,
        limiter: &mut RateLimiter,
        quota: &mut Option<Quota>,
        lease: &mut Held,
    ) -> WarmUpdate {
        let update = |warmed: Warmed, note: String, task_id: Option<String>| WarmUpdate {
            id: d.id,
            warmed,
            note: Some(note),
            task_id,
        };
        if let Some(why) = skip_reason(&d) {
            return update(Warmed::Skipped, why, None);
        }
        let Some(limits) = limits else {
            return update(
                Warmed::Skipped,
                "this provider account cannot prefetch".to_owned(),
                None,
            );
        };
        let mut notes: Vec<String> = Vec::new();
        let mut tasks: Vec<String> = Vec::new();
        let mut failed = false;
        for purger in &self.purgers {
            self.read_quota(purger.as_ref(), quota).await;
            let max = quota
                .as_ref()
                .and_then(|q| q.batch)
                .map_or(limits.max_urls, |b| b.min(limits.max_urls));
            let mut chunks: Vec<Vec<String>> = d
                .targets
                .chunks(max.max(1))
                .map(<[String]>::to_vec)
                .collect();
            // Taken from the end: in the targets' order.
            chunks.reverse();
            while let Some(chunk) = chunks.pop() {
                if let Err(why) = self.reserve(quota, chunk.len()).await {
                    notes.push(why);
                    failed = true;
                    continue;
                }
                // A record can take longer than the lease (many nodes at a low rate): it is
                // renewed before each request, and lost, the rest is left to the new holder
                // (undecided: the record is taken again when its own lease ends).
                if !self.hold(lease).await {
                    return WarmUpdate {
                        id: d.id,
                        warmed: Warmed::Pending,
                        note: None,
                        task_id: None,
                    };
                }
                let r = self.send(purger.as_ref(), &chunk, limiter).await;
                match r.verdict {
                    Verdict::Done => {
                        self.count(quota, chunk.len()).await;
                        tasks.extend(r.task_id);
                        if let Some(n) = r.note {
                            notes.push(n);
                        }
                    }
                    Verdict::Split if chunk.len() > 1 => {
                        let half = chunk.len() / 2;
                        chunks.push(chunk[half..].to_vec());
                        chunks.push(chunk[..half].to_vec());
                    }
                    Verdict::QuotaExhausted => {
                        if let Some(q) = quota.as_mut() {
                            q.spent = true;
                        }
                        failed = true;
                        notes.push(format!(
                            "the provider's daily prefetch quota is spent: {}",
                            describe(&r)
                        ));
                    }
                    _ => {
                        failed = true;
                        notes.push(describe(&r));
                    }
                }
            }
        }
        let note = if notes.is_empty() {
            format!("{} URL(s) prefetched", d.targets.len())
        } else {
            notes.join("; ")
        };
        let task = (!tasks.is_empty()).then(|| tasks.join(","));
        if failed {
            update(Warmed::Failed, note, task)
        } else {
            update(Warmed::Warmed, note, task)
        }
    }

    /// One prefetch request, in the rate, tried again a few times while throttled or
    /// unanswered (then failed: never retried forever).
    async fn send(
        &self,
        purger: &dyn Purger,
        urls: &[String],
        limiter: &mut RateLimiter,
    ) -> PrefetchResponse {
        let mut wait = Duration::from_millis(self.settings.retry_ms.max(1));
        let mut attempt = 1;
        loop {
            limiter.ready().await;
            limiter.record();
            let r = purger.prefetch(urls).await;
            let after = match r.verdict {
                Verdict::RetryLater { after } if attempt < ATTEMPTS => after,
                _ => return r,
            };
            attempt += 1;
            // The provider's own word, within reason.
            let pause = after.map_or(wait, |a| a.min(Duration::from_secs(30)));
            tokio::time::sleep(pause).await;
            wait = wait.saturating_mul(2);
        }
    }

    /// The quota day of `purger` now (the provider's quota day starts at its own midnight).
    fn day(&self, purger: &dyn Purger) -> i64 {
        let offset = i64::from(purger.limits().quota_utc_offset_s) * 1000;
        (self.clock.now_ms() + offset).div_euclid(86_400_000)
    }

    /// Asks the provider for its prefetch quota at the start of each quota day (and at the
    /// warmer's start).
    async fn read_quota(&self, purger: &dyn Purger, quota: &mut Option<Quota>) {
        let day = self.day(purger);
        if quota.as_ref().is_none_or(|q| q.day != day) {
            let mut total = purger.prefetch_limits().and_then(|l| l.daily_quota);
            let mut batch = None;
            match purger.prefetch_quota().await {
                Some(Ok(q)) => {
                    total = Some(q.total);
                    batch = Some(q.batch).filter(|b| *b > 0);
                    let used = q.total.saturating_sub(q.available);
                    if let Err(e) = self
                        .store
                        .note_quota_used(&self.quota_lane(), TargetKind::Url, day, used)
                        .await
                    {
                        tracing::warn!(provider = %self.provider, error = %e, "cannot note the prefetch quota");
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot read the prefetch quota; the provider refuses when it is spent")
                }
                None => {}
            }
            *quota = Some(Quota {
                day,
                total,
                batch,
                spent: false,
            });
        }
    }

    /// Room for `n` more URLs today; `Err`: why not (nothing is sent).
    async fn reserve(&self, quota: &Option<Quota>, n: usize) -> Result<(), String> {
        let Some(q) = quota.as_ref() else {
            return Ok(());
        };
        if q.spent {
            return Err("the provider's daily prefetch quota is spent (not sent)".to_owned());
        }
        let Some(total) = q.total else {
            return Ok(());
        };
        // Unknown is not zero: a store that cannot say what was used today sends nothing.
        let used = self
            .store
            .quota_used(&self.quota_lane(), TargetKind::Url, q.day)
            .await
            .map_err(|e| {
                format!("today's prefetch count could not be read from the store (not sent): {e}")
            })?;
        if used.saturating_add(n as u64) > total {
            return Err(format!(
                "the daily prefetch quota would be exceeded ({used} of {total} URLs used today; \
                 not sent)"
            ));
        }
        Ok(())
    }

    /// Counts `n` URLs prefetched today.
    async fn count(&self, quota: &Option<Quota>, n: usize) {
        let Some(q) = quota else {
            return;
        };
        let lane = self.quota_lane();
        let used = match self.store.quota_used(&lane, TargetKind::Url, q.day).await {
            Ok(used) => used,
            Err(e) => {
                // Raising the count from 0 would not add these: say so instead.
                tracing::warn!(
                    provider = %self.provider,
                    urls = n,
                    error = %e,
                    "cannot count prefetched URLs: today's count could not be read"
                );
                return;
            }
        };
        if let Err(e) = self
            .store
            .note_quota_used(&lane, TargetKind::Url, q.day, used.saturating_add(n as u64))
            .await
        {
            tracing::warn!(provider = %self.provider, error = %e, "cannot count prefetched URLs");
        }
    }
}

/// A failed prefetch, for the note: what the provider said (its code and message).
fn describe(r: &PrefetchResponse) -> String {
    match &r.error {
        Some(e) => e.to_string(),
        None => format!("{:?}", r.verdict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purgers::{KindQuota, Limits, PurgeError, PurgeResponse};
    use crate::store::{SqliteOptions, SqliteStore};
    use std::sync::Mutex;

    /// A provider that prefetches at most `batch` URLs a call (more: `Split`, as Tencent's
    /// `CdnPushExceedBatchLimit`), throttles the first call, and reports a daily quota.
    struct Prefetcher {
        limits: Limits,
        batch: usize,
        quota: KindQuota,
        calls: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl Purger for Prefetcher {
        fn lane(&self) -> &str {
            "p"
        }
        fn provider(&self) -> &str {
            "p"
        }
        fn limits(&self) -> &Limits {
            &self.limits
        }
        async fn purge(&self, _: TargetKind, _: &[String]) -> PurgeResponse {
            PurgeResponse::done(200, None, None)
        }
        fn prefetch_limits(&self) -> Option<PrefetchLimits> {
            Some(PrefetchLimits {
                max_urls: 100,
                rate_per_s: 1000.0,
                daily_quota: None,
            })
        }
        async fn prefetch(&self, urls: &[String]) -> PrefetchResponse {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(urls.to_vec());
                calls.len()
            };
            let answer = |code: &str| PurgeError::Answer {
                code: Some(code.into()),
                message: code.into(),
            };
            if n == 1 {
                return PrefetchResponse::failed(
                    Verdict::RetryLater { after: None },
                    answer("RequestLimitExceeded"),
                );
            }
            if urls.len() > self.batch {
                return PrefetchResponse::failed(Verdict::Split, answer("ExceedBatchLimit"));
            }
            PrefetchResponse::from_call(Ok(Some(format!("t{n}"))))
        }
        async fn prefetch_quota(&self) -> Option<Result<KindQuota, PurgeError>> {
            Some(Ok(self.quota))
        }
    }

    /// Chunks of the quota's batch, halved when the provider says so, retried when throttled;
    /// counted against the day's quota, and refused unsent beyond it.
    #[tokio::test(start_paused = true)]
    async fn urls_go_in_the_providers_batches_within_its_quota() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::starting_at(1_700_000_000_000);
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(
                &dir.path().join("q.db"),
                SqliteOptions {
                    clock,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let purger = Arc::new(Prefetcher {
            limits: crate::purgers::tencent::default_limits(),
            batch: 2,
            quota: KindQuota {
                batch: 4,
                total: 8,
                available: 7,
            },
            calls: Mutex::new(Vec::new()),
        });
        let warmer = Warmer {
            store: Arc::clone(&store),
            provider: "p".into(),
            purgers: vec![Arc::clone(&purger) as Arc<dyn Purger>],
            settings: WarmSettings::default(),
            clock,
            outcomes: Arc::new(crate::dispatch::NoOutcomes),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            owner: "me".into(),
            shutdown: CancellationToken::new(),
        };
        let urls: Vec<String> = (0..5).map(|i| format!("https://c/{i}")).collect();
        let record = DueWarming {
            targets: urls.clone(),
            ..due()
        };
        let (limits, mut limiter) = (purger.prefetch_limits(), RateLimiter::per_second(1000.0));
        let mut quota = None;
        let mut lease = Held::default();
        let u = warmer
            .warm(record.clone(), limits, &mut limiter, &mut quota, &mut lease)
            .await;
        assert_eq!(u.warmed, Warmed::Warmed, "{u:?}");
        // 4 (the quota's batch) then 1; the 4 throttled once, then halved.
        let calls = purger.calls.lock().unwrap().clone();
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 2, 2, 1], "{calls:?}");
        assert_eq!(calls[2], urls[..2]);
        assert_eq!(u.task_id.as_deref(), Some("t3,t4,t5"));
        // 1 used before (the provider said so) + 5: 2 of 8 left, so of 5 more, 4 are refused
        // unsent and 1 goes.
        let day = warmer.day(purger.as_ref());
        assert_eq!(
            store
                .quota_used("p#prefetch", TargetKind::Url, day)
                .await
                .unwrap(),
            6
        );
        let u = warmer
            .warm(record, limits, &mut limiter, &mut quota, &mut lease)
            .await;
        assert_eq!(u.warmed, Warmed::Failed);
        assert_eq!(
            u.note.as_deref(),
            Some("the daily prefetch quota would be exceeded (6 of 8 URLs used today; not sent)")
        );
        assert_eq!(u.task_id.as_deref(), Some("t6"));
        assert_eq!(
            purger.calls.lock().unwrap().len(),
            6,
            "only the last URL sent"
        );
    }

    fn due() -> DueWarming {
        DueWarming {
            id: 1,
            event: "ObjectCreated:Put".into(),
            provider: "p".into(),
            targets: vec!["https://cdn.example.com/a.png".into()],
            status: Status::Succeeded,
            completed_at: Some(5),
            error: None,
            verified: None,
        }
    }

    #[test]
    fn deletes_and_non_urls_are_skipped_when_the_record_is_made() {
        let s = start("ObjectCreated:Put", [TargetKind::Url]);
        assert_eq!((s.state, s.note), (Warmed::Pending, None));
        let s = start("ObjectRemoved:Delete", [TargetKind::Url]);
        assert_eq!(s.state, Warmed::Skipped);
        assert_eq!(s.note.as_deref(), Some("a delete: nothing to prefetch"));
        let s = start("ObjectCreated:Put", [TargetKind::Url, TargetKind::Dir]);
        assert_eq!(s.state, Warmed::Skipped);
        assert!(s.note.unwrap().contains("dir purge"));
    }

    /// Only a purge that completed, and was not found stale, is prefetched.
    #[test]
    fn a_failed_unconfirmed_or_stale_purge_is_not_warmed() {
        assert_eq!(skip_reason(&due()), None);
        let fresh = DueWarming {
            verified: Some(Verified::Fresh),
            ..due()
        };
        assert_eq!(skip_reason(&fresh), None);
        let unverifiable = DueWarming {
            verified: Some(Verified::Unverifiable),
            ..due()
        };
        assert_eq!(skip_reason(&unverifiable), None);
        let stale = DueWarming {
            verified: Some(Verified::Stale),
            ..due()
        };
        assert!(skip_reason(&stale).unwrap().contains("stale copy"));
        let dead = DueWarming {
            status: Status::Dead,
            completed_at: None,
            error: Some("AuthFailure".into()),
            ..due()
        };
        assert_eq!(
            skip_reason(&dead).as_deref(),
            Some("the purge failed: AuthFailure")
        );
        let lost = DueWarming {
            completed_at: None,
            error: Some("task unknown".into()),
            ..due()
        };
        assert!(skip_reason(&lost)
            .unwrap()
            .contains("not confirmed: task unknown"));
    }
}
