#!/usr/bin/env bash
# The demo on real audio from ../shared: `audioprep run configs/demo.yaml` (ingest -> convert
# 22.05 kHz mono -> dedupe -> trim -> segment -> slice speech 1.5-15 s -> quality -> denoise ->
# speaker-filter -> loudness -> transcribe with Whisper tiny.en), then a Hugging Face
# audiofolder export (with the text), an HTML report of the result and the chain's funnel.
set -euo pipefail
SHARED=${AUDIOPREP_SHARED:-../shared}
OUT=${DEMO_OUT:-demo-out}
export AUDIOPREP_SHARED=$(cd "$SHARED" 2>/dev/null && pwd || echo "$SHARED")
export AUDIOPREP_MODEL_DIR=${AUDIOPREP_MODEL_DIR:-$AUDIOPREP_SHARED/models}
A=${AUDIOPREP:-.venv/bin/audioprep}
if [ ! -d "$AUDIOPREP_SHARED/data" ]; then
  echo "demo: the real audio in $AUDIOPREP_SHARED/data is missing (set AUDIOPREP_SHARED to its folder)." >&2
  exit 1
fi
status=0
$A run configs/demo.yaml --workdir "$OUT" || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi  # 1: some items failed, the rest is usable
LAST=$(ls -d "$OUT"/[0-9][0-9]-* | sort | tail -n 1)
$A export "$LAST" "$OUT/export-hf" --format hf --overwrite
$A report "$LAST"
$A report "$OUT"    # the funnel: items and hours into and out of every stage
$A info "$LAST"
echo "demo: done; clips in $LAST, a Hugging Face audiofolder in $OUT/export-hf, the report in $LAST/report.html, the funnel in $OUT/report.html"
