#!/usr/bin/env bash
# Install the local servers the integration tests run as plain processes (Debian packages).
#
# Today: Prometheus (Debian's `prometheus` package, 2.42 on bookworm), which the prometheus
# metric source tests start on a free loopback port and query for real. Idempotent and quick
# when everything is there already: it only calls apt-get when a binary is missing. Uses sudo
# only when not root. The package's own service is not started (no init system here); the tests
# start their own process.
set -euo pipefail

missing=()
if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  missing+=(prometheus)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-servers: ${missing[*]} missing and apt-get is not available;" \
    "install them with your package manager" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

echo "install-test-servers: installing ${missing[*]}" >&2
started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt-get/dpkg (another install script) instead of failing at once.
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 -o APT::Get::Lock::Timeout=300)
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-servers: installed ${missing[*]} in $(($(date +%s) - started)) s" >&2
