//! The one check of a rule: its own fields (core), then against the configured provider
//! accounts: the account exists and can purge with the rule's mode. The config file's
//! `[[rules]]`, `edgepurge rule add`, the admin API and the server loading stored rules all
//! call [`check`], so a rule accepted anywhere is a rule the server applies.

use crate::purgers::Providers;
use edgepurge_core::{Rule, RuleError, RuleSpec, TargetKind};
use std::fmt;

/// Why a rule cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleRefusal {
    /// A field of the rule itself is wrong.
    #[error("{0}")]
    Invalid(RuleError),
    /// The rule names a provider account that is not configured.
    #[error(
        "rule {rule:?}: provider {provider:?} is not defined; add [providers.{provider}]{}",
        Suggestion(suggestion)
    )]
    UnknownProvider {
        rule: String,
        provider: String,
        suggestion: Option<String>,
    },
    /// The account cannot purge what the rule's mode produces.
    #[error(
        "rule {rule:?}: provider {provider:?} ({kind}) cannot purge with mode = {mode:?}; it \
         purges {supported}"
    )]
    Unsupported {
        rule: String,
        provider: String,
        kind: &'static str,
        mode: &'static str,
        supported: String,
    },
    /// The rule asks `warm = true` of an account that cannot prefetch.
    #[error(
        "rule {rule:?}: warm = true, but provider {provider:?} ({kind}) has no prefetch API; \
         warming works with tencent-cdn, edgeone, aliyun-cdn and http-purge accounts (remove \
         warm, or list such an account)"
    )]
    CannotWarm {
        rule: String,
        provider: String,
        kind: &'static str,
    },
    /// `min_interval_ms` on a rule whose account has several lanes: its targets are fanned
    /// out to the lanes after ingest, where no interval is kept yet.
    #[error(
        "rule {rule:?}: min_interval_ms is not supported for provider {provider:?}, which \
         purges {lanes} cache nodes (its targets are fanned out to the nodes after ingest); \
         remove min_interval_ms, or use an account with one node"
    )]
    IntervalNeedsOneLane {
        rule: String,
        provider: String,
        lanes: usize,
    },
    /// `warm = true` on a rule that purges directories or tags: nothing addresses one URL.
    #[error(
        "rule {rule:?}: warm = true needs mode = \"url\" (a {mode} purge has no URL to \
         prefetch)"
    )]
    WarmNeedsUrls { rule: String, mode: &'static str },
}

struct Suggestion<'a>(&'a Option<String>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean {s:?}?)"),
            None => Ok(()),
        }
    }
}

impl RuleRefusal {
    /// The rule field at fault (for answers that name it).
    pub fn field(&self) -> &'static str {
        match self {
            RuleRefusal::Invalid(e) => e.field,
            RuleRefusal::UnknownProvider { .. } => "provider",
            RuleRefusal::Unsupported { .. } => "mode",
            RuleRefusal::CannotWarm { .. } | RuleRefusal::WarmNeedsUrls { .. } => "warm",
            RuleRefusal::IntervalNeedsOneLane { .. } => "min_interval_ms",
        }
    }
}

/// What refuses a change to a rule of the config file, the same for `rule add` (its name),
/// `rule delete`, `enable` and `disable`, from the CLI, the admin API and the console.
pub fn owned_by_config(name: &str) -> String {
    format!(
        "rule {name:?} comes from the config file: change or remove it there (a running server \
         applies the file on SIGHUP or restart); a rule added here needs a name of its own"
    )
}

/// Checks `spec`; with `providers` (the config's accounts) also that its account exists and
/// supports its mode. Without them (no config at hand) only the rule's own fields are checked.
/// The first problem is the answer ([`refusals`] lists them all).
pub fn check(spec: RuleSpec, providers: Option<&Providers>) -> Result<Rule, RuleRefusal> {
    if let Some(first) = refusals(&spec, providers).into_iter().next() {
        return Err(first);
    }
    spec.validate().map_err(RuleRefusal::Invalid)
}

/// Every reason `spec` cannot be applied: each field at fault, then each account that is
/// missing or cannot purge with the rule's mode. Empty: [`check`] accepts it.
pub fn refusals(spec: &RuleSpec, providers: Option<&Providers>) -> Vec<RuleRefusal> {
    let mut out: Vec<RuleRefusal> = spec
        .problems()
        .into_iter()
        .map(RuleRefusal::Invalid)
        .collect();
    if spec.warm && spec.mode.target_kind() != TargetKind::Url {
        out.push(RuleRefusal::WarmNeedsUrls {
            rule: spec.name.clone(),
            mode: spec.mode.as_str(),
        });
    }
    let Some(providers) = providers else {
        return out;
    };
    let names: Vec<&str> = spec.provider_names().collect();
    for (i, name) in names.iter().copied().enumerate() {
        // A malformed or repeated name is a problem of the rule's own fields, said above.
        if !edgepurge_core::rule::valid_name(name) || names[..i].contains(&name) {
            continue;
        }
        let Some(account) = providers.get(name) else {
            out.push(RuleRefusal::UnknownProvider {
                rule: spec.name.clone(),
                provider: name.to_owned(),
                suggestion: closest(name, providers.keys().map(String::as_str)),
            });
            continue;
        };
        let lanes = account.lanes().len();
        if spec.min_interval_ms > 0 && lanes > 1 {
            out.push(RuleRefusal::IntervalNeedsOneLane {
                rule: spec.name.clone(),
                provider: name.to_owned(),
                lanes,
            });
        }
        if spec.warm && !account.prefetches() {
            out.push(RuleRefusal::CannotWarm {
                rule: spec.name.clone(),
                provider: name.to_owned(),
                kind: account.kind(),
            });
        }
        let kind = spec.mode.target_kind();
        if !account.supports(kind) {
            let supported: Vec<&str> = TargetKind::ALL
                .into_iter()
                .filter(|k| account.supports(*k))
                .map(TargetKind::as_str)
                .collect();
            out.push(RuleRefusal::Unsupported {
                rule: spec.name.clone(),
                provider: name.to_owned(),
                kind: account.kind(),
                mode: spec.mode.as_str(),
                supported: supported.join(", "),
            });
        }
    }
    out
}

/// The candidate nearest to `name` by edit distance, if it is a plausible typo.
/// ` (did you mean "x"?)` when one of `candidates` is close to `name`, else nothing: for
/// every message about a name that does not exist (rules, provider accounts).
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    Suggestion(&closest(name, candidates)).to_string()
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A valid rule for tests: bucket `assets`, every creation, one domain, through `provider`,
/// purging with `mode` (a tag rule gets a `{seg1}` template).
#[cfg(test)]
pub(crate) fn example(name: &str, provider: &str, mode: edgepurge_core::Mode) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        bucket: "assets".into(),
        events: vec!["created".into()],
        prefix: None,
        suffix: None,
        domains: vec!["https://cdn.example.com".into()],
        provider: provider.into(),
        providers: Vec::new(),
        mode,
        index_document: None,
        strip_prefix: None,
        tags: if mode == edgepurge_core::Mode::Tag {
            vec!["{seg1}".into()]
        } else {
            Vec::new()
        },
        // A dir rule without a folder prefix reaches the domain root.
        allow_host_purge: mode == edgepurge_core::Mode::Dir,
        verify: false,
        warm: false,
        min_interval_ms: 0,
        enabled: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use edgepurge_core::Mode;

    fn providers() -> Providers {
        config::parse(
            "[providers.tencent]\nkind = \"tencent-cdn\"\n\
             [providers.varnish]\nkind = \"http-purge\"\npreset = \"varnish\"\n\
             nodes = [\"127.0.0.1:6081\"]\n",
        )
        .unwrap()
        .validate()
        .unwrap()
        .providers
    }

    fn spec(provider: &str, mode: Mode) -> RuleSpec {
        example("r", provider, mode)
    }

    #[test]
    fn a_tag_rule_on_tencent_is_refused_with_the_reason() {
        let p = providers();
        let err = check(spec("tencent", Mode::Tag), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "mode");
        assert_eq!(
            err.to_string(),
            "rule \"r\": provider \"tencent\" (tencent-cdn) cannot purge with mode = \"tag\"; \
             it purges url, dir"
        );
        assert!(check(spec("varnish", Mode::Tag), Some(&p)).is_ok());
    }

    /// Warming needs an account with a prefetch API and a rule that purges URLs; a stored
    /// rule whose account can no longer prefetch still purges (the planner drops `warm`).
    #[test]
    fn min_interval_is_refused_where_targets_fan_out_to_several_nodes() {
        let p = config::parse(
            "[providers.tencent]\nkind = \"tencent-cdn\"\n\
             [providers.one]\nkind = \"http-purge\"\npreset = \"varnish\"\n\
             nodes = [\"127.0.0.1:6081\"]\n\
             [providers.edge]\nkind = \"http-purge\"\npreset = \"varnish\"\n\
             nodes = [\"127.0.0.1:6081\", \"127.0.0.2:6081\"]\n",
        )
        .unwrap()
        .validate()
        .unwrap()
        .providers;
        let held = |provider: &str| RuleSpec {
            min_interval_ms: 5_000,
            ..spec(provider, Mode::Url)
        };
        assert!(check(held("tencent"), Some(&p)).is_ok());
        assert!(check(held("one"), Some(&p)).is_ok(), "one node: no fan-out");
        let err = check(held("edge"), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "min_interval_ms");
        assert_eq!(
            err.to_string(),
            "rule \"r\": min_interval_ms is not supported for provider \"edge\", which purges \
             2 cache nodes (its targets are fanned out to the nodes after ingest); remove \
             min_interval_ms, or use an account with one node"
        );
        assert!(
            check(spec("edge", Mode::Url), Some(&p)).is_ok(),
            "without it"
        );
        // Stored before the account had several nodes: purged after every change, said so.
        let stored = crate::store::StoredRule::from_config(&held("edge"));
        let (planner, problems) = crate::app::Planner::new(&[stored], &p, false);
        assert_eq!(planner.rules().len(), 1);
        assert_eq!(planner.rules()[0].spec.min_interval_ms, 0);
        assert!(
            problems[0].ends_with("its purges go on without an interval"),
            "{problems:?}"
        );
    }

    #[test]
    fn warm_is_refused_where_nothing_can_be_prefetched() {
        let p = config::parse(
            "[providers.tencent]\nkind = \"tencent-cdn\"\n\
             [providers.cf]\nkind = \"cloudflare\"\nzone_id = \"023e105f4ecef8ad9ca31a8372d0c353\"\n",
        )
        .unwrap()
        .validate()
        .unwrap()
        .providers;
        let warm = |provider: &str, mode| RuleSpec {
            warm: true,
            ..spec(provider, mode)
        };
        assert!(check(warm("tencent", Mode::Url), Some(&p)).is_ok());
        let err = check(warm("cf", Mode::Url), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "warm");
        assert_eq!(
            err.to_string(),
            "rule \"r\": warm = true, but provider \"cf\" (cloudflare) has no prefetch API; \
             warming works with tencent-cdn, edgeone, aliyun-cdn and http-purge accounts (remove \
             warm, or list such an account)"
        );
        let err = check(warm("tencent", Mode::Dir), None).unwrap_err();
        assert_eq!(err.field(), "warm");
        assert!(err.to_string().contains("needs mode = \"url\""), "{err}");
        assert!(
            check(spec("cf", Mode::Url), Some(&p)).is_ok(),
            "without warm"
        );
        // Stored before the account changed: purged, not warmed, and said so.
        let stored = crate::store::StoredRule::from_config(&warm("cf", Mode::Url));
        let (planner, problems) = crate::app::Planner::new(&[stored], &p, false);
        assert_eq!(planner.rules().len(), 1);
        assert!(!planner.rules()[0].spec.warm);
        assert!(
            problems[0].ends_with("its purges go on without warming"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_misspelled_provider_gets_a_suggestion() {
        let p = providers();
        let err = check(spec("tencnet", Mode::Url), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "provider");
        assert!(
            err.to_string().ends_with("(did you mean \"tencent\"?)"),
            "{err}"
        );
        let err = check(spec("akamai", Mode::Url), Some(&p)).unwrap_err();
        assert!(!err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn every_account_of_a_rule_is_checked() {
        let p = providers();
        let several = |names: &[&str], mode: Mode| RuleSpec {
            provider: String::new(),
            providers: names.iter().map(|n| (*n).to_owned()).collect(),
            ..spec("unused", mode)
        };
        assert!(check(several(&["tencent", "varnish"], Mode::Url), Some(&p)).is_ok());
        let err = check(several(&["varnish", "tencnet"], Mode::Url), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "provider");
        assert!(
            err.to_string().contains("\"tencnet\" is not defined"),
            "{err}"
        );
        // The second account cannot purge tags: the whole rule is refused, naming it.
        let err = check(several(&["varnish", "tencent"], Mode::Tag), Some(&p)).unwrap_err();
        assert_eq!(err.field(), "mode");
        assert!(err.to_string().contains("provider \"tencent\""), "{err}");
    }

    #[test]
    fn without_providers_only_the_rule_itself_is_checked() {
        assert!(check(spec("anything", Mode::Tag), None).is_ok());
        let mut bad = spec("tencent", Mode::Url);
        bad.events = vec!["sometimes".into()];
        assert_eq!(check(bad, None).unwrap_err().field(), "events");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("tencent", "tencent"), 0);
        assert_eq!(edit_distance("tencnet", "tencent"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
