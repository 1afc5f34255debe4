#!/usr/bin/env bash
# The benchmarks, on a fresh machine: installs wrk (the HTTP load client the pipeline
# benchmark drives the server with) and the test kit, then prints every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
if ! command -v wrk >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends wrk
fi
cargo bench -p edgepurge --bench store
cargo bench -p edgepurge --bench pipeline
cargo bench -p edgepurge --bench cluster
