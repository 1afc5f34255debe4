#!/usr/bin/env python3
"""Loopback stand-in for the Cloudflare cache purge API (client/v4).

Serves, under /client/v4 as api.cloudflare.com does:

  POST /client/v4/zones/{zone_id}/purge_cache        delete cached content
  POST /client/v4/zones/{zone_id}/invalidate_cache   mark it stale (soft purge, revalidate)

and checks every request the way Cloudflare documents (apis.md §C, §J.2):

  * `Authorization: Bearer <token>`: no header is 400 (9106); a header that is not
    `Bearer <token>` is 400 (6003 "Invalid request headers" with error_chain 6111); an
    unknown token is 401 (10000 "Authentication error"); a known token without the Cache
    Purge permission on the zone is 403 (10000 "Authentication error");
  * the zone id in the path: not 32 hex characters is 400 (7003 "Could not route to …,
    perhaps your object identifier is invalid?" + 7000 "No route for that URI"); a zone the
    account does not have is 404 (7003);
  * the JSON body holds exactly one purge mode: `files` (full http(s) URLs as strings, or
    {"url", "headers": {name: value}} objects), `tags`, `hosts`, `prefixes` (host/path, no
    scheme, query or fragment, at most 31 path separators) or `purge_everything: true`;
  * items per request: `files` at most 100 (500 on Enterprise), the others at most 100;
  * the per-account token buckets: single-file purges counted in URLs per second, tag /
    host / prefix / everything requests in a bucket of their own (Free: 5 a minute, 25
    deep). An empty bucket answers 429 (971 "Please wait and consider throttling your request
    speed") with `Retry-After` (seconds, rounded up); a refused request takes no tokens.

Answers use Cloudflare's envelope: {"success": true, "errors": [], "messages": [],
"result": {"id": "<32 hex>"}} or {"success": false, "errors": [{"code", "message"}],
"messages": [], "result": null}, with a `cf-ray` header. The codes for a malformed body
(1012) and for too many items (1134) are this stand-in's choice: Cloudflare does not document
them, only that the message says what is wrong (e.g. more than 100 items).

Usage:
  python3 fake_cloudflare.py --port 0 --token TOKEN --zone ZONE [--zone ZONE ...]
      [--read-only-token TOKEN] [--plan free|pro|business|enterprise]
      [--max-files N] [--url-rate N] [--bulk-per-minute N] [--bulk-bucket N] [--quiet]
  python3 fake_cloudflare.py --self-check
      (starts the stand-in and calls it through the official `cloudflare` SDK, with its
      `base_url`; exits non-zero on any surprise)

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until SIGTERM/SIGINT.
One log line per request goes to stderr (never the token).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests  every API call received, in order (authorization masked)
  GET  /__control/purges    every purge accepted: id, zone, action, mode, items
  POST /__control/fail      {"status", "code", "message", "count", "retry_after"}: the next
                            `count` API calls fail so; or {"status", "raw", "content_type",
                            "count"}: a raw answer
  POST /__control/limits    {"bulk_per_minute", "bulk_bucket", "url_rate"}: new buckets, full
  POST /__control/reset     forget requests, purges and faults; buckets full again
  GET  /__control/health    {"ok": true}
"""

import argparse
import collections
import json
import math
import re
import secrets
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Cloudflare's published limits per plan (developers.cloudflare.com/cache/how-to/purge-cache):
# files per request, URLs per second, tag/host/prefix requests per minute, that bucket's size.
PLANS = {
    "free": (100, 800, 5, 25),
    "pro": (100, 1500, 300, 25),
    "business": (100, 1500, 600, 50),
    "enterprise": (500, 3000, 3000, 500),
}
MAX_ITEMS = 100
MAX_PREFIX_SEPARATORS = 31
MODES = ("files", "tags", "hosts", "prefixes", "purge_everything")
ROUTE_RE = re.compile(r"^/client/v4/zones/([^/]*)/(purge_cache|invalidate_cache)$")
ZONE_RE = re.compile(r"^[0-9a-f]{32}$")
MASKED_HEADERS = ("authorization", "x-auth-key")


class ApiError(Exception):
    """A Cloudflare error answer."""

    def __init__(self, status, errors, headers=None):
        super().__init__(errors[0][1])
        self.status = status
        self.errors = errors  # [(code, message, chain)]
        self.headers = headers or {}

    def body(self):
        errors = []
        for code, message, chain in self.errors:
            e = {"code": code, "message": message}
            if chain:
                e["error_chain"] = [{"code": c, "message": m} for c, m in chain]
            errors.append(e)
        return {"success": False, "errors": errors, "messages": [], "result": None}


def error(status, code, message, chain=None, headers=None):
    return ApiError(status, [(code, message, chain or [])], headers)


def bad_request(message):
    return error(400, 1012, message)


class Bucket:
    """A token bucket: `size` tokens, refilled at `rate` per second."""

    def __init__(self, rate, size):
        self.rate, self.size = float(rate), float(size)
        self.tokens, self.at = float(size), time.monotonic()

    def take(self, n):
        """Takes `n` tokens, or returns the seconds until there are enough (taking none)."""
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        cfg = self.cfg
        self.requests = []
        self.purges = []
        self.faults = collections.deque()  # [entry, remaining]
        # Single-file purges: URLs per second, a bucket one second deep (a moving average).
        self.url_bucket = Bucket(cfg.url_rate, cfg.url_rate)
        self.bulk_bucket = Bucket(cfg.bulk_per_minute / 60.0, cfg.bulk_bucket)

    def pop_fault(self):
        if not self.faults:
            return None
        head = self.faults[0]
        head[1] -= 1
        if head[1] <= 0:
            self.faults.popleft()
        return head[0]


# --------------------------------------------------------------------------
# Checks, in Cloudflare's order: route, credentials, body, limits
# --------------------------------------------------------------------------
def check_route(cfg, path):
    m = ROUTE_RE.match(path)
    if not m:
        raise error(404, 7000, "No route for that URI")
    zone, action = m.groups()
    if not ZONE_RE.match(zone):
        raise ApiError(400, [
            (7003, f"Could not route to {path}, perhaps your object identifier is invalid?", []),
            (7000, "No route for that URI", []),
        ])
    return zone, action


def check_token(cfg, headers, zone):
    auth = headers.get("Authorization")
    if auth is None:
        raise error(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
    m = re.fullmatch(r"Bearer ([A-Za-z0-9_\-.]+)", auth)
    if not m:
        raise error(400, 6003, "Invalid request headers",
                    chain=[(6111, "Invalid format for Authorization header")])
    token = m.group(1)
    if token == cfg.read_only_token:
        raise error(403, 10000, "Authentication error")
    if token != cfg.token:
        raise error(401, 10000, "Authentication error")
    if zone not in cfg.zones:
        raise error(404, 7003,
                    f"Could not route to /zones/{zone}, perhaps your object identifier is invalid?")


def check_url(u):
    if not isinstance(u, str) or not u:
        raise bad_request("files must be URLs (strings) or {\"url\", \"headers\"} objects")
    parts = urlsplit(u)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"Invalid url {u!r}: a full URL with http or https is required")
    if any(ord(c) <= 32 or ord(c) >= 127 for c in u):
        raise bad_request(f"Invalid url {u!r}: encode it (UTF-8, percent-encoded)")


def check_file(f):
    if isinstance(f, str):
        check_url(f)
        return f
    if isinstance(f, dict) and set(f) <= {"url", "headers"} and "url" in f:
        check_url(f["url"])
        headers = f.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise bad_request("files[].headers must map header names to strings")
        return f["url"]
    raise bad_request("files must be URLs (strings) or {\"url\", \"headers\"} objects")


def check_prefix(p):
    if not isinstance(p, str) or not p:
        raise bad_request("prefixes must be non-empty strings")
    if "://" in p:
        raise bad_request(f"Invalid prefix {p!r}: do not include the scheme")
    if "?" in p or "#" in p:
        raise bad_request(f"Invalid prefix {p!r}: no query string or fragment")
    if p.startswith("/") or any(ord(c) <= 32 or ord(c) >= 127 for c in p):
        raise bad_request(f"Invalid prefix {p!r}: host/path, encoded")
    if p.count("/") > MAX_PREFIX_SEPARATORS:
        raise bad_request(f"Invalid prefix {p!r}: at most {MAX_PREFIX_SEPARATORS} path "
                          "separators are allowed")


def check_tag(t):
    if not isinstance(t, str) or not t or any(c in t for c in ", \t\r\n"):
        raise bad_request(f"Invalid tag {t!r}: tags are non-empty, without spaces or commas")


def check_body(cfg, raw):
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad_request("Malformed JSON in request body")
    if not isinstance(body, dict):
        raise bad_request("Malformed JSON in request body")
    modes = [k for k in body if k in MODES]
    unknown = [k for k in body if k not in MODES]
    if len(modes) != 1 or unknown:
        raise bad_request('Request must contain one of "purge_everything", "files", "tags", '
                          '"hosts" or "prefixes"')
    mode = modes[0]
    value = body[mode]
    if mode == "purge_everything":
        if value is not True:
            raise bad_request("purge_everything must be true")
        return mode, []
    if not isinstance(value, list) or not value:
        raise bad_request(f"{mode} must be a non-empty list")
    limit = cfg.max_files if mode == "files" else MAX_ITEMS
    if len(value) > limit:
        raise error(400, 1134, f"You cannot purge more than {limit} {mode} in one request "
                               f"(got {len(value)})")
    if mode == "files":
        items = [check_file(f) for f in value]
    else:
        check = {"tags": check_tag, "prefixes": check_prefix, "hosts": check_tag}[mode]
        for v in value:
            check(v)
        items = list(value)
    return mode, items


def take_tokens(state, mode, items):
    bucket, need = ((state.url_bucket, len(items)) if mode == "files"
                    else (state.bulk_bucket, 1))
    wait = bucket.take(need)
    if wait > 0:
        raise error(429, 971, "Please wait and consider throttling your request speed",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))})


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare"
    state = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        if self.state.cfg.quiet:
            return
        sys.stderr.write(f"[fake-cloudflare] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

    def _send(self, status, payload, content_type="application/json", headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch(None)

    def do_POST(self):
        self._dispatch(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def do_DELETE(self):
        self._dispatch(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _dispatch(self, raw):
        path = self.path.split("?", 1)[0]
        if path.startswith("/__control/"):
            return self._control(path, raw)
        self._api(path, raw or b"")

    def _control(self, path, raw):
        route = CONTROL_ROUTES.get((self.command, path))
        if route is None:
            self._log(404)
            return self._send(404, {"error": "not found", "path": path})
        try:
            arg = json.loads(raw.decode("utf-8") or "{}") if raw is not None else None
            status, payload = route(self.state, arg)
        except (ValueError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": f"bad control request: {exc}"}
        self._log(status)
        self._send(status, payload)

    def _api(self, path, raw):
        state = self.state
        ray = secrets.token_hex(8) + "-LHR"
        rec = {"time": time.time(), "method": self.command, "path": self.path,
               "headers": {k.lower(): ("***" if k.lower() in MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "body": raw.decode("utf-8", "replace"), "json": None, "action": None,
               "mode": None, "items": None, "status": None, "error_codes": [],
               "purge_id": None, "throttled": False, "ray": ray}
        try:
            rec["json"] = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        with state.lock:
            state.requests.append(rec)
        headers = {"cf-ray": ray}
        try:
            if self.command != "POST":
                raise error(405, 10405, "Method not allowed")
            zone, action = check_route(state.cfg, path)
            rec["action"] = action
            check_token(state.cfg, self.headers, zone)
            with state.lock:
                fault = state.pop_fault()
            if fault is not None:
                status = int(fault.get("status", 500))
                if "raw" in fault:
                    rec["status"] = status
                    self._log(status, "raw fault")
                    return self._send(status, str(fault["raw"]).encode("utf-8"),
                                      fault.get("content_type", "text/html"), headers)
                extra = {}
                if fault.get("retry_after") is not None:
                    extra["Retry-After"] = str(fault["retry_after"])
                raise error(status, int(fault.get("code", 10001)),
                            fault.get("message", "injected failure"), headers=extra)
            mode, items = check_body(state.cfg, raw)
            rec["mode"], rec["items"] = mode, items
            with state.lock:
                take_tokens(state, mode, items)
                purge_id = secrets.token_hex(16)
                state.purges.append({"id": purge_id, "zone": zone, "action": action,
                                     "mode": mode, "items": items, "time": time.time()})
            rec["purge_id"], rec["status"] = purge_id, 200
            self._log(200, f"{action} {mode} x{len(items)} id={purge_id}")
            return self._send(200, {"success": True, "errors": [], "messages": [],
                                    "result": {"id": purge_id}}, headers=headers)
        except ApiError as err:
            rec["status"] = err.status
            rec["error_codes"] = [c for c, _, _ in err.errors]
            rec["throttled"] = err.status == 429
            headers.update(err.headers)
            self._log(err.status, f"codes={rec['error_codes']}")
            return self._send(err.status, err.body(), headers=headers)


def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_purges(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.purges))


def _control_fail(state, arg):
    entry = dict(arg)
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_limits(state, arg):
    cfg = state.cfg
    with state.lock:
        for key in ("bulk_per_minute", "bulk_bucket", "url_rate"):
            if arg.get(key) is not None:
                setattr(cfg, key, float(arg[key]))
        state.url_bucket = Bucket(cfg.url_rate, cfg.url_rate)
        state.bulk_bucket = Bucket(cfg.bulk_per_minute / 60.0, cfg.bulk_bucket)
    return 200, {"ok": True}


def _control_reset(state, _):
    with state.lock:
        state.reset()
    return 200, {"ok": True}


CONTROL_ROUTES = {
    ("GET", "/__control/requests"): _control_requests,
    ("GET", "/__control/purges"): _control_purges,
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/limits"): _control_limits,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def start(cfg):
    """Starts the stand-in in a thread; returns the server."""
    Handler.state = State(cfg)
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return server


# --------------------------------------------------------------------------
# Self-check with the official SDK
# --------------------------------------------------------------------------
SELF_TOKEN = "self-check-token-EXAMPLE"
SELF_ZONE = "023e105f4ecef8ad9ca31a8372d0c353"


def self_check():
    """Calls the stand-in through the official `cloudflare` SDK (pip install cloudflare):
    what the SDK sends must be accepted, its errors must come out as the SDK's own
    exception types with Cloudflare's codes. Prints one line per check."""
    try:
        import cloudflare
    except ImportError:
        sys.exit("fake_cloudflare: --self-check needs the `cloudflare` SDK "
                 "(see testkit/requirements.txt)")
    cfg = parse_args(["--port", "0", "--token", SELF_TOKEN, "--zone", SELF_ZONE,
                      "--read-only-token", "read-only-token-EXAMPLE", "--quiet"])
    server = start(cfg)
    base = f"http://127.0.0.1:{server.server_address[1]}/client/v4"

    def client(token=SELF_TOKEN):
        return cloudflare.Cloudflare(api_token=token, base_url=base, max_retries=0)

    def expect_error(what, call, exc_type, status, code):
        try:
            call()
        except exc_type as e:
            body = e.body if isinstance(e.body, dict) else {}
            codes = [x.get("code") for x in body.get("errors", [])]
            assert e.status_code == status, (what, e.status_code)
            assert code in codes, (what, codes)
            print(f"{what}: {status} {code}")
            return e
        raise AssertionError(f"{what}: accepted")

    c = client()
    z = SELF_ZONE
    r = c.cache.purge(zone_id=z, files=["https://www.example.com/css/a%20b.css"])
    assert r is not None and len(r.id) == 32, r
    print("files: purged", "id" if r.id else "")
    c.cache.purge(zone_id=z, files=[{"url": "https://www.example.com/x.png",
                                     "headers": {"CF-Device-Type": "mobile",
                                                 "CF-IPCountry": "ES"}}])
    print("files with headers: purged")
    c.cache.purge(zone_id=z, tags=["product-42", "img"])
    print("tags: purged")
    c.cache.purge(zone_id=z, prefixes=["www.example.com/img/2024/"])
    print("prefixes: purged")
    c.cache.purge(zone_id=z, hosts=["www.example.com"])
    print("hosts: purged")
    r = c.cache.invalidate(zone_id=z, tags=["product-42"])
    assert r is not None and r.id, r
    print("invalidate tags: invalidated")
    purges = Handler.state.purges
    assert [p["action"] for p in purges] == ["purge_cache"] * 5 + ["invalidate_cache"], purges
    assert purges[1]["items"] == ["https://www.example.com/x.png"], purges[1]
    sent = Handler.state.requests[0]
    assert sent["headers"]["authorization"] == "***", sent["headers"]
    assert sent["path"] == f"/client/v4/zones/{z}/purge_cache", sent["path"]

    expect_error("wrong token", lambda: client("wrong-token").cache.purge(zone_id=z, tags=["a"]),
                 cloudflare.AuthenticationError, 401, 10000)
    expect_error("token without Cache Purge",
                 lambda: client("read-only-token-EXAMPLE").cache.purge(zone_id=z, tags=["a"]),
                 cloudflare.PermissionDeniedError, 403, 10000)
    expect_error("unknown zone",
                 lambda: c.cache.purge(zone_id="f" * 32, tags=["a"]),
                 cloudflare.NotFoundError, 404, 7003)
    expect_error("malformed zone id",
                 lambda: c.cache.purge(zone_id="example.com", tags=["a"]),
                 cloudflare.BadRequestError, 400, 7003)
    e = expect_error("101 tags",
                     lambda: c.cache.purge(zone_id=z, tags=[f"t{i}" for i in range(101)]),
                     cloudflare.BadRequestError, 400, 1134)
    assert "more than 100" in str(e), str(e)
    expect_error("prefix with scheme",
                 lambda: c.cache.purge(zone_id=z, prefixes=["https://www.example.com/a"]),
                 cloudflare.BadRequestError, 400, 1012)
    deep = "www.example.com" + "/d" * 32
    expect_error("prefix of 32 separators", lambda: c.cache.purge(zone_id=z, prefixes=[deep]),
                 cloudflare.BadRequestError, 400, 1012)
    expect_error("two purge modes",
                 lambda: c.cache.purge(zone_id=z, tags=["a"], extra_body={"files": ["https://a/"]}),
                 cloudflare.BadRequestError, 400, 1012)
    # The Free plan's tag/prefix bucket: 25 deep; 4 were spent above (refusals take none),
    # 21 more go, then 429.
    for i in range(21):
        c.cache.purge(zone_id=z, tags=[f"burst{i}"])
    e = expect_error("tag bucket empty", lambda: c.cache.purge(zone_id=z, tags=["one-more"]),
                     cloudflare.RateLimitError, 429, 971)
    after = int(e.response.headers.get("retry-after", "0"))
    assert 1 <= after <= 12, after
    print(f"Retry-After: {after} s")
    server.shutdown()
    print("self-check ok")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", help="the API token with Cache Purge on the zones")
    p.add_argument("--read-only-token", default=None,
                   help="a valid token without the Cache Purge permission (answers 403)")
    p.add_argument("--zone", action="append", default=[], help="a zone id the account has")
    p.add_argument("--plan", choices=sorted(PLANS), default="free")
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--url-rate", type=float, default=None, help="URLs per second")
    p.add_argument("--bulk-per-minute", type=float, default=None,
                   help="tag/host/prefix/everything requests per minute")
    p.add_argument("--bulk-bucket", type=float, default=None)
    p.add_argument("--self-check", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no log line per request")
    cfg = p.parse_args(argv)
    files, url_rate, bulk_rate, bulk_bucket = PLANS[cfg.plan]
    cfg.max_files = cfg.max_files or files
    cfg.url_rate = cfg.url_rate or url_rate
    cfg.bulk_per_minute = cfg.bulk_per_minute or bulk_rate
    cfg.bulk_bucket = cfg.bulk_bucket or bulk_bucket
    cfg.zones = set(cfg.zone)
    if not cfg.self_check and not (cfg.token and cfg.zones):
        p.error("--token and at least one --zone are required")
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    if cfg.self_check:
        self_check()
        return 0
    server = start(cfg)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-cloudflare] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
