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

/// `2026-11-26T17:33:01.042Z` (RFC 3339, UTC, milliseconds) for a millisecond timestamp: the
/// admin API's times, in the same form as [`fmt_time`] with the milliseconds kept.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `2026-11-27T01:33:01+08:00`: RFC 3339 in the machine's local time zone (`TZ`), to the
/// second, for what the command line prints as text (its `--json` uses [`rfc3339_ms`]).
pub fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Reads an RFC 3339 time (any offset) as epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let ms = 1_795_999_619_123;
        assert_eq!(rfc3339_ms(ms), "2026-11-30T00:46:59.123Z");
        assert_eq!(fmt_time(ms), "2026-11-30T00:46:59Z");
        assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        assert_eq!(parse_rfc3339_ms("2026-11-30T08:46:59.123+08:00"), Some(ms));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        // Local or not, the same instant, to the second.
        let local = local_time(ms);
        assert_eq!(parse_rfc3339_ms(&local), Some(ms - 123), "{local}");
    }
}
