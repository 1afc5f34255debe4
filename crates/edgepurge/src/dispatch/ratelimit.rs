//! The request rate limit: never more than `n` requests in any window of `w`.
//!
//! Providers state limits as "N requests per second" and count them over a sliding window
//! (Tencent answers `RequestLimitExceeded` for the 21st call within a second). A token
//! bucket with a burst would allow up to burst + rate calls in one second, so the lane keeps
//! the send times of the last `n` requests instead and waits until the oldest is a full
//! window (plus a margin for network jitter) old.

use std::collections::VecDeque;
use tokio::time::{Duration, Instant};

/// Extra time added to each window so requests that travel at different speeds still land
/// inside the provider's limit.
const JITTER_MARGIN: f64 = 0.1;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sent: VecDeque<Instant>,
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
        }
    }

    /// How long until another request may go (zero if one may go now).
    pub fn wait_time(&mut self) -> Duration {
        let now = Instant::now();
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.max {
            return Duration::ZERO;
        }
        self.sent
            .front()
            .map(|t| (*t + self.window).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
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
