//! [`DirectPurge`]: one body's targets purged now, without a store. Function mode (`edgepurge
//! function`, `edgepurge handle`) keeps nothing that must survive the invocation: it parses
//! and plans like the [`super::Ingestor`], sends each lane's targets in batches of the
//! provider's per-request maximum (within its rate limit and concurrency), retries what may
//! pass with a short backoff, and stops at the deadline. What did not go through is reported,
//! and the caller fails the invocation so the platform delivers the event again.

use super::planner::{Planner, TooManyJobs};
use crate::dispatch::ratelimit::RateLimiter;
use crate::dispatch::RetryPolicy;
use crate::purgers::{PurgeResponse, Purger, Verdict};
use edgepurge_core::{ParseError, TargetKind};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What became of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Purged,
    /// Refused for good because of the target itself (a malformed URL, a domain the account
    /// does not have): delivering the event again cannot help.
    Refused,
    /// Not purged: no answer before the deadline, throttled, quota spent, provider down, or
    /// refused for a reason that can be fixed (credentials, permissions, a domain offline).
    /// Delivering the event again may purge it.
    Failed,
}

/// One target of the body, for one lane (a provider account, or one cache node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    pub provider: String,
    pub lane: String,
    pub kind: &'static str,
    pub target: String,
    /// The rules that asked for it.
    pub rules: Vec<String>,
    pub outcome: Outcome,
    /// Requests that carried it.
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event (and rule) that purges nothing, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub event: String,
    pub bucket: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub note: String,
}

/// Everything one body did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectReport {
    /// Every target was purged (or there was nothing to purge).
    pub ok: bool,
    pub events: usize,
    pub purged: usize,
    pub refused: usize,
    pub failed: usize,
    pub targets: Vec<TargetReport>,
    /// Targets left out of `targets` to keep the report small (purged ones first).
    #[serde(skip_serializing_if = "is_zero")]
    pub targets_omitted: usize,
    /// Events that purge nothing (no rule matches, folder markers, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Control messages skipped on purpose (S3 test events, SNS confirmations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DirectReport {
    /// The report with at most `max` targets listed: the ones not purged first, then purged
    /// ones; the counts stay whole. (A platform caps a function's answer: Lambda at 6 MB.)
    pub fn trimmed(&self, max: usize) -> DirectReport {
        if self.targets.len() <= max {
            return self.clone();
        }
        let mut kept: Vec<TargetReport> = self
            .targets
            .iter()
            .filter(|t| t.outcome != Outcome::Purged)
            .take(max)
            .cloned()
            .collect();
        let room = max - kept.len();
        kept.extend(
            self.targets
                .iter()
                .filter(|t| t.outcome == Outcome::Purged)
                .take(room)
                .cloned(),
        );
        DirectReport {
            targets_omitted: self.targets.len() - kept.len(),
            targets: kept,
            skipped: self.skipped.iter().take(max).cloned().collect(),
            ..self.clone()
        }
    }

    /// Nothing is left that another delivery could purge: every target was purged or
    /// refused for good.
    pub fn settled(&self) -> bool {
        self.failed == 0
    }

    /// A one-line summary of what did not go through, for an invocation's error.
    pub fn failure_summary(&self) -> String {
        let not_purged: Vec<&TargetReport> = self
            .targets
            .iter()
            .filter(|t| t.outcome != Outcome::Purged)
            .collect();
        let mut text = format!(
            "{} of {} target(s) not purged ({} failed, {} refused)",
            not_purged.len(),
            self.targets.len(),
            self.failed,
            self.refused
        );
        if let Some(first) = not_purged
            .iter()
            .find(|t| t.outcome == Outcome::Failed)
            .or(not_purged.first())
        {
            text.push_str(&format!(
                "; {} {}: {}",
                first.lane,
                first.target,
                first.error.as_deref().unwrap_or("no answer")
            ));
        }
        text
    }
}

/// Why a body was not purged at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectError {
    /// The body is not a notification edgepurge understands.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// It would send more than the configured maximum of targets.
    #[error("the body would purge more than {max} targets (store.max_jobs_per_body); split it")]
    TooLarge { max: usize },
}

impl From<TooManyJobs> for DirectError {
    fn from(e: TooManyJobs) -> Self {
        DirectError::TooLarge { max: e.max }
    }
}

/// Sends bodies' targets straight to the providers.
pub struct DirectPurge {
    planner: Arc<Planner>,
    lanes: BTreeMap<String, Lane>,
    max_jobs: usize,
    backoff: RetryPolicy,
}

struct Lane {
    purger: Arc<dyn Purger>,
    /// Shared by the invocations of one process (a warm function instance).
    limiter: Arc<tokio::sync::Mutex<RateLimiter>>,
}

/// Retries inside an invocation: short, since the whole budget is seconds. A provider's
/// `Retry-After` is honoured whole: when it reaches past the deadline, there is no retry.
pub fn short_backoff() -> RetryPolicy {
    RetryPolicy {
        backoff_base_ms: 100,
        backoff_max_ms: 1000,
        ..RetryPolicy::default()
    }
}

/// One request's worth of targets of one lane and kind, waiting to be sent.
struct Batch {
    kind: TargetKind,
    /// Indices into the lane's targets.
    items: Vec<usize>,
    not_before: Instant,
}

/// The targets of one lane and what became of them.
struct LaneWork {
    lane: String,
    targets: Vec<String>,
    kinds: Vec<TargetKind>,
    state: Vec<TargetState>,
}

#[derive(Default, Clone)]
struct TargetState {
    outcome: Option<Outcome>,
    attempts: u32,
    request_id: Option<String>,
    task_id: Option<String>,
    error: Option<String>,
}

impl DirectPurge {
    pub fn new(planner: Planner, purgers: Vec<Arc<dyn Purger>>, max_jobs: usize) -> DirectPurge {
        let lanes = purgers
            .into_iter()
            .map(|p| {
                let limiter = RateLimiter::per_second(p.limits().rate_per_s);
                (
                    p.lane().to_owned(),
                    Lane {
                        purger: p,
                        limiter: Arc::new(tokio::sync::Mutex::new(limiter)),
                    },
                )
            })
            .collect();
        DirectPurge {
            // Sent from here, not stored: every lane's job planned at once.
            planner: Arc::new(planner.expanded()),
            lanes,
            max_jobs,
            backoff: short_backoff(),
        }
    }

    /// Parses `body`, purges its targets, and reports; gives up on what is not through by
    /// `deadline`.
    pub async fn purge(&self, body: &[u8], deadline: Instant) -> Result<DirectReport, DirectError> {
        let parsed = edgepurge_core::parse_body(body)?;
        let events = parsed.events.len();
        let records = self.planner.records_within(parsed.events, self.max_jobs)?;

        // One entry per lane, kind and target, whatever number of events and rules ask.
        let mut index: BTreeMap<(String, TargetKind, String), (usize, usize)> = BTreeMap::new();
        let mut works: Vec<LaneWork> = Vec::new();
        let mut rules: Vec<Vec<Vec<String>>> = Vec::new();
        let mut providers: Vec<String> = Vec::new();
        let mut skipped = Vec::new();
        for r in records {
            if let Some(note) = &r.note {
                if r.jobs.is_empty() {
                    skipped.push(Skipped {
                        event: r.event.name.clone(),
                        bucket: r.event.bucket.clone(),
                        key: r.event.key.clone(),
                        rule: r.rule.clone(),
                        note: note.clone(),
                    });
                }
            }
            for job in r.jobs {
                let key = (job.lane.clone(), job.kind, job.target.clone());
                let (w, t) = match index.get(&key) {
                    Some(at) => *at,
                    None => {
                        let w = match works.iter().position(|w| w.lane == job.lane) {
                            Some(w) => w,
                            None => {
                                works.push(LaneWork {
                                    lane: job.lane.clone(),
                                    targets: Vec::new(),
                                    kinds: Vec::new(),
                                    state: Vec::new(),
                                });
                                rules.push(Vec::new());
                                providers.push(r.provider.clone().unwrap_or_default());
                                works.len() - 1
                            }
                        };
                        works[w].targets.push(job.target.clone());
                        works[w].kinds.push(job.kind);
                        works[w].state.push(TargetState::default());
                        rules[w].push(Vec::new());
                        let at = (w, works[w].targets.len() - 1);
                        index.insert(key, at);
                        at
                    }
                };
                if let Some(rule) = &r.rule {
                    if !rules[w][t].contains(rule) {
                        rules[w][t].push(rule.clone());
                    }
                }
            }
        }

        // Each lane runs on its own; a lane's answer comes back with its number.
        let mut set: JoinSet<(usize, LaneWork)> = JoinSet::new();
        let mut done: Vec<Option<LaneWork>> = Vec::new();
        for (number, mut work) in works.into_iter().enumerate() {
            // What is reported if the lane's task dies: nothing of it is known to be purged.
            done.push(Some(LaneWork {
                lane: work.lane.clone(),
                targets: work.targets.clone(),
                kinds: work.kinds.clone(),
                state: vec![
                    TargetState {
                        error: Some("the purge task failed (see the log)".into()),
                        ..TargetState::default()
                    };
                    work.state.len()
                ],
            }));
            match self.lanes.get(&work.lane) {
                Some(lane) => {
                    // What a warm instance learned from earlier invocations (a domain refused
                    // lately) is asked again: each delivery of an event gets a real answer.
                    lane.purger.forget(&work.targets);
                    let purger = Arc::clone(&lane.purger);
                    let limiter = Arc::clone(&lane.limiter);
                    let backoff = self.backoff.clone();
                    set.spawn(async move {
                        (
                            number,
                            run_lane(purger, limiter, backoff, work, deadline).await,
                        )
                    });
                }
                None => {
                    for s in &mut work.state {
                        s.outcome = Some(Outcome::Failed);
                        s.error = Some(format!("no purger for lane {}", work.lane));
                    }
                    done[number] = Some(work);
                }
            }
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((number, work)) => done[number] = Some(work),
                Err(e) => tracing::error!("a purge task failed: {e}"),
            }
        }

        let mut targets = Vec::new();
        for (number, work) in done.iter().enumerate() {
            let Some(w) = work else { continue };
            for (t, target) in w.targets.iter().enumerate() {
                let s = &w.state[t];
                targets.push(TargetReport {
                    provider: providers[number].clone(),
                    lane: w.lane.clone(),
                    kind: w.kinds[t].as_str(),
                    target: target.clone(),
                    rules: std::mem::take(&mut rules[number][t]),
                    outcome: s.outcome.unwrap_or(Outcome::Failed),
                    attempts: s.attempts,
                    request_id: s.request_id.clone(),
                    task_id: s.task_id.clone(),
                    error: s.error.clone(),
                });
            }
        }
        let count = |o: Outcome| targets.iter().filter(|t| t.outcome == o).count();
        let (purged, refused, failed) = (
            count(Outcome::Purged),
            count(Outcome::Refused),
            count(Outcome::Failed),
        );
        Ok(DirectReport {
            ok: refused == 0 && failed == 0,
            events,
            purged,
            refused,
            failed,
            targets,
            targets_omitted: 0,
            skipped,
            notices: parsed.notices,
        })
    }
}

/// Sends one lane's targets until each has an outcome or the deadline comes.
async fn run_lane(
    purger: Arc<dyn Purger>,
    limiter: Arc<tokio::sync::Mutex<RateLimiter>>,
    backoff: RetryPolicy,
    mut work: LaneWork,
    deadline: Instant,
) -> LaneWork {
    let now = Instant::now();
    let mut queue: VecDeque<Batch> = VecDeque::new();
    for kind in [TargetKind::Url, TargetKind::Dir, TargetKind::Tag] {
        let items: Vec<usize> = (0..work.targets.len())
            .filter(|&i| work.kinds[i] == kind)
            .collect();
        if items.is_empty() {
            continue;
        }
        let Some(max) = purger.limits().kind(kind).map(|l| l.max_batch.max(1)) else {
            for i in items {
                work.state[i].outcome = Some(Outcome::Refused);
                work.state[i].error = Some(format!(
                    "provider {} cannot purge {} targets",
                    purger.provider(),
                    kind.as_str()
                ));
            }
            continue;
        };
        for chunk in items.chunks(max) {
            queue.push_back(Batch {
                kind,
                items: chunk.to_vec(),
                not_before: now,
            });
        }
    }
    let concurrency = purger.limits().concurrency.max(1);
    let mut inflight: JoinSet<(Batch, Option<PurgeResponse>)> = JoinSet::new();
    loop {
        // Send what is due, as far as concurrency and the rate limit allow.
        let mut rate_blocked = false;
        while inflight.len() < concurrency {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some(pos) = queue.iter().position(|b| b.not_before <= now) else {
                break;
            };
            let wait = limiter.lock().await.wait_time();
            if !wait.is_zero() {
                if now + wait >= deadline {
                    rate_blocked = true;
                    break;
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let Some(batch) = queue.remove(pos) else {
                break;
            };
            limiter.lock().await.record();
            let targets: Vec<String> = batch
                .items
                .iter()
                .map(|&i| work.targets[i].clone())
                .collect();
            for &i in &batch.items {
                work.state[i].attempts += 1;
            }
            let purger = Arc::clone(&purger);
            inflight.spawn(async move {
                // Never past the deadline, whatever the provider's own timeout.
                let answer = tokio::time::timeout_at(deadline, purger.purge(batch.kind, &targets))
                    .await
                    .ok();
                (batch, answer)
            });
        }
        // What can happen next: an answer, or a queued batch coming due (when there is room
        // to send it).
        let next_due = if inflight.len() < concurrency && !rate_blocked {
            queue.iter().map(|b| b.not_before).min()
        } else {
            None
        };
        if inflight.is_empty() && next_due.is_none() {
            break;
        }
        tokio::select! {
            joined = inflight.join_next(), if !inflight.is_empty() => {
                match joined {
                    Some(Ok((batch, Some(resp)))) => {
                        apply(&mut work, &mut queue, &*purger, &backoff, batch, resp, deadline);
                    }
                    Some(Ok((batch, None))) => {
                        for &i in &batch.items {
                            fail(&mut work.state[i], "no answer before the invocation's deadline");
                        }
                    }
                    Some(Err(e)) => tracing::error!(lane = %work.lane, "a purge request task failed: {e}"),
                    None => {}
                }
            }
            _ = sleep_until_opt(next_due) => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    inflight.abort_all();
    // Whatever is left had no time.
    for s in &mut work.state {
        if s.outcome.is_none() {
            let why = match s.error.take() {
                Some(e) => format!("{e} (no time left to retry before the deadline)"),
                None if s.attempts > 0 => {
                    "sent, but no answer before the invocation's deadline".to_owned()
                }
                None => "not sent before the invocation's deadline".to_owned(),
            };
            s.outcome = Some(Outcome::Failed);
            s.error = Some(why);
        }
    }
    work
}

/// A refusal is for good only when the provider says it is about the target itself.
fn refusal(purger: &dyn Purger, error: Option<&crate::purgers::PurgeError>) -> Outcome {
    match error {
        Some(e) if purger.refuses_target_for_good(e) => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn fail(s: &mut TargetState, why: &str) {
    s.outcome = Some(Outcome::Failed);
    s.error = Some(why.to_owned());
}

/// What an answer means for a batch's targets: settled, or queued again after a backoff.
fn apply(
    work: &mut LaneWork,
    queue: &mut VecDeque<Batch>,
    purger: &dyn Purger,
    backoff: &RetryPolicy,
    batch: Batch,
    resp: PurgeResponse,
    deadline: Instant,
) {
    let error = resp.error.as_ref().map(ToString::to_string);
    // Targets to send again: (target, the wait asked for, group). Groups go separately
    // (e.g. one per domain, so one refused domain does not fail the others again).
    let mut retry: Vec<(usize, Option<Duration>, Option<u32>)> = Vec::new();
    let mut alone = vec![false; batch.items.len()];
    for f in &resp.failed {
        let Some(&item) = batch.items.get(f.index) else {
            continue;
        };
        alone[f.index] = true;
        let s = &mut work.state[item];
        s.error = Some(f.error.to_string());
        match f.verdict {
            Verdict::Fatal => s.outcome = Some(refusal(purger, Some(&f.error))),
            Verdict::RetryLater { after } => retry.push((item, after, Some(f.group))),
            _ => s.outcome = Some(Outcome::Failed),
        }
    }
    let rest: Vec<usize> = batch
        .items
        .iter()
        .zip(&alone)
        .filter(|(_, a)| !**a)
        .map(|(i, _)| *i)
        .collect();
    for &i in &rest {
        let s = &mut work.state[i];
        s.request_id = resp.request_id.clone().or(s.request_id.take());
        s.task_id = resp.task_id.clone().or(s.task_id.take());
        if let Some(e) = &error {
            s.error = Some(e.clone());
        }
    }
    match resp.verdict {
        Verdict::Done => {
            for &i in &rest {
                work.state[i].outcome = Some(Outcome::Purged);
                work.state[i].error = None;
            }
        }
        Verdict::Fatal => {
            let outcome = refusal(purger, resp.error.as_ref());
            for &i in &rest {
                work.state[i].outcome = Some(outcome);
            }
        }
        Verdict::QuotaExhausted => {
            for &i in &rest {
                let s = &mut work.state[i];
                s.outcome = Some(Outcome::Failed);
                s.error = Some(format!(
                    "the provider's daily quota is spent: {}",
                    error.as_deref().unwrap_or("quota exhausted")
                ));
            }
        }
        Verdict::Split if rest.len() > 1 => {
            let (a, b) = rest.split_at(rest.len() / 2);
            let now = Instant::now();
            for half in [a, b] {
                queue.push_back(Batch {
                    kind: batch.kind,
                    items: half.to_vec(),
                    not_before: now,
                });
            }
        }
        Verdict::Split => {
            for &i in &rest {
                work.state[i].outcome = Some(Outcome::Refused);
            }
        }
        Verdict::RetryLater { after } => {
            retry.extend(rest.iter().map(|&i| (i, after, None)));
        }
    }
    let mut groups: BTreeMap<Option<u32>, Vec<(usize, Option<Duration>)>> = BTreeMap::new();
    for (item, after, group) in retry {
        groups.entry(group).or_default().push((item, after));
    }
    for (_, members) in groups {
        // A group goes again after the longest wait any of its targets was asked for; "again
        // at once" (a request split per domain) means no backoff.
        let asked = members.iter().filter_map(|(_, a)| *a).max();
        let wait_ms = if members.iter().all(|(_, a)| *a == Some(Duration::ZERO)) {
            0
        } else {
            let attempt = members
                .iter()
                .map(|(i, _)| work.state[*i].attempts)
                .max()
                .unwrap_or(1);
            let asked_ms = asked.map(|a| i64::try_from(a.as_millis()).unwrap_or(i64::MAX));
            backoff.backoff_ms(attempt, asked_ms, rand::random::<f64>())
        };
        let not_before = Instant::now() + Duration::from_millis(wait_ms.max(0) as u64);
        if not_before >= deadline {
            // Left without an outcome: reported as out of time, with the provider's error.
            continue;
        }
        queue.push_back(Batch {
            kind: batch.kind,
            items: members.into_iter().map(|(i, _)| i).collect(),
            not_before,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purgers::{Limits, PurgeError, TargetFailure};
    use crate::store::StoredRule;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Answers as told, and remembers what was sent when.
    struct Scripted {
        limits: Limits,
        latency: Duration,
        /// Answer Split to requests larger than this.
        split_above: usize,
        /// Targets that fail alone, once, in their own group.
        fail_once: Mutex<Vec<String>>,
        sent: Mutex<Vec<(Instant, Vec<String>)>>,
    }

    impl Scripted {
        fn new(rate: f64, max_batch: usize) -> Scripted {
            let mut limits = crate::purgers::tencent::default_limits();
            limits.rate_per_s = rate;
            for (_, l) in &mut limits.kinds {
                l.max_batch = max_batch;
            }
            Scripted {
                limits,
                latency: Duration::from_millis(10),
                split_above: usize::MAX,
                fail_once: Mutex::new(Vec::new()),
                sent: Mutex::new(Vec::new()),
            }
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
        async fn purge(&self, _kind: TargetKind, targets: &[String]) -> PurgeResponse {
            self.sent
                .lock()
                .unwrap()
                .push((Instant::now(), targets.to_vec()));
            tokio::time::sleep(self.latency).await;
            if targets.len() > self.split_above {
                return PurgeResponse::failed(
                    Verdict::Split,
                    PurgeError::Answer {
                        code: Some("TooMany".into()),
                        message: "too many".into(),
                    },
                );
            }
            let mut failing = self.fail_once.lock().unwrap();
            let mut resp = PurgeResponse::done(200, Some("rid".into()), None);
            for (index, t) in targets.iter().enumerate() {
                if let Some(at) = failing.iter().position(|f| f == t) {
                    failing.remove(at);
                    resp.failed.push(TargetFailure {
                        index,
                        verdict: Verdict::RetryLater { after: None },
                        error: PurgeError::Transport("reset".into()),
                        group: 1,
                    });
                }
            }
            resp
        }
    }

    fn direct(purger: Arc<Scripted>) -> DirectPurge {
        let cfg = crate::config::parse(
            r#"
            [providers.p]
            kind = "tencent-cdn"
            [[rules]]
            name = "r"
            bucket = "b"
            events = ["created"]
            domains = ["https://cdn.test"]
            provider = "p"
            "#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let stored: Vec<StoredRule> = cfg
            .rules
            .iter()
            .map(|r| StoredRule::from_config(&r.spec))
            .collect();
        let (planner, problems) = Planner::new(&stored, &cfg.providers, true);
        assert!(problems.is_empty(), "{problems:?}");
        DirectPurge::new(planner, vec![purger as Arc<dyn Purger>], 1000)
    }

    fn body(keys: &[&str]) -> Vec<u8> {
        let records: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "eventSource": "ceph:s3", "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": k}}
                })
            })
            .collect();
        serde_json::json!({ "Records": records })
            .to_string()
            .into_bytes()
    }

    fn sent_sizes(p: &Scripted) -> Vec<usize> {
        p.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.len())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_refused_as_too_large_is_halved_until_each_part_fits() {
        let p = Arc::new(Scripted {
            split_above: 2,
            ..Scripted::new(20.0, 1000)
        });
        let d = direct(Arc::clone(&p));
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = d
            .purge(&body(&["a", "b", "c", "d", "e"]), deadline)
            .await
            .unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.purged, 5);
        let sizes = sent_sizes(&p);
        assert_eq!(sizes[0], 5);
        assert_eq!(
            sizes.iter().filter(|&&n| n <= 2).sum::<usize>(),
            5,
            "{sizes:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_holds_inside_an_invocation() {
        let p = Arc::new(Scripted::new(2.0, 1));
        let d = direct(Arc::clone(&p));
        let deadline = Instant::now() + Duration::from_secs(30);
        let keys = ["a", "b", "c", "d", "e", "f"];
        let r = d.purge(&body(&keys), deadline).await.unwrap();
        assert_eq!(r.purged, 6);
        let times: Vec<Instant> = p.sent.lock().unwrap().iter().map(|(t, _)| *t).collect();
        for w in times.windows(3) {
            assert!(
                w[2] - w[0] >= Duration::from_secs(1),
                "three requests within one second: {times:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_slower_than_the_deadline_fails_its_targets_at_the_deadline() {
        let p = Arc::new(Scripted {
            latency: Duration::from_secs(30),
            ..Scripted::new(20.0, 1000)
        });
        let d = direct(Arc::clone(&p));
        let start = Instant::now();
        let r = d
            .purge(&body(&["a", "b"]), start + Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(r.failed, 2);
        assert!(!r.settled());
        assert!(r.targets[0].error.as_deref().unwrap().contains("deadline"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_that_failed_alone_is_sent_again_alone() {
        let p = Arc::new(Scripted::new(20.0, 1000));
        p.fail_once
            .lock()
            .unwrap()
            .push("https://cdn.test/b".into());
        let d = direct(Arc::clone(&p));
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = d.purge(&body(&["a", "b", "c"]), deadline).await.unwrap();
        assert!(r.ok, "{r:?}");
        let attempts: Vec<u32> = r.targets.iter().map(|t| t.attempts).collect();
        assert_eq!(attempts, [1, 2, 1]);
        let sent = p.sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].1, ["https://cdn.test/b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_job_cap_is_refused_before_anything_is_sent() {
        let p = Arc::new(Scripted::new(20.0, 1000));
        let d = DirectPurge {
            max_jobs: 2,
            ..direct(Arc::clone(&p))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = d
            .purge(&body(&["a", "b", "c"]), deadline)
            .await
            .unwrap_err();
        assert_eq!(err, DirectError::TooLarge { max: 2 });
        assert!(p.sent.lock().unwrap().is_empty());
        let err = d.purge(b"{\"Records\": [", deadline).await.unwrap_err();
        assert!(matches!(err, DirectError::Parse(_)), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_url_asked_for_twice_is_sent_once() {
        let p = Arc::new(Scripted::new(20.0, 1000));
        let d = direct(Arc::clone(&p));
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = d.purge(&body(&["a", "a", "b"]), deadline).await.unwrap();
        assert_eq!(r.events, 3);
        assert_eq!(r.targets.len(), 2);
        assert_eq!(sent_sizes(&p), [2]);
    }

    fn target(i: usize, outcome: Outcome) -> TargetReport {
        TargetReport {
            provider: "p".into(),
            lane: "p".into(),
            kind: "url",
            target: format!("https://cdn.test/{i}"),
            rules: vec!["r".into()],
            outcome,
            attempts: 1,
            request_id: None,
            task_id: None,
            error: None,
        }
    }

    #[test]
    fn a_trimmed_report_keeps_the_counts_and_what_was_not_purged() {
        let mut targets: Vec<TargetReport> = (0..10).map(|i| target(i, Outcome::Purged)).collect();
        targets.push(target(10, Outcome::Failed));
        targets.push(target(11, Outcome::Refused));
        let report = DirectReport {
            ok: false,
            events: 12,
            purged: 10,
            refused: 1,
            failed: 1,
            targets,
            targets_omitted: 0,
            skipped: Vec::new(),
            notices: Vec::new(),
        };
        assert_eq!(report.trimmed(100), report);
        let t = report.trimmed(3);
        assert_eq!((t.purged, t.refused, t.failed, t.events), (10, 1, 1, 12));
        assert_eq!(t.targets.len(), 3);
        assert_eq!(t.targets_omitted, 9);
        assert_eq!(t.targets[0].outcome, Outcome::Failed);
        assert_eq!(t.targets[1].outcome, Outcome::Refused);
        assert_eq!(t.targets[2].outcome, Outcome::Purged);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["targets_omitted"], 9);
        assert!(serde_json::to_value(&report).unwrap()["targets_omitted"].is_null());
    }
}
