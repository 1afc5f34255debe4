#!/usr/bin/env bash
# Builds edgepurge as a static (musl) binary and packages it as a function zip.
#
#   scripts/build-function.sh scf|lambda CONFIG [OUT.zip]
#
# Tencent SCF runs CentOS 7 (glibc 2.17) and Lambda's provided.al2023 glibc 2.34: a static
# build runs on both. Installs the musl target (rustup) and musl-gcc (Debian musl-tools) if
# missing. Prints the path of the binary and writes the zip (default function.zip).
set -euo pipefail
cd "$(dirname "$0")/.."

platform=${1:?usage: scripts/build-function.sh scf|lambda CONFIG [OUT.zip]}
config=${2:?usage: scripts/build-function.sh scf|lambda CONFIG [OUT.zip]}
out=${3:-function.zip}
target=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$target"; then
  echo "build-function: adding the Rust target $target"
  rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null; then
  echo "build-function: installing musl-tools (musl-gcc, for the bundled SQLite and ring)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends musl-tools >/dev/null
fi
CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --locked --target "$target" -p edgepurge --bin edgepurge
bin="target/$target/release/edgepurge"
echo "build-function: built $bin"
"$bin" package "$platform" --config "$config" -o "$out"
