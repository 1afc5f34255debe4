//! One behaviour suite for every store backend: the definition of what a backend must do. A
//! backend's test module calls [`run_all`] with a factory that makes a fresh, empty database
//! and can open several handles on it (as several processes would).
//!
//! Lease cases run in real time with short leases, since a lease is decided on the store's
//! own clock.

use super::*;
use edgepurge_core::{Mode, RuleSpec, TargetKind};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// A fresh database: `open` makes another handle on it (another "process").
pub struct Backend {
    pub guard: Box<dyn Any + Send>,
    pub open: Box<dyn Fn() -> OpenFuture + Send + Sync>,
}

pub type OpenFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>> + Send>>;

/// One test per case, each on a fresh database from `$factory` (a `fn() -> Backend`). A
/// backend's test module calls it once; every case runs on every backend.
macro_rules! suite {
    ($factory:path) => {
        $crate::store::conformance::suite!(@single $factory;
            rules_are_unique_and_config_rules_are_read_only,
            pending_targets_merge_per_lane_kind_and_url,
            records_made_while_written_commit_as_a_list_does_all_or_nothing,
            a_target_never_merges_into_a_sent_batch,
            batches_wait_for_linger_unless_full,
            success_is_recorded_with_provider_ids,
            retry_waits_until_its_time_and_counts_attempts,
            split_halves_a_batch_and_a_single_target_dies,
            daily_quota_caps_batches_until_reset,
            a_batch_resent_on_a_later_day_counts_on_that_day,
            dead_letters_are_requeued_by_retry,
            held_batches_are_released_when_the_provider_is_back,
            targets_that_failed_alone_leave_the_batch_with_their_own_outcome,
            a_lane_lease_excludes_others_and_reclaims_in_flight_work,
            claiming_without_the_lease_is_refused,
            a_released_lane_is_taken_at_once_with_a_higher_token,
            finishing_reports_the_records_it_changed,
            since_finds_records_by_arrival_time,
            since_and_retention_survive_gaps_in_record_ids,
            record_times_never_go_back,
            a_record_whose_other_job_was_pruned_still_completes,
            ids_are_never_given_twice_after_pruning,
            log_filters_and_follow_order,
            follow_pages_through_records_that_share_a_change_number,
            record_status_is_the_worst_of_its_targets,
            prune_removes_only_old_finished_work,
            a_listing_is_saved_changed_and_reset_per_source,
            a_purge_without_a_task_completes_when_answered,
            followed_tasks_complete_their_records,
            a_failed_or_lost_task_leaves_its_record_unconfirmed_with_the_reason,
            a_followed_task_outlives_retention_until_settled,
            paging_back_in_time_sees_every_record_and_request_once,
            a_verification_is_due_once_the_purge_completed_and_settled,
            a_verification_is_taken_for_a_lease_and_recorded_once,
            an_ended_purge_is_due_to_be_reported_unverifiable,
            records_keep_the_events_validators,
            a_later_change_of_the_same_object_is_found,
            a_warming_is_due_after_completion_and_verification,
            a_warming_is_taken_for_a_lease_and_recorded_once,
            a_target_is_held_for_its_rules_min_interval_then_purged_once,
            urls_the_quota_cannot_cover_collapse_into_their_directory,
            fanned_out_targets_are_stored_once_and_reach_every_lane,
            fan_out_targets_reach_the_one_lane_left_when_nodes_were_cut,
            fan_out_expands_in_bounded_slices_and_a_silent_lane_catches_up,
            a_hosts_root_is_collapsed_only_when_every_rule_allows_it,
        );
        $crate::store::conformance::suite!(@multi $factory;
            a_lease_holds_across_handles_and_fences_late_answers,
            a_follower_misses_no_change_while_several_writers_commit,
            a_follower_misses_no_change_while_writers_of_every_kind_commit,
            concurrent_handles_merge_one_url_into_one_job,
            two_handles_never_take_the_same_verification,
            two_handles_never_take_the_same_warming,
            handles_expanding_and_ingesting_at_once_give_every_lane_every_target,
        );
    };
    (@single $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $factory();
                let store = (backend.open)().await;
                $crate::store::conformance::$name(store.as_ref()).await;
            }
        )*
    };
    (@multi $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $factory();
                $crate::store::conformance::$name(&backend).await;
            }
        )*
    };
}
pub(crate) use suite;

fn listed(key: &str, etag: &str, size: u64) -> ListedObject {
    ListedObject {
        key: key.into(),
        etag: etag.into(),
        size,
        modified: "2026-11-30T00:00:00.000Z".into(),
    }
}

pub async fn a_listing_is_saved_changed_and_reset_per_source(store: &dyn Store) {
    assert_eq!(store.listing("poll:a").await.unwrap(), None, "never saved");
    // An empty bucket is a listing too (not the same as none).
    store
        .save_listing("poll:a", "s1", ListingChanges::default(), 1)
        .await
        .unwrap();
    let empty = store.listing("poll:a").await.unwrap().unwrap();
    assert_eq!((empty.scope.as_str(), empty.objects.len()), ("s1", 0));

    let changes = ListingChanges {
        reset: true,
        upsert: vec![listed("a.png", "e1", 1), listed("猫 +%25.png", "e2", 2)],
        remove: vec![],
    };
    store
        .save_listing("poll:a", "s1", changes, 2)
        .await
        .unwrap();
    store
        .save_listing(
            "poll:b",
            "other",
            ListingChanges {
                reset: true,
                upsert: vec![listed("b.png", "x", 9)],
                remove: vec![],
            },
            2,
        )
        .await
        .unwrap();
    let changes = ListingChanges {
        reset: false,
        upsert: vec![listed("a.png", "e3", u64::from(u32::MAX) + 1)],
        remove: vec!["猫 +%25.png".into(), "never-there".into()],
    };
    store
        .save_listing("poll:a", "s1", changes, 3)
        .await
        .unwrap();
    let mut got = store.listing("poll:a").await.unwrap().unwrap();
    got.objects.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        got,
        Listing {
            scope: "s1".into(),
            objects: vec![listed("a.png", "e3", u64::from(u32::MAX) + 1)],
        }
    );
    // Another scope replaces the listing whole; other sources keep theirs.
    let changes = ListingChanges {
        reset: true,
        upsert: vec![listed("c.png", "e4", 4)],
        remove: vec![],
    };
    store
        .save_listing("poll:a", "s2", changes, 4)
        .await
        .unwrap();
    let got = store.listing("poll:a").await.unwrap().unwrap();
    assert_eq!(got.scope, "s2");
    assert_eq!(got.objects, vec![listed("c.png", "e4", 4)]);
    let b = store.listing("poll:b").await.unwrap().unwrap();
    assert_eq!(b.objects, vec![listed("b.png", "x", 9)]);
}

pub fn record(rule: &str, jobs: &[(&str, &str)]) -> IngestRecord {
    IngestRecord {
        event: EventInfo {
            format: "ceph".into(),
            name: "ObjectCreated:Put".into(),
            bucket: "assets".into(),
            key: "k".into(),
            id: None,
            etag: None,
            size: None,
        },
        rule: Some(rule.into()),
        provider: Some("p".into()),
        targets: jobs.iter().map(|(_, t)| t.to_string()).collect(),
        jobs: jobs
            .iter()
            .map(|(lane, t)| LaneJob {
                lane: lane.to_string(),
                kind: TargetKind::Url,
                target: t.to_string(),
            })
            .collect(),
        min_interval_ms: 0,
        fanout: Vec::new(),
        allow_host_purge: false,
        note: None,
        verify: None,
        warm: None,
    }
}

fn spec(name: &str) -> RuleSpec {
    crate::rules::example(name, "p", Mode::Url)
}

const DAY_MS: i64 = 86_400_000;

pub fn claim_req(token: i64, now: Ms) -> ClaimRequest {
    ClaimRequest {
        lane: "p".into(),
        owner: "A".into(),
        token,
        now,
        linger_ms: 100,
        kinds: vec![
            (
                TargetKind::Url,
                KindLimits {
                    max_batch: 1000,
                    daily_quota: None,
                },
            ),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: 20,
                    daily_quota: None,
                },
            ),
        ],
        quota_day: now.div_euclid(DAY_MS),
        quota_reset_at: (now.div_euclid(DAY_MS) + 1) * DAY_MS,
        collapse_to_dir_over: None,
        fanout: None,
    }
}

pub async fn claim_batch(s: &dyn Store, req: ClaimRequest) -> ClaimedBatch {
    match s.claim(req.clone()).await.unwrap() {
        Claim::Batch(b) => b,
        other => panic!("expected a batch at {}, got {other:?}", req.now),
    }
}

pub fn finish(token: i64, batch: &ClaimedBatch, now: Ms, outcome: FinishOutcome) -> Finish {
    Finish {
        batch_id: batch.id,
        token,
        started_at: now,
        now,
        outcome,
        http_status: Some(200),
        request_id: Some(format!("req-{}-{}", batch.id, batch.attempt)),
        task_id: Some(format!("task-{}", batch.id)),
        error: None,
        detached: Vec::new(),
        follow_task_at: None,
    }
}

/// The claim waits until `until` (whatever else it says).
fn assert_wait(claim: Claim, until: Ms) {
    match claim {
        Claim::Wait { until: u, .. } => assert_eq!(u, until, "{claim:?}"),
        other => panic!("expected a wait until {until}, got {other:?}"),
    }
}

pub async fn all_records(s: &dyn Store) -> Vec<LogRecord> {
    s.log(LogQuery {
        limit: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Takes (or renews) lane "p" for owner "A"; returns its fencing token.
pub async fn lease(s: &dyn Store) -> i64 {
    s.acquire_lane("p", "A", 60_000)
        .await
        .unwrap()
        .expect("lane p is free for A")
        .token
}

pub async fn rules_are_unique_and_config_rules_are_read_only(s: &dyn Store) {
    let v0 = s.rules_version().await.unwrap();
    s.add_rule(spec("a"), 1).await.unwrap();
    let dup = s.add_rule(spec("a"), 2).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
    assert!(dup.to_string().contains("delete it first"));
    assert!(s.rules_version().await.unwrap() > v0);

    s.set_rule_enabled("a", false, 3).await.unwrap();
    let rules = s.rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert!(!rules[0].spec.enabled);
    assert_eq!(rules[0].origin, RuleOrigin::Cli);

    let change = s
        .sync_config_rules(vec![spec("c1"), spec("c2")], 4)
        .await
        .unwrap();
    assert_eq!(change.added, vec!["c1", "c2"]);
    assert!(change.changed.is_empty() && change.removed.is_empty());
    assert_eq!(s.rules().await.unwrap().len(), 3);
    let conflict = s.sync_config_rules(vec![spec("a")], 5).await.unwrap_err();
    assert!(conflict.to_string().contains("rule delete a"), "{conflict}");
    // Re-syncing replaces the config set.
    let v1 = s.rules_version().await.unwrap();
    let change = s.sync_config_rules(vec![spec("c2")], 6).await.unwrap();
    assert_eq!(change.removed, vec!["c1"], "{change}");
    assert!(change.added.is_empty() && change.changed.is_empty());
    assert!(s.rules_version().await.unwrap() > v1);
    let names: Vec<String> = s
        .rules()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.spec.name)
        .collect();
    assert_eq!(names, vec!["a", "c2"]);
    // Unchanged config does not bump the version (no needless reloads).
    let v2 = s.rules_version().await.unwrap();
    let change = s.sync_config_rules(vec![spec("c2")], 7).await.unwrap();
    assert!(change.is_empty(), "{change}");
    assert_eq!(s.rules_version().await.unwrap(), v2);
    // A different definition under the same name is a change (a node with an older file).
    let mut older = spec("c2");
    older.prefix = Some("old/".into());
    let change = s.sync_config_rules(vec![older], 8).await.unwrap();
    assert_eq!(change.changed, vec!["c2"], "{change}");
    assert!(s.rules_version().await.unwrap() > v2);
    s.sync_config_rules(vec![spec("c2")], 8).await.unwrap();

    let ro = s.delete_rule("c2").await.unwrap_err();
    assert!(ro.to_string().contains("config file"), "{ro}");
    let ro = s.set_rule_enabled("c2", false, 8).await.unwrap_err();
    assert!(ro.to_string().contains("config file"), "{ro}");
    let missing = s.delete_rule("zzz").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)));
    s.delete_rule("a").await.unwrap();
    assert_eq!(s.rules().await.unwrap().len(), 1);
}

pub async fn pending_targets_merge_per_lane_kind_and_url(s: &dyn Store) {
    let r = s
        .ingest(
            vec![
                record("r", &[("p", "https://c/a"), ("p", "https://c/b")]),
                record("r", &[("p", "https://c/a")]),
                record("r", &[("q", "https://c/a")]),
            ],
            0,
        )
        .await
        .unwrap();
    assert_eq!(r.purge_ids.len(), 3);
    assert_eq!((r.jobs_new, r.jobs_merged), (3, 1));
    let depths = s.depths().await.unwrap();
    let p = depths.iter().find(|d| d.lane == "p").unwrap();
    assert_eq!(p.pending, 2);
    assert_eq!(p.oldest_pending_at, Some(0));
}

/// Records handed over one by one; fails instead of handing over record `fail_at`.
struct Made {
    records: Vec<IngestRecord>,
    fail_at: Option<usize>,
}

impl RecordSource for Made {
    fn records(&self) -> usize {
        self.records.len()
    }

    fn each(&self, f: &mut dyn FnMut(IngestRecord) -> StoreResult<()>) -> StoreResult<()> {
        for (i, r) in self.records.iter().enumerate() {
            if self.fail_at == Some(i) {
                return Err(StoreError::Unavailable("the source failed".into()));
            }
            f(r.clone())?;
        }
        Ok(())
    }
}

pub async fn records_made_while_written_commit_as_a_list_does_all_or_nothing(s: &dyn Store) {
    let records = vec![
        record("r", &[("p", "https://c/a"), ("p", "https://c/b")]),
        record("r", &[("p", "https://c/a")]),
        record("r", &[("q", "https://c/a")]),
        record("unmatched", &[]),
    ];
    // A source failing part-way stores nothing of what it made before.
    let failing = Made {
        records: records.clone(),
        fail_at: Some(2),
    };
    let err = s.ingest_from(Arc::new(failing), 0).await.unwrap_err();
    assert!(err.to_string().contains("the source failed"), "{err}");
    assert!(all_records(s).await.is_empty());
    assert!(s.depths().await.unwrap().iter().all(|d| d.pending == 0));
    // Made one by one: the same records, jobs and merges as the list gives.
    let made = Made {
        records: records.clone(),
        fail_at: None,
    };
    let r = s.ingest_from(Arc::new(made), 0).await.unwrap();
    assert_eq!(r.purge_ids.len(), 4);
    assert_eq!((r.jobs_new, r.jobs_merged), (3, 1));
    let listed = s.ingest(records, 0).await.unwrap();
    assert_eq!((listed.jobs_new, listed.jobs_merged), (0, 4));
    let mut log = all_records(s).await;
    log.sort_by_key(|l| l.id);
    let fields = |l: &LogRecord| {
        (
            l.rule.clone(),
            l.targets.clone(),
            l.status,
            l.key.clone(),
            l.format.clone(),
        )
    };
    let (made, list): (Vec<_>, Vec<_>) = log.iter().partition(|l| r.purge_ids.contains(&l.id));
    assert_eq!(
        made.iter().map(|l| fields(l)).collect::<Vec<_>>(),
        list.iter().map(|l| fields(l)).collect::<Vec<_>>()
    );
    assert_eq!(made[3].status, Status::Skipped);
}

pub async fn a_target_never_merges_into_a_sent_batch(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let first = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(first.targets, vec!["https://c/a"]);
    // The same URL changes again while the first request is in flight.
    let r = s
        .ingest(vec![record("r", &[("p", "https://c/a")])], 150)
        .await
        .unwrap();
    assert_eq!((r.jobs_new, r.jobs_merged), (1, 0));
    s.finish(finish(tok, &first, 200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let second = claim_batch(s, claim_req(tok, 250)).await;
    assert_eq!(second.targets, vec!["https://c/a"]);
    assert_ne!(second.id, first.id);
}

pub async fn batches_wait_for_linger_unless_full(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/1")])], 1000)
        .await
        .unwrap();
    assert_wait(s.claim(claim_req(tok, 1050)).await.unwrap(), 1100);
    let mut req = claim_req(tok, 1050);
    req.kinds[0].1.max_batch = 3;
    let more: Vec<_> = (2..=5)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(more, 1060).await.unwrap();
    // Five pending, batches of three: a full batch goes at once, oldest first.
    let full = claim_batch(
        s,
        ClaimRequest {
            now: 1060,
            ..req.clone()
        },
    )
    .await;
    assert_eq!(
        full.targets,
        vec!["https://c/1", "https://c/2", "https://c/3"]
    );
    assert_eq!(full.created_at, 1000);
    assert_wait(
        s.claim(ClaimRequest {
            now: 1061,
            ..req.clone()
        })
        .await
        .unwrap(),
        1160,
    );
    let rest = claim_batch(
        s,
        ClaimRequest {
            now: 1160,
            ..req.clone()
        },
    )
    .await;
    assert_eq!(rest.targets, vec!["https://c/4", "https://c/5"]);
    assert_eq!(
        s.claim(ClaimRequest { now: 1161, ..req }).await.unwrap(),
        Claim::Idle
    );
}

pub async fn success_is_recorded_with_provider_ids(s: &dyn Store) {
    let tok = lease(s).await;
    let r = s
        .ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let recs = all_records(s).await;
    assert_eq!(recs[0].status, Status::Queued);
    let b = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(all_records(s).await[0].status, Status::Sent);
    s.finish(finish(tok, &b, 120, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let rec = &all_records(s).await[0];
    assert_eq!(rec.id, r.purge_ids[0]);
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(rec.attempts, 1);
    assert_eq!(
        rec.request_id.as_deref(),
        Some(format!("req-{}-1", b.id).as_str())
    );
    assert_eq!(
        rec.task_id.as_deref(),
        Some(format!("task-{}", b.id).as_str())
    );
    assert_eq!(rec.error, None);
    let reqs = s.requests(None, None, 10).await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].outcome, "succeeded");
    assert_eq!(reqs[0].targets, 1);
}

pub async fn a_purge_without_a_task_completes_when_answered(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(all_records(s).await[0].completed_at, None);
    s.finish(finish(tok, &b, 120, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert_eq!(all_records(s).await[0].completed_at, Some(120));
    assert!(s.tasks_due("p", i64::MAX, 10).await.unwrap().is_empty());
}

pub async fn followed_tasks_complete_their_records(s: &dyn Store) {
    let tok = lease(s).await;
    let q_tok = s
        .acquire_lane("q", "A", 60_000)
        .await
        .unwrap()
        .expect("lane q is free")
        .token;
    // Record 1 has a job on lane p only; record 2 on p and on q (a provider without tasks).
    s.ingest(
        vec![
            record("r", &[("p", "https://c/a")]),
            record("r", &[("p", "https://c/b"), ("q", "https://c/b")]),
        ],
        0,
    )
    .await
    .unwrap();
    let b = claim_batch(s, claim_req(tok, 200)).await;
    assert_eq!(b.targets.len(), 2);
    let mut f = finish(tok, &b, 300, FinishOutcome::Succeeded);
    f.follow_task_at = Some(5_000);
    s.finish(f).await.unwrap();
    let qb = claim_batch(
        s,
        ClaimRequest {
            lane: "q".into(),
            ..claim_req(q_tok, 200)
        },
    )
    .await;
    s.finish(finish(q_tok, &qb, 400, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    assert!(
        recs.iter().all(|r| r.status == Status::Succeeded),
        "{recs:?}"
    );
    assert!(recs.iter().all(|r| r.completed_at.is_none()), "{recs:?}");

    // Due at its first check time, not before; only on its own lane.
    assert!(s.tasks_due("p", 4_999, 10).await.unwrap().is_empty());
    assert!(s.tasks_due("q", i64::MAX, 10).await.unwrap().is_empty());
    let due = s.tasks_due("p", 5_000, 10).await.unwrap();
    let task_id = format!("task-{}", b.id);
    assert_eq!(
        due,
        vec![FollowedTask {
            batch_id: b.id,
            task_id: task_id.clone(),
            sent_at: 300,
            checks: 0
        }]
    );
    let cursor = s.log_cursor().await.unwrap();
    // Still running: nothing a record shows changes; asked again later.
    let running = s
        .note_tasks(
            vec![TaskUpdate {
                batch_id: b.id,
                progress: TaskProgress::Running {
                    next_check_at: 9_000,
                },
            }],
            5_000,
        )
        .await
        .unwrap();
    assert!(running.records.is_empty());
    assert!(s.tasks_due("p", 8_999, 10).await.unwrap().is_empty());
    assert_eq!(s.tasks_due("p", 9_000, 10).await.unwrap()[0].checks, 1);

    let done = s
        .note_tasks(
            vec![TaskUpdate {
                batch_id: b.id,
                progress: TaskProgress::Completed { at: 9_100 },
            }],
            9_100,
        )
        .await
        .unwrap();
    assert_eq!(done.records.len(), 2, "{done:?}");
    let recs = all_records(s).await;
    assert!(
        recs.iter().all(|r| r.completed_at == Some(9_100)),
        "{recs:?}"
    );
    assert!(s.tasks_due("p", i64::MAX, 10).await.unwrap().is_empty());
    // A follower of the log sees the completion as a change.
    let changed = s
        .log(LogQuery {
            after: Some((cursor, i64::MAX)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.len(), 2, "{changed:?}");
    // A late second answer for the same task changes nothing.
    let again = s
        .note_tasks(
            vec![TaskUpdate {
                batch_id: b.id,
                progress: TaskProgress::Failed {
                    error: "late".into(),
                },
            }],
            9_500,
        )
        .await
        .unwrap();
    assert!(again.records.is_empty());
    assert!(all_records(s).await.iter().all(|r| r.error.is_none()));
}

pub async fn a_followed_task_outlives_retention_until_settled(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 200)).await;
    let mut f = finish(tok, &b, 300, FinishOutcome::Succeeded);
    f.follow_task_at = Some(5_000);
    s.finish(f).await.unwrap();
    // Retention would take it: still followed, so it stays (and its record unconfirmed).
    prune_all(s, 1_000_000).await;
    assert_eq!(s.tasks_due("p", i64::MAX, 10).await.unwrap().len(), 1);
    assert_eq!(all_records(s).await.len(), 1);
    s.note_tasks(
        vec![TaskUpdate {
            batch_id: b.id,
            progress: TaskProgress::Completed { at: 6_000 },
        }],
        6_000,
    )
    .await
    .unwrap();
    assert_eq!(all_records(s).await[0].completed_at, Some(6_000));
    prune_all(s, 1_000_000).await;
    assert!(all_records(s).await.is_empty(), "settled: pruned as usual");
}

pub async fn a_failed_or_lost_task_leaves_its_record_unconfirmed_with_the_reason(s: &dyn Store) {
    let tok = lease(s).await;
    let mut batches = Vec::new();
    for (i, url) in ["https://c/a", "https://c/b"].iter().enumerate() {
        s.ingest(vec![record("r", &[("p", url)])], i as i64 * 1_000)
            .await
            .unwrap();
        let b = claim_batch(s, claim_req(tok, i as i64 * 1_000 + 200)).await;
        let mut f = finish(tok, &b, i as i64 * 1_000 + 300, FinishOutcome::Succeeded);
        f.follow_task_at = Some(5_000);
        s.finish(f).await.unwrap();
        batches.push(b.id);
    }
    let receipt = s
        .note_tasks(
            vec![
                TaskUpdate {
                    batch_id: batches[0],
                    progress: TaskProgress::Failed {
                        error: "the provider reports purge task t failed: https://c/a".into(),
                    },
                },
                TaskUpdate {
                    batch_id: batches[1],
                    progress: TaskProgress::Abandoned {
                        reason: "completion not confirmed: task t still running".into(),
                    },
                },
            ],
            6_000,
        )
        .await
        .unwrap();
    assert_eq!(receipt.records.len(), 2);
    let recs = all_records(s).await;
    assert!(recs.iter().all(|r| r.status == Status::Succeeded));
    assert!(recs.iter().all(|r| r.completed_at.is_none()));
    let errors: Vec<&str> = recs.iter().filter_map(|r| r.error.as_deref()).collect();
    assert_eq!(errors.len(), 2, "{recs:?}");
    assert!(errors.iter().any(|e| e.contains("failed: https://c/a")));
    assert!(errors.iter().any(|e| e.contains("still running")));
    assert!(s.tasks_due("p", i64::MAX, 10).await.unwrap().is_empty());
}

pub async fn retry_waits_until_its_time_and_counts_attempts(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(b.attempt, 1);
    let mut f = finish(tok, &b, 110, FinishOutcome::RetryAt(5000));
    f.error = Some("InternalError: try later".into());
    s.finish(f).await.unwrap();
    let rec = &all_records(s).await[0];
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(rec.error.as_deref(), Some("InternalError: try later"));
    assert_wait(s.claim(claim_req(tok, 4999)).await.unwrap(), 5000);
    let again = claim_batch(s, claim_req(tok, 5000)).await;
    assert_eq!((again.id, again.attempt), (b.id, 2));
    assert_eq!(again.created_at, 0);
    s.finish(finish(tok, &again, 5100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let rec = &all_records(s).await[0];
    assert_eq!((rec.status, rec.attempts), (Status::Succeeded, 2));
    assert_eq!(rec.error, None);
    assert_eq!(s.requests(None, None, 10).await.unwrap().len(), 2);
}

pub async fn held_batches_are_released_when_the_provider_is_back(s: &dyn Store) {
    let tok = lease(s).await;
    let recs: Vec<_> = (0..3)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(recs, 0).await.unwrap();
    let mut one = claim_req(tok, 100);
    for k in &mut one.kinds {
        k.1.max_batch = 1;
    }
    let a = claim_batch(s, one.clone()).await;
    let b = claim_batch(s, one.clone()).await;
    let c = claim_batch(s, one.clone()).await;
    // a backs off, b is held while the provider is down, c waits for quota.
    s.finish(finish(tok, &a, 110, FinishOutcome::RetryAt(90_000)))
        .await
        .unwrap();
    s.finish(finish(tok, &b, 110, FinishOutcome::Held(5_000)))
        .await
        .unwrap();
    s.finish(finish(tok, &c, 110, FinishOutcome::WaitUntil(DAY_MS)))
        .await
        .unwrap();
    let mut at = one.clone();
    at.now = 200;
    assert_wait(s.claim(at.clone()).await.unwrap(), 5_000);
    // The held batch did not spend an attempt.
    let b_rec = all_records(s)
        .await
        .into_iter()
        .find(|r| r.targets == b.targets)
        .unwrap();
    assert_eq!((b_rec.status, b_rec.attempts), (Status::Failed, 0));
    assert_eq!(s.release_held("p", 200).await.unwrap(), 2);
    assert_eq!(s.release_held("nope", 200).await.unwrap(), 0);
    let first = claim_batch(s, at.clone()).await;
    let second = claim_batch(s, at.clone()).await;
    let mut got = vec![first.id, second.id];
    got.sort();
    assert_eq!(got, vec![a.id, b.id]);
    assert_eq!(second.attempt.max(first.attempt), 2);
    // The quota wait is untouched.
    assert_wait(s.claim(at).await.unwrap(), DAY_MS);
}

pub async fn targets_that_failed_alone_leave_the_batch_with_their_own_outcome(s: &dyn Store) {
    let tok = lease(s).await;
    let recs: Vec<_> = (0..5)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(recs, 0).await.unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(b.targets.len(), 5);
    let mut f = finish(tok, &b, 110, FinishOutcome::Succeeded);
    f.detached = vec![
        Detached {
            indices: vec![1],
            outcome: FinishOutcome::Dead,
            error: "https://c/1: not in the account".into(),
        },
        Detached {
            indices: vec![4, 3, 3],
            outcome: FinishOutcome::RetryAt(5000),
            error: "timed out".into(),
        },
    ];
    let receipt = s.finish(f).await.unwrap();
    assert_eq!(receipt.records.len(), 5, "every record changed");
    let by_url = |recs: &[LogRecord], u: &str| {
        recs.iter()
            .find(|r| r.targets == vec![u.to_owned()])
            .cloned()
            .unwrap()
    };
    let recs = all_records(s).await;
    for u in ["https://c/0", "https://c/2"] {
        assert_eq!(by_url(&recs, u).status, Status::Succeeded, "{u}");
    }
    let dead = by_url(&recs, "https://c/1");
    assert_eq!(dead.status, Status::Dead);
    assert_eq!(
        dead.error.as_deref(),
        Some("https://c/1: not in the account")
    );
    for u in ["https://c/3", "https://c/4"] {
        let r = by_url(&recs, u);
        assert_eq!(r.status, Status::Failed, "{u}");
        assert_eq!(r.error.as_deref(), Some("timed out"));
    }
    assert_eq!(s.requests(None, None, 10).await.unwrap().len(), 1);
    // Only the failed ones go again, at their time, as their second attempt.
    assert_wait(s.claim(claim_req(tok, 4999)).await.unwrap(), 5000);
    let again = claim_batch(s, claim_req(tok, 5000)).await;
    assert_eq!(again.targets, vec!["https://c/3", "https://c/4"]);
    assert_eq!(again.attempt, 2);
    s.finish(finish(tok, &again, 5100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    assert_eq!(by_url(&recs, "https://c/4").status, Status::Succeeded);
    // A group that would take every target is not detached: the answer applies to all.
    s.ingest(vec![record("r", &[("p", "https://c/solo")])], 6000)
        .await
        .unwrap();
    let solo = claim_batch(s, claim_req(tok, 6200)).await;
    let mut f = finish(tok, &solo, 6300, FinishOutcome::Succeeded);
    f.detached = vec![Detached {
        indices: vec![0],
        outcome: FinishOutcome::Dead,
        error: "x".into(),
    }];
    s.finish(f).await.unwrap();
    let recs = all_records(s).await;
    assert_eq!(by_url(&recs, "https://c/solo").status, Status::Succeeded);
}

pub async fn split_halves_a_batch_and_a_single_target_dies(s: &dyn Store) {
    let tok = lease(s).await;
    let recs: Vec<_> = (0..5)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(recs, 0).await.unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(b.targets.len(), 5);
    s.finish(finish(tok, &b, 110, FinishOutcome::Split))
        .await
        .unwrap();
    let first = claim_batch(s, claim_req(tok, 111)).await;
    let second = claim_batch(s, claim_req(tok, 112)).await;
    assert_eq!(first.targets.len() + second.targets.len(), 5);
    assert_eq!(first.targets.len(), 3);
    let mut all: Vec<String> = first
        .targets
        .iter()
        .chain(&second.targets)
        .cloned()
        .collect();
    all.sort();
    assert_eq!(
        all,
        (0..5).map(|i| format!("https://c/{i}")).collect::<Vec<_>>()
    );

    s.finish(finish(tok, &first, 120, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // Split down to one target that the provider still refuses: dead, with the reason.
    s.finish(finish(tok, &second, 120, FinishOutcome::Split))
        .await
        .unwrap();
    let one = claim_batch(s, claim_req(tok, 121)).await;
    let two = claim_batch(s, claim_req(tok, 122)).await;
    s.finish(finish(tok, &one, 130, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let mut f = finish(tok, &two, 130, FinishOutcome::Split);
    f.error = Some("LimitExceeded.CdnPurgeUrlExceedBatchLimit".into());
    s.finish(f).await.unwrap();
    let dead: Vec<LogRecord> = all_records(s)
        .await
        .into_iter()
        .filter(|r| r.status == Status::Dead)
        .collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]
        .error
        .as_deref()
        .unwrap()
        .contains("even a single target"));
}

pub async fn daily_quota_caps_batches_until_reset(s: &dyn Store) {
    let tok = lease(s).await;
    let recs: Vec<_> = (0..5)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(recs, 0).await.unwrap();
    let mut req = claim_req(tok, 1000);
    req.kinds[0].1.daily_quota = Some(3);
    let b = claim_batch(s, req.clone()).await;
    assert_eq!(b.targets.len(), 3);
    assert_eq!(s.quota_used("p", TargetKind::Url, 0).await.unwrap(), 3);
    assert_wait(
        s.claim(ClaimRequest {
            now: 2000,
            ..req.clone()
        })
        .await
        .unwrap(),
        DAY_MS,
    );
    // The provider says the quota is spent after all: the batch waits for the reset and its
    // reservation is returned.
    s.finish(finish(tok, &b, 2000, FinishOutcome::WaitUntil(DAY_MS)))
        .await
        .unwrap();
    assert_eq!(s.quota_used("p", TargetKind::Url, 0).await.unwrap(), 0);
    let rec = &all_records(s).await[0];
    assert_eq!(rec.status, Status::Queued);

    lease(s).await;
    let tomorrow = ClaimRequest {
        now: DAY_MS,
        quota_day: 1,
        quota_reset_at: 2 * DAY_MS,
        ..req
    };
    let again = claim_batch(s, tomorrow.clone()).await;
    assert_eq!(again.id, b.id);
    assert_eq!(
        again.attempt, 1,
        "waiting for quota is not a failed attempt"
    );
    // Today's three are spent by the resent batch; the other two wait for the next reset.
    assert_wait(
        s.claim(ClaimRequest {
            now: DAY_MS + 1,
            ..tomorrow
        })
        .await
        .unwrap(),
        2 * DAY_MS,
    );
}

pub async fn a_batch_resent_on_a_later_day_counts_on_that_day(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(
        vec![record("r", &[("p", "https://c/a"), ("p", "https://c/b")])],
        0,
    )
    .await
    .unwrap();
    let mut req = claim_req(tok, 1000);
    req.kinds[0].1.daily_quota = Some(10);
    let b = claim_batch(s, req.clone()).await;
    assert_eq!(s.quota_used("p", TargetKind::Url, 0).await.unwrap(), 2);
    s.finish(finish(tok, &b, 2000, FinishOutcome::RetryAt(DAY_MS + 5)))
        .await
        .unwrap();
    lease(s).await;
    let again = claim_batch(
        s,
        ClaimRequest {
            now: DAY_MS + 5,
            quota_day: 1,
            quota_reset_at: 2 * DAY_MS,
            ..req
        },
    )
    .await;
    assert_eq!(again.id, b.id);
    assert_eq!(s.quota_used("p", TargetKind::Url, 1).await.unwrap(), 2);
    assert_eq!(s.quota_used("p", TargetKind::Url, 0).await.unwrap(), 0);
}

pub async fn dead_letters_are_requeued_by_retry(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    s.ingest(vec![record("other", &[("p", "https://c/b")])], 105)
        .await
        .unwrap();
    let mut f = finish(tok, &b, 110, FinishOutcome::Dead);
    f.error = Some("AuthFailure.SecretIdNotFound".into());
    s.finish(f).await.unwrap();
    let rec = all_records(s)
        .await
        .into_iter()
        .find(|r| r.rule.as_deref() == Some("r"))
        .unwrap();
    assert_eq!(rec.status, Status::Dead);
    assert_eq!(rec.error.as_deref(), Some("AuthFailure.SecretIdNotFound"));
    assert_eq!(s.depths().await.unwrap()[0].dead_batches, 1);

    assert_eq!(
        s.retry_dead(
            RetryFilter {
                lanes: None,
                rule: Some("other".into())
            },
            200
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        s.retry_dead(
            RetryFilter {
                lanes: Some(vec!["nope".into()]),
                rule: None
            },
            200
        )
        .await
        .unwrap(),
        0,
        "another lane's dead letters stay"
    );
    assert_eq!(
        s.retry_dead(
            RetryFilter {
                lanes: Some(vec!["p".into()]),
                rule: Some("r".into())
            },
            200
        )
        .await
        .unwrap(),
        1
    );
    let rec = all_records(s)
        .await
        .into_iter()
        .find(|r| r.rule.as_deref() == Some("r"))
        .unwrap();
    assert_eq!(rec.status, Status::Queued);
    let again = claim_batch(s, claim_req(tok, 200)).await;
    assert_eq!((again.id, again.attempt, again.created_at), (b.id, 1, 200));
    assert!(
        !b.requeued && again.requeued,
        "the sender is told it was re-queued"
    );
}

pub async fn a_lane_lease_excludes_others_and_reclaims_in_flight_work(s: &dyn Store) {
    let a = s.acquire_lane("p", "A", 300).await.unwrap().expect("free");
    let renewed = s
        .acquire_lane("p", "A", 300)
        .await
        .unwrap()
        .expect("renewal");
    assert_eq!(renewed.token, a.token, "renewing keeps the token");
    assert!(s.acquire_lane("p", "B", 300).await.unwrap().is_none());
    assert!(
        s.acquire_lane("q", "B", 300).await.unwrap().is_some(),
        "other lanes are free"
    );
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(a.token, 600)).await;
    // A dies mid-send. Once its lease runs out on the store's clock, B takes the lane over
    // with a higher token and resends.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let bl = s
        .acquire_lane("p", "B", 60_000)
        .await
        .unwrap()
        .expect("the lapsed lease is taken over");
    assert!(bl.token > a.token, "{bl:?} after {a:?}");
    let rec = &all_records(s).await[0];
    assert_eq!(rec.status, Status::Failed);
    assert!(rec.error.as_deref().unwrap().contains("resending"));
    let mut req = claim_req(bl.token, 1502);
    req.owner = "B".into();
    let resent = claim_batch(s, req).await;
    assert_eq!((resent.id, resent.attempt), (b.id, 2));
    assert_eq!(all_records(s).await[0].status, Status::Sent);
    // A's late answer carries the old token: recorded as a request, changes nothing.
    let late = s
        .finish(finish(a.token, &b, 1600, FinishOutcome::Dead))
        .await
        .unwrap();
    assert!(late.records.is_empty());
    assert_eq!(all_records(s).await[0].status, Status::Sent);
    assert_eq!(s.requests(None, None, 10).await.unwrap().len(), 1);
    // Nor can A claim any more.
    let err = s.claim(claim_req(a.token, 1601)).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    s.finish(finish(bl.token, &resent, 1650, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert_eq!(all_records(s).await[0].status, Status::Succeeded);
}

pub async fn claiming_without_the_lease_is_refused(s: &dyn Store) {
    let err = s.claim(claim_req(1, 0)).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert!(err.to_string().contains("not held"), "{err}");
}

pub async fn a_released_lane_is_taken_at_once_with_a_higher_token(s: &dyn Store) {
    let a = s.acquire_lane("p", "A", 60_000).await.unwrap().unwrap();
    s.release_lane("p", "B").await.unwrap(); // not B's to release
    assert!(s.acquire_lane("p", "B", 60_000).await.unwrap().is_none());
    s.release_lane("p", "A").await.unwrap();
    let b = s
        .acquire_lane("p", "B", 60_000)
        .await
        .unwrap()
        .expect("a released lane is free at once");
    assert!(b.token > a.token);
    let err = s.claim(claim_req(a.token, 0)).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
}

pub async fn a_lease_holds_across_handles_and_fences_late_answers(backend: &Backend) {
    let (one, two) = ((backend.open)().await, (backend.open)().await);
    let a = one.acquire_lane("p", "A", 300).await.unwrap().unwrap();
    assert!(
        two.acquire_lane("p", "B", 300).await.unwrap().is_none(),
        "a lease taken through one handle excludes the other"
    );
    one.ingest(vec![record("r", &[("p", "https://c/x")])], 0)
        .await
        .unwrap();
    let sent = claim_batch(one.as_ref(), claim_req(a.token, 200)).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let b = two.acquire_lane("p", "B", 60_000).await.unwrap().unwrap();
    let mut req = claim_req(b.token, 300);
    req.owner = "B".into();
    let resent = claim_batch(two.as_ref(), req).await;
    assert_eq!(resent.id, sent.id);
    one.finish(finish(a.token, &sent, 400, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let rec = &all_records(two.as_ref()).await[0];
    assert_eq!(rec.status, Status::Sent, "the late answer was fenced off");
}

/// Several processes commit at once, transactions of different sizes (so of different
/// durations): a follower reading "after my position" sees every record. A position given
/// before commit (a plain sequence) lets a slow transaction commit below a position the
/// follower has already passed, and the follower misses its records.
pub async fn a_follower_misses_no_change_while_several_writers_commit(backend: &Backend) {
    let follower = (backend.open)().await;
    let start = follower.log_cursor().await.unwrap();
    let mut writers = Vec::new();
    for w in 0..5 {
        let store = (backend.open)().await;
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40 {
                let recs = (0..(i % 4 * 10 + 1))
                    .map(|j| record("r", &[("p", &format!("https://c/{w}/{i}/{j}"))]))
                    .collect();
                ids.extend(store.ingest(recs, i).await.unwrap().purge_ids);
            }
            ids
        }));
    }
    let mut cursor = (start, i64::MAX);
    let mut seen = std::collections::BTreeSet::new();
    let mut last = cursor;
    let mut follow = |page: Vec<LogRecord>, cursor: &mut (i64, i64)| {
        for r in page {
            assert!(
                (r.seq, r.id) > last,
                "positions only grow: {:?} after {last:?}",
                (r.seq, r.id)
            );
            last = (r.seq, r.id);
            *cursor = last;
            seen.insert(r.id);
        }
    };
    while !writers.iter().all(|w| w.is_finished()) {
        let page = follower
            .log(LogQuery {
                after: Some(cursor),
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        follow(page, &mut cursor);
        tokio::task::yield_now().await;
    }
    let mut written = std::collections::BTreeSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    loop {
        let page = follower
            .log(LogQuery {
                after: Some(cursor),
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        follow(page, &mut cursor);
    }
    assert_eq!(written.len(), 5 * 10 * (1 + 11 + 21 + 31));
    assert_eq!(
        seen, written,
        "the follower saw every record exactly as committed"
    );
}

pub async fn finishing_reports_the_records_it_changed(s: &dyn Store) {
    let tok = lease(s).await;
    let r = s
        .ingest(
            vec![
                record("r", &[("p", "https://c/a")]),
                record("r", &[("p", "https://c/a")]),
            ],
            0,
        )
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    let receipt = s
        .finish(finish(tok, &b, 110, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let mut changed: Vec<(i64, Status)> =
        receipt.records.iter().map(|c| (c.id, c.status)).collect();
    changed.sort_unstable();
    assert_eq!(
        changed,
        vec![
            (r.purge_ids[0], Status::Succeeded),
            (r.purge_ids[1], Status::Succeeded)
        ],
        "both merged events are told"
    );
}

pub async fn log_filters_and_follow_order(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("a", &[("p", "https://c/1")])], 1000)
        .await
        .unwrap();
    let mut skipped = record("b", &[]);
    skipped.note = Some("folder marker: nothing to purge".into());
    s.ingest(vec![skipped], 2000).await.unwrap();
    let by_rule = s
        .log(LogQuery {
            rule: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_rule.len(), 1);
    let by_status = s
        .log(LogQuery {
            status: Some(Status::Skipped),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_status[0].rule.as_deref(), Some("b"));
    assert_eq!(
        by_status[0].error.as_deref(),
        Some("folder marker: nothing to purge")
    );
    let since = s
        .log(LogQuery {
            since: Some(1500),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    let newest_last = s
        .log(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newest_last[0].rule.as_deref(), Some("a"));
    let limited = s
        .log(LogQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        limited[0].rule.as_deref(),
        Some("b"),
        "limit keeps the newest"
    );

    let cursor = newest_last.iter().map(|r| r.seq).max().unwrap();
    assert_eq!(s.log_cursor().await.unwrap(), cursor);
    let b = claim_batch(s, claim_req(tok, 3000)).await;
    s.finish(finish(tok, &b, 3100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let changed = s
        .log(LogQuery {
            after: Some((cursor, i64::MAX)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status, Status::Succeeded);
    let ids = s
        .log(LogQuery {
            ids: Some(vec![changed[0].id]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
}

pub async fn follow_pages_through_records_that_share_a_change_number(s: &dyn Store) {
    let start = s.log_cursor().await.unwrap();
    let five: Vec<_> = (0..5)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    s.ingest(five, 0).await.unwrap(); // one transaction: one seq for all five
    let mut cursor = (start, i64::MAX);
    let mut seen = Vec::new();
    loop {
        let page = s
            .log(LogQuery {
                after: Some(cursor),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        for r in &page {
            cursor = (r.seq, r.id);
            seen.push(r.id);
        }
        if page.len() < 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        5,
        "every record of the transaction is paged through: {seen:?}"
    );
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(seen, sorted);
}

pub async fn paging_back_in_time_sees_every_record_and_request_once(s: &dyn Store) {
    let seven: Vec<_> = (0..7)
        .map(|i| record("r", &[("p", &format!("https://c/{i}"))]))
        .collect();
    let ids = s.ingest(seven, 0).await.unwrap().purge_ids;
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let page = s
            .log(LogQuery {
                before,
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        // Each page is the newest below the cursor, oldest first like any query.
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "{page:?}");
        seen.extend(page.iter().rev().map(|r| r.id));
        match page.first() {
            Some(oldest) if page.len() == 3 => before = Some(oldest.id),
            _ => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "no record lost or repeated");

    // Three attempts of one batch: three requests, paged two at a time.
    let tok = lease(s).await;
    let mut at = 100;
    for _ in 0..3 {
        let b = claim_batch(s, claim_req(tok, at)).await;
        s.finish(finish(tok, &b, at + 10, FinishOutcome::RetryAt(at + 100)))
            .await
            .unwrap();
        at += 100;
    }
    let all = s.requests(None, None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    let newest = s.requests(None, None, 2).await.unwrap();
    assert_eq!(newest, all[1..].to_vec(), "the newest two, oldest first");
    let older = s.requests(None, Some(newest[0].id), 2).await.unwrap();
    assert_eq!(older, all[..1].to_vec());
}

pub async fn record_status_is_the_worst_of_its_targets(s: &dyn Store) {
    let tok = lease(s).await;
    let mut two = record("r", &[("p", "https://c/a")]);
    two.jobs.push(LaneJob {
        lane: "p".into(),
        kind: TargetKind::Dir,
        target: "https://c/dir/".into(),
    });
    s.ingest(vec![two], 0).await.unwrap();
    let urls = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(urls.kind, TargetKind::Url);
    let dirs = claim_batch(s, claim_req(tok, 100)).await;
    assert_eq!(dirs.kind, TargetKind::Dir);
    s.finish(finish(tok, &urls, 110, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert_eq!(all_records(s).await[0].status, Status::Sent);
    let mut f = finish(tok, &dirs, 110, FinishOutcome::RetryAt(999));
    f.error = Some("node b: connection refused".into());
    s.finish(f).await.unwrap();
    let rec = &all_records(s).await[0];
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(rec.error.as_deref(), Some("node b: connection refused"));
    let ids = rec.task_id.as_deref().unwrap();
    assert!(
        ids.contains(&format!("task-{}", urls.id)) && ids.contains(','),
        "{ids}"
    );
}

pub async fn prune_removes_only_old_finished_work(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![record("old", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    s.finish(finish(tok, &b, 200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    s.ingest(vec![record("pending", &[("p", "https://c/b")])], 300)
        .await
        .unwrap();
    s.ingest(vec![record("skip", &[])], 300).await.unwrap();
    let mut pruned = 0;
    loop {
        let n = s.prune(10_000, 2).await.unwrap();
        if n == 0 {
            break;
        }
        pruned += n;
    }
    assert!(
        pruned >= 5,
        "batch, job, two records and a request: {pruned}"
    );
    let left: Vec<String> = all_records(s)
        .await
        .into_iter()
        .filter_map(|r| r.rule)
        .collect();
    assert_eq!(left, vec!["pending"]);
    assert!(s.requests(None, None, 10).await.unwrap().is_empty());
    assert_eq!(s.depths().await.unwrap()[0].pending, 1);
}

pub async fn since_finds_records_by_arrival_time(s: &dyn Store) {
    for t in 0..50 {
        let recs = (0..(t % 3))
            .map(|i| record("r", &[("p", &format!("https://c/{t}/{i}"))]))
            .chain(std::iter::once(record("skip", &[])))
            .collect();
        s.ingest(recs, t * 10).await.unwrap();
    }
    let since = |t: Ms| {
        s.log(LogQuery {
            since: Some(t),
            limit: 1000,
            ..Default::default()
        })
    };
    let all = since(0).await.unwrap();
    assert_eq!(all.len(), 99);
    for t in [1, 10, 255, 490, 491] {
        let got = since(t).await.unwrap();
        let want = all.iter().filter(|r| r.time >= t).count();
        assert_eq!(got.len(), want, "since {t}");
        assert!(got.iter().all(|r| r.time >= t));
    }
    assert!(since(10_000).await.unwrap().is_empty());
}

/// Deletes everything older than `before` that retention may delete, step by step (as the
/// service does), within a time limit.
pub async fn prune_all(s: &dyn Store, before: Ms) -> u64 {
    let mut total = 0;
    for _ in 0..1000 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.prune(before, 3))
            .await
            .expect("a prune step finishes")
            .unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("pruning never ends");
}

pub async fn since_and_retention_survive_gaps_in_record_ids(s: &dyn Store) {
    // Record 1 is kept (still queued); 2..=9 are old and done; 10 is new.
    s.ingest(vec![record("r", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    for t in 2..10 {
        s.ingest(vec![record("skip", &[])], t * 100).await.unwrap();
    }
    s.ingest(vec![record("new", &[])], 10_000).await.unwrap();
    assert_eq!(prune_all(s, 950).await, 8);
    assert_eq!(
        prune_all(s, 950).await,
        0,
        "nothing more, and no endless search"
    );
    let since = |t: Ms| {
        tokio::time::timeout(
            Duration::from_secs(5),
            s.log(LogQuery {
                since: Some(t),
                limit: 100,
                ..Default::default()
            }),
        )
    };
    let got = since(950).await.expect("a since query finishes").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rule.as_deref(), Some("new"));
    assert_eq!(since(0).await.unwrap().unwrap().len(), 2);
    assert!(since(20_000).await.unwrap().unwrap().is_empty());
}

pub async fn record_times_never_go_back(s: &dyn Store) {
    // Arrival stamps as two processes with a slow write, or a clock step, give them.
    for t in [100, 5000, 200, 300, 6000] {
        s.ingest(vec![record("r", &[])], t).await.unwrap();
    }
    let times: Vec<Ms> = all_records(s).await.iter().map(|r| r.time).collect();
    assert_eq!(times, vec![100, 5000, 5000, 5000, 6000]);
    let since = s
        .log(LogQuery {
            since: Some(1000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 4);
    assert_eq!(
        prune_all(s, 1000).await,
        1,
        "only the record older than the cutoff"
    );
}

pub async fn a_record_whose_other_job_was_pruned_still_completes(s: &dyn Store) {
    let r = s
        .ingest(
            vec![record("r", &[("p", "https://c/a"), ("q", "https://c/b")])],
            0,
        )
        .await
        .unwrap();
    let id = r.purge_ids[0];
    let tp = s
        .acquire_lane("p", "A", 600_000)
        .await
        .unwrap()
        .unwrap()
        .token;
    let tq = s
        .acquire_lane("q", "A", 600_000)
        .await
        .unwrap()
        .unwrap()
        .token;
    let mut q_req = claim_req(tq, 1000);
    q_req.lane = "q".into();
    let bp = claim_batch(s, claim_req(tp, 1000)).await;
    s.finish(finish(tp, &bp, 1001, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let bq = claim_batch(s, q_req.clone()).await;
    s.finish(finish(tq, &bq, 5000, FinishOutcome::Dead))
        .await
        .unwrap();
    // Retention removes p's finished batch (and job); q's dead letter stays, so does the record.
    prune_all(s, 2000).await;
    let status = |recs: Vec<LogRecord>| recs.iter().find(|r| r.id == id).map(|r| r.status);
    assert_eq!(status(all_records(s).await), Some(Status::Dead));
    let requeued = s.retry_dead(RetryFilter::default(), 6000).await.unwrap();
    assert_eq!(requeued, 1);
    let bq = claim_batch(s, ClaimRequest { now: 7000, ..q_req }).await;
    let receipt = s
        .finish(finish(tq, &bq, 7001, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert_eq!(
        receipt.records,
        vec![RecordChange::of(id, Status::Succeeded, Some(7001), None)],
        "the pruned job counts as done, not as pending"
    );
}

pub async fn ids_are_never_given_twice_after_pruning(s: &dyn Store) {
    let tok = lease(s).await;
    let old = s
        .ingest(vec![record("old", &[("p", "https://c/a")])], 0)
        .await
        .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    s.finish(finish(tok, &b, 200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // Everything is old and done: retention removes it all, newest included.
    prune_all(s, 10_000).await;
    assert!(all_records(s).await.is_empty());
    let new = s
        .ingest(vec![record("new", &[("p", "https://c/a")])], 20_000)
        .await
        .unwrap();
    assert!(new.purge_ids[0] > old.purge_ids[0], "{new:?} after {old:?}");
    let b2 = claim_batch(s, claim_req(tok, 20_500)).await;
    assert!(b2.id > b.id, "batch ids are not reused either");
}

/// Several processes ingest while another sends and records answers; a follower applying
/// every change it reads ("after my position") ends with exactly the log's final state.
pub async fn a_follower_misses_no_change_while_writers_of_every_kind_commit(backend: &Backend) {
    let follower = (backend.open)().await;
    let start = follower.log_cursor().await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = (backend.open)().await;
        writers.push(tokio::spawn(async move {
            for i in 0..30 {
                // Transactions of different sizes take different times to commit.
                let recs = (0..(i % 5 * 12 + 1))
                    .map(|j| record("r", &[("p", &format!("https://c/{w}/{i}/{j}"))]))
                    .collect();
                store.ingest(recs, i).await.unwrap();
            }
        }));
    }
    let sender = {
        let store = (backend.open)().await;
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let tok = store
                .acquire_lane("p", "A", 600_000)
                .await
                .unwrap()
                .unwrap()
                .token;
            let mut idle_after_done = 0;
            while idle_after_done < 3 {
                let mut req = claim_req(tok, 1_000_000);
                req.kinds[0].1.max_batch = 50;
                match store.claim(req).await.unwrap() {
                    Claim::Batch(b) => {
                        store
                            .finish(finish(tok, &b, 1_000_001, FinishOutcome::Succeeded))
                            .await
                            .unwrap();
                    }
                    _ if done.load(std::sync::atomic::Ordering::SeqCst) => idle_after_done += 1,
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        })
    };
    let mut cursor = (start, i64::MAX);
    let mut state: std::collections::BTreeMap<i64, Status> = Default::default();
    let mut page_through = |page: Vec<LogRecord>, cursor: &mut (i64, i64)| {
        for r in page {
            assert!((r.seq, r.id) > *cursor || cursor.1 == i64::MAX);
            *cursor = (r.seq, r.id);
            state.insert(r.id, r.status);
        }
    };
    loop {
        let writing = !writers.iter().all(|w| w.is_finished());
        if !writing {
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if !writing && sender.is_finished() {
            break;
        }
        let page = follower
            .log(LogQuery {
                after: Some(cursor),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        page_through(page, &mut cursor);
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    sender.await.unwrap();
    loop {
        let page = follower
            .log(LogQuery {
                after: Some(cursor),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        page_through(page, &mut cursor);
    }
    let truth: std::collections::BTreeMap<i64, Status> = follower
        .log(LogQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(truth.len(), 4 * 6 * (1 + 13 + 25 + 37 + 49));
    assert!(truth.values().all(|s| *s == Status::Succeeded), "{truth:?}");
    assert_eq!(
        state, truth,
        "the follower's copy, built from the changes it read, is the log"
    );
}

/// Processes that queue the same URL at the same moment share one pending job (no
/// duplicate, no error).
pub async fn concurrent_handles_merge_one_url_into_one_job(backend: &Backend) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = (backend.open)().await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let r = store
                    .ingest(
                        vec![
                            record("r", &[("p", "https://c/hot.css")]),
                            record("r", &[("p", "https://c/hot.css"), ("p", "https://c/b")]),
                        ],
                        i,
                    )
                    .await
                    .unwrap();
                ids.extend(r.purge_ids);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), 200);
    let s = (backend.open)().await;
    let depth = s.depths().await.unwrap();
    assert_eq!(depth[0].pending, 2, "{depth:?}");
    let tok = lease(s.as_ref()).await;
    let b = claim_batch(s.as_ref(), claim_req(tok, 10_000)).await;
    assert_eq!(b.targets.len(), 2);
    let receipt = s
        .finish(finish(tok, &b, 10_001, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert_eq!(receipt.records.len(), 200, "every record is told");
}

/// A record to verify: rule "r" through provider "p", the event's ETag and size.
pub fn verified_record(url: &str, etag: Option<&str>, state: Verified) -> IngestRecord {
    let mut r = record("r", &[("p", url)]);
    r.event.etag = etag.map(str::to_owned);
    r.event.size = Some(42);
    r.verify = Some(VerifyStart {
        state,
        note: (state == Verified::Unverifiable).then(|| "no validator in the event".into()),
        round: 0,
    });
    r
}

/// Purges every pending job of lane "p" at `at` (answered, no task to follow).
async fn purge_all(s: &dyn Store, tok: i64, at: Ms) {
    let b = claim_batch(s, claim_req(tok, at)).await;
    s.finish(finish(tok, &b, at, FinishOutcome::Succeeded))
        .await
        .unwrap();
}

pub async fn records_keep_the_events_validators(s: &dyn Store) {
    let plain = record("r", &[("p", "https://c/plain")]);
    s.ingest(
        vec![
            verified_record("https://c/a", Some("\"abc\""), Verified::Pending),
            verified_record("https://c/b", None, Verified::Unverifiable),
            plain,
        ],
        0,
    )
    .await
    .unwrap();
    let recs = all_records(s).await;
    assert_eq!(recs[0].etag.as_deref(), Some("\"abc\""));
    assert_eq!(recs[0].size, Some(42));
    assert_eq!(recs[0].verified, Some(Verified::Pending));
    assert_eq!(recs[0].verify_note, None);
    assert_eq!(recs[1].verified, Some(Verified::Unverifiable));
    assert_eq!(
        recs[1].verify_note.as_deref(),
        Some("no validator in the event")
    );
    assert_eq!((recs[2].verified, recs[2].etag.as_ref()), (None, None));
    // Only the pending one is ever due, once purged.
    let tok = lease(s).await;
    purge_all(s, tok, 100).await;
    let due = s.verifications_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![recs[0].id]
    );
}

pub async fn a_verification_is_due_once_the_purge_completed_and_settled(s: &dyn Store) {
    let tok = lease(s).await;
    let ids = s
        .ingest(
            vec![verified_record(
                "https://c/a",
                Some("\"abc\""),
                Verified::Pending,
            )],
            0,
        )
        .await
        .unwrap()
        .purge_ids;
    assert!(
        s.verifications_due("p", 50, 50, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not purged yet"
    );
    purge_all(s, tok, 120).await;
    assert!(
        s.verifications_due("p", 200, 100, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "completed at 120: not settled by 100"
    );
    assert!(
        s.verifications_due("q", 200, 200, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "another provider's verifier does not take it"
    );
    let due = s.verifications_due("p", 200, 120, 1000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let d = &due[0];
    assert_eq!(d.id, ids[0]);
    assert_eq!(d.provider, "p");
    assert_eq!(d.rule.as_deref(), Some("r"));
    assert_eq!(d.targets, vec!["https://c/a".to_owned()]);
    assert_eq!(d.event.etag.as_deref(), Some("\"abc\""));
    assert_eq!(d.event.size, Some(42));
    assert_eq!(d.event.name, "ObjectCreated:Put");
    assert_eq!(
        (d.status, d.completed_at, d.round),
        (Status::Succeeded, Some(120), 0)
    );
}

pub async fn a_verification_is_taken_for_a_lease_and_recorded_once(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(
        vec![verified_record(
            "https://c/a",
            Some("\"abc\""),
            Verified::Pending,
        )],
        0,
    )
    .await
    .unwrap();
    purge_all(s, tok, 100).await;
    let first = s.verifications_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        s.verifications_due("p", 300, 300, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "taken until 1200"
    );
    // The taker crashed: due again when its lease ends. Undecided ("pending") changes nothing.
    let receipt = s
        .note_verifications(
            vec![VerifyUpdate {
                id: first[0].id,
                verified: Verified::Pending,
                note: None,
            }],
            400,
        )
        .await
        .unwrap();
    assert!(receipt.records.is_empty());
    let again = s
        .verifications_due("p", 1200, 1200, 1000, 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![first[0].id]
    );
    let cursor = s.log_cursor().await.unwrap();
    let receipt = s
        .note_verifications(
            vec![VerifyUpdate {
                id: first[0].id,
                verified: Verified::Fresh,
                note: Some("node a: ETag \"abc\"".into()),
            }],
            1300,
        )
        .await
        .unwrap();
    assert_eq!(receipt.records.len(), 1);
    assert_eq!(receipt.records[0].id, first[0].id);
    assert_eq!(receipt.records[0].status, Status::Succeeded);
    let rec = &all_records(s).await[0];
    assert_eq!(rec.verified, Some(Verified::Fresh));
    assert_eq!(rec.verify_note.as_deref(), Some("node a: ETag \"abc\""));
    assert_eq!(rec.status, Status::Succeeded, "the purge outcome stays");
    assert_eq!(rec.updated, 1300);
    // A follower of the log sees the change.
    let changed = s
        .log(LogQuery {
            after: Some((cursor, i64::MAX)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        changed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rec.id]
    );
    // Recorded once: a late second answer changes nothing, and it is never due again.
    let late = s
        .note_verifications(
            vec![VerifyUpdate {
                id: rec.id,
                verified: Verified::Stale,
                note: Some("late".into()),
            }],
            1400,
        )
        .await
        .unwrap();
    assert!(late.records.is_empty());
    assert_eq!(all_records(s).await[0].verified, Some(Verified::Fresh));
    assert!(s
        .verifications_due("p", i64::MAX / 2, i64::MAX / 2, 1000, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn an_ended_purge_is_due_to_be_reported_unverifiable(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(
        vec![verified_record(
            "https://c/a",
            Some("\"abc\""),
            Verified::Pending,
        )],
        0,
    )
    .await
    .unwrap();
    let b = claim_batch(s, claim_req(tok, 100)).await;
    let mut f = finish(tok, &b, 100, FinishOutcome::Dead);
    f.error = Some("HTTP 403: refused".into());
    s.finish(f).await.unwrap();
    let due = s.verifications_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].status, due[0].completed_at), (Status::Dead, None));
    assert_eq!(due[0].error.as_deref(), Some("HTTP 403: refused"));
}

pub async fn two_handles_never_take_the_same_verification(backend: &Backend) {
    let (one, two) = ((backend.open)().await, (backend.open)().await);
    let tok = lease(one.as_ref()).await;
    let recs: Vec<IngestRecord> = (0..40)
        .map(|i| verified_record(&format!("https://c/{i}"), Some("\"e\""), Verified::Pending))
        .collect();
    one.ingest(recs, 0).await.unwrap();
    purge_all(one.as_ref(), tok, 100).await;
    let take = |s: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let due = s.verifications_due("p", 200, 200, 60_000, 3).await.unwrap();
                if due.is_empty() {
                    return got;
                }
                got.extend(due.into_iter().map(|d| d.id));
            }
        })
    };
    let (a, b) = (take(Arc::clone(&one)), take(Arc::clone(&two)));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all, unique, "no record taken twice");
    assert_eq!(all.len(), 40, "every record taken");
}

pub async fn a_later_change_of_the_same_object_is_found(s: &dyn Store) {
    let tok = lease(s).await;
    let mut first = verified_record("https://c/a", Some("\"v1\""), Verified::Pending);
    first.event.key = "a".into();
    s.ingest(vec![first.clone()], 0).await.unwrap();
    purge_all(s, tok, 100).await;
    let due = s.verifications_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(s.newer_record(&due[0]).await.unwrap(), None);
    // A re-purge of it is not a later change.
    let mut again = first.clone();
    if let Some(v) = again.verify.as_mut() {
        v.round = 1;
    }
    s.ingest(vec![again], 300).await.unwrap();
    assert_eq!(s.newer_record(&due[0]).await.unwrap(), None);
    // Other objects, rules and accounts are not either.
    let mut other_key = first.clone();
    other_key.event.key = "b".into();
    let mut other_rule = first.clone();
    other_rule.rule = Some("r2".into());
    let mut other_account = first.clone();
    other_account.provider = Some("q".into());
    s.ingest(vec![other_key, other_rule, other_account], 400)
        .await
        .unwrap();
    assert_eq!(s.newer_record(&due[0]).await.unwrap(), None);
    // The object changed again: the newest such record.
    let mut v2 = first.clone();
    v2.event.etag = Some("\"v2\"".into());
    let mut v3 = first.clone();
    v3.event.etag = Some("\"v3\"".into());
    let ids = s.ingest(vec![v2, v3], 500).await.unwrap().purge_ids;
    assert_eq!(s.newer_record(&due[0]).await.unwrap(), Some(ids[1]));
}

/// A record to warm: rule "r" through provider "p" (and verified too, when `verify` is given).
pub fn warmed_record(url: &str, verify: Option<Verified>) -> IngestRecord {
    let mut r = match verify {
        Some(state) => verified_record(url, Some("\"abc\""), state),
        None => record("r", &[("p", url)]),
    };
    r.warm = Some(WarmStart {
        state: Warmed::Pending,
        note: None,
    });
    r
}

pub async fn a_warming_is_due_after_completion_and_verification(s: &dyn Store) {
    let tok = lease(s).await;
    let mut skipped = record("r", &[("p", "https://c/gone")]);
    skipped.event.name = "ObjectRemoved:Delete".into();
    skipped.warm = Some(WarmStart {
        state: Warmed::Skipped,
        note: Some("a delete: nothing to prefetch".into()),
    });
    let ids = s
        .ingest(
            vec![
                warmed_record("https://c/a", None),
                warmed_record("https://c/b", Some(Verified::Pending)),
                skipped,
                record("r", &[("p", "https://c/plain")]),
            ],
            0,
        )
        .await
        .unwrap()
        .purge_ids;
    let recs = all_records(s).await;
    assert_eq!(recs[0].warmed, Some(Warmed::Pending));
    assert_eq!(recs[2].warmed, Some(Warmed::Skipped));
    assert_eq!(
        recs[2].warm_note.as_deref(),
        Some("a delete: nothing to prefetch")
    );
    assert_eq!(recs[3].warmed, None, "only rules that ask warm");
    assert!(
        s.warmings_due("p", 50, 50, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not purged yet"
    );
    purge_all(s, tok, 120).await;
    assert!(
        s.warmings_due("p", 200, 100, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "completed at 120: not settled by 100"
    );
    assert!(
        s.warmings_due("q", 200, 200, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "another provider's warmer does not take it"
    );
    // The verified one waits for its verification.
    let due = s.warmings_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[0]]);
    let d = &due[0];
    assert_eq!(d.provider, "p");
    assert_eq!(d.targets, vec!["https://c/a".to_owned()]);
    assert_eq!(d.event, "ObjectCreated:Put");
    assert_eq!(
        (d.status, d.completed_at, d.verified),
        (Status::Succeeded, Some(120), None)
    );
    // A verifier reads that the record is to be warmed (a re-purge of it is warmed too).
    let v = s.verifications_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(
        v.iter().map(|d| (d.id, d.warm)).collect::<Vec<_>>(),
        vec![(ids[1], true)]
    );
    s.note_verifications(
        vec![VerifyUpdate {
            id: ids[1],
            verified: Verified::Stale,
            note: Some("cdn: ETag \"old\"".into()),
        }],
        300,
    )
    .await
    .unwrap();
    let due = s.warmings_due("p", 400, 400, 1000, 10).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(due[0].verified, Some(Verified::Stale));
}

pub async fn a_warming_is_taken_for_a_lease_and_recorded_once(s: &dyn Store) {
    let tok = lease(s).await;
    s.ingest(vec![warmed_record("https://c/a", None)], 0)
        .await
        .unwrap();
    purge_all(s, tok, 100).await;
    let first = s.warmings_due("p", 200, 200, 1000, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        s.warmings_due("p", 300, 300, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "taken until 1200"
    );
    // Undecided ("pending") changes nothing: due again when the lease ends.
    let pending = WarmUpdate {
        id: first[0].id,
        warmed: Warmed::Pending,
        note: None,
        task_id: None,
    };
    let receipt = s.note_warmings(vec![pending], 400).await.unwrap();
    assert!(receipt.records.is_empty());
    let again = s.warmings_due("p", 1200, 1200, 1000, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![first[0].id]
    );
    let cursor = s.log_cursor().await.unwrap();
    let receipt = s
        .note_warmings(
            vec![WarmUpdate {
                id: first[0].id,
                warmed: Warmed::Warmed,
                note: Some("1 URL(s) prefetched".into()),
                task_id: Some("15475444535871929928456".into()),
            }],
            1300,
        )
        .await
        .unwrap();
    assert_eq!(receipt.records.len(), 1);
    assert_eq!(receipt.records[0].status, Status::Succeeded);
    let rec = &all_records(s).await[0];
    assert_eq!(rec.warmed, Some(Warmed::Warmed));
    assert_eq!(rec.warm_note.as_deref(), Some("1 URL(s) prefetched"));
    assert_eq!(rec.warm_task.as_deref(), Some("15475444535871929928456"));
    assert_eq!(rec.status, Status::Succeeded, "the purge outcome stays");
    assert_eq!(rec.updated, 1300);
    let changed = s
        .log(LogQuery {
            after: Some((cursor, i64::MAX)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        changed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rec.id]
    );
    // Recorded once: a late second answer changes nothing, and it is never due again.
    let late = s
        .note_warmings(
            vec![WarmUpdate {
                id: rec.id,
                warmed: Warmed::Failed,
                note: Some("late".into()),
                task_id: None,
            }],
            1400,
        )
        .await
        .unwrap();
    assert!(late.records.is_empty());
    assert_eq!(all_records(s).await[0].warmed, Some(Warmed::Warmed));
    assert!(s
        .warmings_due("p", i64::MAX / 2, i64::MAX / 2, 1000, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn two_handles_never_take_the_same_warming(backend: &Backend) {
    let (one, two) = ((backend.open)().await, (backend.open)().await);
    let tok = lease(one.as_ref()).await;
    let recs: Vec<IngestRecord> = (0..40)
        .map(|i| warmed_record(&format!("https://c/{i}"), None))
        .collect();
    one.ingest(recs, 0).await.unwrap();
    purge_all(one.as_ref(), tok, 100).await;
    let take = |s: Arc<dyn Store>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let due = s.warmings_due("p", 200, 200, 60_000, 3).await.unwrap();
                if due.is_empty() {
                    return got;
                }
                got.extend(due.into_iter().map(|d| d.id));
            }
        })
    };
    let (a, b) = (take(Arc::clone(&one)), take(Arc::clone(&two)));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all, unique, "no record taken twice");
    assert_eq!(all.len(), 40, "every record taken");
}

/// A record of rule "hot" (min_interval_ms 5000) purging `url` through lane "p".
fn hot(url: &str) -> IngestRecord {
    IngestRecord {
        min_interval_ms: 5_000,
        ..record("hot", &[("p", url)])
    }
}

pub async fn a_target_is_held_for_its_rules_min_interval_then_purged_once(s: &dyn Store) {
    let tok = lease(s).await;
    // Never purged: nothing holds it.
    let first = s.ingest(vec![hot("https://c/hot")], 1_000).await.unwrap();
    let b1 = claim_batch(s, claim_req(tok, 1_100)).await;
    assert_eq!(b1.targets, vec!["https://c/hot"]);
    // Claimed (sent) at 1100: held until 6100, even before the answer.
    let in_flight = s.ingest(vec![hot("https://c/hot")], 1_500).await.unwrap();
    s.finish(finish(tok, &b1, 1_600, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // More changes inside the interval coalesce into the held job; one of a rule without
    // an interval joins it too (it is not purged sooner for that).
    let later = s
        .ingest(
            vec![
                hot("https://c/hot"),
                record("plain", &[("p", "https://c/hot")]),
            ],
            4_000,
        )
        .await
        .unwrap();
    assert_eq!((later.jobs_new, later.jobs_merged), (0, 2));
    // Other targets are not held.
    s.ingest(vec![hot("https://c/other")], 4_000).await.unwrap();
    let other = claim_batch(s, claim_req(tok, 4_100)).await;
    assert_eq!(other.targets, vec!["https://c/other"]);
    s.finish(finish(tok, &other, 4_100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // Nothing else may go before the hold ends, and the lane is told when that is.
    assert_wait(s.claim(claim_req(tok, 4_200)).await.unwrap(), 6_100);
    assert_wait(s.claim(claim_req(tok, 6_099)).await.unwrap(), 6_100);
    let recs = all_records(s).await;
    let by_id = |id: i64| recs.iter().find(|r| r.id == id).expect("record");
    let note = "held until 1970-01-01T00:00:06.100Z (min_interval_ms)";
    assert_eq!(
        by_id(first.purge_ids[0]).note,
        None,
        "the first was not held"
    );
    for id in in_flight.purge_ids.iter().chain(&later.purge_ids) {
        let r = by_id(*id);
        assert_eq!(r.note.as_deref(), Some(note), "record {id}");
        assert_eq!(r.status, Status::Queued);
    }
    // At the hold's end the held job goes at once (it lingered long ago): one purge for
    // the three changes, after the last of them (invariant 2).
    let b2 = claim_batch(s, claim_req(tok, 6_100)).await;
    assert_eq!(b2.targets, vec!["https://c/hot"]);
    let done = s
        .finish(finish(tok, &b2, 6_200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let mut changed: Vec<i64> = done.records.iter().map(|r| r.id).collect();
    changed.sort_unstable();
    let mut held: Vec<i64> = in_flight
        .purge_ids
        .iter()
        .chain(&later.purge_ids)
        .copied()
        .collect();
    held.sort_unstable();
    assert_eq!(changed, held, "one purge answers every held record");
    let recs = all_records(s).await;
    for id in &held {
        let r = recs.iter().find(|r| r.id == *id).expect("record");
        assert_eq!(r.status, Status::Succeeded);
        assert_eq!(
            r.note.as_deref(),
            Some(note),
            "the note stays after the purge"
        );
    }
    // That purge (claimed at 6100) holds the target again until 11100 ...
    let again = s.ingest(vec![hot("https://c/hot")], 7_000).await.unwrap();
    assert_wait(s.claim(claim_req(tok, 7_100)).await.unwrap(), 11_100);
    assert!(all_records(s)
        .await
        .iter()
        .any(|r| r.id == again.purge_ids[0]
            && r.note.as_deref() == Some("held until 1970-01-01T00:00:11.100Z (min_interval_ms)")));
    let b3 = claim_batch(s, claim_req(tok, 11_100)).await;
    assert_eq!(b3.targets, vec!["https://c/hot"]);
    s.finish(finish(tok, &b3, 11_100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // ... and a change after the interval is purged as usual (linger only).
    let free = s.ingest(vec![hot("https://c/hot")], 20_000).await.unwrap();
    assert_wait(s.claim(claim_req(tok, 20_000)).await.unwrap(), 20_100);
    let b4 = claim_batch(s, claim_req(tok, 20_100)).await;
    assert_eq!(b4.targets, vec!["https://c/hot"]);
    assert!(all_records(s)
        .await
        .iter()
        .any(|r| r.id == free.purge_ids[0] && r.note.is_none()));
}

/// Lane "p" with `url_quota` URLs and 10 directories a day, collapsing over 2.
fn collapsing_req(tok: i64, now: Ms, url_quota: u64) -> ClaimRequest {
    let mut req = claim_req(tok, now);
    req.kinds[0].1.daily_quota = Some(url_quota);
    req.kinds[1].1.daily_quota = Some(10);
    req.collapse_to_dir_over = Some(2);
    req
}

pub async fn urls_the_quota_cannot_cover_collapse_into_their_directory(s: &dyn Store) {
    let tok = lease(s).await;
    // Ample quota: nothing collapses.
    s.ingest(
        (1..=4)
            .map(|i| record("r", &[("p", &format!("https://c/ok/{i}.png"))]))
            .collect(),
        0,
    )
    .await
    .unwrap();
    let b = claim_batch(s, collapsing_req(tok, 100, 100)).await;
    assert_eq!((b.kind, b.targets.len()), (TargetKind::Url, 4));
    s.finish(finish(tok, &b, 100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert!(all_records(s).await.iter().all(|r| r.note.is_none()));

    // 4 used of 7: three URLs left today, for six pending.
    let mut dir_record = record("d", &[]);
    dir_record.targets = vec!["https://c/a/".into()];
    dir_record.jobs = vec![LaneJob {
        lane: "p".into(),
        kind: TargetKind::Dir,
        target: "https://c/a/".into(),
    }];
    let mut batch: Vec<IngestRecord> = (1..=4)
        .map(|i| record("r", &[("p", &format!("https://c/a/{i}.png"))]))
        .collect();
    // One record purging a URL in a/ and one elsewhere: it follows both jobs.
    batch.push(record(
        "r",
        &[("p", "https://c/a/5.png"), ("p", "https://c/b/1.png")],
    ));
    batch.push(dir_record);
    let r = s.ingest(batch, 1_000).await.unwrap();
    let first = claim_batch(s, collapsing_req(tok, 1_100, 7)).await;
    // The lone URL goes as a URL (within the quota); a/ goes as one directory purge that the
    // pending directory job of record "d" takes.
    assert_eq!(
        (first.kind, first.targets.clone()),
        (TargetKind::Url, vec!["https://c/b/1.png".to_owned()])
    );
    let second = claim_batch(s, collapsing_req(tok, 1_100, 7)).await;
    assert_eq!(
        (second.kind, second.targets.clone()),
        (TargetKind::Dir, vec!["https://c/a/".to_owned()])
    );
    assert_eq!(
        s.claim(collapsing_req(tok, 1_100, 7)).await.unwrap(),
        Claim::Idle,
        "no URL of a/ is left to purge on its own"
    );
    let recs = all_records(s).await;
    let note = "collapsed into dir purge https://c/a/";
    for id in &r.purge_ids[..5] {
        let rec = recs.iter().find(|x| x.id == *id).expect("record");
        assert_eq!(rec.note.as_deref(), Some(note), "record {id}");
        assert_eq!(rec.status, Status::Sent);
    }
    assert_eq!(
        recs.iter().find(|x| x.id == r.purge_ids[5]).unwrap().note,
        None,
        "the directory's own record was not collapsed"
    );
    s.finish(finish(tok, &second, 1_200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // The record with a URL elsewhere waits for that one too.
    let both = r.purge_ids[4];
    let status = |recs: &[LogRecord], id: i64| recs.iter().find(|x| x.id == id).unwrap().status;
    assert_eq!(status(&all_records(s).await, both), Status::Sent);
    s.finish(finish(tok, &first, 1_200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    for id in &r.purge_ids {
        assert_eq!(status(&recs, *id), Status::Succeeded, "record {id}");
    }
    assert_eq!(s.quota_used("p", TargetKind::Url, 0).await.unwrap(), 5);
    assert_eq!(s.quota_used("p", TargetKind::Dir, 0).await.unwrap(), 1);
}

/// A record whose targets go to every lane of account `edge` (stored once each).
pub fn fanout_record(lanes: &[String], targets: &[&str]) -> IngestRecord {
    let mut r = record("r", &[]);
    r.provider = Some("edge".into());
    r.targets = targets.iter().map(|t| t.to_string()).collect();
    let lanes: Arc<[String]> = lanes.into();
    r.fanout = targets
        .iter()
        .map(|t| FanoutJob {
            account: "edge".into(),
            lanes: Arc::clone(&lanes),
            kind: TargetKind::Url,
            target: t.to_string(),
        })
        .collect();
    r
}

/// A claim by `lane` of account `edge` (whose lanes are `lanes`), batches of `max_batch`.
fn fanout_req(lane: &str, lanes: &[String], token: i64, now: Ms, max_batch: usize) -> ClaimRequest {
    let mut req = claim_req(token, now);
    req.lane = lane.into();
    req.kinds[0].1.max_batch = max_batch;
    req.linger_ms = 0;
    req.fanout = Some(FanoutClaim {
        account: "edge".into(),
        lanes: lanes.into(),
    });
    req
}

async fn take_lane(s: &dyn Store, lane: &str) -> i64 {
    s.acquire_lane(lane, "A", 60_000)
        .await
        .unwrap()
        .expect("lane is free")
        .token
}

async fn pending_of(s: &dyn Store, lane: &str) -> u64 {
    s.depths()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.lane == lane)
        .map_or(0, |d| d.pending)
}

/// Stored for an account of two nodes, then the config cut it to one: the lane left expands
/// the rows (they once waited forever, the record queued).
pub async fn fan_out_targets_reach_the_one_lane_left_when_nodes_were_cut(s: &dyn Store) {
    let two: Vec<String> = vec!["edge@a".into(), "edge@b".into()];
    let ids = s
        .ingest(vec![fanout_record(&two, &["https://c/1"])], 1000)
        .await
        .unwrap()
        .purge_ids;
    let one: Vec<String> = vec!["edge@a".into()];
    let ta = take_lane(s, "edge@a").await;
    let a = claim_batch(s, fanout_req("edge@a", &one, ta, 1100, 100)).await;
    assert_eq!(a.targets, vec!["https://c/1"]);
    s.finish(finish(ta, &a, 1200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    let rec = recs.iter().find(|r| r.id == ids[0]).expect("record");
    assert_eq!(rec.status, Status::Succeeded, "{rec:?}");
}

pub async fn fanned_out_targets_are_stored_once_and_reach_every_lane(s: &dyn Store) {
    let lanes: Vec<String> = ["edge@a", "edge@b", "edge@c"]
        .iter()
        .map(|l| l.to_string())
        .collect();
    let r = s
        .ingest(
            vec![
                fanout_record(&lanes, &["https://c/1", "https://c/2"]),
                // The same target again merges into the row no lane has yet.
                fanout_record(&lanes, &["https://c/1"]),
            ],
            1000,
        )
        .await
        .unwrap();
    assert_eq!((r.jobs_new, r.jobs_merged), (2, 1), "{r:?}");
    // No lane has a job yet: the targets are stored once, not once per lane, and the queue
    // shows them as the account's fan-out depth.
    for l in &lanes {
        assert_eq!(pending_of(s, l).await, 0, "{l}");
    }
    assert_eq!(
        s.fanout_depths().await.unwrap(),
        vec![FanoutDepth {
            account: "edge".into(),
            targets: 2,
            oldest_at: Some(1000),
        }]
    );
    let recs = all_records(s).await;
    assert!(recs.iter().all(|r| r.status == Status::Queued), "{recs:?}");
    // Both depths in one read agree with each read alone.
    let (lanes_now, fanout_now) = s.queue_depths().await.unwrap();
    assert_eq!(fanout_now, s.fanout_depths().await.unwrap());
    assert_eq!(lanes_now, s.depths().await.unwrap());

    // Lane a claims: the rows become one job per lane, a's batch holds both targets.
    let ta = take_lane(s, "edge@a").await;
    let a = claim_batch(s, fanout_req("edge@a", &lanes, ta, 1100, 100)).await;
    assert_eq!(a.targets, vec!["https://c/1", "https://c/2"]);
    assert_eq!(pending_of(s, "edge@b").await, 2);
    assert_eq!(pending_of(s, "edge@c").await, 2);
    assert_eq!(s.fanout_depths().await.unwrap(), vec![], "expanded");
    let (lanes_now, fanout_now) = s.queue_depths().await.unwrap();
    assert_eq!(fanout_now, vec![], "expanded");
    let pending: Vec<(String, u64)> = lanes_now
        .iter()
        .map(|d| (d.lane.clone(), d.pending))
        .collect();
    assert_eq!(
        pending,
        vec![
            ("edge@a".to_owned(), 0),
            ("edge@b".to_owned(), 2),
            ("edge@c".to_owned(), 2)
        ],
        "a's jobs are in its batch in flight, b's and c's pending, in one read"
    );
    // A new event for c/1 now: a new row (c/1 is pending on b and c, sent on a).
    let late = s
        .ingest(vec![fanout_record(&lanes, &["https://c/1"])], 1150)
        .await
        .unwrap();
    assert_eq!((late.jobs_new, late.jobs_merged), (1, 0));
    let depth = s.fanout_depths().await.unwrap();
    assert_eq!(
        (depth.len(), depth[0].targets, depth[0].oldest_at),
        (1, 1, Some(1150)),
        "{depth:?}"
    );
    s.finish(finish(ta, &a, 1200, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    assert!(
        recs.iter().all(|r| r.status == Status::Queued),
        "b and c have not sent: {recs:?}"
    );

    // Lane b expands the new row: it merges into b's (and c's) pending c/1, and a gets it
    // again (its c/1 was sent before that event).
    let tb = take_lane(s, "edge@b").await;
    let b = claim_batch(s, fanout_req("edge@b", &lanes, tb, 1300, 100)).await;
    assert_eq!(
        b.targets,
        vec!["https://c/1", "https://c/2"],
        "deduplicated"
    );
    assert_eq!(pending_of(s, "edge@a").await, 1);
    assert_eq!(pending_of(s, "edge@c").await, 2);
    s.finish(finish(tb, &b, 1300, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let tc = take_lane(s, "edge@c").await;
    let c = claim_batch(s, fanout_req("edge@c", &lanes, tc, 1400, 100)).await;
    assert_eq!(c.targets, vec!["https://c/1", "https://c/2"]);
    s.finish(finish(tc, &c, 1400, FinishOutcome::Succeeded))
        .await
        .unwrap();
    let recs = all_records(s).await;
    let mut by_id: Vec<&LogRecord> = recs.iter().collect();
    by_id.sort_by_key(|r| r.id);
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id[0].status, Status::Succeeded, "{:?}", by_id[0]);
    assert_eq!(by_id[1].status, Status::Succeeded, "{:?}", by_id[1]);
    // The late record waits for lane a's second purge of c/1.
    assert_eq!(by_id[2].status, Status::Queued, "{:?}", by_id[2]);
    let a2 = claim_batch(s, fanout_req("edge@a", &lanes, ta, 1500, 100)).await;
    assert_eq!(a2.targets, vec!["https://c/1"]);
    let done = s
        .finish(finish(ta, &a2, 1500, FinishOutcome::Succeeded))
        .await
        .unwrap();
    assert!(
        done.records
            .iter()
            .any(|c| c.id == by_id[2].id && c.status == Status::Succeeded),
        "{done:?}"
    );
    // Every lane sent what it had; nothing is left to expand.
    for (l, t) in [("edge@a", ta), ("edge@b", tb), ("edge@c", tc)] {
        assert_eq!(
            s.claim(fanout_req(l, &lanes, t, 1600, 100)).await.unwrap(),
            Claim::Idle,
            "{l}"
        );
    }
}

pub async fn fan_out_expands_in_bounded_slices_and_a_silent_lane_catches_up(s: &dyn Store) {
    // 200 nodes, 50 targets: a slice is 20 targets (4,000 jobs), expanded only while the
    // claiming lane's backlog is below two batches or a slice.
    let lanes: Vec<String> = (0..200).map(|i| format!("edge@n{i}")).collect();
    let urls: Vec<String> = (0..50).map(|i| format!("https://c/{i:02}")).collect();
    let records: Vec<IngestRecord> = urls
        .iter()
        .map(|u| fanout_record(&lanes, &[u.as_str()]))
        .collect();
    let r = s.ingest(records, 1000).await.unwrap();
    assert_eq!(r.jobs_new, 50);
    let t0 = take_lane(s, "edge@n0").await;
    let first = claim_batch(s, fanout_req("edge@n0", &lanes, t0, 1100, 5)).await;
    assert_eq!(first.targets, urls[..5].to_vec(), "oldest first");
    // One slice: every lane got its 20 jobs, no more.
    assert_eq!(pending_of(s, "edge@n199").await, 20);
    assert_eq!(pending_of(s, "edge@n0").await, 15);
    s.finish(finish(t0, &first, 1100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // Lane n0 goes on alone; n199 (a node that is down) never claims meanwhile.
    let mut sent = first.targets.clone();
    let mut now = 1200;
    loop {
        match s
            .claim(fanout_req("edge@n0", &lanes, t0, now, 5))
            .await
            .unwrap()
        {
            Claim::Batch(b) => {
                assert!(b.targets.len() <= 5);
                sent.extend(b.targets.clone());
                s.finish(finish(t0, &b, now, FinishOutcome::Succeeded))
                    .await
                    .unwrap();
            }
            Claim::Idle => break,
            other => panic!("{other:?}"),
        }
        now += 10;
        assert!(now < 100_000, "lane n0 never ran out of work");
    }
    assert_eq!(sent, urls, "n0 sent every target once, in order");
    // Everything is expanded: the silent lane holds every target, and no record is
    // settled while it has not sent them.
    assert_eq!(pending_of(s, "edge@n199").await, 50);
    let recs = all_records(s).await;
    assert_eq!(recs.len(), 50);
    assert!(recs.iter().all(|r| r.status == Status::Queued), "{recs:?}");
    // The node is back: it catches up on all of it.
    let t199 = take_lane(s, "edge@n199").await;
    let mut caught = Vec::new();
    while let Claim::Batch(b) = s
        .claim(fanout_req("edge@n199", &lanes, t199, now, 100))
        .await
        .unwrap()
    {
        caught.extend(b.targets.clone());
        s.finish(finish(t199, &b, now, FinishOutcome::Succeeded))
            .await
            .unwrap();
        now += 10;
    }
    assert_eq!(caught, urls);
}

pub async fn handles_expanding_and_ingesting_at_once_give_every_lane_every_target(
    backend: &Backend,
) {
    // Four lanes of one account, each held by its own handle ("process"), expanding and
    // sending while two more handles ingest the same 100 URLs (10 per body) at once.
    let lanes: Vec<String> = (0..4).map(|i| format!("edge@n{i}")).collect();
    let urls: Vec<String> = (0..100).map(|i| format!("https://c/{i:03}")).collect();
    let ingested = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut ingests = Vec::new();
    for h in 0..2 {
        let store = (backend.open)().await;
        let (lanes, urls, ingested) = (lanes.clone(), urls.clone(), Arc::clone(&ingested));
        ingests.push(tokio::spawn(async move {
            for (n, chunk) in urls.chunks(10).enumerate() {
                let records = chunk
                    .iter()
                    .map(|u| fanout_record(&lanes, &[u.as_str()]))
                    .collect();
                store
                    .ingest(records, 1000 + n as i64 * 2 + h)
                    .await
                    .unwrap();
            }
            ingested.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let mut senders = Vec::new();
    for (i, lane) in lanes.iter().enumerate() {
        let store = (backend.open)().await;
        let (lane, lanes, ingested) = (lane.clone(), lanes.clone(), Arc::clone(&ingested));
        senders.push(tokio::spawn(async move {
            let owner = format!("node{i}");
            let token = store
                .acquire_lane(&lane, &owner, 60_000)
                .await
                .unwrap()
                .expect("lane is free")
                .token;
            let mut sent: Vec<String> = Vec::new();
            let mut idle = 0;
            for step in 0..10_000i64 {
                let now = 10_000 + step;
                let mut req = fanout_req(&lane, &lanes, token, now, 7);
                req.owner = owner.clone();
                match store.claim(req).await.unwrap() {
                    Claim::Batch(b) => {
                        idle = 0;
                        sent.extend(b.targets.clone());
                        store
                            .finish(finish(token, &b, now, FinishOutcome::Succeeded))
                            .await
                            .unwrap();
                    }
                    _ if ingested.load(std::sync::atomic::Ordering::SeqCst) == 2 => {
                        idle += 1;
                        if idle == 3 {
                            return (sent, owner, token);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
            panic!("{lane} never ran out of work");
        }));
    }
    for t in ingests {
        t.await.unwrap();
    }
    let s = (backend.open)().await;
    for (lane, t) in lanes.iter().zip(senders) {
        let (mut sent, owner, token) = t.await.unwrap();
        // A lane that found nothing while others held the last slices (PostgreSQL skips
        // locked rows) drains what they queued for it since.
        loop {
            let mut req = fanout_req(lane, &lanes, token, 30_000, 7);
            req.owner = owner.clone();
            match s.claim(req).await.unwrap() {
                Claim::Batch(b) => {
                    sent.extend(b.targets.clone());
                    s.finish(finish(token, &b, 30_000, FinishOutcome::Succeeded))
                        .await
                        .unwrap();
                }
                _ => break,
            }
        }
        sent.sort();
        sent.dedup();
        assert_eq!(sent, urls, "{lane} sent every target");
    }
    let recs = all_records(s.as_ref()).await;
    assert_eq!(recs.len(), 200);
    assert!(
        recs.iter().all(|r| r.status == Status::Succeeded),
        "{:?}",
        recs.iter().find(|r| r.status != Status::Succeeded)
    );
}

pub async fn a_hosts_root_is_collapsed_only_when_every_rule_allows_it(s: &dyn Store) {
    let tok = lease(s).await;
    let root = |i: u32, allow_host_purge: bool| IngestRecord {
        allow_host_purge,
        ..record("r", &[("p", &format!("https://c/{i}.png"))])
    };
    s.ingest(vec![root(1, true), root(2, true), root(3, true)], 0)
        .await
        .unwrap();
    // No URL quota left today: the three go as the host's root, which their rule allows.
    let b = claim_batch(s, collapsing_req(tok, 100, 0)).await;
    assert_eq!(
        (b.kind, b.targets.clone()),
        (TargetKind::Dir, vec!["https://c/".to_owned()])
    );
    s.finish(finish(tok, &b, 100, FinishOutcome::Succeeded))
        .await
        .unwrap();
    // One of the next three is also purged by a rule without leave: the root is not purged
    // whole, and the URLs wait for the URL quota.
    s.ingest(
        vec![root(4, true), root(5, true), root(6, true), root(4, false)],
        1_000,
    )
    .await
    .unwrap();
    assert_wait(
        s.claim(collapsing_req(tok, 1_100, 0)).await.unwrap(),
        DAY_MS,
    );
    let b = claim_batch(s, collapsing_req(tok, 1_200, 10)).await;
    assert_eq!((b.kind, b.targets.len()), (TargetKind::Url, 3));
}
