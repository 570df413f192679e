#!/usr/bin/env bash
# The demo chain on real audio from ../shared:
# ingest -> convert 16 kHz mono -> trim -> denoise -> segment -> slice speech into clips.
set -euo pipefail
SHARED=${AUDIOPREP_SHARED:-../shared}
OUT=${DEMO_OUT:-demo-out}
export AUDIOPREP_MODEL_DIR=${AUDIOPREP_MODEL_DIR:-$SHARED/models}
A=.venv/bin/audioprep
if [ ! -d "$SHARED/data" ]; then
  echo "demo: the real audio in $SHARED/data is missing (set AUDIOPREP_SHARED to its folder)." >&2
  exit 1
fi
$A ingest "$SHARED/data/librispeech-test-other" "$SHARED/data/music" "$SHARED/data/musan-mix" \
  "$OUT/01-ingest"
$A convert "$OUT/01-ingest" "$OUT/02-convert" --sample-rate 16000 --channels 1
$A trim "$OUT/02-convert" "$OUT/03-trim" --head 0.25 --tail 0.25
$A denoise "$OUT/03-trim" "$OUT/04-denoise" --highpass 80 --lowpass 7000
$A segment "$OUT/04-denoise" "$OUT/05-segment"
$A slice "$OUT/05-segment" "$OUT/06-slice" --labels speech --min-duration 1.5 --max-duration 15 \
  --merge-gap 0.3 --pad 0.1
echo "demo: done; the clips are in $OUT/06-slice (manifest.jsonl, audio/, stage.json)"
