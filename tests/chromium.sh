#!/usr/bin/env bash
# The UI tests drive a system Chromium through Playwright (no browser download). Find it,
# or install Debian's package with apt; elsewhere, say what to install and stop.
set -euo pipefail

for candidate in "${CHROMIUM_PATH:-}" /usr/lib/chromium/chromium "$(command -v chromium || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    exit 0
  fi
done

if ! command -v apt-get >/dev/null || ! grep -qsE '^ID(_LIKE)?=.*debian' /etc/os-release; then
  echo "make test needs Chromium for its UI tests and cannot install it here (no Debian apt)." >&2
  echo "Install Chromium with your package manager, then rerun, setting" >&2
  echo "CHROMIUM_PATH=/path/to/chromium if it is not on PATH as 'chromium'." >&2
  exit 2
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
echo "Installing Debian's chromium for the UI tests (apt-get)..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null || { echo "apt-get installed chromium, but it is not on PATH" >&2; exit 2; }
