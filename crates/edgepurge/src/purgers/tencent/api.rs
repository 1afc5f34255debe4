//! One Tencent Cloud API 3.0 call (apis.md §A.1): the JSON body signed with TC3-HMAC-SHA256
//! for a product's signing service and version, sent, and the `{"Response": …}` envelope
//! read back: the business fields, or a classified failure. Shared by every Tencent product
//! edgepurge speaks (CDN `cdn`, EdgeOne `teo`); each gives its own error classifier.

use super::sign;
use crate::purgers::{
    describe_transport_error, redirect_target, retry_after, snippet, PurgeError, PurgeResponse,
    Verdict,
};
use crate::secret::{Secret, SecretSource};
use serde_json::Value;
use std::time::Duration;

const CONTENT_TYPE: &str = "application/json";

/// A Tencent Cloud product's API: what the signature and headers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// The signing service (the first label of the host): `cdn`, `teo`.
    pub service: &'static str,
    /// `X-TC-Version`: `2018-06-06`, `2022-09-01`.
    pub version: &'static str,
}

/// Where an account's credentials are read from.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret_id: SecretSource,
    pub secret_key: SecretSource,
    /// `X-TC-Token` of temporary credentials; an unset variable means long-lived keys.
    pub session_token: Option<SecretSource>,
}

impl Credentials {
    async fn load(&self) -> Result<(Secret, Secret, Option<Secret>), String> {
        let id = self.secret_id.load().await?;
        let key = self.secret_key.load().await?;
        let token = match &self.session_token {
            Some(src) => match src {
                // An unset token variable means long-lived keys, not an error.
                SecretSource::Env(var) if std::env::var_os(var).is_none() => None,
                _ => Some(src.load().await?),
            },
            None => None,
        };
        Ok((id, key, token))
    }

    /// Whether the key pair cannot be read now (checked without sending anything).
    pub fn missing(&self) -> bool {
        self.secret_id.check_present().is_err() || self.secret_key.check_present().is_err()
    }
}

/// A product's answer that carried no `Error`.
pub struct Call {
    pub status: u16,
    pub request_id: Option<String>,
    /// The `Response` object.
    pub response: Value,
}

/// Calls one product's API for one provider account.
pub struct Client {
    /// The provider account, for error messages.
    provider: String,
    endpoint: url::Url,
    /// `host[:port]` of the endpoint, as sent and signed.
    pub(crate) host: String,
    product: Product,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Client {
    pub fn new(
        provider: &str,
        endpoint: &url::Url,
        product: Product,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Client, String> {
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("endpoint {endpoint} has no host")),
        };
        Ok(Client {
            provider: provider.to_owned(),
            endpoint: endpoint.clone(),
            host,
            product,
            credentials,
            http: crate::purgers::api_client(timeout)?,
        })
    }

    pub fn credentials_missing(&self) -> bool {
        self.credentials.missing()
    }

    /// Calls `action` with `body`; the answer is the `Response` object, or a failure whose
    /// verdict `classify` gives for the provider's error code.
    pub async fn call(
        &self,
        action: &str,
        body: &Value,
        classify: &(dyn Fn(&str) -> Verdict + Sync),
    ) -> Result<Call, PurgeResponse> {
        let (id, key, token) = self.credentials.load().await.map_err(|e| {
            PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Credentials(format!("credentials for provider {}: {e}", self.provider)),
            )
        })?;
        let payload = serde_json::to_vec(body).map_err(|e| {
            PurgeResponse::failed(
                Verdict::Fatal,
                PurgeError::Request(format!("cannot encode request: {e}")),
            )
        })?;
        let timestamp = chrono::Utc::now().timestamp();
        let signed = sign::sign(
            key.expose(),
            &sign::SignInput {
                method: "POST",
                headers: &[
                    ("content-type", CONTENT_TYPE),
                    ("host", &self.host),
                    ("x-tc-action", action),
                ],
                payload: &payload,
                service: self.product.service,
                timestamp,
            },
        );
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .header("Content-Type", CONTENT_TYPE)
            .header("Host", &self.host)
            .header("X-TC-Action", action)
            .header("X-TC-Version", self.product.version)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("Authorization", sign::authorization(id.expose(), &signed));
        if let Some(token) = &token {
            req = req.header("X-TC-Token", token.expose());
        }
        let resp = req.body(payload).send().await.map_err(|e| {
            PurgeResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Transport(format!(
                    "{action} to {}: {}",
                    self.endpoint,
                    describe_transport_error(&e)
                )),
            )
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let resp_headers = resp.headers().clone();
        let text = crate::purgers::answer_text(resp).await.map_err(|e| {
            let mut r = PurgeResponse::failed(
                Verdict::RetryLater { after: wait },
                PurgeError::Transport(format!("{action}: reading the answer failed: {e}")),
            );
            r.http_status = Some(status.as_u16());
            r
        })?;
        let fail = |verdict: Verdict, code: Option<&str>, message: String| PurgeResponse {
            verdict,
            http_status: Some(status.as_u16()),
            request_id: None,
            task_id: None,
            error: Some(PurgeError::Answer {
                code: code.map(str::to_owned),
                message,
            }),
            failed: Vec::new(),
        };
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let Some(response) = parsed.as_ref().and_then(|v| v.get("Response")) else {
            // Not Tencent's answer: a proxy's page, a truncated or empty body, a redirect.
            // Whatever sent it may be gone next time: retried (up to max_attempts), with the
            // start of what came back in the log.
            let what = if status.is_redirection() {
                let to = redirect_target(&resp_headers);
                format!(
                    "{action}: HTTP {status} redirect to {to}: not followed (a redirect would \
                     send the signed call elsewhere); check `endpoint`"
                )
            } else {
                format!(
                    "{action}: HTTP {status} without a Tencent API answer (check `endpoint`): \
                     {:?}",
                    snippet(&text, 200)
                )
            };
            return Err(fail(Verdict::RetryLater { after: wait }, None, what));
        };
        let request_id = response
            .get("RequestId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(err) = response.get("Error") {
            let code = err.get("Code").and_then(Value::as_str).unwrap_or("Unknown");
            let message = err.get("Message").and_then(Value::as_str).unwrap_or("");
            let mut verdict = classify(code);
            if let Verdict::RetryLater { after } = &mut verdict {
                *after = after.or(wait);
            }
            let mut r = fail(
                verdict,
                Some(code),
                format!("{action}: {code}: {}", snippet(message, 300)),
            );
            r.request_id = request_id;
            return Err(r);
        }
        if !status.is_success() {
            let mut r = fail(
                Verdict::RetryLater { after: wait },
                None,
                format!("{action}: HTTP {status} with a success body"),
            );
            r.request_id = request_id;
            return Err(r);
        }
        Ok(Call {
            status: status.as_u16(),
            request_id,
            response: response.clone(),
        })
    }
}
