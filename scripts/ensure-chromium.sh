#!/usr/bin/env bash
# Make sure a headless chromium is on PATH for the report test. On Debian/Ubuntu as root,
# install Debian's package with apt-get; elsewhere say so (the test is then skipped).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing it with apt-get (Debian package 'chromium')..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium >/dev/null
  fi
  command -v chromium >/dev/null && exit 0
fi
echo "note: chromium is not installed (Debian/Ubuntu: sudo apt-get install chromium); the test that renders the HTML report in a browser will be skipped." >&2
exit 0
