#!/usr/bin/env python3
"""Loopback stand-in for the Tencent EdgeOne API (teo, version 2022-09-01).

Checks every POST / the way Tencent does (TC3-HMAC-SHA256 signature for service
`teo`, recomputed with the official SDK's signer through fake_tencent_cdn's
authenticate; timestamp skew, credentials, session token, version, action,
parameters), enforces the zone's per-request batch and daily quota per purge
type and 20 calls per second per action, and answers with Tencent's response
and error shapes. Actions: CreatePurgeTask, DescribePurgeTasks,
DescribeContentQuota, CreatePrefetchTask (warming: its own --prefetch-batch and
--prefetch-daily, LimitExceeded.BatchQuota / LimitExceeded.DailyQuota as for purges,
FailedList for rejected targets) (field names from tencentcloud-sdk-python-teo's models).

Usage:
  python3 fake_edgeone.py --port 0 --secret-id ID --secret-key KEY --zone zone-…
      [--token TOKEN] [--domains cdn.example.com,img.example.com]
      [--url-batch 2000] [--url-daily 10000] [--prefix-batch 1000]
      [--prefix-daily 10000] [--tag-batch 100] [--tag-daily 10000] [--no-tags]
      [--rate 20] [--deny DescribePurgeTasks,…] [--prefetch-batch 1000]
      [--prefetch-daily 1000]
  python3 fake_edgeone.py --self-check   (calls it through the official teo client)

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until
SIGTERM/SIGINT. One log line per request goes to stderr (never secrets).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests  every POST / received, in order (secrets masked)
  POST /__control/fail      {"code","message","count"} or {"http_status","raw","count"}:
                            the next CreatePurgeTask calls fail so (with "action":
                            "CreatePrefetchTask", the next prefetches)
  POST /__control/tasks     {"status": processing|success|failed|timeout|canceled}: new jobs'
                            tasks start so (default success); with "all": true every existing
                            task is set to it, with "target": "…" only that target's; optional
                            "fail_type", "fail_message" for failed ones
  POST /__control/deny      {"actions": [...]}: the key may not call these (CAM refusal)
  POST /__control/reject    {"targets": [...], "reason": "…"}: CreatePurgeTask takes the
                            others and lists these in FailedList (with "action":
                            "CreatePrefetchTask", that action does)
  POST /__control/reset     clear log, faults, jobs, quota usage, rate windows, denials
  GET  /__control/stats     {"requests","purge_ok","targets_purged","errors"}
  GET  /__control/health    {"ok": true}
"""

import argparse
import collections
import datetime as dt
import json
import os
import random
import signal
import string
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_tencent_cdn as tc  # noqa: E402  (the TC3 check and HTTP plumbing are shared)
from fake_tencent_cdn import ApiError  # noqa: E402

API_VERSION = "2022-09-01"
SERVICE = "teo"
ACTIONS = ("CreatePurgeTask", "DescribePurgeTasks", "DescribeContentQuota",
           "CreatePrefetchTask")
PURGE_TYPES = ("purge_url", "purge_prefix", "purge_host", "purge_all", "purge_cache_tag")
METHODS = ("invalidate", "delete")
STATUSES = ("processing", "success", "failed", "timeout", "canceled")
FILTERS = ("job-id", "target", "domains", "statuses", "type")
UIN = "100000000001"


def iso(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.faults = collections.deque()       # [entry, remaining]
        self.used = collections.Counter()       # purge type -> targets today
        self.windows = collections.defaultdict(collections.deque)
        self.jobs = collections.OrderedDict()   # job id -> [task]
        self.task_status = "success"
        self.denied = set(self.cfg.deny)
        self.rejected = {}                      # target -> reason
        self.rejected_prefetch = {}             # the same, for CreatePrefetchTask
        self.stats = {"requests": 0, "purge_ok": 0, "targets_purged": 0,
                      "errors": collections.Counter()}

    def limits(self, purge_type):
        c = self.cfg
        return {"prefetch_url": (c.prefetch_batch, c.prefetch_daily),
                "purge_url": (c.url_batch, c.url_daily),
                "purge_prefix": (c.prefix_batch, c.prefix_daily),
                "purge_host": (c.prefix_batch, c.prefix_daily),
                "purge_all": (1, c.prefix_daily),
                "purge_cache_tag": (c.tag_batch, c.tag_daily)}[purge_type]


# --------------------------------------------------------------------------
# Checks shared by the actions
# --------------------------------------------------------------------------
def check_envelope(headers, raw_body):
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


def check_params(body, allowed):
    for key in body:
        if key not in allowed:
            raise ApiError("UnknownParameter", f"The parameter `{key}` is not recognized.")


def check_zone(state, body, action):
    zone = body.get("ZoneId")
    if zone is None:
        raise ApiError("MissingParameter", "The request is missing a required parameter `ZoneId`.")
    if not isinstance(zone, str):
        raise ApiError("InvalidParameter", "The type of parameter `ZoneId` is incorrect, expected string.")
    if zone != state.cfg.zone:
        raise ApiError("ResourceNotFound.ZoneNotFound", "站点不存在。")
    if action in state.denied:
        # What CAM answers a sub-account key without the action on the zone.
        raise ApiError("UnauthorizedOperation.CamUnauthorized",
                       f"you are not authorized to perform operation (teo:{action})\n"
                       f"resource (qcs::teo::uin/{UIN}:zone/{zone}) has no permission")
    return zone


def check_rate(state, action, now):
    window = state.windows[action]
    while window and window[0] <= now - 1.0:
        window.popleft()
    window.append(now)
    if len(window) > state.cfg.rate:
        raise ApiError("RequestLimitExceeded", (
            f"Your current request times equals to `{len(window)}` in a second, which "
            f"exceeds the frequency limit `{state.cfg.rate}` for a second. "
            "Please reduce the frequency of calls."))


def strings(body, key, required=True):
    items = body.get(key)
    if items is None:
        if required:
            raise ApiError("MissingParameter", f"The request is missing a required parameter `{key}`.")
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ApiError("InvalidParameter", f"The type of parameter `{key}` is incorrect, expected array of string.")
    return items


def check_target(state, purge_type, item):
    domains = state.cfg.domains
    if purge_type in ("purge_url", "purge_prefix"):
        if not (item.startswith("http://") or item.startswith("https://")):
            raise ApiError("InvalidParameter.Target", f"资源存在错误。`{item}` must carry http:// or https://.")
        host = (urlsplit(item).hostname or "").lower()
        if not host:
            raise ApiError("InvalidParameter.Target", f"资源存在错误。`{item}` has no host.")
        if domains and host not in domains:
            raise ApiError("InvalidParameter.DomainNotFound", f"域名不存在或不属于该账号。({host})")
    elif purge_type == "purge_host":
        if "*" in item or (domains and item.lower() not in domains):
            raise ApiError("InvalidParameter.DomainNotFound", f"域名不存在或不属于该账号。({item})")
    elif purge_type == "purge_cache_tag":
        if not item or any(c in item for c in ", \t\r\n"):
            raise ApiError("InvalidParameter.Target", f"资源存在错误。tag `{item}`")


# --------------------------------------------------------------------------
# Actions (called with State.lock held)
# --------------------------------------------------------------------------
def create_purge_task(state, body):
    check_params(body, ("ZoneId", "Type", "Method", "Targets", "EncodeUrl", "CacheTag"))
    check_zone(state, body, "CreatePurgeTask")
    purge_type = body.get("Type")
    if purge_type is None:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Type`.")
    if purge_type not in PURGE_TYPES:
        raise ApiError("InvalidParameter.ParameterError", f"参数错误。Type `{purge_type}`")
    method = body.get("Method", "invalidate")
    if method not in METHODS:
        raise ApiError("InvalidParameter.ParameterError", f"参数错误。Method `{method}`")
    if "EncodeUrl" in body and not isinstance(body["EncodeUrl"], bool):
        raise ApiError("InvalidParameter", "The type of parameter `EncodeUrl` is incorrect, expected bool.")
    targets = strings(body, "Targets", required=purge_type != "purge_all")
    if purge_type != "purge_all" and not targets:
        raise ApiError("InvalidParameter.ParameterError", "参数错误。Targets is empty.")
    if purge_type == "purge_cache_tag":
        if not state.cfg.tags:
            raise ApiError("LimitExceeded.PackNotAllow", "计费套餐不支持。")
        tag = body.get("CacheTag")
        if not isinstance(tag, dict):
            raise ApiError("MissingParameter",
                           "The request is missing a required parameter `CacheTag`.")
        check_params(tag, ("Domains",))
        for d in strings(tag, "Domains"):
            if state.cfg.domains and d.lower() not in state.cfg.domains:
                raise ApiError("InvalidParameter.DomainNotFound", f"域名不存在或不属于该账号。({d})")
    elif "CacheTag" in body:
        raise ApiError("InvalidParameter.ParameterError", "参数错误。CacheTag is only for purge_cache_tag.")
    for item in targets:
        check_target(state, purge_type, item)
    batch, daily = state.limits(purge_type)
    if len(targets) > batch:
        raise ApiError("LimitExceeded.BatchQuota",
                       f"本次提交的资源数超过上限。{len(targets)} > {batch}")
    failed = [t for t in targets if t in state.rejected]
    taken = [t for t in targets if t not in state.rejected]
    if state.used[purge_type] + len(taken) > daily:
        raise ApiError("LimitExceeded.DailyQuota",
                       f"当天提交的资源数超过上限。{purge_type} daily quota {daily}")
    state.used[purge_type] += len(taken)
    job_id = "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
    now = time.time()
    task_method = method if purge_type in ("purge_prefix", "purge_host", "purge_all") else "delete"
    state.jobs[job_id] = [{"JobId": job_id, "Target": t, "Type": purge_type,
                           "Method": task_method, "Status": state.task_status,
                           "CreateTime": iso(now), "UpdateTime": iso(now),
                           "FailType": "", "FailMessage": ""} for t in taken]
    state.stats["purge_ok"] += 1
    state.stats["targets_purged"] += len(taken)
    reasons = collections.OrderedDict()
    for t in failed:
        reasons.setdefault(state.rejected[t], []).append(t)
    return {"JobId": job_id,
            "FailedList": [{"Reason": r, "Targets": ts} for r, ts in reasons.items()]}


def describe_purge_tasks(state, body):
    check_params(body, ("ZoneId", "StartTime", "EndTime", "Offset", "Limit", "Filters"))
    check_zone(state, body, "DescribePurgeTasks")
    offset, limit = body.get("Offset", 0), body.get("Limit", 20)
    for name, value in (("Offset", offset), ("Limit", limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError("InvalidParameter", f"The type of parameter `{name}` is incorrect, expected integer.")
    if not 1 <= limit <= 1000:
        raise ApiError("InvalidParameter.ParameterError", "参数错误。Limit must be 1 to 1000.")
    filters = body.get("Filters") or []
    if not isinstance(filters, list):
        raise ApiError("InvalidParameter", "The type of parameter `Filters` is incorrect.")
    wanted = {}
    for f in filters:
        if not isinstance(f, dict) or f.get("Name") not in FILTERS:
            raise ApiError("InvalidParameter.ParameterError", f"参数错误。filter {f!r}")
        values = f.get("Values")
        if not isinstance(values, list) or not values or len(values) > 20 \
                or not all(isinstance(v, str) for v in values):
            raise ApiError("InvalidParameter.ParameterError", f"参数错误。filter values {values!r}")
        if f["Name"] in ("job-id", "target", "type") and len(values) > 1:
            raise ApiError("InvalidParameter.ParameterError", f"参数错误。{f['Name']} 暂不支持多值")
        wanted[f["Name"]] = values
    if "job-id" not in wanted and not (body.get("StartTime") and body.get("EndTime")):
        raise ApiError("InvalidParameter.ParameterError", "查询起始时间，时间与 job-id 必填一个。")
    tasks = [t for ts in state.jobs.values() for t in ts]
    if "job-id" in wanted:
        tasks = [t for t in tasks if t["JobId"] == wanted["job-id"][0]]
    if "statuses" in wanted:
        tasks = [t for t in tasks if t["Status"] in wanted["statuses"]]
    if "target" in wanted:
        tasks = [t for t in tasks if wanted["target"][0] in t["Target"]]
    if "type" in wanted:
        tasks = [t for t in tasks if t["Type"] == wanted["type"][0]]
    return {"TotalCount": len(tasks), "Tasks": [dict(t) for t in tasks[offset:offset + limit]]}


def describe_content_quota(state, body):
    check_params(body, ("ZoneId",))
    check_zone(state, body, "DescribeContentQuota")
    types = [t for t in PURGE_TYPES if t != "purge_cache_tag" or state.cfg.tags]
    purge = []
    for t in types:
        batch, daily = state.limits(t)
        purge.append({"Type": t, "Batch": batch, "Daily": daily,
                      "DailyAvailable": max(0, daily - state.used[t])})
    batch, daily = state.limits("prefetch_url")
    return {"PurgeQuota": purge,
            "PrefetchQuota": [{"Type": "prefetch_url", "Batch": batch, "Daily": daily,
                               "DailyAvailable": max(0, daily - state.used["prefetch_url"])}]}


def create_prefetch_task(state, body):
    """CreatePrefetchTask: URLs as purge_url's, counted in the zone's prefetch_url quota."""
    check_params(body, ("ZoneId", "Targets", "Mode", "EncodeUrl", "Headers",
                        "PrefetchMediaSegments"))
    check_zone(state, body, "CreatePrefetchTask")
    mode = body.get("Mode", "default")
    if mode not in ("default", "edge"):
        raise ApiError("InvalidParameter.ParameterError", f"参数错误。Mode `{mode}`")
    if "EncodeUrl" in body and not isinstance(body["EncodeUrl"], bool):
        raise ApiError("InvalidParameter", "The type of parameter `EncodeUrl` is incorrect, expected bool.")
    targets = strings(body, "Targets")
    if not targets:
        raise ApiError("InvalidParameter.ParameterError", "参数错误。Targets is empty.")
    for item in targets:
        check_target(state, "purge_url", item)
    batch, daily = state.limits("prefetch_url")
    if len(targets) > batch:
        raise ApiError("LimitExceeded.BatchQuota",
                       f"本次提交的资源数超过上限。{len(targets)} > {batch}")
    failed = [t for t in targets if t in state.rejected_prefetch]
    taken = [t for t in targets if t not in state.rejected_prefetch]
    if state.used["prefetch_url"] + len(taken) > daily:
        raise ApiError("LimitExceeded.DailyQuota",
                       f"当天提交的资源数超过上限。prefetch_url daily quota {daily}")
    state.used["prefetch_url"] += len(taken)
    job_id = "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
    now = time.time()
    state.jobs[job_id] = [{"JobId": job_id, "Target": t, "Type": "prefetch_url",
                           "Method": "", "Status": "success", "CreateTime": iso(now),
                           "UpdateTime": iso(now), "FailType": "", "FailMessage": ""}
                          for t in taken]
    state.stats["prefetch_ok"] = state.stats.get("prefetch_ok", 0) + 1
    reasons = collections.OrderedDict()
    for t in failed:
        reasons.setdefault(state.rejected_prefetch[t], []).append(t)
    return {"JobId": job_id,
            "FailedList": [{"Reason": r, "Targets": ts} for r, ts in reasons.items()]}


HANDLERS = {
    "CreatePurgeTask": create_purge_task,
    "DescribePurgeTasks": describe_purge_tasks,
    "DescribeContentQuota": describe_content_quota,
    "CreatePrefetchTask": create_prefetch_task,
}


# --------------------------------------------------------------------------
# HTTP layer (fake_tencent_cdn's handler, with this API and these control routes)
# --------------------------------------------------------------------------
class Handler(tc.Handler):
    server_version = "FakeEdgeOne/1.0"

    def _log(self, status, detail=""):
        if Handler.quiet:
            return
        sys.stderr.write(f"[fake-edgeone] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

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
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            status, payload = 400, {"error": f"bad control request: {exc}"}
        self._log(status)
        self._send(status, payload)

    def _api(self, raw):
        state, cfg = self.state, self.state.cfg
        request_id = str(uuid.uuid4())
        action = self.headers.get("X-TC-Action")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        rec = {"time": time.time(), "action": action,
               "headers": {k.lower(): ("***" if k.lower() in tc.MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "body": body, "signature_ok": False, "error_code": None,
               "request_id": request_id, "job_id": None, "failed_list": None}
        with state.lock:
            state.requests.append(rec)
            state.stats["requests"] += 1
        fault, result = None, None
        try:
            tc.authenticate(cfg, self.headers, raw, rec, service=SERVICE)
            action, body = check_envelope(self.headers, raw)
            with state.lock:
                # A fault names its action (default CreatePurgeTask) and waits for it.
                if state.faults and \
                        state.faults[0][0].get("action", "CreatePurgeTask") == action:
                    fault = state.pop_use(state.faults)
                if fault is None:
                    check_rate(state, action, time.monotonic())
                    result = HANDLERS[action](state, body)
            if fault is not None and "http_status" not in fault:
                raise ApiError(fault.get("code", "InternalError"),
                               fault.get("message", "An internal error has occurred."))
        except ApiError as err:
            result = {"Error": {"Code": err.code, "Message": err.message}}
        if fault is not None and "http_status" in fault:
            status, code = int(fault["http_status"]), f"HTTP{int(fault['http_status'])}"
            payload, ctype = str(fault.get("raw", "")).encode("utf-8"), "text/plain"
        else:
            status, code = 200, result.get("Error", {}).get("Code")
            payload, ctype = {"Response": {**result, "RequestId": request_id}}, "application/json"
        with state.lock:
            rec["error_code"] = code
            rec["job_id"] = (result or {}).get("JobId")
            rec["failed_list"] = (result or {}).get("FailedList")
            if code:
                state.stats["errors"][code] += 1
        self._log(status, f"action={action} code={code or 'OK'} request_id={request_id}")
        self._send(status, payload, ctype)


State.pop_use = staticmethod(tc.State.pop_use)


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------
def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_fail(state, arg):
    entry = dict(arg)
    if "http_status" in entry:
        int(entry["http_status"])
    elif "code" not in entry:
        raise ValueError("need `code` or `http_status`")
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_tasks(state, arg):
    status = arg.get("status")
    if status not in STATUSES:
        return 400, {"error": f"status must be one of {', '.join(STATUSES)}"}
    with state.lock:
        if arg.get("all") or arg.get("target"):
            for tasks in state.jobs.values():
                for t in tasks:
                    if arg.get("all") or t["Target"] == arg.get("target"):
                        t["Status"] = status
                        t["UpdateTime"] = iso(time.time())
                        if status == "failed":
                            t["FailType"] = arg.get("fail_type", "taskFailed")
                            t["FailMessage"] = arg.get("fail_message", "")
        else:
            state.task_status = status
    return 200, {"ok": True}


def _control_deny(state, arg):
    actions = arg.get("actions")
    if not isinstance(actions, list):
        raise ValueError("need `actions`: a list")
    with state.lock:
        state.denied = set(actions)
    return 200, {"ok": True}


def _control_reject(state, arg):
    targets = arg.get("targets")
    if not isinstance(targets, list):
        raise ValueError("need `targets`: a list")
    with state.lock:
        into = state.rejected_prefetch if arg.get("action") == "CreatePrefetchTask" \
            else state.rejected
        for t in targets:
            into[t] = str(arg.get("reason", "invalid target"))
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
    ("POST", "/__control/reject"): _control_reject,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/stats"): _control_stats,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def start(cfg):
    """Serves in a background thread; returns the server (shutdown() stops it)."""
    Handler.quiet = cfg.quiet
    Handler.state = State(cfg)
    Handler.stop_event = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return server


# --------------------------------------------------------------------------
# Self-check with the official SDK
# --------------------------------------------------------------------------
SELF_ID, SELF_KEY, SELF_ZONE = "AKIDselfEXAMPLE0000000000000000000", "selfEXAMPLEkey0000000000000000", "zone-2o0i41pv2h8c"


def self_check():
    """Calls the stand-in through the official teo client (tencentcloud-sdk-python-teo):
    what the SDK signs and sends must be accepted, its errors must come out as the SDK's
    exception with Tencent's codes. Prints one line per check."""
    try:
        from tencentcloud.common import credential
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException)
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.teo.v20220901 import models, teo_client
    except ImportError:
        sys.exit("fake_edgeone: --self-check needs tencentcloud-sdk-python-teo "
                 "(see testkit/requirements.txt)")
    cfg = parse_args(["--port", "0", "--secret-id", SELF_ID, "--secret-key", SELF_KEY,
                      "--zone", SELF_ZONE, "--domains", "www.example.com",
                      "--url-batch", "3", "--url-daily", "5", "--quiet",
                      "--prefetch-batch", "2", "--prefetch-daily", "3"])
    server = start(cfg)
    port = server.server_address[1]

    def client(key=SELF_KEY):
        http = HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}")
        return teo_client.TeoClient(credential.Credential(SELF_ID, key), "",
                                    ClientProfile(httpProfile=http))

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
            return e
        raise AssertionError(f"{what}: accepted")

    c = client()
    r = c.CreatePurgeTask(req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
                              Targets=["http://www.example.com/a.txt"]))
    assert r.JobId and r.FailedList == [], r.to_json_string()
    print("purge_url: job", r.JobId)
    job = r.JobId
    r = c.CreatePurgeTask(req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_prefix",
                              Method="delete", Targets=["http://www.example.com/test/"]))
    print("purge_prefix delete: job", r.JobId)
    r = c.CreatePurgeTask(req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE,
                              Type="purge_cache_tag", Targets=["tag1", "tag2"],
                              CacheTag={"Domains": ["www.example.com"]}))
    print("purge_cache_tag: job", r.JobId)
    r = c.DescribePurgeTasks(req("DescribePurgeTasksRequest", ZoneId=SELF_ZONE,
                                 Filters=[{"Name": "job-id", "Values": [job]}]))
    assert r.TotalCount == 1 and r.Tasks[0].Status == "success", r.to_json_string()
    assert r.Tasks[0].Target == "http://www.example.com/a.txt", r.to_json_string()
    print("DescribePurgeTasks by job-id: success")
    r = c.DescribeContentQuota(req("DescribeContentQuotaRequest", ZoneId=SELF_ZONE))
    url = [q for q in r.PurgeQuota if q.Type == "purge_url"][0]
    assert (url.Batch, url.Daily, url.DailyAvailable) == (3, 5, 4), r.to_json_string()
    print("DescribeContentQuota: purge_url 3/5, 4 left")
    Handler.state.rejected["http://www.example.com/bad"] = "url format error"
    r = c.CreatePurgeTask(req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
                              Targets=["http://www.example.com/ok",
                                       "http://www.example.com/bad"]))
    assert [(f.Reason, f.Targets) for f in r.FailedList] == \
        [("url format error", ["http://www.example.com/bad"])], r.to_json_string()
    print("FailedList: names the refused target")
    purge = Handler.state.requests[0]
    assert purge["signature_ok"] and purge["headers"]["authorization"] == "***", purge

    expect_error("wrong key", lambda: client("x" * 30).CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
            Targets=["http://www.example.com/a"])), "AuthFailure.SignatureFailure")
    expect_error("4 URLs over a batch of 3", lambda: c.CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
            Targets=[f"http://www.example.com/{i}" for i in range(4)])),
        "LimitExceeded.BatchQuota")
    c.CreatePurgeTask(req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
                          Targets=[f"http://www.example.com/{i}" for i in range(3)]))
    expect_error("daily quota (5 used)", lambda: c.CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
            Targets=["http://www.example.com/one-more"])), "LimitExceeded.DailyQuota")
    expect_error("tag without CacheTag", lambda: c.CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_cache_tag",
            Targets=["t"])), "MissingParameter")
    expect_error("URL without scheme", lambda: c.CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
            Targets=["www.example.com/a"])), "InvalidParameter.Target")
    expect_error("domain not in the zone", lambda: c.CreatePurgeTask(
        req("CreatePurgeTaskRequest", ZoneId=SELF_ZONE, Type="purge_url",
            Targets=["http://other.example.net/a"])), "InvalidParameter.DomainNotFound")
    expect_error("another zone", lambda: c.DescribeContentQuota(
        req("DescribeContentQuotaRequest", ZoneId="zone-other")), "ResourceNotFound.ZoneNotFound")
    r = c.CreatePrefetchTask(req("CreatePrefetchTaskRequest", ZoneId=SELF_ZONE,
                                 Targets=["http://www.example.com/a.txt"]))
    assert r.JobId and r.FailedList == [], r.to_json_string()
    print("CreatePrefetchTask: job", r.JobId)
    r = c.DescribeContentQuota(req("DescribeContentQuotaRequest", ZoneId=SELF_ZONE))
    pre = r.PrefetchQuota[0]
    assert (pre.Type, pre.Batch, pre.Daily, pre.DailyAvailable) == \
        ("prefetch_url", 2, 3, 2), r.to_json_string()
    print("DescribeContentQuota: prefetch_url 2/3, 2 left")
    expect_error("3 prefetches over a batch of 2", lambda: c.CreatePrefetchTask(
        req("CreatePrefetchTaskRequest", ZoneId=SELF_ZONE,
            Targets=[f"http://www.example.com/p{i}" for i in range(3)])),
        "LimitExceeded.BatchQuota")
    c.CreatePrefetchTask(req("CreatePrefetchTaskRequest", ZoneId=SELF_ZONE,
                             Targets=["http://www.example.com/p1", "http://www.example.com/p2"]))
    expect_error("prefetch daily quota (3 used)", lambda: c.CreatePrefetchTask(
        req("CreatePrefetchTaskRequest", ZoneId=SELF_ZONE,
            Targets=["http://www.example.com/p3"])), "LimitExceeded.DailyQuota")
    Handler.state.denied = {"DescribePurgeTasks"}
    expect_error("key without DescribePurgeTasks", lambda: c.DescribePurgeTasks(
        req("DescribePurgeTasksRequest", ZoneId=SELF_ZONE,
            Filters=[{"Name": "job-id", "Values": [job]}])),
        "UnauthorizedOperation.CamUnauthorized")
    server.shutdown()
    print("self-check ok")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--secret-id")
    p.add_argument("--secret-key")
    p.add_argument("--zone", help="the zone id the account has")
    p.add_argument("--token", default=None, help="require this X-TC-Token")
    p.add_argument("--domains", default="", help="comma-separated; empty = any host")
    p.add_argument("--url-batch", type=int, default=2000)
    p.add_argument("--url-daily", type=int, default=10000)
    p.add_argument("--prefix-batch", type=int, default=1000)
    p.add_argument("--prefix-daily", type=int, default=10000)
    p.add_argument("--tag-batch", type=int, default=100)
    p.add_argument("--tag-daily", type=int, default=10000)
    p.add_argument("--no-tags", dest="tags", action="store_false",
                   help="the plan does not offer cache-tag purges (LimitExceeded.PackNotAllow)")
    p.add_argument("--rate", type=int, default=20)
    p.add_argument("--prefetch-batch", type=int, default=1000)
    p.add_argument("--prefetch-daily", type=int, default=1000)
    p.add_argument("--deny", default="", help="comma-separated actions the key may not call")
    p.add_argument("--self-check", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no log line per request")
    cfg = p.parse_args(argv)
    if not cfg.self_check and not (cfg.secret_id and cfg.secret_key and cfg.zone):
        p.error("--secret-id, --secret-key and --zone are required")
    cfg.domains = {d.strip().lower() for d in cfg.domains.split(",") if d.strip()}
    cfg.deny = {a.strip() for a in cfg.deny.split(",") if a.strip()}
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    if cfg.self_check:
        self_check()
        return 0
    server = start(cfg)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    stop = Handler.stop_event
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-edgeone] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
