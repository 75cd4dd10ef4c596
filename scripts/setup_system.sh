#!/usr/bin/env bash
# System packages the tests need: Debian's chromium (the web page's browser tests drive it
# with Playwright; Playwright's own browser download is not used). Idempotent: installs
# only what is missing; skips with a message when apt-get is not available or not root.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "setup_system: chromium already installed ($(/usr/bin/chromium --version 2>/dev/null || echo '?'))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_system: apt-get not available; skipping chromium (the browser tests will be skipped)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "setup_system: not root and no sudo; skipping chromium (the browser tests will be skipped)" >&2
    exit 0
  fi
fi
echo "setup_system: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }; then
  echo "setup_system: apt-get could not install chromium; the browser tests will be skipped" >&2
  exit 0
fi
echo "setup_system: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
