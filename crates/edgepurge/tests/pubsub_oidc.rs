//! Cloud Storage notifications from a Pub/Sub push subscription with authentication: the
//! webhook accepts a push whose Google-signed OIDC token (`[server.pubsub_oidc]`) checks out,
//! refuses every other token with the reason and stores nothing, keeps accepting the webhook
//! token, and answers 503 (so Pub/Sub retries) while Google's keys cannot be fetched.
//!
//! Google's keys are served on loopback by `testkit/fake_google_certs.py`, which generates
//! them at start and signs tokens with Google's official library (google-auth), so the tokens
//! are made independently of the Rust code that checks them.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions panic with the test

mod common;

use common::*;
use edgepurge_testkit::http;
use edgepurge_testkit::process::Proc;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AUD: &str = "https://edgepurge.example.com/v1/events";
const SA: &str = "pubsub-push@my-project.iam.gserviceaccount.com";

/// The fixture's bucket (`my-bucket`) purged on the test CDN domain.
const GCS_RULE: &str = r#"
[[rules]]
name = "gcs"
bucket = "my-bucket"
events = ["created", "removed"]
domains = ["https://cdn.example.com"]
provider = "tencent"
"#;

/// The key-and-token stand-in (`testkit/fake_google_certs.py`).
struct FakeGoogle {
    addr: SocketAddr,
    _proc: Proc,
}

impl FakeGoogle {
    /// Starts on `port` (0: any), keeping its keys in `state` (a restart serves the same).
    fn start(state: &Path, port: u16) -> FakeGoogle {
        let mut cmd = Command::new(edgepurge_testkit::python());
        cmd.arg(edgepurge_testkit::repo_root().join("testkit/fake_google_certs.py"))
            .args(["--port", &port.to_string()])
            .arg("--state")
            .arg(state);
        let (proc, line) =
            Proc::spawn_until("fake_google_certs", cmd, Duration::from_secs(30), |l| {
                l.starts_with("LISTENING ")
            });
        let port: u16 = line["LISTENING ".len()..].trim().parse().unwrap();
        FakeGoogle {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _proc: proc,
        }
    }

    fn jwks_url(&self) -> String {
        format!("http://{}/oauth2/v3/certs", self.addr)
    }

    fn control(&self, path: &str, body: Value) -> Value {
        let r = http::post_json(self.addr, path, &body).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    /// A token signed RS256 by google-auth with `key` ("google", "other" or a rotated kid).
    fn sign(&self, claims: &Value, key: &str) -> String {
        self.control("/__control/sign", json!({"claims": claims, "key": key}))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token signed by `key` under the key id `kid`.
    fn sign_as(&self, claims: &Value, key: &str, kid: &str) -> String {
        self.control(
            "/__control/sign",
            json!({"claims": claims, "key": key, "kid": kid}),
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A forged token: `alg` none (no signature) or HS256 keyed with Google's public key.
    fn forge(&self, claims: &Value, alg: &str) -> String {
        self.control("/__control/forge", json!({"claims": claims, "alg": alg}))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn fetches(&self) -> u64 {
        http::get(self.addr, "/__control/stats").unwrap().json()["fetches"]
            .as_u64()
            .unwrap()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims Pub/Sub puts in a push token, with `changes` (null removes a claim).
fn claims(changes: Value) -> Value {
    let now = now();
    let mut c = json!({
        "aud": AUD, "azp": "113774264463038321964", "email": SA, "email_verified": true,
        "exp": now + 3600, "iat": now, "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn config(
    fake: &edgepurge_testkit::tencent::FakeTencent,
    jwks_url: &str,
    refetch_s: u64,
) -> String {
    format!(
        "{}\n[server.pubsub_oidc]\naudience = \"{AUD}\"\nservice_account = \"{SA}\"\n\
         jwks_url = \"{jwks_url}\"\nrefetch_interval_s = {refetch_s}\n",
        tencent_config(fake, "", GCS_RULE)
    )
}

/// Starts edgepurge with its log in `server.log` of its directory.
fn serve_logged(ep: &Edgepurge) -> Server {
    let log = std::fs::File::create(ep.dir.path().join("server.log")).unwrap();
    ep.serve_with_stderr(Stdio::from(log))
}

fn server_log(ep: &Edgepurge) -> String {
    std::fs::read_to_string(ep.dir.path().join("server.log")).unwrap()
}

fn push() -> Vec<u8> {
    fixture("gcs-pubsub-push.json")
}

#[test]
fn a_push_with_a_valid_token_is_queued_and_purged() {
    let state = tempfile::tempdir().unwrap();
    let google = FakeGoogle::start(state.path(), 0);
    let tencent = fake_tencent();
    let ep = Edgepurge::new(&config(&tencent, &google.jwks_url(), 30));
    let server = serve_logged(&ep);

    let token = google.sign(&claims(json!({})), "google");
    let r = server.post(&push(), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 1, "{}", r.text());
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "succeeded", "{log:?}");
    let purged = tencent.purged();
    assert_eq!(
        purged,
        vec!["https://cdn.example.com/photos/%E7%8C%AB%20cat+1%2050%2525.jpg"],
        "the object name is encoded once"
    );
    // The keys were fetched once and are kept (Cache-Control max-age).
    let again = google.sign(&claims(json!({"sub": "again"})), "google");
    assert_eq!(server.post(&push(), Some(&again)).status, 200);
    assert_eq!(google.fetches(), 1);

    // The webhook token keeps working beside push tokens, as a bearer or as ?token=.
    assert_eq!(server.post(&push(), Some(WEBHOOK_TOKEN)).status, 200);
    let r = http::request(
        server.addr,
        "POST",
        &format!("/v1/events?token={WEBHOOK_TOKEN}"),
        "x",
        &[("Authorization", &format!("Bearer {token}"))],
        &push(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Without either, nothing gets in, not even from loopback.
    let r = server.post(&push(), None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.text().contains("Pub/Sub push subscription"),
        "{}",
        r.text()
    );

    drop(server);
    let text = server_log(&ep);
    assert!(
        text.contains("POST /v1/events accepts Pub/Sub push tokens"),
        "{text}"
    );
    assert!(text.contains("fetched Google's signing keys"), "{text}");
    assert!(!text.contains(&token), "the token is never logged");
}

#[test]
fn bad_tokens_are_refused_with_the_reason_and_nothing_is_stored() {
    let state = tempfile::tempdir().unwrap();
    let google = FakeGoogle::start(state.path(), 0);
    let tencent = fake_tencent();
    let ep = Edgepurge::new(&config(&tencent, &google.jwks_url(), 30));
    let server = serve_logged(&ep);
    let now = now();
    let google_kid = {
        let t = google.sign(&claims(json!({})), "google");
        segment_json(t.split('.').next().unwrap())["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let cases: Vec<(&str, String, String)> = vec![
        (
            "wrong audience",
            google.sign(
                &claims(json!({"aud": "https://other.example.com/v1/events"})),
                "google",
            ),
            format!(
                "token audience \"https://other.example.com/v1/events\" is not the configured \
                 audience \"{AUD}\""
            ),
        ),
        (
            "wrong service account",
            google.sign(
                &claims(json!({"email": "intruder@evil-project.iam.gserviceaccount.com"})),
                "google",
            ),
            format!(
                "token email \"intruder@evil-project.iam.gserviceaccount.com\" is not the \
                 configured service account \"{SA}\""
            ),
        ),
        (
            "email not verified",
            google.sign(&claims(json!({"email_verified": false})), "google"),
            "is not verified".into(),
        ),
        (
            "not Google's issuer",
            google.sign(
                &claims(json!({"iss": "https://evil.example.com"})),
                "google",
            ),
            "token issuer \"https://evil.example.com\" is not Google".into(),
        ),
        (
            "expired",
            google.sign(
                &claims(json!({"iat": now - 7200, "exp": now - 3600})),
                "google",
            ),
            "the token expired at ".into(),
        ),
        (
            "issued in the future",
            google.sign(
                &claims(json!({"iat": now + 600, "exp": now + 4200})),
                "google",
            ),
            "the token is issued in the future".into(),
        ),
        (
            "signed by another key",
            google.sign(&claims(json!({})), "other"),
            "signed by an unknown key".into(),
        ),
        (
            "another key under Google's key id",
            google.sign_as(&claims(json!({})), "other", &google_kid),
            "the signature does not verify with Google's key".into(),
        ),
        (
            "alg none",
            google.forge(&claims(json!({})), "none"),
            "token algorithm \"none\" is not RS256".into(),
        ),
        (
            "HS256 keyed with Google's public key",
            google.forge(&claims(json!({})), "HS256"),
            "token algorithm \"HS256\" is not RS256".into(),
        ),
        (
            "malformed",
            "eyJhbGciOiJSUzI1NiJ9.e30.@@@".into(),
            "malformed token".into(),
        ),
        (
            "huge",
            format!("{}.{}.{}", "a".repeat(6000), "b".repeat(6000), "c"),
            "more than the 8192".into(),
        ),
    ];
    for (what, token, want) in &cases {
        let r = server.post(&push(), Some(token));
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
        let err = r.json()["error"].as_str().unwrap().to_owned();
        assert!(
            err.starts_with("the Pub/Sub push token is refused: "),
            "{what}: {err}"
        );
        assert!(
            err.contains(want.as_str()),
            "{what}: {err:?} lacks {want:?}"
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            signature.len() < 10 || !err.contains(signature),
            "{what}: token echoed"
        );
    }
    assert!(ep.log(&[]).is_empty(), "a refused push stores nothing");
    assert!(tencent.purged().is_empty());

    drop(server);
    let text = server_log(&ep);
    // The first refusal is logged for the operator (later ones are counted, not logged).
    assert!(
        text.contains("refused a caller: Pub/Sub push token: token audience"),
        "{text}"
    );
    for (_, token, _) in &cases {
        let payload = token.split('.').nth(1).unwrap_or_default();
        assert!(!text.contains(payload), "a token was logged");
    }
}

/// The JSON of a token's base64url segment.
fn segment_json(segment: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn made_up_key_ids_do_not_make_edgepurge_hammer_google_but_a_new_key_is_fetched() {
    let state = tempfile::tempdir().unwrap();
    let google = FakeGoogle::start(state.path(), 0);
    let tencent = fake_tencent();
    let ep = Edgepurge::new(&config(&tencent, &google.jwks_url(), 3));
    let server = ep.serve();
    let good = google.sign(&claims(json!({})), "google");
    assert_eq!(server.post(&push(), Some(&good)).status, 200);
    assert_eq!(google.fetches(), 1);

    let start = Instant::now();
    for i in 0..30 {
        let t = google.sign_as(&claims(json!({})), "other", &format!("made-up-{i}"));
        let r = server.post(&push(), Some(&t));
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(
            r.text().contains("signed by an unknown key"),
            "{}",
            r.text()
        );
    }
    let allowed = 1 + 1 + start.elapsed().as_secs() / 3;
    assert!(
        google.fetches() <= allowed,
        "{} fetches for 30 made-up key ids (at most {allowed})",
        google.fetches()
    );

    // Google rotates: a key published after the last fetch is fetched on first sight (once
    // the refetch interval has passed).
    let kid = google.control("/__control/rotate", json!({}))["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(3100));
    let before = google.fetches();
    let rotated = google.sign(&claims(json!({})), &kid);
    let r = server.post(&push(), Some(&rotated));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(google.fetches(), before + 1);
    assert_eq!(ep.log(&[]).len(), 2);
}

#[test]
fn while_googles_keys_cannot_be_fetched_pushes_get_503_and_then_recover() {
    let state = tempfile::tempdir().unwrap();
    let port = edgepurge_testkit::free_port();
    let google = FakeGoogle::start(state.path(), port);
    let jwks_url = google.jwks_url();
    let token = google.sign(&claims(json!({})), "google");
    let tencent = fake_tencent();
    let ep = Edgepurge::new(&config(&tencent, &jwks_url, 1));
    let server = ep.serve();

    // The key server answers an error.
    google.control("/__control/status", json!({"http_status": 503}));
    let r = server.post(&push(), Some(&token));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let err = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains(&format!(
            "cannot check the Pub/Sub push token now: Google's signing keys cannot be fetched \
             from {jwks_url}: answered HTTP 503"
        )),
        "{err}"
    );
    assert!(err.ends_with("retry later"), "{err}");

    // The key server is down.
    drop(google);
    std::thread::sleep(Duration::from_millis(1100));
    let r = server.post(&push(), Some(&token));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains(": cannot connect"), "{}", r.text());
    // Within the refetch interval the failure is answered without trying again.
    let r = server.post(&push(), Some(&token));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        ep.log(&[]).is_empty(),
        "nothing stored while the token cannot be checked"
    );

    // Back (same keys, same port): the next push after the interval gets in.
    let google = FakeGoogle::start(state.path(), port);
    let r = edgepurge_testkit::wait_for(Duration::from_secs(10), "a push accepted", || {
        let r = server.post(&push(), Some(&token));
        (r.status != 503).then_some(r)
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 1);
    assert_eq!(google.fetches(), 1);
    let log = ep.settle(Duration::from_secs(20));
    assert_eq!(log[0]["status"], "succeeded", "{log:?}");
}
