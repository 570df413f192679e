#!/usr/bin/env bash
# Make sure Debian's pocketsphinx-testdata is installed: its test/data/librivox/ folder holds 5 real
# LibriVox utterances with their transcripts, which the Whisper accuracy tests read.
# On Debian/Ubuntu as root, install it with apt-get; elsewhere say in one sentence what to run.
set -euo pipefail
DIR=/usr/share/pocketsphinx/test/data/librivox
if [ -f "$DIR/transcription" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pocketsphinx-testdata not found: installing it with apt-get..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends pocketsphinx-testdata >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends pocketsphinx-testdata >/dev/null
  fi
  [ -f "$DIR/transcription" ] && exit 0
fi
echo "the Whisper accuracy tests need Debian's pocketsphinx-testdata ($DIR): install it (sudo apt-get install pocketsphinx-testdata), then run make again." >&2
exit 1
