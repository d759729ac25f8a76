# All set-up on a fresh machine: `make samples` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned so that pip takes the CPU build (a bare `torch` can pull a multi-GB CUDA build).
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup samples test lint bench regen-samples clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

samples: $(STAMP)
	$(BIN)/spectral-probe audit sample_checkpoints --glob './*.safetensors' --json out/samples.json
	$(BIN)/spectral-probe scan sample_checkpoints/plugin/plugin_example.safetensors \
		--operator sample_checkpoints/plugin/plugin_operator.py:make_force

test: $(STAMP)
	$(BIN)/ruff check spectral_probe tests scripts bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check spectral_probe tests scripts bench
	$(BIN)/ruff format --check spectral_probe tests scripts bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run --output BENCHMARKS.md

regen-samples: $(STAMP)
	$(BIN)/python scripts/make_samples.py

clean:
	rm -rf $(VENV) out .pytest_cache
