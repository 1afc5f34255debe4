//! Fan-out: a target of a provider account with several lanes (an `http-purge` account: one
//! lane per cache node) is stored once at ingest, and expanded into each lane's job just
//! ahead of sending, a bounded slice at a time. Ingest then costs O(targets) rows, whatever
//! the number of nodes, and no transaction grows with the node count.
//!
//! Any lane of the account expands (in its claim, holding its own lease) when its own backlog
//! of pending jobs is low: a slice of the account's oldest fan-out targets becomes one
//! pending job per lane configured now (merging with a pending job for the same lane, kind
//! and target, as ingest would) and leaves the fan-out table. A node that is down keeps its
//! jobs pending and catches up when it answers again; the others go on expanding.
//!
//! Pure: which rows a slice takes and what they become; backends persist it.

use super::{ClaimRequest, Ms};
use edgepurge_core::TargetKind;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most jobs one expansion makes (rows × lanes): bounds its transaction.
pub const SLICE_JOBS: usize = 4_096;
/// A lane expands only while it has fewer pending jobs than this (about a few batches).
pub const LOW_WATER: u64 = 512;

/// What a lane of a fanned-out account presents when it claims: the account and its lanes
/// as configured now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutClaim {
    pub account: String,
    pub lanes: Arc<[String]>,
}

impl FanoutClaim {
    /// Fan-out rows to expand in one slice: at most [`SLICE_JOBS`] jobs, at least one row.
    pub fn rows_per_slice(&self) -> usize {
        (SLICE_JOBS / self.lanes.len().max(1)).clamp(1, LOW_WATER as usize)
    }
}

/// A lane claiming with `req` expands a slice only while it has fewer pending jobs than this:
/// two of its batches (so it can fill a batch while one goes) or a slice, at most
/// [`LOW_WATER`].
pub fn low_water(req: &ClaimRequest) -> u64 {
    let batch = req
        .kinds
        .iter()
        .map(|(_, l)| l.max_batch)
        .max()
        .unwrap_or(1);
    let rows = req.fanout.as_ref().map_or(1, FanoutClaim::rows_per_slice);
    (batch.saturating_mul(2).max(rows) as u64).clamp(1, LOW_WATER)
}

/// One stored fan-out target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutRow {
    pub id: i64,
    pub kind: TargetKind,
    pub target: String,
    pub created_at: Ms,
    /// The log records it serves.
    pub purge_ids: Vec<i64>,
}

/// One job an expansion queues: for `lane`, serving `purge_ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedJob {
    pub lane: String,
    pub kind: TargetKind,
    pub target: String,
    pub created_at: Ms,
    pub purge_ids: Vec<i64>,
}

/// What expanding `rows` on `lanes` does: the jobs to queue (none is any record's only job,
/// the account having several lanes) and, per record, how many of its fan-out rows went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    pub jobs: Vec<ExpandedJob>,
    pub rows_done: BTreeMap<i64, i64>,
}

pub fn expand(rows: &[FanoutRow], lanes: &[String]) -> Expansion {
    let mut e = Expansion {
        jobs: Vec::with_capacity(rows.len() * lanes.len()),
        rows_done: BTreeMap::new(),
    };
    for row in rows {
        for &p in &row.purge_ids {
            *e.rows_done.entry(p).or_default() += 1;
        }
        for lane in lanes {
            e.jobs.push(ExpandedJob {
                lane: lane.clone(),
                kind: row.kind,
                target: row.target.clone(),
                created_at: row.created_at,
                purge_ids: row.purge_ids.clone(),
            });
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(lanes: usize) -> FanoutClaim {
        FanoutClaim {
            account: "edge".into(),
            lanes: (0..lanes).map(|i| format!("edge@n{i}")).collect(),
        }
    }

    #[test]
    fn a_slice_is_bounded_in_jobs_whatever_the_node_count() {
        for n in [1, 2, 7, 200, 5_000, 10_000] {
            let c = claim(n);
            let rows = c.rows_per_slice();
            assert!(rows >= 1);
            assert!(rows * n <= SLICE_JOBS.max(n), "{n} lanes: {rows} rows");
        }
        assert_eq!(claim(200).rows_per_slice(), 20);
        assert_eq!(claim(2).rows_per_slice(), LOW_WATER as usize);
    }

    #[test]
    fn a_lane_expands_until_it_holds_two_batches_or_a_slice() {
        let mut req = ClaimRequest {
            lane: "edge@n0".into(),
            owner: "A".into(),
            token: 1,
            now: 0,
            linger_ms: 100,
            kinds: vec![(
                TargetKind::Url,
                crate::queue::KindLimits {
                    max_batch: 100,
                    daily_quota: None,
                },
            )],
            quota_day: 0,
            quota_reset_at: 1,
            fanout: Some(claim(200)),
            collapse_to_dir_over: None,
        };
        assert_eq!(low_water(&req), 200, "two batches of 100");
        req.kinds[0].1.max_batch = 1;
        assert_eq!(low_water(&req), 20, "one slice (20 rows on 200 lanes)");
        req.kinds[0].1.max_batch = 100_000;
        assert_eq!(low_water(&req), LOW_WATER, "bounded");
    }

    #[test]
    fn each_row_becomes_one_job_per_lane_and_counts_for_its_records() {
        let rows = vec![
            FanoutRow {
                id: 1,
                kind: TargetKind::Url,
                target: "https://cdn.test/a".into(),
                created_at: 5,
                purge_ids: vec![10, 11],
            },
            FanoutRow {
                id: 2,
                kind: TargetKind::Url,
                target: "https://cdn.test/b".into(),
                created_at: 6,
                purge_ids: vec![11],
            },
        ];
        let lanes: Vec<String> = vec!["edge@a".into(), "edge@b".into(), "edge@c".into()];
        let e = expand(&rows, &lanes);
        assert_eq!(e.jobs.len(), 6);
        for lane in &lanes {
            let of: Vec<&ExpandedJob> = e.jobs.iter().filter(|j| &j.lane == lane).collect();
            assert_eq!(of.len(), 2, "every lane gets every target");
            assert_eq!(of[0].purge_ids, vec![10, 11]);
            assert_eq!(of[0].created_at, 5, "keeps the arrival time, for lingering");
        }
        assert_eq!(e.rows_done, BTreeMap::from([(10, 1), (11, 2)]));
    }
}
