//! Purge rules and the pure mapping `Event × Rule → Vec<Target>`.
//!
//! A [`RuleSpec`] is what a user writes (TOML `[[rules]]`, `edgepurge rule add`, the store);
//! [`RuleSpec::validate`] turns it into a checked [`Rule`] or says precisely which field is
//! wrong and why. [`plan`] maps an event to the targets to purge.

use crate::event::{names, Event};
use crate::urlpath::encode_path;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a rule purges: the object's URL, its parent directory, or surrogate keys (cache tags)
/// derived from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Url,
    Dir,
    Tag,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Url => "url",
            Mode::Dir => "dir",
            Mode::Tag => "tag",
        }
    }

    /// The kind of target this mode purges.
    pub fn target_kind(self) -> TargetKind {
        match self {
            Mode::Url => TargetKind::Url,
            Mode::Dir => TargetKind::Dir,
            Mode::Tag => TargetKind::Tag,
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "url" => Ok(Mode::Url),
            "dir" => Ok(Mode::Dir),
            "tag" => Ok(Mode::Tag),
            other => Err(format!(
                "unknown mode {other:?}; use \"url\", \"dir\" or \"tag\""
            )),
        }
    }
}

/// A rule as written by a user; field names are the TOML and CLI names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub bucket: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    pub domains: Vec<String>,
    /// The one provider account this rule purges through (or list several in `providers`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    /// Several provider accounts, each purged on its own (e.g. a mainland China CDN and a
    /// global one); exclusive with `provider`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_document: Option<String>,
    /// Part of the key the CDN does not show in its URLs (the CDN's origin path): key
    /// `static/a.png` with `strip_prefix = "static/"` purges `<domain>/a.png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// With `mode = "tag"`: surrogate keys to purge, as templates over the key, e.g.
    /// `["{seg1}", "product-{name}"]` (see [`crate::tags`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// With `mode = "dir"`: a key at the domain's root (`a.png`, or `static/a.png` with
    /// `strip_prefix = "static/"`) purges the whole domain. Refused unless set, so a stray
    /// upload at the bucket root cannot empty a site's cache by accident.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_host_purge: bool,
    /// After each purge completed, fetch the purged URLs through the CDN and compare what it
    /// serves with the event's ETag / size (a delete: 404 or 410); purge once more if still
    /// stale. The log shows `verified=fresh|stale|unverifiable (reason)`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
    /// After each purge completed (and was verified fresh, with `verify`), prefetch the
    /// purged URLs into the CDN (Tencent `PushUrlsCache`, EdgeOne `CreatePrefetchTask`,
    /// Alibaba `PushObjectCache`, a GET through each `http-purge` node), so the first visitor
    /// gets a cache hit. Only for accounts that can prefetch. The log shows
    /// `warmed=warmed|failed|skipped (reason)` and the prefetch task id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// A URL (or directory, or tag) this rule purged at time t is not purged again before
    /// t + `min_interval_ms`: a change inside the interval is held until then (several
    /// coalesce into one purge), and always purged then. 0: no interval. Keeps hot keys from
    /// spending a provider's daily quota.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_interval_ms: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The longest `min_interval_ms` a rule may set: one day (a longer hold would outlive the
/// queue's `max_age_s` default and the provider's quota day).
pub const MAX_MIN_INTERVAL_MS: u64 = 86_400_000;

fn default_true() -> bool {
    true
}

/// A field of a rule that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule:?}: {field}: {reason}")]
pub struct RuleError {
    pub rule: String,
    pub field: &'static str,
    pub reason: String,
}

/// Which events a rule reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelector {
    /// Every content-changing `ObjectCreated` event (`created`).
    Created,
    /// Deletes, delete markers and lifecycle expirations (`removed`).
    Removed,
    /// An exact normalized name (`put` → `ObjectCreated:Put`, or a native name).
    Exact(String),
    /// A native wildcard: the normalized name starts with this (`s3:ObjectCreated:*` →
    /// `ObjectCreated:`).
    Prefix(String),
}

impl EventSelector {
    fn parse(text: &str) -> Result<EventSelector, String> {
        let t = text.trim();
        let friendly = match t {
            "created" => Some(EventSelector::Created),
            "removed" => Some(EventSelector::Removed),
            "put" => Some(exact("ObjectCreated:Put")),
            "post" => Some(exact("ObjectCreated:Post")),
            "copy" => Some(exact("ObjectCreated:Copy")),
            "complete-multipart-upload" => Some(exact("ObjectCreated:CompleteMultipartUpload")),
            "delete" => Some(exact("ObjectRemoved:Delete")),
            "delete-marker" => Some(exact("ObjectRemoved:DeleteMarkerCreated")),
            _ => None,
        };
        if let Some(sel) = friendly {
            return Ok(sel);
        }
        let norm = names::normalize(t);
        let category = norm.split(':').next().unwrap_or_default();
        let well_formed = !norm.is_empty()
            && norm.split(':').enumerate().all(|(i, part)| {
                (part == "*" && i > 0)
                    || (!part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
            })
            && norm.find('*').is_none_or(|i| i == norm.len() - 1);
        if !well_formed || !names::KNOWN_CATEGORIES.contains(&category) {
            return Err(format!(
                "unknown event type {t:?}; use put, post, copy, complete-multipart-upload, \
                 delete, delete-marker, created, removed, or a native name such as \
                 s3:ObjectCreated:* or cos:ObjectRemove:Delete"
            ));
        }
        Ok(match norm.strip_suffix('*') {
            Some(prefix) => EventSelector::Prefix(prefix.to_owned()),
            None => EventSelector::Exact(norm),
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            EventSelector::Created => names::is_creation(name),
            EventSelector::Removed => names::is_removal(name),
            EventSelector::Exact(n) => n == name,
            EventSelector::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

fn exact(s: &str) -> EventSelector {
    EventSelector::Exact(s.to_owned())
}

/// A CDN domain as a URL base: scheme, host, optional port, optional path; no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    base: String,
    host: String,
}

impl Domain {
    pub fn parse(text: &str) -> Result<Domain, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!(
                "{text:?} is not a URL ({e}); write the scheme too, e.g. https://cdn.example.com"
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("{text:?}: scheme must be http or https"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{text:?} has no host"))?;
        if host.starts_with("*.") || host.contains('*') {
            return Err(format!("{text:?}: wildcard domains cannot be purged"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{text:?}: credentials in the domain are not allowed"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{text:?}: a domain cannot have a query or fragment"
            ));
        }
        let mut base = format!("{}://{}", url.scheme(), host);
        if let Some(port) = url.port() {
            base.push_str(&format!(":{port}"));
        }
        base.push_str(url.path().trim_end_matches('/'));
        Ok(Domain {
            base,
            host: host.to_owned(),
        })
    }

    /// `scheme://host[:port][/path]`, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub spec: RuleSpec,
    pub selectors: Vec<EventSelector>,
    pub domains: Vec<Domain>,
}

/// What to purge: one URL or one directory, through one provider account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub rule: String,
    pub provider: String,
    pub kind: TargetKind,
    /// Full URL with scheme (a directory ends with `/`).
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Url,
    Dir,
    /// A surrogate key (cache tag); the target is the tag itself.
    Tag,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [TargetKind::Url, TargetKind::Dir, TargetKind::Tag];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Url => "url",
            TargetKind::Dir => "dir",
            TargetKind::Tag => "tag",
        }
    }
}

impl std::str::FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "url" => Ok(TargetKind::Url),
            "dir" => Ok(TargetKind::Dir),
            "tag" => Ok(TargetKind::Tag),
            other => Err(format!("unknown target kind {other:?}")),
        }
    }
}

const MAX_NAME_LEN: usize = 64;
/// Provider accounts one rule may purge through.
pub const MAX_PROVIDERS: usize = 8;

/// Whether `name` is a valid rule or provider name: 1–64 of `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl RuleSpec {
    /// Checks every field; the error names the rule, the field and the reason (the first
    /// problem; [`RuleSpec::problems`] lists them all).
    pub fn validate(self) -> Result<Rule, RuleError> {
        let (mut problems, selectors, domains) = self.check();
        if !problems.is_empty() {
            return Err(problems.swap_remove(0));
        }
        Ok(Rule {
            selectors,
            domains,
            spec: self,
        })
    }

    /// Every problem of the rule, in field order (empty: the rule is valid).
    pub fn problems(&self) -> Vec<RuleError> {
        self.check().0
    }

    /// Every problem, and the event selectors and domains that parsed.
    fn check(&self) -> (Vec<RuleError>, Vec<EventSelector>, Vec<Domain>) {
        let mut problems = Vec::new();
        let mut err = |field: &'static str, reason: String| {
            problems.push(RuleError {
                rule: self.name.clone(),
                field,
                reason,
            })
        };
        if !valid_name(&self.name) {
            err(
                "name",
                "must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
                    .into(),
            );
        }
        if self.bucket.trim().is_empty() || self.bucket.contains('/') {
            err(
                "bucket",
                "must be a bucket name (for COS the name-appid form), without '/'".into(),
            );
        }
        if self.events.is_empty() {
            err(
                "events",
                "list at least one event type, e.g. [\"created\", \"removed\"]".into(),
            );
        }
        let mut selectors = Vec::new();
        for e in &self.events {
            match EventSelector::parse(e) {
                Ok(s) => selectors.push(s),
                Err(r) => err("events", r),
            }
        }
        if self.domains.is_empty() {
            err(
                "domains",
                "list at least one CDN domain with its scheme, e.g. [\"https://cdn.example.com\"]"
                    .into(),
            );
        }
        let mut domains = Vec::new();
        for d in &self.domains {
            match Domain::parse(d) {
                Ok(d) => domains.push(d),
                Err(r) => err("domains", r),
            }
        }
        match (self.provider.is_empty(), self.providers.is_empty()) {
            (true, true) => err(
                "provider",
                "name the provider account to purge through, e.g. provider = \"tencent\" \
                 (or several: providers = [\"tencent\", \"cloudflare\"])"
                    .into(),
            ),
            (false, false) => err(
                "providers",
                "set either provider (one account) or providers (several), not both".into(),
            ),
            _ => {}
        }
        if self.providers.len() > MAX_PROVIDERS {
            err(
                "providers",
                format!("at most {MAX_PROVIDERS} provider accounts per rule"),
            );
        }
        for (i, p) in self.provider_names().enumerate() {
            if !valid_name(p) {
                err(
                    "provider",
                    format!("{p:?} must name a provider account from [providers.NAME]"),
                );
            }
            if self.provider_names().take(i).any(|q| q == p) {
                err("providers", format!("{p:?} is listed twice"));
            }
        }
        if let Some(doc) = &self.index_document {
            if doc.is_empty() || doc.contains('/') {
                err(
                    "index_document",
                    "must be a file name without '/', e.g. index.html".into(),
                );
            }
        }
        match (self.mode, self.tags.is_empty()) {
            (Mode::Tag, true) => err(
                "tags",
                "mode = \"tag\" needs tags, e.g. [\"{seg1}\"] (see the README)".into(),
            ),
            (Mode::Url | Mode::Dir, false) => {
                err("tags", "tags are only used with mode = \"tag\"".into())
            }
            _ => {}
        }
        for t in &self.tags {
            if let Err(r) = crate::tags::check_template(t) {
                err("tags", r);
            }
        }
        if let Some(strip) = &self.strip_prefix {
            if strip.is_empty() || !strip.ends_with('/') || has_dot_segment(strip) {
                err(
                    "strip_prefix",
                    format!(
                        "{strip:?} must be whole folders ending in '/', e.g. \"static/\" (a \
                         partial name would join the rest of the key to the domain)"
                    ),
                );
            }
        }
        if self.mode == Mode::Dir && !self.allow_host_purge && self.reaches_domain_root() {
            err(
                "allow_host_purge",
                "with mode = \"dir\" and no prefix naming a folder (e.g. prefix = \"img/\"), a \
                 key at the bucket root purges the whole domain; set a prefix that ends in a \
                 folder, or allow_host_purge = true if that is intended"
                    .into(),
            );
        }
        if self.min_interval_ms > MAX_MIN_INTERVAL_MS {
            err(
                "min_interval_ms",
                format!(
                    "{} is more than one day ({MAX_MIN_INTERVAL_MS}); a changed object would \
                     stay stale that long: use at most {MAX_MIN_INTERVAL_MS}, or 0 for none",
                    self.min_interval_ms
                ),
            );
        }
        if let (Some(strip), Some(prefix)) = (&self.strip_prefix, &self.prefix) {
            if !prefix.starts_with(strip.as_str()) && !strip.starts_with(prefix.as_str()) {
                err(
                    "strip_prefix",
                    format!(
                        "{strip:?} conflicts with prefix {prefix:?}: no key matching the prefix \
                         starts with it"
                    ),
                );
            }
        }
        (problems, selectors, domains)
    }
}

impl RuleSpec {
    /// The provider accounts this rule purges through, in the order written: `providers`, or
    /// the one `provider`.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> + '_ {
        let one = (!self.provider.is_empty()).then_some(self.provider.as_str());
        one.into_iter()
            .chain(self.providers.iter().map(String::as_str))
    }

    /// Whether a matching key can sit at the domain's root once `strip_prefix` is taken off
    /// (its folder is then the whole domain): true unless the prefix holds a `/` past the
    /// stripped part.
    fn reaches_domain_root(&self) -> bool {
        let prefix = self.prefix.as_deref().unwrap_or("");
        let strip = self.strip_prefix.as_deref().unwrap_or("");
        // Leading slashes name no folder: `prefix = "/"` still lets `/a.png` sit at the root
        // (its folder would be `//`, the root again for servers that merge slashes).
        !prefix
            .strip_prefix(strip)
            .is_some_and(|rest| rest.trim_start_matches('/').contains('/'))
    }
}

impl Rule {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether this rule reacts to `event` (enabled, bucket, event type, prefix, suffix); see
    /// [`Rule::why_not`] for the reason when it does not.
    pub fn matches(&self, event: &Event) -> bool {
        let s = &self.spec;
        s.enabled
            && s.bucket == event.bucket
            && self.selectors.iter().any(|sel| sel.matches(&event.name))
            && s.prefix.as_deref().is_none_or(|p| event.key.starts_with(p))
            && s.suffix.as_deref().is_none_or(|x| event.key.ends_with(x))
    }

    /// Why this rule does not react to `event` (the first reason), or `None` when it does.
    pub fn why_not(&self, event: &Event) -> Option<String> {
        let s = &self.spec;
        if !s.enabled {
            return Some("the rule is disabled".into());
        }
        if s.bucket != event.bucket {
            return Some(format!(
                "bucket {:?} is not the rule's {:?}",
                event.bucket, s.bucket
            ));
        }
        if !self.selectors.iter().any(|sel| sel.matches(&event.name)) {
            return Some(format!(
                "event {} is not among the rule's events {:?}",
                event.name, s.events
            ));
        }
        if let Some(p) = s.prefix.as_deref().filter(|p| !event.key.starts_with(p)) {
            return Some(format!("key {:?} does not start with {p:?}", event.key));
        }
        if let Some(x) = s.suffix.as_deref().filter(|x| !event.key.ends_with(x)) {
            return Some(format!("key {:?} does not end with {x:?}", event.key));
        }
        None
    }

    /// The targets this rule purges for `event`, without checking [`Rule::matches`].
    ///
    /// A key ending in `/` is a folder marker and purges nothing. A key outside
    /// `strip_prefix` purges nothing (the CDN cannot serve it). A key with a `.` or `..` path
    /// segment purges nothing: no URL addresses it (clients and caches resolve dot segments),
    /// and purging the resolved URL would reach outside the rule's prefix (invariant 7).
    pub fn targets_for_key(&self, key: &str) -> Vec<Target> {
        self.spec
            .provider_names()
            .flat_map(|p| self.targets_via(key, p))
            .collect()
    }

    /// [`Rule::targets_for_key`] through one of the rule's provider accounts.
    pub fn targets_via(&self, key: &str, provider: &str) -> Vec<Target> {
        let s = &self.spec;
        if key.is_empty() || key.ends_with('/') || has_dot_segment(key) {
            return Vec::new();
        }
        let path = match &s.strip_prefix {
            Some(strip) => match key.strip_prefix(strip.as_str()) {
                Some(rest) => rest,
                None => return Vec::new(),
            },
            None => key,
        };
        // Checked again on what is left: the stripped rest must not climb out either.
        if path.is_empty() || has_dot_segment(path) {
            return Vec::new();
        }
        let (dir, file) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let mut paths: Vec<(TargetKind, String)> = Vec::new();
        match s.mode {
            Mode::Url => {
                paths.push((TargetKind::Url, encode_path(path)));
                if s.index_document.as_deref() == Some(file) {
                    paths.push((TargetKind::Url, encode_path(dir)));
                }
            }
            // Validation refuses rules that reach the root without the opt-in; this holds
            // for specs built some other way too.
            Mode::Dir if dir.trim_matches('/').is_empty() && !s.allow_host_purge => {
                return Vec::new()
            }
            Mode::Dir => paths.push((TargetKind::Dir, encode_path(dir))),
            Mode::Tag => {
                let mut out: Vec<Target> = Vec::new();
                for template in &s.tags {
                    let tag = crate::tags::render(template, &s.bucket, path);
                    if tag.is_empty() {
                        continue;
                    }
                    let target = Target {
                        rule: s.name.clone(),
                        provider: provider.to_owned(),
                        kind: TargetKind::Tag,
                        target: tag,
                    };
                    if !out.contains(&target) {
                        out.push(target);
                    }
                }
                return out;
            }
        }
        let mut out = Vec::with_capacity(paths.len() * self.domains.len());
        for domain in &self.domains {
            for (kind, p) in &paths {
                let target = Target {
                    rule: s.name.clone(),
                    provider: provider.to_owned(),
                    kind: *kind,
                    target: format!("{}/{}", domain.base(), p),
                };
                if !out.contains(&target) {
                    out.push(target);
                }
            }
        }
        out
    }
}

/// Whether a key has a `.` or `..` path segment (`a/../b`, `./x`, `a/.`).
pub fn has_dot_segment(key: &str) -> bool {
    // `\` too: some servers and CDNs read it (or its `%5C`) as `/`.
    key.split(['/', '\\']).any(|seg| seg == "." || seg == "..")
}

/// A rule that matched an event, with what it purges (possibly nothing: a folder marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub rule: String,
    pub provider: String,
    pub targets: Vec<Target>,
}

/// Every matching rule for `event`, in rule order, with its targets: one match per provider
/// account of the rule, so each account's outcome is logged on its own.
pub fn plan(rules: &[Rule], event: &Event) -> Vec<Match> {
    rules
        .iter()
        .filter(|r| r.matches(event))
        .flat_map(|r| {
            r.spec.provider_names().map(|p| Match {
                rule: r.spec.name.clone(),
                provider: p.to_owned(),
                targets: r.targets_via(&event.key, p),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
