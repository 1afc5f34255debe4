#!/usr/bin/env python3
"""Loopback stand-in for the runtime API of a custom-runtime function: Tencent SCF or
AWS Lambda (apis.md §H), following each platform's documented exchange.

Usage:
  python3 fake_function_runtime.py --dialect scf|lambda --port 0 [--quiet]

Prints "LISTENING <port>" as the first stdout line; serves on 127.0.0.1 until SIGTERM.

SCF (base http://host:port, no version prefix, no request id in paths):
  POST /runtime/init/ready          body must not be empty (SCF rejects an empty one)
  GET  /runtime/invocation/next     long poll; headers request_id, memory_limit_in_mb,
                                    time_limit_in_ms; asked again before an answer, it
                                    returns the same event
  POST /runtime/invocation/response the first answer is final; later ones are ignored
  POST /runtime/invocation/error    body = error text
Lambda (base http://host:port/2018-06-01):
  GET  /2018-06-01/runtime/invocation/next   headers Lambda-Runtime-Aws-Request-Id,
                                    Lambda-Runtime-Deadline-Ms (epoch ms), -Invoked-Function-Arn,
                                    -Trace-Id
  POST /2018-06-01/runtime/invocation/{id}/response   202; unknown id 400; answered twice 403
  POST /2018-06-01/runtime/invocation/{id}/error      202 (header
                                    Lambda-Runtime-Function-Error-Type, JSON body)
  POST /2018-06-01/runtime/init/error                 202

Control API (same port, JSON):
  POST /__control/invoke   {"event": <json or string>, "budget_ms": 3000}: queue an
                           invocation; answers {"request_id"}
  GET  /__control/results  every answer: [{"request_id","kind":"response|error","body",
                           "error_type","at_ms","budget_ms","received_ms"}]
  GET  /__control/log      every runtime API call, in order: [{"method","path","status"}]
  POST /__control/refuse   {"kind": "response", "status": 413}: refuse every answer of that
                           kind (as a platform refuses one too large); {"kind": ...,
                           "status": 0} accepts them again
  GET  /__control/health   {"ok": true}
"""

import argparse
import json
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Condition()
QUEUE = []          # invocations not yet handed out
CURRENT = None      # SCF: the invocation handed out and not answered
INVOCATIONS = {}    # request id -> invocation
RESULTS = []
LOG = []
READY = []
REFUSE = {}         # answer kind -> HTTP status it is refused with
DIALECT = "scf"
QUIET = False


def now_ms():
    return int(time.time() * 1000)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Head and body go out in two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK (40 ms) and every exchange would look that slow.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if QUIET:
            return
        sys.stderr.write("fake_runtime: " + (fmt % args) + "\n")

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, body=b"", headers=None):
        with LOCK:
            LOG.append({"method": self.command, "path": self.path, "status": status})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # --- control ---------------------------------------------------------------------
    def control(self, method):
        if method == "GET" and self.path == "/__control/health":
            return self.answer(200, {"ok": True})
        if method == "GET" and self.path == "/__control/results":
            with LOCK:
                return self.answer(200, list(RESULTS))
        if method == "GET" and self.path == "/__control/log":
            with LOCK:
                return self.answer(200, list(LOG))
        if method == "POST" and self.path == "/__control/refuse":
            req = json.loads(self.body() or b"{}")
            with LOCK:
                if int(req.get("status", 0)):
                    REFUSE[req["kind"]] = int(req["status"])
                else:
                    REFUSE.pop(req.get("kind"), None)
            return self.answer(200, {"ok": True})
        if method == "POST" and self.path == "/__control/invoke":
            req = json.loads(self.body() or b"{}")
            event = req.get("event")
            raw = event if isinstance(event, str) else json.dumps(event)
            inv = {
                "request_id": str(uuid.uuid4()),
                "body": raw.encode(),
                "budget_ms": int(req.get("budget_ms", 3000)),
            }
            with LOCK:
                QUEUE.append(inv)
                INVOCATIONS[inv["request_id"]] = inv
                LOCK.notify_all()
            return self.answer(200, {"request_id": inv["request_id"]})
        return self.answer(404, {"error": "unknown control path"})

    # --- runtime API -----------------------------------------------------------------
    def next_invocation(self):
        global CURRENT
        with LOCK:
            if DIALECT == "scf" and CURRENT is not None and "answered" not in CURRENT:
                inv = CURRENT
            else:
                while not QUEUE:
                    LOCK.wait()
                inv = QUEUE.pop(0)
                inv["received_ms"] = now_ms()
                CURRENT = inv
        if DIALECT == "scf":
            headers = {
                "request_id": inv["request_id"],
                "memory_limit_in_mb": "128",
                "time_limit_in_ms": str(inv["budget_ms"]),
            }
        else:
            headers = {
                "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
                "Lambda-Runtime-Deadline-Ms": str(inv["received_ms"] + inv["budget_ms"]),
                "Lambda-Runtime-Invoked-Function-Arn":
                    "arn:aws:lambda:us-east-1:123456789012:function:edgepurge",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            }
        headers["Content-Type"] = "application/json"
        self.answer(200, inv["body"], headers)

    def record(self, inv, kind, body, error_type=None):
        inv["answered"] = kind
        RESULTS.append({
            "request_id": inv["request_id"],
            "kind": kind,
            "body": body.decode("utf-8", "replace"),
            "error_type": error_type,
            "at_ms": now_ms(),
            "received_ms": inv.get("received_ms"),
            "budget_ms": inv["budget_ms"],
        })

    def scf_post(self):
        body = self.body()
        if self.path == "/runtime/init/ready":
            if not body:
                return self.answer(400, "empty body")
            with LOCK:
                READY.append(now_ms())
            return self.answer(200)
        kind = {"/runtime/invocation/response": "response",
                "/runtime/invocation/error": "error"}.get(self.path)
        if kind is None:
            return self.answer(404, "not found")
        with LOCK:
            inv = CURRENT
            if inv is None:
                return self.answer(400, "no invocation in progress")
            if kind in REFUSE:
                inv.setdefault("refused", []).append(kind)
                return self.answer(REFUSE[kind], "answer refused")
            if "answered" not in inv:  # the first answer is final
                self.record(inv, kind, body)
        return self.answer(200)

    def lambda_post(self):
        body = self.body()
        prefix = "/2018-06-01/runtime/"
        if not self.path.startswith(prefix):
            return self.answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
        rest = self.path[len(prefix):]
        if rest == "init/error":
            with LOCK:
                RESULTS.append({"request_id": None, "kind": "init_error",
                                "body": body.decode("utf-8", "replace"),
                                "error_type": self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                "at_ms": now_ms()})
            return self.answer(202, {"status": "OK"})
        parts = rest.split("/")
        if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
            return self.answer(404, {"errorMessage": "not found", "errorType": "NotFound"})
        with LOCK:
            inv = INVOCATIONS.get(parts[1])
            if inv is None or "received_ms" not in inv:
                return self.answer(400, {"errorMessage": "Invalid request ID",
                                         "errorType": "InvalidRequestID"})
            if "answered" in inv:
                return self.answer(403, {"errorMessage": "Invalid state transition",
                                         "errorType": "InvalidStateTransition"})
            if parts[2] in REFUSE:
                return self.answer(REFUSE[parts[2]], {"errorMessage": "answer refused",
                                                      "errorType": "RequestEntityTooLarge"})
            self.record(inv, parts[2], body,
                        self.headers.get("Lambda-Runtime-Function-Error-Type"))
        return self.answer(202, {"status": "OK"})

    def do_GET(self):
        if self.path.startswith("/__control/"):
            return self.control("GET")
        want = "/runtime/invocation/next" if DIALECT == "scf" else \
            "/2018-06-01/runtime/invocation/next"
        if self.path != want:
            return self.answer(404, "not found")
        self.next_invocation()

    def do_POST(self):
        if self.path.startswith("/__control/"):
            return self.control("POST")
        return self.scf_post() if DIALECT == "scf" else self.lambda_post()


def main():
    global DIALECT, QUIET
    ap = argparse.ArgumentParser()
    ap.add_argument("--dialect", choices=["scf", "lambda"], required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no log line per request")
    args = ap.parse_args()
    DIALECT = args.dialect
    QUIET = args.quiet
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
