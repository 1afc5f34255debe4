//! [`Admin`]: rules, the purge log, retries and queue status, in one place for every adapter
//! (the CLI today, the admin API and console next), each mapping [`AdminError`] once to its
//! own answer (exit code, HTTP status).

use crate::clock::Clock;
use crate::config::Config;
use crate::purgers::Providers;
use crate::rules::RuleRefusal;
use crate::store::{
    LaneDepth, LogQuery, LogRecord, Ms, RequestRecord, RetryFilter, RuleOrigin, Store, StoreError,
    StoredRule,
};
use edgepurge_core::{Rule, RuleSpec};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The rule does not pass the rule check.
    #[error(transparent)]
    Invalid(#[from] RuleRefusal),
    #[error("{0}")]
    NotFound(String),
    /// A name is taken, or the thing is owned by the config file.
    #[error("{0}")]
    Conflict(String),
    /// The store failed (retry later).
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(m),
            StoreError::Conflict(m) => AdminError::Conflict(m),
            other => AdminError::Store(other),
        }
    }
}

impl AdminError {
    /// The CLI's exit code: 2 for what the caller asked wrongly, 1 for failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Store(_) => 1,
            _ => 2,
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

pub struct Admin {
    /// `None` before any server created the store.
    store: Option<Arc<dyn Store>>,
    /// `None` when no config file is at hand (provider checks are then skipped).
    providers: Option<Providers>,
    config_rules: Vec<Rule>,
    store_path: String,
    clock: Clock,
}

impl Admin {
    /// `has_config`: the config was read from a file (so its providers are the truth).
    pub fn new(
        store: Option<Arc<dyn Store>>,
        cfg: &Config,
        has_config: bool,
        clock: Clock,
    ) -> Admin {
        Admin {
            store,
            providers: has_config.then(|| cfg.providers.clone()),
            config_rules: cfg.rules.clone(),
            store_path: cfg.store.describe(),
            clock,
        }
    }

    fn store(&self) -> AdminResult<&Arc<dyn Store>> {
        self.store.as_ref().ok_or_else(|| {
            AdminError::NotFound(format!(
                "no store at {}: start `edgepurge serve` once to create it, or pass --db PATH",
                self.store_path
            ))
        })
    }

    /// Whether provider accounts were checked (false without a config file).
    pub fn checks_providers(&self) -> bool {
        self.providers.is_some()
    }

    /// Every rule: stored ones, plus config file rules a server has not installed yet.
    pub async fn rules(&self) -> AdminResult<Vec<StoredRule>> {
        let mut rules = match &self.store {
            Some(s) => s.rules().await?,
            None => Vec::new(),
        };
        for r in &self.config_rules {
            if !rules.iter().any(|s| s.spec.name == r.spec.name) {
                rules.push(StoredRule::from_config(&r.spec));
            }
        }
        rules.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(rules)
    }

    /// What is wrong with rules added by `rule add` against this config: the rule check
    /// (an account removed, a mode it cannot purge) and names the config file now takes too.
    pub async fn stored_rule_problems(&self) -> AdminResult<Vec<String>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let added: Vec<StoredRule> = store
            .rules()
            .await?
            .into_iter()
            .filter(|r| r.origin == RuleOrigin::Cli)
            .collect();
        let providers = self.providers.clone().unwrap_or_default();
        let (_, mut problems) = super::Planner::new(&added, &providers, true);
        for r in &added {
            if self.config_rules.iter().any(|c| c.spec.name == r.spec.name) {
                problems.push(format!(
                    "rule {:?} is in the config file and was also added with `edgepurge rule \
                     add`; serve will refuse to start until one is renamed or deleted",
                    r.spec.name
                ));
            }
        }
        Ok(problems)
    }

    /// The rules a server started now would apply: the config file's as written now (not as
    /// last installed) and those added with `rule add`.
    /// A config rule a server installed as it is written now keeps its installation time.
    pub async fn rules_as_configured(&self) -> AdminResult<Vec<StoredRule>> {
        let stored = match &self.store {
            Some(s) => s.rules().await?,
            None => Vec::new(),
        };
        let mut rules: Vec<StoredRule> = self
            .config_rules
            .iter()
            .map(|r| {
                stored
                    .iter()
                    .find(|s| s.origin == RuleOrigin::Config && s.spec == r.spec)
                    .cloned()
                    .unwrap_or_else(|| StoredRule::from_config(&r.spec))
            })
            .collect();
        rules.extend(stored.into_iter().filter(|r| r.origin == RuleOrigin::Cli));
        Ok(rules)
    }

    pub async fn rule(&self, name: &str) -> AdminResult<StoredRule> {
        let mut rules = self.rules().await?;
        match rules.iter().position(|r| r.spec.name == name) {
            Some(i) => Ok(rules.swap_remove(i)),
            None => Err(no_such_rule(name, &rules)),
        }
    }

    /// Adds a rule after the one rule check.
    pub async fn add_rule(&self, spec: RuleSpec) -> AdminResult<Rule> {
        let rule = crate::rules::check(spec, self.providers.as_ref())?;
        if self
            .config_rules
            .iter()
            .any(|r| r.spec.name == rule.spec.name)
        {
            return Err(AdminError::Conflict(crate::rules::owned_by_config(
                &rule.spec.name,
            )));
        }
        self.store()?
            .add_rule(rule.spec.clone(), self.clock.now_ms())
            .await?;
        Ok(rule)
    }

    pub async fn delete_rule(&self, name: &str) -> AdminResult<()> {
        self.changeable(name).await?;
        self.store()?.delete_rule(name).await?;
        Ok(())
    }

    pub async fn set_rule_enabled(&self, name: &str, enabled: bool) -> AdminResult<()> {
        self.changeable(name).await?;
        self.store()?
            .set_rule_enabled(name, enabled, self.clock.now_ms())
            .await?;
        Ok(())
    }

    /// A rule that `delete` and `enable`/`disable` may change: one of the config file (as it
    /// is now, even before a server installed it) is refused with the one message for that;
    /// an unknown name gets a suggestion.
    async fn changeable(&self, name: &str) -> AdminResult<()> {
        if self.config_rules.iter().any(|r| r.spec.name == name) {
            return Err(AdminError::Conflict(crate::rules::owned_by_config(name)));
        }
        self.require_rule(name).await
    }

    /// `Ok` when a rule of this name exists (added, or in the config file), else `NotFound`
    /// naming the closest name: for filters (`log --rule`, `retry --rule`) that would
    /// otherwise quietly match nothing.
    pub async fn require_rule(&self, name: &str) -> AdminResult<()> {
        let rules = self.rules().await?;
        if rules.iter().any(|r| r.spec.name == name) {
            Ok(())
        } else {
            Err(no_such_rule(name, &rules))
        }
    }

    pub async fn log(&self, query: LogQuery) -> AdminResult<Vec<LogRecord>> {
        Ok(self.store()?.log(query).await?)
    }

    pub async fn log_cursor(&self) -> AdminResult<i64> {
        Ok(self.store()?.log_cursor().await?)
    }

    /// The newest `limit` provider requests since `since`, numbered below `before` when
    /// given (oldest first).
    pub async fn requests(
        &self,
        since: Option<Ms>,
        before: Option<i64>,
        limit: usize,
    ) -> AdminResult<Vec<RequestRecord>> {
        Ok(self.store()?.requests(since, before, limit).await?)
    }

    /// [`Admin::requests`] with the given outcome only (`succeeded`, `retry`, `split`,
    /// `quota`, `held`, `dead`): the newest `limit` of them since `since`, oldest first,
    /// read back in pages until enough are found.
    pub async fn requests_with_outcome(
        &self,
        outcome: &str,
        since: Option<Ms>,
        limit: usize,
    ) -> AdminResult<Vec<RequestRecord>> {
        const PAGE: usize = 1000;
        let store = self.store()?;
        let mut found: Vec<RequestRecord> = Vec::new();
        let mut before = None;
        while found.len() < limit {
            let page = store.requests(since, before, PAGE).await?;
            let Some(first) = page.first() else {
                break;
            };
            before = Some(first.id);
            let full = page.len() == PAGE;
            // Pages are oldest first: the newest matches of this page go first.
            found.extend(page.into_iter().rev().filter(|r| r.outcome == outcome));
            if !full {
                break;
            }
        }
        found.truncate(limit);
        found.reverse();
        Ok(found)
    }

    /// The queue: each lane's depths, and per account the targets stored once and not yet
    /// fanned out into its lanes' jobs.
    pub async fn status(&self) -> AdminResult<(Vec<LaneDepth>, Vec<crate::store::FanoutDepth>)> {
        let store = self.store()?;
        Ok((store.depths().await?, store.fanout_depths().await?))
    }

    /// Re-queues dead letters, of one provider account's lanes and/or holding a purge of one
    /// rule.
    pub async fn retry(&self, provider: Option<&str>, rule: Option<&str>) -> AdminResult<u64> {
        let lanes = match (provider, &self.providers) {
            // Every lane an account serves: dead letters of a lane no account serves (work
            // discarded when its account went away) would only queue up again, unsent.
            (None, Some(providers)) => Some(
                providers
                    .values()
                    .flat_map(|p| p.lanes())
                    .collect::<Vec<String>>(),
            ),
            (None, None) => None,
            (Some(p), Some(providers)) => match providers.get(p) {
                Some(account) => Some(account.lanes()),
                None => {
                    return Err(AdminError::NotFound(format!(
                        "provider {p:?} is not in the config{} (configured: {})",
                        crate::rules::did_you_mean(p, providers.keys().map(String::as_str)),
                        providers.keys().cloned().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
            // No config at hand: the account name is its lane (http-purge lanes need the
            // config to be named).
            (Some(p), None) => Some(vec![p.to_owned()]),
        };
        if let Some(r) = rule {
            self.require_rule(r).await?;
        }
        Ok(self
            .store()?
            .retry_dead(
                RetryFilter {
                    lanes,
                    rule: rule.map(str::to_owned),
                },
                self.clock.now_ms(),
            )
            .await?)
    }
}

impl Admin {
    /// Whether a provider account of the config serves `lane` (`None`: no config file at
    /// hand, so it cannot be told).
    pub fn serves(&self, lane: &str) -> Option<bool> {
        let providers = self.providers.as_ref()?;
        Some(serving_account(providers, lane).is_some())
    }

    /// Lanes holding work (pending, waiting or in flight) that no provider account of the
    /// config serves: nothing will ever send it. Empty without a config at hand.
    pub async fn unserved_lanes(&self) -> AdminResult<Vec<LaneDepth>> {
        let (Some(providers), Some(store)) = (&self.providers, &self.store) else {
            return Ok(Vec::new());
        };
        Ok(store
            .depths()
            .await?
            .into_iter()
            .filter(|d| d.pending + d.waiting_batches + d.inflight_batches > 0)
            .filter(|d| serving_account(providers, &d.lane).is_none())
            .collect())
    }

    /// Moves the queued work of a lane that no provider account of the config serves (its
    /// account was removed or renamed, so nothing will ever send it) to the dead letters: its
    /// log records show `dead` with the reason, and `edgepurge retry` queues them again once
    /// the account is back. What waits for a quota day or a rule's `min_interval_ms` is left
    /// and said (`waiting_until`); batches in flight under a live holder's lease are not
    /// touched (the lane is refused while another process holds it).
    pub async fn discard(&self, lane: &str) -> AdminResult<Discarded> {
        check_lane_name(lane)?;
        let Some(providers) = &self.providers else {
            return Err(AdminError::Conflict(
                "discard needs the config file (--config or EDGEPURGE_CONFIG) to tell which \
                 lanes its provider accounts serve"
                    .to_owned(),
            ));
        };
        if let Some(account) = serving_account(providers, lane) {
            return Err(AdminError::Conflict(format!(
                "lane {lane:?} is served by provider account {account:?} of the config: its \
                 work is being purged (only a lane no account serves any more can be discarded)"
            )));
        }
        let store = self.store()?;
        let depths = store.depths().await?;
        let has_work = |d: &LaneDepth| d.pending + d.waiting_batches + d.inflight_batches > 0;
        let Some(depth) = depths.iter().find(|d| d.lane == lane && has_work(d)) else {
            let dead = depths
                .iter()
                .find(|d| d.lane == lane)
                .map_or(0, |d| d.dead_batches);
            let unserved: Vec<&str> = depths
                .iter()
                .filter(|d| has_work(d) && serving_account(providers, &d.lane).is_none())
                .map(|d| d.lane.as_str())
                .collect();
            return Err(AdminError::NotFound(format!(
                "lane {lane:?} holds no queued work{}{} (lanes no account serves: {})",
                if dead > 0 {
                    format!(" (its {dead} dead batch(es) are dead letters already)")
                } else {
                    String::new()
                },
                crate::rules::did_you_mean(lane, unserved.iter().copied()),
                if unserved.is_empty() {
                    "none".to_owned()
                } else {
                    unserved.join(", ")
                }
            )));
        };
        // Unique: two discards never share (and release) one lease.
        let owner = format!("discard:{}:{}", std::process::id(), uuid::Uuid::new_v4());
        let Some(lease) = store.acquire_lane(lane, &owner, DISCARD_LEASE_MS).await? else {
            return Err(AdminError::Conflict(format!(
                "lane {lane:?} is held by another process (a node whose config still serves \
                 it?): stop it or remove the account from its config, then discard again"
            )));
        };
        let mut out = Discarded {
            dead_before: depth.dead_batches,
            ..Discarded::default()
        };
        let result = self
            .discard_held(store.as_ref(), lane, &owner, lease.token, &mut out)
            .await;
        let _ = store.release_lane(lane, &owner).await;
        match result {
            Ok(()) => Ok(out),
            Err(StoreError::LeaseLost { why, .. }) => Err(AdminError::Conflict(format!(
                "lane {lane:?} was taken by another process while its work was being discarded \
                 ({why}): {} target(s) in {} batch(es) were moved to the dead letters before; \
                 see `edgepurge status`",
                out.targets, out.batches
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn discard_held(
        &self,
        store: &dyn Store,
        lane: &str,
        owner: &str,
        token: i64,
        out: &mut Discarded,
    ) -> crate::store::StoreResult<()> {
        use crate::limits::KindLimits;
        use crate::queue::{Claim, ClaimRequest, Finish, FinishOutcome};
        use edgepurge_core::TargetKind;
        let now = self.clock.now_ms();
        // Batches waiting after a failure are due now.
        store.release_held(lane, now).await?;
        let limits = KindLimits {
            max_batch: DISCARD_BATCH,
            daily_quota: None,
        };
        loop {
            // Renewed before each batch: a large lane may take longer than one lease.
            if store
                .acquire_lane(lane, owner, DISCARD_LEASE_MS)
                .await?
                .is_none_or(|l| l.token != token)
            {
                return Err(StoreError::LeaseLost {
                    lane: lane.to_owned(),
                    why: "its lease went to another holder".to_owned(),
                });
            }
            let now = self.clock.now_ms();
            let claim = store
                .claim(ClaimRequest {
                    lane: lane.to_owned(),
                    owner: owner.to_owned(),
                    token,
                    now,
                    linger_ms: 0,
                    kinds: [TargetKind::Url, TargetKind::Dir, TargetKind::Tag]
                        .into_iter()
                        .map(|k| (k, limits))
                        .collect(),
                    quota_day: 0,
                    quota_reset_at: 0,
                    collapse_to_dir_over: None,
                    fanout: None,
                })
                .await?;
            let batch = match claim {
                Claim::Batch(b) => b,
                Claim::Wait { until, .. } => {
                    out.waiting_until = Some(until);
                    break;
                }
                Claim::Idle => break,
            };
            store
                .finish(Finish {
                    batch_id: batch.id,
                    token,
                    started_at: now,
                    now,
                    outcome: FinishOutcome::Dead,
                    http_status: None,
                    request_id: None,
                    task_id: None,
                    error: Some(format!(
                        "not sent: discarded (`edgepurge discard --lane {lane}`): no provider \
                         account of the config serves lane {lane:?}; `edgepurge retry` queues \
                         it again once the account is back"
                    )),
                    detached: Vec::new(),
                    follow_task_at: None,
                })
                .await?;
            out.batches += 1;
            out.targets += batch.targets.len() as u64;
        }
        Ok(())
    }
}

/// A lane name as the config makes them (`ACCOUNT` or `ACCOUNT@NODE`): printable ASCII
/// without spaces, at most 300 bytes; anything else is refused before any lookup.
fn check_lane_name(lane: &str) -> AdminResult<()> {
    if lane.is_empty() || lane.len() > 300 || !lane.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AdminError::NotFound(format!(
            "{:?} is not a lane name (see `edgepurge status` for the lanes)",
            crate::purgers::snippet(lane, 80)
        )));
    }
    Ok(())
}

/// The account of the config whose lanes include `lane`.
fn serving_account<'a>(providers: &'a Providers, lane: &str) -> Option<&'a str> {
    providers
        .iter()
        .find(|(_, p)| p.lanes().iter().any(|l| l == lane))
        .map(|(name, _)| name.as_str())
}

/// How long `discard` holds the lane (released when done).
const DISCARD_LEASE_MS: i64 = 60_000;
/// Targets per dead batch `discard` makes.
const DISCARD_BATCH: usize = 1000;

/// What `discard` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Discarded {
    /// Batches moved to the dead letters, and the targets in them.
    pub batches: u64,
    pub targets: u64,
    /// Dead batches the lane held before (dead letters already, left as they are).
    pub dead_before: u64,
    /// Work left because it waits for a quota day or a rule's `min_interval_ms`: discard
    /// again after this time.
    pub waiting_until: Option<Ms>,
}

/// `no rule named "x" (did you mean "y"?)`, with where to look.
fn no_such_rule(name: &str, rules: &[StoredRule]) -> AdminError {
    AdminError::NotFound(format!(
        "no rule named {name:?}{} (see `edgepurge rule list`)",
        crate::rules::did_you_mean(name, rules.iter().map(|r| r.spec.name.as_str()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteOptions, SqliteStore};
    use edgepurge_core::Mode;

    fn cfg() -> Config {
        crate::config::parse(
            "[providers.tencent]\nkind = \"tencent-cdn\"\n\
             [[rules]]\nname = \"file-rule\"\nbucket = \"b\"\nevents = [\"created\"]\n\
             domains = [\"https://cdn.example.com\"]\nprovider = \"tencent\"\n",
        )
        .unwrap()
        .validate()
        .unwrap()
    }

    fn spec(name: &str, mode: Mode) -> RuleSpec {
        crate::rules::example(name, "tencent", mode)
    }

    async fn admin() -> (tempfile::TempDir, Admin) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_blocking(&dir.path().join("t.db"), SqliteOptions::default())
            .await
            .unwrap();
        let a = Admin::new(Some(Arc::new(store)), &cfg(), true, Clock::system());
        (dir, a)
    }

    #[tokio::test]
    async fn a_tag_rule_on_tencent_is_refused_with_the_reason_and_not_stored() {
        let (_d, a) = admin().await;
        let err = a.add_rule(spec("tags", Mode::Tag)).await.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("cannot purge with mode = \"tag\""),
            "{err}"
        );
        assert!(a
            .rules()
            .await
            .unwrap()
            .iter()
            .all(|r| r.spec.name != "tags"));
        a.add_rule(spec("urls", Mode::Url)).await.unwrap();
        assert!(a.rule("urls").await.is_ok());
    }

    #[tokio::test]
    async fn a_min_interval_over_a_day_is_refused_and_a_valid_one_is_kept() {
        let (_d, a) = admin().await;
        let too_long = RuleSpec {
            min_interval_ms: edgepurge_core::rule::MAX_MIN_INTERVAL_MS + 1,
            ..spec("hot", Mode::Url)
        };
        let err = a.add_rule(too_long).await.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("min_interval_ms"), "{err}");
        assert!(a.rule("hot").await.is_err(), "nothing stored");
        let ok = RuleSpec {
            min_interval_ms: 5_000,
            ..spec("hot", Mode::Url)
        };
        a.add_rule(ok).await.unwrap();
        assert_eq!(a.rule("hot").await.unwrap().spec.min_interval_ms, 5_000);
    }

    #[tokio::test]
    async fn config_rules_are_listed_and_their_names_are_taken() {
        let (_d, a) = admin().await;
        let names: Vec<String> = a
            .rules()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.spec.name)
            .collect();
        assert_eq!(names, vec!["file-rule"]);
        let err = a.add_rule(spec("file-rule", Mode::Url)).await.unwrap_err();
        assert!(matches!(err, AdminError::Conflict(_)), "{err}");
    }

    #[tokio::test]
    async fn retrying_an_unknown_provider_or_rule_says_so() {
        let (_d, a) = admin().await;
        let err = a.retry(Some("nope"), None).await.unwrap_err();
        assert!(matches!(err, AdminError::NotFound(_)) && err.to_string().contains("tencent"));
        let err = a.retry(None, Some("nope")).await.unwrap_err();
        assert!(matches!(err, AdminError::NotFound(_)), "{err}");
        assert_eq!(
            a.retry(Some("tencent"), Some("file-rule")).await.unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn a_config_rule_gets_one_message_for_every_change_and_names_get_suggestions() {
        let (_d, a) = admin().await;
        let said = |e: AdminError| {
            assert!(matches!(e, AdminError::Conflict(_)), "{e}");
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        };
        let add = said(a.add_rule(spec("file-rule", Mode::Url)).await.unwrap_err());
        assert_eq!(add, crate::rules::owned_by_config("file-rule"));
        assert_eq!(said(a.delete_rule("file-rule").await.unwrap_err()), add);
        assert_eq!(
            said(a.set_rule_enabled("file-rule", false).await.unwrap_err()),
            add
        );
        let err = a.rule("file-rul").await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no rule named \"file-rul\" (did you mean \"file-rule\"?)"),
            "{err}"
        );
        assert!(a.require_rule("file-rule").await.is_ok());
        let err = a.delete_rule("zzz").await.unwrap_err();
        assert!(matches!(err, AdminError::NotFound(_)), "{err}");
        assert!(!err.to_string().contains("did you mean"), "{err}");
        let err = a.retry(Some("tencnet"), None).await.unwrap_err();
        assert!(
            err.to_string().contains("(did you mean \"tencent\"?)"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_a_store_reads_say_how_to_make_one() {
        let a = Admin::new(None, &cfg(), true, Clock::system());
        assert_eq!(a.rules().await.unwrap().len(), 1);
        let err = a.status().await.unwrap_err();
        assert!(err.to_string().contains("edgepurge serve"), "{err}");
    }
}
