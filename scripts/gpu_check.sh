#!/usr/bin/env bash
# GPU check: every stage whose engine runs on torch, ONNX or TensorFlow, with --device cpu and
# --device cuda on the same few files, printing x real time side by side. Installs nothing and
# reaches no network (--no-download for Whisper). Without a GPU (no `nvidia-smi -L`, or
# GPU_CHECK_CPU_ONLY=1) it runs the CPU half only, quick enough for CI (about 1-2 minutes on
# an idle 2-core machine; 6 minutes for 4 clips when this one was shared by eight sessions).
# GPU_CHECK_DEVICES="cpu cuda" forces the devices (on a CPU machine: each cuda refusal's line).
#
#   bash scripts/gpu_check.sh            # from the repository root
#   PYTHON=.venv/bin/python ITEMS=8 bash scripts/gpu_check.sh
#
# Rows: speaker-filter (Resemblyzer, torch), segment --engine silero (torch), quality (DNSMOS,
# onnxruntime; cuda needs onnxruntime-gpu), transcribe (faster-whisper / CTranslate2, when a
# Whisper model is in MODEL_DIR/whisper), separate (Spleeter, TensorFlow in its own
# environment; cuda needs a CUDA TensorFlow there). segment --engine ina (Keras) follows its
# TensorFlow's devices and has no --device. A device that cannot run prints its one-line reason.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export AUDIOPREP_SHARED=${AUDIOPREP_SHARED:-$PWD/../shared}
export AUDIOPREP_MODEL_DIR=${AUDIOPREP_MODEL_DIR:-$AUDIOPREP_SHARED/models}
export AUDIOPREP_SPLEETER_PYTHON=${AUDIOPREP_SPLEETER_PYTHON:-$PWD/.spleeter-venv/bin/python}
ITEMS=${ITEMS:-6}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ ! -d "$AUDIOPREP_SHARED/data" ]; then
  echo "gpu_check: no test audio at $AUDIOPREP_SHARED (set AUDIOPREP_SHARED)" >&2
  exit 2
fi
devices="cpu"
if [ "${GPU_CHECK_CPU_ONLY:-0}" != 1 ] && nvidia-smi -L >/dev/null 2>&1; then
  devices="cpu cuda"
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
else
  gpu="none (CPU half only)"
fi
if [ -n "${GPU_CHECK_DEVICES:-}" ]; then  # e.g. "cpu cuda" on a CPU machine: the refusals
  devices=$GPU_CHECK_DEVICES
fi
echo "gpu_check $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, GPU: $gpu, $ITEMS clips"

ap() { "$PY" -m audioprep "$@" -q --overwrite -j 1; }

# input: ITEMS LibriSpeech utterances (16 kHz mono), the host's three references kept apart
src="$WORK/src"
mkdir -p "$src" "$WORK/ref"
ls "$AUDIOPREP_SHARED"/data/librispeech-test-other/1688/*.flac | head -3 | xargs -I{} cp {} "$WORK/ref/"
ls "$AUDIOPREP_SHARED"/data/librispeech-test-other/*/*.flac | grep -v /1688/ | head -"$ITEMS" \
  | xargs -I{} cp {} "$src/"
ap ingest "$src" "$WORK/in" || exit 1
ap convert "$WORK/in" "$WORK/wav" -r 16000 -c 1 || exit 1
secs=$("$PY" -c "import json,sys; print(sum(json.loads(l)['duration'] for l in open(sys.argv[1])))" "$WORK/wav/manifest.jsonl")

whisper=""
for name in base tiny.en base.en tiny; do
  if [ -f "$AUDIOPREP_MODEL_DIR/whisper/$name/model.bin" ]; then whisper=$name; break; fi
done

row() {  # row NAME STAGE [OPTIONS...]: the stage on $WORK/wav, x real time per device
  local name=$1 stage=$2
  shift 2
  local line
  line=$(printf '%-28s' "$name")
  for dev in $devices; do
    local out="$WORK/out-$dev" t0 t1 err
    rm -rf "$out"
    t0=$(date +%s.%N)
    if err=$(ap "$stage" "$WORK/wav" "$out" "$@" --device "$dev" 2>&1 >/dev/null); then
      t1=$(date +%s.%N)
      line+=$(awk -v d="$dev" -v s="$secs" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "  %s %6.1fx (%5.1f s)", d, s / (b - a), b - a }')
    else
      line+="  $dev: $(echo "$err" | grep -v '^\s*$' | tail -1 | cut -c1-120)"
    fi
  done
  echo "$line"
}

echo "$(printf '%.0f' "$secs") s of audio; x real time per device, wall time including start-up"
row "speaker-filter (torch)" speaker-filter --reference "$WORK/ref"
row "segment silero (torch)" segment --engine silero
row "quality DNSMOS (onnx)" quality
if [ -n "$whisper" ]; then
  row "transcribe whisper $whisper" transcribe \
    --model "$AUDIOPREP_MODEL_DIR/whisper/$whisper" --no-download --language en
else
  echo "transcribe: skipped, no Whisper model in $AUDIOPREP_MODEL_DIR/whisper (make setup)"
fi
if [ -x "$AUDIOPREP_SPLEETER_PYTHON" ]; then
  row "separate spleeter (tf)" separate
else
  echo "separate: skipped, no Spleeter environment at $AUDIOPREP_SPLEETER_PYTHON (make spleeter)"
fi
