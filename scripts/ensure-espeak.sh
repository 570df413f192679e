#!/usr/bin/env bash
# Make sure espeak-ng is on PATH (the transcribe tests synthesise known sentences with it).
# On Debian/Ubuntu as root, install it with apt-get; elsewhere say in one sentence what to run.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "espeak-ng not found: installing it with apt-get (Debian package 'espeak-ng')..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends espeak-ng >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends espeak-ng >/dev/null
  fi
  command -v espeak-ng >/dev/null && exit 0
fi
echo "the transcribe tests need espeak-ng on PATH: install it (Debian/Ubuntu: sudo apt-get install espeak-ng; macOS: brew install espeak-ng), then run make again." >&2
exit 1
