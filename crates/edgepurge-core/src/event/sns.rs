//! SNS envelopes (S3 → SNS → HTTP/SQS): the notification is a JSON string in `Message`.
//!
//! Subscription confirmations are reported as notices, never followed: confirming means
//! fetching `SubscribeURL`, which an operator does once, by hand.

use super::{parse_value, Fields, ParseError, Parsed};
use serde_json::{Map, Value};

pub(super) fn is_envelope(obj: &Map<String, Value>) -> bool {
    matches!(
        obj.get("Type").and_then(Value::as_str),
        Some("Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation")
    ) && obj.contains_key("TopicArn")
}

pub(super) fn parse(
    obj: &Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let env = Fields::new(obj, path);
    let kind = env.string("Type")?;
    let topic = env.string("TopicArn")?;
    if kind != "Notification" {
        let url = env.opt_text("SubscribeURL").unwrap_or_default();
        // Sender text, printed in the server log: escaped, so it cannot forge log lines.
        out.notices.push(format!(
            "SNS {} for topic {} ignored; to confirm, open its SubscribeURL once: {}",
            crate::printable(kind),
            crate::printable(topic),
            crate::printable(&url)
        ));
        return Ok(());
    }
    let message = env.string("Message")?;
    let mpath = super::join(path, "Message");
    let inner: Value = super::strict::from_slice(message.as_bytes())
        .map_err(|e| ParseError::invalid(&mpath, format!("SNS Message is not JSON: {e}")))?;
    parse_value(&inner, &mpath, depth + 1, out)
}
