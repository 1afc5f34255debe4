//! Targets purged by hand (`edgepurge purge`, `POST /v1/purge`): checked here, once, before
//! [`super::Ingestor::accept_manual`] queues them.

use edgepurge_core::TargetKind;
use std::fmt;

/// A target that cannot be purged: where it came from (`argument`, `urls.txt:3`,
/// `targets[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRefusal {
    pub at: String,
    pub message: String,
}

impl fmt::Display for TargetRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Checks `(text, where)` pairs as targets of `kind` (http(s) URLs with a host; a directory
/// ends with `/`) and returns them normalized, without repeats, in order.
pub fn check_targets(
    raw: impl IntoIterator<Item = (String, String)>,
    kind: TargetKind,
) -> Result<Vec<String>, TargetRefusal> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (text, at) in raw {
        let refuse = |message: String| TargetRefusal {
            at: at.clone(),
            message,
        };
        let url =
            url::Url::parse(&text).map_err(|e| refuse(format!("{text:?} is not a URL ({e})")))?;
        if url.scheme() != "http" && url.scheme() != "https" || url.host_str().is_none() {
            return Err(refuse(format!(
                "{text:?} must be an http(s) URL with a host"
            )));
        }
        if kind == TargetKind::Dir && !url.path().ends_with('/') {
            return Err(refuse(format!(
                "{text:?}: a directory purge target must end with /"
            )));
        }
        let s = url.to_string();
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(texts: &[&str]) -> Vec<(String, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| ((*t).to_owned(), format!("targets[{i}]")))
            .collect()
    }

    #[test]
    fn urls_are_normalized_once_and_bad_ones_named_by_place() {
        let ok = check_targets(
            raw(&[
                "https://cdn.example.com/a b",
                "https://cdn.example.com/a%20b",
            ]),
            TargetKind::Url,
        )
        .unwrap();
        assert_eq!(ok, vec!["https://cdn.example.com/a%20b"]);
        let err =
            check_targets(raw(&["https://x/", "cdn.example.com/a"]), TargetKind::Url).unwrap_err();
        assert_eq!(err.at, "targets[1]");
        assert!(err.to_string().contains("is not a URL"), "{err}");
        let err = check_targets(raw(&["ftp://x/a"]), TargetKind::Url).unwrap_err();
        assert!(err.message.contains("http(s) URL with a host"), "{err}");
        let err = check_targets(raw(&["https://x/dir"]), TargetKind::Dir).unwrap_err();
        assert!(err.message.ends_with("must end with /"), "{err}");
    }
}
