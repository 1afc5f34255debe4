//! Reading Cloudflare's answer envelope (apis.md §C): `{"success", "errors": [{"code",
//! "message", "error_chain"?}], "messages", "result": {"id"}}`.

use serde_json::Value;

/// One entry of `errors` (or of an entry's `error_chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Option<i64>,
    pub message: String,
}

/// A Cloudflare API answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub success: bool,
    /// `errors`, each followed by its `error_chain` entries.
    pub errors: Vec<ApiError>,
    /// `result.id`: the purge's id.
    pub id: Option<String>,
}

/// The envelope in `text`, or `None` when it is not Cloudflare's (a proxy's page, an empty or
/// cut-short body): it must be a JSON object with a boolean `success`.
pub fn parse(text: &str) -> Option<Answer> {
    let v: Value = serde_json::from_str(text).ok()?;
    let success = v.get("success")?.as_bool()?;
    let mut errors = Vec::new();
    for e in v
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push_error(e, &mut errors);
        for c in e
            .get("error_chain")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push_error(c, &mut errors);
        }
    }
    let id = v
        .pointer("/result/id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some(Answer {
        success,
        errors,
        id,
    })
}

fn push_error(e: &Value, out: &mut Vec<ApiError>) {
    let code = e.get("code").and_then(Value::as_i64);
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if code.is_some() || !message.is_empty() {
        out.push(ApiError { code, message });
    }
}

impl Answer {
    /// The error codes, in order.
    pub fn codes(&self) -> Vec<i64> {
        self.errors.iter().filter_map(|e| e.code).collect()
    }

    /// The errors as `code message; code message` (control characters escaped, each cut to
    /// 300 bytes), or `no error text`.
    pub fn describe(&self) -> String {
        if self.errors.is_empty() {
            return "no error text".to_owned();
        }
        self.errors
            .iter()
            .take(5)
            .map(|e| {
                let text = match e.code {
                    Some(c) => format!("{c} {}", e.message),
                    None => e.message.clone(),
                };
                crate::purgers::snippet(&text, 300)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_carries_the_purge_id() {
        let a = parse(
            r#"{"success":true,"errors":[],"messages":[],"result":{"id":"9a7806061c88ada191ed06f989cc3dac"}}"#,
        )
        .unwrap();
        assert!(a.success);
        assert_eq!(a.id.as_deref(), Some("9a7806061c88ada191ed06f989cc3dac"));
        assert_eq!(a.describe(), "no error text");
    }

    #[test]
    fn errors_and_their_chains_are_read() {
        let a = parse(
            r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers",
                "error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],
                "messages":[],"result":null}"#,
        )
        .unwrap();
        assert!(!a.success);
        assert_eq!(a.id, None);
        assert_eq!(a.codes(), vec![6003, 6111]);
        assert_eq!(
            a.describe(),
            "6003 Invalid request headers; 6111 Invalid format for Authorization header"
        );
        let a = parse(r#"{"success":false,"errors":[{"code":10000,"message":"x\ny"}]}"#).unwrap();
        assert_eq!(a.describe(), "10000 x\\ny");
    }

    #[test]
    fn other_bodies_are_not_an_answer() {
        for text in [
            "",
            "<html>bad gateway</html>",
            "[]",
            r#"{"result":{"id":"x"}}"#,
            r#"{"success":"true"}"#,
            r#"{"success":true,"#,
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
