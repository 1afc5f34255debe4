#!/usr/bin/env python3
"""Loopback stand-in for Akamai's Fast Purge API v3 (CCU v3) behind the EdgeGrid API gateway.

Checks every call the way Akamai does (apis.md §D.2; techdocs.akamai.com/purge-cache):

Gateway (EdgeGrid, errors typed https://problems.luna.akamaiapis.net/-/pep-authn/...):
  - the Host header is the API client's host (--host);
  - the Authorization header `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;
    nonce=…;signature=…` with the configured client and access tokens (else 400 "Invalid
    authorization client token" / "… access token", as Akamai answers);
  - the timestamp `YYYYMMDDTHH:MM:SS+0000` within --max-skew-s of now (else 400 "Invalid
    timestamp", as Akamai answers);
  - a nonce used once only (Akamai: the nonce is "used to detect replayed request
    messages"; the answer's wording here, 401 "Nonce already used", is ours);
  - the signature, recomputed independently with the official `edgegrid-python` package
    (akamai.edgegrid.EdgeGridAuthHeaders.make_auth_header over the request rebuilt from what
    was received, as https on the API host; else 401 "The signature does not match");
  - --no-grant: every call is 403 pep-authz "The client does not have the grant needed for
    the request" (an API client without the "CCU APIs" grant).

Fast Purge (errors application/api-problem+json with httpStatus, title, detail, supportId,
describedBy):
  - POST /ccu/v3/{invalidate|delete}/{url|tag|cpcode}[/{production|staging}] (else 404 /
    405), Content-Type application/json (else 415), a Content-Length (else 411);
  - a body of at most 50,000 bytes (else 413);
  - {"objects": [...]} of one object type only: URLs (http/https, ASCII) for url, cache tags
    (RFC 7230 tokens without `*`, at most 128 characters) for tag, integers for cpcode (else
    400); "hostname" is allowed with url;
  - URLs on hosts of the account (--hosts) else 403 "unauthorized arl" with the URL as
    detail; CP codes of the account (--cpcodes) else 403 "unauthorized cpcode" with the code
    as detail (the whole request fails: "If any object you specify fails to purge, the entire
    request fails");
  - the token buckets, per account: requests (burst 100, 50/s), URLs (10,000, 12,000/min),
    tags (5,000, 500/min), CP codes (300, 30/min). A request takes one request token, then
    one object token per object; without enough, nothing is taken and the answer is 429
    ("Rate Limit exceeded", "URL Rate Limit exceeded", "TAG …", "CPCODE …") with
    rateLimit, rateLimitCurrentRequestSize, rateLimitRemaining and the X-RateLimit-* headers;
  - success: 201 {"httpStatus": 201, "detail": "Request accepted", "estimatedSeconds": 5,
    "purgeId": …, "supportId": …} (estimatedSeconds from --estimated-seconds).

Usage:
  python3 fake_akamai.py --port 0 --host HOST --client-token CT --client-secret CS
      --access-token AT [--hosts h1,h2] [--cpcodes 1,2] [--max-skew-s 120] [--no-grant]
      [--estimated-seconds 5]
      [--url-burst N --url-per-min N --tag-burst N --tag-per-min N
       --cpcode-burst N --cpcode-per-min N --request-burst N --requests-per-s N]

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until
SIGTERM/SIGINT. One log line per request goes to stderr (never a secret).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests   every API call received, in order (Authorization masked)
  GET  /__control/purges     every purge accepted, in order
  POST /__control/fail       {"http_status", "title", "detail", "count", "headers"}: the next
                             API calls (after authentication) get that problem; or
                             {"http_status", "raw", "content_type", "count"}: a raw answer
  POST /__control/reset      forget requests, purges, faults; refill the buckets
  GET  /__control/health     {"ok": true}
"""

import argparse
import collections
import datetime as dt
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

try:
    import requests
    from akamai.edgegrid.edgegrid import EdgeGridAuthHeaders
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_akamai: needs edgegrid-python (see testkit/requirements.txt)")

MAX_BODY = 50_000
MAX_TAG_LEN = 128
TAG_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'+-.^_`|~")
PATH_RE = re.compile(r"^/ccu/v3/(invalidate|delete)/(url|tag|cpcode)(?:/(production|staging))?$")
AUTH_RE = re.compile(r"^EG1-HMAC-SHA256 (.*)$")
GATEWAY = "https://problems.luna.akamaiapis.net/-/"
DESCRIBED_BY = "https://techdocs.akamai.com/purge-cache/reference/api-errors"
OBJECT_TITLE = {"url": "URL", "tag": "TAG", "cpcode": "CPCODE"}


class Problem(Exception):
    """An api-problem+json answer."""

    def __init__(self, status, title, detail="", extra=None, headers=None, gateway=None):
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.extra, self.headers, self.gateway = extra or {}, headers or {}, gateway

    def body(self, support_id, host, path):
        if self.gateway:
            doc = {"type": GATEWAY + self.gateway, "title": self.title, "status": self.status,
                   "detail": self.detail, "instance": f"https://{host}{path}", "method": "POST",
                   "requestId": support_id[:8],
                   "requestTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        else:
            doc = {"supportId": support_id, "title": self.title, "httpStatus": self.status,
                   "detail": self.detail, "describedBy": DESCRIBED_BY}
        doc.update(self.extra)
        return json.dumps(doc).encode("utf-8")


class Bucket:
    """Akamai's token bucket: starts full, refills continuously, never above its size."""

    def __init__(self, size, per_s):
        self.size, self.per_s = float(size), float(per_s)
        self.tokens, self.at = float(size), time.monotonic()

    def level(self):
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        return self.tokens

    def take(self, n):
        if self.level() + 1e-9 < n:
            return False
        self.tokens -= n
        return True

    def give(self, n):
        self.tokens = min(self.size, self.tokens + n)

    def seconds_to_full(self):
        return (self.size - self.level()) / self.per_s if self.per_s else 0.0


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        c = self.cfg
        self.requests = []
        self.purges = []
        self.faults = collections.deque()
        self.nonces = {}
        self.buckets = {
            "request": Bucket(c.request_burst, c.requests_per_s),
            "url": Bucket(c.url_burst, c.url_per_min / 60.0),
            "tag": Bucket(c.tag_burst, c.tag_per_min / 60.0),
            "cpcode": Bucket(c.cpcode_burst, c.cpcode_per_min / 60.0),
        }

    def pop_fault(self):
        if not self.faults:
            return None
        head = self.faults[0]
        head[1] -= 1
        if head[1] <= 0:
            self.faults.popleft()
        return head[0]

    def rate_headers(self, kind):
        req, obj = self.buckets["request"], self.buckets[kind]
        return {
            "X-RateLimit-Limit": str(int(req.size)),
            "X-RateLimit-Limit-Per-Second": f"{req.per_s:.2f}",
            "X-RateLimit-Remaining": str(int(req.level())),
            "X-RateLimit-Seconds-To-Refresh-Limit": f"{req.seconds_to_full():.2f}",
            "X-RateLimit-Limit-Objects": str(int(obj.size)),
            "X-RateLimit-Limit-Per-Second-Objects": f"{obj.per_s:.2f}",
            "X-RateLimit-Remaining-Objects": str(int(obj.level())),
            "X-RateLimit-Seconds-To-Refresh-Limit-Objects": f"{obj.seconds_to_full():.2f}",
        }


# --------------------------------------------------------------------------
# The gateway: EdgeGrid, checked with the official edgegrid-python
# --------------------------------------------------------------------------
def authn(detail, status=401):
    kind = "pep-authn/deny" if status == 401 else "pep-authn/request-error"
    title = "Not authorized" if status == 401 else "Bad request"
    return Problem(status, title, detail, gateway=kind)


def authenticate(state, path, headers, raw_body, rec):
    cfg = state.cfg
    host = (headers.get("Host") or "").strip().lower()
    if host != cfg.host:
        raise authn("Invalid host header: not this API client's host", 400)
    m = AUTH_RE.match((headers.get("Authorization") or "").strip())
    if not m:
        raise authn("Invalid authorization header")
    fields = {}
    for part in m.group(1).split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip()] = v
    for need in ("client_token", "access_token", "timestamp", "nonce", "signature"):
        if not fields.get(need):
            raise authn(f"Invalid authorization header: no {need}")
    if fields["client_token"] != cfg.client_token:
        raise authn("Invalid authorization client token", 400)
    if fields["access_token"] != cfg.access_token:
        raise authn("Invalid authorization access token", 400)
    try:
        when = dt.datetime.strptime(fields["timestamp"], "%Y%m%dT%H:%M:%S+0000").replace(
            tzinfo=dt.timezone.utc)
    except ValueError:
        raise authn("Invalid timestamp", 400)
    now = dt.datetime.now(dt.timezone.utc)
    if abs((now - when).total_seconds()) > cfg.max_skew_s:
        raise authn("Invalid timestamp", 400)
    # The signature, as the official client computes it for this request sent to
    # https://HOST/PATH (Akamai's API is https only, whatever carried it here).
    request = requests.Request("POST", f"https://{cfg.host}{path}", data=raw_body,
                               headers={"Content-Type": headers.get("Content-Type") or ""})
    prepared = request.prepare()
    signer = EdgeGridAuthHeaders(cfg.client_token, cfg.client_secret, cfg.access_token)
    expected = signer.make_auth_header(prepared, fields["timestamp"], fields["nonce"])
    if expected.rsplit("signature=", 1)[1] != fields["signature"]:
        raise authn("The signature does not match")
    rec["signature_ok"] = True
    with state.lock:
        cutoff = time.time() - 2 * cfg.max_skew_s
        for n in [n for n, t in state.nonces.items() if t < cutoff]:
            del state.nonces[n]
        if fields["nonce"] in state.nonces:
            raise authn("Nonce already used")
        state.nonces[fields["nonce"]] = time.time()
    if cfg.no_grant:
        raise Problem(403, "Forbidden", "The client does not have the grant needed for the request",
                      gateway="pep-authz/deny")


# --------------------------------------------------------------------------
# Fast Purge
# --------------------------------------------------------------------------
def check_body(cfg, kind, raw_body):
    if len(raw_body) > MAX_BODY:
        raise Problem(413, "Request Entity Too Large",
                      f"The request body is {len(raw_body)} bytes; the limit is 50,000 bytes.")
    try:
        doc = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "bad request", f"The request body is not valid JSON: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
        raise Problem(400, "bad request", "The request body needs an `objects` array.")
    allowed = {"objects", "hostname"} if kind == "url" else {"objects"}
    extra = set(doc) - allowed
    if extra:
        raise Problem(400, "bad request", f"Unknown members: {sorted(extra)}")
    objects = doc["objects"]
    if not objects:
        raise Problem(400, "bad request", "The `objects` array is empty.")
    for o in objects:
        if kind == "cpcode":
            if not isinstance(o, int) or isinstance(o, bool) or o <= 0:
                raise Problem(400, "bad request",
                              f"CP code {json.dumps(o)} is not an integer: one object type per "
                              f"request")
            if cfg.cpcodes and o not in cfg.cpcodes:
                raise Problem(403, "unauthorized cpcode", str(o))
            continue
        if not isinstance(o, str):
            raise Problem(400, "bad request",
                          f"{json.dumps(o)} is not a string: one object type per request")
        if kind == "tag":
            if not o or len(o) > MAX_TAG_LEN or any(c not in TAG_CHARS for c in o):
                raise Problem(400, "invalid cache tag", f"Invalid cache tag '{o}'")
            continue
        base = doc.get("hostname")
        url = o if base is None else f"https://{base}{o}"
        bad = next((c for c in url if ord(c) > 126 or ord(c) <= 32), None)
        if bad is not None:
            raise Problem(400, "bad URL", f"Invalid or malformed URL '{url}': contains "
                          f"character {bad!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Problem(400, "bad URL", f"Invalid or malformed URL '{url}'")
        if cfg.hosts and parts.hostname not in cfg.hosts:
            raise Problem(403, "unauthorized arl", o)
    return objects


def purge(state, action, kind, network, raw_body, rec):
    """Called with state.lock held: the whole check-and-take is one step."""
    cfg = state.cfg
    objects = check_body(cfg, kind, raw_body)
    rec["objects"] = objects
    req, obj = state.buckets["request"], state.buckets[kind]
    if not req.take(1):
        raise Problem(429, "Rate Limit exceeded", "",
                      {"rateLimit": int(req.size), "rateLimitCurrentRequestSize": 1,
                       "rateLimitRemaining": int(req.level())}, state.rate_headers(kind))
    if not obj.take(len(objects)):
        req.give(1)  # a denied request consumes nothing
        raise Problem(429, f"{OBJECT_TITLE[kind]} Rate Limit exceeded", "",
                      {"rateLimit": int(obj.size),
                       "rateLimitCurrentRequestSize": len(objects),
                       "rateLimitRemaining": int(obj.level())}, state.rate_headers(kind))
    purge_id = "e" + OBJECT_TITLE[kind][0].lower() + "p-" + uuid.uuid4().hex[:22]
    state.purges.append({"purge_id": purge_id, "action": action, "type": kind,
                         "network": network, "objects": objects, "time": time.time()})
    return purge_id


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAkamai/1.0"
    state = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        sys.stderr.write(f"[fake-akamai] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

    def _send(self, status, payload, content_type, headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def _dispatch(self):
        length = self.headers.get("Content-Length")
        raw = self.rfile.read(int(length)) if length else b""
        path = self.path.split("?", 1)[0]
        if path.startswith("/__control/"):
            return self._control(path, raw)
        return self._api(path, raw, length is not None)

    def _control(self, path, raw):
        route = CONTROL_ROUTES.get((self.command, path))
        if route is None:
            return self._send(404, {"error": "not found"}, "application/json")
        try:
            arg = json.loads(raw.decode("utf-8") or "{}") if self.command == "POST" else None
            status, payload = route(self.state, arg)
        except (ValueError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": f"bad control request: {exc}"}
        self._send(status, payload, "application/json")

    def _api(self, path, raw, has_length):
        state = self.state
        support_id = "edcp-" + uuid.uuid4().hex[:22]
        rec = {"time": time.time(), "method": self.command, "path": self.path,
               "headers": {k.lower(): ("***" if k.lower() == "authorization" else v)
                           for k, v in self.headers.items()},
               "body": raw.decode("utf-8", "replace"), "body_bytes": len(raw),
               "signature_ok": False, "status": None, "title": None, "detail": None,
               "objects": None, "action": None, "type": None, "network": None,
               "purge_id": None, "support_id": support_id}
        with state.lock:
            state.requests.append(rec)
        headers, ctype = {}, "application/api-problem+json"
        kind = None
        try:
            authenticate(state, path, self.headers, raw, rec)
            try:  # recorded before any check or fault, for tests to compare attempts
                sent = json.loads(raw.decode("utf-8"))
                if isinstance(sent, dict) and isinstance(sent.get("objects"), list):
                    rec["objects"] = sent["objects"]
            except (UnicodeDecodeError, ValueError):
                pass
            m = PATH_RE.match(path)
            if not m:
                raise Problem(404, "not found", f"No Fast Purge operation at {path}")
            action, kind, network = m.group(1), m.group(2), m.group(3) or "production"
            rec["action"], rec["type"], rec["network"] = action, kind, network
            if self.command != "POST":
                raise Problem(405, "method not allowed", f"{self.command} is not allowed")
            if not has_length:
                raise Problem(411, "length required", "Content-Length is required")
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                raise Problem(415, "unsupported media type",
                              "Content-Type must be application/json")
            with state.lock:
                fault = state.pop_fault()
                if fault is not None:
                    if "raw" in fault:
                        status = int(fault.get("http_status", 502))
                        rec["status"], rec["title"] = status, f"HTTP{status}"
                        self._log(status, "raw fault")
                        return self._send(status, str(fault["raw"]).encode("utf-8"),
                                          str(fault.get("content_type", "text/html")),
                                          dict(fault.get("headers") or {}))
                    raise Problem(int(fault.get("http_status", 500)), fault.get("title", "fault"),
                                  fault.get("detail", ""), fault.get("extra"),
                                  dict(fault.get("headers") or {}))
                purge_id = purge(state, action, kind, network, raw, rec)
                headers = state.rate_headers(kind)
            status, ctype = 201, "application/json"
            payload = json.dumps({"httpStatus": 201, "detail": "Request accepted",
                                  "estimatedSeconds": self.state.cfg.estimated_seconds,
                                  "purgeId": purge_id,
                                  "supportId": support_id}).encode("utf-8")
            rec["status"], rec["purge_id"] = 201, purge_id
        except Problem as p:
            status, payload = p.status, p.body(support_id, self.state.cfg.host, path)
            headers = dict(p.headers)
            rec["status"], rec["title"], rec["detail"] = p.status, p.title, p.detail
        self._log(status, f"title={rec['title'] or 'OK'} objects="
                          f"{len(rec['objects']) if rec['objects'] else 0}")
        self._send(status, payload, ctype, headers)


def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_purges(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.purges))


def _control_fail(state, arg):
    entry = dict(arg)
    if "title" not in entry and "raw" not in entry:
        raise ValueError("need `title` or `raw`")
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_reset(state, _):
    with state.lock:
        state.reset()
    return 200, {"ok": True}


CONTROL_ROUTES = {
    ("GET", "/__control/requests"): _control_requests,
    ("GET", "/__control/purges"): _control_purges,
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", required=True, help="the API client's host")
    p.add_argument("--client-token", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--access-token", required=True)
    p.add_argument("--hosts", default="", help="URL hostnames of the account; empty = any")
    p.add_argument("--cpcodes", default="", help="CP codes of the account; empty = any")
    p.add_argument("--max-skew-s", type=float, default=120.0)
    p.add_argument("--estimated-seconds", type=int, default=5,
                   help="the estimatedSeconds of a 201 (Akamai's example: 5)")
    p.add_argument("--no-grant", action="store_true", help="the client lacks CCU APIs")
    p.add_argument("--request-burst", type=float, default=100)
    p.add_argument("--requests-per-s", type=float, default=50)
    p.add_argument("--url-burst", type=float, default=10_000)
    p.add_argument("--url-per-min", type=float, default=12_000)
    p.add_argument("--tag-burst", type=float, default=5_000)
    p.add_argument("--tag-per-min", type=float, default=500)
    p.add_argument("--cpcode-burst", type=float, default=300)
    p.add_argument("--cpcode-per-min", type=float, default=30)
    cfg = p.parse_args(argv)
    cfg.host = cfg.host.lower()
    cfg.hosts = {h.strip().lower() for h in cfg.hosts.split(",") if h.strip()}
    cfg.cpcodes = {int(c) for c in cfg.cpcodes.split(",") if c.strip()}

    Handler.state = State(cfg)
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    worker.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-akamai] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
