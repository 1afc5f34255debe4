//! Dispatcher behaviour against the real SQLite store and a scripted purger, in paused time.

use super::*;
use crate::purgers::{KindLimits, Limits, PurgeError, PurgeResponse, Verdict};
use crate::store::{
    EventInfo, IngestRecord, LaneJob, Lease, LogQuery, RetryFilter, SqliteOptions, SqliteStore,
    Status,
};
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Debug, Clone)]
struct Sent {
    at: Ms,
    kind: TargetKind,
    targets: Vec<String>,
}

struct Scripted {
    limits: Limits,
    clock: Clock,
    sent: Mutex<Vec<Sent>>,
    /// Verdicts to answer, in order; `Done` once exhausted.
    script: Mutex<VecDeque<Verdict>>,
    /// Refuse (Split) any request larger than this.
    split_above: Option<usize>,
    latency: Duration,
    /// Calls to `purge` that panic before answering (a client bug).
    purge_panics: std::sync::atomic::AtomicU32,
    /// Calls to `quota` (made by the lane's own loop) that panic (a lane bug).
    quota_panics: std::sync::atomic::AtomicU32,
    /// Until this time every request fails without an answer (the provider is down).
    outage_until: std::sync::atomic::AtomicI64,
    /// A request carrying this target fails without an answer (e.g. a URL a cache errors on).
    poison: Option<String>,
    /// Rates some kinds share besides the lane's.
    shared: Vec<crate::purgers::SharedRate>,
    /// How long each of the next calls takes before its request reaches the provider
    /// (credentials read from a file, a cold connection's handshake).
    before_send: Mutex<VecDeque<Duration>>,
}

impl Scripted {
    fn new(clock: Clock, limits: Limits) -> Scripted {
        Scripted {
            limits,
            clock,
            sent: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            split_above: None,
            latency: Duration::from_millis(20),
            purge_panics: Default::default(),
            quota_panics: Default::default(),
            outage_until: Default::default(),
            poison: None,
            shared: Vec::new(),
            before_send: Mutex::new(VecDeque::new()),
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Purger for Scripted {
    fn lane(&self) -> &str {
        "p"
    }
    fn provider(&self) -> &str {
        "p"
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn shared_rates(&self) -> Vec<crate::purgers::SharedRate> {
        self.shared.clone()
    }
    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        let on_the_way = self.before_send.lock().unwrap().pop_front();
        if let Some(d) = on_the_way {
            tokio::time::sleep(d).await;
        }
        self.sent.lock().unwrap().push(Sent {
            at: self.clock.now_ms(),
            kind,
            targets: targets.to_vec(),
        });
        tokio::time::sleep(self.latency).await;
        if take_one(&self.purge_panics) {
            panic!("scripted client crash");
        }
        let down = self.outage_until.load(std::sync::atomic::Ordering::SeqCst);
        let poisoned = self.poison.as_ref().is_some_and(|p| targets.contains(p));
        if self.clock.now_ms() < down || poisoned {
            return PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Transport("connection refused".into()),
            );
        }
        let verdict = match self.split_above {
            Some(max) if targets.len() > max => Verdict::Split,
            _ => self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Verdict::Done),
        };
        PurgeResponse {
            error: (verdict != Verdict::Done)
                // An answer about this batch, not an outage (see `outage_until` for that).
                .then(|| PurgeError::Answer {
                    code: Some("Scripted".into()),
                    message: format!("scripted {verdict:?}"),
                }),
            verdict,
            http_status: Some(200),
            request_id: Some("rid".into()),
            task_id: Some("tid".into()),
            failed: Vec::new(),
        }
    }

    async fn quota(&self) -> Option<Result<crate::purgers::ProviderQuota, PurgeError>> {
        if take_one(&self.quota_panics) {
            panic!("scripted lane crash");
        }
        None
    }
}

/// Takes one from a counter; false when it is at zero.
fn take_one(n: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    n.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1)).is_ok()
}

fn limits() -> Limits {
    Limits {
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
        rate_per_s: 20.0,
        concurrency: 4,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

fn settings() -> DispatchSettings {
    DispatchSettings {
        linger_ms: 200,
        retry: RetryPolicy {
            max_attempts: 4,
            backoff_base_ms: 1000,
            ..Default::default()
        },
        lane_lease_ms: 15_000,
        poll_ms: 500,
        drain: Duration::from_secs(5),
        health: HealthSettings::default(),
        tasks: crate::dispatch::FollowSettings::default(),
        quota_warn_percent: 80,
        verify: crate::dispatch::VerifySettings::default(),
        warm: crate::dispatch::WarmSettings::default(),
    }
}

/// A store that stamps every committed ingest and every claimed batch with one logical
/// clock, so tests can order "event arrived" against "request was formed" exactly. Ingests
/// and claims pass one at a time (each commits before the next begins), so the stamps follow
/// the store's commit order even though the store groups concurrent writes.
struct Recording {
    inner: Arc<dyn Store>,
    order: tokio::sync::Mutex<()>,
    tick: std::sync::atomic::AtomicU64,
    claims: std::sync::atomic::AtomicU64,
    ingested: Mutex<Vec<(u64, Vec<String>)>>,
    claimed: Mutex<Vec<(u64, Vec<String>)>>,
    /// Lease requests fail (the store does not answer) while set; counted.
    fail_acquire: AtomicBool,
    acquires: AtomicU64,
    /// A claim's answer takes this long to come back (ms).
    claim_delay_ms: AtomicU64,
}

impl Recording {
    fn stamp(&self) -> u64 {
        self.tick.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Store for Recording {
    async fn rules(&self) -> crate::store::StoreResult<Vec<crate::store::StoredRule>> {
        self.inner.rules().await
    }
    async fn add_rule(
        &self,
        spec: edgepurge_core::RuleSpec,
        now: Ms,
    ) -> crate::store::StoreResult<()> {
        self.inner.add_rule(spec, now).await
    }
    async fn sync_config_rules(
        &self,
        specs: Vec<edgepurge_core::RuleSpec>,
        now: Ms,
    ) -> crate::store::StoreResult<crate::store::ConfigRulesChange> {
        self.inner.sync_config_rules(specs, now).await
    }
    async fn delete_rule(&self, name: &str) -> crate::store::StoreResult<()> {
        self.inner.delete_rule(name).await
    }
    async fn set_rule_enabled(
        &self,
        name: &str,
        enabled: bool,
        now: Ms,
    ) -> crate::store::StoreResult<()> {
        self.inner.set_rule_enabled(name, enabled, now).await
    }
    async fn rules_version(&self) -> crate::store::StoreResult<i64> {
        self.inner.rules_version().await
    }
    async fn ingest(
        &self,
        records: Vec<IngestRecord>,
        now: Ms,
    ) -> crate::store::StoreResult<crate::store::IngestReceipt> {
        let urls: Vec<String> = records.iter().flat_map(|r| r.targets.clone()).collect();
        let _one_at_a_time = self.order.lock().await;
        let receipt = self.inner.ingest(records, now).await?;
        let t = self.stamp();
        self.ingested.lock().unwrap().push((t, urls));
        Ok(receipt)
    }
    async fn acquire_lane(
        &self,
        lane: &str,
        owner: &str,
        ttl_ms: i64,
    ) -> crate::store::StoreResult<Option<Lease>> {
        self.acquires
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_acquire.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::store::StoreError::Unavailable("store down".into()));
        }
        self.inner.acquire_lane(lane, owner, ttl_ms).await
    }
    async fn release_lane(&self, lane: &str, owner: &str) -> crate::store::StoreResult<()> {
        self.inner.release_lane(lane, owner).await
    }
    async fn claim(
        &self,
        req: crate::store::ClaimRequest,
    ) -> crate::store::StoreResult<crate::store::Claim> {
        let _one_at_a_time = self.order.lock().await;
        self.claims
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let t = self.stamp();
        let claim = self.inner.claim(req).await?;
        let delay = self
            .claim_delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        if delay > 0 && matches!(claim, crate::store::Claim::Batch(_)) {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if let crate::store::Claim::Batch(b) = &claim {
            self.claimed.lock().unwrap().push((t, b.targets.clone()));
        }
        Ok(claim)
    }
    async fn finish(
        &self,
        finish: crate::store::Finish,
    ) -> crate::store::StoreResult<crate::store::FinishReceipt> {
        self.inner.finish(finish).await
    }
    async fn tasks_due(
        &self,
        lane: &str,
        now: Ms,
        limit: usize,
    ) -> crate::store::StoreResult<Vec<crate::store::FollowedTask>> {
        self.inner.tasks_due(lane, now, limit).await
    }
    async fn note_tasks(
        &self,
        updates: Vec<crate::store::TaskUpdate>,
        now: Ms,
    ) -> crate::store::StoreResult<crate::store::FinishReceipt> {
        self.inner.note_tasks(updates, now).await
    }
    async fn verifications_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> crate::store::StoreResult<Vec<crate::store::DueVerification>> {
        self.inner
            .verifications_due(provider, now, settled_before, lease_ms, limit)
            .await
    }
    async fn newer_record(
        &self,
        of: &crate::store::DueVerification,
    ) -> crate::store::StoreResult<Option<i64>> {
        self.inner.newer_record(of).await
    }
    async fn note_verifications(
        &self,
        updates: Vec<crate::store::VerifyUpdate>,
        now: Ms,
    ) -> crate::store::StoreResult<crate::store::FinishReceipt> {
        self.inner.note_verifications(updates, now).await
    }
    async fn warmings_due(
        &self,
        provider: &str,
        now: Ms,
        settled_before: Ms,
        lease_ms: i64,
        limit: usize,
    ) -> crate::store::StoreResult<Vec<crate::store::DueWarming>> {
        self.inner
            .warmings_due(provider, now, settled_before, lease_ms, limit)
            .await
    }
    async fn note_warmings(
        &self,
        updates: Vec<crate::store::WarmUpdate>,
        now: Ms,
    ) -> crate::store::StoreResult<crate::store::FinishReceipt> {
        self.inner.note_warmings(updates, now).await
    }
    async fn note_quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
        used: u64,
    ) -> crate::store::StoreResult<()> {
        self.inner.note_quota_used(lane, kind, day, used).await
    }
    async fn quota_used(
        &self,
        lane: &str,
        kind: TargetKind,
        day: i64,
    ) -> crate::store::StoreResult<u64> {
        self.inner.quota_used(lane, kind, day).await
    }
    async fn log(
        &self,
        query: LogQuery,
    ) -> crate::store::StoreResult<Vec<crate::store::LogRecord>> {
        self.inner.log(query).await
    }
    async fn log_cursor(&self) -> crate::store::StoreResult<i64> {
        self.inner.log_cursor().await
    }
    async fn requests(
        &self,
        since: Option<Ms>,
        before: Option<i64>,
        limit: usize,
    ) -> crate::store::StoreResult<Vec<crate::store::RequestRecord>> {
        self.inner.requests(since, before, limit).await
    }
    async fn depths(&self) -> crate::store::StoreResult<Vec<crate::store::LaneDepth>> {
        self.inner.depths().await
    }
    async fn fanout_depths(&self) -> crate::store::StoreResult<Vec<crate::store::FanoutDepth>> {
        self.inner.fanout_depths().await
    }
    async fn queue_depths(
        &self,
    ) -> crate::store::StoreResult<(Vec<crate::store::LaneDepth>, Vec<crate::store::FanoutDepth>)>
    {
        self.inner.queue_depths().await
    }
    async fn release_held(&self, lane: &str, now: Ms) -> crate::store::StoreResult<u64> {
        self.inner.release_held(lane, now).await
    }
    async fn retry_dead(&self, filter: RetryFilter, now: Ms) -> crate::store::StoreResult<u64> {
        self.inner.retry_dead(filter, now).await
    }
    async fn prune(&self, before: Ms, max_rows: usize) -> crate::store::StoreResult<u64> {
        self.inner.prune(before, max_rows).await
    }
    async fn prune_bookkeeping(&self, max_rows: usize) -> crate::store::StoreResult<u64> {
        self.inner.prune_bookkeeping(max_rows).await
    }
    async fn ping(&self) -> crate::store::StoreResult<()> {
        self.inner.ping().await
    }
    async fn listing(
        &self,
        source: &str,
    ) -> crate::store::StoreResult<Option<crate::store::Listing>> {
        self.inner.listing(source).await
    }
    async fn save_listing(
        &self,
        source: &str,
        scope: &str,
        changes: crate::store::ListingChanges,
        now: Ms,
    ) -> crate::store::StoreResult<()> {
        self.inner.save_listing(source, scope, changes, now).await
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    recording: Arc<Recording>,
    purger: Arc<Scripted>,
    dispatcher: Dispatcher,
    clock: Clock,
}

fn rig_with(purger: impl FnOnce(Clock) -> Scripted, settings: DispatchSettings) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::starting_at(1_700_000_000_000);
    // The real store, writer and readers: their work runs on the blocking pool, so paused
    // time does not jump while it works; the store's clock (for leases) is the test's.
    let sqlite: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            &dir.path().join("q.db"),
            SqliteOptions {
                clock,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let recording = Arc::new(Recording {
        inner: sqlite,
        order: tokio::sync::Mutex::new(()),
        claims: Default::default(),
        tick: Default::default(),
        ingested: Mutex::new(Vec::new()),
        claimed: Mutex::new(Vec::new()),
        fail_acquire: AtomicBool::new(false),
        acquires: AtomicU64::new(0),
        claim_delay_ms: AtomicU64::new(0),
    });
    let store: Arc<dyn Store> = Arc::clone(&recording) as Arc<dyn Store>;
    let purger = Arc::new(purger(clock));
    let dispatcher = Dispatcher::start(
        Arc::clone(&store),
        vec![Arc::clone(&purger) as Arc<dyn Purger>],
        settings,
        clock,
        Arc::new(NoOutcomes),
        Arc::new(crate::metrics::Metrics::new()),
        CancellationToken::new(),
    );
    Rig {
        _dir: dir,
        store,
        recording,
        purger,
        dispatcher,
        clock,
    }
}

fn rig() -> Rig {
    rig_with(|c| Scripted::new(c, limits()), settings())
}

fn rec(urls: &[String]) -> IngestRecord {
    IngestRecord {
        event: EventInfo {
            format: "ceph".into(),
            name: "ObjectCreated:Put".into(),
            bucket: "b".into(),
            key: "k".into(),
            id: None,
            etag: None,
            size: None,
        },
        rule: Some("r".into()),
        provider: Some("p".into()),
        targets: urls.to_vec(),
        jobs: urls
            .iter()
            .map(|u| LaneJob {
                lane: "p".into(),
                kind: TargetKind::Url,
                target: u.clone(),
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

impl Rig {
    async fn ingest(&self, urls: &[String]) -> Vec<i64> {
        let r = self
            .store
            .ingest(vec![rec(urls)], self.clock.now_ms())
            .await
            .unwrap();
        self.dispatcher.notify("p", urls.len());
        r.purge_ids
    }

    async fn records(&self) -> Vec<crate::store::LogRecord> {
        self.store
            .log(LogQuery {
                limit: 100_000,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Waits (in paused time) until every record is final.
    async fn settle(&self, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            if self.records().await.iter().all(|r| r.status.is_final()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not settled: {:?}",
                self.records().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn urls(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("https://cdn.example.com/{tag}/{i}"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_sent_in_as_few_requests_as_the_maximum_allows() {
    let rig = rig();
    rig.ingest(&urls(2500, "a")).await;
    rig.settle(Duration::from_secs(30)).await;
    let sent = rig.purger.sent();
    let sizes: Vec<usize> = sent.iter().map(|s| s.targets.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    assert!(rig
        .records()
        .await
        .iter()
        .all(|r| r.status == Status::Succeeded));
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lone_event_waits_at_most_linger() {
    let rig = rig();
    tokio::time::sleep(Duration::from_millis(50)).await; // lane has started and is idle
    let t0 = rig.clock.now_ms();
    rig.ingest(&urls(1, "lone")).await;
    rig.settle(Duration::from_secs(5)).await;
    let sent = rig.purger.sent();
    assert_eq!(sent.len(), 1);
    let delay = sent[0].at - t0;
    assert!(
        (200..=260).contains(&delay),
        "sent {delay} ms after arrival"
    );
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lingering_lane_does_not_ask_the_store_for_every_event() {
    let rig = rig();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rig
        .recording
        .claims
        .load(std::sync::atomic::Ordering::SeqCst);
    let t0 = rig.clock.now_ms();
    for i in 0..40 {
        rig.ingest(&urls(1, &format!("trickle{i}"))).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    rig.settle(Duration::from_secs(5)).await;
    let claims = rig
        .recording
        .claims
        .load(std::sync::atomic::Ordering::SeqCst)
        - before;
    let sent = rig.purger.sent();
    assert_eq!(
        sent.len(),
        1,
        "40 events within the linger go in one request"
    );
    assert!(
        sent[0].at - t0 <= 260,
        "sent {} ms after the first",
        sent[0].at - t0
    );
    assert!(claims <= 6, "{claims} claims for 40 events");
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_fills_while_lingering_goes_at_once() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 10;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = rig.clock.now_ms();
    rig.ingest(&urls(3, "first")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    rig.ingest(&urls(7, "fill")).await;
    rig.settle(Duration::from_secs(5)).await;
    let sent = rig.purger.sent();
    assert_eq!(sent[0].targets.len(), 10);
    assert!(
        sent[0].at - t0 < 100,
        "a full batch waits for no linger: sent after {} ms",
        sent[0].at - t0
    );
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_backoff_then_succeed() {
    let rig = rig();
    rig.purger.script.lock().unwrap().extend([
        Verdict::RetryLater { after: None },
        Verdict::RetryLater {
            after: Some(Duration::from_secs(3)),
        },
    ]);
    rig.ingest(&urls(1, "r")).await;
    rig.settle(Duration::from_secs(60)).await;
    let sent = rig.purger.sent();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2].at - sent[1].at >= 3000,
        "Retry-After honoured: {sent:?}"
    );
    let rec = &rig.records().await[0];
    assert_eq!((rec.status, rec.attempts), (Status::Succeeded, 3));
    assert_eq!(rig.store.requests(None, None, 10).await.unwrap().len(), 3);
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn persistent_failure_is_dead_lettered_after_max_attempts() {
    let rig = rig();
    rig.purger
        .script
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n(Verdict::RetryLater { after: None }, 10));
    rig.ingest(&urls(1, "d")).await;
    rig.settle(Duration::from_secs(120)).await;
    assert_eq!(rig.purger.sent().len(), 4);
    let rec = &rig.records().await[0];
    assert_eq!(rec.status, Status::Dead);
    assert!(
        rec.error
            .as_deref()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{rec:?}"
    );
    let st = &rig.dispatcher.statuses()[0];
    assert_eq!((st.requests, st.failed), (4, 4));
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn fatal_errors_are_not_retried() {
    let rig = rig();
    rig.purger.script.lock().unwrap().push_back(Verdict::Fatal);
    rig.ingest(&urls(1, "f")).await;
    rig.settle(Duration::from_secs(10)).await;
    assert_eq!(rig.purger.sent().len(), 1);
    assert_eq!(rig.records().await[0].status, Status::Dead);
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn too_large_batches_are_split_until_accepted() {
    let rig = rig_with(
        |c| Scripted {
            split_above: Some(300),
            ..Scripted::new(c, limits())
        },
        settings(),
    );
    rig.ingest(&urls(1000, "s")).await;
    rig.settle(Duration::from_secs(30)).await;
    let sent = rig.purger.sent();
    let accepted: usize = sent
        .iter()
        .filter(|s| s.targets.len() <= 300)
        .map(|s| s.targets.len())
        .sum();
    assert_eq!(accepted, 1000);
    assert!(rig
        .records()
        .await
        .iter()
        .all(|r| r.status == Status::Succeeded));
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_across_a_hand_over_between_processes() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.rate_per_s = 10.0;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    // The first holder (a `purge` command, say) spends its whole window, then lets go...
    rig.ingest(&urls(10, "first")).await;
    rig.settle(Duration::from_secs(10)).await;
    rig.dispatcher.stop().await;
    // ... and a waiting server takes the lane over at once with a backlog of its own.
    let second = Dispatcher::start(
        Arc::clone(&rig.store),
        vec![Arc::clone(&rig.purger) as Arc<dyn Purger>],
        settings(),
        rig.clock,
        Arc::new(NoOutcomes),
        Arc::new(crate::metrics::Metrics::new()),
        CancellationToken::new(),
    );
    rig.store
        .ingest(vec![rec(&urls(20, "second"))], rig.clock.now_ms())
        .await
        .unwrap();
    second.notify("p", 20);
    rig.settle(Duration::from_secs(60)).await;
    let at: Vec<Ms> = rig.purger.sent().iter().map(|s| s.at).collect();
    assert_eq!(at.len(), 30);
    for (i, t) in at.iter().enumerate() {
        let n = at[i..].iter().filter(|u| **u < t + 1000).count();
        assert!(n <= 10, "{n} requests within 1 s from {t}: {at:?}");
    }
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_under_a_backlog() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.rate_per_s = 10.0;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    rig.ingest(&urls(60, "rate")).await;
    rig.settle(Duration::from_secs(60)).await;
    let at: Vec<Ms> = rig.purger.sent().iter().map(|s| s.at).collect();
    assert_eq!(at.len(), 60);
    for (i, t) in at.iter().enumerate() {
        let n = at[i..].iter().filter(|u| **u < t + 1000).count();
        assert!(n <= 10, "{n} requests within 1 s from {t}");
    }
    let span = at[59] - at[0];
    assert!(
        span >= 5 * 1100,
        "60 requests at 10 per 1.1 s take at least 5.5 s, took {span}"
    );
    rig.dispatcher.stop().await;
}

/// A request counted when it was handed to the client (before it read its credentials and
/// opened a connection) let a first burst that took 300 ms on its way out (cold connections)
/// and the next burst on warm connections reach the provider within one second: 20 requests
/// at a limit of 10. Counted when the answer is back, they cannot.
#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_when_requests_are_slow_to_leave() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.rate_per_s = 10.0;
    l.concurrency = 10;
    let rig = rig_with(
        |c| {
            let s = Scripted::new(c, l);
            *s.before_send.lock().unwrap() =
                std::iter::repeat_n(Duration::from_millis(300), 10).collect();
            s
        },
        settings(),
    );
    rig.ingest(&urls(30, "slow")).await;
    rig.settle(Duration::from_secs(60)).await;
    let mut at: Vec<Ms> = rig.purger.sent().iter().map(|s| s.at).collect();
    at.sort();
    assert_eq!(at.len(), 30);
    for (i, t) in at.iter().enumerate() {
        let n = at[i..].iter().filter(|u| **u < t + 1000).count();
        assert!(
            n <= 10,
            "{n} requests reached the provider within 1 s from {t}: {at:?}"
        );
    }
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_shared_rate_holds_its_kinds_while_other_kinds_go() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.kinds[1].1.max_batch = 1;
    l.rate_per_s = 20.0;
    let rig = rig_with(
        |c| Scripted {
            // Directories: one request per 2.2 s; URLs only the lane's 20 per second.
            shared: vec![crate::purgers::SharedRate {
                kinds: vec![TargetKind::Dir],
                rate_per_s: 0.5,
            }],
            ..Scripted::new(c, l)
        },
        settings(),
    );
    let dirs: Vec<String> = (0..4)
        .map(|i| format!("https://cdn.example.com/d{i}/"))
        .collect();
    let mut dir_rec = rec(&dirs);
    for job in &mut dir_rec.jobs {
        job.kind = TargetKind::Dir;
    }
    let start = rig.clock.now_ms();
    rig.store.ingest(vec![dir_rec], start).await.unwrap();
    rig.dispatcher.notify("p", dirs.len());
    rig.ingest(&urls(10, "u")).await;
    rig.settle(Duration::from_secs(60)).await;
    let sent = rig.purger.sent();
    let at = |kind| -> Vec<Ms> {
        sent.iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.at - start)
            .collect()
    };
    let (dir_at, url_at) = (at(TargetKind::Dir), at(TargetKind::Url));
    assert_eq!((dir_at.len(), url_at.len()), (4, 10));
    for w in dir_at.windows(2) {
        assert!(w[1] - w[0] >= 2200, "directories 2.2 s apart: {dir_at:?}");
    }
    // The URLs did not wait behind the held directories.
    assert!(
        url_at.iter().all(|t| *t < 2000),
        "{url_at:?} (dirs {dir_at:?})"
    );
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_daily_quota_parks_work_until_reset() {
    let mut l = limits();
    l.kinds[0].1.daily_quota = Some(5);
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    rig.ingest(&urls(8, "q")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.purger
            .sent()
            .iter()
            .map(|s| s.targets.len())
            .sum::<usize>(),
        5
    );
    let depth = rig.store.depths().await.unwrap();
    assert_eq!(depth[0].pending, 3);
    let st = &rig.dispatcher.statuses()[0];
    assert!(matches!(st.state, LaneState::Waiting { .. }), "{st:?}");
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_lease_stays_held_while_a_slow_request_blocks_the_lane() {
    let mut l = limits();
    l.concurrency = 1;
    let rig = rig_with(
        |c| Scripted {
            latency: Duration::from_secs(20),
            ..Scripted::new(c, l)
        },
        DispatchSettings {
            lane_lease_ms: 3000,
            ..settings()
        },
    );
    rig.ingest(&urls(1, "slow")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.ingest(&urls(1, "queued-behind")).await;
    // The one send slot is busy for 20 s, far beyond the 3 s lease.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(rig.purger.sent().len(), 1);
    assert!(
        rig.store
            .acquire_lane("p", "intruder", 1000)
            .await
            .unwrap()
            .is_none(),
        "the lease lapsed while a request was in flight"
    );
    rig.settle(Duration::from_secs(120)).await;
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_providers_spent_quota_stops_further_calls_until_reset() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.kinds[0].1.daily_quota = Some(100);
    l.concurrency = 1;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    rig.purger
        .script
        .lock()
        .unwrap()
        .push_back(Verdict::QuotaExhausted);
    rig.ingest(&urls(3, "spent")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.purger.sent().len(),
        1,
        "after the provider said the quota is spent, nothing more is sent today"
    );
    let recs = rig.records().await;
    assert!(recs.iter().all(|r| r.status == Status::Queued), "{recs:?}");
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_providers_day_limit_parks_the_kind_even_with_the_local_quota_off() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.kinds[0].1.daily_quota = None;
    l.concurrency = 1;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    rig.purger
        .script
        .lock()
        .unwrap()
        .push_back(Verdict::QuotaExhausted);
    rig.ingest(&urls(3, "day-limit")).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        rig.purger.sent().len(),
        1,
        "one day-limit answer stops every later call of that kind"
    );
    let st = &rig.dispatcher.statuses()[0];
    assert!(
        matches!(st.state, LaneState::Parked { until } if until == 1_700_006_400_000),
        "{st:?}"
    );
    // The test clock starts 22:13 UTC (quota day at UTC here): after midnight all three go.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    rig.settle(Duration::from_secs(60)).await;
    let sent = rig.purger.sent();
    assert_eq!(sent.len(), 4, "{sent:?}");
    let midnight = 1_700_006_400_000;
    assert!(sent[1..].iter().all(|s| s.at >= midnight), "{sent:?}");
    assert!(rig
        .records()
        .await
        .iter()
        .all(|r| r.status == Status::Succeeded));
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stopping_releases_the_lane_for_another_process() {
    let rig = rig();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.dispatcher.stop().await;
    assert!(rig
        .store
        .acquire_lane("p", "someone-else", 1000)
        .await
        .unwrap()
        .is_some());
    assert_eq!(rig.dispatcher.statuses()[0].state, LaneState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_lane_is_reported_and_started_again() {
    let rig = rig();
    // The lane's own loop panics once (a bug), right after it first takes the lane.
    rig.purger
        .quota_panics
        .store(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let st = rig.dispatcher.statuses()[0].clone();
    assert_eq!(st.restarts, 1, "{st:?}");
    assert!(matches!(st.state, LaneState::Restarting { .. }), "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("crashed") && e.contains("scripted lane crash")),
        "{st:?}"
    );
    // The crashed lane's lease was given up: the next incarnation takes it at once.
    rig.ingest(&urls(2, "after-crash")).await;
    rig.settle(Duration::from_secs(10)).await;
    assert!(rig
        .records()
        .await
        .iter()
        .all(|r| r.status == Status::Succeeded));
    let st = &rig.dispatcher.statuses()[0];
    assert_eq!(st.restarts, 1);
    assert_ne!(st.state, LaneState::Stopped);
    rig.dispatcher.stop().await;
    assert_eq!(rig.dispatcher.statuses()[0].state, LaneState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_batch_in_flight_when_its_lane_crashed_is_sent_again() {
    let rig = rig_with(
        |c| Scripted {
            latency: Duration::from_secs(2 * 3600),
            ..Scripted::new(c, limits())
        },
        settings(),
    );
    rig.ingest(&urls(1, "in-flight")).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(rig.purger.sent().len(), 1);
    // The lane's loop crashes at its hourly quota refresh while the request is in flight.
    rig.purger
        .quota_panics
        .store(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(rig.dispatcher.statuses()[0].restarts, 1);
    assert_eq!(
        rig.purger.sent().len(),
        2,
        "the next incarnation took the lane with a new token and resent the batch"
    );
    rig.settle(Duration::from_secs(6 * 3600)).await;
    assert_eq!(rig.records().await[0].status, Status::Succeeded);
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_provider_outage_holds_batches_probes_and_drains_at_once_when_it_is_back() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 2;
    let rig = rig_with(|c| Scripted::new(c, l), settings());
    let start = rig.clock.now_ms();
    let back_at = start + 30_000;
    rig.purger
        .outage_until
        .store(back_at, std::sync::atomic::Ordering::SeqCst);
    rig.ingest(&urls(40, "outage")).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let st = rig.dispatcher.statuses()[0].clone();
    assert!(matches!(st.state, LaneState::Down { .. }), "{st:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = rig.purger.sent().iter().filter(|s| s.at < back_at).count();
    // Three failures in a row take it down; what was in flight (4 slots) fails too; then one
    // probe per 5 s. Per-batch backoff alone would have sent ~5 requests for each of the 20
    // batches and dead-lettered them all after max_attempts (4).
    assert!(
        during <= 3 + 4 + 7,
        "{during} requests during a 30 s outage"
    );
    rig.settle(Duration::from_secs(60)).await;
    let recs = rig.records().await;
    assert!(
        recs.iter().all(|r| r.status == Status::Succeeded),
        "nothing dead-lettered by the outage: {recs:?}"
    );
    let last = rig.purger.sent().iter().map(|s| s.at).max().unwrap();
    // Back at 30 s: the next probe within 5 s, then the 20 batches at 20/s.
    assert!(
        last - back_at <= 5_000 + 1_000 + 500,
        "drained {} ms after the provider came back",
        last - back_at
    );
    let st = &rig.dispatcher.statuses()[0];
    assert!(!matches!(st.state, LaneState::Down { .. }), "{st:?}");
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_url_that_always_fails_does_not_take_the_lane_down_or_starve_it() {
    let mut l = limits();
    l.kinds[0].1.max_batch = 1;
    l.concurrency = 1;
    let rig = rig_with(
        |c| Scripted {
            poison: Some("https://cdn.example.com/poison/0".into()),
            ..Scripted::new(c, l)
        },
        settings(),
    );
    rig.ingest(&urls(1, "poison")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..5 {
        rig.ingest(&[format!("https://cdn.example.com/good/{i}")])
            .await;
    }
    rig.settle(Duration::from_secs(120)).await;
    let recs = rig.records().await;
    let good: Vec<_> = recs
        .iter()
        .filter(|r| r.targets[0].contains("/good/"))
        .collect();
    assert_eq!(good.len(), 5);
    assert!(
        good.iter()
            .all(|r| r.status == Status::Succeeded && r.attempts == 1),
        "{good:?}"
    );
    let poison = recs
        .iter()
        .find(|r| r.targets[0].contains("/poison/"))
        .unwrap();
    assert_eq!(
        (poison.status, poison.attempts),
        (Status::Dead, 4),
        "it spends its attempts like any failing batch: {poison:?}"
    );
    let st = &rig.dispatcher.statuses()[0];
    assert!(!matches!(st.state, LaneState::Down { .. }), "{st:?}");
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_panics_fails_one_attempt_and_the_batch_is_retried() {
    let rig = rig();
    rig.purger
        .purge_panics
        .store(1, std::sync::atomic::Ordering::SeqCst);
    rig.ingest(&urls(1, "panicky")).await;
    rig.settle(Duration::from_secs(30)).await;
    assert_eq!(rig.purger.sent().len(), 2);
    let rec = &rig.records().await[0];
    assert_eq!((rec.status, rec.attempts), (Status::Succeeded, 2));
    let reqs = rig.store.requests(None, None, 10).await.unwrap();
    assert!(
        reqs.iter().any(|r| r
            .error
            .as_deref()
            .is_some_and(|e| e.contains("provider client crashed: scripted client crash"))),
        "{reqs:?}"
    );
    let st = &rig.dispatcher.statuses()[0];
    assert_eq!(st.restarts, 0, "the lane itself kept running");
    rig.dispatcher.stop().await;
}

/// One step of a random workload: an event for one of a few URLs, then some time passing.
#[derive(Debug, Clone)]
struct Step {
    url: usize,
    wait_ms: u64,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0usize..6, prop_oneof![Just(0u64), 0u64..50, 100u64..400])
            .prop_map(|(url, wait_ms)| Step { url, wait_ms }),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Invariants 2 and 3: every event is followed by a request for its URL sent after it
    /// arrived, and no request exceeds the per-request maximum or repeats a URL.
    #[test]
    fn every_event_is_followed_by_a_purge_sent_after_it(workload in steps(), max_batch in 1usize..4) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut l = limits();
            l.kinds[0].1.max_batch = max_batch;
            let rig = rig_with(|c| Scripted::new(c, l), settings());
            for step in &workload {
                let url = format!("https://cdn.example.com/{}", step.url);
                rig.ingest(std::slice::from_ref(&url)).await;
                tokio::time::sleep(Duration::from_millis(step.wait_ms)).await;
            }
            rig.settle(Duration::from_secs(120)).await;
            let sent = rig.purger.sent();
            for s in &sent {
                prop_assert!(s.targets.len() <= max_batch);
                let mut uniq = s.targets.clone();
                uniq.sort();
                uniq.dedup();
                prop_assert_eq!(uniq.len(), s.targets.len(), "a URL twice in one request");
            }
            // Logical clock: a batch formed (claimed) after the event was committed.
            let ingested = rig.recording.ingested.lock().unwrap().clone();
            let claimed = rig.recording.claimed.lock().unwrap().clone();
            for (at, urls) in &ingested {
                for url in urls {
                    prop_assert!(
                        claimed.iter().any(|(t, targets)| t > at && targets.contains(url)),
                        "event for {} (tick {}) has no request formed after it: {:?}",
                        url, at, claimed
                    );
                }
            }
            // Dedup: never more requests than events.
            prop_assert!(sent.len() <= ingested.len());
            rig.dispatcher.stop().await;
            Ok(())
        })?;
    }
}

/// A sender waiting for the lease while the store does not answer asks the renewer again
/// after every failed attempt: the renewer must back off, not ask (and log an error) as fast
/// as the store fails (a review counted 186,786 asks in 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waiting_for_the_lease_does_not_hammer_a_failing_store() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut s = settings();
    s.lane_lease_ms = 3000;
    let rig = rig_with(|c| Scripted::new(c, limits()), s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The claim comes back after the lease's local end (a slow store or a starved process);
    // meanwhile the store stops answering lease requests.
    rig.recording.claim_delay_ms.store(3000, SeqCst);
    rig.ingest(&urls(1, "stall")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.recording.fail_acquire.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let before = rig.recording.acquires.load(SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = rig.recording.acquires.load(SeqCst) - before;
    rig.recording.fail_acquire.store(false, SeqCst);
    rig.recording.claim_delay_ms.store(0, SeqCst);
    assert!(
        asked <= 10,
        "the failing store was asked for the lease {asked} times in 2 s"
    );
    rig.dispatcher.stop().await;
}

/// The lease check a sender makes just before its request leaves.
mod lease_check {
    use super::super::lane::{lease_still_held, LeaseView};
    use std::sync::Arc;
    use tokio::sync::{watch, Notify};
    use tokio::time::{Duration, Instant};
    use tokio_util::sync::CancellationToken;

    fn held(token: i64, for_ms: u64) -> LeaseView {
        LeaseView::Held {
            token,
            until: Instant::now() + Duration::from_millis(for_ms),
        }
    }

    /// Answers the first renewal request with `answer`; returns when it was asked.
    fn renewer(
        tx: watch::Sender<LeaseView>,
        renew_now: Arc<Notify>,
        answer: LeaseView,
    ) -> tokio::task::JoinHandle<Instant> {
        tokio::spawn(async move {
            renew_now.notified().await;
            let asked = Instant::now();
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send_replace(answer);
            asked
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_known_held_lets_the_request_go_at_once() {
        let (_tx, mut rx) = watch::channel(held(3, 1000));
        let (renew, stop) = (Notify::new(), CancellationToken::new());
        let before = Instant::now();
        assert!(lease_still_held(&mut rx, 3, &renew, &stop).await);
        assert_eq!(Instant::now(), before);
    }

    /// A process starved past its lease's end must not send before it knows: the lane may
    /// have a new holder already sending in its first window.
    #[tokio::test(start_paused = true)]
    async fn a_lease_past_its_local_end_is_renewed_before_the_request_goes() {
        let (tx, mut rx) = watch::channel(held(3, 100));
        tokio::time::advance(Duration::from_millis(200)).await;
        let (renew, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        let asked = renewer(tx, Arc::clone(&renew), held(3, 1000));
        assert!(lease_still_held(&mut rx, 3, &renew, &stop).await);
        let asked = asked.await.unwrap_or_else(|_| Instant::now());
        assert!(Instant::now() >= asked + Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_lost_meanwhile_keeps_the_request_back() {
        for answer in [LeaseView::NotHeld, held(4, 1000)] {
            let (tx, mut rx) = watch::channel(held(3, 100));
            tokio::time::advance(Duration::from_millis(200)).await;
            let (renew, stop) = (Arc::new(Notify::new()), CancellationToken::new());
            let _r = renewer(tx, Arc::clone(&renew), answer);
            assert!(
                !lease_still_held(&mut rx, 3, &renew, &stop).await,
                "{answer:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_token_or_another_holder_already_known_needs_no_question() {
        for view in [LeaseView::NotHeld, held(4, 1000)] {
            let (_tx, mut rx) = watch::channel(view);
            let (renew, stop) = (Notify::new(), CancellationToken::new());
            assert!(!lease_still_held(&mut rx, 3, &renew, &stop).await);
        }
    }

    /// The store not answering is not a lost lease: the request waits (the batch stays in
    /// flight under this token) until the store says, or shutdown.
    #[tokio::test(start_paused = true)]
    async fn an_unknown_lease_waits_for_the_store_or_shutdown() {
        let (tx, mut rx) = watch::channel(LeaseView::Unknown);
        let (renew, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        let _r = renewer(tx, Arc::clone(&renew), held(3, 1000));
        assert!(lease_still_held(&mut rx, 3, &renew, &stop).await);

        let (_tx, mut rx) = watch::channel(LeaseView::Unknown);
        let stopper = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                stop.cancel();
            })
        };
        let renew = Notify::new();
        assert!(!lease_still_held(&mut rx, 3, &renew, &stop).await);
        let _ = stopper.await;
    }
}

/// Hot keys: `keys` URLs each overwritten every `every_ms` until `for_ms`, through a rule with
/// `min_interval_ms`. Returns each URL's event times and the purges sent.
async fn hot_keys(
    rig: &Rig,
    keys: usize,
    every_ms: u64,
    for_ms: u64,
    min_interval_ms: Ms,
) -> (Vec<(String, Vec<Ms>)>, Vec<Sent>) {
    let hot = urls(keys, "hot");
    let mut events: Vec<(String, Vec<Ms>)> = hot.iter().map(|u| (u.clone(), Vec::new())).collect();
    let start = rig.clock.now_ms();
    while rig.clock.now_ms() - start < i64::try_from(for_ms).unwrap() {
        let records: Vec<IngestRecord> = hot
            .iter()
            .map(|u| IngestRecord {
                min_interval_ms,
                ..rec(std::slice::from_ref(u))
            })
            .collect();
        let now = rig.clock.now_ms();
        rig.store.ingest(records, now).await.unwrap();
        for e in &mut events {
            e.1.push(now);
        }
        rig.dispatcher.notify("p", keys);
        tokio::time::sleep(Duration::from_millis(every_ms)).await;
    }
    rig.settle(Duration::from_secs(60)).await;
    (events, rig.purger.sent())
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_is_purged_once_per_min_interval_and_after_its_last_change() {
    let rig = rig();
    let (events, sent) = hot_keys(&rig, 3, 100, 12_000, 5_000).await;
    for (url, times) in &events {
        let at: Vec<Ms> = sent
            .iter()
            .filter(|s| s.targets.contains(url))
            .map(|s| s.at)
            .collect();
        // Never again within the interval of the one before.
        for w in at.windows(2) {
            // (Stamped as the request reaches the purger, a few ms after its claim.)
            assert!(w[1] - w[0] >= 4_950, "{url} purged at {at:?}");
        }
        // Invariant 2: the last change is purged after it happened.
        let last_event = *times.last().unwrap();
        assert!(
            at.last().is_some_and(|l| *l > last_event),
            "{url}: last change at {last_event}, purges at {at:?}"
        );
        // 12 s of changes every 100 ms: the first purge, one per 5 s after it, and the last.
        assert!((3..=4).contains(&at.len()), "{url} purged at {at:?}");
    }
    // Every record succeeded, and those held say until when.
    let records = rig.records().await;
    assert!(records.iter().all(|r| r.status == Status::Succeeded));
    let held = records.iter().filter(|r| r.note.is_some()).count();
    assert!(held > records.len() / 2, "{held} of {} held", records.len());
    assert!(records
        .iter()
        .filter_map(|r| r.note.as_deref())
        .all(|n| n.starts_with("held until ") && n.ends_with("Z (min_interval_ms)")));
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_min_interval_a_hot_key_is_purged_once_per_linger() {
    let rig = rig();
    let (_, sent) = hot_keys(&rig, 3, 100, 12_000, 0).await;
    let per_key = sent
        .iter()
        .filter(|s| s.targets.iter().any(|t| t.ends_with("/hot/0")))
        .count();
    // One purge per linger (200 ms) while it changes: some 60, against 3 or 4 above.
    assert!(per_key >= 40, "{per_key} purges");
    rig.dispatcher.stop().await;
}

fn collapsing(url_quota: u64) -> Limits {
    let mut l = limits();
    l.kinds[0].1.daily_quota = Some(url_quota);
    l.kinds[1].1.daily_quota = Some(10);
    l.collapse_to_dir_over = Some(2);
    l
}

#[tokio::test(start_paused = true)]
async fn urls_the_quota_cannot_cover_are_purged_as_their_directory() {
    let rig = rig_with(|c| Scripted::new(c, collapsing(5)), settings());
    let mut batch = urls(6, "img");
    batch.extend(urls(1, "css"));
    rig.ingest(&batch).await;
    rig.settle(Duration::from_secs(10)).await;
    let sent = rig.purger.sent();
    let dirs: Vec<&Sent> = sent.iter().filter(|s| s.kind == TargetKind::Dir).collect();
    assert_eq!(dirs.len(), 1, "{sent:?}");
    assert_eq!(dirs[0].targets, vec!["https://cdn.example.com/img/"]);
    let url_targets: Vec<String> = sent
        .iter()
        .filter(|s| s.kind == TargetKind::Url)
        .flat_map(|s| s.targets.clone())
        .collect();
    assert_eq!(
        url_targets,
        vec!["https://cdn.example.com/css/0"],
        "a lone URL stays"
    );
    let records = rig.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Status::Succeeded);
    assert_eq!(
        records[0].note.as_deref(),
        Some("collapsed into dir purge https://cdn.example.com/img/")
    );
    let day = policy::quota_day(rig.clock.now_ms(), 0).0;
    assert_eq!(
        rig.store
            .quota_used("p", TargetKind::Url, day)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        rig.store
            .quota_used("p", TargetKind::Dir, day)
            .await
            .unwrap(),
        1
    );
    rig.dispatcher.stop().await;
}

#[tokio::test(start_paused = true)]
async fn urls_the_quota_covers_are_not_collapsed() {
    let rig = rig_with(|c| Scripted::new(c, collapsing(100)), settings());
    rig.ingest(&urls(6, "img")).await;
    rig.settle(Duration::from_secs(10)).await;
    let sent = rig.purger.sent();
    assert!(sent.iter().all(|s| s.kind == TargetKind::Url), "{sent:?}");
    assert_eq!(sent.iter().map(|s| s.targets.len()).sum::<usize>(), 6);
    assert_eq!(rig.records().await[0].note, None);
    rig.dispatcher.stop().await;
}
