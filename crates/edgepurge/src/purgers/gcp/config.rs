//! `[providers.NAME] kind = "gcp-cdn"`: its keys, defaults and checks (apis.md §J.4).

use super::GcpCdn;
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
    kind: "gcp-cdn",
    parse,
};

pub const DEFAULT_ENDPOINT: &str = "https://compute.googleapis.com";
/// Cloud CDN takes "up to 500 invalidation requests per minute" (cloud.google.com
/// cdn/docs/cache-invalidation-overview): at most this many per second.
pub const MAX_RATE: f64 = 500.0 / 60.0;
/// The default: 8 a second, 480 a minute at most (the lane's limiter allows
/// `floor(rate)` per 1.1 s), under the documented 500.
pub const DEFAULT_RATE: f64 = 8.0;
/// `cacheTags`: "Up to 10 tags can be specified in a single invalidation request"
/// (Compute API `CacheInvalidationRule`).
pub const MAX_TAGS_PER_REQUEST: usize = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGcp {
    project: Option<String>,
    url_map: Option<String>,
    credentials_file: Option<PathBuf>,
    credentials_env: Option<String>,
    token_uri: Option<String>,
    endpoint: Option<String>,
    timeout_s: Option<u64>,
    rate_per_s: Option<f64>,
    concurrency: Option<usize>,
    max_tags_per_request: Option<usize>,
}

/// Provider defaults: one path per request (the API takes one), ten tags, 8 requests a
/// second, no daily quota (Google documents none for invalidations).
pub fn default_limits() -> Limits {
    limits_for(DEFAULT_RATE, MAX_TAGS_PER_REQUEST)
}

fn limits_for(rate: f64, tags: usize) -> Limits {
    let kind = |max_batch| KindLimits {
        max_batch,
        daily_quota: None,
    };
    Limits {
        kinds: vec![
            (TargetKind::Url, kind(1)),
            (TargetKind::Dir, kind(1)),
            (TargetKind::Tag, kind(tags)),
        ],
        rate_per_s: rate,
        concurrency: 2,
        quota_utc_offset_s: 0,
        collapse_to_dir_over: None,
    }
}

#[derive(Debug, Clone)]
pub struct GcpSettings {
    /// Provider account name (also the lane name).
    pub name: String,
    /// The project that holds the URL map.
    pub project: String,
    /// The URL map (load balancer) whose Cloud CDN caches are invalidated.
    pub url_map: String,
    /// The service-account key (JSON), read at every token fetch.
    pub credentials: SecretSource,
    /// Where access tokens are fetched, instead of the key's `token_uri`.
    pub token_uri: Option<url::Url>,
    /// The Compute API base (`scheme://host[:port]`).
    pub endpoint: url::Url,
    pub timeout: Duration,
    pub limits: Limits,
}

impl ProviderConfig for GcpSettings {
    crate::purgers::one_lane_account!();

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let gcp = GcpCdn::new(self.clone()).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(vec![Arc::new(gcp)])
    }

    fn secrets(&self) -> Vec<&SecretSource> {
        vec![&self.credentials]
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawGcp = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

/// A Google Cloud project id: 6 to 30 lower-case letters, digits and hyphens, starting with
/// a letter (older projects may carry a `domain.com:` prefix).
pub fn is_project_id(id: &str) -> bool {
    let (domain, project) = match id.rsplit_once(':') {
        Some((d, p)) => (Some(d), p),
        None => (None, id),
    };
    let domain_ok = domain.is_none_or(|d| {
        !d.is_empty()
            && d.len() <= 63
            && d.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    });
    domain_ok
        && (6..=30).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A Compute resource name (RFC 1035 label): `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
pub fn is_resource_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An API base: `scheme://host[:port]` only (https, or http on loopback).
fn base_url(text: &str, what: &str, at: &str, p: &mut Problems) -> Option<url::Url> {
    let u = validate::endpoint(text, at, p)?;
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        p.push(
            at,
            format!("{u}: give the API's base only (scheme://host[:port]); edgepurge adds {what}"),
        );
        return None;
    }
    Some(u)
}

fn check(name: &str, t: RawGcp, at: &str, p: &mut Problems) -> Option<GcpSettings> {
    let project = match t.project {
        Some(v) if is_project_id(&v) => Some(v),
        Some(v) => {
            p.push(
                field(at, "project"),
                format!(
                    "{:?} is not a Google Cloud project id (6 to 30 lower-case letters, digits \
                     and hyphens, starting with a letter): give the project's id, not its name \
                     or number",
                    edgepurge_core::printable(&v)
                ),
            );
            None
        }
        None => {
            p.push(
                field(at, "project"),
                "required: the id of the project that holds the URL map",
            );
            None
        }
    };
    let url_map = match t.url_map {
        Some(v) if is_resource_name(&v) => Some(v),
        Some(v) => {
            p.push(
                field(at, "url_map"),
                format!(
                    "{:?} is not a URL map name (lower-case letters, digits and hyphens, at \
                     most 63, starting with a letter): see `gcloud compute url-maps list`",
                    edgepurge_core::printable(&v)
                ),
            );
            None
        }
        None => {
            p.push(
                field(at, "url_map"),
                "required: the name of the load balancer's URL map (`gcloud compute url-maps \
                 list`)",
            );
            None
        }
    };
    let credentials = match validate::secret(
        "credentials",
        t.credentials_env,
        t.credentials_file,
        None,
        at,
        p,
    ) {
        Some(Some(s)) => Some(s),
        Some(None) => {
            p.push(
                field(at, "credentials_file"),
                "required: the service account's JSON key file (or credentials_env, a \
                 variable holding that JSON)",
            );
            None
        }
        None => None,
    };
    let token_uri = t.token_uri.as_deref().and_then(|text| {
        let at = field(at, "token_uri");
        let u = validate::endpoint(text, &at, p)?;
        if u.query().is_some() || u.fragment().is_some() {
            p.push(
                at,
                format!("{u}: a token endpoint has no query or fragment"),
            );
            return None;
        }
        Some(u)
    });
    let endpoint = match t.endpoint.as_deref() {
        Some(text) => base_url(text, "/compute/v1/…", &field(at, "endpoint"), p),
        None => url::Url::parse(DEFAULT_ENDPOINT).ok(),
    };
    let rate = validate::rate(
        t.rate_per_s,
        DEFAULT_RATE,
        Some((
            MAX_RATE,
            "Cloud CDN takes up to 500 invalidation requests a minute",
        )),
        &field(at, "rate_per_s"),
        p,
    );
    let tags = validate::within(
        t.max_tags_per_request,
        MAX_TAGS_PER_REQUEST,
        MAX_TAGS_PER_REQUEST,
        &field(at, "max_tags_per_request"),
        p,
    );
    let mut limits = limits_for(rate, tags);
    limits.concurrency = validate::within(
        t.concurrency,
        limits.concurrency,
        64,
        &field(at, "concurrency"),
        p,
    );
    let timeout = validate::seconds(t.timeout_s, 30, &field(at, "timeout_s"), p);
    Some(GcpSettings {
        name: name.to_owned(),
        project: project?,
        url_map: url_map?,
        credentials: credentials?,
        token_uri,
        endpoint: endpoint?,
        timeout,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "gcp", text)
    }

    const BASE: &str = "project = \"my-project-1\"\nurl_map = \"web-map\"\n\
                        credentials_file = \"/etc/edgepurge/gcp.json\"\n";

    fn settings(text: &str) -> GcpSettings {
        let (cfg, problems) = parse_text(text);
        assert!(problems.is_empty(), "{problems:?}");
        cfg.unwrap()
            .as_any()
            .downcast_ref::<GcpSettings>()
            .unwrap()
            .clone()
    }

    fn max(s: &GcpSettings, kind: TargetKind) -> usize {
        s.limits.kind(kind).unwrap().max_batch
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings(BASE);
        assert_eq!(s.endpoint.as_str(), "https://compute.googleapis.com/");
        assert_eq!(s.token_uri, None);
        assert_eq!(
            s.credentials,
            SecretSource::File("/etc/edgepurge/gcp.json".into())
        );
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.limits.rate_per_s, 8.0);
        assert!(s.limits.rate_per_s * 60.0 <= 500.0);
        assert_eq!(
            (
                max(&s, TargetKind::Url),
                max(&s, TargetKind::Dir),
                max(&s, TargetKind::Tag)
            ),
            (1, 1, 10),
            "one path per invalidateCache call, up to 10 cache tags"
        );
        assert!(s.limits.kinds.iter().all(|(_, l)| l.daily_quota.is_none()));
        let (cfg, _) = parse_text(BASE);
        let cfg = cfg.unwrap();
        assert_eq!(cfg.lanes(), vec!["gcp"]);
        assert_eq!(cfg.kind(), "gcp-cdn");
        assert_eq!(cfg.required_secrets().len(), 1);
    }

    #[test]
    fn every_field_problem_is_named() {
        let (cfg, problems) = parse_text(
            "project = \"My Project\"\nurl_map = \"Web_Map\"\ncredentials_file = \"/a\"\n\
             credentials_env = \"B\"\ntoken_uri = \"http://oauth2.example.com/token\"\n\
             endpoint = \"https://compute.googleapis.com/compute/v1\"\nrate_per_s = 9\n\
             max_tags_per_request = 11\ntimeout_s = 0\nconcurrency = 0\n",
        );
        assert!(cfg.is_none());
        let all = problems.join("\n");
        for want in [
            "providers.gcp.project: \"My Project\" is not a Google Cloud project id",
            "providers.gcp.url_map: \"Web_Map\" is not a URL map name",
            "providers.gcp: set either credentials_env or credentials_file, not both",
            "providers.gcp.token_uri: \"http://oauth2.example.com/token\": plain http",
            "providers.gcp.endpoint: https://compute.googleapis.com/compute/v1: give the API's \
             base only",
            "providers.gcp.rate_per_s: must be from 0.001 to 8.333333333333334 requests per \
             second (Cloud CDN takes up to 500 invalidation requests a minute)",
            "providers.gcp.max_tags_per_request: must be 1 to 10",
            "providers.gcp.timeout_s: must be 1 to",
            "providers.gcp.concurrency: must be 1 to 64",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text("");
        let all = problems.join("\n");
        for want in [
            "providers.gcp.project: required",
            "providers.gcp.url_map: required",
            "providers.gcp.credentials_file: required",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn loopback_endpoints_env_credentials_and_fewer_tags_are_taken() {
        let s = settings(
            "project = \"example.com:legacy-proj\"\nurl_map = \"m\"\n\
             credentials_env = \"GCP_KEY_JSON\"\ntoken_uri = \"http://127.0.0.1:9/token\"\n\
             endpoint = \"http://127.0.0.1:8\"\nmax_tags_per_request = 3\nrate_per_s = 0.5\n",
        );
        assert_eq!(s.project, "example.com:legacy-proj");
        assert_eq!(s.credentials, SecretSource::Env("GCP_KEY_JSON".into()));
        assert_eq!(
            s.token_uri.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:9/token")
        );
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:8/");
        assert_eq!(max(&s, TargetKind::Tag), 3);
        assert_eq!(s.limits.rate_per_s, 0.5);
    }

    #[test]
    fn names_follow_googles_rules() {
        for ok in ["my-project-1", "abcdef", "example.com:my-proj"] {
            assert!(is_project_id(ok), "{ok}");
        }
        for bad in ["abc", "1project", "My-project", "proj-", "a b cdef", ""] {
            assert!(!is_project_id(bad), "{bad}");
        }
        assert!(is_resource_name("web-map-1") && is_resource_name("m"));
        for bad in ["Web", "1map", "map-", "a/b", "", &"a".repeat(64)] {
            assert!(!is_resource_name(bad), "{bad}");
        }
    }

    #[test]
    fn inline_keys_are_unknown_fields() {
        let (cfg, problems) = parse_text(&format!("{BASE}private_key = \"-----BEGIN\"\n"));
        assert!(cfg.is_none());
        assert!(
            problems[0].contains("unknown field `private_key`"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_commented_example_block_is_valid() {
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../edgepurge.example.toml"
        ))
        .unwrap();
        let block: Vec<&str> = example
            .lines()
            .skip_while(|l| *l != "# [providers.gcp]")
            .skip(2) // the header and `kind`
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(""))
            .collect();
        assert!(block.len() > 5, "{block:?}");
        let s = settings(&block.join("\n"));
        let d = settings(BASE);
        assert_eq!((s.limits, s.timeout), (d.limits, d.timeout));
        assert_eq!(s.endpoint, d.endpoint);
    }
}
