#!/usr/bin/env python3
"""Loopback stand-in for the Cloudflare Queues HTTP API (pull consumers).

Serves the calls an HTTP pull consumer makes, under /client/v4 as api.cloudflare.com does:

  POST /client/v4/accounts/{account}/queues/{queue}/messages/pull
       {"batch_size": 1..100 (default 5), "visibility_timeout_ms": 1..43200000 (default 30000)}
  POST /client/v4/accounts/{account}/queues/{queue}/messages/ack
       {"acks": [{"lease_id"}], "retries": [{"lease_id", "delay_seconds": 0..43200}]}
  POST /client/v4/accounts/{account}/queues/{queue}/messages
       {"body", "content_type": "json" | "text", "delay_seconds"}

and enforces what Cloudflare documents for them:
  * `Authorization: Bearer <token>` with the configured token, and the configured account:
    else HTTP 403 {"success": false, "errors": [{"code": 10000, "message":
    "Authentication error"}]} (Cloudflare's error shape);
  * an unknown queue is 404 (10104 QueueNotFound); a queue without HTTP pull enabled
    answers a pull 405; batch_size over 100 is 400 (10206);
  * a pulled message is leased for the visibility timeout: no other pull gets it until the
    lease ends, then it is delivered again with attempts + 1 and a new lease id;
  * acks and retries name lease ids; as Cloudflare is "permissive", any lease id a message
    ever had acknowledges it, also after its lease ran out; an unknown lease id is ignored
    (counted in a warning);
  * a message whose delivery failed (lease ran out, or marked for retry) after `max_retries`
    deliveries goes to the queue's dead-letter queue, or is deleted without one;
  * bodies come out as Cloudflare's pull does: `json` and `bytes` base64 (RFC 4648), `text`
    as is, with metadata {"CF-sourceMessageSource", "CF-Content-Type"}; the answer carries
    `message_backlog_count`.

Usage:
  python3 fake_cf_queues.py --port 0 --account ID --token TOKEN --queue ID [--queue ID ...]
      [--max-retries 3]

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until SIGTERM/SIGINT.
One log line per request goes to stderr (never the token).

Control API (same port, plain JSON, for tests):
  POST /__control/send      {"queue", "body", "content_type": "json"|"text"|"bytes"|"v8",
                             "delay_s"}: publish (`bytes` and `v8` bodies are given base64)
  POST /__control/queue     {"queue", "max_retries", "dead_letter_queue", "http_pull"}: set
  GET  /__control/state?queue=ID  {"ready", "delayed", "leased", "messages": [...],
                             "acked": [ids], "deleted": [ids]}
  POST /__control/throttle  {"count", "retry_after"}: the next `count` API calls answer 429
  POST /__control/fail      {"count", "status"}: the next `count` API calls answer that status
  GET  /__control/requests  every API call received, in order (authorization masked)
  POST /__control/reset     forget the requests and faults (queues are kept)
"""

import argparse
import base64
import collections
import json
import re
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BATCH = 100
MAX_VISIBILITY_MS = 12 * 3600 * 1000
MAX_DELAY_S = 12 * 3600
DEFAULT_BATCH = 5
DEFAULT_VISIBILITY_MS = 30_000
CONTENT_TYPES = ("json", "text", "bytes", "v8")
PATH_RE = re.compile(
    r"^/client/v4/accounts/([^/]+)/queues/([^/]+)/messages(?:/(pull|ack))?$")


class ApiError(Exception):
    """An error answered in Cloudflare's shape."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class Message:
    def __init__(self, body, content_type, delay_s):
        self.id = uuid.uuid4().hex
        self.body = body                      # bytes as published
        self.content_type = content_type
        self.timestamp_ms = int(time.time() * 1000)
        self.attempts = 0
        self.visible_at = time.monotonic() + delay_s
        self.lease = None                     # current lease id
        self.lease_ends = 0.0
        self.leases = set()                   # every lease id it ever had

    def pulled_body(self):
        if self.content_type == "text":
            return self.body.decode("utf-8")
        return base64.b64encode(self.body).decode("ascii")

    def view(self, now):
        return {"id": self.id, "attempts": self.attempts, "content_type": self.content_type,
                "body": self.pulled_body(), "leased": self.lease is not None,
                "lease_left_s": max(0.0, self.lease_ends - now) if self.lease else 0.0,
                "visible_in_s": max(0.0, self.visible_at - now)}


class Queue:
    def __init__(self, qid, max_retries):
        self.id = qid
        self.max_retries = max_retries
        self.dead_letter_queue = None
        self.http_pull = True
        self.messages = collections.OrderedDict()  # id -> Message
        self.acked = []
        self.deleted = []


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.queues = {q: Queue(q, cfg.max_retries) for q in cfg.queue}
        self.reset()

    def reset(self):
        self.requests = []
        self.faults = collections.deque()      # [fault, remaining]

    def queue(self, qid):
        q = self.queues.get(qid)
        if q is None:
            raise ApiError(404, 10104, "QueueNotFound: Queue does not exist")
        return q

    def failed_delivery(self, q, m, now, delay_s=0):
        """A delivery that ended without an ack: dead-letter after max_retries, else again."""
        m.lease = None
        if m.attempts >= q.max_retries:
            del q.messages[m.id]
            dlq = self.queues.get(q.dead_letter_queue) if q.dead_letter_queue else None
            if dlq is not None:
                moved = Message(m.body, m.content_type, 0)
                moved.id = m.id
                dlq.messages[moved.id] = moved
            else:
                q.deleted.append(m.id)
        else:
            m.visible_at = now + delay_s

    def expire(self, q, now):
        for m in list(q.messages.values()):
            if m.lease is not None and m.lease_ends <= now:
                self.failed_delivery(q, m, now)


def publish(q, body, content_type, delay_s):
    if content_type not in CONTENT_TYPES:
        raise ApiError(400, 10203, "MessageMetadataInvalid: invalid content type")
    if content_type == "json":
        data = json.dumps(body).encode("utf-8")
    elif content_type == "text":
        if not isinstance(body, str):
            raise ApiError(400, 10207, "JSONRequestBodyInvalid: a text body is a string")
        data = body.encode("utf-8")
    else:
        data = base64.b64decode(body, validate=True)
    if len(data) > 128_000:
        raise ApiError(400, 10204, "MessageSizeOutOfBounds: Message size out of bounds")
    m = Message(data, content_type, delay_s)
    q.messages[m.id] = m
    return m


def api_pull(state, q, body, now):
    if not q.http_pull:
        raise ApiError(405, 10106, "messages cannot be pulled unless http_pull mode is enabled")
    batch = body.get("batch_size", DEFAULT_BATCH)
    vt = body.get("visibility_timeout_ms", body.get("visibility_timeout", DEFAULT_VISIBILITY_MS))
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise ApiError(400, 10206, "BatchCountOutOfBounds: batch_size must be 1 to 100")
    if not isinstance(vt, int) or isinstance(vt, bool) or not 1 <= vt <= MAX_VISIBILITY_MS:
        raise ApiError(400, 10207,
                       "JSONRequestBodyInvalid: visibility_timeout_ms must be at most 12 hours")
    state.expire(q, now)
    out = []
    for m in q.messages.values():
        if len(out) >= batch:
            break
        if m.lease is None and m.visible_at <= now:
            m.attempts += 1
            m.lease = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0.." + secrets.token_urlsafe(24)
            m.leases.add(m.lease)
            m.lease_ends = now + vt / 1000.0
            out.append({"body": m.pulled_body(), "id": m.id, "timestamp_ms": m.timestamp_ms,
                        "attempts": m.attempts, "lease_id": m.lease,
                        "metadata": {"CF-sourceMessageSource": "api",
                                     "CF-Content-Type": m.content_type}})
    backlog = len(q.messages)
    return {"message_backlog_count": backlog, "messages": out,
            "metadata": {"metrics": {"backlog_count": backlog,
                                     "backlog_bytes": sum(len(m.body) for m in q.messages.values()),
                                     "oldest_message_timestamp_ms": min(
                                         (m.timestamp_ms for m in q.messages.values()), default=0)}}}


def api_ack(state, q, body, now):
    acks, retries = body.get("acks", []), body.get("retries", [])
    if not isinstance(acks, list) or not isinstance(retries, list):
        raise ApiError(400, 10207, "JSONRequestBodyInvalid: acks and retries are arrays")
    by_lease = {lease: m for m in q.messages.values() for lease in m.leases}
    ack_count, retry_count, unknown = 0, 0, 0
    for a in acks:
        m = by_lease.get((a or {}).get("lease_id"))
        if m is None or m.id not in q.messages:
            unknown += 1
            continue
        del q.messages[m.id]
        q.acked.append(m.id)
        ack_count += 1
    for r in retries:
        delay = (r or {}).get("delay_seconds", 0)
        if not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_S:
            raise ApiError(400, 10203, "MessageMetadataInvalid: invalid delay")
        m = by_lease.get((r or {}).get("lease_id"))
        if m is None or m.id not in q.messages or m.lease != r.get("lease_id"):
            unknown += 1
            continue
        state.failed_delivery(q, m, now, delay)
        retry_count += 1
    warnings = [f"{unknown} lease ids were not found"] if unknown else []
    return {"ackCount": ack_count, "retryCount": retry_count, "warnings": warnings}


def api_push(state, q, body, now):
    content_type = body.get("content_type", "json")
    if content_type not in ("json", "text"):
        raise ApiError(400, 10203, "MessageMetadataInvalid: invalid content type")
    delay = body.get("delay_seconds", 0)
    if not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_S:
        raise ApiError(400, 10203, "MessageMetadataInvalid: invalid delay")
    if "body" not in body:
        raise ApiError(400, 10207, "JSONRequestBodyInvalid: body is required")
    publish(q, body["body"], content_type, delay)
    return None


API = {"pull": api_pull, "ack": api_ack, None: api_push}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeCloudflareQueues/1.0"
    state = None
    stop_event = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        sys.stderr.write(f"[fake-cf-queues] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

    def _read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch(None)

    def do_POST(self):
        self._dispatch(self._read_body())

    def _dispatch(self, raw):
        url = urlsplit(self.path)
        if url.path.startswith("/__control/"):
            return self._control(url, raw)
        if self.command != "POST":
            return self._error(ApiError(404, 7003, "No route for the URI"), None)
        return self._api(url.path, raw)

    def _error(self, err, rec):
        if rec is not None:
            rec["status"] = err.status
            rec["error_code"] = err.code
        self._log(err.status, f"code={err.code}")
        self._send(err.status, {"success": False,
                                "errors": [{"code": err.code, "message": err.message}],
                                "messages": [], "result": None}, err.headers)

    def _api(self, path, raw):
        state, cfg = self.state, self.state.cfg
        now = time.monotonic()
        try:
            body = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            body = None
        auth = self.headers.get("Authorization") or ""
        rec = {"time": time.time(), "path": path, "body": body,
               "authorization": "Bearer ***" if auth.startswith("Bearer ") else ("***" if auth else None),
               "content_type": self.headers.get("Content-Type"), "status": 200, "error_code": None}
        with state.lock:
            state.requests.append(rec)
        try:
            m = PATH_RE.match(path)
            if m is None:
                raise ApiError(404, 7003, "No route for the URI")
            account, qid, action = m.groups()
            if not secrets.compare_digest(auth.encode(), f"Bearer {cfg.token}".encode()) \
                    or account != cfg.account:
                raise ApiError(403, 10000, "Authentication error")
            with state.lock:
                fault = None
                if state.faults:
                    head = state.faults[0]
                    head[1] -= 1
                    if head[1] <= 0:
                        state.faults.popleft()
                    fault = head[0]
                if fault is not None:
                    if fault["status"] == 429:
                        raise ApiError(429, 971, "Please wait and consider throttling your request speed",
                                       {"Retry-After": str(fault["retry_after"])})
                    raise ApiError(fault["status"], 15000, "UnknownInternalError: Unknown error")
                if not isinstance(body, dict):
                    raise ApiError(400, 10208, "JSONRequestBodyMalformed: request body is not valid JSON")
                q = state.queue(qid)
                result = API[action](state, q, body, now)
        except ApiError as err:
            return self._error(err, rec)
        self._log(200, f"queue={qid} action={action or 'push'}")
        self._send(200, {"success": True, "errors": [], "messages": [], "result": result})

    def _control(self, url, raw):
        state = self.state
        try:
            arg = json.loads(raw.decode("utf-8") or "{}") if raw is not None else {}
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            route = CONTROL.get((self.command, url.path))
            if route is None:
                status, payload = 404, {"error": "not found"}
            else:
                with state.lock:
                    status, payload = route(state, arg, query)
        except ApiError as err:
            status, payload = 400, {"error": err.message}
        except (ValueError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": f"bad control request: {exc!r}"}
        self._log(status)
        self._send(status, payload)


def control_send(state, arg, _):
    q = state.queue(arg["queue"])
    m = publish(q, arg["body"], arg.get("content_type", "json"), float(arg.get("delay_s", 0)))
    return 200, {"id": m.id}


def control_queue(state, arg, _):
    qid = arg["queue"]
    q = state.queues.setdefault(qid, Queue(qid, state.cfg.max_retries))
    if "max_retries" in arg:
        q.max_retries = int(arg["max_retries"])
    if "dead_letter_queue" in arg:
        q.dead_letter_queue = arg["dead_letter_queue"]
    if "http_pull" in arg:
        q.http_pull = bool(arg["http_pull"])
    return 200, {"ok": True}


def control_state(state, _, query):
    q = state.queue(query["queue"])
    now = time.monotonic()
    state.expire(q, now)
    views = [m.view(now) for m in q.messages.values()]
    return 200, {"ready": sum(1 for v in views if not v["leased"] and v["visible_in_s"] == 0),
                 "delayed": sum(1 for v in views if not v["leased"] and v["visible_in_s"] > 0),
                 "leased": sum(1 for v in views if v["leased"]),
                 "messages": views, "acked": list(q.acked), "deleted": list(q.deleted)}


def control_fault(status_of):
    def route(state, arg, _):
        status = status_of(arg)
        state.faults.append([{"status": status, "retry_after": int(arg.get("retry_after", 1))},
                             int(arg.get("count", 1))])
        return 200, {"ok": True}
    return route


def control_requests(state, _, __):
    return 200, json.loads(json.dumps(state.requests))


def control_reset(state, _, __):
    state.reset()
    return 200, {"ok": True}


CONTROL = {
    ("POST", "/__control/send"): control_send,
    ("POST", "/__control/queue"): control_queue,
    ("GET", "/__control/state"): control_state,
    ("POST", "/__control/throttle"): control_fault(lambda _: 429),
    ("POST", "/__control/fail"): control_fault(lambda a: int(a.get("status", 500))),
    ("GET", "/__control/requests"): control_requests,
    ("POST", "/__control/reset"): control_reset,
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--account", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--queue", action="append", default=[])
    p.add_argument("--max-retries", type=int, default=3)
    cfg = p.parse_args(argv)

    Handler.state = State(cfg)
    Handler.stop_event = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: Handler.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: Handler.stop_event.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    while not Handler.stop_event.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-cf-queues] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
