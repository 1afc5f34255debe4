//! One lane: drains one provider account's queue, holding the lane lease so that no other
//! process sends for the same account at the same time.

use super::health::{Change, Health};
use super::policy::{quota_day, RetryPolicy};
use super::ratelimit::{Reservation, SharedLimiter};
use super::{DispatchSettings, LaneState, LaneStatus, OutcomeSink};
use crate::clock::Clock;
use crate::purgers::{KindLimits, Limits, PurgeError, PurgeResponse, Purger, Verdict};
use crate::store::{Claim, ClaimRequest, ClaimedBatch, FanoutClaim, Finish, Ms, Store, StoreError};
use edgepurge_core::TargetKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the provider's own quota figures are read again.
const QUOTA_REFRESH_MS: i64 = 3_600_000;

#[derive(Clone)]
pub(super) struct Lane {
    pub store: Arc<dyn Store>,
    pub purger: Arc<dyn Purger>,
    pub settings: DispatchSettings,
    pub owner: String,
    pub clock: Clock,
    pub notify: Arc<Notify>,
    /// Jobs announced for this lane so far.
    pub added: Arc<AtomicU64>,
    /// Set when an answer was recorded (the lane has a reason to look again).
    pub kick: Arc<AtomicBool>,
    pub expedite: Arc<AtomicBool>,
    pub status: Arc<Mutex<LaneStatus>>,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub shutdown: CancellationToken,
    /// Kinds the provider said today's quota is spent for, until their reset: nothing of
    /// these kinds is sent before it, whatever the local quota setting.
    pub parked: Parked,
    /// Whether the provider answers (shared with the senders and across restarts).
    pub health: Arc<Health>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// A lane of an account with several (an `http-purge` node): the account and its lanes,
    /// whose fan-out targets this lane's claims expand ([`crate::queue::fanout`]).
    pub fanout: Option<FanoutClaim>,
}

/// Per kind, when the provider's spent day ends.
pub(super) type Parked = Arc<Mutex<std::collections::BTreeMap<TargetKind, Ms>>>;

/// Per kind, the quota day the lane last warned about.
type QuotaWarned = Arc<Mutex<std::collections::BTreeMap<TargetKind, i64>>>;

/// Whether `used` of a daily `limit` has reached `percent` of it.
fn quota_past(used: u64, limit: u64, percent: u8) -> bool {
    u128::from(used) * 100 >= u128::from(limit) * u128::from(percent)
}

/// One rate shared by requests of some kinds ([`crate::purgers::SharedRate`]).
type KindRate = (Vec<TargetKind>, SharedLimiter);

/// How soon to look again at a shared rate whose window is full of requests reserved and
/// not yet sent (they leave within moments of their claim).
const RESERVED_RECHECK: Duration = Duration::from_millis(20);

/// What this process last learnt of its lane lease, published by the renewer after every
/// attempt: a sender checks it just before a request leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaseView {
    /// Not asked yet, or the store did not answer.
    Unknown,
    /// Another process holds it.
    NotHeld,
    /// Held with `token`; certainly still held (on the store's clock) before `until`.
    Held { token: i64, until: Instant },
}

/// Whether a request claimed under `token` may still leave: only while the lease is held
/// with that token and, as far as this process can tell, has not lapsed. When the lease
/// lapsed locally (a starved process) or the store did not answer, the renewer is asked
/// again and its answer awaited. `false` means the lane changed hands since the claim (the
/// new holder resends the batch; sending it here too could exceed the provider's rate in
/// the new holder's first window) or shutdown.
pub(super) async fn lease_still_held(
    view: &mut watch::Receiver<LeaseView>,
    token: i64,
    renew_now: &Notify,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        match *view.borrow_and_update() {
            LeaseView::Held { token: t, until } if t == token => {
                if Instant::now() < until {
                    return true;
                }
            }
            // A later token (ours or another process's) was taken after this claim, and
            // taking it put every batch in flight back in the queue.
            LeaseView::Held { .. } | LeaseView::NotHeld => return false,
            LeaseView::Unknown => {}
        }
        renew_now.notify_one();
        tokio::select! {
            changed = view.changed() => if changed.is_err() { return false },
            _ = shutdown.cancelled() => return false,
        }
    }
}

/// Leaves out of `kinds` those whose shared rate has no room now, so the claim forms no batch
/// of them (and resends none) while other kinds still go. Returns how soon the first of them
/// has room again, if any was left out.
fn hold_rate_limited(
    shared: &[KindRate],
    kinds: &mut Vec<(TargetKind, KindLimits)>,
) -> Option<Duration> {
    let mut soonest: Option<Duration> = None;
    for (of, limiter) in shared {
        let wait = match limiter.room_in() {
            Some(d) if d.is_zero() => continue,
            Some(d) => d,
            None => RESERVED_RECHECK,
        };
        let before = kinds.len();
        kinds.retain(|(k, _)| !of.contains(k));
        if kinds.len() < before {
            soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
        }
    }
    soonest
}

/// The limits to claim with at `now`: a parked kind gets a daily quota of 0, so nothing of
/// it goes before its reset (the claim waits for the reset as for a spent local quota).
fn claim_kinds(limits: &Limits, parked: &Parked, now: Ms) -> Vec<(TargetKind, KindLimits)> {
    let parked = parked.lock().map(|p| p.clone()).unwrap_or_default();
    limits
        .kinds
        .iter()
        .map(|&(kind, l)| match parked.get(&kind) {
            Some(&until) if until > now => (
                kind,
                KindLimits {
                    daily_quota: Some(0),
                    ..l
                },
            ),
            _ => (kind, l),
        })
        .collect()
}

impl Lane {
    fn set_state(&self, state: LaneState) {
        if let Ok(mut s) = self.status.lock() {
            s.state = state;
        }
    }

    fn name(&self) -> &str {
        self.purger.lane()
    }

    /// Sets the missing-credentials flag from a check (at start, and while it is set and
    /// the lane has nothing to send: fixing the credentials clears it without a purge).
    fn check_credentials(&self, only_if_set: bool) {
        if let Ok(mut s) = self.status.lock() {
            if !only_if_set || s.missing_credentials {
                s.missing_credentials = self.purger.credentials_missing();
            }
        }
    }

    fn missing_credentials(&self) -> bool {
        self.status.lock().is_ok_and(|s| s.missing_credentials)
    }

    pub async fn run(self) {
        let lane = self.name().to_owned();
        let mut limits = self.purger.limits().clone();
        let limiter = SharedLimiter::per_second(limits.rate_per_s);
        let shared: Vec<KindRate> = self
            .purger
            .shared_rates()
            .into_iter()
            .map(|r| (r.kinds, SharedLimiter::per_second(r.rate_per_s)))
            .collect();
        let slots = Arc::new(Semaphore::new(limits.concurrency.max(1)));
        let mut sends: JoinSet<()> = JoinSet::new();
        // The lease is renewed by its own task, so a main loop blocked on send slots or the
        // rate limit never lets it lapse while requests are in flight. It publishes the
        // fencing token while the lane is held.
        let (held_tx, mut held_rx) = watch::channel::<Option<i64>>(None);
        let (view_tx, view_rx) = watch::channel(LeaseView::Unknown);
        let renew_now = Arc::new(Notify::new());
        let renewer_stop = CancellationToken::new();
        let renewer = tokio::spawn(renew_lease(
            Arc::clone(&self.store),
            lane.clone(),
            self.owner.clone(),
            self.settings.lane_lease_ms.max(1000),
            held_tx,
            view_tx,
            Arc::clone(&renew_now),
            Arc::clone(&self.status),
            renewer_stop.clone(),
        ));
        // If this task panics, the renewer must not keep the lease alive for a dead lane.
        let _renewer_guard = renewer_stop.clone().drop_guard();
        // Providers with purge tasks: follow each until it completes, while the lane is held.
        let follower_stop = self.shutdown.child_token();
        let _follower_guard = follower_stop.clone().drop_guard();
        let follower = self.purger.follows_tasks().then(|| {
            tokio::spawn(
                super::follow::Follower {
                    store: Arc::clone(&self.store),
                    purger: Arc::clone(&self.purger),
                    settings: self.settings.tasks.clone(),
                    clock: self.clock,
                    outcomes: Arc::clone(&self.outcomes),
                    shutdown: follower_stop.clone(),
                    held: held_rx.clone(),
                }
                .run(),
            )
        });
        let quota_warned = QuotaWarned::default();
        let mut was_held = false;
        let mut last_token: Option<i64> = None;
        self.check_credentials(false);
        let mut quota_at: Ms = 0;
        // The quota reset this lane last said it waits for (said once per quota day).
        let mut said_quota_wait: Ms = 0;

        loop {
            while sends.try_join_next().is_some() {}
            if self.shutdown.is_cancelled() {
                break;
            }
            let held = *held_rx.borrow_and_update();
            let Some(token) = held else {
                was_held = false;
                self.set_state(LaneState::Standby);
                let missing = self.missing_credentials();
                let recheck = Duration::from_millis(self.settings.poll_ms.max(100));
                tokio::select! {
                    changed = held_rx.changed() => {
                        if changed.is_err() {
                            // The renewer is gone (it only stops at shutdown): do not spin.
                            self.pause(Duration::from_millis(self.settings.poll_ms)).await;
                        }
                    }
                    // Standing by for want of credentials: fixing them lets the renewer
                    // take the lane again.
                    _ = tokio::time::sleep(recheck), if missing => self.check_credentials(true),
                    _ = self.shutdown.cancelled() => {},
                }
                continue;
            };
            if !was_held {
                was_held = true;
                quota_at = 0;
            }
            // A new token means the lane changed hands since this process last sent (even
            // without our noticing it was gone): token 1 is the lane's first holder ever; any
            // later one takes over from a process (or an earlier run) whose last sends may lie
            // within the window.
            if last_token != Some(token) {
                if token > 1 {
                    limiter.spend_window();
                    for (_, l) in &shared {
                        l.spend_window();
                    }
                }
                last_token = Some(token);
            }
            let now = self.clock.now_ms();
            if now >= quota_at {
                self.refresh_quota(&mut limits).await;
                quota_at = now + QUOTA_REFRESH_MS;
            }
            // Down: nothing but one probe at a time, each a probe interval after the last
            // answer.
            if let Some((since, next_probe_at)) = self.health.down() {
                self.set_state(LaneState::Down {
                    since,
                    next_probe_at,
                });
                if !sends.is_empty() {
                    tokio::select! {
                        _ = sends.join_next() => {},
                        _ = self.shutdown.cancelled() => break,
                    }
                    continue;
                }
                if now < next_probe_at {
                    let wait = Duration::from_millis((next_probe_at - now) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = self.shutdown.cancelled() => break,
                    }
                    continue;
                }
            }

            // Credentials that cannot be read (started with --allow-missing-secrets, or a
            // secret file gone): nothing could be signed, so no batch is claimed and no
            // attempt is spent; they are looked at again every poll, and fixing them sends
            // at once. (Claiming here once dead-lettered batches within a second.)
            if self.missing_credentials() {
                self.check_credentials(true);
                if self.missing_credentials() {
                    if sends.is_empty() {
                        self.set_state(LaneState::Idle);
                    }
                    let wait = Duration::from_millis(self.settings.poll_ms.max(100));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = self.shutdown.cancelled() => break,
                    }
                    continue;
                }
            }

            // A free send slot and room under the rate limit, then a batch.
            let permit = tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = self.shutdown.cancelled() => break,
            };
            if limiter.room_in() != Some(Duration::ZERO) {
                self.set_state(LaneState::Throttled);
                tokio::select! {
                    _ = limiter.ready() => {},
                    _ = self.shutdown.cancelled() => break,
                }
            }
            let now = self.clock.now_ms();
            let (day, reset_at) = quota_day(now, limits.quota_utc_offset_s);
            let mut kinds = claim_kinds(&limits, &self.parked, now);
            let held = hold_rate_limited(&shared, &mut kinds);
            if kinds.is_empty() {
                // Every kind waits for its shared rate.
                drop(permit);
                self.set_state(LaneState::Throttled);
                let wait = held.unwrap_or(Duration::from_millis(self.settings.poll_ms));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = self.shutdown.cancelled() => break,
                }
                continue;
            }
            let req = ClaimRequest {
                lane: lane.clone(),
                owner: self.owner.clone(),
                token,
                now,
                linger_ms: if self.expedite.swap(false, Ordering::SeqCst) {
                    0
                } else {
                    self.settings.linger_ms
                },
                kinds,
                quota_day: day,
                quota_reset_at: reset_at,
                collapse_to_dir_over: limits.collapse_to_dir_over,
                fanout: self.fanout.clone(),
            };
            match self.store.claim(req).await {
                Ok(Claim::Batch(batch)) => {
                    // Places in the rate windows, counted when the request leaves.
                    let mut places = vec![limiter.reserve()];
                    for (of, l) in &shared {
                        if of.contains(&batch.kind) {
                            places.push(l.reserve());
                        }
                    }
                    self.set_state(LaneState::Busy);
                    let sender = self.sender(
                        token,
                        view_rx.clone(),
                        Arc::clone(&renew_now),
                        Arc::clone(&quota_warned),
                    );
                    let daily = limits.kind(batch.kind).and_then(|k| k.daily_quota);
                    sends.spawn(async move {
                        sender.send(batch, places, day, daily, reset_at).await;
                        drop(permit);
                    });
                }
                Ok(Claim::Wait { until, fill_after }) => {
                    drop(permit);
                    // Nothing can go before the quota day resets: today's quota is used up
                    // (as counted here). Said once, so a stall in `status` has its reason in
                    // the log too.
                    if until == reset_at && said_quota_wait != reset_at {
                        said_quota_wait = reset_at;
                        tracing::warn!(
                            lane = self.purger.lane(),
                            until = %crate::clock::fmt_time(reset_at),
                            "today's quota is used up: queued purges wait for the provider's \
                             quota day to reset"
                        );
                    }
                    if sends.is_empty() {
                        let parked_until = self
                            .parked
                            .lock()
                            .ok()
                            .and_then(|p| p.values().copied().filter(|u| *u > now).max());
                        self.set_state(match parked_until {
                            Some(until) => LaneState::Parked { until },
                            None => LaneState::Waiting { until },
                        });
                    }
                    // Look again when a held kind's shared rate has room.
                    let until = match held {
                        Some(d) => until.min(now + d.as_millis() as i64 + 1),
                        None => until,
                    };
                    self.wait_for(now, until, fill_after).await;
                }
                Ok(Claim::Idle) => {
                    drop(permit);
                    self.check_credentials(true);
                    if sends.is_empty() {
                        self.set_state(LaneState::Idle);
                    }
                    // Held kinds may have work: look again when their rate has room.
                    let poll = Duration::from_millis(self.settings.poll_ms);
                    self.pause(held.map_or(poll, |d| d.min(poll))).await;
                }
                Err(e @ StoreError::LeaseLost { .. }) => {
                    // The lease lapsed: have the renewer try again now.
                    drop(permit);
                    tracing::warn!(lane = %lane, "{e}");
                    renew_now.notify_one();
                    self.pause(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(lane = %lane, error = %e, "cannot claim work");
                    self.record_error(&e.to_string());
                    self.pause(Duration::from_millis(self.settings.poll_ms))
                        .await;
                }
            }
        }

        // Shutdown: let sends in flight finish for a bounded time, then give the lane up so
        // another process can take it (and resend anything still unanswered) at once.
        let drain = tokio::time::timeout(self.settings.drain, async {
            while sends.join_next().await.is_some() {}
        })
        .await;
        if drain.is_err() {
            tracing::warn!(
                lane = %lane,
                "shutdown: requests still in flight after {:?}; they will be resent",
                self.settings.drain
            );
            sends.abort_all();
        }
        follower_stop.cancel();
        if let Some(f) = follower {
            let _ = f.await;
        }
        renewer_stop.cancel();
        let _ = renewer.await;
        if held_rx.borrow().is_some() {
            if let Err(e) = self.store.release_lane(&lane, &self.owner).await {
                tracing::warn!(lane = %lane, error = %e, "could not release lane lease");
            }
        }
        self.set_state(LaneState::Stopped);
    }

    /// Sleeps until `until` (at most `poll_ms`, to look for other processes' work), shutdown,
    /// an expedite or a recorded answer; and on new work, unless the wait is only for jobs
    /// lingering and not enough arrived to fill a batch (`fill_after`), so a busy lane does
    /// not ask the store again for every event. Only this process's announcements are
    /// counted: work queued by another process is found at the deadline, at most `poll_ms`
    /// later.
    async fn wait_for(&self, now: Ms, until: Ms, fill_after: Option<u64>) {
        let base = self.added.load(Ordering::SeqCst);
        let wait = ((until - now).clamp(1, i64::MAX) as u64).min(self.settings.poll_ms);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.notify.notified() => {},
                _ = self.shutdown.cancelled() => return,
            }
            if self.expedite.load(Ordering::SeqCst) || self.kick.swap(false, Ordering::SeqCst) {
                return;
            }
            match fill_after {
                Some(n) if self.added.load(Ordering::SeqCst).saturating_sub(base) < n => {}
                _ => return,
            }
        }
    }

    /// Sleeps until `d` passes, new work is announced, or shutdown.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {},
            _ = self.notify.notified() => {},
            _ = self.shutdown.cancelled() => {},
        }
    }

    fn record_error(&self, e: &str) {
        if let Ok(mut s) = self.status.lock() {
            s.last_error = Some(e.to_owned());
        }
    }

    async fn refresh_quota(&self, limits: &mut Limits) {
        let Some(answer) = self.purger.quota().await else {
            return;
        };
        let lane = self.name().to_owned();
        let quota = match answer {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(
                    lane = %lane,
                    error = %e,
                    "cannot read the provider's quota; using configured limits"
                );
                return;
            }
        };
        let configured = self.purger.limits();
        let now = self.clock.now_ms();
        let (day, _) = quota_day(now, limits.quota_utc_offset_s);
        for (kind, q) in quota {
            let (Some(cfg), Some(ours)) = (configured.kind(kind), limits.kind_mut(kind)) else {
                continue;
            };
            if q.batch > 0 {
                ours.max_batch = cfg.max_batch.min(q.batch);
            }
            if ours.daily_quota.is_some() && q.total > 0 {
                ours.daily_quota = Some(q.total);
            }
            let used = q.total.saturating_sub(q.available);
            self.metrics
                .quota_remaining(&lane, kind.as_str(), q.available);
            if let Err(e) = self.store.note_quota_used(&lane, kind, day, used).await {
                tracing::warn!(lane = %lane, error = %e, "cannot record provider quota");
            }
            tracing::info!(
                lane = %lane,
                kind = kind.as_str(),
                batch = q.batch,
                total = q.total,
                available = q.available,
                "provider quota"
            );
        }
    }

    fn sender(
        &self,
        token: i64,
        lease: watch::Receiver<LeaseView>,
        renew_now: Arc<Notify>,
        quota_warned: QuotaWarned,
    ) -> Sender {
        Sender {
            store: Arc::clone(&self.store),
            purger: Arc::clone(&self.purger),
            policy: self.settings.retry.clone(),
            token,
            lease,
            renew_now,
            clock: self.clock,
            notify: Arc::clone(&self.notify),
            kick: Arc::clone(&self.kick),
            status: Arc::clone(&self.status),
            outcomes: Arc::clone(&self.outcomes),
            shutdown: self.shutdown.clone(),
            parked: Arc::clone(&self.parked),
            health: Arc::clone(&self.health),
            metrics: Arc::clone(&self.metrics),
            follow_first_check_ms: self.settings.tasks.first_check_ms,
            quota_warn_percent: self.settings.quota_warn_percent,
            quota_warned,
        }
    }
}

/// Takes and keeps the lane lease, renewing it every third of its lifetime, and publishes
/// the fencing token while this process holds it.
#[allow(clippy::too_many_arguments)]
async fn renew_lease(
    store: Arc<dyn Store>,
    lane: String,
    owner: String,
    ttl_ms: i64,
    held: watch::Sender<Option<i64>>,
    view: watch::Sender<LeaseView>,
    renew_now: Arc<Notify>,
    status: Arc<Mutex<LaneStatus>>,
    stop: CancellationToken,
) {
    // The store sets a lease's end at its own now + ttl, after this process asked: counted
    // from the asking (less a tenth for clocks running at slightly different rates), the
    // local end is never later than the store's.
    let sure_for = Duration::from_millis((ttl_ms.max(1) as u64) * 9 / 10);
    // Store errors in a row: while the store fails, asking again at once (a sender waiting
    // for the lease asks after every answer) would hammer it; back off instead.
    let mut failures: u32 = 0;
    loop {
        let was = *held.borrow();
        // Credentials that cannot be read here: this process could sign nothing, so it leaves
        // the lane to one that can (another node of a cluster) and does not take it
        // meanwhile; the lane looks at them again while it stands by.
        if status.lock().is_ok_and(|s| s.missing_credentials) {
            if was.is_some() {
                match store.release_lane(&lane, &owner).await {
                    Ok(()) => tracing::warn!(
                        lane = %lane,
                        "lane released: its credentials cannot be read in this process"
                    ),
                    Err(e) => {
                        tracing::warn!(lane = %lane, error = %e, "could not release lane lease")
                    }
                }
                view.send_replace(LeaseView::NotHeld);
                held.send_replace(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(1000)) => {},
                _ = stop.cancelled() => return,
            }
            continue;
        }
        let asked = Instant::now();
        let (now_held, seen) = match store.acquire_lane(&lane, &owner, ttl_ms).await {
            Ok(Some(lease)) => (
                Some(lease.token),
                LeaseView::Held {
                    token: lease.token,
                    until: asked + sure_for,
                },
            ),
            Ok(None) => (None, LeaseView::NotHeld),
            Err(e) => {
                tracing::error!(lane = %lane, error = %e, "cannot renew lane lease");
                if let Ok(mut s) = status.lock() {
                    s.last_error = Some(e.to_string());
                }
                (None, LeaseView::Unknown)
            }
        };
        failures = if seen == LeaseView::Unknown {
            failures.saturating_add(1)
        } else {
            0
        };
        // Before the token: a claim made with a token always finds the view up to date.
        view.send_replace(seen);
        match (was, now_held) {
            (None, Some(token)) => tracing::info!(lane = %lane, token, "holding lane"),
            (Some(_), None) => tracing::warn!(lane = %lane, "lane lease lost"),
            (Some(old), Some(new)) if old != new => tracing::warn!(
                lane = %lane,
                old,
                new,
                "lane lease changed hands meanwhile; answers in flight under the old token \
                 will not count"
            ),
            _ => {}
        }
        held.send_if_modified(|h| std::mem::replace(h, now_held) != now_held);
        let now_held = now_held.is_some();
        // Held: renew at a third of the lifetime. Not held: try again at least every second.
        let next = if now_held {
            ttl_ms / 3
        } else {
            (ttl_ms / 3).min(1000)
        };
        if failures > 0 {
            // 250 ms, doubling, at most the usual interval; asking sooner is not heard.
            let backoff = (250i64 << failures.min(8).saturating_sub(1)).min(next.max(250));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(backoff as u64)) => {},
                _ = stop.cancelled() => return,
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(next.max(10) as u64)) => {},
            _ = renew_now.notified() => {},
            _ = stop.cancelled() => return,
        }
    }
}

/// Sends one batch and records the outcome.
struct Sender {
    store: Arc<dyn Store>,
    purger: Arc<dyn Purger>,
    policy: RetryPolicy,
    /// The fencing token the batch was claimed under.
    token: i64,
    /// The lease as last renewed, checked just before the request leaves.
    lease: watch::Receiver<LeaseView>,
    renew_now: Arc<Notify>,
    clock: Clock,
    notify: Arc<Notify>,
    kick: Arc<AtomicBool>,
    status: Arc<Mutex<LaneStatus>>,
    outcomes: Arc<dyn OutcomeSink>,
    shutdown: CancellationToken,
    parked: Parked,
    health: Arc<Health>,
    metrics: Arc<crate::metrics::Metrics>,
    /// How long after a purge with a task its task is first asked about.
    follow_first_check_ms: Ms,
    quota_warn_percent: u8,
    quota_warned: QuotaWarned,
}

impl Sender {
    /// Publishes what is left of today's quota for `kind` and warns, once a quota day, when
    /// the share used reaches `[dispatch] quota_warn_percent`: at 3 a.m. the operator should
    /// learn that purges will stop at the reset's far side before they do.
    async fn watch_quota(&self, kind: TargetKind, day: i64, limit: u64, reset_at: Ms) {
        let lane = self.purger.lane();
        let used = match self.store.quota_used(lane, kind, day).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(lane, error = %e, "cannot read today's quota use");
                return;
            }
        };
        self.metrics
            .quota_remaining(lane, kind.as_str(), limit.saturating_sub(used));
        if !quota_past(used, limit, self.quota_warn_percent) {
            return;
        }
        let first = self
            .quota_warned
            .lock()
            .is_ok_and(|mut w| w.insert(kind, day) != Some(day));
        if first {
            tracing::warn!(
                lane,
                kind = kind.as_str(),
                used,
                limit,
                resets = %crate::clock::fmt_time(reset_at),
                "{}% of today's {} quota is used; once it is spent nothing of this kind is \
                 sent before the reset (ask the provider for more, purge directories, or \
                 raise linger_ms so repeated changes merge)",
                used.saturating_mul(100) / limit.max(1),
                kind.as_str()
            );
        }
    }

    async fn send(
        mut self,
        batch: ClaimedBatch,
        places: Vec<Reservation>,
        quota_day: i64,
        daily_quota: Option<u64>,
        quota_reset_at: Ms,
    ) {
        if !lease_still_held(&mut self.lease, self.token, &self.renew_now, &self.shutdown).await {
            if !self.shutdown.is_cancelled() {
                tracing::warn!(
                    lane = self.purger.lane(),
                    batch = batch.id,
                    "the lane changed hands before this request could leave; its new holder \
                     sends it"
                );
            }
            return;
        }
        // Counted as requests from here, stamped when the answer is back.
        let mut places = places;
        for place in &mut places {
            place.depart();
        }
        let started = self.clock.now_ms();
        // A client that panics (a bug) fails this attempt instead of leaving the batch in
        // flight until the lane changes hands.
        if batch.requeued {
            self.purger.forget(&batch.targets);
        }
        let purger = Arc::clone(&self.purger);
        let (kind, targets) = (batch.kind, batch.targets.clone());
        let resp = match tokio::spawn(async move { purger.purge(kind, &targets).await }).await {
            Ok(resp) => resp,
            Err(e) => {
                let why = if e.is_panic() {
                    super::supervise::panic_message(e.into_panic())
                } else {
                    "cancelled".to_owned()
                };
                tracing::error!(
                    lane = self.purger.lane(),
                    batch = batch.id,
                    panic = %why,
                    "the provider client crashed (a bug: please report it with this line)"
                );
                PurgeResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Request(format!("the provider client crashed: {why}")),
                )
            }
        };
        // The answer is back: the request counts in the rate windows from now.
        drop(places);
        let now = self.clock.now_ms();
        let (change, held_until) = self.health.answered(resp.is_outage(), batch.id, now);
        let (mut outcome, why) = self.policy.decide(
            &resp.verdict,
            &batch,
            now,
            quota_reset_at,
            held_until,
            rand::random::<f64>(),
        );
        let mut error = match (resp.error.as_ref().map(|e| e.to_string()), why) {
            (Some(e), Some(w)) => Some(format!("{e}; {w}")),
            (e, w) => e.or(w),
        };
        let mut detached = Vec::new();
        if !resp.failed.is_empty() && outcome != crate::store::FinishOutcome::Split {
            detached = self.policy.decide_targets(
                &resp.failed,
                &batch,
                now,
                quota_reset_at,
                rand::random::<f64>(),
            );
            // Every target failed on its own: the first group is the batch's outcome.
            let moved: usize = detached.iter().map(|g| g.indices.len()).sum();
            if moved >= batch.targets.len() && !detached.is_empty() {
                let first = detached.remove(0);
                outcome = first.outcome;
                error = Some(first.error);
            }
            for g in &detached {
                tracing::warn!(
                    lane = self.purger.lane(),
                    batch = batch.id,
                    targets = g.indices.len(),
                    outcome = g.outcome.label(),
                    error = %g.error,
                    "some targets of a request failed on their own; only they are sent again"
                );
            }
        }
        self.report(&batch, &resp, &outcome, error.as_deref(), now - started);
        let secs = |ms: Ms| ms as f64 / 1000.0;
        self.metrics.request(
            self.purger.provider(),
            self.purger.lane(),
            outcome.label(),
            batch.targets.len(),
            secs(started - batch.created_at),
            (resp.verdict == Verdict::Done).then(|| secs(now - batch.created_at)),
        );
        let finish = Finish {
            batch_id: batch.id,
            token: self.token,
            started_at: started,
            now,
            outcome,
            http_status: resp.http_status,
            request_id: resp.request_id.clone(),
            task_id: resp.task_id.clone(),
            error,
            detached,
            // First asked about when the provider said it would be done, else after
            // task_check_ms.
            follow_task_at: self.purger.follows_tasks().then(|| {
                let first = resp
                    .task_id
                    .as_deref()
                    .and_then(|t| self.purger.first_task_check(t))
                    .map_or(self.follow_first_check_ms, |d| {
                        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
                    });
                now.saturating_add(first)
            }),
        };
        // The answer must be recorded; keep trying while the store is unavailable. If we
        // stop first, the batch stays in flight and is resent by the next lane holder.
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.finish(finish.clone()).await {
                Ok(receipt) => {
                    if !receipt.records.is_empty() {
                        self.outcomes.changed(&receipt.records);
                    }
                    break;
                }
                Err(e) if e.is_retryable() && !self.shutdown.is_cancelled() => {
                    tracing::error!(batch = batch.id, error = %e, "cannot record outcome; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(batch = batch.id, error = %e, "cannot record outcome");
                    break;
                }
            }
        }
        self.health_changed(&change, finish.error.as_deref(), now)
            .await;
        if let Some(limit) = daily_quota.filter(|l| *l > 0) {
            self.watch_quota(batch.kind, quota_day, limit, quota_reset_at)
                .await;
        }
        if resp.verdict == Verdict::QuotaExhausted {
            // Whatever the local setting: the provider will refuse this kind until its reset.
            let newly = self
                .parked
                .lock()
                .is_ok_and(|mut p| p.insert(batch.kind, quota_reset_at) != Some(quota_reset_at));
            if newly {
                tracing::warn!(
                    lane = self.purger.lane(),
                    kind = batch.kind.as_str(),
                    until = %crate::clock::fmt_time(quota_reset_at),
                    "the provider says today's quota is spent: nothing of this kind is sent \
                     before its reset"
                );
            }
            // The provider counts purges we do not see (console, other tools): take its word
            // that today's quota is spent, so no further call is made before the reset.
            if let Some(limit) = daily_quota {
                let lane = self.purger.lane();
                if let Err(e) = self
                    .store
                    .note_quota_used(lane, batch.kind, quota_day, limit)
                    .await
                {
                    tracing::warn!(lane, error = %e, "cannot record the spent quota");
                }
            }
        }
        self.kick.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Says when the lane goes down or comes back; on coming back, makes every batch that
    /// waits after a failure due now, so the backlog drains at the full rate.
    async fn health_changed(&self, change: &Change, error: Option<&str>, now: Ms) {
        let lane = self.purger.lane();
        match change {
            Change::None => {}
            Change::WentDown => {
                tracing::warn!(
                    lane,
                    error = error.unwrap_or(""),
                    "provider down: every recent request failed; holding this lane's batches \
                     and sending one probe at a time"
                );
                // The loop may be waiting on a send slot or a long linger: let it see it.
                self.notify.notify_one();
            }
            Change::CameBack { since } => {
                let released = match self.store.release_held(lane, now).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(lane, error = %e, "cannot release held batches");
                        0
                    }
                };
                tracing::warn!(
                    lane,
                    down_for_ms = now - since,
                    released,
                    "provider answering again: sending held batches at the full rate"
                );
            }
        }
    }

    fn report(
        &self,
        batch: &ClaimedBatch,
        resp: &PurgeResponse,
        outcome: &crate::store::FinishOutcome,
        error: Option<&str>,
        took_ms: i64,
    ) {
        let lane = self.purger.lane();
        if let Ok(mut s) = self.status.lock() {
            s.requests += 1;
            s.missing_credentials = matches!(resp.error, Some(PurgeError::Credentials(_)));
            match resp.verdict {
                Verdict::Done => {
                    s.succeeded += 1;
                    s.last_success_at = Some(self.clock.now_ms());
                }
                _ => {
                    s.failed += 1;
                    s.last_error = error.map(str::to_owned);
                }
            }
        }
        match resp.verdict {
            Verdict::Done => tracing::info!(
                lane,
                batch = batch.id,
                kind = batch.kind.as_str(),
                targets = batch.targets.len(),
                attempt = batch.attempt,
                took_ms,
                request_id = resp.request_id.as_deref().unwrap_or(""),
                task_id = resp.task_id.as_deref().unwrap_or(""),
                "purged"
            ),
            _ => tracing::warn!(
                lane,
                batch = batch.id,
                kind = batch.kind.as_str(),
                targets = batch.targets.len(),
                attempt = batch.attempt,
                took_ms,
                outcome = outcome.label(),
                error = error.unwrap_or(""),
                "purge failed"
            ),
        }
    }
}

#[cfg(test)]
mod quota_tests {
    use super::quota_past;

    #[test]
    fn the_quota_warning_starts_at_the_share_set() {
        assert!(!quota_past(7_999, 10_000, 80));
        assert!(quota_past(8_000, 10_000, 80));
        assert!(quota_past(10_000, 10_000, 100));
        assert!(!quota_past(9_999, 10_000, 100));
        assert!(quota_past(u64::MAX, u64::MAX, 100), "no overflow");
        assert!(quota_past(1, 3, 1));
    }
}
