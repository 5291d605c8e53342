# Two commands for a fresh machine:  make demo   and   make test
# Both create .venv (Python 3.10+) and install routerllm with everything its tests need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_CONFIG ?= configs/local_config.yaml

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.0 CPU build (pip takes the wheel on disk where there is one); a CUDA torch
	# already in the venv is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[server,dev]"
	touch $@

# The main job on the embedded default (Gemma 3 270M from PyPI, CPU, no hub).
demo: setup
	HF_HUB_OFFLINE=1 $(PY) scripts/validate_large_model_setup.py --config $(DEMO_CONFIG)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest --durations=20

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

bench: setup
	for f in bench/bench_*.py; do echo "== $$f"; HF_HUB_OFFLINE=1 $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
