//! `collapse_to_dir_over = N`: when the URL quota left today would not cover the pending URLs,
//! URLs that share a directory with at least N others pending are purged as that directory.
//!
//! Precisely: on a lane that counts a daily quota for URLs and one for directories, when the
//! pending URL jobs that may go now (not held by a rule's `min_interval_ms`) outnumber the
//! URL quota left today (the limit less what is reserved or, where the provider tells, used),
//! the pending URLs are grouped by their directory: the URL up to and including its last
//! `/`. A group of more than N URLs (each shares the directory with at least N others) is
//! replaced by one directory job for exactly that directory, never a wider one, and never a
//! whole host unless every URL's rule allows host purges (`allow_host_purge`). Groups go
//! largest first,
//! as many as the directory quota left today allows. Each record of a collapsed URL notes
//! "collapsed into dir purge <dir>". The directory job then queues like any other: batched,
//! rate limited, and reserved against the directory quota when its batch is formed.

use super::{ClaimRequest, KindLimits};
use edgepurge_core::TargetKind;

/// A pending URL job, as the backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUrl {
    pub job: i64,
    pub target: String,
    /// Every record of the job allows a whole-host purge (its rule's `allow_host_purge`).
    pub host_ok: bool,
}

/// One directory purge replacing the URL jobs `jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirPurge {
    pub dir: String,
    pub jobs: Vec<i64>,
}

/// Most pending URLs a backend reads to decide, oldest first (the rest are judged at a later
/// claim). Twice a default Tencent URL day: a claim of a lane this short of quota reads them
/// all, so the figure bounds that claim's cost.
pub const MAX_READ: usize = 20_000;

/// The collapse threshold and the quotas of `req`'s lane, when it collapses at all.
fn limits(req: &ClaimRequest) -> Option<(u32, u64, u64)> {
    let over = req.collapse_to_dir_over?;
    let quota = |kind| req.limits(kind).and_then(|l: KindLimits| l.daily_quota);
    Some((over, quota(TargetKind::Url)?, quota(TargetKind::Dir)?))
}

/// How many pending URLs the backend counts (at most) to tell whether they outnumber the
/// URL quota left: `Some(left + 1)`, or `None` when the lane never collapses.
pub fn count_to(req: &ClaimRequest, url_used: u64) -> Option<u64> {
    let (_, url_limit, _) = limits(req)?;
    Some(url_limit.saturating_sub(url_used).saturating_add(1))
}

/// Whether the backend reads the pending URLs: collapsing is on and `pending` (counted up to
/// [`count_to`]) outnumber the URL quota left.
pub fn short(req: &ClaimRequest, url_used: u64, pending: u64) -> bool {
    limits(req).is_some_and(|(_, url_limit, _)| pending > url_limit.saturating_sub(url_used))
}

/// The directory purges to make of `urls` (pending, in job order), with `dirs_used` of the
/// directory quota reserved today and `dirs_pending` directory jobs already waiting.
pub fn plan(
    req: &ClaimRequest,
    urls: &[PendingUrl],
    dirs_used: u64,
    dirs_pending: u64,
) -> Vec<DirPurge> {
    let Some((over, _, dir_limit)) = limits(req) else {
        return Vec::new();
    };
    let room = dir_limit
        .saturating_sub(dirs_used)
        .saturating_sub(dirs_pending);
    // Per directory: its jobs, and whether it may be purged (a host's root only when every
    // URL's rule allows host purges).
    let mut groups: std::collections::BTreeMap<&str, (Vec<i64>, bool)> = Default::default();
    for u in urls {
        if let Some((dir, root)) = directory(&u.target) {
            let g = groups.entry(dir).or_insert((Vec::new(), true));
            g.0.push(u.job);
            g.1 &= !root || u.host_ok;
        }
    }
    let mut out: Vec<DirPurge> = groups
        .into_iter()
        .filter(|(_, (jobs, allowed))| *allowed && jobs.len() > over as usize)
        .map(|(dir, (jobs, _))| DirPurge {
            dir: dir.to_owned(),
            jobs,
        })
        .collect();
    // Largest first (most quota saved); the sort is stable, so equal ones stay in name order.
    out.sort_by_key(|d| std::cmp::Reverse(d.jobs.len()));
    out.truncate(usize::try_from(room).unwrap_or(usize::MAX));
    out
}

/// The directory of a URL (`https://h/a/b.png` → `https://h/a/`) and whether it is the
/// host's root (`https://h/`: a purge of the whole host); `None` when the URL has a query or
/// fragment (its directory is not a plain path) or no path, and when its directory has an
/// empty segment (`https://h//x.png` from a key `/x.png`: a cache that merges slashes would
/// read `https://h//` as the host's root, so such URLs are never collapsed).
pub fn directory(url: &str) -> Option<(&str, bool)> {
    let after_scheme = url.find("://")? + 3;
    let path_start = after_scheme + url[after_scheme..].find('/')?;
    if url[path_start..].contains(['?', '#']) {
        return None;
    }
    let last = url.rfind('/')?;
    if url[path_start..=last].contains("//") {
        return None;
    }
    Some((&url[..=last], last == path_start))
}

/// The note of a record whose URL went into a directory purge.
pub fn note(dir: &str) -> String {
    format!("collapsed into dir purge {dir}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A sender's key `/1.png` gives `https://h//1.png`; its directory `https://h//` is the
    /// host's root to a cache that merges slashes. It once collapsed without allow_host_purge.
    #[test]
    fn a_directory_with_an_empty_segment_is_never_collapsed_into() {
        assert_eq!(directory("https://h//1.png"), None);
        assert_eq!(directory("https://h/a//b/1.png"), None);
        assert_eq!(
            directory("https://h/a/1.png"),
            Some(("https://h/a/", false))
        );
        assert_eq!(directory("https://h/1.png"), Some(("https://h/", true)));
    }

    fn req(over: Option<u32>, url_quota: Option<u64>, dir_quota: Option<u64>) -> ClaimRequest {
        ClaimRequest {
            lane: "t".into(),
            owner: "A".into(),
            token: 1,
            now: 0,
            linger_ms: 0,
            kinds: vec![
                (
                    TargetKind::Url,
                    KindLimits {
                        max_batch: 1000,
                        daily_quota: url_quota,
                    },
                ),
                (
                    TargetKind::Dir,
                    KindLimits {
                        max_batch: 20,
                        daily_quota: dir_quota,
                    },
                ),
            ],
            quota_day: 0,
            quota_reset_at: 0,
            collapse_to_dir_over: over,
            fanout: None,
        }
    }

    fn urls(list: &[&str]) -> Vec<PendingUrl> {
        list.iter()
            .enumerate()
            .map(|(i, t)| PendingUrl {
                job: i as i64 + 1,
                target: (*t).to_owned(),
                host_ok: false,
            })
            .collect()
    }

    #[test]
    fn a_directory_is_the_url_up_to_its_last_slash_and_says_when_it_is_the_host() {
        assert_eq!(
            directory("https://h/a/b.png"),
            Some(("https://h/a/", false))
        );
        assert_eq!(
            directory("https://h:8443/a/b/c%20d.png"),
            Some(("https://h:8443/a/b/", false))
        );
        assert_eq!(directory("https://h/a/"), Some(("https://h/a/", false)));
        assert_eq!(directory("https://h/b.png"), Some(("https://h/", true)));
        assert_eq!(directory("https://h"), None);
        assert_eq!(directory("https://h/a/b.png?v=1"), None);
        assert_eq!(directory("not a url"), None);
    }

    #[test]
    fn only_a_short_quota_on_a_lane_counting_both_kinds_collapses() {
        let on = req(Some(2), Some(10), Some(5));
        assert_eq!(count_to(&on, 4), Some(7));
        assert!(!short(&on, 4, 6), "6 pending, 6 left: covered");
        assert!(short(&on, 4, 7));
        assert!(short(&on, 10, 1), "spent");
        for off in [
            req(None, Some(10), Some(5)),
            req(Some(2), None, Some(5)),
            req(Some(2), Some(10), None),
        ] {
            assert_eq!(count_to(&off, 4), None);
            assert!(!short(&off, 4, 1_000));
            assert!(plan(
                &off,
                &urls(&["https://h/a/1", "https://h/a/2", "https://h/a/3"]),
                0,
                0
            )
            .is_empty());
        }
    }

    #[test]
    fn groups_of_more_than_n_become_one_dir_each_largest_first_within_the_dir_quota() {
        let pending = urls(&[
            "https://h/a/1.png",
            "https://h/b/1.png",
            "https://h/a/2.png",
            "https://h/a/3.png",
            "https://h/b/2.png",
            "https://h/c/1.png",
            "https://h/b/3.png",
            "https://h/b/4.png",
            "https://h/1.png",
            "https://h/2.png",
            "https://h/3.png",
            "https://h/a/x/1.png",
        ]);
        let got = plan(&req(Some(2), Some(1), Some(100)), &pending, 0, 0);
        assert_eq!(
            got,
            vec![
                DirPurge {
                    dir: "https://h/b/".into(),
                    jobs: vec![2, 5, 7, 8]
                },
                DirPurge {
                    dir: "https://h/a/".into(),
                    jobs: vec![1, 3, 4]
                },
            ],
            "c/ has one URL, the root is not purged whole without leave, a/x/ is not a/"
        );
        // The host's root goes whole only when every URL there allows it.
        let mut allowed = pending.clone();
        for u in allowed
            .iter_mut()
            .filter(|u| u.target.matches('/').count() == 3)
        {
            u.host_ok = true;
        }
        let got = plan(&req(Some(2), Some(1), Some(100)), &allowed, 0, 0);
        assert_eq!(got.len(), 3);
        assert!(got.contains(&DirPurge {
            dir: "https://h/".into(),
            jobs: vec![9, 10, 11]
        }));
        allowed[9].host_ok = false;
        assert_eq!(
            plan(&req(Some(2), Some(1), Some(100)), &allowed, 0, 0).len(),
            2
        );
        // Exactly N others is enough; fewer is not.
        assert_eq!(
            plan(&req(Some(3), Some(1), Some(100)), &pending, 0, 0).len(),
            1
        );
        assert!(plan(&req(Some(4), Some(1), Some(100)), &pending, 0, 0).is_empty());
        // One directory purge left today (99 reserved or waiting of 100): the largest group.
        let one = plan(&req(Some(2), Some(1), Some(100)), &pending, 98, 1);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].dir, "https://h/b/");
        assert!(plan(&req(Some(2), Some(1), Some(100)), &pending, 100, 0).is_empty());
    }

    proptest! {
        /// Whatever the URLs: each collapsed job is a pending URL whose directory is exactly
        /// the purge's (never wider; a host's root only with leave), no job goes into two
        /// purges, each
        /// purge has more than N jobs, and no more purges than the directory quota allows.
        #[test]
        fn collapse_never_widens_and_never_overspends(
            paths in proptest::collection::vec(("(/[ab]){0,3}/[xyz]\\.png", any::<bool>()), 0..60),
            over in 1u32..5,
            dir_left in 0u64..6,
        ) {
            let pending: Vec<PendingUrl> = paths
                .iter()
                .enumerate()
                .map(|(i, (p, ok))| PendingUrl {
                    job: i as i64,
                    target: format!("https://h{p}"),
                    host_ok: *ok,
                })
                .collect();
            let got = plan(&req(Some(over), Some(1), Some(10)), &pending, 10 - dir_left, 0);
            prop_assert!(got.len() as u64 <= dir_left);
            let mut seen = std::collections::HashSet::new();
            for d in &got {
                prop_assert!(d.jobs.len() > over as usize);
                for j in &d.jobs {
                    prop_assert!(seen.insert(*j), "job {} twice", j);
                    let u = &pending[*j as usize];
                    let (dir, root) = directory(&u.target).unwrap_or_default();
                    prop_assert_eq!(dir, d.dir.as_str());
                    prop_assert!(!root || u.host_ok, "the host's root without leave");
                }
            }
        }
    }
}
