#!/usr/bin/env bash
# Make sure ffmpeg and ffprobe are on PATH. On Debian/Ubuntu as root, install them with apt-get;
# elsewhere say in one sentence what to run.
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ffmpeg not found: installing it with apt-get (Debian package 'ffmpeg')..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends ffmpeg >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends ffmpeg >/dev/null
  fi
  command -v ffmpeg >/dev/null && exit 0
fi
echo "audioprep needs ffmpeg and ffprobe on PATH: install them (Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg; conda: conda install -c conda-forge ffmpeg), then run make again." >&2
exit 1
