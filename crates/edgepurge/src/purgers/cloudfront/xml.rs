//! CloudFront's rest-xml shapes: the `InvalidationBatch` request body, and the
//! `Invalidation` and `ErrorResponse` answers (apis.md §B.1).

use quick_xml::escape::escape;

pub const NAMESPACE: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

/// The `CreateInvalidation` body for `items` (paths, wildcards and `#tags`).
pub fn invalidation_batch(caller_reference: &str, items: &[String]) -> String {
    let mut out = String::with_capacity(200 + items.iter().map(|i| i.len() + 13).sum::<usize>());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    out.push_str(&format!("<InvalidationBatch xmlns=\"{NAMESPACE}\">"));
    out.push_str(&format!(
        "<Paths><Quantity>{}</Quantity><Items>",
        items.len()
    ));
    for item in items {
        out.push_str("<Path>");
        out.push_str(&escape(item.as_str()));
        out.push_str("</Path>");
    }
    out.push_str("</Items></Paths>");
    out.push_str(&format!(
        "<CallerReference>{}</CallerReference>",
        escape(caller_reference)
    ));
    out.push_str("</InvalidationBatch>");
    out
}

/// What CloudFront answered, read from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `<Invalidation>`: created (or the earlier one with the same CallerReference).
    Invalidation { id: String, status: String },
    /// `<ErrorResponse>`.
    Error {
        code: String,
        message: String,
        request_id: Option<String>,
    },
}

/// Reads an answer; `None` when the body is not one of CloudFront's (a proxy's page, an
/// empty or truncated body).
pub fn parse_answer(xml: &str) -> Option<Answer> {
    let fields = leaves(xml).ok()?;
    let get = |path: &[&str]| {
        fields
            .iter()
            .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
            .map(|(_, v)| v.trim().to_owned())
    };
    let root = fields.first().and_then(|(p, _)| p.first())?.clone();
    match root.as_str() {
        "Invalidation" => Some(Answer::Invalidation {
            id: get(&["Invalidation", "Id"]).filter(|id| !id.is_empty())?,
            status: get(&["Invalidation", "Status"]).unwrap_or_default(),
        }),
        "ErrorResponse" => Some(Answer::Error {
            code: get(&["ErrorResponse", "Error", "Code"]).filter(|c| !c.is_empty())?,
            message: get(&["ErrorResponse", "Error", "Message"]).unwrap_or_default(),
            request_id: get(&["ErrorResponse", "RequestId"]).filter(|r| !r.is_empty()),
        }),
        _ => None,
    }
}

/// Every element with its path from the root and its own text (for elements with children,
/// the text between them), outer elements first. Errors on malformed or truncated XML.
fn leaves(xml: &str) -> Result<Vec<(Vec<String>, String)>, String> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Xml::Start(e) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                texts.push(String::new());
            }
            Xml::Empty(e) => {
                let mut p = path.clone();
                p.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                out.push((p, String::new()));
            }
            Xml::Text(t) => {
                if let Some(text) = texts.last_mut() {
                    text.push_str(&t.decode().map_err(|e| e.to_string())?);
                }
            }
            Xml::CData(t) => {
                if let Some(text) = texts.last_mut() {
                    text.push_str(&t.decode().map_err(|e| e.to_string())?);
                }
            }
            Xml::GeneralRef(r) => {
                if let Some(text) = texts.last_mut() {
                    text.push('&');
                    text.push_str(&r.decode().map_err(|e| e.to_string())?);
                    text.push(';');
                }
            }
            Xml::End(_) => {
                let raw = texts.pop().unwrap_or_default();
                let value = quick_xml::escape::unescape(&raw)
                    .map_err(|e| e.to_string())?
                    .into_owned();
                out.push((path.clone(), value));
                path.pop();
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err("truncated".into());
    }
    // Outer elements end last; put the root first so callers find it.
    out.sort_by_key(|(p, _)| p.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_matches_the_rest_xml_shape_and_escapes_paths() {
        let body = invalidation_batch(
            "edgepurge-ref",
            &["/a&b<c>.png".into(), "/docs/*".into(), "#tag".into()],
        );
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InvalidationBatch \
             xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\"><Paths><Quantity>3\
             </Quantity><Items><Path>/a&amp;b&lt;c&gt;.png</Path><Path>/docs/*</Path><Path>\
             #tag</Path></Items></Paths><CallerReference>edgepurge-ref</CallerReference>\
             </InvalidationBatch>"
        );
        // It reads back: the escaping round-trips.
        let fields = leaves(&body).unwrap();
        assert!(fields
            .iter()
            .any(|(p, v)| p.last().map(String::as_str) == Some("Path") && v == "/a&b<c>.png"));
    }

    #[test]
    fn answers_are_read_from_cloudfronts_shapes() {
        let created = "<?xml version=\"1.0\"?>\n<Invalidation xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
            <Id>I2J0I21PCUYOIK</Id><Status>InProgress</Status><CreateTime>2026-01-01T00:00:00Z</CreateTime>\
            <InvalidationBatch><Paths><Quantity>1</Quantity><Items><Path>/a</Path></Items></Paths>\
            <CallerReference>r</CallerReference></InvalidationBatch></Invalidation>";
        assert_eq!(
            parse_answer(created),
            Some(Answer::Invalidation {
                id: "I2J0I21PCUYOIK".into(),
                status: "InProgress".into()
            })
        );
        let error = "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
            <Error><Type>Sender</Type><Code>TooManyInvalidationsInProgress</Code>\
            <Message>Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations &amp; more.</Message>\
            </Error><RequestId>22820705-e358-11e2-97fe-ff4fd86f3f1f</RequestId></ErrorResponse>";
        assert_eq!(
            parse_answer(error),
            Some(Answer::Error {
                code: "TooManyInvalidationsInProgress".into(),
                message: "Processing your request will cause you to exceed the maximum number \
                          of in-progress wildcard invalidations & more."
                    .into(),
                request_id: Some("22820705-e358-11e2-97fe-ff4fd86f3f1f".into()),
            })
        );
        for not_ours in [
            "",
            "<html><body>captive portal</body></html>",
            "<Invalidation><Id>I1",
            "<Invalidation><Status>InProgress</Status></Invalidation>",
            "{\"json\": true}",
        ] {
            assert_eq!(parse_answer(not_ours), None, "{not_ours}");
        }
    }
}
