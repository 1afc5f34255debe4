//! `[providers.NAME] kind = "http-purge"`: cache nodes purged over HTTP, their keys, defaults
//! and checks. Each node is its own lane, named `NAME@host:port`.

use super::preset::{default_limits, Methods, Preset};
use super::{node_label, HttpPurgeNode};
use crate::purgers::{BuildError, Limits, ProviderConfig, ProviderKind, Purger};
use crate::validate::{self, field, Problems};
use edgepurge_core::TargetKind;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Most requests in flight per account and per node.
const MAX_CONCURRENCY: usize = 1024;
/// Most targets in one request (a cache's tag header or BAN list is the real bound).
const MAX_PER_REQUEST: usize = 100_000;

pub const KIND: ProviderKind = ProviderKind {
    kind: "http-purge",
    parse,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpPurge {
    preset: Option<Preset>,
    #[serde(default)]
    nodes: Vec<String>,
    purge_method: Option<String>,
    ok_status: Option<Vec<u16>>,
    dir_method: Option<String>,
    dir_header: Option<String>,
    tag_method: Option<String>,
    tag_header: Option<String>,
    timeout_s: Option<u64>,
    node_concurrency: Option<usize>,
    concurrency: Option<usize>,
    rate_per_s: Option<f64>,
    max_urls_per_request: Option<usize>,
    max_dirs_per_request: Option<usize>,
    max_tags_per_request: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct HttpPurgeSettings {
    /// Provider account name.
    pub name: String,
    /// `scheme://host:port` of each cache node.
    pub nodes: Vec<url::Url>,
    pub methods: Methods,
    pub timeout: Duration,
    /// Requests in flight at once to one node.
    pub node_concurrency: usize,
    pub limits: Limits,
}

impl HttpPurgeSettings {
    pub fn lane_name(&self, node: &url::Url) -> String {
        format!("{}@{}", self.name, node_label(node))
    }
}

impl ProviderConfig for HttpPurgeSettings {
    fn kind(&self) -> &'static str {
        KIND.kind
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn lanes(&self) -> Vec<String> {
        self.nodes.iter().map(|n| self.lane_name(n)).collect()
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// A GET through each node.
    fn prefetches(&self) -> bool {
        true
    }

    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError> {
        let nodes = HttpPurgeNode::build(self).map_err(|reason| BuildError {
            provider: self.name.clone(),
            reason,
        })?;
        Ok(nodes
            .into_iter()
            .map(|n| Arc::new(n) as Arc<dyn Purger>)
            .collect())
    }
}

fn parse(
    name: &str,
    section: toml::Table,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>> {
    let raw: RawHttpPurge = validate::section(section, at, p)?;
    let settings = check(name, raw, at, p)?;
    Some(Arc::new(settings))
}

fn check(name: &str, h: RawHttpPurge, at: &str, p: &mut Problems) -> Option<HttpPurgeSettings> {
    let Some(preset) = h.preset else {
        p.push(
            field(at, "preset"),
            "required: varnish, squid, trafficserver, nginx or custom",
        );
        return None;
    };
    let mut methods = preset.methods();
    let nodes_at = field(at, "nodes");
    if h.nodes.is_empty() {
        p.push(&nodes_at, "list the cache nodes, e.g. [\"127.0.0.1:6081\"]");
    }
    let mut nodes: Vec<url::Url> = Vec::new();
    for n in &h.nodes {
        let text = if n.contains("://") {
            n.clone()
        } else {
            format!("http://{n}")
        };
        match url::Url::parse(&text) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                if nodes.contains(&u) {
                    p.push(&nodes_at, format!("{n:?} is listed twice"));
                } else {
                    nodes.push(u);
                }
            }
            _ => p.push(
                &nodes_at,
                format!("{n:?} is not host:port or http(s)://host:port (no path)"),
            ),
        }
    }
    if let Some(m) = h.purge_method {
        methods.purge_method = m;
    }
    if let Some(codes) = h.ok_status {
        if codes.is_empty() || codes.iter().any(|c| !(100..=599).contains(c)) {
            p.push(
                field(at, "ok_status"),
                "list HTTP status codes, e.g. [200, 404]",
            );
        } else {
            methods.ok_status = codes;
        }
    }
    match (h.dir_method, h.dir_header) {
        (Some(m), _) if m.is_empty() => methods.dir = None,
        (Some(m), header) => {
            let keep = methods.dir.as_ref().and_then(|d| d.1.clone());
            let header = match header {
                Some(h) if h.is_empty() => None,
                Some(h) => Some(h),
                None => keep,
            };
            methods.dir = Some((m, header));
        }
        (None, Some(header)) => match &mut methods.dir {
            Some((_, hdr)) => *hdr = (!header.is_empty()).then_some(header),
            None => p.push(field(at, "dir_header"), "set dir_method too"),
        },
        (None, None) => {}
    }
    match (h.tag_method, h.tag_header) {
        (Some(m), _) if m.is_empty() => methods.tag = None,
        (Some(m), Some(header)) => methods.tag = Some((m, header)),
        (Some(m), None) => match &methods.tag {
            Some((_, hdr)) => methods.tag = Some((m, hdr.clone())),
            None => p.push(field(at, "tag_method"), "set tag_header too"),
        },
        (None, Some(header)) => match &mut methods.tag {
            Some((_, hdr)) => *hdr = header,
            None => p.push(field(at, "tag_header"), "set tag_method too"),
        },
        (None, None) => {}
    }
    if let Some((_, Some(h))) = &methods.dir {
        validate::header_name(h, &field(at, "dir_header"), p);
    }
    if let Some((_, h)) = &methods.tag {
        validate::header_name(h, &field(at, "tag_header"), p);
    }
    for m in std::iter::once(&methods.purge_method)
        .chain(methods.dir.iter().map(|d| &d.0))
        .chain(methods.tag.iter().map(|t| &t.0))
    {
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            p.push(at, format!("{m:?} is not an HTTP method name"));
        }
    }
    let mut limits = default_limits(&methods);
    for (kind, name, v) in [
        (
            TargetKind::Url,
            "max_urls_per_request",
            h.max_urls_per_request,
        ),
        (
            TargetKind::Dir,
            "max_dirs_per_request",
            h.max_dirs_per_request,
        ),
        (
            TargetKind::Tag,
            "max_tags_per_request",
            h.max_tags_per_request,
        ),
    ] {
        match (v, limits.kind_mut(kind)) {
            (Some(n), _) if n == 0 || n > MAX_PER_REQUEST => {
                p.push(field(at, name), format!("must be 1 to {MAX_PER_REQUEST}"))
            }
            (Some(n), Some(k)) => k.max_batch = n,
            _ => {}
        }
    }
    limits.rate_per_s = validate::rate(
        h.rate_per_s,
        limits.rate_per_s,
        None,
        &field(at, "rate_per_s"),
        p,
    );
    limits.concurrency = validate::within(
        h.concurrency,
        limits.concurrency,
        MAX_CONCURRENCY,
        &field(at, "concurrency"),
        p,
    );
    let node_concurrency = validate::within(
        h.node_concurrency,
        8,
        MAX_CONCURRENCY,
        &field(at, "node_concurrency"),
        p,
    );
    Some(HttpPurgeSettings {
        name: name.to_owned(),
        nodes,
        methods,
        timeout: validate::seconds(h.timeout_s, 10, &field(at, "timeout_s"), p),
        node_concurrency,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
        crate::purgers::parse_section(&KIND, "cache", text)
    }

    #[test]
    fn each_node_is_a_lane_and_presets_decide_the_kinds() {
        let (cfg, problems) =
            parse_text("preset = \"varnish\"\nnodes = [\"127.0.0.1:6081\", \"https://c2:443\"]\n");
        assert!(problems.is_empty(), "{problems:?}");
        let cfg = cfg.unwrap();
        assert_eq!(
            cfg.lanes(),
            vec!["cache@127.0.0.1:6081", "cache@https://c2:443"]
        );
        assert!(cfg.supports(TargetKind::Tag) && cfg.supports(TargetKind::Dir));
        let (squid, _) = parse_text("preset = \"squid\"\nnodes = [\"127.0.0.1:3128\"]\n");
        let squid = squid.unwrap();
        assert!(!squid.supports(TargetKind::Tag) && !squid.supports(TargetKind::Dir));
    }

    #[test]
    fn node_and_method_problems_are_named() {
        let (_, problems) = parse_text(
            "preset = \"custom\"\nnodes = [\"a:1\", \"a:1\", \"x/y\"]\npurge_method = \"PU RGE\"\n\
             tag_header = \"k\"\nmax_urls_per_request = 0\n",
        );
        let all = problems.join("\n");
        for want in [
            "providers.cache.nodes: \"a:1\" is listed twice",
            "providers.cache.nodes: \"x/y\" is not host:port",
            "providers.cache: \"PU RGE\" is not an HTTP method name",
            "providers.cache.tag_header: set tag_method too",
            "providers.cache.max_urls_per_request: must be 1 to 100000",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text("nodes = [\"a:1\"]\n");
        assert!(problems[0].starts_with("providers.cache.preset: required"));
    }

    #[test]
    fn values_that_once_broke_a_running_lane_are_refused() {
        // rate_per_s = 1e-300 and concurrency = 2^62 crashed the lane after `config check`
        // said ok; a header name with CR/LF or ':' would be sent as is.
        let (_, problems) = parse_text(
            "preset = \"varnish\"\nnodes = [\"a:1\"]\nrate_per_s = 1e-300\n\
             concurrency = 4611686018427387904\nnode_concurrency = 0\n\
             tag_header = \"x-key\\r\\nInjected: 1\"\ndir_method = \"BAN\"\n\
             dir_header = \"x:dir\"\n",
        );
        let all = problems.join("\n");
        for want in [
            "providers.cache.rate_per_s: must be from 0.001 to 100000",
            "providers.cache.concurrency: must be 1 to 1024",
            "providers.cache.node_concurrency: must be 1 to 1024",
            "providers.cache.tag_header: \"x-key\\r\\nInjected: 1\" is not an HTTP header name",
            "providers.cache.dir_header: \"x:dir\" is not an HTTP header name",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        let (_, problems) = parse_text(
            "preset = \"varnish\"\nnodes = [\"a:1\"]\ntimeout_s = 100000000000\nrate_per_s = nan\n",
        );
        let all = problems.join("\n");
        assert!(
            all.contains("timeout_s: must be 1 to 86400 seconds"),
            "{all}"
        );
        assert!(all.contains("rate_per_s: must be from"), "{all}");
    }
}
