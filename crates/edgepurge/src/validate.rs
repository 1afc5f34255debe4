//! Checking raw configuration values purely: a collector of every problem, each with its
//! place, and the field checks that the config file's top level and every provider's own
//! section share. Nothing here touches the network, the disk or the environment.

use crate::limits::KindLimits;
use crate::secret::SecretSource;
use edgepurge_core::TargetKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One problem: where (`providers.tencent.area`, `rules[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

/// Every problem found so far.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            at: at.into(),
            message: message.into(),
        });
    }

    /// The value, or `None` with the error recorded at `at`.
    pub fn check<T>(&mut self, r: Result<T, String>, at: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(at, e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// Joins a place and a field: `providers.x` + `area` → `providers.x.area`.
pub fn field(at: &str, name: &str) -> String {
    format!("{at}.{name}")
}

/// A table section decoded into a provider's raw struct (`deny_unknown_fields` there names
/// any misspelled key).
pub fn section<T: DeserializeOwned>(table: toml::Table, at: &str, p: &mut Problems) -> Option<T> {
    p.check(
        toml::Value::Table(table)
            .try_into::<T>()
            .map_err(|e| e.to_string().trim().to_owned()),
        at,
    )
}

/// A count that must be above zero.
pub fn positive(v: Option<u64>, default: u64, at: &str, p: &mut Problems) -> u64 {
    match v {
        Some(0) => {
            p.push(at, "must be greater than 0");
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// A count from 1 to `max`.
pub fn within(v: Option<usize>, default: usize, max: usize, at: &str, p: &mut Problems) -> usize {
    match v {
        Some(n) if n == 0 || n > max => {
            p.push(at, format!("must be 1 to {max}"));
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// `collapse_to_dir_over = N` of an account whose `kinds` are checked already: at least 1, and
/// only where the account counts both a URL quota and a directory quota of its own (a
/// directory purge must cost directory quota, not URL quota). `None`: off.
pub fn collapse_to_dir_over(
    v: Option<u32>,
    kinds: &[(TargetKind, KindLimits)],
    at: &str,
    p: &mut Problems,
) -> Option<u32> {
    let n = v?;
    let counted = |kind| {
        kinds
            .iter()
            .any(|(k, l)| *k == kind && l.daily_quota.is_some())
    };
    if n == 0 {
        p.push(
            at,
            "must be at least 1 (the fewest other pending URLs a directory needs to be purged \
             whole); leave it out to never collapse",
        );
        return None;
    }
    if !counted(TargetKind::Url) || !counted(TargetKind::Dir) {
        p.push(
            at,
            "needs the daily URL and directory quotas counted (neither url_daily_quota nor \
             dir_daily_quota may be 0)",
        );
        return None;
    }
    Some(n)
}

/// A duration in whole seconds, from 1 s to a day.
pub fn seconds(v: Option<u64>, default: u64, at: &str, p: &mut Problems) -> Duration {
    const DAY: u64 = 86_400;
    match v {
        Some(n) if n == 0 || n > DAY => {
            p.push(at, format!("must be 1 to {DAY} seconds"));
            Duration::from_secs(default)
        }
        Some(n) => Duration::from_secs(n),
        None => Duration::from_secs(default),
    }
}

/// A count of at least 1.
pub fn at_least_one(v: Option<usize>, default: usize, at: &str, p: &mut Problems) -> usize {
    match v {
        Some(0) => {
            p.push(at, "must be at least 1");
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// The slowest rate a lane can keep (one request per ~17 minutes); below it the interval
/// between requests would not fit the timers.
pub const MIN_RATE: f64 = 0.001;
/// The fastest rate accepted when the provider states no limit.
pub const MAX_ANY_RATE: f64 = 100_000.0;

/// A rate from [`MIN_RATE`] to `max` when the provider has a limit (`why` names it), else to
/// [`MAX_ANY_RATE`].
pub fn rate(
    v: Option<f64>,
    default: f64,
    max: Option<(f64, &str)>,
    at: &str,
    p: &mut Problems,
) -> f64 {
    let Some(r) = v else { return default };
    let (m, why) = max.unwrap_or((MAX_ANY_RATE, "edgepurge's limit"));
    // `contains` is false for NaN too.
    if !(MIN_RATE..=m).contains(&r) {
        p.push(
            at,
            format!("must be from {MIN_RATE} to {m} requests per second ({why})"),
        );
        return default;
    }
    r
}

/// An HTTP header name (letters, digits and `!#$%&'*+-.^_`|~`; no blanks, `:` or line breaks).
pub fn header_name(name: &str, at: &str, p: &mut Problems) -> bool {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        p.push(
            at,
            format!("{name:?} is not an HTTP header name (letters, digits and - only, usually)"),
        );
    }
    ok
}

/// A secret from `<field>_env` or `<field>_file`, else from `default_env` when given.
pub fn secret(
    field_name: &str,
    env: Option<String>,
    file: Option<PathBuf>,
    default_env: Option<&str>,
    at: &str,
    p: &mut Problems,
) -> Option<Option<SecretSource>> {
    p.check(
        SecretSource::from_fields(field_name, env.as_deref(), file.as_deref())
            .map(|s| s.or_else(|| default_env.map(|v| SecretSource::Env(v.to_owned())))),
        at,
    )
}

/// An API endpoint: https, or plain http for loopback test endpoints only.
pub fn endpoint(text: &str, at: &str, p: &mut Problems) -> Option<url::Url> {
    p.check(
        url::Url::parse(text)
            .map_err(|e| format!("{text:?} is not a URL ({e})"))
            .and_then(|u| {
                let loopback = match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                };
                match u.scheme() {
                    "https" => Ok(u),
                    "http" if loopback => Ok(u),
                    "http" => Err(format!(
                        "{text:?}: plain http would send credentials in the clear; use https \
                         (http is allowed for loopback test endpoints only)"
                    )),
                    other => Err(format!("{text:?}: unsupported scheme {other}")),
                }
            }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_place() {
        let mut p = Problems::default();
        p.push("providers.x.area", "\"moon\" is not mainland or overseas");
        assert_eq!(positive(Some(0), 7, "dispatch.poll_ms", &mut p), 7);
        assert_eq!(within(Some(5000), 1000, 1000, "a.max", &mut p), 1000);
        assert_eq!(
            rate(
                Some(50.0),
                20.0,
                Some((20.0, "the limit")),
                "a.rate",
                &mut p
            ),
            20.0
        );
        assert!(endpoint("http://cdn.example.com", "a.endpoint", &mut p).is_none());
        assert!(endpoint("http://127.0.0.1:9", "a.endpoint", &mut p).is_some());
        let all: Vec<String> = p.into_vec().iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 5, "{all:?}");
        assert_eq!(all[1], "dispatch.poll_ms: must be greater than 0");
        assert!(all[4].starts_with("a.endpoint: \"http://cdn.example.com\": plain http"));
    }

    #[test]
    fn sections_name_unknown_keys() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Raw {
            a: Option<u32>,
        }
        let table: toml::Table = toml::from_str("b = 1").unwrap();
        let mut p = Problems::default();
        assert!(section::<Raw>(table, "providers.x", &mut p).is_none());
        let text = p.into_vec()[0].to_string();
        assert!(text.starts_with("providers.x: unknown field `b`"), "{text}");
    }
}
