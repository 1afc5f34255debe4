//! Log lines a caller can cause, without letting a caller flood the log: at most one line
//! per [`EVERY`] per kind, which says how many more there were since the last. Refused
//! callers are logged so "why do my events not arrive?" has an answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(10);

/// At most one line per [`EVERY`].
pub struct Throttle {
    start: Instant,
    /// Milliseconds after `start` of the last line; -1 before the first.
    last_ms: AtomicI64,
    since: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            start: Instant::now(),
            last_ms: AtomicI64::new(-1),
            since: AtomicU64::new(0),
        }
    }
}

impl Throttle {
    /// `Some(n)` when a line may be written now (`n` were held back since the last line);
    /// `None` when this one is only counted.
    pub fn allow(&self) -> Option<u64> {
        let now = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last < 0 || now - last >= EVERY.as_millis() as i64;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.since.swap(0, Ordering::Relaxed));
        }
        self.since.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// One kind of refusal (wrong token, not loopback, unknown path).
pub struct Refusals {
    what: &'static str,
    throttle: Throttle,
}

impl Refusals {
    pub fn new(what: &'static str) -> Refusals {
        Refusals {
            what,
            throttle: Throttle::default(),
        }
    }

    /// Logs this refusal unless one was logged within [`EVERY`]; returns whether it did.
    pub fn note(&self, peer: SocketAddr, detail: &str) -> bool {
        let Some(more) = self.throttle.allow() else {
            return false;
        };
        tracing::warn!(
            peer = %peer,
            more_since_last_line = more,
            "refused a caller: {}: {}",
            self.what,
            edgepurge_core::printable(detail)
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let r = Refusals::new("wrong token");
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(r.note(peer, "x"));
        for _ in 0..50 {
            assert!(!r.note(peer, "x"));
        }
        assert_eq!(r.throttle.since.load(Ordering::Relaxed), 50);
    }
}
