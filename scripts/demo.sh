#!/usr/bin/env bash
# The demo chain on real audio from ../shared: ingest -> convert 16 kHz mono -> trim.
set -euo pipefail
SHARED=${AUDIOPREP_SHARED:-../shared}
OUT=${DEMO_OUT:-demo-out}
A=.venv/bin/audioprep
if [ ! -d "$SHARED/data" ]; then
  echo "demo: the real audio in $SHARED/data is missing (set AUDIOPREP_SHARED to its folder)." >&2
  exit 1
fi
$A ingest "$SHARED/data/librispeech-test-other" "$SHARED/data/music" "$SHARED/data/musan-mix" \
  "$OUT/01-ingest"
$A convert "$OUT/01-ingest" "$OUT/02-convert" --sample-rate 16000 --channels 1
$A trim "$OUT/02-convert" "$OUT/03-trim" --head 0.5 --tail 0.25
echo "demo: done; the corpus is in $OUT/03-trim (manifest.jsonl, audio/, stage.json)"
