#!/usr/bin/env python3
"""Loopback stand-in for the Tencent Cloud CDN API 3.0 (version 2018-06-06).

Checks every POST / the way Tencent does (TC3-HMAC-SHA256 signature, timestamp
skew, credentials, version, action, parameters, rate, batch and daily limits)
and answers with Tencent's response and error shapes. Signatures are recomputed
with the official SDK's signer (tencentcloud-sdk-python-common), not a local
HMAC, so the fake is an independent check of the Rust signer.

Usage:
  python3 fake_tencent_cdn.py --port 0 --secret-id ID --secret-key KEY
      [--token TOKEN] [--domains cdn.example.com,img.example.com]
      [--url-quota 10000] [--path-quota 100] [--url-batch 1000]
      [--path-batch 20] [--rate 20] [--push-quota 1000] [--push-batch 500]

  python3 fake_tencent_cdn.py --self-check   (calls it through the official cdn client)

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until
SIGTERM/SIGINT. One log line per request goes to stderr (never secrets).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests  every POST / received, in order (secrets masked)
  POST /__control/connections {"close": true}: answer every API call with Connection: close
  POST /__control/fail      {"code","message","count"} or {"http_status","raw","count"}
                            (raw answers may add "content_type" and "headers": {name: value});
                            purge calls get it, or with "action": "PushUrlsCache" that action
  POST /__control/delay     {"ms","count"}
  POST /__control/outage    {"http_status": 503} (or {"code": ...}): every purge call fails
                            so until {"off": true}
  POST /__control/flaky     {"rate": 0.2, "code": "InternalError"}: that share of purge calls
                            fails at random ({"rate": 0} turns it off)
  POST /__control/tasks     {"status": "process"|"done"|"fail"}: new purge tasks start so
                            (default "done"); with "all": true every existing task's URLs
                            are set to it too, with "url": "…" only that URL's entries
  POST /__control/reset     clear log, faults, delays, quota usage, rate windows
  GET  /__control/stats     {"requests","purge_ok","urls_purged","paths_purged","push_ok",
                            "urls_pushed","errors"}

Prefetch (warming, apis.md §K.1): PushUrlsCache (Urls with scheme, Area mainland|overseas|
global, a global push counting in both areas; --push-batch URLs per request, else
LimitExceeded.CdnPushExceedBatchLimit; --push-quota URLs a day per area, else
LimitExceeded.CdnPushExceedDayLimit), DescribePushQuota (UrlPush per area) and
DescribePushTasks (PushLogs of a TaskId, Status "done").
  GET  /__control/health    {"ok": true}
A raw-HTTP fault is recorded with error_code "HTTP<status>" (e.g. "HTTP502").
"""

import argparse
import collections
import datetime as dt
import hashlib
import json
import random
import re
import signal
import socket
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

try:
    from tencentcloud.common.sign import Sign
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_tencent_cdn: needs tencentcloud-sdk-python-common (see testkit/requirements.txt)")

API_VERSION = "2018-06-06"
SERVICE = "cdn"
MAX_SKEW_SECONDS = 300
PURGE_ACTIONS = ("PurgeUrlsCache", "PurgePathCache")
PUSH_ACTION = "PushUrlsCache"
ACTIONS = PURGE_ACTIONS + ("DescribePurgeQuota", "DescribePurgeTasks", PUSH_ACTION,
                           "DescribePushQuota", "DescribePushTasks")
AREAS = ("mainland", "overseas")
PUSH_AREAS = AREAS + ("global",)
BEIJING = dt.timezone(dt.timedelta(hours=8))  # CreateTime is a Beijing-time string
AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256 Credential=([^/\s,]+)/(\d{4}-\d{2}-\d{2})/([^/\s,]+)/tc3_request, "
    r"SignedHeaders=([a-z0-9\-;]+), Signature=([0-9a-f]{64})$")
MASKED_HEADERS = ("authorization", "x-tc-token")


class ApiError(Exception):
    """A Tencent business error: answered as HTTP 200 with Response.Error."""

    def __init__(self, code, message):
        super().__init__(code)
        self.code, self.message = code, message


# --------------------------------------------------------------------------
# Shared state (everything below is guarded by State.lock)
# --------------------------------------------------------------------------
class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []                      # records for /__control/requests
        self.close_connections = False          # answer API calls with Connection: close
        self.faults = collections.deque()       # [entry, remaining]
        self.delays = collections.deque()       # [ms, remaining]
        self.outage = None                      # a fault every purge call gets, while set
        self.flaky = None                       # (rate, fault) for random failures
        self.used = {(k, a): 0 for k in ("url", "path", "push") for a in AREAS}
        self.windows = collections.defaultdict(collections.deque)  # action -> times
        self.tasks = collections.OrderedDict()  # task id -> PurgeLogs entries
        self.push_tasks = collections.OrderedDict()  # task id -> PushLogs entries
        self.task_status = "done"               # the status new tasks' URLs start with
        self.stats = {"requests": 0, "purge_ok": 0, "urls_purged": 0,
                      "paths_purged": 0, "push_ok": 0, "urls_pushed": 0,
                      "errors": collections.Counter()}

    @staticmethod
    def pop_use(queue):
        """Take one use of the queue head; drop the entry when exhausted."""
        if not queue:
            return None
        head = queue[0]
        head[1] -= 1
        if head[1] <= 0:
            queue.popleft()
        return head[0]

    def check_rate(self, action, now):
        """Sliding 1 s window per action; every attempt counts, like Tencent."""
        window = self.windows[action]
        while window and window[0] <= now - 1.0:
            window.popleft()
        window.append(now)
        if len(window) > self.cfg.rate:
            raise ApiError("RequestLimitExceeded", (
                f"Your current request times equals to `{len(window)}` in a second, which "
                f"exceeds the frequency limit `{self.cfg.rate}` for a second. "
                "Please reduce the frequency of calls."))


# --------------------------------------------------------------------------
# Authentication (steps 1-6): mirrors Tencent's TC3-HMAC-SHA256 verification
# --------------------------------------------------------------------------
def authenticate(cfg, headers, raw_body, rec, service=SERVICE):
    """Raise ApiError on the first failed check; sets rec['signature_ok']. `service` is the
    signing service of the product (`cdn`; fake_edgeone.py passes `teo`)."""
    m = AUTH_RE.match((headers.get("Authorization") or "").strip())
    if not m:
        raise ApiError("AuthFailure.InvalidAuthorization",
                       "Authorization is invalid or missing. Please check the TC3-HMAC-SHA256 format.")
    secret_id, date, scope_service, signed_headers, signature = m.groups()

    ts_text = (headers.get("X-TC-Timestamp") or "").strip()
    if not ts_text.isdigit():
        raise ApiError("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing or not an integer.")
    timestamp = int(ts_text)
    if abs(timestamp - time.time()) > MAX_SKEW_SECONDS:
        raise ApiError("AuthFailure.SignatureExpire",
                       "Signature expired. Timestamp comparison between request and server failed.")

    if secret_id != cfg.secret_id:
        raise ApiError("AuthFailure.SecretIdNotFound",
                       "The SecretId is not found, please ensure that your SecretId is correct.")

    names = signed_headers.split(";")
    utc_date = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")
    if date != utc_date or scope_service != service or "content-type" not in names or "host" not in names:
        raise ApiError("AuthFailure.SignatureFailure",
                       "Credential scope (date/service) or SignedHeaders is invalid.")

    # Canonical headers come from what was *received*, values trimmed and lower-cased.
    canonical_headers = ""
    for name in sorted(names):
        value = headers.get(name)
        if value is None:
            raise ApiError("AuthFailure.SignatureFailure", f"Signed header `{name}` is missing.")
        canonical_headers += f"{name}:{value.strip().lower()}\n"
    signed = ";".join(sorted(names))
    payload_hash = hashlib.sha256(raw_body).hexdigest()  # exact raw bytes, never re-serialised
    canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed}\n{payload_hash}"
    string_to_sign = "TC3-HMAC-SHA256\n{}\n{}/{}/tc3_request\n{}".format(
        ts_text, date, service, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest())
    expected = Sign.sign_tc3(cfg.secret_key, date, service, string_to_sign)
    if signed != signed_headers or expected != signature:
        raise ApiError("AuthFailure.SignatureFailure",
                       "The provided credentials could not be validated. "
                       "Please check your signature is correct.")
    rec["signature_ok"] = True

    if cfg.token and headers.get("X-TC-Token") != cfg.token:
        raise ApiError("AuthFailure.TokenFailure", "Token verification failed.")


def check_envelope(headers, raw_body):
    """Step 7: version, action, content type and a JSON-object body."""
    if headers.get("X-TC-Version") != API_VERSION:
        raise ApiError("NoSuchVersion", "The API version does not exist or is not supported.")
    action = headers.get("X-TC-Action")
    if action not in ACTIONS:
        raise ApiError("InvalidAction", f"The action `{action}` is not supported.")
    if not (headers.get("Content-Type") or "").lower().startswith("application/json"):
        raise ApiError("InvalidParameter", "Content-Type must be application/json for this request.")
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise ApiError("InvalidParameter", "The request body is not a valid JSON object.")
    return action, body


# --------------------------------------------------------------------------
# Actions (step 9). Called with State.lock held.
# --------------------------------------------------------------------------
def _check_params(body, allowed):
    for key in body:
        if key not in allowed:
            raise ApiError("UnknownParameter", f"The parameter `{key}` is not recognized.")


def _targets(body, key):
    """Validate the common shape of Urls / Paths / Area / UrlEncode."""
    if key not in body:
        raise ApiError("MissingParameter", f"The request is missing a required parameter `{key}`.")
    items = body[key]
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ApiError("InvalidParameter", f"The type of parameter `{key}` is incorrect, expected array of string.")
    if not items:
        raise ApiError("InvalidParameter.CdnParamError", f"`{key}` must not be empty.")
    return items


def _check_area_and_flags(body):
    area = body.get("Area")
    if area is not None and area not in AREAS:
        raise ApiError("InvalidParameterValue", f"The value `{area}` of parameter `Area` is invalid.")
    if "UrlEncode" in body and not isinstance(body["UrlEncode"], bool):
        raise ApiError("InvalidParameter", "The type of parameter `UrlEncode` is incorrect, expected bool.")
    return area or "mainland"


def _check_target(cfg, item, directory):
    if not (item.startswith("http://") or item.startswith("https://")):
        raise ApiError("InvalidParameter.CdnParamError", f"`{item}` must start with http:// or https://.")
    if directory and not item.endswith("/"):
        raise ApiError("InvalidParameter.CdnParamError", f"Directory `{item}` must end with `/`.")
    host = (urlsplit(item).hostname or "").lower()
    if cfg.domains and host not in cfg.domains:
        raise ApiError("ResourceNotFound.CdnHostNotExists", f"The domain `{host}` does not exist.")


def _purge(state, body, kind):
    """Shared PurgeUrlsCache / PurgePathCache logic; kind is 'url' or 'path'."""
    cfg = state.cfg
    key, extra = ("Urls", ()) if kind == "url" else ("Paths", ("FlushType",))
    items = _targets(body, key)
    _check_params(body, (key, "Area", "UrlEncode") + extra)
    flush = "delete" if kind == "url" else body.get("FlushType")
    if kind == "path":
        if flush is None:
            raise ApiError("MissingParameter", "The request is missing a required parameter `FlushType`.")
        if flush not in ("flush", "delete"):
            raise ApiError("InvalidParameterValue", f"The value `{flush}` of parameter `FlushType` is invalid.")
    area = _check_area_and_flags(body)
    for item in items:
        _check_target(cfg, item, directory=(kind == "path"))
    batch, quota = (cfg.url_batch, cfg.url_quota) if kind == "url" else (cfg.path_batch, cfg.path_quota)
    suffix = "Url" if kind == "url" else "Path"
    if len(items) > batch:
        raise ApiError(f"LimitExceeded.CdnPurge{suffix}ExceedBatchLimit",
                       f"{len(items)} items exceed the per-request batch limit {batch}.")
    if state.used[(kind, area)] + len(items) > quota:
        raise ApiError(f"LimitExceeded.CdnPurge{suffix}ExceedDayLimit",
                       f"Daily {kind} purge quota {quota} for {area} exhausted.")

    state.used[(kind, area)] += len(items)
    now = time.time()
    task_id = f"{int(now)}-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    created = dt.datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    state.tasks[task_id] = [{"TaskId": task_id, "Url": item, "Status": state.task_status,
                             "PurgeType": kind,
                             "FlushType": flush, "CreateTime": created} for item in items]
    state.stats["purge_ok"] += 1
    state.stats["urls_purged" if kind == "url" else "paths_purged"] += len(items)
    return {"TaskId": task_id}


def push_urls_cache(state, body):
    """PushUrlsCache: prefetch URLs; its own per-request batch and daily quota per area (a
    `global` push counts in both areas)."""
    cfg = state.cfg
    items = _targets(body, "Urls")
    _check_params(body, ("Urls", "UserAgent", "Area", "Layer", "ParseM3U8", "DisableRange",
                         "Headers", "UrlEncode"))
    area = body.get("Area")
    if area is not None and area not in PUSH_AREAS:
        raise ApiError("InvalidParameterValue", f"The value `{area}` of parameter `Area` is invalid.")
    if "UrlEncode" in body and not isinstance(body["UrlEncode"], bool):
        raise ApiError("InvalidParameter", "The type of parameter `UrlEncode` is incorrect, expected bool.")
    area = area or "mainland"
    for item in items:
        _check_target(cfg, item, directory=False)
    if len(items) > cfg.push_batch:
        raise ApiError("LimitExceeded.CdnPushExceedBatchLimit",
                       f"{len(items)} URLs exceed the per-request prefetch limit {cfg.push_batch}.")
    areas = AREAS if area == "global" else (area,)
    for a in areas:
        if state.used[("push", a)] + len(items) > cfg.push_quota:
            raise ApiError("LimitExceeded.CdnPushExceedDayLimit",
                           f"Daily prefetch quota {cfg.push_quota} for {a} exhausted.")
    for a in areas:
        state.used[("push", a)] += len(items)
    now = time.time()
    task_id = str(int(now * 1000)) + "".join(random.choices(string.digits, k=10))
    created = dt.datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    state.push_tasks[task_id] = [{"TaskId": task_id, "Url": item, "Status": "done", "Percent": 100,
                                  "CreateTime": created, "UpdateTime": created, "Area": area}
                                 for item in items]
    state.stats["push_ok"] += 1
    state.stats["urls_pushed"] += len(items)
    return {"TaskId": task_id}


def describe_push_quota(state, body):
    _check_params(body, ("Area",))
    cfg = state.cfg
    return {"UrlPush": [{"Batch": cfg.push_batch, "Total": cfg.push_quota,
                         "Available": max(0, cfg.push_quota - state.used[("push", a)]),
                         "Area": a} for a in AREAS]}


def describe_push_tasks(state, body):
    _check_params(body, ("StartTime", "EndTime", "TaskId", "Keyword", "Offset", "Limit",
                         "Area", "Status"))
    task_id = body.get("TaskId")
    if task_id is None and "StartTime" not in body:
        raise ApiError("MissingParameter", "One of `TaskId` or `StartTime`/`EndTime` is required.")
    logs = list(state.push_tasks.get(task_id, [])) if task_id is not None else [
        e for entries in state.push_tasks.values() for e in entries]
    offset, limit = body.get("Offset", 0), body.get("Limit", 20)
    return {"PushLogs": logs[offset:offset + limit], "TotalCount": len(logs)}


def describe_purge_quota(state, body):
    _check_params(body, ())
    cfg = state.cfg

    def quota(kind, batch, total):
        return [{"Batch": batch, "Total": total, "Available": max(0, total - state.used[(kind, a)]),
                 "Area": a} for a in AREAS]
    return {"UrlPurge": quota("url", cfg.url_batch, cfg.url_quota),
            "PathPurge": quota("path", cfg.path_batch, cfg.path_quota)}


def describe_purge_tasks(state, body):
    _check_params(body, ("PurgeType", "StartTime", "EndTime", "TaskId", "Offset",
                         "Limit", "Keyword", "Status", "Area"))
    task_id = body.get("TaskId")
    if task_id is not None and not isinstance(task_id, str):
        raise ApiError("InvalidParameter", "The type of parameter `TaskId` is incorrect, expected string.")
    offset, limit = body.get("Offset", 0), body.get("Limit", 20)
    for name, value in (("Offset", offset), ("Limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError("InvalidParameter",
                           f"The type of parameter `{name}` is incorrect, expected integer.")
    if not 1 <= limit <= 1000:
        raise ApiError("InvalidParameterValue", "Limit must be between 1 and 1000.")
    if task_id is None:  # other filters are ignored: return every task
        logs = [entry for entries in state.tasks.values() for entry in entries]
    else:
        logs = list(state.tasks.get(task_id, []))
    # Paged as Tencent pages it: 20 entries unless Limit says more (at most 1,000).
    return {"PurgeLogs": logs[offset:offset + limit], "TotalCount": len(logs)}


ACTION_HANDLERS = {
    "PurgeUrlsCache": lambda state, body: _purge(state, body, "url"),
    "PurgePathCache": lambda state, body: _purge(state, body, "path"),
    "DescribePurgeQuota": describe_purge_quota,
    "DescribePurgeTasks": describe_purge_tasks,
    PUSH_ACTION: push_urls_cache,
    "DescribePushQuota": describe_push_quota,
    "DescribePushTasks": describe_push_tasks,
}


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoint

    def setup(self):
        super().setup()
        # Head and body go out in two writes: without this, Nagle's algorithm can hold the
        # body until the client's delayed ACK (40 ms), which is the stand-in's delay, not ours.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server_version = "FakeTencentCDN/1.0"
    state = None         # set in main()
    stop_event = None    # set in main(); wakes delayed requests on shutdown
    quiet = False        # --quiet: no line per request (benchmarks)

    def log_message(self, fmt, *args):  # silence the default access log
        pass

    def _log(self, status, detail=""):
        if Handler.quiet:
            return
        sys.stderr.write(f"[fake-tencent-cdn] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, payload, content_type="application/json", extra_headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra_headers or {}).items():
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
        """Steps 1-10 for one Tencent API call; see the module docstring."""
        state, cfg = self.state, self.state.cfg
        request_id = str(uuid.uuid4())
        action = self.headers.get("X-TC-Action")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        rec = {"time": time.time(), "action": action,
               "headers": {k.lower(): ("***" if k.lower() in MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "body": body, "signature_ok": False, "error_code": None,
               "request_id": request_id, "task_id": None}
        with state.lock:
            state.requests.append(rec)
            state.stats["requests"] += 1

        delay_ms, fault, result, extra_headers = 0, None, None, {}
        try:
            authenticate(cfg, self.headers, raw, rec)
            action, body = check_envelope(self.headers, raw)
            with state.lock:
                # A fault for PushUrlsCache waits for that action; others go to purges.
                push_fault = bool(state.faults) and state.faults[0][0].get("action") == PUSH_ACTION
                if action == PUSH_ACTION and push_fault:
                    fault = state.pop_use(state.faults)
                elif action in PURGE_ACTIONS:
                    delay_ms = state.pop_use(state.delays) or 0
                    fault = None if push_fault else state.pop_use(state.faults)
                    if fault is None and state.outage is not None:
                        fault = state.outage
                    if fault is None and state.flaky and random.random() < state.flaky[0]:
                        fault = state.flaky[1]
                if fault is None:
                    state.check_rate(action, time.monotonic())
                    result = ACTION_HANDLERS[action](state, body)
            if fault is not None and "http_status" not in fault:
                raise ApiError(fault.get("code", "InternalError"),
                               fault.get("message", "An internal error has occurred."))
        except ApiError as err:
            result = {"Error": {"Code": err.code, "Message": err.message}}

        if fault is not None and "http_status" in fault:
            status, code = int(fault["http_status"]), f"HTTP{int(fault['http_status'])}"
            payload = str(fault.get("raw", "")).encode("utf-8")
            ctype = str(fault.get("content_type", "text/plain"))
            extra_headers = dict(fault.get("headers") or {})
        else:
            status, code = 200, result.get("Error", {}).get("Code")
            payload, ctype = {"Response": {**result, "RequestId": request_id}}, "application/json"
        with state.lock:
            rec["error_code"], rec["task_id"] = code, (result or {}).get("TaskId")
            if code:
                state.stats["errors"][code] += 1
        if delay_ms:
            self.stop_event.wait(delay_ms / 1000.0)  # recorded already; answer late
        self._log(status, f"action={action} code={code or 'OK'} request_id={request_id}")
        with state.lock:
            if state.close_connections:
                # Every call needs a new connection (as behind a proxy that does not keep
                # connections alive).
                extra_headers["Connection"] = "close"
                self.close_connection = True
        self._send(status, payload, ctype, extra_headers)


# --------------------------------------------------------------------------
# Control API: (state, parsed JSON body or None) -> (status, payload)
# --------------------------------------------------------------------------
def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_connections(state, arg):
    with state.lock:
        state.close_connections = bool(arg.get("close"))
    return 200, {"ok": True}


def _control_fail(state, arg):
    entry = dict(arg)
    if "http_status" in entry:
        int(entry["http_status"])
    elif "code" not in entry:
        raise ValueError("need `code` or `http_status`")
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_outage(state, arg):
    with state.lock:
        if arg.get("off"):
            state.outage = None
        elif "http_status" in arg or "code" in arg:
            state.outage = dict(arg)
        else:
            raise ValueError("need `http_status`, `code` or `off`")
    return 200, {"ok": True}


def _control_flaky(state, arg):
    rate = float(arg.get("rate", 0))
    with state.lock:
        state.flaky = (rate, {"code": arg.get("code", "InternalError")}) if rate > 0 else None
    return 200, {"ok": True}


def _control_delay(state, arg):
    with state.lock:
        state.delays.append([int(arg["ms"]), int(arg.get("count", 1))])
    return 200, {"ok": True}


def _control_reset(state, _):
    with state.lock:
        state.reset()
    return 200, {"ok": True}


def _control_tasks(state, body):
    status = body.get("status")
    if status not in ("process", "done", "fail"):
        return 400, {"error": "status must be process, done or fail"}
    with state.lock:
        if body.get("all") or body.get("url"):
            for entries in state.tasks.values():
                for e in entries:
                    if body.get("all") or e["Url"] == body.get("url"):
                        e["Status"] = status
        else:
            state.task_status = status
    return 200, {"ok": True}


def _control_stats(state, _):
    with state.lock:
        return 200, {**state.stats, "errors": dict(state.stats["errors"])}


CONTROL_ROUTES = {
    ("GET", "/__control/requests"): _control_requests,
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/delay"): _control_delay,
    ("POST", "/__control/outage"): _control_outage,
    ("POST", "/__control/flaky"): _control_flaky,
    ("POST", "/__control/reset"): _control_reset,
    ("POST", "/__control/tasks"): _control_tasks,
    ("POST", "/__control/connections"): _control_connections,
    ("GET", "/__control/stats"): _control_stats,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def self_check():
    """Calls the stand-in's prefetch actions through the official CDN client
    (tencentcloud-sdk-python-cdn): what the SDK signs and sends must be accepted, and its
    errors must come out as the SDK's exception with Tencent's codes."""
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException)
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.cdn.v20180606 import cdn_client, models

    sid, key = "AKIDselfcheck000000000000000000000", "selfcheckkey000000000000000000"
    cfg = argparse.Namespace(secret_id=sid, secret_key=key, token=None, rate=20,
                             domains={"www.example.com"}, url_quota=10000, path_quota=100,
                             url_batch=1000, path_batch=20, push_quota=5, push_batch=3)
    Handler.state, Handler.stop_event, Handler.quiet = State(cfg), threading.Event(), True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http = HttpProfile(protocol="http", endpoint=f"127.0.0.1:{server.server_address[1]}")
    c = cdn_client.CdnClient(credential.Credential(sid, key), "", ClientProfile(httpProfile=http))

    def req(cls, **fields):
        r = getattr(models, cls)()
        r.from_json_string(json.dumps(fields))
        return r

    def expect_error(what, call, code):
        try:
            call()
        except TencentCloudSDKException as e:
            assert e.get_code() == code, (what, e.get_code(), e.get_message())
            print(f"{what}: {code}")
            return
        raise AssertionError(f"{what}: accepted")

    r = c.PushUrlsCache(req("PushUrlsCacheRequest", Urls=["http://www.example.com/a.png"]))
    assert r.TaskId, r.to_json_string()
    print("PushUrlsCache: task", r.TaskId)
    t = c.DescribePushTasks(req("DescribePushTasksRequest", TaskId=r.TaskId))
    assert t.TotalCount == 1 and t.PushLogs[0].Status == "done", t.to_json_string()
    print("DescribePushTasks: done")
    q = c.DescribePushQuota(req("DescribePushQuotaRequest"))
    mainland = [e for e in q.UrlPush if e.Area == "mainland"][0]
    assert (mainland.Batch, mainland.Total, mainland.Available) == (3, 5, 4), q.to_json_string()
    print("DescribePushQuota: mainland 3/5, 4 left")
    assert Handler.state.requests[0]["signature_ok"], Handler.state.requests[0]
    expect_error("4 URLs over a batch of 3", lambda: c.PushUrlsCache(req(
        "PushUrlsCacheRequest", Urls=[f"http://www.example.com/{i}" for i in range(4)])),
        "LimitExceeded.CdnPushExceedBatchLimit")
    c.PushUrlsCache(req("PushUrlsCacheRequest",
                        Urls=[f"http://www.example.com/{i}" for i in range(3)]))
    expect_error("daily quota (4 used)", lambda: c.PushUrlsCache(req(
        "PushUrlsCacheRequest", Urls=["http://www.example.com/x", "http://www.example.com/y"])),
        "LimitExceeded.CdnPushExceedDayLimit")
    expect_error("domain not in the account", lambda: c.PushUrlsCache(req(
        "PushUrlsCacheRequest", Urls=["http://other.example.net/a"])),
        "ResourceNotFound.CdnHostNotExists")
    expect_error("URL without scheme", lambda: c.PushUrlsCache(req(
        "PushUrlsCacheRequest", Urls=["www.example.com/a"])), "InvalidParameter.CdnParamError")
    bad = cdn_client.CdnClient(credential.Credential(sid, "x" * 30), "",
                               ClientProfile(httpProfile=http))
    expect_error("wrong key", lambda: bad.PushUrlsCache(req(
        "PushUrlsCacheRequest", Urls=["http://www.example.com/a"])), "AuthFailure.SignatureFailure")
    server.shutdown()
    print("self-check ok")


def main(argv=None):
    if "--self-check" in (sys.argv[1:] if argv is None else argv):
        self_check()
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--secret-id", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--token", default=None, help="require this X-TC-Token")
    p.add_argument("--domains", default="", help="comma-separated; empty = any host")
    p.add_argument("--url-quota", type=int, default=10000)
    p.add_argument("--path-quota", type=int, default=100)
    p.add_argument("--url-batch", type=int, default=1000)
    p.add_argument("--path-batch", type=int, default=20)
    p.add_argument("--rate", type=int, default=20)
    p.add_argument("--push-quota", type=int, default=1000)
    p.add_argument("--push-batch", type=int, default=500)
    p.add_argument("--quiet", action="store_true", help="no log line per request")
    cfg = p.parse_args(argv)
    Handler.quiet = cfg.quiet
    cfg.domains = {d.strip().lower() for d in cfg.domains.split(",") if d.strip()}

    Handler.state = State(cfg)
    Handler.stop_event = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)

    # serve_forever runs in a thread; the main thread only waits for a signal,
    # so shutdown() never deadlocks and SIGTERM/SIGINT exit promptly.
    signal.signal(signal.SIGTERM, lambda *_: Handler.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: Handler.stop_event.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    while not Handler.stop_event.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-tencent-cdn] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
