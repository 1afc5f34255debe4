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

mod discard;
pub use discard::{DiscardTarget, Discarded};

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
        Ok(store.queue_depths().await?)
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
