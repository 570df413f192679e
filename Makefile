# audioprep: `make test` and `make demo` set up everything they need on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AUDIOPREP_SHARED ?= $(abspath ../shared)
export AUDIOPREP_MODEL_DIR ?= $(AUDIOPREP_SHARED)/models
INA := inaSpeechSegmenter==0.8.0
SILERO := silero-vad==6.2.3
# a pinned torch: 2.13.0 has a CPU build on local disk here, an unpinned one pulls GBs of CUDA
TORCH := torch==2.13.0

.PHONY: setup ffmpeg test demo bench lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check '$(TORCH)'
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,segment,speaker]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps '$(INA)' '$(SILERO)'
	@touch $@

ffmpeg:
	@bash scripts/ensure-ffmpeg.sh

setup: $(STAMP) ffmpeg

test: setup
	$(BIN)/python -m pytest

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
