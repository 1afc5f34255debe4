//! `[providers.NAME] kind = "fastly"`: its keys, defaults and checks (apis.md §D.1).

use super::targets::MAX_KEYS_PER_REQUEST;
use super::{Fastly, DEFAULT_ENDPOINT};
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
    kind: "fastly",
    parse,
};

/// The variable the Fastly CLI reads its token from.
pub const DEFAULT_TOKEN_ENV: &str = "FASTLY_API_TOKEN";

/// Requests per second by default. Fastly has no multi-URL purge: each URL is a request of
/// its own. URL and surrogate-key purges are not counted in the 1,000 writes an hour of the
/// general API limit; each kind is limited to about 100,000 an hour (≈ 27 a second), so 10 a
/// second leaves room for the other tools purging through the same token.
const DEFAULT_RATE: f64 = 10.0;
/// The fastest rate accepted: within about 100,000 purges an hour.
const MAX_RATE: f64 = 27.0;
/// Requests in flight at once by default: one URL per request, so a burst of changes needs
/// several at a time.
const DEFAULT_CONCURRENCY: usize = 8;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFastly {
    service_id: Option<String>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
    endpoint: Option<String>,
    soft: Option<bool>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    keys_per_request: Option<usize>,
}

/// Provider defaults (apis.md §D.1): one URL per request, 256 surrogate keys per batch
/// request, no prefix purge, no daily quota (Fastly limits purges per hour, not per day).
pub fn default_limits() -> Limits {
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    Limits {
        kinds: vec![
            (TargetKind::Url, kind(1)),
            (TargetKind::Tag, kind(MAX_KEYS_PER_REQUEST)),
        ],
        rate_per_s: DEFAULT_RATE,
        concurrency: DEFAULT_CONCURRENCY,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct FastlySettings {
    /// Provider account name (also the lane name).
    pub name: String,
    /// The service whose surrogate keys are purged.
    pub service_id: String,
    /// The API base (no trailing slash).
    pub endpoint: url::Url,
    pub api_token: SecretSource,
    /// Mark stale (`Fastly-Soft-Purge: 1`) instead of removing.
    pub soft: bool,
    pub timeout: Duration,
    pub limits: Limits,
}

impl ProviderConfig for FastlySettings {
    crate::purgers::one_lane_account!();

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let f = Fastly::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(f)])
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        vec![&self.api_token]
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawFastly = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// A service id as Fastly shows it: letters and digits (22 of them today).
fn service_id(id: Option<String>, at: &str, p: &mut Problems) -> Option<String> {
    let at = field(at, "service_id");
    let Some(id) = id else {
        p.push(
            at,
            "required: the id of the Fastly service to purge (letters and digits, shown under \
             the service's name in the Fastly control panel, or by `fastly service list`)",
        );
        return None;
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        p.push(
            at,
            format!(
                "{:?} is not a Fastly service id: letters and digits only, e.g. \
                 \"SU1Z0isxPaozGVKXdv0eY\" (the service's ID, not its name or domain)",
                edgepurge_core::printable(&id)
            ),
        );
        return None;
    }
    Some(id)
}

/// The API base: `validate::endpoint`, with no query or fragment.
fn endpoint(text: Option<&str>, at: &str, p: &mut Problems) -> Option<url::Url> {
    let at = field(at, "endpoint");
    let mut u = validate::endpoint(text.unwrap_or(DEFAULT_ENDPOINT), &at, p)?;
    if u.query().is_some() || u.fragment().is_some() {
        p.push(
            at,
            format!("{u}: give the API base without query or fragment, e.g. {DEFAULT_ENDPOINT}"),
        );
        return None;
    }
    let path = u.path().trim_end_matches('/').to_owned();
    u.set_path(&path);
    Some(u)
}

fn check(name: &str, t: RawFastly, at: &str, p: &mut Problems) -> Option<FastlySettings> {
    let service_id = service_id(t.service_id, at, p);
    let endpoint = endpoint(t.endpoint.as_deref(), at, p);
    let api_token = validate::secret(
        "api_token",
        t.api_token_env,
        t.api_token_file,
        Some(DEFAULT_TOKEN_ENV),
        at,
        p,
    );
    let d = default_limits();
    let keys = validate::within(
        t.keys_per_request,
        MAX_KEYS_PER_REQUEST,
        MAX_KEYS_PER_REQUEST,
        &field(at, "keys_per_request"),
        p,
    );
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    let limits = Limits {
        kinds: vec![(TargetKind::Url, kind(1)), (TargetKind::Tag, kind(keys))],
        rate_per_s: validate::rate(
            t.rate_per_s,
            d.rate_per_s,
            Some((MAX_RATE, "Fastly's about 100,000 purges an hour")),
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
    Some(FastlySettings {
        name: name.to_owned(),
        service_id: service_id?,
        endpoint: endpoint?,
        api_token: api_token.flatten()?,
        soft: t.soft.unwrap_or(false),
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "SU1Z0isxPaozGVKXdv0eY";

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "fy", text)
    }

    fn settings(text: &str) -> FastlySettings {
        let (cfg, problems) = parse_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        cfg.unwrap()
            .as_any()
            .downcast_ref::<FastlySettings>()
            .unwrap()
            .clone()
    }

    fn problems(text: &str) -> String {
        let (_, problems) = parse_text(text);
        assert!(!problems.is_empty(), "accepted: {text}");
        problems.join("\n")
    }

    #[test]
    fn defaults_send_one_url_or_256_keys_per_request() {
        let s = settings(&format!("service_id = \"{SERVICE}\"\n"));
        assert_eq!(s.endpoint.as_str(), "https://api.fastly.com/");
        assert_eq!(s.api_token, SecretSource::Env("FASTLY_API_TOKEN".into()));
        assert!(!s.soft);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.limits.kind(TargetKind::Url).unwrap().max_batch, 1);
        assert_eq!(s.limits.kind(TargetKind::Tag).unwrap().max_batch, 256);
        assert!(s.limits.kinds.iter().all(|(_, l)| l.daily_quota.is_none()));
        assert_eq!(s.limits.rate_per_s, 10.0);
        assert_eq!(s.limits.concurrency, 8);
        assert_eq!(s.lanes(), vec!["fy"]);
        assert_eq!(s.required_secrets().len(), 1);
    }

    #[test]
    fn prefix_purges_are_not_supported() {
        let s = settings(&format!("service_id = \"{SERVICE}\"\n"));
        assert!(s.supports(TargetKind::Url));
        assert!(s.supports(TargetKind::Tag));
        assert!(!s.supports(TargetKind::Dir), "Fastly has no prefix purge");
    }

    #[test]
    fn every_field_problem_is_named() {
        let all = problems(
            "service_id = \"my service\"\nendpoint = \"http://api.fastly.com\"\n\
             keys_per_request = 257\napi_token_env = \"A\"\napi_token_file = \"/b\"\n\
             rate_per_s = 28\nconcurrency = 0\ntimeout_s = 0\n",
        );
        for want in [
            "providers.fy.service_id: \"my service\" is not a Fastly service id",
            "providers.fy.endpoint: \"http://api.fastly.com\": plain http",
            "providers.fy.keys_per_request: must be 1 to 256",
            "providers.fy: set either api_token_env or api_token_file, not both",
            "providers.fy.rate_per_s: must be from 0.001 to 27",
            "providers.fy.concurrency: must be 1 to 64",
            "providers.fy.timeout_s: must be 1 to 86400 seconds",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert!(problems("").contains("providers.fy.service_id: required"));
        let all = problems(&format!(
            "service_id = \"{SERVICE}\"\nendpoint = \"https://api.fastly.com/?x=1\"\n"
        ));
        assert!(all.contains("without query or fragment"), "{all}");
    }

    #[test]
    fn loopback_endpoints_soft_purges_and_token_files_are_taken() {
        let s = settings(&format!(
            "service_id = \"{SERVICE}\"\nendpoint = \"http://127.0.0.1:9/\"\nsoft = true\n\
             api_token_file = \"/run/secrets/fastly\"\nkeys_per_request = 50\nrate_per_s = 2\n\
             concurrency = 3\n"
        ));
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:9/");
        assert!(s.soft);
        assert_eq!(
            s.api_token,
            SecretSource::File("/run/secrets/fastly".into())
        );
        assert_eq!(s.limits.kind(TargetKind::Tag).unwrap().max_batch, 50);
        assert_eq!((s.limits.rate_per_s, s.limits.concurrency), (2.0, 3));
    }

    #[test]
    fn the_commented_example_block_is_valid() {
        let example = include_str!("../../../../../edgepurge.example.toml");
        let start = example
            .find("# [providers.site-fastly]")
            .expect("the example has a Fastly block");
        let block: String = example[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let text = block.replace("kind = \"fastly\"\n", "");
        let s = settings(&text);
        assert_eq!(s.service_id, SERVICE);
        assert_eq!(s.endpoint.as_str(), "https://api.fastly.com/");
        assert_eq!(s.limits.rate_per_s, 10.0);
    }

    #[test]
    fn inline_tokens_are_unknown_keys() {
        let (cfg, problems) =
            parse_text(&format!("service_id = \"{SERVICE}\"\napi_token = \"x\"\n"));
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `api_token`"),
            "{problems:?}"
        );
    }
}
