//! From events to log records and queue jobs: match rules, expand each target to the lanes
//! of its provider account. Pure; the [`super::Ingestor`] stores the result.
//!
//! A target of an account with several lanes (an `http-purge` account: one lane per cache
//! node) is planned once, as a fan-out target the store expands into the lanes' jobs in
//! bounded slices ([`crate::queue::fanout`]), so a body's size in rows and time does not grow
//! with the node count. [`Planner::expanded`] plans every lane's job at once instead (function
//! mode sends them itself, with no store).

use crate::purgers::Providers;
use crate::rules::RuleRefusal;
use crate::store::{EventInfo, FanoutJob, IngestRecord, LaneJob, RuleOrigin, StoredRule};
use edgepurge_core::{plan, Event, Rule, Target, TargetKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The rules in force, with where each provider account's targets go.
#[derive(Debug, Clone, Default)]
pub struct Planner {
    rules: Vec<Rule>,
    providers: Providers,
    lanes: BTreeMap<String, Arc<[String]>>,
    record_unmatched: bool,
    /// Targets of accounts with several lanes are planned once (fan-out), not per lane.
    fanout: bool,
}

/// Planning stopped: the records would hold more than `max` queue jobs (a fan-out target,
/// stored once whatever its account's lane count, counts as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyJobs {
    pub max: usize,
}

impl Planner {
    /// Builds a planner from stored rules. Rules that no longer pass the rule check (an
    /// account removed from the config, a mode it cannot purge) are left out; the returned
    /// messages say which and why.
    pub fn new(
        stored: &[StoredRule],
        providers: &Providers,
        record_unmatched: bool,
    ) -> (Planner, Vec<String>) {
        let lanes: BTreeMap<String, Arc<[String]>> = providers
            .iter()
            .map(|(name, p)| (name.clone(), p.lanes().into()))
            .collect();
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for s in stored {
            // A rule with several accounts keeps purging through the accounts still fit for
            // it: one account removed from the config does not stop the others' purges.
            let mut spec = s.spec.clone();
            let mut dropped = Vec::new();
            let checked = loop {
                match crate::rules::check(spec.clone(), Some(providers)) {
                    Err(
                        RuleRefusal::UnknownProvider { ref provider, .. }
                        | RuleRefusal::Unsupported { ref provider, .. },
                    ) if spec.providers.len() > 1 => {
                        let provider = provider.clone();
                        spec.providers.retain(|p| *p != provider);
                        dropped.push(provider);
                    }
                    // Accepted once, and its account can no longer prefetch (the config
                    // changed): it still purges, without warming.
                    Err(ref e @ RuleRefusal::CannotWarm { .. }) => {
                        problems.push(format!("{e}; its purges go on without warming"));
                        spec.warm = false;
                    }
                    // Accepted once, and its account now has several nodes: it still
                    // purges, after every change.
                    Err(ref e @ RuleRefusal::IntervalNeedsOneLane { .. }) => {
                        problems.push(format!("{e}; its purges go on without an interval"));
                        spec.min_interval_ms = 0;
                    }
                    other => break other,
                }
            };
            if let (Ok(_), false) = (&checked, dropped.is_empty()) {
                problems.push(format!(
                    "rule {:?}: provider(s) {} not configured or unfit for its mode; it purges \
                     through {} only (fix the config's providers, or replace the rule)",
                    s.spec.name,
                    dropped.join(", "),
                    spec.providers.join(", ")
                ));
            }
            match checked {
                Ok(rule) => rules.push(rule),
                Err(e) => {
                    let fix = match (&e, s.origin) {
                        (RuleRefusal::Invalid(_), _) | (_, RuleOrigin::Config) => {
                            "fix it in the config file".to_owned()
                        }
                        (_, RuleOrigin::Cli) => format!(
                            "fix the config's providers, or `edgepurge rule delete {}`",
                            s.spec.name
                        ),
                    };
                    problems.push(format!("{e}; the rule is ignored ({fix})"));
                }
            }
        }
        (
            Planner {
                rules,
                providers: providers.clone(),
                lanes,
                record_unmatched,
                fanout: true,
            },
            problems,
        )
    }

    /// This planner, planning one job per lane for every target (no fan-out targets): for
    /// callers that send the jobs themselves rather than store them.
    pub fn expanded(mut self) -> Planner {
        self.fanout = false;
        self
    }

    /// Whether `provider`'s targets are planned as fan-out targets.
    fn fans_out(&self, provider: &str) -> bool {
        self.fanout && self.lanes_of(provider).len() > 1
    }

    /// Queue rows one target of `provider` adds: one, or one per lane.
    fn rows_per_target(&self, provider: &str) -> usize {
        if self.fans_out(provider) {
            1
        } else {
            self.lanes_of(provider).len()
        }
    }

    /// A planner for `stored` rules with this one's providers and settings (rules changed
    /// while the server runs).
    pub fn with_rules(&self, stored: &[StoredRule]) -> (Planner, Vec<String>) {
        let (mut p, problems) = Planner::new(stored, &self.providers, self.record_unmatched);
        p.fanout = self.fanout;
        (p, problems)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn lanes_of(&self, provider: &str) -> &[String] {
        self.lanes.get(provider).map(|l| &l[..]).unwrap_or(&[])
    }

    /// One record per target purged by hand through `provider` (already checked to exist and
    /// support `kind`).
    pub fn manual_records(
        &self,
        provider: &str,
        kind: TargetKind,
        targets: &[String],
    ) -> Vec<IngestRecord> {
        let lanes = self.lanes_of(provider);
        let fans_out = self.fans_out(provider);
        targets
            .iter()
            .map(|t| IngestRecord {
                event: EventInfo {
                    format: "manual".into(),
                    name: "manual".into(),
                    bucket: String::new(),
                    key: t.clone(),
                    id: None,
                    etag: None,
                    size: None,
                },
                rule: None,
                provider: Some(provider.to_owned()),
                targets: vec![t.clone()],
                jobs: if fans_out {
                    Vec::new()
                } else {
                    lanes
                        .iter()
                        .map(|lane| LaneJob {
                            lane: lane.clone(),
                            kind,
                            target: t.clone(),
                        })
                        .collect()
                },
                fanout: if fans_out {
                    vec![FanoutJob {
                        account: provider.to_owned(),
                        lanes: self
                            .lanes
                            .get(provider)
                            .cloned()
                            .unwrap_or_else(|| Arc::from([])),
                        kind,
                        target: t.clone(),
                    }]
                } else {
                    Vec::new()
                },
                min_interval_ms: 0,
                allow_host_purge: false,
                note: None,
                verify: None,
                warm: None,
            })
            .collect()
    }

    /// One record per event and matching rule; one per unmatched event if configured.
    pub fn records(&self, events: &[Event]) -> Vec<IngestRecord> {
        self.records_owned(events.to_vec())
    }

    /// [`Planner::records`], letting go of each event as soon as its records are made (a
    /// large body's events and records are not all held twice).
    pub fn records_owned(&self, events: Vec<Event>) -> Vec<IngestRecord> {
        // No cap: never refused.
        self.records_within(events, usize::MAX).unwrap_or_default()
    }

    /// [`Planner::records_owned`], refusing as soon as the records would hold more than
    /// `max_jobs` jobs, before those are built (a body fanned out to many lanes is refused
    /// without first taking the memory for all of it).
    pub fn records_within(
        &self,
        events: Vec<Event>,
        max_jobs: usize,
    ) -> Result<Vec<IngestRecord>, TooManyJobs> {
        let mut out = Vec::with_capacity(events.len());
        let mut jobs = 0usize;
        for event in events {
            self.event_records(&event, &mut jobs, max_jobs, &mut |r| out.push(r))?;
        }
        Ok(out)
    }

    /// What [`Planner::event_records`] would make of `event`, counted without making it: the
    /// number of records, each job's lane handed to `lane`, and `jobs` counted against
    /// `max_jobs` in the same way.
    pub fn count_event_records(
        &self,
        event: &Event,
        jobs: &mut usize,
        max_jobs: usize,
        lane: &mut dyn FnMut(&str),
    ) -> Result<usize, TooManyJobs> {
        let matches = plan(&self.rules, event);
        if matches.is_empty() {
            return Ok(usize::from(self.record_unmatched));
        }
        for m in &matches {
            let rows: usize = m
                .targets
                .iter()
                .map(|t| self.rows_per_target(&t.provider))
                .sum();
            *jobs = jobs.saturating_add(rows);
            if *jobs > max_jobs {
                return Err(TooManyJobs { max: max_jobs });
            }
            // Every lane of the target's account hears of it (a fan-out target too: any of
            // its lanes expands it), as `Ingestor::commit` counts them.
            m.targets
                .iter()
                .flat_map(|t| self.lanes_of(&t.provider))
                .for_each(|l| lane(l));
        }
        Ok(matches.len())
    }

    /// The records of one event, each handed to `f`: one per matching rule and account, or
    /// one if nothing matches and unmatched events are recorded. `jobs` counts the jobs of
    /// every record so far; planning stops before a record would take it over `max_jobs`.
    pub fn event_records(
        &self,
        event: &Event,
        jobs: &mut usize,
        max_jobs: usize,
        f: &mut dyn FnMut(IngestRecord),
    ) -> Result<(), TooManyJobs> {
        let info = EventInfo {
            format: event.format.as_str().to_owned(),
            name: event.name.clone(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            id: event.id.clone(),
            etag: event.etag.clone(),
            size: event.size,
        };
        let matches = plan(&self.rules, event);
        if matches.is_empty() {
            if self.record_unmatched {
                f(IngestRecord {
                    event: info,
                    rule: None,
                    provider: None,
                    targets: Vec::new(),
                    jobs: Vec::new(),
                    verify: None,
                    warm: None,
                    min_interval_ms: 0,
                    fanout: Vec::new(),
                    allow_host_purge: false,
                    note: Some(format!(
                        "no enabled rule matches bucket {:?}, event {}, key {:?}",
                        event.bucket, event.name, event.key
                    )),
                });
            }
            return Ok(());
        }
        let last = matches.len() - 1;
        let mut info = Some(info);
        for (i, m) in matches.into_iter().enumerate() {
            let n: usize = m
                .targets
                .iter()
                .map(|t| self.rows_per_target(&t.provider))
                .sum();
            *jobs = jobs.saturating_add(n);
            if *jobs > max_jobs {
                return Err(TooManyJobs { max: max_jobs });
            }
            let tags_encoded = edgepurge_core::tags::has_separator(&event.key)
                && m.targets.iter().any(|t| t.kind == TargetKind::Tag);
            let note = if tags_encoded {
                Some(
                    "key holds ',' or ';', which separate cache tags: they are encoded \
                     (%2C, %3B) in its tags, so the key cannot name another tag"
                        .to_owned(),
                )
            } else {
                m.targets.is_empty().then(|| {
                    if event.key.ends_with('/') {
                        "folder marker: nothing to purge".to_owned()
                    } else if edgepurge_core::rule::has_dot_segment(&event.key) {
                        "key has a '.' or '..' path segment, which no URL addresses: nothing \
                         purged"
                            .to_owned()
                    } else {
                        "key is outside the rule's strip_prefix or renders no tag: nothing to \
                         purge"
                            .to_owned()
                    }
                })
            };
            let rule = self.rules.iter().find(|r| r.spec.name == m.rule);
            // Held after a purge of the same target for the rule's minimum interval.
            let min_interval_ms = rule.map_or(0, |r| {
                i64::try_from(r.spec.min_interval_ms).unwrap_or(i64::MAX)
            });
            // Verified after the purge when its rule asks (nothing purged: nothing to verify).
            let verify = rule
                .filter(|r| r.spec.verify && !m.targets.is_empty())
                .map(|_| {
                    crate::dispatch::verify::judge::start(
                        &event.name,
                        event.etag.as_deref(),
                        event.size,
                        m.targets.iter().map(|t| t.kind),
                    )
                });
            // Warmed after the purge (and its verification) when its rule asks.
            let warm = rule
                .filter(|r| r.spec.warm && !m.targets.is_empty())
                .map(|_| {
                    crate::dispatch::warm::start(&event.name, m.targets.iter().map(|t| t.kind))
                });
            let allow_host_purge = rule.is_some_and(|r| r.spec.allow_host_purge);
            // The last record takes the event's fields; earlier ones copy them.
            let event = if i == last {
                info.take().unwrap_or_default()
            } else {
                info.clone().unwrap_or_default()
            };
            f(IngestRecord {
                event,
                verify,
                warm,
                min_interval_ms,
                allow_host_purge,
                jobs: self.jobs(&m.targets),
                fanout: self.fanout_jobs(&m.targets),
                targets: m.targets.into_iter().map(|t| t.target).collect(),
                rule: Some(m.rule),
                provider: Some(m.provider),
                note,
            });
        }
        Ok(())
    }

    /// The fan-out targets among `targets`: those of accounts with several lanes, each
    /// stored once for all of its account's lanes.
    pub fn fanout_jobs(&self, targets: &[Target]) -> Vec<FanoutJob> {
        targets
            .iter()
            .filter(|t| self.fans_out(&t.provider))
            .filter_map(|t| {
                Some(FanoutJob {
                    account: t.provider.clone(),
                    lanes: Arc::clone(self.lanes.get(&t.provider)?),
                    kind: t.kind,
                    target: t.target.clone(),
                })
            })
            .collect()
    }

    /// A target becomes one job per lane of its provider account (unless it fans out:
    /// [`Planner::fanout_jobs`]).
    pub fn jobs(&self, targets: &[Target]) -> Vec<LaneJob> {
        // Sized once: a body's records hold tens of thousands of these lists, and a list
        // grown by pushing keeps room for four.
        let n = targets
            .iter()
            .filter(|t| !self.fans_out(&t.provider))
            .map(|t| self.lanes_of(&t.provider).len())
            .sum();
        let mut jobs = Vec::with_capacity(n);
        for t in targets.iter().filter(|t| !self.fans_out(&t.provider)) {
            for lane in self.lanes_of(&t.provider) {
                jobs.push(LaneJob {
                    lane: lane.clone(),
                    kind: t.kind,
                    target: t.target.clone(),
                });
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::store::Verified;
    use edgepurge_core::parse_body;

    fn planner(unmatched: bool) -> (Planner, Vec<String>) {
        let cfg = parse(
            r#"
            [providers.tencent]
            kind = "tencent-cdn"
            [[rules]]
            name = "imgs"
            bucket = "assets"
            events = ["created"]
            prefix = "img/"
            domains = ["https://cdn.example.com", "https://img.example.com"]
            provider = "tencent"
            "#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let mut stored: Vec<StoredRule> = cfg
            .rules
            .iter()
            .map(|r| StoredRule::from_config(&r.spec))
            .collect();
        let mut orphan = cfg.rules[0].spec.clone();
        orphan.name = "orphan".into();
        orphan.provider = "gone".into();
        stored.push(StoredRule {
            spec: orphan,
            origin: RuleOrigin::Cli,
            created_at: 0,
        });
        Planner::new(&stored, &cfg.providers, unmatched)
    }

    #[test]
    fn rules_with_unknown_providers_are_left_out_and_reported() {
        let (p, problems) = planner(true);
        assert_eq!(p.rules().len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("rule \"orphan\": provider \"gone\" is not defined")
                && problems[0].contains("the rule is ignored")
                && problems[0].contains("edgepurge rule delete orphan"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_rule_keeps_its_other_accounts_when_one_is_removed() {
        let (p, _) = planner(true);
        let mut both = p.rules()[0].spec.clone();
        both.name = "both".into();
        both.provider = String::new();
        both.providers = vec!["gone".into(), "tencent".into()];
        let stored = [StoredRule {
            spec: both,
            origin: RuleOrigin::Cli,
            created_at: 0,
        }];
        let (p2, problems) = Planner::new(&stored, p.providers(), true);
        assert_eq!(p2.rules().len(), 1);
        assert_eq!(p2.rules()[0].spec.providers, vec!["tencent"]);
        assert!(
            problems.len() == 1
                && problems[0].contains("provider(s) gone")
                && problems[0].contains("through tencent only"),
            "{problems:?}"
        );
        // Every account gone: the rule is left out, as a one-account rule would be.
        let mut none = stored[0].spec.clone();
        none.providers = vec!["gone".into(), "away".into()];
        let (p3, problems) = Planner::new(
            &[StoredRule {
                spec: none,
                origin: RuleOrigin::Cli,
                created_at: 0,
            }],
            p.providers(),
            true,
        );
        assert!(p3.rules().is_empty());
        assert!(
            problems.iter().any(|m| m.contains("the rule is ignored")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_stored_tag_rule_for_tencent_is_left_out_with_the_reason() {
        let (p, _) = planner(true);
        let mut tag = p.rules()[0].spec.clone();
        tag.name = "tags".into();
        tag.mode = edgepurge_core::Mode::Tag;
        tag.tags = vec!["{seg1}".into()];
        let stored = [StoredRule {
            spec: tag,
            origin: RuleOrigin::Cli,
            created_at: 0,
        }];
        let (p2, problems) = Planner::new(&stored, p.providers(), true);
        assert!(p2.rules().is_empty());
        assert!(
            problems[0].contains("cannot purge with mode = \"tag\"")
                && problems[0].contains("the rule is ignored"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_rule_with_several_accounts_logs_one_record_per_account() {
        let cfg = parse(
            r#"
            [providers.tencent]
            kind = "tencent-cdn"
            [providers.edge]
            kind = "http-purge"
            preset = "varnish"
            nodes = ["127.0.0.1:6081", "127.0.0.2:6081"]
            [[rules]]
            name = "both"
            bucket = "assets"
            events = ["created"]
            domains = ["https://cdn.example.com"]
            providers = ["tencent", "edge"]
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
        let (p, problems) = Planner::new(&stored, &cfg.providers, true);
        assert!(problems.is_empty(), "{problems:?}");
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../edgepurge-core/fixtures/events/ceph-put.json"
        ))
        .unwrap();
        let recs = p.records(&parse_body(&body).unwrap().events);
        assert_eq!(
            recs.iter()
                .map(|r| (r.rule.as_deref(), r.provider.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                (Some("both"), Some("tencent")),
                (Some("both"), Some("edge"))
            ]
        );
        let lanes = |r: &IngestRecord| r.jobs.iter().map(|j| j.lane.clone()).collect::<Vec<_>>();
        assert_eq!(lanes(&recs[0]), vec!["tencent"]);
        assert!(recs[0].fanout.is_empty(), "one lane: its job, no fan-out");
        // Two nodes: each target once, for both lanes (expanded by the store later).
        assert!(recs[1].jobs.is_empty());
        assert_eq!(recs[1].fanout.len(), 1);
        assert_eq!(recs[1].fanout[0].account, "edge");
        assert_eq!(
            recs[1].fanout[0].lanes.to_vec(),
            vec!["edge@127.0.0.1:6081", "edge@127.0.0.2:6081"]
        );
        assert_eq!(recs[1].fanout[0].target, recs[1].targets[0]);
        assert_eq!(recs[0].targets, recs[1].targets);
        // Planned for sending at once (no store): one job per lane.
        let recs = p
            .clone()
            .expanded()
            .records(&parse_body(&body).unwrap().events);
        assert_eq!(
            lanes(&recs[1]),
            vec!["edge@127.0.0.1:6081", "edge@127.0.0.2:6081"]
        );
        assert!(recs[1].fanout.is_empty());
    }

    #[test]
    fn events_become_records_with_jobs_per_domain() {
        let (p, _) = planner(true);
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../edgepurge-core/fixtures/events/ceph-put.json"
        ))
        .unwrap();
        let events = parse_body(&body).unwrap().events;
        let recs = p.records(&events);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].rule.as_deref(), Some("imgs"));
        assert_eq!(
            recs[0].targets,
            vec![
                "https://cdn.example.com/img/a%20b+c.png",
                "https://img.example.com/img/a%20b+c.png"
            ]
        );
        assert_eq!(recs[0].jobs.len(), 2);
        assert!(recs[0].jobs.iter().all(|j| j.lane == "tencent"));
        // Two jobs: a cap of one stops planning before they are built; two fits.
        assert_eq!(
            p.records_within(events.clone(), 1).unwrap_err(),
            TooManyJobs { max: 1 }
        );
        assert_eq!(p.records_within(events, 2).unwrap().len(), 1);
    }

    #[test]
    fn the_jobs_cap_counts_a_fanned_out_target_once_whatever_the_node_count() {
        let nodes: Vec<String> = (0..200)
            .map(|i| format!("\"127.0.0.1:{}\"", 7000 + i))
            .collect();
        let cfg = parse(&format!(
            r#"
            [providers.edge]
            kind = "http-purge"
            preset = "varnish"
            nodes = [{}]
            [[rules]]
            name = "site"
            bucket = "assets"
            events = ["created"]
            domains = ["https://cdn.example.com"]
            provider = "edge"
            "#,
            nodes.join(", ")
        ))
        .unwrap()
        .validate()
        .unwrap();
        let stored: Vec<StoredRule> = cfg
            .rules
            .iter()
            .map(|r| StoredRule::from_config(&r.spec))
            .collect();
        let (p, _) = Planner::new(&stored, &cfg.providers, false);
        let body = br#"{"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"assets"},"object":{"key":"a.png"}}},
            {"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"assets"},"object":{"key":"b.png"}}}]}"#;
        let events = parse_body(body).unwrap().events;
        // Two targets on 200 nodes: two rows, not 400.
        let recs = p.records_within(events.clone(), 2).unwrap();
        assert_eq!(recs.iter().map(|r| r.fanout.len()).sum::<usize>(), 2);
        assert!(recs.iter().all(|r| r.jobs.is_empty()));
        assert_eq!(
            p.records_within(events.clone(), 1).unwrap_err(),
            TooManyJobs { max: 1 }
        );
        // Sent at once, every lane's job counts.
        assert_eq!(
            p.expanded().records_within(events, 399).unwrap_err(),
            TooManyJobs { max: 399 }
        );
    }

    #[test]
    fn unmatched_events_are_recorded_only_when_asked() {
        let body = br#"{"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"assets"},"object":{"key":"css/a.css"}}}]}"#;
        let events = parse_body(body).unwrap().events;
        let (p, _) = planner(true);
        let recs = p.records(&events);
        assert_eq!(recs.len(), 1);
        assert!(recs[0].jobs.is_empty());
        assert!(recs[0]
            .note
            .as_deref()
            .unwrap()
            .contains("no enabled rule matches"));
        let (p, _) = planner(false);
        assert!(p.records(&events).is_empty());
    }

    #[test]
    fn folder_markers_are_recorded_with_a_note() {
        let body = br#"{"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"assets"},"object":{"key":"img/new-folder/"}}}]}"#;
        let (p, _) = planner(true);
        let recs = p.records(&parse_body(body).unwrap().events);
        assert_eq!(
            recs[0].note.as_deref(),
            Some("folder marker: nothing to purge")
        );
        assert!(recs[0].jobs.is_empty());
    }

    #[test]
    fn a_key_with_a_tag_separator_is_purged_by_its_encoded_tag_and_noted() {
        let cfg = parse(
            r#"
            [providers.varnish]
            kind = "http-purge"
            preset = "varnish"
            nodes = ["http://127.0.0.1:6081"]
            [[rules]]
            name = "products"
            bucket = "assets"
            events = ["created"]
            domains = ["https://cdn.example.com"]
            provider = "varnish"
            mode = "tag"
            tags = ["product-{seg2}"]
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
        let (p, _) = Planner::new(&stored, &cfg.providers, true);
        let body = br#"{"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"assets"},"object":{"key":"products/42,home/x.png"}}}]}"#;
        let recs = p.records(&parse_body(body).unwrap().events);
        assert_eq!(recs[0].targets, vec!["product-42%2Chome".to_string()]);
        assert!(recs[0].note.as_deref().unwrap().contains("encoded"));
    }

    #[test]
    fn a_verifying_rule_keeps_the_events_validators_for_its_records() {
        let cfg = parse(
            r#"
            [providers.edge]
            kind = "http-purge"
            preset = "varnish"
            nodes = ["127.0.0.1:6081"]
            [[rules]]
            name = "checked"
            bucket = "assets"
            events = ["created", "removed"]
            prefix = "img/"
            domains = ["https://cdn.example.com"]
            provider = "edge"
            verify = true
            [[rules]]
            name = "tags"
            bucket = "assets"
            events = ["created"]
            prefix = "img/"
            domains = ["https://cdn.example.com"]
            provider = "edge"
            mode = "tag"
            tags = ["{seg1}"]
            verify = true
            [[rules]]
            name = "plain"
            bucket = "assets"
            events = ["created"]
            prefix = "img/"
            domains = ["https://cdn.example.com"]
            provider = "edge"
            min_interval_ms = 5000
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
        let (p, problems) = Planner::new(&stored, &cfg.providers, false);
        assert!(problems.is_empty(), "{problems:?}");
        let body = |name: &str, object: &str| {
            format!(
                r#"{{"Records":[{{"eventVersion":"2.2","eventSource":"ceph:s3",
                "eventName":"{name}","s3":{{"bucket":{{"name":"assets"}},"object":{object}}}}}]}}"#
            )
        };
        let put = body(
            "ObjectCreated:Put",
            r#"{"key":"img/a.png","size":3,"eTag":"0cc175b9c0f1b6a831c399e269772661"}"#,
        );
        let recs = p.records(&parse_body(put.as_bytes()).unwrap().events);
        let by_rule = |name: &str| {
            recs.iter()
                .find(|r| r.rule.as_deref() == Some(name))
                .unwrap()
        };
        let checked = by_rule("checked");
        assert_eq!(
            checked.event.etag.as_deref(),
            Some("0cc175b9c0f1b6a831c399e269772661")
        );
        assert_eq!(checked.event.size, Some(3));
        assert_eq!(
            checked.verify.as_ref().map(|v| v.state),
            Some(Verified::Pending)
        );
        let tags = by_rule("tags").verify.clone().unwrap();
        assert_eq!(tags.state, Verified::Unverifiable);
        assert!(tags.note.unwrap().starts_with("not a URL"));
        assert_eq!(by_rule("plain").verify, None, "only rules that ask verify");
        // A rule's min_interval_ms goes with its records (for the store to hold them).
        assert_eq!(by_rule("plain").min_interval_ms, 5_000);
        assert_eq!(by_rule("checked").min_interval_ms, 0);
        // No validator in the event: unverifiable from the start, with the reason.
        let bare = body("ObjectCreated:Put", r#"{"key":"img/b.png"}"#);
        let recs = p.records(&parse_body(bare.as_bytes()).unwrap().events);
        let v = recs[0].verify.clone().unwrap();
        assert_eq!(v.state, Verified::Unverifiable);
        assert_eq!(
            v.note.as_deref(),
            Some("no validator in the event (no ETag or size)")
        );
        // A delete needs none: fresh is a 404.
        let delete = body("ObjectRemoved:Delete", r#"{"key":"img/b.png"}"#);
        let recs = p.records(&parse_body(delete.as_bytes()).unwrap().events);
        assert_eq!(
            recs[0].verify.as_ref().map(|v| v.state),
            Some(Verified::Pending)
        );
    }
}
