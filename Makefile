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

.PHONY: setup ffmpeg chromium spleeter test test-fast demo bench docs lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check '$(TORCH)'
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,segment,speaker,report,features]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps '$(INA)' '$(SILERO)'
	@touch $@

ffmpeg:
	@bash scripts/ensure-ffmpeg.sh

# Debian's chromium, for the test that renders `audioprep report` in a real browser.
chromium:
	@bash scripts/ensure-chromium.sh

# Spleeter cannot share the main environment (Python < 3.12, tensorflow 2.12.1, numpy < 2).
SPLEETER_STAMP := .spleeter-venv/.installed
$(SPLEETER_STAMP):
	@test -x .spleeter-venv/bin/python || $(PYTHON) -m venv .spleeter-venv
	.spleeter-venv/bin/python -m pip install -q --disable-pip-version-check \
	  'spleeter==2.4.2' 'tensorflow-cpu==2.12.1' 'numpy<2'
	@touch $@

spleeter: $(SPLEETER_STAMP)

setup: $(STAMP) ffmpeg spleeter

test: setup chromium
	$(BIN)/python -m pytest

# The fast tier: everything not marked slow (no models, no whole chains), under a minute.
test-fast: $(STAMP) ffmpeg
	$(BIN)/python -m pytest -m 'not slow' -q

# Regenerate docs/cli.md from the stage registry (a test fails while it is out of date).
docs: $(STAMP)
	$(BIN)/python scripts/gen_cli_docs.py

demo: setup
	@bash scripts/demo.sh

bench: setup
	$(BIN)/python scripts/bench.py

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

clean:
	rm -rf demo-out bench-out .pytest_cache .ruff_cache
