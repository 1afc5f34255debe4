//! The purge lifecycle, step two: is the CDN's copy fresh now? For records of rules with
//! `verify = true`, once their purge completed (and settled a moment), each purged URL is
//! fetched through every cache of the provider (each node of an `http-purge` account, else
//! the URL itself through the CDN): HEAD, then GET when HEAD gives no validator. The answer
//! is compared with the event's ETag / size (a delete: 404 or 410) by [`judge`]. A stale
//! record is purged once more as a new record through the queue (limits and quotas hold),
//! itself verified in turn, up to `max_repurges` times.
//!
//! One verifier per provider account, apart from the lanes: its own HTTP client, its own
//! rate and concurrency, so verification never holds up a purge. Records are taken from the
//! store with a lease, so in a cluster each is verified once; a verifier that crashes leaves
//! them to be taken again when the lease ends. A failed verification only ever changes the
//! record's `verified` fields, never its purge outcome.

pub mod judge;
pub mod probe;

use crate::clock::Clock;
use crate::store::{
    DueVerification, IngestRecord, LaneJob, Status, Store, Verified, VerifyStart, VerifyUpdate,
};
use edgepurge_core::TargetKind;
use futures_util::StreamExt;
use judge::{Expected, Finding};
use probe::{Prober, Route};
use reqwest::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ratelimit::RateLimiter;
use super::OutcomeSink;

/// Records taken per round.
const ROUND: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    /// Wait this long after a purge completed before fetching (caches settle).
    pub settle_ms: i64,
    /// Fetches per second, per provider account (each HEAD or GET counts).
    pub rate_per_s: f64,
    /// Records verified at once, per provider account.
    pub concurrency: usize,
    /// Per fetch.
    pub timeout: Duration,
    /// Purges once more of a record still stale, before reporting it stale.
    pub max_repurges: u32,
    /// How long a taken record is this process's to verify.
    pub lease_ms: i64,
    /// How often an idle verifier looks for records.
    pub poll_ms: u64,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            settle_ms: 2_000,
            rate_per_s: 10.0,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            max_repurges: 1,
            lease_ms: 120_000,
            poll_ms: 1_000,
        }
    }
}

/// A lane of the provider: where a re-purge goes, and how to wake it.
#[derive(Clone)]
pub(super) struct LaneWake {
    pub lane: String,
    pub notify: Arc<Notify>,
    pub added: Arc<AtomicU64>,
}

#[derive(Clone)]
pub(super) struct Verifier {
    pub store: Arc<dyn Store>,
    pub provider: String,
    /// Where the provider's caches are asked (every node, or the CDN).
    pub routes: Vec<Route>,
    pub lanes: Vec<LaneWake>,
    pub settings: VerifySettings,
    pub clock: Clock,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub shutdown: CancellationToken,
}

impl Verifier {
    pub async fn run(self) {
        let prober = match Prober::new(self.settings.timeout) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(provider = %self.provider, error = %e, "cannot verify purges");
                return;
            }
        };
        let limiter = tokio::sync::Mutex::new(RateLimiter::per_second(self.settings.rate_per_s));
        let idle = Duration::from_millis(self.settings.poll_ms.max(10));
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.now_ms();
            let due = match self
                .store
                .verifications_due(
                    &self.provider,
                    now,
                    now.saturating_sub(self.settings.settle_ms),
                    self.settings.lease_ms,
                    ROUND,
                )
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot read purges to verify");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {},
                    _ = self.shutdown.cancelled() => return,
                }
                continue;
            }
            let round = futures_util::stream::iter(due)
                .map(|d| self.verify(d, &prober, &limiter))
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect::<Vec<VerifyUpdate>>();
            let updates = tokio::select! {
                u = round => u,
                // What was taken is taken again when its lease ends.
                _ = self.shutdown.cancelled() => return,
            };
            let outcome = self
                .store
                .note_verifications(updates.clone(), self.clock.now_ms())
                .await;
            match outcome {
                Ok(receipt) if !receipt.records.is_empty() => {
                    for u in updates
                        .iter()
                        .filter(|u| receipt.records.iter().any(|r| r.id == u.id))
                    {
                        self.metrics
                            .verification(&self.provider, u.verified.as_str());
                    }
                    self.outcomes.changed(&receipt.records)
                }
                Ok(_) => {}
                // Verified again when the lease ends.
                Err(e) => {
                    tracing::warn!(provider = %self.provider, error = %e, "cannot record verification");
                    tokio::select! {
                        _ = tokio::time::sleep(idle) => {},
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Verifies one record: what it shows, and a re-purge queued when still stale.
    async fn verify(
        &self,
        d: DueVerification,
        prober: &Prober,
        limiter: &tokio::sync::Mutex<RateLimiter>,
    ) -> VerifyUpdate {
        let update = |verified: Verified, note: String| VerifyUpdate {
            id: d.id,
            verified,
            note: Some(note),
        };
        if d.status == Status::Dead {
            return update(
                Verified::Unverifiable,
                format!(
                    "the purge failed: {}",
                    d.error.as_deref().unwrap_or("dead-lettered")
                ),
            );
        }
        if d.completed_at.is_none() {
            return update(
                Verified::Unverifiable,
                format!(
                    "the purge's completion was not confirmed: {}",
                    d.error.as_deref().unwrap_or("unknown")
                ),
            );
        }
        let want = Expected::of(&d.event.name, d.event.etag.as_deref(), d.event.size);
        let urls = judge::object_urls(&d.targets);
        if urls.is_empty() {
            return update(
                Verified::Unverifiable,
                "only directory URLs were purged: none is the object's own".to_owned(),
            );
        }
        let mut findings = Vec::new();
        for url in &urls {
            for route in &self.routes {
                let place = if urls.len() > 1 {
                    format!("{url} via {}", route.label())
                } else {
                    route.label()
                };
                findings.push((place, self.probe(prober, limiter, route, url, &want).await));
            }
        }
        let mut finding = judge::combine(findings);
        // Stale, or a later change of the object? (Asked only when stale: that is rare.)
        if matches!(finding, Finding::Stale(_)) {
            match self.store.newer_record(&d).await {
                Ok(newer) => finding = judge::superseded(finding, newer),
                Err(e) => {
                    tracing::warn!(provider = %self.provider, record = d.id, error = %e, "cannot look for later changes of a stale object")
                }
            }
        }
        let (verified, note, again) = judge::conclude(finding, d.round, self.settings.max_repurges);
        tracing::info!(
            provider = %self.provider,
            record = d.id,
            verified = verified.as_str(),
            // Holds the event's ETag and provider text: escaped, never a raw line break.
            note = %edgepurge_core::printable(&note),
            "purge verified"
        );
        if !again {
            return update(verified, note);
        }
        match self.repurge(&d).await {
            Ok(id) => update(verified, format!("{note}; purged again as #{id}")),
            // Left pending: verified (and purged again) when its lease ends.
            Err(e) => {
                tracing::warn!(provider = %self.provider, record = d.id, error = %e, "cannot queue a re-purge of a stale URL");
                VerifyUpdate {
                    id: d.id,
                    verified: Verified::Pending,
                    note: None,
                }
            }
        }
    }

    /// HEAD (then GET if needed) of `url` through `route`, judged.
    async fn probe(
        &self,
        prober: &Prober,
        limiter: &tokio::sync::Mutex<RateLimiter>,
        route: &Route,
        url: &str,
        want: &Expected<'_>,
    ) -> Finding {
        let mut seen = None;
        for method in [Method::HEAD, Method::GET] {
            {
                let mut l = limiter.lock().await;
                l.ready().await;
                l.record();
            }
            match prober.fetch(route, url, method).await {
                Ok(s) => {
                    let again = judge::needs_get(want, &s);
                    seen = Some(s);
                    if !again {
                        break;
                    }
                }
                Err(e) => return Finding::Unverifiable(e),
            }
        }
        match seen {
            Some(s) => judge::judge(want, &s),
            None => Finding::Unverifiable("no answer".to_owned()),
        }
    }

    /// Queues the record's URLs once more, as a new record of the next round (verified in
    /// turn); returns its id.
    async fn repurge(&self, d: &DueVerification) -> Result<i64, crate::store::StoreError> {
        let record = IngestRecord {
            event: d.event.clone(),
            rule: d.rule.clone(),
            provider: Some(self.provider.clone()),
            targets: d.targets.clone(),
            jobs: d
                .targets
                .iter()
                .flat_map(|t| {
                    self.lanes.iter().map(move |l| LaneJob {
                        lane: l.lane.clone(),
                        kind: TargetKind::Url,
                        target: t.clone(),
                    })
                })
                .collect(),
            min_interval_ms: 0,
            fanout: Vec::new(),
            allow_host_purge: false,
            note: None,
            verify: Some(VerifyStart {
                state: Verified::Pending,
                note: Some(format!("re-purge of #{}, which was still stale", d.id)),
                round: d.round.saturating_add(1),
            }),
            // Warmed in turn if found fresh (this one, stale, is not).
            warm: d.warm.then_some(crate::store::WarmStart {
                state: crate::store::Warmed::Pending,
                note: None,
            }),
        };
        let jobs = record.jobs.len();
        let receipt = self.store.ingest(vec![record], self.clock.now_ms()).await?;
        for l in &self.lanes {
            l.added
                .fetch_add((jobs / self.lanes.len().max(1)) as u64, Ordering::SeqCst);
            l.notify.notify_one();
        }
        receipt
            .purge_ids
            .first()
            .copied()
            .ok_or_else(|| crate::store::StoreError::Corrupt("re-purge record not created".into()))
    }
}
