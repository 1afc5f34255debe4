#!/usr/bin/env python3
"""Loopback stand-in for the Alibaba Cloud CDN API (RPC style, version 2018-05-10).

Checks every POST / the way Alibaba's OpenAPI gateway does for ACS3-HMAC-SHA256
("V3") signed calls: the Authorization form, the AccessKey ID, x-acs-date skew,
nonce reuse, x-acs-content-sha256 against the body, the signed headers, the
STS security token, version and action; then the CDN's own checks (ObjectPath,
ObjectType, Force, domains of the account, per-request and per-day limits, the
per-account call rate). Signatures are recomputed with the official SDK's
signing code (alibabacloud-tea-openapi's `Utils.get_authorization`, the code
the official CDN client signs with), not a local HMAC, so the stand-in is an
independent check of the Rust signer. Answers and errors have Alibaba's
shapes: {"RequestId", "RefreshTaskId"} and {"RequestId", "HostId", "Code",
"Message", "Recommend"} with the documented HTTP status.

Usage:
  python3 fake_aliyun_cdn.py --port 0 --access-key-id ID --access-key-secret SECRET
      [--token STS_TOKEN] [--domains cdn.example.com,img.example.com]
      [--url-quota 10000] [--dir-quota 100] [--rate 50] [--quiet]
  python3 fake_aliyun_cdn.py --self-check
      starts the stand-in in-process and calls it through the official CDN client
      (alibabacloud-cdn20180510) with an STS token: a refresh, a directory refresh,
      a tag refresh, the task and the quota are answered; a wrong secret, an unknown
      key and a missing token are refused with Alibaba's codes. Prints one line per
      check; exits 0 when all hold.

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until
SIGTERM/SIGINT. One log line per request goes to stderr (never secrets).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests  every POST / received, in order (secrets masked)
  POST /__control/fail      {"code","message","http_status","count"}: the next refreshes
                            fail with that Alibaba error; or {"http_status","raw","count"}
                            (+ "content_type", "headers") for a raw answer
  POST /__control/tasks     {"status": "Refreshing"|"Complete"|"Failed"|"Pending"}: new
                            tasks start so (default "Complete"); with "all": true every
                            existing entry is set to it too, with "path": "…" only that
                            path's entries ("description" sets a failure's reason)
  POST /__control/deny      {"actions": ["DescribeRefreshTaskById", …]}: the key lacks
                            these RAM permissions (Forbidden.RAM, 403)
  POST /__control/reset     clear log, faults, denials, quota use, tasks, rate window
  GET  /__control/stats     {"requests","refresh_ok","paths_refreshed","errors"}
  GET  /__control/health    {"ok": true}
A raw-HTTP fault is recorded with error_code "HTTP<status>" (e.g. "HTTP502").
"""

import argparse
import collections
import datetime as dt
import hashlib
import itertools
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

try:
    from alibabacloud_tea_openapi.utils import Utils as OpenApiUtils
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_aliyun_cdn: needs alibabacloud-tea-openapi (see testkit/requirements.txt)")

API_VERSION = "2018-05-10"
ALGORITHM = "ACS3-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60
MAX_PATH_LEN = 1024
MAX_FILES, MAX_DIRS, MAX_DOMAINS = 1000, 100, 10
MAX_TASK_IDS = 10
REFRESH_ACTIONS = ("RefreshObjectCaches", "RefreshObjectCacheByCacheTag")
PUSH_ACTION = "PushObjectCache"
ACTIONS = REFRESH_ACTIONS + ("DescribeRefreshTaskById", "DescribeRefreshQuota", PUSH_ACTION)
MAX_PUSH = 100  # URLs per PushObjectCache (apis.md §K.3)
TASK_STATUSES = ("Pending", "Refreshing", "Complete", "Failed")
AUTH_RE = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=([^,\s]+),SignedHeaders=([a-z0-9\-;]+),Signature=([0-9a-f]{64})$")
MASKED_HEADERS = ("authorization", "x-acs-security-token")
# The HTTP status Alibaba answers each code with (apis.md §D.3; the gateway's common codes).
STATUS_OF = {
    "IncompleteSignature": 400, "InvalidAccessKeyId.NotFound": 404,
    "InvalidAccessKeyId.Inactive": 400, "SignatureDoesNotMatch": 400,
    "InvalidTimeStamp.Expired": 400, "InvalidTimeStamp.Format": 400,
    "SignatureNonceUsed": 400, "InvalidSecurityToken.Mismatch": 400,
    "InvalidSecurityToken.Expired": 400, "MissingSecurityToken": 400,
    "InvalidVersion": 400, "InvalidApi.NotFound": 404, "Forbidden.RAM": 403,
    "Throttling.User": 400, "Throttling": 400, "ServiceUnavailable": 503,
    "InternalError": 500, "InvalidDomain.NotFound": 404, "InvalidDomain.Offline": 400,
    "QuotaExceeded.Refresh": 400, "QuotaPerMinuteExceeded.Refresh": 400,
    "TooMany.Refresh": 400, "SingleRequest.OverLimit": 400,
    "QuotaExceeded.Preload": 400, "PreloadQueueFull": 400,
    "InvalidObjectPath.Malformed": 400, "InvalidObjectType.Malformed": 400,
    "InvalidObjectPath.Size.Malformed": 400, "InvalidExtensiveDomain.ValueNotSupported": 400,
}


class ApiError(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(code)
        self.code, self.message = code, message
        self.status = status or STATUS_OF.get(code, 400)


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.task_ids = itertools.count(17772470184)
        self.reset()

    def reset(self):
        self.requests = []
        self.faults = collections.deque()      # [entry, remaining]
        self.denied = set()                    # actions the key may not call
        self.nonces = set()
        self.used = {"file": 0, "directory": 0, "preload": 0}
        self.window = collections.deque()      # call times, per account
        self.tasks = collections.OrderedDict()  # task id -> [entries]
        self.task_status = "Complete"
        self.stats = {"requests": 0, "refresh_ok": 0, "paths_refreshed": 0,
                      "errors": collections.Counter()}

    @staticmethod
    def pop_use(queue):
        if not queue:
            return None
        head = queue[0]
        head[1] -= 1
        if head[1] <= 0:
            queue.popleft()
        return head[0]

    def check_rate(self, now):
        """Sliding 1 s window over every call of the account; every attempt counts."""
        while self.window and self.window[0] <= now - 1.0:
            self.window.popleft()
        self.window.append(now)
        if len(self.window) > self.cfg.rate:
            raise ApiError("Throttling.User", "Request was denied due to user flow control.")


# --------------------------------------------------------------------------
# Authentication: the gateway's ACS3 checks; the signature by the official SDK
# --------------------------------------------------------------------------
class _SignedRequest:
    """The shape `Utils.get_authorization` reads (a Darabonba request)."""

    def __init__(self, method, pathname, query, headers):
        self.method, self.pathname, self.query, self.headers = method, pathname, query, headers


def authenticate(cfg, state, method, path, query, headers, raw_body, rec):
    m = AUTH_RE.match((headers.get("Authorization") or "").strip())
    if not m:
        raise ApiError("IncompleteSignature",
                       "The request signature does not conform to Aliyun standards. "
                       "(Authorization is not ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,"
                       "Signature=…)")
    key_id, signed_headers, signature = m.groups()
    date = (headers.get("x-acs-date") or "").strip()
    try:
        when = dt.datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ApiError("InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.")
    if abs(when.timestamp() - time.time()) > MAX_SKEW_SECONDS:
        raise ApiError("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
    if key_id != cfg.access_key_id:
        raise ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    nonce = headers.get("x-acs-signature-nonce") or ""
    if not nonce:
        raise ApiError("MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
    payload_hash = hashlib.sha256(raw_body).hexdigest()
    if (headers.get("x-acs-content-sha256") or "") != payload_hash:
        raise ApiError("SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation. "
                       "(x-acs-content-sha256 is not the SHA-256 of the body)")
    names = signed_headers.split(";")
    present = {k.lower() for k in headers.keys()}
    must = {"host"} | {n for n in present if n.startswith("x-acs-")}
    if "content-type" in present and raw_body:
        must.add("content-type")
    if not must <= set(names) or any(n not in present for n in names):
        raise ApiError("IncompleteSignature",
                       "The request signature does not conform to Aliyun standards. "
                       f"(SignedHeaders must list host, content-type and every x-acs-* header "
                       f"sent; got {signed_headers})")
    # Only the headers the client listed are signed; values as received.
    signed = {n: headers.get(n) for n in names}
    req = _SignedRequest(method, path or "/", dict(query), signed)
    expected = OpenApiUtils.get_authorization(req, ALGORITHM, payload_hash, key_id,
                                              cfg.access_key_secret)
    if expected.rsplit("Signature=", 1)[1] != signature or \
            expected.split(",SignedHeaders=", 1)[1].split(",", 1)[0] != signed_headers:
        raise ApiError("SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation.")
    rec["signature_ok"] = True
    with state.lock:
        if nonce in state.nonces:
            raise ApiError("SignatureNonceUsed", "Specified signature nonce was used already.")
        state.nonces.add(nonce)
    if cfg.token is not None:
        token = headers.get("x-acs-security-token")
        if token is None:
            raise ApiError("MissingSecurityToken", "SecurityToken is mandatory for this key.")
        if token != cfg.token:
            raise ApiError("InvalidSecurityToken.Mismatch",
                           "Specified SecurityToken mismatch with the AccessKey.")


def check_envelope(headers):
    if headers.get("x-acs-version") != API_VERSION:
        raise ApiError("InvalidVersion", "Specified parameter Version is not valid.")
    action = headers.get("x-acs-action")
    if action not in ACTIONS:
        raise ApiError("InvalidApi.NotFound", "Specified api is not found, please check your url and method.")
    return action


# --------------------------------------------------------------------------
# Actions. Called with State.lock held; params is query + form, decoded.
# --------------------------------------------------------------------------
def _required(params, name):
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(f"Missing{name}", f"{name} is mandatory for this action.")
    return value


def _force(params):
    value = params.get("Force", "false")
    if value.lower() not in ("true", "false"):
        raise ApiError("InvalidParameter", f"Specified parameter Force {value!r} is not valid.")
    return value.lower() == "true"


def _check_domain(cfg, host):
    if host.startswith("*."):
        raise ApiError("InvalidExtensiveDomain.ValueNotSupported",
                       "The specified ExtensiveDomain is not supported.")
    if cfg.domains and host not in cfg.domains:
        raise ApiError("InvalidDomain.NotFound", f"The domain {host} does not exist.")


def _new_task(state, kind, paths):
    task_id = str(next(state.task_ids))
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    state.tasks[task_id] = [
        {"TaskId": task_id, "ObjectPath": p, "ObjectType": kind, "Status": state.task_status,
         "Process": "100%" if state.task_status == "Complete" else "0%",
         "Description": "Internal Error" if state.task_status == "Failed" else "",
         "CreationTime": created} for p in paths]
    return task_id


def refresh_object_caches(state, params):
    cfg = state.cfg
    object_type = params.get("ObjectType", "File")
    if object_type not in ("File", "Directory", "Regex", "ExQuery", "IgnoreParams"):
        raise ApiError("InvalidObjectType.Malformed", "The specified ObjectType is invalid.")
    if object_type not in ("File", "Directory"):
        raise ApiError("InvalidObjectType.Malformed",
                       f"ObjectType {object_type} is not served by this stand-in.")
    _force(params)
    paths = [p for p in re.split(r"\r?\n", _required(params, "ObjectPath")) if p]
    if not paths:
        raise ApiError("InvalidObjectPath.Malformed", "The specified ObjectPath is invalid.")
    directory = object_type == "Directory"
    limit = MAX_DIRS if directory else MAX_FILES
    if len(paths) > limit:
        raise ApiError("SingleRequest.OverLimit",
                       f"A maximum of {limit} {'directories' if directory else 'URLs'} "
                       "are supported for each request.")
    by_host = collections.OrderedDict()
    for p in paths:
        if len(p) > MAX_PATH_LEN:
            raise ApiError("InvalidObjectPath.Malformed",
                           f"The specified ObjectPath is invalid (longer than {MAX_PATH_LEN}).")
        parts = urlsplit(p if "://" in p else "http://" + p)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c in p for c in " \t"):
            raise ApiError("InvalidObjectPath.Malformed", "The specified ObjectPath is invalid.")
        if directory and not parts.path.endswith("/"):
            raise ApiError("InvalidObjectPath.Malformed",
                           "The specified ObjectPath is invalid (a directory ends with /).")
        host = parts.hostname.lower()
        _check_domain(cfg, host)
        by_host.setdefault(host, []).append(p)
    if len(by_host) > MAX_DOMAINS:
        raise ApiError("SingleRequest.OverLimit",
                       f"A maximum of {MAX_DOMAINS} domains are supported for each request.")
    kind = "directory" if directory else "file"
    quota = cfg.dir_quota if directory else cfg.url_quota
    if state.used[kind] + len(paths) > quota:
        raise ApiError("QuotaExceeded.Refresh", "Your refresh attempts have exceeded the daily limit.")
    state.used[kind] += len(paths)
    # One task per domain (URL tasks of one domain in one second merge into one id).
    ids = [_new_task(state, kind, host_paths) for host_paths in by_host.values()]
    state.stats["refresh_ok"] += 1
    state.stats["paths_refreshed"] += len(paths)
    return {"RefreshTaskId": ",".join(ids)}


def refresh_by_cache_tag(state, params):
    domain = _required(params, "DomainName").lower()
    tags = [t for t in _required(params, "CacheTag").split(",") if t]
    _force(params)
    _check_domain(state.cfg, domain)
    task_id = _new_task(state, "cachetag", tags)
    state.stats["refresh_ok"] += 1
    return {"RefreshTaskId": task_id}


def push_object_cache(state, params):
    """PushObjectCache: URLs (newline-separated ObjectPath) prefetched; at most MAX_PUSH a
    call and --preload-quota a day (QuotaExceeded.Preload, as the prefetch API documents)."""
    cfg = state.cfg
    paths = [p for p in re.split(r"\r?\n", _required(params, "ObjectPath")) if p]
    if not paths:
        raise ApiError("InvalidObjectPath.Malformed", "The specified ObjectPath is invalid.")
    area = params.get("Area")
    if area is not None and area not in ("domestic", "overseas", "global"):
        raise ApiError("InvalidParameter", f"Specified parameter Area {area!r} is not valid.")
    if len(paths) > MAX_PUSH:
        raise ApiError("SingleRequest.OverLimit",
                       f"A maximum of {MAX_PUSH} URLs are supported for each request.")
    for p in paths:
        parts = urlsplit(p if "://" in p else "http://" + p)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c in p for c in " \t"):
            raise ApiError("InvalidObjectPath.Malformed", "The specified ObjectPath is invalid.")
        if parts.path.endswith("/"):
            raise ApiError("InvalidObjectPath.Malformed",
                           "The specified ObjectPath is invalid (directories are not prefetched).")
        _check_domain(cfg, parts.hostname.lower())
    if state.used["preload"] + len(paths) > cfg.preload_quota:
        raise ApiError("QuotaExceeded.Preload", "Your refresh attempts have exceeded the daily limit.")
    state.used["preload"] += len(paths)
    task_id = _new_task(state, "preload", paths)
    state.stats["push_ok"] = state.stats.get("push_ok", 0) + 1
    return {"PushTaskId": task_id}


def describe_refresh_task_by_id(state, params):
    ids = _required(params, "TaskId").split(",")
    if len(ids) > MAX_TASK_IDS or not all(i.strip().isdigit() for i in ids):
        raise ApiError("InvalidTaskId.Malformed", "The specified TaskId is invalid.")
    tasks = [dict(e) for i in ids for e in state.tasks.get(i.strip(), [])]
    return {"Tasks": tasks, "TotalCount": len(tasks)}


def describe_refresh_quota(state, _params):
    cfg = state.cfg
    return {"UrlQuota": str(cfg.url_quota),
            "UrlRemain": str(max(0, cfg.url_quota - state.used["file"])),
            "DirQuota": str(cfg.dir_quota),
            "DirRemain": str(max(0, cfg.dir_quota - state.used["directory"])),
            "RegexQuota": "20", "RegexRemain": "20", "IgnoreParamsQuota": "100",
            "IgnoreParamsRemain": "100", "PreloadQuota": str(cfg.preload_quota),
            "PreloadRemain": str(max(0, cfg.preload_quota - state.used["preload"])),
            "BlockQuota": "100", "BlockRemain": "100", "PreloadEdgeQuota": "0",
            "PreloadEdgeRemain": "0"}


ACTION_HANDLERS = {
    "RefreshObjectCaches": refresh_object_caches,
    "RefreshObjectCacheByCacheTag": refresh_by_cache_tag,
    "DescribeRefreshTaskById": describe_refresh_task_by_id,
    "DescribeRefreshQuota": describe_refresh_quota,
    PUSH_ACTION: push_object_cache,
}


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAliyunCDN/1.0"
    state = None
    quiet = False

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        if Handler.quiet:
            return
        sys.stderr.write(f"[fake-aliyun-cdn] {self.command} {self.path.split('?')[0]} -> {status} {detail}\n")
        sys.stderr.flush()

    def _read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, payload, content_type="application/json;charset=utf-8", extra=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch(None)

    def do_POST(self):
        self._dispatch(self._read_body())

    def _dispatch(self, raw):
        path = self.path.split("?", 1)[0]
        if path == "/" and self.command == "POST":
            return self._api(raw)
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

    def _api(self, raw):
        state, cfg = self.state, self.state.cfg
        request_id = str(uuid.uuid4()).upper()
        split = urlsplit(self.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        params = dict(query)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if raw and ctype.startswith("application/x-www-form-urlencoded"):
            try:
                params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        action = self.headers.get("x-acs-action")
        rec = {"time": time.time(), "action": action,
               "headers": {k.lower(): ("***" if k.lower() in MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "query": dict(query), "params": params, "signature_ok": False,
               "error_code": None, "request_id": request_id, "task_id": None}
        with state.lock:
            state.requests.append(rec)
            state.stats["requests"] += 1
        fault, result, status = None, None, 200
        try:
            authenticate(cfg, state, self.command, split.path, query, self.headers, raw or b"", rec)
            action = check_envelope(self.headers)
            with state.lock:
                if action in state.denied:
                    raise ApiError("Forbidden.RAM",
                                   "User not authorized to operate on the specified resource, "
                                   "or this API doesn't support RAM.")
                state.check_rate(time.monotonic())
                # A fault for PushObjectCache ("action") waits for it; others go to refreshes.
                push_fault = bool(state.faults) and state.faults[0][0].get("action") == PUSH_ACTION
                if action in REFRESH_ACTIONS and not push_fault \
                        or action == PUSH_ACTION and push_fault:
                    fault = state.pop_use(state.faults)
                if fault is None:
                    result = ACTION_HANDLERS[action](state, params)
            if fault is not None and "raw" not in fault:
                raise ApiError(fault["code"], fault.get("message", f"injected {fault['code']}"),
                               fault.get("http_status"))
        except ApiError as err:
            status = err.status
            result = {"Code": err.code, "Message": err.message, "HostId": self.headers.get("Host"),
                      "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Cdn"}
        if fault is not None and "raw" in fault:
            status, code = int(fault["http_status"]), f"HTTP{int(fault['http_status'])}"
            payload = str(fault["raw"]).encode("utf-8")
            ctype = str(fault.get("content_type", "text/plain"))
            extra = dict(fault.get("headers") or {})
        else:
            code = result.get("Code")
            payload, ctype, extra = {"RequestId": request_id, **result}, "application/json;charset=utf-8", {}
        with state.lock:
            rec["error_code"] = code
            rec["task_id"] = None if code else \
                (result or {}).get("RefreshTaskId") or (result or {}).get("PushTaskId")
            if code:
                state.stats["errors"][code] += 1
        self._log(status, f"action={action} code={code or 'OK'} request_id={request_id}")
        self._send(status, payload, ctype, extra)


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------
def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_fail(state, arg):
    entry = dict(arg)
    if "raw" in entry:
        int(entry["http_status"])
    elif "code" not in entry:
        raise ValueError("need `code`, or `raw` and `http_status`")
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_tasks(state, arg):
    status = arg.get("status")
    if status not in TASK_STATUSES:
        return 400, {"error": f"status must be one of {TASK_STATUSES}"}
    with state.lock:
        if arg.get("all") or arg.get("path"):
            for entries in state.tasks.values():
                for e in entries:
                    if arg.get("all") or e["ObjectPath"] == arg.get("path"):
                        e["Status"] = status
                        e["Process"] = "100%" if status == "Complete" else e["Process"]
                        if status == "Failed":
                            e["Description"] = arg.get("description", "Internal Error")
        else:
            state.task_status = status
    return 200, {"ok": True}


def _control_deny(state, arg):
    with state.lock:
        state.denied = set(arg.get("actions") or [])
    return 200, {"ok": True}


def _control_reset(state, _):
    with state.lock:
        state.reset()
    return 200, {"ok": True}


def _control_stats(state, _):
    with state.lock:
        return 200, {**state.stats, "errors": dict(state.stats["errors"])}


CONTROL_ROUTES = {
    ("GET", "/__control/requests"): _control_requests,
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/tasks"): _control_tasks,
    ("POST", "/__control/deny"): _control_deny,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/stats"): _control_stats,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def serve(cfg):
    Handler.state = State(cfg)
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    return server


def self_check():
    """Calls the stand-in through the official CDN client; returns (what held, what failed)."""
    from alibabacloud_cdn20180510 import models as cdn_models
    from alibabacloud_cdn20180510.client import Client as CdnClient
    from alibabacloud_tea_openapi.utils_models import Config

    key_id, secret, token = "LTAI5tSelfCheckKeyId0000", "SelfCheckSecret000000000000000", "sts-self-check"
    cfg = argparse.Namespace(port=0, access_key_id=key_id, access_key_secret=secret, token=token,
                             domains={"cdn.example.com"}, url_quota=10000, dir_quota=100,
                             rate=50, preload_quota=3)
    server = serve(cfg)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    endpoint = f"127.0.0.1:{server.server_address[1]}"

    def client(k=key_id, s=secret, t=token):
        return CdnClient(Config(access_key_id=k, access_key_secret=s, security_token=t,
                                endpoint=endpoint, protocol="HTTP", read_timeout=5000,
                                connect_timeout=5000))

    held, problems = [], []

    def expect(what, ok, detail):
        (held if ok else problems).append(what if ok else f"{what}: {detail}")

    try:
        c = client()
        r = c.refresh_object_caches(cdn_models.RefreshObjectCachesRequest(
            object_path="https://cdn.example.com/a%20b.jpg\nhttps://cdn.example.com/%E7%8C%AB.png",
            object_type="File"))
        task = r.body.refresh_task_id
        expect("File refresh: RefreshTaskId", bool(task), r.body.to_map())
        r = c.refresh_object_caches(cdn_models.RefreshObjectCachesRequest(
            object_path="https://cdn.example.com/docs/", object_type="Directory", force=True))
        expect("Directory refresh: RefreshTaskId", bool(r.body.refresh_task_id), r.body.to_map())
        r = c.refresh_object_cache_by_cache_tag(cdn_models.RefreshObjectCacheByCacheTagRequest(
            domain_name="cdn.example.com", cache_tag="a,b", force=False))
        expect("tag refresh: RefreshTaskId", bool(r.body.refresh_task_id), r.body.to_map())
        r = c.describe_refresh_task_by_id(cdn_models.DescribeRefreshTaskByIdRequest(task_id=task))
        statuses = [t.status for t in r.body.tasks]
        expect("task: Complete, Complete", statuses == ["Complete", "Complete"], r.body.to_map())
        r = c.describe_refresh_quota(cdn_models.DescribeRefreshQuotaRequest())
        expect("quota: 9998 URLs and 99 directories left",
               (r.body.url_remain, r.body.dir_remain) == ("9998", "99"), r.body.to_map())
        for what, k, s, t, want in (
                ("wrong secret", key_id, "wrong-secret", token, "SignatureDoesNotMatch"),
                ("unknown key", "LTAI5tUnknown", secret, token, "InvalidAccessKeyId.NotFound"),
                ("no STS token", key_id, secret, None, "MissingSecurityToken")):
            try:
                client(k, s, t).describe_refresh_quota(cdn_models.DescribeRefreshQuotaRequest())
                expect(f"{what}: {want}", False, "accepted")
            except Exception as exc:  # the SDK raises its own exception types
                expect(f"{what}: {want}", want in str(exc), exc)
        r = c.push_object_cache(cdn_models.PushObjectCacheRequest(
            object_path="https://cdn.example.com/a.jpg\nhttps://cdn.example.com/b.jpg"))
        expect("PushObjectCache: PushTaskId", bool(r.body.push_task_id), r.body.to_map())
        r = c.describe_refresh_quota(cdn_models.DescribeRefreshQuotaRequest())
        expect("quota: 1 of 3 prefetches left",
               (r.body.preload_quota, r.body.preload_remain) == ("3", "1"), r.body.to_map())
        try:
            c.push_object_cache(cdn_models.PushObjectCacheRequest(
                object_path="https://cdn.example.com/c.jpg\nhttps://cdn.example.com/d.jpg"))
            expect("prefetch over the day's quota: QuotaExceeded.Preload", False, "accepted")
        except Exception as exc:
            expect("prefetch over the day's quota: QuotaExceeded.Preload",
                   "QuotaExceeded.Preload" in str(exc), exc)
        with Handler.state.lock:
            signed = all(r["signature_ok"] for r in Handler.state.requests[:5])
        expect("SDK-signed calls pass the signature check", signed, Handler.state.requests[:5])
    except Exception as exc:
        problems.append(f"official client call failed: {exc!r} {getattr(exc, 'message', '')}")
    finally:
        server.shutdown()
        server.server_close()
    return held, problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--access-key-id")
    p.add_argument("--access-key-secret")
    p.add_argument("--token", default=None, help="require this x-acs-security-token")
    p.add_argument("--domains", default="", help="comma-separated; empty = any host")
    p.add_argument("--url-quota", type=int, default=10000)
    p.add_argument("--dir-quota", type=int, default=100)
    p.add_argument("--preload-quota", type=int, default=1000)
    p.add_argument("--rate", type=int, default=50, help="calls per second per account")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--self-check", action="store_true")
    cfg = p.parse_args(argv)
    if cfg.self_check:
        Handler.quiet = True
        held, problems = self_check()
        for line in held:
            print(line)
        for problem in problems:
            print(f"FAILED {problem}")
        print("self-check ok" if not problems else "self-check FAILED")
        return 1 if problems else 0
    if not cfg.access_key_id or not cfg.access_key_secret:
        p.error("--access-key-id and --access-key-secret are required")
    Handler.quiet = cfg.quiet
    cfg.domains = {d.strip().lower() for d in cfg.domains.split(",") if d.strip()}
    server = serve(cfg)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-aliyun-cdn] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
