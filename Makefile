# All set-up on a fresh machine: `make samples` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned so that pip takes the CPU build (a bare `torch` can pull a multi-GB CUDA build).
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup samples test lint bench bench-competitors bench-full-scan regen-samples clean

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
	$(BIN)/ruff check spectral_probe tests tools bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check spectral_probe tests tools bench
	$(BIN)/ruff format --check spectral_probe tests tools bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run --output BENCHMARKS.md
	$(BIN)/python -m bench.full_scan --output BENCHMARKS.md
	$(BIN)/python -m bench.scan_phases --output BENCHMARKS.md

# The full scan's competitors (Debian): SLEPc through slepc4py in its own venv (the system site packages
# hold Debian's slepc4py; torch goes in beside it), PRIMME in the main venv (it builds against LAPACK).
# bench.full_scan finds .venv-slepc by itself and skips, with the reason, whatever is absent.
SLEPC_VENV ?= .venv-slepc
SUDO ?= $(if $(filter 0,$(shell id -u)),,sudo)
bench-competitors: $(STAMP)
	$(SUDO) apt-get install -y --no-install-recommends python3-slepc4py-real liblapack-dev libblas-dev
	test -x $(SLEPC_VENV)/bin/python || /usr/bin/python3 -m venv --system-site-packages $(SLEPC_VENV)
	# Debian puts slepc4py/petsc4py under /usr/lib/{slepc,petsc}dir and links them into dist-packages by
	# update-alternatives, which a minimal image may skip: then a .pth file names the folders.
	$(SLEPC_VENV)/bin/python -c "import slepc4py" 2>/dev/null || printf '%s\n' \
		/usr/lib/slepcdir/slepc3.*/x86_64-linux-gnu-real/lib/python3/dist-packages \
		/usr/lib/petscdir/petsc3.*/x86_64-linux-gnu-real/lib/python3/dist-packages \
		> "$$($(SLEPC_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/debian-slepc.pth"
	$(SLEPC_VENV)/bin/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[bench,competitors]'
	$(BIN)/python -c "import bench.rivals as r; print('SLEPc', r.slepc_version(r.slepc_python())[0], '/ PRIMME', r.primme_version())"

bench-full-scan: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.full_scan --output BENCHMARKS.md
	$(BIN)/python -m bench.scan_phases --output BENCHMARKS.md

regen-samples: $(STAMP)
	$(BIN)/python -m tools.make_samples

clean:
	rm -rf $(VENV) $(SLEPC_VENV) out .pytest_cache
