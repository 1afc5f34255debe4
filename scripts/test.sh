#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then checks
# formatting and lints, then runs unit, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
# The static function build users deploy (docs/sources/tencent-scf.md), packaged by itself and
# run from its zip under the SCF runtime stand-in.
if [ "$#" = 0 ]; then
  scripts/build-function.sh scf testkit/function-smoke.toml target/function-smoke.zip
  EDGEPURGE_FUNCTION_BIN="$PWD/target/x86_64-unknown-linux-musl/release/edgepurge" \
    cargo test --locked -p edgepurge --test function a_packaged_zip_runs
fi
