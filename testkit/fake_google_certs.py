#!/usr/bin/env python3
"""Loopback stand-in for Google's ID-token signing keys, and a signer of Pub/Sub push tokens.

Serves a JWKS document like https://www.googleapis.com/oauth2/v3/certs (same shape, same
Cache-Control) for RSA keys generated at start, and signs tokens with Google's official
library (google-auth: google.auth.crypt.RSASigner + google.auth.jwt.encode), so the tokens
the webhook verifies are made independently of the Rust code that checks them.

Usage:
  python3 fake_google_certs.py --port 0 --state DIR [--max-age 3600]

Keys are kept in DIR/keys.json (created on first start), so a restart on the same port
serves the same keys. Two keys exist from the start: "google" (published) and "other"
(never published, as a key an attacker holds). Prints "LISTENING <port>" as the first
stdout line and serves on 127.0.0.1 until SIGTERM/SIGINT.

  GET  /oauth2/v3/certs      the JWKS of the published keys
  POST /__control/sign       {"claims": {...}, "key": "google"|"other", "kid": optional}
                             -> {"token": "..."} (RS256, signed by google-auth)
  POST /__control/forge      {"claims": {...}, "alg": "none"|"HS256"} -> {"token": "..."}:
                             alg none with no signature, or HS256 keyed with the published
                             key's PEM (the classic algorithm-confusion forgery)
  POST /__control/rotate     publishes a new key and returns {"kid": ...}; sign with
                             {"key": <that kid>}
  POST /__control/status     {"http_status": 503} answers the JWKS with that status
                             ({"http_status": 200} restores it)
  GET  /__control/stats      {"fetches": N} JWKS requests served so far
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import crypt, jwt
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.exit("fake_google_certs: needs google-auth and cryptography (see testkit/requirements.txt)")

LOCK = threading.Lock()
STATE = {"fetches": 0, "status": 200}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_key():
    """A fresh 2048-bit RSA key, with a Google-like key id (40 hex digits)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return {"kid": secrets.token_hex(20), "pem": pem, "published": True}


def load_keys(state_dir):
    path = os.path.join(state_dir, "keys.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    keys = {"google": new_key(), "other": new_key()}
    keys["other"]["published"] = False
    save_keys(state_dir, keys)
    return keys


def save_keys(state_dir, keys):
    path = os.path.join(state_dir, "keys.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(keys, f)
    os.replace(path + ".tmp", path)


def public_pem(entry):
    key = serialization.load_pem_private_key(entry["pem"].encode("ascii"), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(entry):
    key = serialization.load_pem_private_key(entry["pem"].encode("ascii"), password=None)
    numbers = key.public_key().public_numbers()

    def uint(n):
        return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    # Google's field order and members.
    return {"n": uint(numbers.n), "kid": entry["kid"], "e": uint(numbers.e),
            "kty": "RSA", "alg": "RS256", "use": "sig"}


def make_handler(keys, state_dir, max_age):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("fake_google_certs: " + (fmt % args) + "\n")

        def answer(self, status, body, headers=()):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self):
            if self.path == "/oauth2/v3/certs":
                with LOCK:
                    STATE["fetches"] += 1
                    status = STATE["status"]
                    published = [jwk(k) for k in keys.values() if k["published"]]
                if status != 200:
                    return self.answer(status, {"error": "unavailable (test fault)"})
                return self.answer(200, {"keys": published}, [
                    ("Cache-Control", f"public, max-age={max_age}, must-revalidate, no-transform"),
                ])
            if self.path == "/__control/stats":
                with LOCK:
                    return self.answer(200, {"fetches": STATE["fetches"]})
            return self.answer(404, {"error": "no such path"})

        def do_POST(self):
            req = self.body()
            if self.path == "/__control/sign":
                entry = find_key(keys, req.get("key", "google"))
                if entry is None:
                    return self.answer(400, {"error": "no such key"})
                signer = crypt.RSASigner.from_string(entry["pem"], req.get("kid", entry["kid"]))
                token = jwt.encode(signer, req["claims"])
                return self.answer(200, {"token": token.decode("ascii")})
            if self.path == "/__control/forge":
                alg = req["alg"]
                header = {"alg": alg, "kid": keys["google"]["kid"], "typ": "JWT"}
                signed = (b64url(json.dumps(header).encode()) + "."
                          + b64url(json.dumps(req["claims"]).encode()))
                if alg == "none":
                    sig = b""
                elif alg == "HS256":
                    sig = hmac.new(public_pem(keys["google"]), signed.encode(), hashlib.sha256).digest()
                else:
                    return self.answer(400, {"error": "alg must be none or HS256"})
                return self.answer(200, {"token": signed + "." + b64url(sig)})
            if self.path == "/__control/rotate":
                entry = new_key()
                with LOCK:
                    keys[entry["kid"]] = entry
                    save_keys(state_dir, keys)
                return self.answer(200, {"kid": entry["kid"]})
            if self.path == "/__control/status":
                with LOCK:
                    STATE["status"] = int(req["http_status"])
                return self.answer(200, {"ok": True})
            return self.answer(404, {"error": "no such path"})

    return Handler


def find_key(keys, name):
    if name in keys:
        return keys[name]
    return next((k for k in keys.values() if k["kid"] == name), None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", required=True)
    ap.add_argument("--max-age", type=int, default=3600)
    args = ap.parse_args()
    keys = load_keys(args.state)
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(keys, args.state, args.max_age))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
