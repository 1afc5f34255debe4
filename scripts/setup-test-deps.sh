#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, skipping what is present:
# Debian packages (servers the end-to-end tests start) and a Python virtualenv (.venv-test)
# with the test kit's packages (testkit/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

# Servers the harness (crates/testkit) starts in the foreground on loopback ports:
# Ceph (1 mon + 1 memstore OSD + radosgw) as the S3 origin, four HTTP caches, NATS with
# JetStream and RabbitMQ (the queue sources).
# procps: kill (the test kit signals whole process groups) and pgrep (the smoke test);
# openssl: test certificates (AMQP over TLS, Pub/Sub push token keys); systemd:
# systemd-analyze checks the unit in packaging/systemd/; groff-base: the manual page test;
# postgresql: the PostgreSQL store backend (the harness runs its own server with initdb from
# /usr/lib/postgresql/*/bin, never the packaged cluster).
# chromium-headless-shell: the web console's browser test (with Node.js, below).
APT_PACKAGES=(
  python3-venv
  procps openssl
  radosgw ceph-mon ceph-osd
  varnish varnish-modules
  squid
  trafficserver
  nginx libnginx-mod-http-lua
  nats-server
  rabbitmq-server
  systemd
  groff-base
  postgresql
  chromium-headless-shell
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

VENV=.venv-test
REQ=testkit/requirements.txt
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV with $REQ"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$STAMP"
fi

# The web console's browser test (crates/edgepurge/tests/console.rs) drives Chromium with
# playwright-core (testkit/console/package.json); it needs Node.js.
if command -v npm >/dev/null; then
  CONSOLE=testkit/console
  want=$(sha256sum "$CONSOLE/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$CONSOLE/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing $CONSOLE (playwright-core)"
    (cd "$CONSOLE" && npm ci --silent --no-audit --no-fund)
    echo "$want" > "$CONSOLE/node_modules/.lock.sha256"
  fi
else
  echo "setup: Node.js (npm) is missing: the console browser test will fail until it is installed"
fi
