#!/usr/bin/env python3
"""Loopback stand-in for the Amazon CloudFront API (2020-05-31): CreateInvalidation,
GetInvalidation and ListInvalidations.

Checks every call the way AWS does: SigV4 recomputed independently with botocore
(botocore.auth.SigV4Auth over an AWSRequest rebuilt from what was received, for the
headers the client says it signed), X-Amz-Date skew at most 5 minutes, credential scope
(date, us-east-1, cloudfront), the session token; then the rest-xml body
(InvalidationBatch in the 2020-05-31 namespace, Quantity = number of Items, paths that
begin with / or # for cache tags, `*` only last, at most 4,000 characters, tags of
visible ASCII without commas and at most 256 characters) and the documented limits: at
most 3,000 paths and 15 wildcard paths in progress per distribution (more:
TooManyInvalidationsInProgress), 3,000 per batch (BatchTooLarge). CallerReference is
idempotent: the same reference with the same paths returns the earlier invalidation
(201); with other paths InvalidationBatchAlreadyExists (409). Answers use CloudFront's
XML shapes and headers (201 + Location, x-amz-request-id; ErrorResponse with Type, Code,
Message, RequestId).

Usage:
  python3 fake_cloudfront.py --port 0 --access-key-id ID --secret-access-key KEY
      [--token TOKEN] [--distributions E1,E2] [--max-paths 3000] [--max-wildcards 15]
      [--complete-after-s N]

Prints "LISTENING <port>" as the first stdout line, serves on 127.0.0.1 until
SIGTERM/SIGINT. One log line per request goes to stderr (never secrets).

Control API (same port, plain JSON, for tests):
  GET  /__control/requests       every API call received, in order (secrets masked)
  GET  /__control/invalidations  every invalidation made, in order
  POST /__control/fail           {"code","message","http_status","count"}: the next API
                                 calls fail with that CloudFront error; or
                                 {"http_status","raw","content_type","headers","count"}:
                                 a raw answer; or {"lose_answer": true, "count"}: the call
                                 is carried out, then the connection is closed unanswered
  POST /__control/complete       {"id": "..."} or {}: mark one or every invalidation Completed
  POST /__control/reset          clear requests, invalidations and faults
  GET  /__control/health         {"ok": true}
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
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_cloudfront: needs botocore (see testkit/requirements.txt)")

API_VERSION = "2020-05-31"
NAMESPACE = f"http://cloudfront.amazonaws.com/doc/{API_VERSION}/"
SERVICE = "cloudfront"
REGION = "us-east-1"
MAX_SKEW_SECONDS = 300
MAX_PATH_LEN = 4000
MAX_TAG_LEN = 256
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/\s,]+)/(\d{8})/([^/\s,]+)/([^/\s,]+)/aws4_request, ?"
    r"SignedHeaders=([a-z0-9\-;]+), ?Signature=([0-9a-f]{64})$")
CREATE_RE = re.compile(rf"^/{API_VERSION}/distribution/([^/?]+)/invalidation$")
GET_RE = re.compile(rf"^/{API_VERSION}/distribution/([^/?]+)/invalidation/([^/?]+)$")
MASKED_HEADERS = ("authorization", "x-amz-security-token")


class ApiError(Exception):
    """A CloudFront error answer."""

    def __init__(self, status, code, message, kind="Sender"):
        super().__init__(code)
        self.status, self.code, self.message, self.kind = status, code, message, kind


def error_xml(err, request_id):
    return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{NAMESPACE}"><Error>'
            f"<Type>{err.kind}</Type><Code>{escape(err.code)}</Code>"
            f"<Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode("utf-8")


def new_id():
    return "I" + "".join(random.choices(string.ascii_uppercase + string.digits, k=13))


class State:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = []
        self.invalidations = collections.OrderedDict()  # id -> record
        self.faults = collections.deque()               # [entry, remaining]

    def pop_fault(self):
        if not self.faults:
            return None
        head = self.faults[0]
        head[1] -= 1
        if head[1] <= 0:
            self.faults.popleft()
        return head[0]

    def tick(self):
        """Invalidations older than --complete-after-s complete on their own."""
        after = self.cfg.complete_after_s
        if after is None:
            return
        now = time.time()
        for inv in self.invalidations.values():
            if inv["status"] == "InProgress" and now - inv["created"] >= after:
                inv["status"] = "Completed"

    def in_progress(self, dist):
        paths = wildcards = 0
        for inv in self.invalidations.values():
            if inv["distribution"] == dist and inv["status"] == "InProgress":
                paths += len(inv["paths"])
                wildcards += sum(1 for p in inv["paths"] if p.endswith("*"))
        return paths, wildcards


# --------------------------------------------------------------------------
# Authentication: SigV4 recomputed with botocore
# --------------------------------------------------------------------------
def authenticate(cfg, method, url, headers, raw_body, rec):
    auth = (headers.get("Authorization") or "").strip()
    if not auth:
        raise ApiError(403, "MissingAuthenticationToken", "Missing Authentication Token")
    m = AUTH_RE.match(auth)
    if not m:
        raise ApiError(400, "IncompleteSignature",
                       "Authorization header requires 'Credential', 'Signature' and "
                       "'SignedHeaders' parameters.")
    akid, date, region, service, signed_headers, signature = m.groups()
    amz_date = (headers.get("X-Amz-Date") or "").strip()
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ApiError(403, "IncompleteSignature", "X-Amz-Date is missing or malformed.")
    now = dt.datetime.now(dt.timezone.utc)
    if abs((now - when).total_seconds()) > MAX_SKEW_SECONDS:
        raise ApiError(403, "SignatureDoesNotMatch",
                       f"Signature expired: {amz_date} is now earlier than "
                       f"{(now - dt.timedelta(seconds=MAX_SKEW_SECONDS)).strftime('%Y%m%dT%H%M%SZ')}")
    if akid != cfg.access_key_id:
        raise ApiError(403, "InvalidClientTokenId",
                       "The security token included in the request is invalid.")
    if date != amz_date[:8]:
        raise ApiError(403, "SignatureDoesNotMatch",
                       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                       "of date from HTTP")
    if region != REGION:
        raise ApiError(403, "SignatureDoesNotMatch",
                       f"Credential should be scoped to a valid region, not '{region}'.")
    if service != SERVICE:
        raise ApiError(403, "SignatureDoesNotMatch",
                       f"Credential should be scoped to correct service: '{SERVICE}'.")
    names = signed_headers.split(";")
    if names != sorted(names) or "host" not in names or "x-amz-date" not in names:
        raise ApiError(403, "SignatureDoesNotMatch",
                       "SignedHeaders must be sorted and include host and x-amz-date.")
    token = headers.get("X-Amz-Security-Token")
    if token is not None and "x-amz-security-token" not in names:
        raise ApiError(403, "SignatureDoesNotMatch",
                       "x-amz-security-token must be signed.")

    # Rebuild the request from what was received, with only the headers the client says it
    # signed, and let botocore compute the signature the way AWS does.
    signed = {}
    for name in names:
        value = headers.get(name)
        if value is None:
            raise ApiError(403, "SignatureDoesNotMatch", f"Signed header {name} is missing.")
        signed[name] = value
    request = AWSRequest(method=method, url=url, headers=signed, data=raw_body)
    request.context["timestamp"] = amz_date
    creds = Credentials(cfg.access_key_id, cfg.secret_access_key, token)
    signer = SigV4Auth(creds, SERVICE, REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if expected != signature:
        raise ApiError(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature you "
                       "provided. Check your AWS Secret Access Key and signing method. Consult "
                       "the service documentation for details.")
    rec["signature_ok"] = True
    if cfg.token is not None and token != cfg.token:
        raise ApiError(403, "InvalidClientTokenId",
                       "The security token included in the request is invalid.")


# --------------------------------------------------------------------------
# CreateInvalidation body
# --------------------------------------------------------------------------
def parse_batch(raw_body):
    if not raw_body:
        raise ApiError(400, "MissingBody",
                       "This operation requires a body. Ensure that the body is present and "
                       "the Content-Type header is set.")
    try:
        root = ET.fromstring(raw_body)
    except ET.ParseError as exc:
        raise ApiError(400, "MalformedXML", f"The XML you provided was not well-formed: {exc}")
    ns = "{" + NAMESPACE + "}"
    if root.tag != ns + "InvalidationBatch":
        raise ApiError(400, "MalformedXML",
                       f"Expected InvalidationBatch in namespace {NAMESPACE}, got {root.tag}")
    ref = root.find(ns + "CallerReference")
    paths = root.find(ns + "Paths")
    if ref is None or not (ref.text or "").strip() or paths is None:
        raise ApiError(400, "MalformedXML", "CallerReference and Paths are required.")
    qty = paths.find(ns + "Quantity")
    try:
        quantity = int((qty.text or "").strip()) if qty is not None else None
    except ValueError:
        quantity = None
    if quantity is None:
        raise ApiError(400, "MalformedXML", "Paths/Quantity is required and must be an integer.")
    items_el = paths.find(ns + "Items")
    items = [] if items_el is None else [p.text or "" for p in items_el]
    if items_el is not None and any(p.tag != ns + "Path" for p in items_el):
        raise ApiError(400, "MalformedXML", "Items may only hold Path elements.")
    if quantity != len(items):
        raise ApiError(400, "InconsistentQuantities",
                       "The value of Quantity and the size of Items don't match.")
    if not items:
        raise ApiError(400, "InvalidArgument", "Your request contains no invalidation paths.")
    for item in items:
        check_item(item)
    return ref.text.strip(), items


def check_item(item):
    bad = "Your request contains one or more invalid invalidation paths."
    if item.startswith("#"):
        tag = item[1:]
        if not tag or len(tag) > MAX_TAG_LEN or "," in tag or \
                any(not 33 <= ord(c) <= 126 for c in tag):
            raise ApiError(400, "InvalidArgument", bad)
        return
    if not item.startswith("/") or len(item) > MAX_PATH_LEN or "*" in item[:-1]:
        raise ApiError(400, "InvalidArgument", bad)
    # Non-ASCII and unsafe characters must arrive URL-encoded.
    if any(ord(c) <= 32 or ord(c) >= 127 or c in '"<>\\^`{|}' for c in item):
        raise ApiError(400, "InvalidArgument", bad)
    if re.search(r"%(?![0-9A-Fa-f]{2})", item):
        raise ApiError(400, "InvalidArgument", bad)


def invalidation_xml(inv):
    items = "".join(f"<Path>{escape(p)}</Path>" for p in inv["paths"])
    created = dt.datetime.fromtimestamp(inv["created"], dt.timezone.utc)
    return (f'<?xml version="1.0"?>\n<Invalidation xmlns="{NAMESPACE}"><Id>{inv["id"]}</Id>'
            f'<Status>{inv["status"]}</Status>'
            f'<CreateTime>{created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}Z</CreateTime>'
            f'<InvalidationBatch><Paths><Quantity>{len(inv["paths"])}</Quantity>'
            f'<Items>{items}</Items></Paths>'
            f'<CallerReference>{escape(inv["caller_reference"])}</CallerReference>'
            f"</InvalidationBatch></Invalidation>").encode("utf-8")


def check_distribution(cfg, dist):
    if cfg.distributions and dist not in cfg.distributions:
        raise ApiError(404, "NoSuchDistribution", "The specified distribution does not exist.")


def create_invalidation(state, dist, raw_body, host, rec):
    """Called with state.lock held. Returns (status, headers, body)."""
    cfg = state.cfg
    check_distribution(cfg, dist)
    ref, items = parse_batch(raw_body)
    rec["caller_reference"], rec["paths"] = ref, items
    if len(items) > cfg.max_paths:
        raise ApiError(413, "BatchTooLarge", "Invalidation batch specified is too large.")
    for inv in state.invalidations.values():
        if inv["distribution"] == dist and inv["caller_reference"] == ref:
            if inv["paths"] == items:
                rec["replayed"] = True
                return inv
            raise ApiError(409, "InvalidationBatchAlreadyExists",
                           "Invalidation batch specified already exists.")
    state.tick()
    paths, wildcards = state.in_progress(dist)
    new_wild = sum(1 for p in items if p.endswith("*"))
    if paths + len(items) > cfg.max_paths:
        raise ApiError(400, "TooManyInvalidationsInProgress",
                       "Processing your request will cause you to exceed the maximum number of "
                       "in-progress individual file invalidations.")
    if wildcards + new_wild > cfg.max_wildcards:
        raise ApiError(400, "TooManyInvalidationsInProgress",
                       "Processing your request will cause you to exceed the maximum number of "
                       "in-progress wildcard invalidations.")
    inv = {"id": new_id(), "distribution": dist, "caller_reference": ref, "paths": items,
           "status": "InProgress", "created": time.time(), "host": host}
    state.invalidations[inv["id"]] = inv
    return inv


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeCloudFront/1.0"
    state = None
    stop_event = None

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def _log(self, status, detail=""):
        sys.stderr.write(f"[fake-cloudfront] {self.command} {self.path} -> {status} {detail}\n")
        sys.stderr.flush()

    def _read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, payload, content_type="text/xml", extra_headers=None):
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
        if path.startswith(f"/{API_VERSION}/"):
            return self._api(path, raw)
        route = CONTROL_ROUTES.get((self.command, path))
        if route is None:
            self._log(404)
            return self._send(404, {"error": "not found", "path": path}, "application/json")
        try:
            arg = json.loads(raw.decode("utf-8") or "{}") if raw is not None else None
            status, payload = route(self.state, arg)
        except (ValueError, TypeError, KeyError) as exc:
            status, payload = 400, {"error": f"bad control request: {exc}"}
        self._log(status)
        self._send(status, payload, "application/json")

    def _api(self, path, raw):
        state = self.state
        request_id = str(uuid.uuid4())
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        url = f"http://{host}{self.path}"
        rec = {"time": time.time(), "method": self.command, "path": self.path,
               "headers": {k.lower(): ("***" if k.lower() in MASKED_HEADERS else v)
                           for k, v in self.headers.items()},
               "body": (raw or b"").decode("utf-8", "replace"), "signature_ok": False,
               "caller_reference": None, "paths": None, "status": None, "error_code": None,
               "invalidation_id": None, "replayed": False, "request_id": request_id}
        with state.lock:
            state.requests.append(rec)
        status, payload, headers, lose = 500, b"", {}, False
        try:
            authenticate(state.cfg, self.command, url, self.headers, raw or b"", rec)
            if raw:
                try:  # recorded before any injected fault, for tests to compare attempts
                    rec["caller_reference"], rec["paths"] = parse_batch(raw)
                except ApiError:
                    pass
            with state.lock:
                fault = state.pop_fault()
                if fault is not None and not fault.get("lose_answer"):
                    if "raw" in fault:
                        status = int(fault.get("http_status", 200))
                        payload = str(fault["raw"]).encode("utf-8")
                        headers = dict(fault.get("headers") or {})
                        headers["Content-Type"] = str(fault.get("content_type", "text/html"))
                        rec["status"], rec["error_code"] = status, f"HTTP{status}"
                        raise _Raw()
                    raise ApiError(int(fault.get("http_status", 400)), fault["code"],
                                   fault.get("message", f"injected {fault['code']}"),
                                   fault.get("type", "Sender"))
                lose = fault is not None
                m_create, m_get = CREATE_RE.match(path), GET_RE.match(path)
                if self.command == "POST" and m_create:
                    inv = create_invalidation(state, m_create.group(1), raw, host, rec)
                    status, payload = 201, invalidation_xml(inv)
                    headers["Location"] = (f"https://{inv['host']}/{API_VERSION}/distribution/"
                                           f"{inv['distribution']}/invalidation/{inv['id']}")
                    rec["invalidation_id"] = inv["id"]
                elif self.command == "GET" and m_get:
                    check_distribution(state.cfg, m_get.group(1))
                    state.tick()
                    inv = state.invalidations.get(m_get.group(2))
                    if inv is None or inv["distribution"] != m_get.group(1):
                        raise ApiError(404, "NoSuchInvalidation",
                                       "The specified invalidation does not exist.")
                    status, payload = 200, invalidation_xml(inv)
                else:
                    raise ApiError(404, "InvalidAction", "The action is not supported.")
                rec["status"] = status
        except ApiError as err:
            status, payload = err.status, error_xml(err, request_id)
            rec["status"], rec["error_code"] = status, err.code
        except _Raw:
            pass
        if lose:
            # Carried out, never answered: the client sees the connection close.
            self._log("lost", f"invalidation={rec['invalidation_id']}")
            self.close_connection = True
            try:
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        headers.setdefault("Content-Type", "text/xml")
        headers["x-amz-request-id"] = request_id
        self._log(status, f"code={rec['error_code'] or 'OK'} id={rec['invalidation_id']}")
        ctype = headers.pop("Content-Type")
        self._send(status, payload, ctype, headers)


class _Raw(Exception):
    """A raw fault answer is ready."""


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------
def _control_requests(state, _):
    with state.lock:
        return 200, json.loads(json.dumps(state.requests))


def _control_invalidations(state, _):
    with state.lock:
        state.tick()
        return 200, [{k: v for k, v in inv.items()} for inv in state.invalidations.values()]


def _control_fail(state, arg):
    entry = dict(arg)
    if not entry.get("lose_answer") and "code" not in entry and "raw" not in entry:
        raise ValueError("need `code`, `raw` or `lose_answer`")
    with state.lock:
        state.faults.append([entry, int(entry.get("count", 1))])
    return 200, {"ok": True}


def _control_complete(state, arg):
    want = (arg or {}).get("id")
    done = 0
    with state.lock:
        for inv in state.invalidations.values():
            if inv["status"] == "InProgress" and want in (None, inv["id"]):
                inv["status"] = "Completed"
                done += 1
    return 200, {"completed": done}


def _control_reset(state, _):
    with state.lock:
        state.reset()
    return 200, {"ok": True}


CONTROL_ROUTES = {
    ("GET", "/__control/requests"): _control_requests,
    ("GET", "/__control/invalidations"): _control_invalidations,
    ("POST", "/__control/fail"): _control_fail,
    ("POST", "/__control/complete"): _control_complete,
    ("POST", "/__control/reset"): _control_reset,
    ("GET", "/__control/health"): lambda state, _: (200, {"ok": True}),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--access-key-id", required=True)
    p.add_argument("--secret-access-key", required=True)
    p.add_argument("--token", default=None, help="require this X-Amz-Security-Token")
    p.add_argument("--distributions", default="", help="comma-separated; empty = any id")
    p.add_argument("--max-paths", type=int, default=3000)
    p.add_argument("--max-wildcards", type=int, default=15)
    p.add_argument("--complete-after-s", type=float, default=None,
                   help="invalidations complete on their own after this long")
    cfg = p.parse_args(argv)
    cfg.distributions = {d.strip() for d in cfg.distributions.split(",") if d.strip()}

    Handler.state = State(cfg)
    Handler.stop_event = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: Handler.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: Handler.stop_event.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    worker.start()
    while not Handler.stop_event.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    sys.stderr.write("[fake-cloudfront] stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
