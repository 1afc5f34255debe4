//! Wall-clock milliseconds that follow tokio's clock, so tests can pause and advance time.

use crate::store::Ms;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: Ms,
    base: Instant,
}

impl Clock {
    /// A clock anchored at the current wall-clock time.
    pub fn system() -> Clock {
        Clock::starting_at(chrono::Utc::now().timestamp_millis())
    }

    /// A clock that reads `ms` now and advances with tokio's clock.
    pub fn starting_at(ms: Ms) -> Clock {
        Clock {
            base_ms: ms,
            base: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> Ms {
        let elapsed = Instant::now().saturating_duration_since(self.base);
        self.base_ms + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// The tokio instant at which this clock reads `ms` (now if that is past).
    pub fn instant_at(&self, ms: Ms) -> Instant {
        let ahead = (ms - self.now_ms()).max(0);
        Instant::now() + std::time::Duration::from_millis(ahead as u64)
    }
}

/// Wall-clock milliseconds now (for code that does not need pausable time).
pub fn now_ms() -> Ms {
    chrono::Utc::now().timestamp_millis()
}

/// `2026-11-26T17:33:01Z` for a millisecond timestamp.
pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
