#!/usr/bin/env bash
# System packages the tests need, from Debian's packages:
#   chromium      the web page's browser tests drive it with Playwright (Playwright's own
#                 browser download is not used);
#   redis-server  and postgresql: the scale-out tests start their own servers from these
#                 binaries on loopback, in temporary directories (no system service is used);
#   nodejs, npm   when node or npm is missing: they run the Node SDKs of the server tests;
# and then, through scripts/setup_node.sh, the npm packages of tests/node (those Node SDKs).
# Idempotent: installs only what is missing; skips with a message when apt-get is not
# available or we are neither root nor allowed sudo (the tests needing it are then skipped).
set -euo pipefail

# the Node SDKs of the server tests (npm packages, not Debian's), once node/npm are there
node_packages() { bash "$(dirname "$0")/setup_node.sh"; }
trap node_packages EXIT

have_chromium() { [ -x /usr/bin/chromium ]; }
have_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; }
have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }
have_postgresql() {
  { command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; } \
    || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_chromium || missing+=(chromium)
have_redis || missing+=(redis-server)
have_postgresql || missing+=(postgresql)
have_node || missing+=(nodejs npm)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup_system: chromium, redis-server, postgresql and node already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_system: apt-get not available; not installing ${missing[*]} (the tests needing them will be skipped)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "setup_system: not root and no sudo; not installing ${missing[*]} (the tests needing them will be skipped)" >&2
    exit 0
  fi
fi
echo "setup_system: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "setup_system: apt-get update failed; trying the install anyway" >&2
for package in "${missing[@]}"; do
  # one at a time, so a package that cannot be had does not cost the others
  if ! $SUDO apt-get install -y -qq "$package" >/dev/null; then
    echo "setup_system: apt-get could not install $package; the tests needing it will be skipped" >&2
  fi
done
have_chromium && echo "setup_system: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
have_redis && echo "setup_system: $(redis-server --version 2>/dev/null | head -c 60 || echo 'redis-server installed')"
have_postgresql && echo "setup_system: postgresql installed ($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | head -1))"
exit 0
