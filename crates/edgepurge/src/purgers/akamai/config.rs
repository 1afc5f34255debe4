//! `[providers.NAME] kind = "akamai"`: its keys, defaults and checks (apis.md §D.2).

use super::body::ObjectType;
use super::credentials::{CredentialSources, RawSources};
use super::Akamai;
use crate::limits::KindLimits;
use crate::purgers::{BuildError, Limits, ProviderConfig, ProviderKind, Purger};
use crate::secret::SecretSource;
use crate::validate::{self, field, Problems};
use edgepurge_core::TargetKind;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const KIND: ProviderKind = ProviderKind {
    kind: "akamai",
    parse,
};

/// Fast Purge's token buckets, per account and all API clients combined (apis.md §D.2):
/// sustained refill per second and bucket size.
pub mod buckets {
    /// Requests: 50 per second, 100 at once.
    pub const REQUESTS_PER_S: f64 = 50.0;
    /// URLs/ARLs: 12,000 per minute, 10,000 at once.
    pub const URLS_PER_S: f64 = 200.0;
    pub const URLS_BURST: usize = 10_000;
    /// Cache tags: 500 per minute, 5,000 at once.
    pub const TAGS_PER_S: f64 = 500.0 / 60.0;
    pub const TAGS_BURST: usize = 5_000;
    /// CP codes: 30 per minute, 300 at once.
    pub const CPCODES_PER_S: f64 = 30.0 / 60.0;
    pub const CPCODES_BURST: usize = 300;
}

/// One request every two seconds: the fastest pace at which one CP code per request stays
/// within the CP code refill (30 per minute). With the per-request maxima that follow from
/// it (400 URLs, 16 tags, 1 CP code), even a sustained flood of one kind never empties a
/// bucket: a default config is never answered 429.
pub const DEFAULT_RATE: f64 = 0.5;
/// Default URLs per request at most: about what fits 50,000 bytes at 125 bytes a URL.
const URL_DEFAULT_CAP: usize = 400;
const TAG_DEFAULT_CAP: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAkamai {
    host_env: Option<String>,
    host_file: Option<PathBuf>,
    client_token_env: Option<String>,
    client_token_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    access_token_env: Option<String>,
    access_token_file: Option<PathBuf>,
    network: Option<String>,
    action: Option<String>,
    tags_are: Option<String>,
    cpcodes: Option<Vec<i64>>,
    endpoint: Option<String>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    max_urls_per_request: Option<usize>,
    max_tags_per_request: Option<usize>,
    max_cpcodes_per_request: Option<usize>,
}

/// The most objects per request whose sustained rate at `rate` requests per second stays
/// within `refill` objects per second (at least 1, at most `cap`).
fn paced(refill: f64, rate: f64, cap: usize) -> usize {
    ((refill / rate).floor() as usize).clamp(1, cap)
}

/// Provider defaults: see [`DEFAULT_RATE`].
pub fn default_limits() -> Limits {
    limits_for(DEFAULT_RATE, None, None, ObjectType::Tag)
}

fn limits_for(
    rate: f64,
    max_urls: Option<usize>,
    max_tags: Option<usize>,
    tags_are: ObjectType,
) -> Limits {
    let tags_default = match tags_are {
        ObjectType::CpCode => paced(buckets::CPCODES_PER_S, rate, buckets::CPCODES_BURST),
        _ => paced(buckets::TAGS_PER_S, rate, TAG_DEFAULT_CAP),
    };
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    Limits {
        kinds: vec![
            (
                TargetKind::Url,
                kind(max_urls.unwrap_or_else(|| paced(buckets::URLS_PER_S, rate, URL_DEFAULT_CAP))),
            ),
            (TargetKind::Tag, kind(max_tags.unwrap_or(tags_default))),
        ],
        rate_per_s: rate,
        concurrency: 2,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct AkamaiSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub credentials: CredentialSources,
    /// API base (`scheme://host[:port]`) instead of `https://` + the credential's host.
    pub endpoint: Option<url::Url>,
    /// `production` or `staging`.
    pub network: String,
    /// `invalidate` or `delete`.
    pub action: String,
    /// What a tag target names: a cache tag, or a CP code.
    pub tags_are: ObjectType,
    /// The CP codes tag rules may purge (with `tags_are = "cpcodes"`).
    pub cpcodes: Vec<u64>,
    pub timeout: Duration,
    pub limits: Limits,
}

impl AkamaiSettings {
    /// The object type of a target kind this account purges.
    pub fn object_type(&self, kind: TargetKind) -> Option<ObjectType> {
        match kind {
            TargetKind::Url => Some(ObjectType::Url),
            TargetKind::Tag => Some(self.tags_are),
            TargetKind::Dir => None,
        }
    }
}

impl ProviderConfig for AkamaiSettings {
    crate::purgers::one_lane_account!();

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let akamai = Akamai::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(akamai)])
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        self.credentials.all()
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawAkamai = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

fn one_of(
    v: Option<String>,
    default: &str,
    allowed: &[&str],
    at: &str,
    p: &mut Problems,
) -> String {
    let v = v.unwrap_or_else(|| default.to_owned());
    if !allowed.contains(&v.as_str()) {
        p.push(at, format!("{v:?} is not {}", allowed.join(" or ")));
    }
    v
}

fn check(name: &str, t: RawAkamai, at: &str, p: &mut Problems) -> Option<AkamaiSettings> {
    let credentials = CredentialSources::check(
        RawSources {
            host: (t.host_env, t.host_file),
            client_token: (t.client_token_env, t.client_token_file),
            client_secret: (t.client_secret_env, t.client_secret_file),
            access_token: (t.access_token_env, t.access_token_file),
        },
        at,
        p,
    );
    let network = one_of(
        t.network,
        "production",
        &["production", "staging"],
        &field(at, "network"),
        p,
    );
    let action = one_of(
        t.action,
        "invalidate",
        &["invalidate", "delete"],
        &field(at, "action"),
        p,
    );
    let tags_are = match t.tags_are.as_deref() {
        None | Some("cache-tags") => ObjectType::Tag,
        Some("cpcodes") => ObjectType::CpCode,
        Some(other) => {
            p.push(
                field(at, "tags_are"),
                format!(
                    "{other:?} is not \"cache-tags\" or \"cpcodes\" (what a tag rule's tags name \
                     on this account)"
                ),
            );
            ObjectType::Tag
        }
    };
    let cpcodes = match (tags_are, t.cpcodes) {
        (ObjectType::CpCode, None) => {
            p.push(
                field(at, "cpcodes"),
                "required with tags_are = \"cpcodes\": the CP codes tag rules may purge, e.g. \
                 cpcodes = [123456] (a crafted object key then cannot purge any other)",
            );
            Vec::new()
        }
        (ObjectType::CpCode, Some(codes)) => {
            if codes.is_empty() || codes.iter().any(|c| *c <= 0) {
                p.push(
                    field(at, "cpcodes"),
                    "must list at least one CP code, each a positive number",
                );
            }
            codes
                .into_iter()
                .filter_map(|c| u64::try_from(c).ok())
                .collect()
        }
        (_, Some(_)) => {
            p.push(
                field(at, "cpcodes"),
                "is used only with tags_are = \"cpcodes\" (tag rules then purge CP codes)",
            );
            Vec::new()
        }
        (_, None) => Vec::new(),
    };
    let endpoint = t.endpoint.as_deref().and_then(|text| {
        let at = field(at, "endpoint");
        let u = validate::endpoint(text, &at, p)?;
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            p.push(
                at,
                format!(
                    "{u}: give the API's base only (scheme://host[:port]); edgepurge adds \
                     /ccu/v3/…"
                ),
            );
            return None;
        }
        Some(u)
    });
    let rate = validate::rate(
        t.rate_per_s,
        DEFAULT_RATE,
        Some((
            buckets::REQUESTS_PER_S,
            "Fast Purge's sustained request rate",
        )),
        &field(at, "rate_per_s"),
        p,
    );
    let max_urls = t.max_urls_per_request.map(|v| {
        validate::within(
            Some(v),
            URL_DEFAULT_CAP,
            buckets::URLS_BURST,
            &field(at, "max_urls_per_request"),
            p,
        )
    });
    let (tag_field, tag_value, tag_max) = match tags_are {
        ObjectType::CpCode => {
            if t.max_tags_per_request.is_some() {
                p.push(
                    field(at, "max_tags_per_request"),
                    "tags are CP codes on this account: set max_cpcodes_per_request instead",
                );
            }
            (
                "max_cpcodes_per_request",
                t.max_cpcodes_per_request,
                buckets::CPCODES_BURST,
            )
        }
        _ => {
            if t.max_cpcodes_per_request.is_some() {
                p.push(
                    field(at, "max_cpcodes_per_request"),
                    "is used only with tags_are = \"cpcodes\"",
                );
            }
            (
                "max_tags_per_request",
                t.max_tags_per_request,
                buckets::TAGS_BURST,
            )
        }
    };
    let max_tags =
        tag_value.map(|v| validate::within(Some(v), 1, tag_max, &field(at, tag_field), p));
    let mut limits = limits_for(rate, max_urls, max_tags, tags_are);
    limits.concurrency = validate::within(
        t.concurrency,
        limits.concurrency,
        64,
        &field(at, "concurrency"),
        p,
    );
    let timeout = validate::seconds(t.timeout_s, 30, &field(at, "timeout_s"), p);
    Some(AkamaiSettings {
        name: name.to_owned(),
        credentials: credentials?,
        endpoint,
        network,
        action,
        tags_are,
        cpcodes,
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "ak", text)
    }

    fn settings(text: &str) -> AkamaiSettings {
        let (cfg, problems) = parse_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        cfg.unwrap()
            .as_any()
            .downcast_ref::<AkamaiSettings>()
            .unwrap()
            .clone()
    }

    fn max(s: &AkamaiSettings, kind: TargetKind) -> usize {
        s.limits.kind(kind).unwrap().max_batch
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings("");
        assert_eq!(s.network, "production");
        assert_eq!(s.action, "invalidate");
        assert_eq!(s.tags_are, ObjectType::Tag);
        assert_eq!(s.endpoint, None);
        assert_eq!(s.credentials.host, SecretSource::Env("AKAMAI_HOST".into()));
        assert_eq!(
            s.credentials.client_secret,
            SecretSource::Env("AKAMAI_CLIENT_SECRET".into())
        );
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.limits.rate_per_s, 0.5);
        assert_eq!(max(&s, TargetKind::Url), 400);
        assert_eq!(max(&s, TargetKind::Tag), 16);
        assert!(s.limits.kinds.iter().all(|(_, l)| l.daily_quota.is_none()));
        let (cfg, _) = parse_text("");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.lanes(), vec!["ak"]);
        assert!(cfg.supports(TargetKind::Url) && cfg.supports(TargetKind::Tag));
        assert!(
            !cfg.supports(TargetKind::Dir),
            "Fast Purge has no prefix purge"
        );
        assert_eq!(cfg.required_secrets().len(), 4);
    }

    #[test]
    fn default_limits_never_outrun_akamais_token_buckets() {
        // Sustained, every request full and of one kind: within each bucket's refill.
        for (text, kind, refill) in [
            ("", TargetKind::Url, buckets::URLS_PER_S),
            ("", TargetKind::Tag, buckets::TAGS_PER_S),
            (
                "tags_are = \"cpcodes\"\ncpcodes = [1]\n",
                TargetKind::Tag,
                buckets::CPCODES_PER_S,
            ),
            ("rate_per_s = 2\n", TargetKind::Url, buckets::URLS_PER_S),
            ("rate_per_s = 2\n", TargetKind::Tag, buckets::TAGS_PER_S),
            ("rate_per_s = 0.1\n", TargetKind::Tag, buckets::TAGS_PER_S),
        ] {
            let s = settings(text);
            let per_s = s.limits.rate_per_s * max(&s, kind) as f64;
            assert!(per_s <= refill, "{text:?} {kind:?}: {per_s} > {refill}");
            assert!(s.limits.rate_per_s <= buckets::REQUESTS_PER_S);
        }
        let s = settings("tags_are = \"cpcodes\"\ncpcodes = [1]\n");
        assert_eq!(max(&s, TargetKind::Tag), 1);
        let s = settings("rate_per_s = 2\n");
        assert_eq!(
            (max(&s, TargetKind::Url), max(&s, TargetKind::Tag)),
            (100, 4)
        );
    }

    #[test]
    fn every_field_problem_is_named() {
        let (cfg, problems) = parse_text(
            "network = \"prod\"\naction = \"purge\"\ntags_are = \"paths\"\ncpcodes = [1]\n\
             endpoint = \"http://akab-x.luna.akamaiapis.net\"\nrate_per_s = 100\n\
             max_urls_per_request = 10001\nmax_tags_per_request = 5001\n\
             max_cpcodes_per_request = 2\nclient_secret_env = \"A\"\n\
             client_secret_file = \"/b\"\ntimeout_s = 0\n",
        );
        assert!(cfg.is_none());
        let all = problems.join("\n");
        for want in [
            "providers.ak.network: \"prod\" is not production or staging",
            "providers.ak.action: \"purge\" is not invalidate or delete",
            "providers.ak.tags_are: \"paths\" is not \"cache-tags\" or \"cpcodes\"",
            "providers.ak.cpcodes: is used only with tags_are = \"cpcodes\"",
            "providers.ak.endpoint: \"http://akab-x.luna.akamaiapis.net\": plain http",
            "providers.ak.rate_per_s: must be from 0.001 to 50 requests per second",
            "providers.ak.max_urls_per_request: must be 1 to 10000",
            "providers.ak.max_tags_per_request: must be 1 to 5000",
            "providers.ak.max_cpcodes_per_request: is used only with tags_are",
            "providers.ak: set either client_secret_env or client_secret_file, not both",
            "providers.ak.timeout_s: must be 1 to",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text("tags_are = \"cpcodes\"\n");
        assert!(
            problems[0].starts_with("providers.ak.cpcodes: required"),
            "{problems:?}"
        );
        let (_, problems) = parse_text("tags_are = \"cpcodes\"\ncpcodes = [0]\n");
        assert!(problems[0].contains("positive number"), "{problems:?}");
        let (_, problems) = parse_text("endpoint = \"https://proxy.example.com/ccu/v3\"\n");
        assert!(
            problems[0].contains("give the API's base only"),
            "{problems:?}"
        );
    }

    #[test]
    fn staging_delete_cpcodes_loopback_and_files_are_taken() {
        let s = settings(
            "network = \"staging\"\naction = \"delete\"\ntags_are = \"cpcodes\"\n\
             cpcodes = [123456, 98765]\nendpoint = \"http://127.0.0.1:9\"\n\
             max_cpcodes_per_request = 300\nmax_urls_per_request = 10000\n\
             client_secret_file = \"/run/akamai/client_secret\"\nconcurrency = 1\n",
        );
        assert_eq!(
            (s.network.as_str(), s.action.as_str()),
            ("staging", "delete")
        );
        assert_eq!(s.tags_are, ObjectType::CpCode);
        assert_eq!(s.cpcodes, vec![123456, 98765]);
        assert_eq!(
            s.endpoint.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:9/")
        );
        assert_eq!(max(&s, TargetKind::Tag), 300);
        assert_eq!(max(&s, TargetKind::Url), 10_000);
        assert_eq!(s.limits.concurrency, 1);
        assert_eq!(
            s.credentials.client_secret,
            SecretSource::File("/run/akamai/client_secret".into())
        );
        assert_eq!(s.object_type(TargetKind::Tag), Some(ObjectType::CpCode));
        assert_eq!(s.object_type(TargetKind::Dir), None);
    }

    #[test]
    fn the_commented_example_block_is_valid_and_shows_the_defaults() {
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../edgepurge.example.toml"
        ))
        .unwrap();
        let block: Vec<&str> = example
            .lines()
            .skip_while(|l| *l != "# [providers.akamai]")
            .skip(2) // the header and `kind`
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(""))
            .collect();
        assert!(block.len() > 10, "{block:?}");
        let s = settings(&block.join("\n"));
        let d = settings("");
        assert_eq!(s.credentials, d.credentials);
        assert_eq!((s.limits, s.timeout), (d.limits, d.timeout));
        assert_eq!(
            (s.network, s.action, s.tags_are),
            (d.network, d.action, d.tags_are)
        );
        assert_eq!(
            s.endpoint.as_ref().map(url::Url::as_str),
            Some("https://proxy.example.com:8443/")
        );
    }

    #[test]
    fn inline_secrets_are_unknown_keys() {
        let (cfg, problems) = parse_text("client_secret = \"inline!\"\n");
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `client_secret`"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_dir_rule_on_akamai_is_refused_by_the_one_rule_check() {
        let mut providers = crate::purgers::Providers::new();
        let (cfg, _) = parse_text("");
        providers.insert("ak".into(), cfg.unwrap());
        let dir = crate::rules::example("r", "ak", edgepurge_core::Mode::Dir);
        let err = crate::rules::check(dir, Some(&providers)).unwrap_err();
        assert_eq!(err.field(), "mode");
        assert_eq!(
            err.to_string(),
            "rule \"r\": provider \"ak\" (akamai) cannot purge with mode = \"dir\"; it purges \
             url, tag"
        );
        for mode in [edgepurge_core::Mode::Url, edgepurge_core::Mode::Tag] {
            let rule = crate::rules::example("r", "ak", mode);
            assert!(crate::rules::check(rule, Some(&providers)).is_ok());
        }
    }
}
