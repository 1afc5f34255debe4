//! `[providers.NAME] kind = "edgeone"`: its keys, defaults and checks (apis.md §A.8, §J.5).

use super::{EdgeOne, DEFAULT_ENDPOINT};
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
    kind: "edgeone",
    parse,
};

/// Tencent Cloud API 3.0 allows 20 requests per second per action.
const MAX_RATE: f64 = 20.0;
/// Most targets one `CreatePurgeTask` may carry on any plan (EdgeOne "Cache Purge" doc:
/// URL ≤ 5,000, directory ≤ 1,000, Cache-Tag ≤ 100 per submission).
const MOST_URLS: usize = 5000;
const MOST_DIRS: usize = 1000;
const MOST_TAGS: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdgeOne {
    endpoint: Option<String>,
    zone_id: Option<String>,
    secret_id_env: Option<String>,
    secret_id_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    secret_key_file: Option<PathBuf>,
    session_token_env: Option<String>,
    session_token_file: Option<PathBuf>,
    method: Option<String>,
    cache_tag_domains: Option<Vec<String>>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    max_urls_per_request: Option<usize>,
    max_dirs_per_request: Option<usize>,
    max_tags_per_request: Option<usize>,
    url_daily_quota: Option<u64>,
    dir_daily_quota: Option<u64>,
    collapse_to_dir_over: Option<u32>,
    tag_daily_quota: Option<u64>,
}

/// Provider defaults. Per-request: the official `DescribeContentQuota` example's `Batch`
/// (2,000) for URLs, the doc's ceilings for directories and tags; per day: the example's
/// `Daily` (10,000). Plans differ: the lane reads the zone's own figures from
/// `DescribeContentQuota` at start and keeps the smaller batch.
pub fn default_limits() -> Limits {
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: Some(10_000),
    };
    Limits {
        kinds: vec![
            (TargetKind::Url, kind(2000)),
            (TargetKind::Dir, kind(MOST_DIRS)),
            (TargetKind::Tag, kind(MOST_TAGS)),
        ],
        rate_per_s: MAX_RATE,
        concurrency: 4,
        // Quotas reset at midnight Beijing time, as Tencent CDN's.
        quota_utc_offset_s: 8 * 3600,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct EdgeOneSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub endpoint: url::Url,
    /// The site (`zone-…`) whose caches are purged.
    pub zone_id: String,
    pub secret_id: SecretSource,
    pub secret_key: SecretSource,
    pub session_token: Option<SecretSource>,
    /// `invalidate` (mark stale, revalidate) or `delete` (drop): for directory purges.
    pub method: String,
    /// Hostnames a cache-tag purge is limited to (`CacheTag.Domains`); tag rules need them.
    pub cache_tag_domains: Vec<String>,
    pub timeout: Duration,
    pub limits: Limits,
}

impl ProviderConfig for EdgeOneSettings {
    crate::purgers::one_lane_account!();

    /// `CreatePrefetchTask`.
    fn prefetches(&self) -> bool {
        true
    }

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let eo = EdgeOne::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(eo)])
    }

    fn required_secrets(&self) -> Vec<&SecretSource> {
        // An unset session token variable means long-lived keys.
        vec![&self.secret_id, &self.secret_key]
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        let mut out = vec![&self.secret_id, &self.secret_key];
        out.extend(self.session_token.as_ref());
        out
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawEdgeOne = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// A zone id as the console shows it (`zone-2o0i41pv2h8c`): letters, digits and `-`. `*`
/// (every zone of the account) is refused: the quota and the tasks are read per zone, and a
/// key for all zones is more than edgepurge needs.
fn zone_id(v: Option<String>, at: &str, p: &mut Problems) -> Option<String> {
    let Some(z) = v else {
        p.push(
            at,
            "zone_id is required: the site's id, like zone-2o0i41pv2h8c (EdgeOne console → \
             site list)",
        );
        return None;
    };
    let ok =
        !z.is_empty() && z.len() <= 64 && z.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        p.push(
            at,
            format!(
                "{:?} is not a zone id (like zone-2o0i41pv2h8c; `*` for every zone is not \
                 supported: name one site per provider account)",
                edgepurge_core::printable(&z)
            ),
        );
        return None;
    }
    Some(z)
}

/// Hostnames for `CacheTag.Domains`: no scheme, path, port or wildcard.
fn hostnames(v: Option<Vec<String>>, at: &str, p: &mut Problems) -> Vec<String> {
    let list = v.unwrap_or_default();
    for h in &list {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            p.push(
                at,
                format!(
                    "{:?} is not a hostname (like cdn.example.com: no scheme, path, port or \
                     wildcard)",
                    edgepurge_core::printable(h)
                ),
            );
        }
    }
    list.into_iter().map(|h| h.to_ascii_lowercase()).collect()
}

fn check(name: &str, t: RawEdgeOne, at: &str, p: &mut Problems) -> Option<EdgeOneSettings> {
    let endpoint = validate::endpoint(
        t.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        &field(at, "endpoint"),
        p,
    );
    let zone_id = zone_id(t.zone_id, &field(at, "zone_id"), p);
    let secret_id = validate::secret(
        "secret_id",
        t.secret_id_env,
        t.secret_id_file,
        Some("TENCENTCLOUD_SECRETID"),
        at,
        p,
    );
    let secret_key = validate::secret(
        "secret_key",
        t.secret_key_env,
        t.secret_key_file,
        Some("TENCENTCLOUD_SECRETKEY"),
        at,
        p,
    );
    let session_token = validate::secret(
        "session_token",
        t.session_token_env,
        t.session_token_file,
        Some("TENCENTCLOUD_SESSIONTOKEN"),
        at,
        p,
    );
    let method = t.method.unwrap_or_else(|| "invalidate".to_owned());
    if method != "invalidate" && method != "delete" {
        p.push(
            field(at, "method"),
            format!(
                "{:?} is not invalidate or delete",
                edgepurge_core::printable(&method)
            ),
        );
    }
    let cache_tag_domains = hostnames(t.cache_tag_domains, &field(at, "cache_tag_domains"), p);
    let d = default_limits();
    let default_of = |kind: TargetKind| {
        d.kind(kind).copied().unwrap_or(KindLimits {
            max_batch: 1,
            daily_quota: None,
        })
    };
    // 0 turns the local quota check off.
    let quota = |v: Option<u64>, default: Option<u64>| match v {
        Some(0) => None,
        Some(n) => Some(n),
        None => default,
    };
    let mut kinds = Vec::new();
    for (kind, max_key, most, max_v, quota_v) in [
        (
            TargetKind::Url,
            "max_urls_per_request",
            MOST_URLS,
            t.max_urls_per_request,
            t.url_daily_quota,
        ),
        (
            TargetKind::Dir,
            "max_dirs_per_request",
            MOST_DIRS,
            t.max_dirs_per_request,
            t.dir_daily_quota,
        ),
        (
            TargetKind::Tag,
            "max_tags_per_request",
            MOST_TAGS,
            t.max_tags_per_request,
            t.tag_daily_quota,
        ),
    ] {
        let dl = default_of(kind);
        let limits = KindLimits {
            max_batch: validate::within(max_v, dl.max_batch, most, &field(at, max_key), p),
            daily_quota: quota(quota_v, dl.daily_quota),
        };
        // A cache-tag purge names the domains it applies to: without them, no tag rules.
        if kind != TargetKind::Tag || !cache_tag_domains.is_empty() {
            kinds.push((kind, limits));
        }
    }
    let limits = Limits {
        kinds,
        rate_per_s: validate::rate(
            t.rate_per_s,
            d.rate_per_s,
            Some((MAX_RATE, "Tencent's limit per API action")),
            &field(at, "rate_per_s"),
            p,
        ),
        concurrency: validate::within(
            t.concurrency,
            d.concurrency,
            64,
            &field(at, "concurrency"),
            p,
        ),
        quota_utc_offset_s: d.quota_utc_offset_s,
        collapse_to_dir_over: None,
    };
    let limits = Limits {
        collapse_to_dir_over: validate::collapse_to_dir_over(
            t.collapse_to_dir_over,
            &limits.kinds,
            &field(at, "collapse_to_dir_over"),
            p,
        ),
        ..limits
    };
    let timeout = validate::seconds(t.timeout_s, 30, &field(at, "timeout_s"), p);
    Some(EdgeOneSettings {
        name: name.to_owned(),
        endpoint: endpoint?,
        zone_id: zone_id?,
        secret_id: secret_id.flatten()?,
        secret_key: secret_key.flatten()?,
        session_token: session_token.flatten(),
        method,
        cache_tag_domains,
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "eo", text)
    }

    fn settings(cfg: &Arc<dyn ProviderConfig>) -> &EdgeOneSettings {
        cfg.as_any().downcast_ref().unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (cfg, problems) = parse_text("zone_id = \"zone-2o0i41pv2h8c\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.kind(), "edgeone");
        assert_eq!(cfg.lanes(), vec!["eo"]);
        let l = cfg.limits();
        assert_eq!(l.rate_per_s, 20.0);
        assert_eq!(l.quota_utc_offset_s, 8 * 3600);
        assert_eq!(l.kind(TargetKind::Url).unwrap().max_batch, 2000);
        assert_eq!(l.kind(TargetKind::Url).unwrap().daily_quota, Some(10_000));
        assert_eq!(l.kind(TargetKind::Dir).unwrap().max_batch, 1000);
        assert!(
            !cfg.supports(TargetKind::Tag),
            "no cache_tag_domains, no tag purges"
        );
        let s = settings(&cfg);
        assert_eq!(s.method, "invalidate");
        assert_eq!(s.endpoint.as_str(), "https://teo.tencentcloudapi.com/");
        assert_eq!(
            s.secret_id,
            SecretSource::Env("TENCENTCLOUD_SECRETID".into())
        );
    }

    #[test]
    fn cache_tag_domains_enable_tag_purges() {
        let (cfg, problems) = parse_text(
            "zone_id = \"zone-1\"\ncache_tag_domains = [\"CDN.example.com\"]\n\
             max_tags_per_request = 50\ntag_daily_quota = 0\nmethod = \"delete\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        let tag = cfg.limits().kind(TargetKind::Tag).copied().unwrap();
        assert_eq!((tag.max_batch, tag.daily_quota), (50, None));
        let s = settings(&cfg);
        assert_eq!(s.cache_tag_domains, vec!["cdn.example.com"]);
        assert_eq!(s.method, "delete");
    }

    #[test]
    fn every_field_problem_is_named() {
        let (cfg, problems) = parse_text(
            "endpoint = \"http://teo.tencentcloudapi.com\"\nzone_id = \"*\"\nmethod = \"flush\"\n\
             rate_per_s = 50\nmax_urls_per_request = 6000\nmax_tags_per_request = 101\n\
             cache_tag_domains = [\"https://a.example\"]\n\
             secret_key_env = \"A\"\nsecret_key_file = \"/b\"\n",
        );
        assert!(cfg.is_none());
        let all = problems.join("\n");
        for want in [
            "providers.eo.endpoint: \"http://teo.tencentcloudapi.com\": plain http",
            "providers.eo.zone_id: \"*\" is not a zone id",
            "providers.eo.method: \"flush\" is not invalidate or delete",
            "providers.eo.rate_per_s: must be from 0.001 to 20 requests per second",
            "providers.eo.max_urls_per_request: must be 1 to 5000",
            "providers.eo.max_tags_per_request: must be 1 to 100",
            "providers.eo.cache_tag_domains: \"https://a.example\" is not a hostname",
            "providers.eo: set either secret_key_env or secret_key_file, not both",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text("");
        assert!(
            problems[0].contains("providers.eo.zone_id: zone_id is required"),
            "{problems:?}"
        );
    }

    #[test]
    fn inline_secrets_are_unknown_keys() {
        let (cfg, problems) = parse_text("zone_id = \"zone-1\"\nsecret_key = \"inline!\"\n");
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `secret_key`"),
            "{problems:?}"
        );
    }
}
