#!/usr/bin/env python3
"""Loopback stand-in for Google's OAuth 2.0 token endpoint and the Compute Engine API's
Cloud CDN invalidation (urlMaps.invalidateCache, globalOperations.get).

Token endpoint (POST /token; Google's "Using OAuth 2.0 for server to server applications"):
  - application/x-www-form-urlencoded with grant_type
    urn:ietf:params:oauth:grant-type:jwt-bearer (else 400 unsupported_grant_type) and an
    assertion (else 400 invalid_request);
  - the assertion is checked with Google's own library: google.auth.jwt.decode against the
    public key of the key id in its header (RS256 only), with the audience --audience
    (https://oauth2.googleapis.com/token, what Google requires and google-auth sends);
    a key the account does not have, or a bad signature: 400 invalid_grant "Invalid JWT
    Signature." (Google's words); a wrong iss: 400 invalid_grant "Invalid grant: account not
    found"; a disabled account: 400 invalid_grant "Robot is disabled."; iat/exp outside now
    (60 s skew) or exp - iat over 3600: 400 invalid_grant "Invalid JWT: Token must be a
    short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp
    values in the JWT claim." (Google's words); a scope without compute or cloud-platform:
    400 invalid_scope; a wrong aud: 400 invalid_grant (wording ours);
  - success: {"access_token": "ya29.…", "expires_in": --token-lifetime-s, "token_type":
    "Bearer"}.

Compute API (errors in Google's shape {"error": {"code", "message", "errors": [{"message",
"domain", "reason"}], "status"}}):
  - Authorization: Bearer <a token issued here, not expired or revoked> (else 401 authError
    UNAUTHENTICATED);
  - POST /compute/v1/projects/{project}/global/urlMaps/{urlMap}/invalidateCache: the
    project and URL map of --project/--url-map (else 404 notFound); --no-permission: 403
    forbidden "Required 'compute.urlMaps.invalidateCache' permission for …"; the body ONE
    CacheInvalidationRule (a JSON object with only host, path, cacheTags; path or cacheTags
    set): path starts with /, has no ? or #, * only as a final /*; host a host name with an
    optional port; cacheTags 1 to 10 non-empty strings without commas or whitespace (else
    400 invalid INVALID_ARGUMENT); the rate limit --rate-per-min invalidations in any 60 s
    (else 403 rateLimitExceeded "Rate Limit Exceeded"); success: 200 with an Operation
    (status RUNNING; DONE after --complete-after-s, or when told);
  - GET /compute/v1/projects/{project}/global/operations/{name}: the Operation (404
    notFound for others); --no-operations-permission: 403 forbidden.

Usage:
  python3 fake_gcp.py --port 0 --state DIR --project P --url-map M
      [--audience URL] [--token-lifetime-s 3600] [--rate-per-min 500]
      [--complete-after-s S] [--no-permission] [--no-operations-permission]
  python3 fake_gcp.py --self-check      (runs google-auth's own service_account.Credentials
                                         against a stand-in started here; prints the results)

At start it makes two throwaway RSA keys and writes DIR/key.json (the account's key, as
Google issues it, token_uri = --audience) and DIR/wrong-key.json (the same account, a key
it does not have). Prints "LISTENING <port>" first, serves on 127.0.0.1 until SIGTERM/SIGINT.

Control API (same port, JSON):
  GET  /__control/requests       every token or API call, in order (tokens masked)
  GET  /__control/invalidations  every invalidation accepted, in order
  GET  /__control/tokens         every access token issued: {"token", "n", "expires_at",
                                 "revoked", "scope"} (so tests can look for them in logs)
  POST /__control/fail           {"http_status", "reason", "message", "status", "count"}: the
                                 next API calls (after authentication) get that error; or
                                 {"http_status", "raw", "content_type", "count"}
  POST /__control/token_fail     {"http_status", "error", "error_description", "count"}
  POST /__control/complete       {"name": optional, "error": optional {"code", "message"}}:
                                 marks one or every running operation DONE (with that error)
  POST /__control/revoke         every token issued so far is refused from now on
  POST /__control/account        {"disabled": true|false}
  POST /__control/reset          forget requests, invalidations, faults; refill the rate
  GET  /__control/health         {"ok": true}
"""

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import exceptions as gexc
    from google.auth import jwt
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_gcp: needs google-auth and cryptography (see testkit/requirements.txt)")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES_OK = ("https://www.googleapis.com/auth/compute",
             "https://www.googleapis.com/auth/cloud-platform")
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
               "reasonable timeframe. Check your iat and exp values in the JWT claim.")
MAX_TAGS = 10
SKEW_S = 60


def new_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return secrets.token_hex(20), pem, public.decode("ascii")


def write_key(path, cfg, kid, pem):
    info = {
        "type": "service_account",
        "project_id": cfg.project,
        "private_key_id": kid,
        "private_key": pem,
        "client_email": cfg.client_email,
        "client_id": "1" + "".join(str(secrets.randbelow(10)) for _ in range(20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": cfg.audience,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + urllib.parse.quote(cfg.client_email),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    os.chmod(path, 0o600)
    return info


class ApiError(Exception):
    def __init__(self, code, reason, message, status):
        super().__init__(message)
        self.code, self.reason, self.message, self.status = code, reason, message, status

    def body(self):
        return {"error": {"code": self.code, "message": self.message,
                          "errors": [{"message": self.message, "domain": "global",
                                      "reason": self.reason}],
                          "status": self.status}}


def invalid(message):
    return ApiError(400, "invalid", message, "INVALID_ARGUMENT")


class OAuthError(Exception):
    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.keys = {}  # kid -> public PEM of the account's keys
        self.tokens = {}  # token -> {"n", "expires_at", "revoked", "scope"}
        self.disabled = False
        self.reset()

    def reset(self):
        self.requests = []
        self.invalidations = []
        self.operations = {}
        self.faults = deque()
        self.token_faults = deque()
        self.sent = deque()  # times of accepted invalidations (rate window)

    def pop(self, queue):
        if not queue:
            return None
        f = queue[0]
        f["count"] -= 1
        if f["count"] <= 0:
            queue.popleft()
        return f

    def tick(self):
        after = self.cfg.complete_after_s
        if after is None:
            return
        now = time.time()
        for op in self.operations.values():
            if op["status"] != "DONE" and now - op["_created"] >= after:
                finish(op, None)


def finish(op, error):
    op["status"] = "DONE"
    op["progress"] = 100
    op["endTime"] = rfc3339(time.time())
    if error:
        op["error"] = {"errors": [{"code": error.get("code", "INTERNAL_ERROR"),
                                   "message": error.get("message", "failed")}]}
        op["httpErrorStatusCode"] = 400
        op["httpErrorMessage"] = "BAD REQUEST"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000-00:00"


def public_op(op):
    return {k: v for k, v in op.items() if not k.startswith("_")}


# --- the token endpoint -------------------------------------------------------------------

def grant(state, headers, raw, rec):
    cfg = state.cfg
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    grant_type = (form.get("grant_type") or [""])[0]
    if grant_type != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", "Invalid grant_type: " + grant_type)
    assertion = (form.get("assertion") or [""])[0]
    if not assertion:
        raise OAuthError("invalid_request", "Missing required parameter: assertion")
    try:
        header = jwt.decode_header(assertion)
    except (ValueError, gexc.GoogleAuthError):
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    rec["jwt_header"] = header
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    with state.lock:
        keys = dict(state.keys)
        disabled = state.disabled
    kid = header.get("kid")
    if kid is not None and kid not in keys:
        rec["signature_ok"] = False
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    # Signature, aud, iat and exp, checked by Google's own library.
    try:
        claims = jwt.decode(assertion, certs=keys, audience=cfg.audience,
                            clock_skew_in_seconds=SKEW_S)
    except gexc.GoogleAuthError as e:
        text = str(e)
        rec["decode_error"] = text
        if "audience" in text:
            raise OAuthError("invalid_grant", f"Invalid JWT: the aud claim must be {cfg.audience}")
        if "Token used too early" in text or "Token expired" in text:
            raise OAuthError("invalid_grant", SHORT_LIVED)
        rec["signature_ok"] = False
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    except ValueError:
        rec["signature_ok"] = False
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    rec["signature_ok"] = True
    rec["claims"] = claims
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp <= iat:
        raise OAuthError("invalid_grant", SHORT_LIVED)
    if claims.get("iss") != cfg.client_email:
        raise OAuthError("invalid_grant", "Invalid grant: account not found")
    if disabled:
        raise OAuthError("invalid_grant", "Robot is disabled.")
    scopes = str(claims.get("scope", "")).split()
    if not any(s in SCOPES_OK for s in scopes):
        raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    token = "ya29." + secrets.token_urlsafe(48)
    with state.lock:
        n = len(state.tokens) + 1
        state.tokens[token] = {"n": n, "expires_at": time.time() + cfg.token_lifetime_s,
                               "revoked": False, "scope": " ".join(scopes)}
    rec["token_n"] = n
    return {"access_token": token, "expires_in": cfg.token_lifetime_s, "token_type": "Bearer"}


# --- the Compute API ----------------------------------------------------------------------

PATH_RE = re.compile(r"^/compute/v1/projects/([^/]+)/global/(urlMaps|operations)/([^/]+)(/invalidateCache)?$")
HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$")


def authenticate(state, headers, rec):
    auth = headers.get("authorization") or ""
    token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
    with state.lock:
        t = state.tokens.get(token)
    rec["token_n"] = t["n"] if t else None
    if t is None or t["revoked"] or time.time() >= t["expires_at"]:
        rec["token_refused"] = "unknown" if t is None else ("revoked" if t["revoked"] else "expired")
        raise ApiError(401, "authError",
                       "Request had invalid authentication credentials. Expected OAuth 2 access "
                       "token, login cookie or other valid authentication credential. See "
                       "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                       "UNAUTHENTICATED")


def check_rule(raw):
    try:
        rule = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise invalid("Invalid JSON payload received.")
    if not isinstance(rule, dict):
        raise invalid("Invalid JSON payload received. Expected a CacheInvalidationRule object "
                      "(one invalidation per call).")
    unknown = set(rule) - {"host", "path", "cacheTags"}
    if unknown:
        raise invalid(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\": "
                      "Cannot find field.")
    path, host, tags = rule.get("path"), rule.get("host"), rule.get("cacheTags")
    if path is None and not tags:
        raise invalid("Invalid value for field 'resource': a path or cacheTags is required.")
    if path is not None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise invalid(f"Invalid value for field 'resource.path': '{path}'. The path must "
                          "start with /.")
        if "?" in path or "#" in path:
            raise invalid(f"Invalid value for field 'resource.path': '{path}'. The path must not "
                          "contain ? or #.")
        star = path.find("*")
        if star != -1 and (star != len(path) - 1 or not path.endswith("/*")):
            raise invalid(f"Invalid value for field 'resource.path': '{path}'. * is allowed only "
                          "as the final character following a /.")
        if any(ord(c) < 33 or ord(c) > 126 for c in path):
            raise invalid(f"Invalid value for field 'resource.path': '{path}'.")
    if host is not None and (not isinstance(host, str) or not HOST_RE.match(host)):
        raise invalid(f"Invalid value for field 'resource.host': '{host}'.")
    if tags is not None:
        if not isinstance(tags, list) or not tags or len(tags) > MAX_TAGS:
            raise invalid(f"Invalid value for field 'resource.cacheTags': up to {MAX_TAGS} tags "
                          "can be specified in a single invalidation request.")
        for t in tags:
            if (not isinstance(t, str) or not t or "," in t
                    or any(ord(c) < 33 or ord(c) > 126 for c in t)):
                raise invalid(f"Invalid value for field 'resource.cacheTags': '{t}'.")
    return rule


def invalidate(state, project, url_map, raw, rec):
    cfg = state.cfg
    target = f"projects/{project}/global/urlMaps/{url_map}"
    if project != cfg.project or url_map != cfg.url_map:
        raise ApiError(404, "notFound", f"The resource '{target}' was not found", "NOT_FOUND")
    if cfg.no_permission:
        raise ApiError(403, "forbidden",
                       f"Required 'compute.urlMaps.invalidateCache' permission for '{target}'",
                       "PERMISSION_DENIED")
    rule = check_rule(raw)
    rec["rule"] = rule
    now = time.time()
    with state.lock:
        while state.sent and now - state.sent[0] >= 60.0:
            state.sent.popleft()
        if len(state.sent) >= cfg.rate_per_min:
            raise ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded", "PERMISSION_DENIED")
        state.sent.append(now)
        ms = int(now * 1000)
        name = f"operation-{ms}-{secrets.token_hex(6)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        op = {
            "kind": "compute#operation",
            "id": str(secrets.randbelow(10 ** 19)),
            "name": name,
            "operationType": "invalidateCache",
            "targetLink": f"{cfg.self_base}/compute/v1/{target}",
            "targetId": "4242424242424242424",
            "status": "RUNNING",
            "user": cfg.client_email,
            "progress": 0,
            "insertTime": rfc3339(now),
            "startTime": rfc3339(now),
            "selfLink": f"{cfg.self_base}/compute/v1/projects/{project}/global/operations/{name}",
            "_created": now,
        }
        state.operations[name] = op
        state.invalidations.append({"operation": name, "time": now, **rule})
        rec["operation"] = name
        return public_op(op)


def get_operation(state, project, name, rec):
    cfg = state.cfg
    target = f"projects/{project}/global/operations/{name}"
    if cfg.no_operations_permission:
        raise ApiError(403, "forbidden",
                       f"Required 'compute.globalOperations.get' permission for '{target}'",
                       "PERMISSION_DENIED")
    with state.lock:
        state.tick()
        op = state.operations.get(name) if project == cfg.project else None
        if op is None:
            raise ApiError(404, "notFound", f"The resource '{target}' was not found", "NOT_FOUND")
        rec["operation"] = name
        rec["operation_status"] = op["status"]
        return public_op(op)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        sys.stderr.write("[fake-gcp] " + (fmt % args) + "\n")

    def _send(self, status, payload, content_type="application/json; charset=UTF-8"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._dispatch(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(n))

    def _dispatch(self, raw):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/__control/"):
            fn = CONTROL.get((self.command, path))
            if fn is None:
                return self._send(404, {"error": "no such control route"})
            arg = json.loads(raw or b"{}")
            with self.state.lock:
                status, payload = fn(self.state, arg)
            return self._send(status, payload)
        headers = {k.lower(): v for k, v in self.headers.items()}
        masked = {k: ("Bearer ***" if k == "authorization" else v) for k, v in headers.items()}
        rec = {"time": time.time(), "method": self.command, "path": path, "headers": masked,
               "body": raw.decode("utf-8", "replace")}
        with self.state.lock:
            self.state.requests.append(rec)
        if path == "/token" and self.command == "POST":
            rec["kind"] = "token"
            return self._token(raw, headers, rec)
        rec["kind"] = "api"
        return self._api(path, raw, headers, rec)

    def _token(self, raw, headers, rec):
        with self.state.lock:
            fault = self.state.pop(self.state.token_faults)
        if fault:
            rec["status"] = fault.get("http_status", 500)
            return self._send(rec["status"], {"error": fault.get("error", "internal_failure"),
                                              "error_description": fault.get("error_description", "")})
        try:
            answer = grant(self.state, headers, raw, rec)
        except OAuthError as e:
            rec["status"], rec["error"] = e.status, f"{e.error}: {e.description}"
            return self._send(e.status, {"error": e.error, "error_description": e.description})
        rec["status"] = 200
        return self._send(200, answer)

    def _api(self, path, raw, headers, rec):
        m = PATH_RE.match(path)
        try:
            if not m:
                raise ApiError(404, "notFound", f"The requested URL {path} was not found.", "NOT_FOUND")
            project, collection, name, action = m.groups()
            authenticate(self.state, headers, rec)
            with self.state.lock:
                fault = self.state.pop(self.state.faults)
            if fault and "raw" in fault:
                rec["status"] = fault["http_status"]
                return self._send(fault["http_status"], fault["raw"].encode(),
                                  fault.get("content_type", "text/html"))
            if fault:
                raise ApiError(fault["http_status"], fault.get("reason", "backendError"),
                               fault.get("message", "Internal error"), fault.get("status", "INTERNAL"))
            if collection == "urlMaps" and action and self.command == "POST":
                answer = invalidate(self.state, project, name, raw, rec)
            elif collection == "operations" and not action and self.command == "GET":
                answer = get_operation(self.state, project, name, rec)
            else:
                raise ApiError(404, "notFound", f"The requested URL {path} was not found.", "NOT_FOUND")
        except ApiError as e:
            rec["status"], rec["reason"], rec["message"] = e.code, e.reason, e.message
            return self._send(e.code, e.body())
        rec["status"] = 200
        return self._send(200, answer)


def _control_fail(state, arg):
    arg.setdefault("count", 1)
    state.faults.append(arg)
    return 200, {"ok": True}


def _control_token_fail(state, arg):
    arg.setdefault("count", 1)
    state.token_faults.append(arg)
    return 200, {"ok": True}


def _control_complete(state, arg):
    done = 0
    for name, op in state.operations.items():
        if op["status"] != "DONE" and arg.get("name") in (None, name):
            finish(op, arg.get("error"))
            done += 1
    return 200, {"completed": done}


def _control_revoke(state, _):
    for t in state.tokens.values():
        t["revoked"] = True
    return 200, {"revoked": len(state.tokens)}


def _control_account(state, arg):
    state.disabled = bool(arg.get("disabled"))
    return 200, {"disabled": state.disabled}


def _control_reset(state, _):
    state.reset()
    return 200, {"ok": True}


CONTROL = {
    ("GET", "/__control/requests"): lambda s, _: (200, s.requests),
    ("GET", "/__control/invalidations"): lambda s, _: (200, s.invalidations),
    ("GET", "/__control/tokens"): lambda s, _: (200, [
        {"token": tok, **t} for tok, t in s.tokens.items()]),
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/token_fail"): _control_token_fail,
    ("POST", "/__control/complete"): _control_complete,
    ("POST", "/__control/revoke"): _control_revoke,
    ("POST", "/__control/account"): _control_account,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/health"): lambda s, _: (200, {"ok": True}),
}


def start(cfg):
    """Makes the keys, starts the server on a thread; returns (server, state)."""
    os.makedirs(cfg.state, exist_ok=True)
    cfg.client_email = f"edgepurge-purger@{cfg.project}.iam.gserviceaccount.com"
    state = State(cfg)
    kid, pem, public = new_key()
    state.keys[kid] = public
    write_key(os.path.join(cfg.state, "key.json"), cfg, kid, pem)
    other_kid, other_pem, _ = new_key()  # a key the account does not have
    write_key(os.path.join(cfg.state, "wrong-key.json"), cfg, other_kid, other_pem)
    Handler.state = state
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    cfg.self_base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return server, state


def self_check(cfg):
    """google-auth's own service-account client against this stand-in."""
    import tempfile
    from google.auth.transport.requests import AuthorizedSession, Request
    from google.oauth2 import service_account

    cfg.state = tempfile.mkdtemp(prefix="fake-gcp-")
    cfg.port = 0
    server, state = start(cfg)
    base = cfg.self_base
    scopes = ["https://www.googleapis.com/auth/compute"]

    def creds(name):
        with open(os.path.join(cfg.state, name), encoding="utf-8") as f:
            info = json.load(f)
        info["token_uri"] = base + "/token"  # where google-auth posts; aud stays Google's
        return service_account.Credentials.from_service_account_info(info, scopes=scopes)

    session = AuthorizedSession(creds("key.json"))
    url = f"{base}/compute/v1/projects/{cfg.project}/global/urlMaps/{cfg.url_map}/invalidateCache"
    r = session.post(url, json={"host": "cdn.example.com", "path": "/self-check.css"})
    print("official-invalidate", r.status_code, r.json().get("status"))
    op = r.json()["name"]
    r = session.get(f"{base}/compute/v1/projects/{cfg.project}/global/operations/{op}")
    print("official-operation", r.status_code, r.json().get("status"))
    r = session.post(url, json={"path": "/a*b"})
    print("bad-path", r.status_code, r.json()["error"]["errors"][0]["reason"])
    try:
        creds("wrong-key.json").refresh(Request())
        print("wrong-key accepted")
    except gexc.RefreshError as e:
        print("wrong-key", e.args[0])
    with state.lock:
        state.disabled = True
    try:
        creds("key.json").refresh(Request())
        print("disabled accepted")
    except gexc.RefreshError as e:
        print("disabled", e.args[0])
    tokens = [r for r in state.requests if r["kind"] == "token"]
    print("assertion-claims", " ".join(sorted(tokens[0]["claims"])))
    print("assertion-aud", tokens[0]["claims"]["aud"])
    server.shutdown()
    server.server_close()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state", help="directory for key.json and wrong-key.json")
    p.add_argument("--project", default="edgepurge-test")
    p.add_argument("--url-map", default="web-map")
    p.add_argument("--audience", default="https://oauth2.googleapis.com/token")
    p.add_argument("--token-lifetime-s", type=int, default=3600)
    p.add_argument("--rate-per-min", type=int, default=500)
    p.add_argument("--complete-after-s", type=float, default=None)
    p.add_argument("--no-permission", action="store_true")
    p.add_argument("--no-operations-permission", action="store_true")
    p.add_argument("--self-check", action="store_true")
    cfg = p.parse_args(argv)
    if cfg.self_check:
        return self_check(cfg)
    if not cfg.state:
        p.error("--state is required")
    server, _ = start(cfg)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-gcp] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
