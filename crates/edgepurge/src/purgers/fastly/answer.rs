//! Reading Fastly's answers (apis.md §D.1): a URL purge's `{"status": "ok", "id": "..."}`, a
//! batch purge's map of surrogate key → purge id, and the error body `{"msg": "...",
//! "detail": "..."}`.

use serde_json::Value;
use std::collections::BTreeMap;

/// A URL purge accepted: its purge id.
pub fn url_purged(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    if v.get("status")?.as_str()? != "ok" {
        return None;
    }
    Some(
        v.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

/// A batch purge accepted: each key's purge id.
pub fn keys_purged(text: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(text).ok()?;
    let map = v.as_object()?;
    if map.contains_key("msg") {
        return None;
    }
    map.iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// An error answer: `msg` and `detail` (either may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    pub msg: String,
    pub detail: String,
}

impl Problem {
    /// The error body in `text`, when it is Fastly's (a JSON object with `msg` or `detail`).
    pub fn parse(text: &str) -> Option<Problem> {
        let v: Value = serde_json::from_str(text).ok()?;
        let field = |name: &str| -> Option<String> {
            match v.get(name)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        let (msg, detail) = (field("msg"), field("detail"));
        if msg.is_none() && detail.is_none() {
            return None;
        }
        Some(Problem {
            msg: msg.unwrap_or_default(),
            detail: detail.unwrap_or_default(),
        })
    }

    /// `msg (detail)`, escaped and cut for the log.
    pub fn describe(&self) -> String {
        let text = match (self.msg.is_empty(), self.detail.is_empty()) {
            (_, true) => self.msg.clone(),
            (true, false) => self.detail.clone(),
            (false, false) => format!("{} ({})", self.msg, self.detail),
        };
        crate::purgers::snippet(&text, 300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_purge_answer_carries_its_id() {
        assert_eq!(
            url_purged(r#"{"status":"ok","id":"108-1391560174-974124"}"#).as_deref(),
            Some("108-1391560174-974124")
        );
        assert_eq!(url_purged(r#"{"status":"ok"}"#).as_deref(), Some(""));
        for other in [
            "",
            "<html>ok</html>",
            r#"{"status":"error"}"#,
            r#"{"msg":"x"}"#,
        ] {
            assert_eq!(url_purged(other), None, "{other}");
        }
    }

    #[test]
    fn a_batch_answer_maps_each_key_to_its_purge_id() {
        // Fastly's documented example.
        let got = keys_purged(
            r#"{"key_1":"108-1391560174-974124","key_2":"108-1391560174-974125",
                "key_3":"108-1391560174-974126"}"#,
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got["key_2"], "108-1391560174-974125");
        for other in ["[]", r#"{"msg":"Bad request"}"#, r#"{"a":1}"#, "not json"] {
            assert_eq!(keys_purged(other), None, "{other}");
        }
    }

    #[test]
    fn error_bodies_are_read_and_described() {
        let p = Problem::parse(r#"{"msg":"Provided credentials are missing or invalid"}"#).unwrap();
        assert_eq!(p.describe(), "Provided credentials are missing or invalid");
        let p = Problem::parse(r#"{"msg":"Record not found","detail":"Cannot find 'service'"}"#)
            .unwrap();
        assert_eq!(p.describe(), "Record not found (Cannot find 'service')");
        let p = Problem::parse(r#"{"detail":"x\ny"}"#).unwrap();
        assert_eq!(p.describe(), "x\\ny");
        for other in ["", "{}", "[1]", "<html>", r#"{"status":"ok"}"#] {
            assert_eq!(Problem::parse(other), None, "{other}");
        }
    }
}
