//! `[providers.NAME] kind = "aliyun-cdn"`: its keys, defaults and checks (apis.md §D.3, §J.3).

use super::{AliyunCdn, DEFAULT_ENDPOINT};
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
    kind: "aliyun-cdn",
    parse,
};

/// Alibaba allows 50 API calls per second per account.
const MAX_RATE: f64 = 50.0;
/// Refreshes go at half of it by default: the task follower asks at the lane's rate too.
const DEFAULT_RATE: f64 = 25.0;
/// Per request: 1,000 URLs or 100 directories (apis.md §D.3).
const MAX_URLS: usize = 1000;
const MAX_DIRS: usize = 100;
/// Tags in one `CacheTag`: Alibaba states no maximum; one request per this many.
const DEFAULT_TAGS: usize = 10;
const MAX_TAGS: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAliyun {
    endpoint: Option<String>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<PathBuf>,
    access_key_secret_env: Option<String>,
    access_key_secret_file: Option<PathBuf>,
    security_token_env: Option<String>,
    security_token_file: Option<PathBuf>,
    force: Option<bool>,
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
}

/// Provider defaults (apis.md §D.3): 10,000 URLs and 100 directories a day.
pub fn default_limits() -> Limits {
    Limits {
        kinds: vec![
            (
                TargetKind::Url,
                KindLimits {
                    max_batch: MAX_URLS,
                    daily_quota: Some(10_000),
                },
            ),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: MAX_DIRS,
                    daily_quota: Some(100),
                },
            ),
        ],
        rate_per_s: DEFAULT_RATE,
        concurrency: 4,
        // The quota day is Beijing's (UTC+8), like Tencent's.
        quota_utc_offset_s: 8 * 3600,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct AliyunSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub endpoint: url::Url,
    pub access_key_id: SecretSource,
    pub access_key_secret: SecretSource,
    pub security_token: Option<SecretSource>,
    /// `Force` of directory and tag refreshes: refresh everything matched, not only what
    /// changed at the origin.
    pub force: bool,
    /// The accelerated domains a tag refresh covers (one call per domain); empty: no tags.
    pub cache_tag_domains: Vec<String>,
    pub timeout: Duration,
    pub limits: Limits,
}

impl ProviderConfig for AliyunSettings {
    crate::purgers::one_lane_account!();

    /// `PushObjectCache`.
    fn prefetches(&self) -> bool {
        true
    }

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let cdn = AliyunCdn::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(cdn)])
    }

    fn required_secrets(&self) -> Vec<&SecretSource> {
        // An unset security token variable means a long-lived AccessKey.
        vec![&self.access_key_id, &self.access_key_secret]
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        let mut out = vec![&self.access_key_id, &self.access_key_secret];
        out.extend(self.security_token.as_ref());
        out
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawAliyun = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// An accelerated domain name as `DomainName` takes it: a host, no scheme, path or port.
fn domain_ok(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && !d.starts_with('.')
        && !d.ends_with('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn check(name: &str, t: RawAliyun, at: &str, p: &mut Problems) -> Option<AliyunSettings> {
    let endpoint = validate::endpoint(
        t.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        &field(at, "endpoint"),
        p,
    );
    let access_key_id = validate::secret(
        "access_key_id",
        t.access_key_id_env,
        t.access_key_id_file,
        Some("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        at,
        p,
    );
    let access_key_secret = validate::secret(
        "access_key_secret",
        t.access_key_secret_env,
        t.access_key_secret_file,
        Some("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        at,
        p,
    );
    let security_token = validate::secret(
        "security_token",
        t.security_token_env,
        t.security_token_file,
        Some("ALIBABA_CLOUD_SECURITY_TOKEN"),
        at,
        p,
    );
    let mut cache_tag_domains: Vec<String> = Vec::new();
    for d in t.cache_tag_domains.unwrap_or_default() {
        let d = d.trim().to_ascii_lowercase();
        if !domain_ok(&d) {
            p.push(
                field(at, "cache_tag_domains"),
                format!(
                    "{d:?} is not a domain name (give accelerated domains as `cdn.example.com`, \
                     without scheme or path)"
                ),
            );
        } else if !cache_tag_domains.contains(&d) {
            cache_tag_domains.push(d);
        }
    }
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
    let (du, dd) = (default_of(TargetKind::Url), default_of(TargetKind::Dir));
    let mut kinds = vec![
        (
            TargetKind::Url,
            KindLimits {
                max_batch: validate::within(
                    t.max_urls_per_request,
                    du.max_batch,
                    MAX_URLS,
                    &field(at, "max_urls_per_request"),
                    p,
                ),
                daily_quota: quota(t.url_daily_quota, du.daily_quota),
            },
        ),
        (
            TargetKind::Dir,
            KindLimits {
                max_batch: validate::within(
                    t.max_dirs_per_request,
                    dd.max_batch,
                    MAX_DIRS,
                    &field(at, "max_dirs_per_request"),
                    p,
                ),
                daily_quota: quota(t.dir_daily_quota, dd.daily_quota),
            },
        ),
    ];
    let max_tags = validate::within(
        t.max_tags_per_request,
        DEFAULT_TAGS,
        MAX_TAGS,
        &field(at, "max_tags_per_request"),
        p,
    );
    if !cache_tag_domains.is_empty() {
        kinds.push((
            TargetKind::Tag,
            KindLimits {
                max_batch: max_tags,
                daily_quota: None,
            },
        ));
    }
    let limits = Limits {
        kinds,
        rate_per_s: validate::rate(
            t.rate_per_s,
            d.rate_per_s,
            Some((MAX_RATE, "Alibaba Cloud's limit")),
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
    Some(AliyunSettings {
        name: name.to_owned(),
        endpoint: endpoint?,
        access_key_id: access_key_id.flatten()?,
        access_key_secret: access_key_secret.flatten()?,
        security_token: security_token.flatten(),
        force: t.force.unwrap_or(false),
        cache_tag_domains,
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "a", text)
    }

    fn settings(cfg: &Arc<dyn ProviderConfig>) -> &AliyunSettings {
        cfg.as_any().downcast_ref().unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (cfg, problems) = parse_text("");
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.lanes(), vec!["a"]);
        let l = cfg.limits();
        assert_eq!(
            l.kind(TargetKind::Url),
            Some(&KindLimits {
                max_batch: 1000,
                daily_quota: Some(10_000)
            })
        );
        assert_eq!(
            l.kind(TargetKind::Dir),
            Some(&KindLimits {
                max_batch: 100,
                daily_quota: Some(100)
            })
        );
        assert!(
            !cfg.supports(TargetKind::Tag),
            "tag refreshes need cache_tag_domains"
        );
        assert_eq!(l.rate_per_s, 25.0);
        let s = settings(&cfg);
        assert_eq!(s.endpoint.as_str(), "https://cdn.aliyuncs.com/");
        assert!(!s.force);
        assert_eq!(
            s.access_key_id,
            SecretSource::Env("ALIBABA_CLOUD_ACCESS_KEY_ID".into())
        );
    }

    #[test]
    fn cache_tag_domains_turn_tags_on() {
        let (cfg, problems) = parse_text(
            "cache_tag_domains = [\"CDN.example.com\", \"cdn.example.com\", \"img.example.com\"]\n\
             max_tags_per_request = 20\nforce = true\nurl_daily_quota = 0\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        assert_eq!(
            cfg.limits().kind(TargetKind::Tag),
            Some(&KindLimits {
                max_batch: 20,
                daily_quota: None
            })
        );
        assert_eq!(
            cfg.limits().kind(TargetKind::Url).unwrap().daily_quota,
            None,
            "0 turns the local quota check off"
        );
        let s = settings(&cfg);
        assert_eq!(
            s.cache_tag_domains,
            vec!["cdn.example.com", "img.example.com"]
        );
        assert!(s.force);
    }

    #[test]
    fn every_field_problem_is_named() {
        let (_, problems) = parse_text(
            "endpoint = \"http://cdn.aliyuncs.com\"\nrate_per_s = 80\n\
             max_urls_per_request = 5000\nmax_dirs_per_request = 101\n\
             access_key_secret_env = \"A\"\naccess_key_secret_file = \"/b\"\n\
             cache_tag_domains = [\"https://cdn.example.com/\"]\n",
        );
        let all = problems.join("\n");
        for want in [
            "providers.a.endpoint: \"http://cdn.aliyuncs.com\": plain http",
            "providers.a.rate_per_s: must be from 0.001 to 50 requests per second",
            "providers.a.max_urls_per_request: must be 1 to 1000",
            "providers.a.max_dirs_per_request: must be 1 to 100",
            "providers.a: set either access_key_secret_env or access_key_secret_file, not both",
            "providers.a.cache_tag_domains: \"https://cdn.example.com/\" is not a domain name",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn inline_secrets_are_unknown_keys() {
        let (cfg, problems) = parse_text("access_key_secret = \"inline!\"\n");
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `access_key_secret`"),
            "{problems:?}"
        );
    }
}
