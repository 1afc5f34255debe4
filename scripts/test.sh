#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then checks
# formatting and lints, then runs unit, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ "$#" != 0 ]; then
  # A filter or options: as cargo runs them.
  exec cargo test --workspace --locked "$@"
fi
# Every test binary built once, then run two at a time: most of them wait on the servers they
# start rather than on the CPU (about 4 minutes instead of 8 on 2 cores). Each binary's output
# goes to target/test-logs/ and is printed when it fails (EDGEPURGE_TEST_VERBOSE=1: always);
# EDGEPURGE_TEST_JOBS=1 runs them one at a time.
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
  > target/test-binaries.json
python3 scripts/run-test-binaries.py < target/test-binaries.json
cargo test --workspace --locked --doc
# The static function build users deploy (docs/sources/tencent-scf.md), packaged by itself and
# run from its zip under the SCF runtime stand-in.
{
  scripts/build-function.sh scf testkit/function-smoke.toml target/function-smoke.zip
  EDGEPURGE_FUNCTION_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edgepurge" \
    cargo test --locked -p edgepurge --test function a_packaged_zip_runs
}
