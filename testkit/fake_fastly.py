#!/usr/bin/env python3
"""Loopback stand-in for the Fastly purge API (api.fastly.com).

Serves, as api.fastly.com does (apis.md §D.1):

  POST /purge/{cached_url}                       purge one URL (host/path, no scheme)
  POST /service/{service_id}/purge               batch surrogate-key purge: JSON body
                                                 {"surrogate_keys": [...]} or the header
                                                 `Surrogate-Key: k1 k2 k3`
  POST /service/{service_id}/purge/{key}         purge one surrogate key

and checks every request the way Fastly documents:

  * `Fastly-Key: <API token>`: missing or unknown is 401 {"msg": "Provided credentials are
    missing or invalid"}; a known token without the purge_select scope is 403. URL purges
    are checked too: the service is modelled with authenticated purging on
    (`Fastly-Purge-Requires-Auth`), as Fastly recommends;
  * the service id of a key purge: unknown is 404 {"msg": "Record not found", "detail":
    "Cannot find 'service'"};
  * the cached URL: `host/path` with a host name (letters, digits, `-`, `.`), no scheme, no
    blanks or raw non-ASCII;
  * surrogate keys: printable ASCII 0x21-0x7E, at most 1,024 bytes each, at most 256 per
    batch request; the JSON body, when sent, must be an object with a list of strings;
  * `Fastly-Soft-Purge` (any value, "1" by convention) makes the purge soft (recorded).

Answers: a URL or single-key purge 200 {"status": "ok", "id": "<purge id>"}; a batch purge
200 {"<key>": "<purge id>", ...}; errors {"msg": ..., "detail": ...}. The texts of 400 and
403 answers and the 429 body are this stand-in's (Fastly documents the statuses and the
`msg`/`detail` shape, not those texts). Throttling (injected through the control API)
answers 429 with `Fastly-RateLimit-Remaining: 0` and `Fastly-RateLimit-Reset` (Unix
seconds).

Usage:
  python3 fake_fastly.py --port 0 --token TOKEN --service ID [--service ID ...]
      [--read-only-token TOKEN] [--quiet]
  python3 fake_fastly.py --self-check
      (starts the stand-in and calls it through the official `fastly` SDK (fastly-py) with
      its `host`; exits non-zero on any surprise)

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until SIGTERM/SIGINT.
One log line per request goes to stderr (never the token).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests  every API call received, in order (Fastly-Key masked)
  GET  /__control/purges    every purge accepted: id, kind, url or key, service, soft
  POST /__control/fail      {"status", "count", "msg", "detail", "reset_in"}: the next
                            `count` API calls fail so (429 with reset_in: the rate-limit
                            headers); or {"status", "raw", "content_type", "count"}
  POST /__control/reset     forget requests, purges and faults
  GET  /__control/health    {"ok": true}
"""

import argparse
import collections
import itertools
import json
import math
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_KEYS = 256
MAX_KEY_BYTES = 1024
KEY_RE = re.compile(r"^[\x21-\x7e]+$")
HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
SERVICE_PURGE_RE = re.compile(r"^/service/([^/]+)/purge(?:/(.+))?$")
MASKED_HEADERS = ("fastly-key",)


class ApiError(Exception):
    """A Fastly error answer."""

    def __init__(self, status, msg, detail=None, headers=None):
        super().__init__(msg)
        self.status, self.msg, self.detail = status, msg, detail
        self.headers = headers or {}

    def body(self):
        out = {"msg": self.msg}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def bad_request(detail):
    return ApiError(400, "Bad request", detail)


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.ids = itertools.count(974124)
        self.reset()

    def reset(self):
        self.requests = []
        self.purges = []
        self.faults = collections.deque()  # [entry, remaining]

    def pop_fault(self):
        if not self.faults:
            return None
        head = self.faults[0]
        head[1] -= 1
        if head[1] <= 0:
            self.faults.popleft()
        return head[0]

    def purge_id(self):
        # Fastly's shape: <number>-<unix time>-<serial>.
        return f"108-{int(time.time())}-{next(self.ids)}"


# --------------------------------------------------------------------------
# Checks, in Fastly's order: credentials, route, body
# --------------------------------------------------------------------------
def check_token(cfg, headers):
    token = headers.get("Fastly-Key")
    if token is None or token not in (cfg.token, cfg.read_only_token):
        raise ApiError(401, "Provided credentials are missing or invalid")
    if token != cfg.token:
        raise ApiError(403, "Forbidden",
                       "the token lacks the purge_select scope this purge needs")


def check_service(cfg, service_id):
    if service_id not in cfg.services:
        raise ApiError(404, "Record not found", "Cannot find 'service'")


def check_key(key):
    if not isinstance(key, str) or not key:
        raise bad_request("surrogate keys must be non-empty strings")
    if not KEY_RE.match(key):
        raise bad_request(f"invalid surrogate key {key!r}: printable ASCII without blanks only")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise bad_request(f"surrogate key of {len(key)} bytes: at most {MAX_KEY_BYTES}")


def check_cached_url(cached):
    if not cached:
        raise bad_request("no URL to purge")
    if "://" in cached or cached.split("/", 1)[0].endswith(":"):
        raise bad_request(f"{cached!r}: give host and path without the scheme")
    if any(ord(c) <= 32 or ord(c) >= 127 for c in cached):
        raise bad_request(f"{cached!r}: encode the URL (UTF-8, percent-encoded)")
    host = cached.split("/", 1)[0].split("?", 1)[0]
    if not HOST_RE.match(host):
        raise bad_request(f"{cached!r}: {host!r} is not a host name")
    return host.lower()


def batch_keys(headers, raw):
    """The keys of a batch purge: the JSON body's, else the Surrogate-Key header's."""
    if raw:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad_request("malformed JSON in the request body")
        if not isinstance(body, dict) or not isinstance(body.get("surrogate_keys"), list):
            raise bad_request('the body must be {"surrogate_keys": [...]}')
        keys, how = body["surrogate_keys"], "json"
    elif headers.get("Surrogate-Key") is not None:
        keys, how = headers.get("Surrogate-Key").split(" "), "header"
        keys = [k for k in keys if k != ""]
    else:
        raise bad_request("no surrogate keys: send a JSON body or a Surrogate-Key header")
    if not keys:
        raise bad_request("no surrogate keys")
    if len(keys) > MAX_KEYS:
        raise bad_request(f"too many surrogate keys: {len(keys)}, at most {MAX_KEYS} per "
                          "request")
    for k in keys:
        check_key(k)
    return keys, how


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fastly"
    state = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        if self.state.cfg.quiet:
            return
        sys.stderr.write(f"[fake-fastly] {self.command} {self.path} -> {status} {detail}\n")
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

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self._dispatch(None)

    def do_POST(self):
        self._dispatch(self._body())

    def do_PURGE(self):
        self._dispatch(self._body())

    def do_PUT(self):
        self._dispatch(self._body())

    def _dispatch(self, raw):
        path = self.path.split("?", 1)[0]
        if path.startswith("/__control/"):
            return self._control(path, raw)
        self._api(raw or b"")

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

    def _route(self):
        """(kind, service, target) of the API call, from the raw request target."""
        if self.path.startswith("/purge/"):
            return "url", None, self.path[len("/purge/"):]
        m = SERVICE_PURGE_RE.match(self.path.split("?", 1)[0])
        if m:
            service, key = m.groups()
            return ("key", service, key) if key is not None else ("keys", service, None)
        raise ApiError(404, "Not found")

    def _api(self, raw):
        state = self.state
        soft = self.headers.get("Fastly-Soft-Purge") is not None
        rec = {"time": time.time(), "method": self.command, "path": self.path,
               "headers": {k.lower(): ("***" if k.lower() in MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "body": raw.decode("utf-8", "replace"), "json": None, "kind": None,
               "cached_url": None, "host": None, "keys": None, "keys_from": None,
               "service": None, "soft": soft, "status": None, "msg": None,
               "detail": None, "purge_ids": None, "throttled": False}
        try:
            rec["json"] = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        with state.lock:
            state.requests.append(rec)
        try:
            kind, service, target = self._route()
            rec["kind"], rec["service"] = kind, service
            if self.command != "POST":
                raise ApiError(405, "Method not allowed",
                               f"{self.command} is not allowed here: use POST")
            check_token(state.cfg, self.headers)
            with state.lock:
                fault = state.pop_fault()
            if fault is not None:
                status = int(fault.get("status", 500))
                if "raw" in fault:
                    rec["status"] = status
                    self._log(status, "raw fault")
                    return self._send(status, str(fault["raw"]).encode("utf-8"),
                                      fault.get("content_type", "text/html"))
                headers = {}
                if status == 429:
                    reset = math.ceil(time.time() + float(fault.get("reset_in", 1)))
                    headers = {"Fastly-RateLimit-Remaining": "0",
                               "Fastly-RateLimit-Reset": str(reset)}
                    rec["reset"] = reset
                raise ApiError(status, fault.get("msg", "injected failure"),
                               fault.get("detail"), headers)
            if kind == "url":
                rec["cached_url"] = target
                rec["host"] = check_cached_url(target)
                with state.lock:
                    pid = state.purge_id()
                    state.purges.append({"id": pid, "kind": "url", "url": target,
                                         "service": None, "soft": soft, "time": time.time()})
                rec["purge_ids"], rec["status"] = [pid], 200
                self._log(200, f"url {target} soft={soft} id={pid}")
                return self._send(200, {"status": "ok", "id": pid})
            check_service(state.cfg, service)
            if kind == "key":
                keys, how = [target], "path"
                check_key(target)
            else:
                keys, how = batch_keys(self.headers, raw)
            rec["keys"], rec["keys_from"] = keys, how
            ids = {}
            with state.lock:
                for k in keys:
                    pid = ids.get(k) or state.purge_id()
                    ids[k] = pid
                    state.purges.append({"id": pid, "kind": "key", "key": k,
                                         "service": service, "soft": soft,
                                         "time": time.time()})
            rec["purge_ids"], rec["status"] = list(ids.values()), 200
            self._log(200, f"{len(keys)} key(s) soft={soft}")
            if kind == "key":
                return self._send(200, {"status": "ok", "id": ids[target]})
            return self._send(200, ids)
        except ApiError as err:
            rec["status"], rec["msg"], rec["detail"] = err.status, err.msg, err.detail
            rec["throttled"] = err.status == 429
            self._log(err.status, err.msg)
            return self._send(err.status, err.body(), headers=err.headers)


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
SELF_TOKEN = "self-check-fastly-token-EXAMPLE"
SELF_SERVICE = "SU1Z0isxPaozGVKXdv0eY"


def self_check():
    """Calls the stand-in through Fastly's official Python SDK (pip install fastly): what the
    SDK sends must be accepted and answered in the shapes its models read; its refusals must
    come out as the SDK's ApiException with Fastly's status and error body. Prints one line
    per check."""
    try:
        import fastly
        from fastly.api import purge_api
    except ImportError:
        sys.exit("fake_fastly: --self-check needs the `fastly` SDK (see testkit/requirements.txt)")
    cfg = parse_args(["--port", "0", "--token", SELF_TOKEN, "--service", SELF_SERVICE,
                      "--read-only-token", "read-only-token-EXAMPLE", "--quiet"])
    server = start(cfg)
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def api(token=SELF_TOKEN):
        conf = fastly.Configuration(host=base)
        conf.api_token = token
        return purge_api.PurgeApi(fastly.ApiClient(conf))

    def expect_error(what, call, status, msg):
        try:
            call()
        except fastly.ApiException as e:
            body = json.loads(e.body or "{}")
            assert e.status == status, (what, e.status, e.body)
            assert body.get("msg") == msg, (what, body)
            print(f"{what}: {status} {msg}")
            return e
        raise AssertionError(f"{what}: accepted")

    p = api()
    r = p.purge_single_url(cached_url="www.example.com/img/a%20b.png")
    assert r.status == "ok" and r.id, r
    print("url: purged id")
    sent = Handler.state.requests[-1]
    assert sent["path"] == "/purge/www.example.com/img/a%20b.png", sent["path"]
    assert sent["headers"]["fastly-key"] == "***", sent["headers"]
    r = p.purge_single_url(cached_url="www.example.com/x.css", fastly_soft_purge=1)
    assert r.status == "ok", r
    assert Handler.state.requests[-1]["soft"] is True
    print("url soft: purged")
    r = p.purge_tag(service_id=SELF_SERVICE, surrogate_key="product-42")
    assert r.status == "ok" and r.id, r
    print("key: purged id")
    r = p.bulk_purge_tag(service_id=SELF_SERVICE, surrogate_key="k1 k2 k3")
    ids = r.to_dict() if hasattr(r, "to_dict") else dict(r)
    assert sorted(ids) == ["k1", "k2", "k3"], ids
    assert Handler.state.requests[-1]["keys_from"] == "header"
    print("keys (header): purged 3")
    r = p.bulk_purge_tag(service_id=SELF_SERVICE, fastly_soft_purge=1,
                         purge_response=fastly.model.purge_response.PurgeResponse(
                             surrogate_keys=["j1", "j2"]))
    ids = r.to_dict() if hasattr(r, "to_dict") else dict(r)
    assert sorted(ids) == ["j1", "j2"], ids
    sent = Handler.state.requests[-1]
    assert sent["keys_from"] == "json" and sent["soft"] is True, sent
    assert sent["json"] == {"surrogate_keys": ["j1", "j2"]}, sent["json"]
    print("keys (json) soft: purged 2")

    expect_error("wrong token", lambda: api("wrong-token").purge_tag(
        service_id=SELF_SERVICE, surrogate_key="a"), 401,
        "Provided credentials are missing or invalid")
    expect_error("url with wrong token",
                 lambda: api("wrong-token").purge_single_url(cached_url="www.example.com/"),
                 401, "Provided credentials are missing or invalid")
    expect_error("token without purge_select",
                 lambda: api("read-only-token-EXAMPLE").purge_tag(
                     service_id=SELF_SERVICE, surrogate_key="a"), 403, "Forbidden")
    e = expect_error("unknown service",
                     lambda: p.purge_tag(service_id="nosuchservice0000000000",
                                         surrogate_key="a"), 404, "Record not found")
    assert json.loads(e.body)["detail"] == "Cannot find 'service'", e.body
    expect_error("257 keys", lambda: p.bulk_purge_tag(
        service_id=SELF_SERVICE, surrogate_key=" ".join(f"k{i}" for i in range(257))),
        400, "Bad request")
    expect_error("key of 1025 bytes", lambda: p.purge_tag(
        service_id=SELF_SERVICE, surrogate_key="k" * 1025), 400, "Bad request")
    expect_error("url with scheme",
                 lambda: p.purge_single_url(cached_url="https://www.example.com/a"),
                 400, "Bad request")
    Handler.state.faults.append([{"status": 429, "msg": "Too many requests",
                                  "reset_in": 3}, 1])
    e = expect_error("throttled", lambda: p.purge_single_url(cached_url="www.example.com/t"),
                     429, "Too many requests")
    reset = int(e.headers.get("Fastly-RateLimit-Reset", "0"))
    assert 1 <= reset - time.time() <= 4.5, reset
    assert e.headers.get("Fastly-RateLimit-Remaining") == "0", e.headers
    print("Fastly-RateLimit-Reset: in the next seconds")
    server.shutdown()
    print("self-check ok")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", help="the API token with the purge_select scope")
    p.add_argument("--read-only-token", default=None,
                   help="a valid token without the purge_select scope (answers 403)")
    p.add_argument("--service", action="append", default=[], help="a service id of the account")
    p.add_argument("--self-check", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no log line per request")
    cfg = p.parse_args(argv)
    cfg.services = set(cfg.service)
    if not cfg.self_check and not (cfg.token and cfg.services):
        p.error("--token and at least one --service are required")
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
    sys.stderr.write("[fake-fastly] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
