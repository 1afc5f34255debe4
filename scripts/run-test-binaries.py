#!/usr/bin/env python3
"""Runs the workspace's test binaries side by side (built beforehand by
`cargo test --no-run --message-format=json`, whose output is read on stdin).

Most integration binaries spend their time waiting on the servers they start (Ceph,
PostgreSQL, caches, brokers), not on the CPU, so two at a time roughly halves the suite's
wall time on a 2-core machine. Each binary runs as `cargo test` would run it (from its
package's directory), its output kept in target/test-logs/NAME.log and printed when it fails
or when asked (EDGEPURGE_TEST_VERBOSE=1). Exit status 1 when any binary failed, after every
binary ran.

Usage: cargo test --workspace --locked --no-run --message-format=json \
         | scripts/run-test-binaries.py [--jobs N]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# Started first: the longest-running binaries (measured in CI), so the two slots finish
# together rather than one waiting on a long tail.
FIRST = [
    "cluster",
    "edgepurge",  # the library's unit tests (conformance on SQLite and PostgreSQL)
    "e2e_ceph",
    "amqp",
    "fanout",
    "tencent",
    "akamai",
]


def binaries(stream):
    out = []
    for line in stream:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        target = msg["target"]
        out.append(
            {
                "name": target["name"],
                "kind": target["kind"][0],
                "exe": msg["executable"],
                "cwd": str(Path(msg["manifest_path"]).parent),
            }
        )
    return out


def order(bins):
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(bins, key=lambda b: (rank.get(b["name"], len(FIRST)), b["name"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("EDGEPURGE_TEST_JOBS", "2")))
    args = ap.parse_args()
    bins = order(binaries(sys.stdin))
    if not bins:
        print("run-test-binaries: no test binaries in cargo's output", file=sys.stderr)
        return 1
    logs = Path("target/test-logs")
    logs.mkdir(parents=True, exist_ok=True)
    verbose = os.environ.get("EDGEPURGE_TEST_VERBOSE") == "1"
    queue = list(bins)
    lock = threading.Lock()
    failed = []
    started = time.monotonic()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                b = queue.pop(0)
            label = f"{b['name']} ({b['kind']})"
            log = logs / f"{b['name']}-{b['kind']}.log"
            t0 = time.monotonic()
            with open(log, "wb") as f:
                rc = subprocess.call([b["exe"]], cwd=b["cwd"], stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
            took = time.monotonic() - t0
            text = log.read_text(errors="replace")
            result = [l for l in text.splitlines() if l.startswith("test result:")]
            with lock:
                status = "ok" if rc == 0 else f"FAILED (exit {rc})"
                print(f"[{time.monotonic() - started:6.0f} s] {label}: {status} in {took:.0f} s"
                      f"{' — ' + result[-1] if result else ''}", flush=True)
                if rc != 0 or verbose:
                    print(f"----- {log} -----\n{text}\n----- end of {log} -----", flush=True)
                if rc != 0:
                    failed.append(label)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"run-test-binaries: {len(bins)} binaries in {time.monotonic() - started:.0f} s, "
          f"{args.jobs} at a time; failed: {', '.join(failed) if failed else 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
