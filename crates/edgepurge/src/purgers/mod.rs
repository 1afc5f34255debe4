//! Purgers: one module per provider behind one trait. A provider's module owns its config
//! section (raw struct, validation, defaults, lane identity), its endpoint, signing, request
//! shape, per-request maximum and error classification; nothing else in the code knows a
//! provider's wire format. It never decides *when* to send (the dispatcher does).
//!
//! Adding a provider: a folder here with a [`ProviderKind`] and one line in [`KINDS`].

pub mod akamai;
pub mod aliyun;
pub mod cloudflare;
pub mod cloudfront;
pub mod edgeone;
pub mod fastly;
pub mod gcp;
pub mod http_purge;
pub mod tencent;

use crate::validate::Problems;
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::limits::KindLimits;

/// The most of a provider's answer edgepurge reads. Answers are small JSON or XML; a larger
/// one (a broken or hostile endpoint streaming for the whole timeout) is not held in memory.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// An answer's body as text, at most [`MAX_ANSWER_BYTES`]; a longer one, or one that cannot
/// be read, is an error describing why (the request counts as unanswered and is retried).
pub async fn answer_text(mut resp: reqwest::Response) -> Result<String, String> {
    let too_long = || format!("the answer is longer than {MAX_ANSWER_BYTES} bytes; not read");
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| describe_transport_error(&e))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// How many pages of `page` entries a task check reads at most, for a provider whose task
/// holds at most one batch of this account's largest maximum, capped at `max_pages`.
pub fn task_pages(limits: &Limits, page: u64, max_pages: usize) -> u32 {
    let largest = limits
        .kinds
        .iter()
        .map(|(_, l)| l.max_batch as u64)
        .max()
        .unwrap_or(1);
    let pages = largest.div_ceil(page.max(1)).max(1);
    u32::try_from(pages.min(max_pages as u64)).unwrap_or(1)
}

/// The [`ProviderConfig`] methods of an account that is one lane named after it, for a
/// settings struct with `name` and `limits` fields in a module whose kind is `KIND`.
macro_rules! one_lane_account {
    () => {
        fn kind(&self) -> &'static str {
            KIND.kind
        }

        fn name(&self) -> &str {
            &self.name
        }

        fn lanes(&self) -> Vec<String> {
            vec![self.name.clone()]
        }

        fn limits(&self) -> &crate::purgers::Limits {
            &self.limits
        }

        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use one_lane_account;

/// Every provider kind edgepurge speaks, by its `kind` key.
pub const KINDS: &[ProviderKind] = &[
    tencent::KIND,
    http_purge::KIND,
    cloudfront::KIND,
    cloudflare::KIND,
    akamai::KIND,
    edgeone::KIND,
    gcp::KIND,
    fastly::KIND,
    aliyun::KIND,
];

/// Checks a `[providers.NAME]` section (without its `kind` key), recording every problem at
/// `at` (`providers.NAME`). Pure: no network, disk or environment.
pub type ParseSection = fn(
    name: &str,
    section: toml::Table,
    at: &str,
    problems: &mut Problems,
) -> Option<Arc<dyn ProviderConfig>>;

/// A provider kind: how to check its `[providers.NAME]` section.
pub struct ProviderKind {
    /// The `kind = "..."` value.
    pub kind: &'static str,
    pub parse: ParseSection,
}

/// Checks `text` as the section `[providers.NAME]` of `kind` (for tests of a provider's
/// config): the checked account, and every problem as `place: message`.
#[cfg(test)]
pub(crate) fn parse_section(
    kind: &ProviderKind,
    name: &str,
    text: &str,
) -> (Option<Arc<dyn ProviderConfig>>, Vec<String>) {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let mut p = Problems::default();
    let out = (kind.parse)(name, table, &format!("providers.{name}"), &mut p);
    (out, p.into_vec().iter().map(ToString::to_string).collect())
}

/// The kind named `kind`, if edgepurge knows it.
pub fn kind(kind: &str) -> Option<&'static ProviderKind> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// A checked provider account.
pub trait ProviderConfig: fmt::Debug + Send + Sync {
    /// The `kind` it was configured with.
    fn kind(&self) -> &'static str;
    /// The account name (`[providers.NAME]`).
    fn name(&self) -> &str;
    /// The queue lanes this account's targets go to: one per account, or one per cache node.
    fn lanes(&self) -> Vec<String>;
    fn limits(&self) -> &Limits;
    /// Whether this account can purge targets of `kind`.
    fn supports(&self, kind: TargetKind) -> bool {
        self.limits().supports(kind)
    }
    /// One purger per lane.
    fn build(&self) -> Result<Vec<Arc<dyn Purger>>, BuildError>;
    /// Where this account's credentials are read from (checked for loose file permissions).
    fn secrets(&self) -> Vec<&crate::secret::SecretSource> {
        Vec::new()
    }
    /// Of those, the ones that must be there for the account to work (checked at start).
    fn required_secrets(&self) -> Vec<&crate::secret::SecretSource> {
        self.secrets()
    }
    /// Whether this account can prefetch (warm) URLs into its caches: rules with
    /// `warm = true` are refused for the others (Cloudflare, CloudFront, Fastly, Akamai and
    /// Google Cloud CDN have no prefetch API).
    fn prefetches(&self) -> bool {
        false
    }
    /// The concrete settings, for code that knows the kind (tests, kind-specific tools).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The configured provider accounts, by name.
pub type Providers = BTreeMap<String, Arc<dyn ProviderConfig>>;

/// A purger could not be built from a checked config (e.g. no TLS backend).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {provider}: {reason}")]
pub struct BuildError {
    pub provider: String,
    pub reason: String,
}

/// Why a provider request did not purge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No answer: the connection failed, timed out, or the answer could not be read.
    #[error("{0}")]
    Transport(String),
    /// The provider answered, and refused or failed (`code` is the provider's error code
    /// when it gives one).
    #[error("{message}")]
    Answer {
        code: Option<String>,
        message: String,
    },
    /// The credentials could not be read (never holds their value).
    #[error("{0}")]
    Credentials(String),
    /// The request could not be made: a malformed target, or a kind this provider lacks.
    #[error("{0}")]
    Request(String),
}

impl Limits {
    pub fn supports(&self, kind: TargetKind) -> bool {
        self.kind(kind).is_some()
    }

    pub fn kind(&self, kind: TargetKind) -> Option<&KindLimits> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, l)| l)
    }

    pub fn kind_mut(&mut self, kind: TargetKind) -> Option<&mut KindLimits> {
        self.kinds
            .iter_mut()
            .find(|(k, _)| *k == kind)
            .map(|(_, l)| l)
    }
}

/// What the provider's answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Transient (throttled, server error, network): try again later, no sooner than
    /// `after` when the provider said so.
    RetryLater {
        after: Option<Duration>,
    },
    /// Too many targets in one request: split the batch.
    Split,
    /// The daily quota is spent.
    QuotaExhausted,
    /// Will not succeed by retrying (bad credentials, unknown domain, malformed target).
    Fatal,
}

/// The outcome of one provider request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeResponse {
    pub verdict: Verdict,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub task_id: Option<String>,
    /// What went wrong, for the log and the operator; never holds a secret.
    pub error: Option<PurgeError>,
    /// Targets that failed on their own; `verdict` is for the others. Only these are sent
    /// again (or given up), so what succeeded is not purged twice.
    pub failed: Vec<TargetFailure>,
}

/// One target of a request that failed while the others got the response's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFailure {
    /// Its index in the targets given to [`Purger::purge`].
    pub index: usize,
    /// `RetryLater` or `Fatal`.
    pub verdict: Verdict,
    pub error: PurgeError,
    /// Failures with the same outcome and group go into one batch; different groups are
    /// kept apart (e.g. one group per domain).
    pub group: u32,
}

impl PurgeResponse {
    pub fn failed(verdict: Verdict, error: PurgeError) -> PurgeResponse {
        PurgeResponse {
            verdict,
            http_status: None,
            request_id: None,
            task_id: None,
            error: Some(error),
            failed: Vec::new(),
        }
    }

    /// Whether this failure says the provider as a whole is failing, not this batch: no
    /// answer (refused, reset, timed out), a 5xx, or the provider's own "internal error" or
    /// "unavailable". Throttling, per-target refusals and unknown codes are about one batch.
    pub fn is_outage(&self) -> bool {
        if !matches!(self.verdict, Verdict::RetryLater { .. }) {
            return false;
        }
        match &self.error {
            Some(PurgeError::Transport(_)) => true,
            Some(PurgeError::Answer { code, .. }) => {
                self.http_status.is_some_and(|s| s >= 500)
                    || code.as_deref().is_some_and(|c| {
                        c.starts_with("InternalError") || c.starts_with("ServiceUnavailable")
                    })
            }
            _ => false,
        }
    }

    pub fn done(http_status: u16, request_id: Option<String>, task_id: Option<String>) -> Self {
        PurgeResponse {
            verdict: Verdict::Done,
            http_status: Some(http_status),
            request_id,
            task_id,
            error: None,
            failed: Vec::new(),
        }
    }
}

/// Limits the dispatcher keeps for one lane.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The target kinds this lane can purge, with their per-request maximum and daily quota.
    pub kinds: Vec<(TargetKind, KindLimits)>,
    /// At most this many requests in any one second (below 1: one per 1/rate seconds).
    pub rate_per_s: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Offset of the provider's quota day from UTC, in seconds (Tencent: +8 h).
    pub quota_utc_offset_s: i32,
    /// `collapse_to_dir_over = N`: when the day's URL quota left would not cover the pending
    /// URLs, URLs sharing a directory with at least N others pending are purged as that one
    /// directory instead (see [`crate::queue::collapse`]). Only for accounts whose directory
    /// purges have a daily quota of their own; `None`: off.
    pub collapse_to_dir_over: Option<u32>,
}

/// A rate that requests of some kinds share, besides the lane's `rate_per_s`: a provider that
/// counts them in a bucket of their own (Cloudflare counts tag and prefix purges apart from
/// URL purges, and allows only 5 a minute of them on its Free plan). The lane claims no batch
/// of these kinds while the rate has no room, and sends the other kinds meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRate {
    pub kinds: Vec<TargetKind>,
    /// At most this many requests of those kinds in any one second (below 1: one per
    /// 1/rate seconds), with the same margin as the lane's rate.
    pub rate_per_s: f64,
}

/// What a provider allows of prefetching (warming), apart from its purge limits: prefetch
/// calls have their own per-request maximum, rate and daily quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefetchLimits {
    /// URLs per request.
    pub max_urls: usize,
    /// At most this many prefetch requests in any one second.
    pub rate_per_s: f64,
    /// URLs a day, when known before asking the provider (its quota call, if any, says).
    pub daily_quota: Option<u64>,
}

/// The answer to one prefetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchResponse {
    /// `Done`, `RetryLater`, `Split`, `QuotaExhausted` or `Fatal`, as for purges.
    pub verdict: Verdict,
    /// The provider's prefetch task id, when it gives one.
    pub task_id: Option<String>,
    /// What was seen, for the log (`HTTP 200, X-Cache: MISS, 1234 bytes`).
    pub note: Option<String>,
    pub error: Option<PurgeError>,
}

impl PrefetchResponse {
    pub fn failed(verdict: Verdict, error: PurgeError) -> PrefetchResponse {
        PrefetchResponse {
            verdict,
            task_id: None,
            note: None,
            error: Some(error),
        }
    }

    /// A prefetch answered by a provider's API the way its purges are (`Err`: classified).
    pub fn from_call(answer: Result<Option<String>, PurgeResponse>) -> PrefetchResponse {
        match answer {
            Ok(task_id) => PrefetchResponse {
                verdict: Verdict::Done,
                task_id,
                note: None,
                error: None,
            },
            Err(r) => PrefetchResponse {
                verdict: r.verdict,
                task_id: None,
                note: None,
                error: r.error,
            },
        }
    }
}

/// Per-kind quota reported by the provider itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindQuota {
    pub batch: usize,
    pub total: u64,
    pub available: u64,
}

/// Quota per target kind, as the provider reports it.
pub type ProviderQuota = Vec<(TargetKind, KindQuota)>;

#[async_trait]
pub trait Purger: Send + Sync {
    /// The queue lane this purger drains (the provider account name, or account/node).
    fn lane(&self) -> &str;
    /// The provider account (config name) this lane belongs to.
    fn provider(&self) -> &str;
    fn limits(&self) -> &Limits;
    /// Rates that requests of some kinds share besides [`Limits::rate_per_s`] (none by
    /// default).
    fn shared_rates(&self) -> Vec<SharedRate> {
        Vec::new()
    }
    /// Sends one request purging `targets` (all of one kind, at most the per-request maximum).
    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse;
    /// Forgets what was learned about these targets (the operator re-queued them).
    fn forget(&self, _targets: &[String]) {}
    /// Whether a refusal (an answer retrying will not change) is about the target itself, so
    /// that delivering its event again can never purge it: a malformed URL, a domain the
    /// account does not have. Refusals of the account or the request (credentials,
    /// permissions, a domain offline for now, a cache's ACL) are not: function mode fails the
    /// invocation for those, so the platform delivers the event again or dead-letters it.
    fn refuses_target_for_good(&self, error: &PurgeError) -> bool {
        matches!(error, PurgeError::Request(_))
    }
    /// Whether the credentials cannot be read now (checked without sending anything).
    fn credentials_missing(&self) -> bool {
        false
    }
    /// Asks the provider for its current quota, when it can tell.
    async fn quota(&self) -> Option<Result<ProviderQuota, PurgeError>> {
        None
    }
    /// Whether the task ids this purger's answers carry can be asked about with
    /// [`Purger::task_state`]: its purges are complete when the task is, not when answered.
    fn follows_tasks(&self) -> bool {
        false
    }
    /// The most calls to the provider one [`Purger::task_state`] of `task_id` may make
    /// (pages, chunks of ids): the follower counts each against the rate before asking.
    fn task_calls(&self, _task_id: &str) -> u32 {
        1
    }
    /// How long after the answer carrying `task_id` to first ask about the task, when the
    /// provider said when it will be done (Akamai's `estimatedSeconds`); `None`: the
    /// dispatcher's `task_check_ms`. Asked once, right after [`Purger::purge`] answered.
    fn first_task_check(&self, _task_id: &str) -> Option<Duration> {
        None
    }

    /// Where to fetch a purged URL to see what this lane's caches serve now (verification):
    /// a self-hosted cache node, asked with the URL's `Host`; `None`: the URL itself, through
    /// the CDN.
    fn probe_via(&self) -> Option<url::Url> {
        None
    }
    /// What this lane allows of prefetching (warming); `None`: it cannot prefetch.
    fn prefetch_limits(&self) -> Option<PrefetchLimits> {
        None
    }
    /// Prefetches `urls` (at most [`PrefetchLimits::max_urls`]) into this lane's caches.
    async fn prefetch(&self, _urls: &[String]) -> PrefetchResponse {
        PrefetchResponse::failed(
            Verdict::Fatal,
            PurgeError::Request("this provider has no prefetch API".to_owned()),
        )
    }
    /// Asks the provider for today's prefetch quota (URLs), when it can tell.
    async fn prefetch_quota(&self) -> Option<Result<KindQuota, PurgeError>> {
        None
    }
    /// How far the provider's task `task_id` (from an answer of [`Purger::purge`]) has got.
    async fn task_state(&self, _task_id: &str) -> Result<TaskState, PurgeError> {
        Err(PurgeError::Request(
            "this provider has no purge tasks to ask about".to_owned(),
        ))
    }
}

/// A provider's purge task, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Still running (or not visible yet).
    Running,
    /// Done: the caches no longer serve the old copies.
    Done,
    /// The provider says it failed; what it reported (e.g. the URLs it could not purge).
    Failed(String),
    /// The provider does not know this task.
    Unknown(String),
    /// The provider refuses to say, and asking again will not change that (the credentials
    /// lack the permission to read tasks): what it said, and what to grant.
    Unconfirmable(String),
}

/// Truncates text for error messages (provider bodies can be large), with control
/// characters escaped (the text ends up in log lines).
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let t = text.trim();
    if t.len() <= max {
        return edgepurge_core::printable(t).into_owned();
    }
    let mut end = max;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", edgepurge_core::printable(&t[..end]))
}

/// The HTTP client of a provider's API: `timeout` per request (connecting within at most
/// 10 s of it), idle connections kept a minute, and no redirects followed (a redirect would
/// re-send the signed call and its credentials elsewhere).
pub(crate) fn api_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("edgepurge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// What went wrong with a request that got no answer: timed out, connection failed, or other,
/// with reqwest's message and its cause chain (never headers).
pub(crate) fn describe_transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Where a redirect pointed, quoted and escaped for the log (clients never follow one).
pub(crate) fn redirect_target(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| format!("{:?}", snippet(l, 200)))
        .unwrap_or_else(|| "nowhere (no Location)".to_owned())
}

/// Reads a `Retry-After` header given in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(http_status: Option<u16>, error: PurgeError) -> PurgeResponse {
        PurgeResponse {
            http_status,
            ..PurgeResponse::failed(Verdict::RetryLater { after: None }, error)
        }
    }

    fn answer(code: &str) -> PurgeError {
        PurgeError::Answer {
            code: Some(code.into()),
            message: "m".into(),
        }
    }

    #[test]
    fn outages_are_told_from_failures_of_one_batch() {
        assert!(failed(None, PurgeError::Transport("refused".into())).is_outage());
        assert!(failed(Some(503), answer("503")).is_outage());
        assert!(failed(Some(200), answer("InternalError.CdnSystemError")).is_outage());
        assert!(failed(Some(200), answer("ServiceUnavailable")).is_outage());
        assert!(!failed(Some(200), answer("RequestLimitExceeded")).is_outage());
        assert!(!failed(Some(429), answer("429")).is_outage());
        assert!(!failed(None, PurgeError::Credentials("unset".into())).is_outage());
        let fatal = PurgeResponse::failed(Verdict::Fatal, PurgeError::Transport("x".into()));
        assert!(!fatal.is_outage());
        assert!(!PurgeResponse::done(200, None, None).is_outage());
    }

    /// A provider (or something in its place) streaming a huge answer must not be held in
    /// memory: past the cap the answer is refused, with or without a Content-Length.
    #[tokio::test]
    async fn answers_are_read_up_to_the_cap() {
        use axum::{body::Body, routing::get, Router};
        let chunk = || axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
        let app = Router::new()
            .route("/small", get(|| async { "{\"ok\":true}" }))
            .route("/long", get(|| async { "x".repeat(MAX_ANSWER_BYTES + 1) }))
            .route(
                "/stream",
                get(move || async move {
                    // No length given: 64 KiB chunks without end.
                    let s =
                        futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk()));
                    Body::from_stream(s)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
        assert_eq!(
            answer_text(get("/small").await.unwrap()).await.unwrap(),
            "{\"ok\":true}"
        );
        for path in ["/long", "/stream"] {
            let err = answer_text(get(path).await.unwrap()).await.unwrap_err();
            assert!(err.contains("longer than 1048576 bytes"), "{path}: {err}");
        }
        server.abort();
    }

    /// A check of a task that may span pages costs a place in the rate window per page
    /// (EdgeOne's 2,000-URL batches are two pages of 1,000), never more than the page cap.
    #[test]
    fn a_task_check_costs_one_call_per_page_it_may_read() {
        let kind = |max_batch| KindLimits {
            max_batch,
            daily_quota: None,
        };
        let limits = |batches: &[usize]| Limits {
            kinds: batches
                .iter()
                .map(|b| (TargetKind::Url, kind(*b)))
                .collect(),
            rate_per_s: 1.0,
            concurrency: 1,
            quota_utc_offset_s: 0,
            collapse_to_dir_over: None,
        };
        assert_eq!(task_pages(&limits(&[1000, 20]), 1000, 5), 1);
        assert_eq!(task_pages(&limits(&[2000, 1000, 100]), 1000, 5), 2);
        assert_eq!(task_pages(&limits(&[1001]), 1000, 5), 2);
        assert_eq!(task_pages(&limits(&[100_000]), 1000, 5), 5);
        assert_eq!(task_pages(&limits(&[]), 1000, 5), 1);
    }
}
