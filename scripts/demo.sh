#!/usr/bin/env bash
# A person can run this: brings up a real Ceph RGW bucket, a Varnish cache in front of it and
# edgepurge on loopback, makes changes, and shows the stale -> fresh transition.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo build --release -q -p edgepurge
EDGEPURGE_BIN="$PWD/target/release/edgepurge" \
  cargo run --release -q -p edgepurge-testkit --example demo
