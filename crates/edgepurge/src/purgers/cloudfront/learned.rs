//! Targets CloudFront refused on their own (`InvalidArgument` for a request holding only
//! them), remembered for a while: they fail at once in later batches instead of failing a
//! whole request and being bisected out again. Forgotten after [`FORGET_AFTER`], or when the
//! operator re-queues them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Most entries; beyond it expired ones are dropped, and new ones are not kept until some
/// expire (a flood of bad targets cannot grow memory).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    code: String,
    why: String,
    until: Instant,
}

#[derive(Debug, Default)]
pub struct Learned {
    targets: Mutex<HashMap<String, Entry>>,
}

impl Learned {
    /// Why `target` is known to fail (its code and message), if it is.
    pub fn why_bad(&self, target: &str) -> Option<(String, String)> {
        let map = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        map.get(target)
            .filter(|e| e.until > Instant::now())
            .map(|e| (e.code.clone(), e.why.clone()))
    }

    /// Remembers that `target` fails with `code`.
    pub fn bad_target(&self, target: &str, code: &str, message: &str) {
        let mut map = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, e| e.until > now);
        }
        if map.len() < MAX_ENTRIES || map.contains_key(target) {
            map.insert(
                target.to_owned(),
                Entry {
                    code: code.to_owned(),
                    why: message.to_owned(),
                    until: Instant::now() + FORGET_AFTER,
                },
            );
        }
    }

    /// Forgets what was learned about these targets.
    pub fn forget(&self, targets: &[String]) {
        let mut map = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for t in targets {
            map.remove(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_targets_are_remembered_and_forgotten() {
        let l = Learned::default();
        assert_eq!(l.why_bad("https://a.example/x"), None);
        l.bad_target("https://a.example/x", "InvalidArgument", "bad path");
        assert_eq!(
            l.why_bad("https://a.example/x"),
            Some(("InvalidArgument".into(), "bad path".into()))
        );
        assert_eq!(l.why_bad("https://a.example/y"), None);
        l.forget(&["https://a.example/x".into()]);
        assert_eq!(l.why_bad("https://a.example/x"), None);
    }

    #[test]
    fn a_flood_of_bad_targets_stays_bounded() {
        let l = Learned::default();
        for i in 0..(MAX_ENTRIES + 500) {
            l.bad_target(&format!("https://b.example/{i}"), "InvalidArgument", "x");
        }
        assert!(l.targets.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(
            l.why_bad("https://b.example/0").is_some(),
            "the first ones stay"
        );
    }
}
