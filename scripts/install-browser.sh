#!/usr/bin/env bash
# Install the headless browser the dashboard tests drive (Debian's `chromium` package).
#
# Idempotent and quick when Chromium is there already: it only calls apt-get when
# /usr/bin/chromium is missing. Uses sudo only when not root. Playwright (PyPI) drives this
# Chromium through `executable_path`; never run `playwright install` (its downloads fail here).
# chromium-driver is not installed: Playwright talks to Chromium directly (CDP), not WebDriver.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: $CHROMIUM is missing and apt-get is not available;" \
    "install Chromium with your package manager" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi

echo "install-browser: installing chromium" >&2
started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt-get/dpkg (another install script) instead of failing at once.
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 -o APT::Get::Lock::Timeout=300)
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "install-browser: the chromium package is installed but $CHROMIUM is missing" >&2
  exit 1
fi
echo "install-browser: chromium installed in $(($(date +%s) - started)) s:" \
  "$("$CHROMIUM" --version 2>/dev/null || echo '?')" >&2
