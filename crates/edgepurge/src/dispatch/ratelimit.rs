//! A token bucket: `rate` requests per second on average, at most `burst` at once.

use tokio::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_s: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: rate_per_s.max(0.001),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// How long until a token is available (zero if one is).
    pub fn wait_time(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Waits until a token is available, without taking it.
    pub async fn ready(&mut self) {
        loop {
            let wait = self.wait_time();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token; call after [`TokenBucket::ready`].
    pub fn take(&mut self) {
        self.refill();
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_rate_after_the_burst() {
        let mut b = TokenBucket::new(20.0, 20);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..100 {
            b.ready().await;
            b.take();
            times.push(Instant::now() - start);
        }
        // 20 at once, then one every 50 ms: 80 more take 4 s.
        assert!(times[19] < Duration::from_millis(1));
        let total = times[99];
        assert!(
            total >= Duration::from_millis(3990) && total <= Duration::from_millis(4010),
            "{total:?}"
        );
        // In any window of one second there are at most rate + burst sends.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(in_window <= 40, "window at {t:?} holds {in_window}");
        }
        // After the initial burst, any one-second window holds at most `rate` + 1.
        let steady: Vec<_> = times
            .iter()
            .filter(|t| **t >= Duration::from_millis(1))
            .collect();
        for (i, t) in steady.iter().enumerate() {
            let n = steady[i..]
                .iter()
                .filter(|u| ***u < **t + Duration::from_secs(1))
                .count();
            assert!(n <= 21, "steady window at {t:?} holds {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refills_after_idle_up_to_burst_only() {
        let mut b = TokenBucket::new(1.0, 3);
        for _ in 0..3 {
            b.take();
        }
        assert_eq!(b.wait_time(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(100)).await;
        for _ in 0..3 {
            assert!(b.wait_time().is_zero());
            b.take();
        }
        assert!(!b.wait_time().is_zero());
    }
}
