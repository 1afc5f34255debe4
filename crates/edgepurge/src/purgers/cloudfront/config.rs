//! `[providers.NAME] kind = "cloudfront"`: its keys, defaults and checks (apis.md §B).

use super::{CloudFront, DEFAULT_ENDPOINT};
use crate::aws::{KeySources, RawKeys};
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
    kind: "cloudfront",
    parse,
};

/// Paths in progress per distribution at once (apis.md §B.4): no request may carry more.
pub const MAX_PATHS_IN_PROGRESS: usize = 3000;
/// Wildcard paths in progress per distribution at once (apis.md §B.4).
pub const MAX_WILDCARDS_IN_PROGRESS: usize = 15;

/// Paths (and cache tags) per request by default: a third of what may be in progress, so
/// up to three invalidations run at once and one large batch never blocks every other
/// request (dir, tag, the console's) until it completes.
const DEFAULT_MAX_PATHS: usize = 1000;
/// Wildcard paths per request by default: leaves 5 of the 15 for the console or other tools,
/// whose wildcards would otherwise keep a full batch of 15 from ever fitting.
const DEFAULT_MAX_WILDCARDS: usize = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudFront {
    distribution_id: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    session_token_env: Option<String>,
    session_token_file: Option<PathBuf>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    max_paths_per_request: Option<usize>,
    max_wildcards_per_request: Option<usize>,
    busy_retry_s: Option<u64>,
}

/// Provider defaults (apis.md §B.4, §J.1). CloudFront has no daily quota (paths beyond the
/// monthly free ones are billed), so none is kept locally.
pub fn default_limits() -> Limits {
    let paths = KindLimits {
        max_batch: DEFAULT_MAX_PATHS,
        daily_quota: None,
    };
    Limits {
        kinds: vec![
            (TargetKind::Url, paths),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: DEFAULT_MAX_WILDCARDS,
                    daily_quota: None,
                },
            ),
            (TargetKind::Tag, paths),
        ],
        rate_per_s: 1.0,
        concurrency: 2,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct CloudFrontSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub distribution_id: String,
    pub endpoint: url::Url,
    /// SigV4 signing region: `us-east-1` for the global endpoint.
    pub region: String,
    pub keys: KeySources,
    pub timeout: Duration,
    /// Least wait before sending again after `TooManyInvalidationsInProgress`.
    pub busy_retry: Duration,
    pub limits: Limits,
}

impl CloudFrontSettings {
    /// Most wildcard paths one request may carry.
    pub fn max_wildcards(&self) -> usize {
        self.limits
            .kind(TargetKind::Dir)
            .map_or(DEFAULT_MAX_WILDCARDS, |l| l.max_batch)
    }
}

impl ProviderConfig for CloudFrontSettings {
    crate::purgers::one_lane_account!();

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let cf = CloudFront::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(cf)])
    }

    fn required_secrets(&self) -> Vec<&SecretSource> {
        // An unset session token variable means long-lived keys.
        self.keys.required()
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        self.keys.all()
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawCloudFront = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// A distribution id as CloudFront gives them (`EDFDVBD6EXAMPLE`): letters and digits.
fn distribution_id(id: Option<String>, at: &str, p: &mut Problems) -> Option<String> {
    let at = field(at, "distribution_id");
    let Some(id) = id else {
        p.push(
            at,
            "required: the distribution's id, e.g. \"EDFDVBD6EXAMPLE\" (CloudFront console, \
             or `aws cloudfront list-distributions`)",
        );
        return None;
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        p.push(
            at,
            format!(
                "{id:?} is not a distribution id (letters and digits, e.g. \"EDFDVBD6EXAMPLE\"; \
                 not the domain name or the ARN)"
            ),
        );
        return None;
    }
    Some(id)
}

fn check(name: &str, t: RawCloudFront, at: &str, p: &mut Problems) -> Option<CloudFrontSettings> {
    let distribution_id = distribution_id(t.distribution_id, at, p);
    let endpoint = validate::endpoint(
        t.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT),
        &field(at, "endpoint"),
        p,
    )
    .and_then(|u| {
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            p.push(
                field(at, "endpoint"),
                format!(
                    "{u}: give the API's base URL only (scheme, host, port), e.g. {DEFAULT_ENDPOINT}"
                ),
            );
            return None;
        }
        Some(u)
    });
    let region = t
        .region
        .unwrap_or_else(|| super::sign::DEFAULT_REGION.to_owned());
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        p.push(
            field(at, "region"),
            format!(
                "{region:?} is not an AWS region (us-east-1 for the global endpoint, \
                 cn-northwest-1 for China)"
            ),
        );
    }
    let keys = KeySources::check(
        RawKeys {
            access_key_id: (t.access_key_id_env, t.access_key_id_file),
            secret_access_key: (t.secret_access_key_env, t.secret_access_key_file),
            session_token: (t.session_token_env, t.session_token_file),
        },
        at,
        p,
    );
    let d = default_limits();
    let max_paths = validate::within(
        t.max_paths_per_request,
        DEFAULT_MAX_PATHS,
        MAX_PATHS_IN_PROGRESS,
        &field(at, "max_paths_per_request"),
        p,
    );
    let max_wildcards = validate::within(
        t.max_wildcards_per_request,
        DEFAULT_MAX_WILDCARDS,
        MAX_WILDCARDS_IN_PROGRESS,
        &field(at, "max_wildcards_per_request"),
        p,
    );
    let paths = KindLimits {
        max_batch: max_paths,
        daily_quota: None,
    };
    let limits = Limits {
        kinds: vec![
            (TargetKind::Url, paths),
            (
                TargetKind::Dir,
                KindLimits {
                    max_batch: max_wildcards,
                    daily_quota: None,
                },
            ),
            (TargetKind::Tag, paths),
        ],
        rate_per_s: validate::rate(
            t.rate_per_s,
            d.rate_per_s,
            None,
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
    let timeout = validate::seconds(t.timeout_s, 30, &field(at, "timeout_s"), p);
    let busy_retry = validate::seconds(t.busy_retry_s, 30, &field(at, "busy_retry_s"), p);
    if !region_ok {
        return None;
    }
    Some(CloudFrontSettings {
        name: name.to_owned(),
        distribution_id: distribution_id?,
        endpoint: endpoint?,
        region,
        keys: keys?,
        timeout,
        busy_retry,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "cf", text)
    }

    fn settings(text: &str) -> CloudFrontSettings {
        let (cfg, problems) = parse_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        cfg.unwrap()
            .as_any()
            .downcast_ref::<CloudFrontSettings>()
            .unwrap()
            .clone()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings("distribution_id = \"EDFDVBD6EXAMPLE\"\n");
        assert_eq!(s.endpoint.as_str(), "https://cloudfront.amazonaws.com/");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(
            s.keys.access_key_id,
            SecretSource::Env("AWS_ACCESS_KEY_ID".into())
        );
        assert_eq!(
            s.keys.session_token,
            Some(SecretSource::Env("AWS_SESSION_TOKEN".into()))
        );
        let (cfg, _) = parse_text("distribution_id = \"EDFDVBD6EXAMPLE\"\n");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.lanes(), vec!["cf"]);
        for kind in TargetKind::ALL {
            assert!(cfg.supports(kind), "{kind:?}");
        }
        let max = |k| cfg.limits().kind(k).unwrap().max_batch;
        assert_eq!(max(TargetKind::Url), 1000);
        assert_eq!(max(TargetKind::Tag), 1000);
        assert_eq!(max(TargetKind::Dir), 10);
        assert!(cfg
            .limits()
            .kinds
            .iter()
            .all(|(_, l)| l.daily_quota.is_none()));
        assert_eq!(cfg.required_secrets().len(), 2);
        assert_eq!(cfg.secrets().len(), 3);
    }

    #[test]
    fn every_field_problem_is_named() {
        let (cfg, problems) = parse_text(
            "endpoint = \"http://cloudfront.amazonaws.com\"\nregion = \"US East\"\n\
             max_paths_per_request = 3001\nmax_wildcards_per_request = 16\n\
             secret_access_key_env = \"A\"\nsecret_access_key_file = \"/b\"\nrate_per_s = 0\n\
             busy_retry_s = 0\n",
        );
        assert!(cfg.is_none());
        let all = problems.join("\n");
        for want in [
            "providers.cf.distribution_id: required",
            "providers.cf.endpoint: \"http://cloudfront.amazonaws.com\": plain http",
            "providers.cf.region: \"US East\" is not an AWS region",
            "providers.cf.max_paths_per_request: must be 1 to 3000",
            "providers.cf.max_wildcards_per_request: must be 1 to 15",
            "providers.cf: set either secret_access_key_env or secret_access_key_file, not both",
            "providers.cf.rate_per_s: must be from",
            "providers.cf.busy_retry_s: must be 1 to",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text(
            "distribution_id = \"arn:aws:cloudfront::1:distribution/E1\"\n\
             endpoint = \"https://cloudfront.amazonaws.com/2020-05-31/\"\n",
        );
        let all = problems.join("\n");
        assert!(all.contains("is not a distribution id"), "{all}");
        assert!(all.contains("give the API's base URL only"), "{all}");
    }

    #[test]
    fn loopback_endpoints_and_limits_are_taken() {
        let s = settings(
            "distribution_id = \"E2\"\nendpoint = \"http://127.0.0.1:9\"\n\
             max_paths_per_request = 3000\nmax_wildcards_per_request = 15\n\
             access_key_id_file = \"/run/keys/id\"\nregion = \"cn-northwest-1\"\n",
        );
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:9/");
        assert_eq!(s.region, "cn-northwest-1");
        assert_eq!(s.max_wildcards(), 15);
        assert_eq!(s.limits.kind(TargetKind::Url).unwrap().max_batch, 3000);
        assert_eq!(
            s.keys.access_key_id,
            SecretSource::File("/run/keys/id".into())
        );
    }

    #[test]
    fn inline_secrets_are_unknown_keys() {
        let (cfg, problems) =
            parse_text("distribution_id = \"E1\"\nsecret_access_key = \"inline!\"\n");
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `secret_access_key`"),
            "{problems:?}"
        );
    }
}
