//! `[providers.NAME] kind = "cloudflare"`: its keys, defaults and checks (apis.md §C, §J.2).

use super::plan::{Plan, MAX_ITEMS_PER_REQUEST};
use super::{Cloudflare, DEFAULT_ENDPOINT};
use crate::limits::KindLimits;
use crate::purgers::{BuildError, Limits, ProviderConfig, ProviderKind, Purger, SharedRate};
use crate::secret::SecretSource;
use crate::validate::{self, field, Problems};
use edgepurge_core::TargetKind;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const KIND: ProviderKind = ProviderKind {
    kind: "cloudflare",
    parse,
};

/// The variable the official SDKs and wrangler read the token from.
pub const DEFAULT_TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";

/// Requests per second of any kind by default: well within the single-file bucket of every
/// plan (2 × 100 URLs = 200 URLs/s; Free allows 800), and half of Cloudflare's global API
/// limit of 1,200 requests per 5 minutes per user, which tag and prefix purges count toward
/// and which the dashboard, Terraform and other tools share.
const DEFAULT_RATE: f64 = 2.0;
/// The fastest rate accepted: the Enterprise tag/prefix bucket's refill.
const MAX_RATE: f64 = 50.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudflare {
    zone_id: Option<String>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
    endpoint: Option<String>,
    plan: Option<Plan>,
    soft: Option<bool>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    urls_per_request: Option<usize>,
    prefixes_per_request: Option<usize>,
    tags_per_request: Option<usize>,
    tag_prefix_per_minute: Option<u32>,
}

/// Provider defaults (apis.md §C), the same on every plan. No daily quota: Cloudflare limits
/// rates only.
pub fn default_limits() -> Limits {
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    Limits {
        kinds: vec![
            (TargetKind::Url, kind(100)),
            (TargetKind::Dir, kind(MAX_ITEMS_PER_REQUEST)),
            (TargetKind::Tag, kind(MAX_ITEMS_PER_REQUEST)),
        ],
        rate_per_s: DEFAULT_RATE,
        concurrency: 2,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct CloudflareSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    pub zone_id: String,
    /// The API base, ending in `/client/v4` (no trailing slash).
    pub endpoint: url::Url,
    pub api_token: SecretSource,
    pub plan: Plan,
    /// `invalidate_cache` (mark stale, revalidate) instead of `purge_cache` (delete).
    pub soft: bool,
    pub timeout: Duration,
    /// Tag and prefix requests per minute (their own bucket at Cloudflare).
    pub tag_prefix_per_minute: u32,
    pub limits: Limits,
}

impl CloudflareSettings {
    /// The rate tag and prefix requests share, besides the lane's.
    pub fn tag_prefix_rate(&self) -> SharedRate {
        SharedRate {
            kinds: vec![TargetKind::Dir, TargetKind::Tag],
            rate_per_s: f64::from(self.tag_prefix_per_minute) / 60.0,
        }
    }
}

impl ProviderConfig for CloudflareSettings {
    crate::purgers::one_lane_account!();

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let cf = Cloudflare::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(cf)])
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
    let raw: RawCloudflare = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// A zone id as Cloudflare shows it: 32 lowercase hex characters.
fn zone_id(id: Option<String>, at: &str, p: &mut Problems) -> Option<String> {
    let at = field(at, "zone_id");
    let Some(id) = id else {
        p.push(
            at,
            "required: the zone's id, 32 hex characters (the zone's Overview page in the \
             dashboard shows it as Zone ID, under API)",
        );
        return None;
    };
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        p.push(
            at,
            format!(
                "{:?} is not a zone id: 32 lowercase hex characters, e.g. \
                 \"023e105f4ecef8ad9ca31a8372d0c353\" (the Zone ID on the zone's Overview \
                 page, not the domain name or the account id)",
                edgepurge_core::printable(&id)
            ),
        );
        return None;
    }
    Some(id)
}

/// The API base: `validate::endpoint`, and a path ending in `/client/v4` like the official
/// SDK's `base_url`.
fn endpoint(text: Option<&str>, at: &str, p: &mut Problems) -> Option<url::Url> {
    let at = field(at, "endpoint");
    let mut u = validate::endpoint(text.unwrap_or(DEFAULT_ENDPOINT), &at, p)?;
    let path = u.path().trim_end_matches('/').to_owned();
    if !path.ends_with("/client/v4") || u.query().is_some() || u.fragment().is_some() {
        p.push(
            at,
            format!(
                "{u}: give the API base ending in /client/v4 (the official SDK's base_url), \
                 e.g. {DEFAULT_ENDPOINT}"
            ),
        );
        return None;
    }
    u.set_path(&path);
    Some(u)
}

fn check(name: &str, t: RawCloudflare, at: &str, p: &mut Problems) -> Option<CloudflareSettings> {
    let zone_id = zone_id(t.zone_id, at, p);
    let endpoint = endpoint(t.endpoint.as_deref(), at, p);
    let api_token = validate::secret(
        "api_token",
        t.api_token_env,
        t.api_token_file,
        Some(DEFAULT_TOKEN_ENV),
        at,
        p,
    );
    let plan = t.plan.unwrap_or_default();
    let d = default_limits();
    let urls = match t.urls_per_request {
        Some(n)
            if n > 100
                && n <= Plan::Enterprise.max_urls_per_request()
                && plan != Plan::Enterprise =>
        {
            p.push(
                field(at, "urls_per_request"),
                format!(
                    "Cloudflare takes more than 100 URLs per request on the Enterprise plan only \
                     (plan = \"{}\"); set plan = \"enterprise\" if the zone has it",
                    plan.as_str()
                ),
            );
            100
        }
        n => validate::within(
            n,
            100,
            plan.max_urls_per_request(),
            &field(at, "urls_per_request"),
            p,
        ),
    };
    let prefixes = validate::within(
        t.prefixes_per_request,
        MAX_ITEMS_PER_REQUEST,
        MAX_ITEMS_PER_REQUEST,
        &field(at, "prefixes_per_request"),
        p,
    );
    let tags = validate::within(
        t.tags_per_request,
        MAX_ITEMS_PER_REQUEST,
        MAX_ITEMS_PER_REQUEST,
        &field(at, "tags_per_request"),
        p,
    );
    let rate_per_s = validate::rate(
        t.rate_per_s,
        d.rate_per_s,
        Some((MAX_RATE, "Cloudflare's fastest purge rate, Enterprise's")),
        &field(at, "rate_per_s"),
        p,
    );
    // The single-file bucket counts URLs: a full request every 1/rate seconds must fit it.
    let urls_per_s = rate_per_s * urls as f64;
    if urls_per_s > plan.urls_per_second() as f64 {
        p.push(
            field(at, "rate_per_s"),
            format!(
                "{rate_per_s} requests/s of {urls} URLs is {urls_per_s} URLs/s, over the {} \
                 plan's {} URLs/s; lower rate_per_s or urls_per_request (or set plan to the \
                 zone's plan)",
                plan.as_str(),
                plan.urls_per_second()
            ),
        );
    }
    let most = plan.tag_prefix_requests_per_minute();
    let tag_prefix_per_minute = match t.tag_prefix_per_minute {
        Some(n) if n == 0 || n > most => {
            p.push(
                field(at, "tag_prefix_per_minute"),
                format!(
                    "must be 1 to {most} (the {} plan's tag and prefix purges per minute; set \
                     plan to the zone's plan to allow more)",
                    plan.as_str()
                ),
            );
            most
        }
        Some(n) => n,
        None => most,
    };
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    let limits = Limits {
        kinds: vec![
            (TargetKind::Url, kind(urls)),
            (TargetKind::Dir, kind(prefixes)),
            (TargetKind::Tag, kind(tags)),
        ],
        rate_per_s,
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
    Some(CloudflareSettings {
        name: name.to_owned(),
        zone_id: zone_id?,
        endpoint: endpoint?,
        api_token: api_token.flatten()?,
        plan,
        soft: t.soft.unwrap_or(false),
        timeout,
        tag_prefix_per_minute,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "cf", text)
    }

    fn settings(text: &str) -> CloudflareSettings {
        let (cfg, problems) = parse_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        cfg.unwrap()
            .as_any()
            .downcast_ref::<CloudflareSettings>()
            .unwrap()
            .clone()
    }

    fn problems(text: &str) -> String {
        let (_, problems) = parse_text(text);
        assert!(!problems.is_empty(), "accepted: {text}");
        problems.join("\n")
    }

    #[test]
    fn defaults_are_free_plan_safe() {
        let s = settings(&format!("zone_id = \"{ZONE}\"\n"));
        assert_eq!(s.endpoint.as_str(), "https://api.cloudflare.com/client/v4");
        assert_eq!(
            s.api_token,
            SecretSource::Env("CLOUDFLARE_API_TOKEN".into())
        );
        assert_eq!(s.plan, Plan::Free);
        assert!(!s.soft);
        assert_eq!(s.timeout, Duration::from_secs(30));
        let max = |k| s.limits.kind(k).unwrap().max_batch;
        assert_eq!(
            (
                max(TargetKind::Url),
                max(TargetKind::Dir),
                max(TargetKind::Tag)
            ),
            (100, 100, 100)
        );
        assert!(s.limits.kinds.iter().all(|(_, l)| l.daily_quota.is_none()));
        assert_eq!(s.limits.rate_per_s, 2.0);
        assert_eq!(s.limits.concurrency, 2);
        // Free: 5 tag/prefix requests a minute, shared by both kinds.
        assert_eq!(s.tag_prefix_per_minute, 5);
        let shared = s.tag_prefix_rate();
        assert_eq!(shared.kinds, vec![TargetKind::Dir, TargetKind::Tag]);
        assert!((shared.rate_per_s - 5.0 / 60.0).abs() < 1e-9);
        assert_eq!(s.lanes(), vec!["cf"]);
        for kind in TargetKind::ALL {
            assert!(s.supports(kind), "{kind:?}");
        }
        assert_eq!(s.required_secrets().len(), 1);
    }

    #[test]
    fn plans_raise_the_defaults_and_the_maxima() {
        let s = settings(&format!("zone_id = \"{ZONE}\"\nplan = \"business\"\n"));
        assert_eq!(s.tag_prefix_per_minute, 600);
        assert_eq!(s.limits.kind(TargetKind::Url).unwrap().max_batch, 100);
        let s = settings(&format!(
            "zone_id = \"{ZONE}\"\nplan = \"enterprise\"\nurls_per_request = 500\n\
             rate_per_s = 6\nsoft = true\ntag_prefix_per_minute = 3000\n"
        ));
        assert_eq!(s.limits.kind(TargetKind::Url).unwrap().max_batch, 500);
        assert!(s.soft);
        assert_eq!(s.tag_prefix_per_minute, 3000);
    }

    #[test]
    fn every_field_problem_is_named() {
        let all = problems(
            "zone_id = \"example.com\"\nendpoint = \"http://api.cloudflare.com/client/v4\"\n\
             urls_per_request = 500\nprefixes_per_request = 101\ntags_per_request = 0\n\
             api_token_env = \"A\"\napi_token_file = \"/b\"\nrate_per_s = 51\n\
             tag_prefix_per_minute = 6\nconcurrency = 0\nplan = \"free\"\n",
        );
        for want in [
            "providers.cf.zone_id: \"example.com\" is not a zone id",
            "providers.cf.endpoint: \"http://api.cloudflare.com/client/v4\": plain http",
            "providers.cf.urls_per_request: Cloudflare takes more than 100 URLs per request on \
             the Enterprise plan only",
            "providers.cf.prefixes_per_request: must be 1 to 100",
            "providers.cf.tags_per_request: must be 1 to 100",
            "providers.cf: set either api_token_env or api_token_file, not both",
            "providers.cf.rate_per_s: must be from 0.001 to 50",
            "providers.cf.tag_prefix_per_minute: must be 1 to 5",
            "providers.cf.concurrency: must be 1 to 64",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let all = problems(&format!("zone_id = \"{ZONE}\"\nurls_per_request = 501\n"));
        assert!(all.contains("urls_per_request: must be 1 to 100"), "{all}");
        let all = problems("plan = \"team\"\n");
        assert!(all.contains("unknown variant `team`"), "{all}");
        assert!(problems("").contains("providers.cf.zone_id: required"));
        let all = problems(&format!(
            "zone_id = \"{}\"\nendpoint = \"https://api.cloudflare.com\"\n",
            ZONE.to_uppercase()
        ));
        assert!(all.contains("is not a zone id"), "{all}");
        assert!(
            all.contains("give the API base ending in /client/v4"),
            "{all}"
        );
    }

    #[test]
    fn the_url_rate_must_fit_the_plans_bucket() {
        let all = problems(&format!("zone_id = \"{ZONE}\"\nrate_per_s = 9\n"));
        assert!(
            all.contains("9 requests/s of 100 URLs is 900 URLs/s, over the free plan's 800"),
            "{all}"
        );
        settings(&format!(
            "zone_id = \"{ZONE}\"\nrate_per_s = 9\nurls_per_request = 80\n"
        ));
        settings(&format!(
            "zone_id = \"{ZONE}\"\nrate_per_s = 15\nplan = \"pro\"\n"
        ));
    }

    #[test]
    fn loopback_endpoints_and_token_files_are_taken() {
        let s = settings(&format!(
            "zone_id = \"{ZONE}\"\nendpoint = \"http://127.0.0.1:9/client/v4/\"\n\
             api_token_file = \"/run/secrets/cf\"\n"
        ));
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:9/client/v4");
        assert_eq!(s.api_token, SecretSource::File("/run/secrets/cf".into()));
        let s = settings(&format!(
            "zone_id = \"{ZONE}\"\nendpoint = \"https://proxy.example.com/cf/client/v4\"\n"
        ));
        assert_eq!(s.endpoint.path(), "/cf/client/v4");
    }

    #[test]
    fn the_commented_example_block_is_valid() {
        let example = include_str!("../../../../../edgepurge.example.toml");
        let start = example
            .find("# [providers.site-cloudflare]")
            .expect("the example has a Cloudflare block");
        let block: String = example[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let text = block.replace("kind = \"cloudflare\"\n", "");
        let s = settings(&text);
        assert_eq!(s.zone_id, ZONE);
        assert_eq!(s.endpoint.as_str(), DEFAULT_ENDPOINT);
        assert_eq!(s.tag_prefix_per_minute, 5);
        assert_eq!(s.limits.rate_per_s, 2.0);
    }

    #[test]
    fn inline_tokens_are_unknown_keys() {
        let (cfg, problems) = parse_text(&format!("zone_id = \"{ZONE}\"\napi_token = \"x\"\n"));
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `api_token`"),
            "{problems:?}"
        );
    }
}
