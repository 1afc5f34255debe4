//! `[[sources]] kind = "poll"`: for stores that send no events (Garage, a plain S3 bucket
//! without notifications). Lists the bucket with S3 `ListObjectsV2` (SigV4) every
//! `interval_s`, compares each object's ETag, size and LastModified with the listing saved in
//! the store, and turns what changed into events for the same rules as any other source: a new
//! key is `ObjectCreated:Put`, a changed one too (an overwrite), a key gone
//! `ObjectRemoved:Delete`.
//!
//! * The first listing of a bucket (or of another endpoint, bucket or prefix than the saved
//!   one) is saved without purging anything: what was there before is not news.
//! * Only a complete listing is compared: a listing cut short by an error would look like
//!   deletions.
//! * Events are committed first, the listing saved after: a crash in between means the next
//!   listing finds the same changes again (a second purge, harmless), never that a change is
//!   missed.

use super::Statuses;
use crate::app::{IngestOptions, Ingestor};
use crate::aws::{sigv4, KeySources};
use crate::store::{ListedObject, ListingChanges, Store};
use crate::validate::{self, Problems};
use edgepurge_core::{Event, Format};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// At most this many events are committed at once (a deploy of 50,000 files is committed in
/// parts, each within `store.max_jobs_per_body`).
const EVENTS_PER_COMMIT: usize = 200;

/// One `ListObjectsV2` page may take this long.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest page answer read (1,000 keys of up to 1,024 bytes each, escaped, fit well).
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// A round that would remove more than this many objects, and more than half of those listed
/// before, is believed only when the next listing says the same.
const MASS_REMOVAL: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    kind: String,
    name: Option<String>,
    endpoint: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    interval_s: Option<u64>,
    region: Option<String>,
    path_style: Option<bool>,
    max_objects: Option<usize>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<PathBuf>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    session_token_env: Option<String>,
    session_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    pub name: String,
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:3900`.
    pub endpoint: url::Url,
    pub bucket: String,
    pub prefix: String,
    pub interval: Duration,
    pub region: String,
    /// `https://endpoint/bucket/` (the default) rather than `https://bucket.endpoint/`.
    pub path_style: bool,
    /// A listing longer than this is refused (the whole listing is held in memory).
    pub max_objects: usize,
    pub keys: KeySources,
}

impl PollConfig {
    /// What a saved listing must be of to be compared with.
    fn scope(&self) -> String {
        format!("{} {} {}", self.endpoint, self.bucket, self.prefix)
    }
}

/// An S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens (plus the
/// upper-case and underscores some older stores allow).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

pub fn check(table: toml::Table, at: &str, p: &mut Problems) -> Option<PollConfig> {
    let raw: RawPoll = validate::section(table, at, p)?;
    debug_assert_eq!(raw.kind, "poll");
    let endpoint = match &raw.endpoint {
        Some(e) => validate::endpoint(e, &format!("{at}.endpoint"), p),
        None => {
            p.push(
                format!("{at}.endpoint"),
                "required: the S3 endpoint, e.g. \"https://s3.eu-west-1.amazonaws.com\"",
            );
            None
        }
    };
    if endpoint
        .as_ref()
        .is_some_and(|e| e.query().is_some() || e.path() != "/")
    {
        p.push(
            format!("{at}.endpoint"),
            "only scheme, host and port: the bucket goes in `bucket`",
        );
    }
    let bucket = match raw.bucket {
        Some(b) if valid_bucket(&b) => Some(b),
        Some(b) => {
            p.push(
                format!("{at}.bucket"),
                format!("{b:?} is not a bucket name (3 to 63 letters, digits, dots, hyphens)"),
            );
            None
        }
        None => {
            p.push(format!("{at}.bucket"), "required: the bucket to list");
            None
        }
    };
    let prefix = raw.prefix.unwrap_or_default();
    if prefix.len() > 1024 || prefix.chars().any(char::is_control) {
        p.push(
            format!("{at}.prefix"),
            "at most 1024 bytes, no control characters",
        );
    }
    let interval_s = match raw.interval_s {
        Some(v) if v == 0 || v > 86_400 => {
            p.push(format!("{at}.interval_s"), "must be 1 to 86400 (a day)");
            60
        }
        v => v.unwrap_or(60),
    };
    let max_objects = validate::within(
        raw.max_objects,
        1_000_000,
        100_000_000,
        &format!("{at}.max_objects"),
        p,
    );
    if raw.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        p.push(format!("{at}.name"), "empty; leave it out for the default");
    }
    let keys = KeySources::check(
        crate::aws::RawKeys {
            access_key_id: (raw.access_key_id_env, raw.access_key_id_file),
            secret_access_key: (raw.secret_access_key_env, raw.secret_access_key_file),
            session_token: (raw.session_token_env, raw.session_token_file),
        },
        at,
        p,
    );
    let (endpoint, bucket, keys) = (endpoint?, bucket?, keys?);
    let name = raw.name.unwrap_or_else(|| format!("poll:{bucket}"));
    Some(PollConfig {
        name,
        endpoint,
        bucket,
        prefix,
        interval: Duration::from_secs(interval_s),
        region: raw.region.unwrap_or_else(|| "us-east-1".to_owned()),
        path_style: raw.path_style.unwrap_or(true),
        max_objects,
        keys,
    })
}

/// Runs the poller until `shutdown`: a listing every `interval`, the first at once.
pub async fn run(
    cfg: PollConfig,
    ingestor: Arc<Ingestor>,
    store: Arc<dyn Store>,
    statuses: Statuses,
    shutdown: CancellationToken,
) {
    let Some(http) = super::http_client(&cfg.name, &statuses) else {
        return;
    };
    let lister = Lister { http, cfg: &cfg };
    // What the last complete listing held; loaded from the store on the first round.
    let mut known: Option<HashMap<String, ListedObject>> = None;
    // A mass removal seen once, waiting for the next listing to confirm it.
    let mut doubt = false;
    let mut ticks = tokio::time::interval(cfg.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let round = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = poll_once(&lister, &ingestor, store.as_ref(), &mut known, &mut doubt, &statuses) => r,
        };
        match round {
            Ok(changes) => super::update(&statuses, &cfg.name, |s| {
                s.connected = true;
                s.lag = Some(0);
                s.last_error = None;
                s.received += changes;
                s.acked += changes;
            }),
            Err(e) => {
                tracing::warn!(source = %cfg.name, bucket = %cfg.bucket, "{e}; listing again in {:?}", cfg.interval);
                super::update(&statuses, &cfg.name, |s| {
                    s.connected = false;
                    s.lag = None;
                    s.last_error = Some(e.clone());
                });
            }
        }
    }
}

/// One round: list, compare, commit the events, save the listing. Returns how many changes
/// were committed.
async fn poll_once(
    lister: &Lister<'_>,
    ingestor: &Ingestor,
    store: &dyn Store,
    known: &mut Option<HashMap<String, ListedObject>>,
    doubt: &mut bool,
    statuses: &Statuses,
) -> Result<u64, String> {
    let cfg = lister.cfg;
    let scope = cfg.scope();
    if known.is_none() {
        let saved = store
            .listing(&cfg.name)
            .await
            .map_err(|e| format!("reading the saved listing: {e}"))?;
        *known = saved
            .filter(|l| l.scope == scope)
            .map(|l| l.objects.into_iter().map(|o| (o.key.clone(), o)).collect());
    }
    let listed = lister.list().await?;
    let now = crate::clock::now_ms();
    let Some(before) = known.as_ref() else {
        // The first listing of this scope: saved, nothing purged.
        let n = listed.len();
        let changes = ListingChanges {
            reset: true,
            upsert: listed.values().cloned().collect(),
            remove: Vec::new(),
        };
        store
            .save_listing(&cfg.name, &scope, changes, now)
            .await
            .map_err(|e| format!("saving the listing: {e}"))?;
        tracing::info!(source = %cfg.name, bucket = %cfg.bucket, objects = n, "first listing saved; changes from now on are purged");
        *known = Some(listed);
        return Ok(0);
    };
    let diff = compare(before, &listed);
    if diff.upsert.is_empty() && diff.remove.is_empty() {
        *doubt = false;
        return Ok(0);
    }
    if hold_back(diff.remove.len(), before.len(), doubt) {
        tracing::warn!(
            source = %cfg.name, bucket = %cfg.bucket, removed = diff.remove.len(),
            listed_before = before.len(),
            "this listing says most objects are gone; nothing is purged until the next listing \
             says the same"
        );
        return Ok(0);
    }
    let events = events_of(cfg, &diff, before);
    let total = events.len() as u64;
    super::update(statuses, &cfg.name, |s| s.lag = Some(total));
    let options = IngestOptions::default();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let part: Vec<Event> = events.by_ref().take(EVENTS_PER_COMMIT).collect();
        ingestor.accept_events(part, &options).await.map_err(|e| {
            format!("the changes found could not be stored (listed again next round): {e}")
        })?;
    }
    store
        .save_listing(&cfg.name, &scope, diff, now)
        .await
        .map_err(|e| format!("saving the listing (the changes were queued): {e}"))?;
    tracing::info!(source = %cfg.name, bucket = %cfg.bucket, changes = total, "changes queued");
    *known = Some(listed);
    Ok(total)
}

/// Whether to hold back a round that removes `removed` of the `before` objects listed last
/// time: a mass removal is believed only when the next listing says the same (`doubt`
/// remembers the first).
fn hold_back(removed: usize, before: usize, doubt: &mut bool) -> bool {
    let mass = removed > MASS_REMOVAL && removed * 2 > before;
    let hold = mass && !*doubt;
    *doubt = hold;
    hold
}

/// What changed from `before` to `now`.
fn compare(
    before: &HashMap<String, ListedObject>,
    now: &HashMap<String, ListedObject>,
) -> ListingChanges {
    let mut upsert: Vec<ListedObject> = now
        .values()
        .filter(|o| before.get(&o.key) != Some(*o))
        .cloned()
        .collect();
    upsert.sort_by(|a, b| a.key.cmp(&b.key));
    let mut remove: Vec<String> = before
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    remove.sort();
    ListingChanges {
        reset: false,
        upsert,
        remove,
    }
}

fn events_of(
    cfg: &PollConfig,
    diff: &ListingChanges,
    before: &HashMap<String, ListedObject>,
) -> Vec<Event> {
    let event = |key: &str, name: &str, native: &str, o: Option<&ListedObject>| Event {
        format: Format::Poll,
        bucket: cfg.bucket.clone(),
        key: key.to_owned(),
        raw_key: key.to_owned(),
        name: name.to_owned(),
        native_name: native.to_owned(),
        size: o.map(|o| o.size),
        etag: o.map(|o| o.etag.clone()),
        version_id: None,
        sequencer: None,
        time: o.map(|o| o.modified.clone()),
        id: None,
    };
    let mut out = Vec::with_capacity(diff.upsert.len() + diff.remove.len());
    for o in &diff.upsert {
        let native = if before.contains_key(&o.key) {
            "poll:changed"
        } else {
            "poll:new"
        };
        out.push(event(&o.key, "ObjectCreated:Put", native, Some(o)));
    }
    for key in &diff.remove {
        out.push(event(key, "ObjectRemoved:Delete", "poll:gone", None));
    }
    out
}

/// Lists one bucket (prefix) with signed `ListObjectsV2` calls.
struct Lister<'a> {
    http: reqwest::Client,
    cfg: &'a PollConfig,
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq)]
struct Page {
    objects: Vec<ListedObject>,
    next: Option<String>,
}

impl Lister<'_> {
    async fn list(&self) -> Result<HashMap<String, ListedObject>, String> {
        let mut all: HashMap<String, ListedObject> = HashMap::new();
        let mut token: Option<String> = None;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let page = self.page(token.as_deref()).await?;
            for o in page.objects {
                all.insert(o.key.clone(), o);
            }
            if all.len() > self.cfg.max_objects {
                return Err(format!(
                    "the bucket holds more than max_objects ({}) objects under the prefix; \
                     poll a narrower prefix or raise max_objects (each object costs about \
                     100 bytes of memory plus its key)",
                    self.cfg.max_objects
                ));
            }
            match page.next {
                Some(t) if seen.insert(t.clone()) => token = Some(t),
                Some(_) => return Err("the listing repeated a continuation token".into()),
                None => return Ok(all),
            }
            if seen.len() > self.cfg.max_objects / 1000 + 1000 {
                return Err("the listing goes on for more pages than max_objects allows".into());
            }
        }
    }

    async fn page(&self, token: Option<&str>) -> Result<Page, String> {
        let cfg = self.cfg;
        let creds = cfg.keys.load().await?;
        let mut query: Vec<(&str, &str)> = vec![("list-type", "2"), ("max-keys", "1000")];
        if !cfg.prefix.is_empty() {
            query.push(("prefix", &cfg.prefix));
        }
        if let Some(t) = token {
            query.push(("continuation-token", t));
        }
        let endpoint_host = match (cfg.endpoint.host_str(), cfg.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("endpoint {} has no host", cfg.endpoint)),
        };
        let (host, path) = if cfg.path_style {
            (
                endpoint_host,
                format!("/{}", sigv4::uri_encode(&cfg.bucket, false)),
            )
        } else {
            (format!("{}.{endpoint_host}", cfg.bucket), "/".to_owned())
        };
        let empty_sha = sigv4::sha256_hex(b"");
        let headers = [("x-amz-content-sha256", empty_sha.as_str())];
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "GET",
                path: &path,
                query: &query,
                headers: &headers,
                host: &host,
                body: b"",
            },
            &creds,
            &cfg.region,
            "s3",
            &sigv4::amz_date(crate::clock::now_ms()),
        );
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    sigv4::uri_encode(k, false),
                    sigv4::uri_encode(v, false)
                )
            })
            .collect();
        let url = format!("{}://{host}{path}?{}", cfg.endpoint.scheme(), qs.join("&"));
        let mut req = self.http.get(&url).timeout(PAGE_TIMEOUT);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in &signed.headers {
            req = req.header(*k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("ListObjectsV2 {}: no answer: {e}", cfg.bucket))?;
        let status = resp.status();
        let text = read_limited(resp, MAX_PAGE_BYTES)
            .await
            .map_err(|e| format!("ListObjectsV2 {}: reading the answer: {e}", cfg.bucket))?;
        if !status.is_success() {
            let (code, message) = s3_error(&text);
            let hint = match code.as_str() {
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    " (check the keys and that they may s3:ListBucket on the bucket)"
                }
                "NoSuchBucket" => " (check bucket and endpoint)",
                "PermanentRedirect" | "AuthorizationHeaderMalformed" => {
                    " (check region and endpoint: the bucket lives elsewhere)"
                }
                _ => "",
            };
            return Err(format!(
                "ListObjectsV2 {}: HTTP {}: {code}: {message}{hint}",
                cfg.bucket,
                status.as_u16()
            ));
        }
        parse_page(&text, &cfg.bucket).map_err(|e| format!("ListObjectsV2 {}: {e}", cfg.bucket))
    }
}

/// One `ListBucketResult` page of `bucket`. Anything else answered with a 200 (an HTML page
/// from a proxy, an `<Error>`, a body cut short) is an error, never an empty page: an empty
/// listing would read as every object deleted.
fn parse_page(xml: &str, bucket: &str) -> Result<Page, String> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut page = Page::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut current: Option<ListedObject> = None;
    let mut truncated: Option<bool> = None;
    let mut name: Option<String> = None;
    let mut root_closed = false;
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("the answer is not XML: {e}"))?
        {
            Xml::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() && (name != "ListBucketResult" || root_closed) {
                    return Err(format!(
                        "the answer is not a ListBucketResult (found <{}>)",
                        crate::purgers::snippet(&name, 40)
                    ));
                }
                if name == "Contents" && path.len() == 1 {
                    current = Some(ListedObject {
                        key: String::new(),
                        etag: String::new(),
                        size: 0,
                        modified: String::new(),
                    });
                }
                path.push(name);
                text.clear();
            }
            Xml::Text(t) => text.push_str(
                &t.decode()
                    .map_err(|e| format!("the answer is not UTF-8: {e}"))?,
            ),
            Xml::CData(t) => text.push_str(
                &t.decode()
                    .map_err(|e| format!("the answer is not UTF-8: {e}"))?,
            ),
            Xml::GeneralRef(r) => {
                let name = r
                    .decode()
                    .map_err(|e| format!("the answer is not UTF-8: {e}"))?;
                text.push('&');
                text.push_str(&name);
                text.push(';');
            }
            Xml::End(_) => {
                let value = quick_xml::escape::unescape(&text)
                    .map_err(|e| format!("a bad XML escape: {e}"))?
                    .into_owned();
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    [_, "Contents", "Key"] => set(&mut current, |o| o.key = value),
                    [_, "Contents", "ETag"] => set(&mut current, |o| {
                        o.etag = value.trim_matches('"').to_owned()
                    }),
                    [_, "Contents", "Size"] => {
                        let size = value
                            .trim()
                            .parse::<u64>()
                            .ok()
                            .filter(|s| i64::try_from(*s).is_ok())
                            .ok_or_else(|| format!("Size {value:?} is not an object size"))?;
                        set(&mut current, |o| o.size = size)
                    }
                    [_, "Contents", "LastModified"] => set(&mut current, |o| o.modified = value),
                    [_, "Contents"] => {
                        if let Some(o) = current.take() {
                            if o.key.is_empty() {
                                return Err("an object without a Key".into());
                            }
                            page.objects.push(o);
                        }
                    }
                    [_, "IsTruncated"] => {
                        truncated = match value.trim() {
                            "true" => Some(true),
                            "false" => Some(false),
                            other => return Err(format!("IsTruncated {other:?}")),
                        }
                    }
                    [_, "Name"] => name = Some(value),
                    [_, "NextContinuationToken"] => page.next = Some(value),
                    _ => {}
                }
                path.pop();
                if path.is_empty() {
                    root_closed = true;
                }
                text.clear();
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    if !root_closed {
        return Err("the answer is not a whole ListBucketResult (cut short?)".into());
    }
    if name.as_deref() != Some(bucket) {
        return Err(format!(
            "the listing is of bucket {:?}, not {bucket:?}",
            name.unwrap_or_default()
        ));
    }
    match truncated {
        None => return Err("the listing has no IsTruncated".into()),
        Some(true) if page.next.is_none() => {
            return Err("IsTruncated without a NextContinuationToken".into())
        }
        Some(false) => page.next = None,
        Some(true) => {}
    }
    Ok(page)
}

fn set(current: &mut Option<ListedObject>, f: impl FnOnce(&mut ListedObject)) {
    if let Some(o) = current.as_mut() {
        f(o);
    }
}

/// The answer's body as text, refused past `max` bytes.
async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<String, String> {
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_owned())
}

/// `<Error><Code>…</Code><Message>…</Message></Error>`, or the start of whatever came.
fn s3_error(text: &str) -> (String, String) {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{tag}>"))? + start;
        Some(text[start..end].to_owned())
    };
    match field("Code") {
        Some(code) => (code, field("Message").unwrap_or_default()),
        None => ("error".to_owned(), crate::purgers::snippet(text, 200)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, etag: &str, size: u64) -> ListedObject {
        ListedObject {
            key: key.into(),
            etag: etag.into(),
            size,
            modified: "2026-11-30T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_page_is_read_with_escapes_and_continuation() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>assets</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated><NextContinuationToken>1/abc==</NextContinuationToken>
  <Contents><Key>a &amp; b &lt;c&gt; +猫 50%25.png</Key>
    <LastModified>2026-11-30T10:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>12</Size>
    <StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>dir/x.css</Key><LastModified>2026-11-30T10:00:01.000Z</LastModified>
    <ETag>"e2-3"</ETag><Size>0</Size><Owner><ID>o</ID></Owner></Contents>
</ListBucketResult>"#;
        let page = parse_page(xml, "assets").unwrap();
        assert_eq!(page.next.as_deref(), Some("1/abc=="));
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "a & b <c> +猫 50%25.png");
        assert_eq!(page.objects[0].etag, "9b2cf535f27731c974343645a3985328");
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(page.objects[1].etag, "e2-3");
        assert_eq!(page.objects[1].modified, "2026-11-30T10:00:01.000Z");

        let last = xml
            .replace("<IsTruncated>true", "<IsTruncated>false")
            .replace("<NextContinuationToken>1/abc==</NextContinuationToken>", "");
        assert_eq!(parse_page(&last, "assets").unwrap().next, None);
        let broken = xml.replace("<NextContinuationToken>1/abc==</NextContinuationToken>", "");
        assert!(parse_page(&broken, "assets").is_err());
        // What is not one whole listing of this bucket is an error, never an empty page (an
        // empty listing would read as every object deleted).
        let empty = "<ListBucketResult><Name>assets</Name><IsTruncated>false</IsTruncated>\
                     </ListBucketResult>";
        assert!(parse_page(empty, "assets").unwrap().objects.is_empty());
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "not a whole"),
            (
                "<html><body>Bad gateway</body></html>".into(),
                "not a ListBucketResult",
            ),
            ("{\"Contents\": []}".into(), "not a whole"),
            (
                "<Error><Code>SlowDown</Code></Error>".into(),
                "not a ListBucketResult",
            ),
            (empty[..40].into(), "not"),
            (empty[..69].into(), "not a whole"),
            (
                empty.replace("<IsTruncated>false</IsTruncated>", ""),
                "no IsTruncated",
            ),
            (empty.replace("assets", "other"), "of bucket \"other\""),
            (
                empty.replace(
                    "</ListBucketResult>",
                    "</ListBucketResult><ListBucketResult>",
                ),
                "not a ListBucketResult",
            ),
            (xml.replace("<Size>12</Size>", "<Size>x</Size>"), "Size"),
            (
                xml.replace("<Size>12</Size>", "<Size>18446744073709551615</Size>"),
                "Size",
            ),
        ];
        for (bad, why) in cases {
            let e = parse_page(&bad, "assets").unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn changes_are_new_changed_and_gone_keys() {
        let before: HashMap<String, ListedObject> = [
            obj("same", "e", 1),
            obj("changed", "e", 1),
            obj("gone", "e", 1),
        ]
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
        let now: HashMap<String, ListedObject> = [
            obj("same", "e", 1),
            obj("changed", "f", 1),
            obj("new", "e", 2),
        ]
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
        let diff = compare(&before, &now);
        let keys: Vec<&str> = diff.upsert.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["changed", "new"]);
        assert_eq!(diff.remove, ["gone"]);
        let table: toml::Table = toml::from_str(
            "kind = \"poll\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"assets\"",
        )
        .unwrap();
        let mut p = Problems::default();
        let cfg = check(table, "sources[0]", &mut p).unwrap();
        let events = events_of(&cfg, &diff, &before);
        let got: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|e| (e.key.as_str(), e.name.as_str(), e.native_name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("changed", "ObjectCreated:Put", "poll:changed"),
                ("new", "ObjectCreated:Put", "poll:new"),
                ("gone", "ObjectRemoved:Delete", "poll:gone"),
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.bucket == "assets" && e.format == Format::Poll));
    }

    #[test]
    fn a_mass_removal_waits_for_a_second_listing() {
        let mut doubt = false;
        assert!(
            !hold_back(100, 150, &mut doubt),
            "100 is not a mass removal"
        );
        assert!(
            !hold_back(101, 300, &mut doubt),
            "not half of what was listed"
        );
        assert!(hold_back(600, 1000, &mut doubt), "held the first time");
        assert!(
            !hold_back(600, 1000, &mut doubt),
            "believed when said twice"
        );
        assert!(hold_back(600, 1000, &mut doubt), "a new one is held again");
        assert!(!hold_back(0, 1000, &mut doubt), "a normal round");
        assert!(!doubt, "and the doubt is gone");
    }

    #[test]
    fn s3_errors_are_named() {
        let (code, message) = s3_error(
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("AccessDenied", "Access Denied")
        );
        assert_eq!(s3_error("<html>bad gateway</html>").0, "error");
    }
}
