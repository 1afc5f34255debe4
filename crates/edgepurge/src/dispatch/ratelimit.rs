//! The request rate limit: never more than `n` requests in any window of `w`.
//!
//! Providers state limits as "N requests per second" and count them over a sliding window
//! (Tencent answers `RequestLimitExceeded` for the 21st call within a second). A token
//! bucket with a burst would allow up to burst + rate calls in one second, so the lane keeps
//! the send times of the last `n` requests instead and waits until the oldest is a full
//! window (plus a margin for network jitter) old.
//!
//! A lane decides whether a request may go *before* it claims the batch, but the request
//! leaves later, from the batch's own task, and reaches the provider later still (a credential
//! file read, a cold connection's handshake). [`SharedLimiter`] keeps these apart: the lane
//! reserves a place in the window (so it never claims more than may go); the place counts
//! while the request is on its way, and the request is stamped when its answer (or failure)
//! comes back, a time no earlier than the provider saw it. Every request a provider sees in a
//! window was reserved before the window's end and stamped after its start, so the lane, when
//! it reserved the last of them, counted all the others: the limit holds whatever held a
//! request up on the way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Extra time added to each window so requests that travel at different speeds still land
/// inside the provider's limit.
const JITTER_MARGIN: f64 = 0.1;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sent: VecDeque<Instant>,
    /// Requests reserved (their batch claimed) but not yet sent.
    pending: usize,
}

impl RateLimiter {
    /// At most `rate_per_s` requests per second: `floor(rate)` per second for rates of 1 or
    /// more, one per `1/rate` seconds below that.
    pub fn per_second(rate_per_s: f64) -> RateLimiter {
        let rate = if rate_per_s.is_finite() && rate_per_s > 0.0 {
            rate_per_s
        } else {
            1.0
        };
        let (max, secs) = if rate >= 1.0 {
            (rate.floor() as usize, 1.0)
        } else {
            (1, 1.0 / rate)
        };
        RateLimiter {
            max,
            window: Duration::from_secs_f64(secs * (1.0 + JITTER_MARGIN)),
            sent: VecDeque::with_capacity(max),
            pending: 0,
        }
    }

    /// How long until another request may go (zero if one may go now).
    pub fn wait_time(&mut self) -> Duration {
        self.room_in().unwrap_or(self.window)
    }

    /// How long until another request may be reserved (zero if now); `None` while requests
    /// reserved and not yet sent fill the window, so only one of them leaving can tell.
    pub fn room_in(&mut self) -> Option<Duration> {
        let now = Instant::now();
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
        let used = self.sent.len() + self.pending;
        if used < self.max {
            return Some(Duration::ZERO);
        }
        // That many of the sent requests must leave the window first.
        let must_leave = used + 1 - self.max;
        self.sent
            .get(must_leave.checked_sub(1)?)
            .map(|t| (*t + self.window).saturating_duration_since(now))
    }

    /// Waits until a request may go, without counting one.
    pub async fn ready(&mut self) {
        loop {
            let wait = self.wait_time();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts the whole window as spent now: used when a lane is taken over from another
    /// process, whose recent sends this one cannot see, so the first send waits a window.
    pub fn spend_window(&mut self) {
        let now = Instant::now();
        self.sent.clear();
        self.sent.extend(std::iter::repeat_n(now, self.max));
    }

    /// Counts a request sent now; call after [`RateLimiter::ready`].
    pub fn record(&mut self) {
        self.sent.push_back(Instant::now());
        while self.sent.len() > self.max {
            self.sent.pop_front();
        }
    }
}

/// A [`RateLimiter`] shared by a lane, which reserves a place before it claims a batch, and
/// the batch's sender, which counts the request when it leaves.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    inner: Arc<Mutex<RateLimiter>>,
    /// Told when a reservation is sent or given up.
    settled: Arc<Notify>,
}

impl SharedLimiter {
    pub fn per_second(rate_per_s: f64) -> SharedLimiter {
        SharedLimiter {
            inner: Arc::new(Mutex::new(RateLimiter::per_second(rate_per_s))),
            settled: Arc::new(Notify::new()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut RateLimiter) -> R) -> R {
        // The limiter holds no invariant a panic elsewhere could break half-way.
        let mut l = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut l)
    }

    /// See [`RateLimiter::room_in`].
    pub fn room_in(&self) -> Option<Duration> {
        self.with(RateLimiter::room_in)
    }

    /// Waits until a place may be reserved.
    pub async fn ready(&self) {
        loop {
            // Registered before looking, so a reservation settled meanwhile is not missed.
            let settled = self.settled.notified();
            match self.room_in() {
                Some(d) if d.is_zero() => return,
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {},
                        _ = settled => {},
                    }
                }
                None => settled.await,
            }
        }
    }

    /// Takes a place in the window for a request about to be claimed; call after
    /// [`SharedLimiter::ready`]. The place counts until the reservation is sent or dropped.
    pub fn reserve(&self) -> Reservation {
        self.with(|l| l.pending += 1);
        Reservation {
            of: Some(self.clone()),
            departed: false,
        }
    }

    /// See [`RateLimiter::spend_window`].
    pub fn spend_window(&self) {
        self.with(RateLimiter::spend_window);
    }
}

/// A place reserved in a [`SharedLimiter`]'s window. Dropped before [`Reservation::depart`]
/// it frees the place; dropped after, it counts as a request sent at the moment of the drop.
#[derive(Debug)]
pub struct Reservation {
    of: Option<SharedLimiter>,
    departed: bool,
}

impl Reservation {
    /// The request is on its way: from now on, however this reservation ends (answered,
    /// failed, or its task aborted), it counts as a request, stamped when it ends.
    pub fn depart(&mut self) {
        self.departed = true;
    }

    /// The request went and its answer is back now.
    pub fn sent(mut self) {
        self.depart();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(of) = self.of.take() {
            let departed = self.departed;
            of.with(|l| {
                l.pending = l.pending.saturating_sub(1);
                if departed {
                    l.record();
                }
            });
            of.settled.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send_times(limiter: &mut RateLimiter, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..n {
            limiter.ready().await;
            limiter.record();
            times.push(Instant::now() - start);
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn no_one_second_window_ever_holds_more_than_the_rate() {
        let mut l = RateLimiter::per_second(20.0);
        let times = send_times(&mut l, 100).await;
        for (i, t) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(n <= 20, "{n} requests within 1 s from {t:?}");
        }
        // 20 go at once, then 20 more every 1.1 s.
        assert!(times[19] < Duration::from_millis(1));
        assert_eq!(times[20], Duration::from_millis(1100));
        assert!(times[99] <= Duration::from_millis(4 * 1100 + 1));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_rates_space_single_requests() {
        let mut l = RateLimiter::per_second(0.5);
        let times = send_times(&mut l, 3).await;
        assert_eq!(times[1], Duration::from_millis(2200));
        assert_eq!(times[2], Duration::from_millis(4400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_delays_the_next_send_by_one_window() {
        let mut l = RateLimiter::per_second(20.0);
        l.spend_window();
        assert_eq!(l.wait_time(), Duration::from_millis(1100));
        let times = send_times(&mut l, 21).await;
        assert_eq!(times[0], Duration::from_millis(1100));
        assert_eq!(times[19], Duration::from_millis(1100));
        assert_eq!(times[20], Duration::from_millis(2200));
    }

    /// The fault that let 14 requests reach a stand-in within one second at a limit of 10:
    /// places were counted when batches were claimed, and sends delayed after their claims
    /// landed in the next window's burst.
    #[tokio::test(start_paused = true)]
    async fn a_send_delayed_after_its_claim_is_counted_when_it_leaves() {
        let rate = SharedLimiter::per_second(10.0);
        let start = Instant::now();
        let mut sent_at = Vec::new();
        // Ten claims at once; four of their sends are held up 400 ms.
        let mut late = Vec::new();
        for i in 0..10 {
            rate.ready().await;
            let r = rate.reserve();
            if i < 6 {
                r.sent();
                sent_at.push(Instant::now() - start);
            } else {
                late.push(r);
            }
        }
        // Six sent and four reserved fill the window until the first six leave it.
        assert_eq!(rate.room_in(), Some(Duration::from_millis(1100)));
        tokio::time::advance(Duration::from_millis(400)).await;
        for r in late {
            r.sent();
            sent_at.push(Instant::now() - start);
        }
        // Ten more, each as soon as the lane may claim it.
        for _ in 0..10 {
            rate.ready().await;
            rate.reserve().sent();
            sent_at.push(Instant::now() - start);
        }
        for (i, t) in sent_at.iter().enumerate() {
            let n = sent_at[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(n <= 10, "{n} requests within 1 s from {t:?}: {sent_at:?}");
        }
        // The first six went at once and freed their places 1.1 s later; the late four at
        // 1.5 s.
        assert_eq!(sent_at[10], Duration::from_millis(1100));
        assert_eq!(sent_at[16], Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_given_up_frees_its_place_at_once() {
        let rate = SharedLimiter::per_second(1.0);
        let r = rate.reserve();
        assert_eq!(rate.room_in(), None);
        let waiter = tokio::spawn({
            let rate = rate.clone();
            async move {
                rate.ready().await;
                Instant::now()
            }
        });
        tokio::task::yield_now().await;
        let before = Instant::now();
        drop(r);
        let ready_at = waiter.await.unwrap_or(before + Duration::from_secs(99));
        assert_eq!(ready_at, before, "the waiting lane is woken without delay");
        assert_eq!(rate.room_in(), Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_frees_the_window() {
        let mut l = RateLimiter::per_second(2.0);
        l.record();
        l.record();
        assert!(!l.wait_time().is_zero());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(l.wait_time().is_zero());
    }
}
