//! `[providers.NAME] kind = "tencent-cdn"`: its keys, defaults and checks (apis.md §A).

use super::{TencentCdn, DEFAULT_ENDPOINT};
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
    kind: "tencent-cdn",
    parse,
};

/// Tencent allows 20 requests per second per action.
const MAX_RATE: f64 = 20.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTencent {
    endpoint: Option<String>,
    secret_id_env: Option<String>,
    secret_id_file: Option<PathBuf>,
    secret_key_env: Option<String>,
    secret_key_file: Option<PathBuf>,
    session_token_env: Option<String>,
    session_token_file: Option<PathBuf>,
    area: Option<String>,
    flush_type: Option<String>,
    url_encode: Option<bool>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    max_urls_per_request: Option<usize>,
    max_dirs_per_request: Option<usize>,
    url_daily_quota: Option<u64>,
    dir_daily_quota: Option<u64>,
    collapse_to_dir_over: Option<u32>,
}

/// Provider defaults (apis.md §A.2, §A.3).
pub fn default_limits() -> Limits {
    Limits {
        kinds: vec![
            (
                TargetKind::Url,
                KindLimits {
                    max_batch: 1000,
                    daily_quota: Some(10_000),
                },
            ),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: 20,
                    daily_quota: Some(100),
                },
            ),
        ],
        rate_per_s: MAX_RATE,
        concurrency: 4,
        quota_utc_offset_s: 8 * 3600,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct TencentSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub endpoint: url::Url,
    pub secret_id: SecretSource,
    pub secret_key: SecretSource,
    pub session_token: Option<SecretSource>,
    /// `mainland` or `overseas`; omitted: the domain's own region.
    pub area: Option<String>,
    /// `flush` (purge what changed) or `delete` (purge everything under the directory).
    pub flush_type: String,
    pub url_encode: bool,
    pub timeout: Duration,
    pub limits: Limits,
}

impl ProviderConfig for TencentSettings {
    crate::purgers::one_lane_account!();

    /// `PushUrlsCache`.
    fn prefetches(&self) -> bool {
        true
    }

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let cdn = TencentCdn::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(cdn)])
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
    let raw: RawTencent = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

fn check(name: &str, t: RawTencent, at: &str, p: &mut Problems) -> Option<TencentSettings> {
    let endpoint = validate::endpoint(
        t.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        &field(at, "endpoint"),
        p,
    );
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
    if let Some(area) = &t.area {
        if area != "mainland" && area != "overseas" {
            p.push(
                field(at, "area"),
                format!(
                    "{area:?} is not mainland or overseas (omit it to use each domain's own \
                     region)"
                ),
            );
        }
    }
    let flush_type = t.flush_type.unwrap_or_else(|| "flush".to_owned());
    if flush_type != "flush" && flush_type != "delete" {
        p.push(
            field(at, "flush_type"),
            format!("{flush_type:?} is not flush or delete"),
        );
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
    let limits = Limits {
        kinds: vec![
            (
                TargetKind::Url,
                KindLimits {
                    max_batch: validate::within(
                        t.max_urls_per_request,
                        du.max_batch,
                        1000,
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
                        500,
                        &field(at, "max_dirs_per_request"),
                        p,
                    ),
                    daily_quota: quota(t.dir_daily_quota, dd.daily_quota),
                },
            ),
        ],
        rate_per_s: validate::rate(
            t.rate_per_s,
            d.rate_per_s,
            Some((MAX_RATE, "Tencent's limit")),
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
    Some(TencentSettings {
        name: name.to_owned(),
        endpoint: endpoint?,
        secret_id: secret_id.flatten()?,
        secret_key: secret_key.flatten()?,
        session_token: session_token.flatten(),
        area: t.area,
        flush_type,
        url_encode: t.url_encode.unwrap_or(false),
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "t", text)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (cfg, problems) = parse_text("");
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.lanes(), vec!["t"]);
        assert!(cfg.supports(TargetKind::Url) && cfg.supports(TargetKind::Dir));
        assert!(
            !cfg.supports(TargetKind::Tag),
            "Tencent CDN has no tag purge"
        );
        assert_eq!(cfg.limits().rate_per_s, 20.0);
    }

    #[test]
    fn every_field_problem_is_named() {
        let (_, problems) = parse_text(
            "endpoint = \"http://cdn.tencentcloudapi.com\"\narea = \"moon\"\nrate_per_s = 50\n\
             max_urls_per_request = 5000\nsecret_key_env = \"A\"\nsecret_key_file = \"/b\"\n",
        );
        let all = problems.join("\n");
        for want in [
            "providers.t.endpoint: \"http://cdn.tencentcloudapi.com\": plain http",
            "providers.t.area: \"moon\"",
            "providers.t.rate_per_s: must be from 0.001 to 20 requests per second",
            "providers.t.max_urls_per_request: must be 1 to 1000",
            "providers.t: set either secret_key_env or secret_key_file, not both",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn collapse_needs_both_quotas_counted_and_at_least_one() {
        let (cfg, problems) = parse_text("collapse_to_dir_over = 3");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(cfg.unwrap().limits().collapse_to_dir_over, Some(3));
        let (cfg, _) = parse_text("");
        assert_eq!(
            cfg.unwrap().limits().collapse_to_dir_over,
            None,
            "off by default"
        );
        let (_, problems) = parse_text("collapse_to_dir_over = 0");
        assert!(
            problems[0].starts_with("providers.t.collapse_to_dir_over: must be at least 1"),
            "{problems:?}"
        );
        let (_, problems) = parse_text("collapse_to_dir_over = 3\ndir_daily_quota = 0");
        assert!(
            problems[0].contains("collapse_to_dir_over: needs the daily URL and directory"),
            "{problems:?}"
        );
    }

    #[test]
    fn inline_secrets_are_unknown_keys() {
        let (cfg, problems) = parse_text("secret_key = \"inline!\"\n");
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `secret_key`"),
            "{problems:?}"
        );
    }
}
