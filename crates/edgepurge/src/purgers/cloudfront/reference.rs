//! `CallerReference`s (apis.md §B.2): CloudFront answers a request whose reference and paths
//! it has seen with the invalidation it made then, instead of making another.
//!
//! A reference is derived from the batch (a hash of its kind and sorted items) and the time
//! of its first attempt, and kept until CloudFront answers 201: every attempt of that batch
//! whose answer was lost (timeout, reset, 5xx, a proxy's page) sends the same reference, so
//! a retry never creates, nor pays for, a second invalidation. Once an invalidation is
//! confirmed the reference is dropped: the same paths changed again later get a new one, so
//! they are invalidated again (a fixed hash of the paths alone would return the old, already
//! completed invalidation and purge nothing).
//!
//! Kept in memory: after a restart, a batch whose answer was lost is sent with a new
//! reference (at worst one duplicate invalidation, never a missed one).

use edgepurge_core::TargetKind;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a reference is kept for a batch that got no 201 (batches give up after a day by
/// default, `dispatch.max_age_s`).
pub const KEEP: Duration = Duration::from_secs(86_400);
/// Most batches remembered; the oldest go first.
const MAX_ENTRIES: usize = 10_000;

/// How an attempt ended, for the reference it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// 201: the invalidation exists.
    Created,
    /// No answer, or not CloudFront's: it may exist. The next attempt reuses the reference.
    Unknown,
    /// CloudFront refused it: none was made. Reusing the reference is harmless.
    Refused,
    /// `InvalidationBatchAlreadyExists`: the reference is taken; the next attempt gets a new one.
    Taken,
}

#[derive(Debug)]
struct Entry {
    reference: String,
    in_flight: bool,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct References {
    map: Mutex<HashMap<String, Entry>>,
}

/// The batch's identity: its kind and items, in any order.
pub fn fingerprint(kind: TargetKind, items: &[String]) -> String {
    let mut sorted: Vec<&str> = items.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    for item in sorted {
        // Length-prefixed: no two lists of items hash alike by joining differently.
        h.update((item.len() as u64).to_be_bytes());
        h.update(item.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A new reference for a batch first sent at `now_ms` (a random part keeps two sends of the
/// same paths in the same millisecond apart).
pub fn new_reference(fingerprint: &str, now_ms: i64) -> String {
    format!(
        "edgepurge-{}-{now_ms}-{:08x}",
        fingerprint.get(..24).unwrap_or(fingerprint),
        rand::random::<u32>()
    )
}

impl References {
    /// The reference for an attempt at the batch `fingerprint`: the one its earlier attempt
    /// used when that got no 201, else a new one. A batch with the same paths already in
    /// flight gets its own (it is another batch: its events came later).
    pub fn begin(&self, fingerprint: &str, now_ms: i64) -> String {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(e) = map.get_mut(fingerprint) {
            if now.duration_since(e.since) < KEEP {
                if e.in_flight {
                    return new_reference(fingerprint, now_ms);
                }
                e.in_flight = true;
                return e.reference.clone();
            }
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| now.duration_since(e.since) < KEEP);
            if map.len() >= MAX_ENTRIES {
                let oldest = map
                    .iter()
                    .filter(|(_, e)| !e.in_flight)
                    .min_by_key(|(_, e)| e.since)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let reference = new_reference(fingerprint, now_ms);
        map.insert(
            fingerprint.to_owned(),
            Entry {
                reference: reference.clone(),
                in_flight: true,
                since: now,
            },
        );
        reference
    }

    /// Records how the attempt that used `reference` ended.
    pub fn end(&self, fingerprint: &str, reference: &str, ended: Ended) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = map.get_mut(fingerprint) else {
            return;
        };
        if e.reference != reference {
            return;
        }
        match ended {
            Ended::Created | Ended::Taken => {
                map.remove(fingerprint);
            }
            Ended::Unknown | Ended::Refused => e.in_flight = false,
        }
    }

    /// Forgets every reference not in flight (the operator re-queued targets: they must be
    /// invalidated anew, not answered with an earlier invalidation).
    pub fn forget_idle(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.in_flight);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_fingerprint_is_the_batch_in_any_order_and_kind_matters() {
        let a = fingerprint(TargetKind::Url, &items(&["/a", "/b"]));
        assert_eq!(a, fingerprint(TargetKind::Url, &items(&["/b", "/a"])));
        assert_ne!(a, fingerprint(TargetKind::Tag, &items(&["/a", "/b"])));
        assert_ne!(a, fingerprint(TargetKind::Url, &items(&["/a", "/b", "/c"])));
        // No ambiguity from joining: ["/a\n/b"] is one item, not two.
        assert_ne!(a, fingerprint(TargetKind::Url, &items(&["/a\n/b"])));
        let r = new_reference(&a, 1_767_225_600_000);
        assert!(
            r.starts_with(&format!("edgepurge-{}-1767225600000-", &a[..24])),
            "{r}"
        );
        assert!(r.len() <= 64, "{r}");
    }

    #[test]
    fn a_retry_after_a_lost_answer_reuses_the_reference() {
        let refs = References::default();
        let fp = fingerprint(TargetKind::Url, &items(&["/a"]));
        let first = refs.begin(&fp, 1);
        refs.end(&fp, &first, Ended::Unknown);
        let second = refs.begin(&fp, 2);
        assert_eq!(first, second, "same batch, answer lost: same reference");
        refs.end(&fp, &second, Ended::Refused);
        let third = refs.begin(&fp, 3);
        assert_eq!(
            first, third,
            "refused (e.g. too many in progress): same reference"
        );
        refs.end(&fp, &third, Ended::Created);
        // The same paths changed again: a new invalidation, not the old one.
        let later = refs.begin(&fp, 4);
        assert_ne!(later, first);
        refs.end(&fp, &later, Ended::Taken);
        assert_ne!(refs.begin(&fp, 5), later, "a taken reference is not reused");
    }

    #[test]
    fn the_same_paths_in_flight_twice_get_two_references() {
        let refs = References::default();
        let fp = fingerprint(TargetKind::Dir, &items(&["/d/*"]));
        let a = refs.begin(&fp, 1);
        let b = refs.begin(&fp, 1);
        assert_ne!(a, b);
        // The untracked one's end changes nothing; the tracked one is reused after a loss.
        refs.end(&fp, &b, Ended::Created);
        refs.end(&fp, &a, Ended::Unknown);
        assert_eq!(refs.begin(&fp, 2), a);
    }

    #[test]
    fn requeued_targets_get_new_references_and_memory_stays_bounded() {
        let refs = References::default();
        let fp = fingerprint(TargetKind::Url, &items(&["/a"]));
        let a = refs.begin(&fp, 1);
        refs.end(&fp, &a, Ended::Unknown);
        refs.forget_idle();
        assert_ne!(refs.begin(&fp, 2), a);
        for i in 0..(MAX_ENTRIES + 50) {
            let fp = fingerprint(TargetKind::Url, &[format!("/{i}")]);
            let r = refs.begin(&fp, 1);
            refs.end(&fp, &r, Ended::Unknown);
        }
        assert!(refs.len() <= MAX_ENTRIES);
    }
}
