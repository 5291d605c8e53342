# Two commands for a fresh machine:  make demo   and   make test
# Both create .venv (Python 3.10+) and install routerllm with everything its tests need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_CONFIG ?= configs/local_config.yaml

.PHONY: setup demo validate test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.0 CPU build (pip takes the wheel on disk where there is one); a CUDA torch
	# already in the venv is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[server,dev]"
	touch $@

# The main job on the embedded default (Gemma 3 270M from PyPI, CPU, no hub): the router
# (cascade) against the large tier alone and the small tier alone on five short HumanEval tasks,
# with results/demo-<time>/report.md, report.html and plots. Five tasks a 270M model can attempt;
# DEMO_TASKS= (empty) takes the first benchmark.num_examples tasks instead.
DEMO_TASKS ?= HumanEval/0,HumanEval/2,HumanEval/23,HumanEval/45,HumanEval/53
demo: setup
	HF_HUB_OFFLINE=1 $(PY) scripts/enhanced_humaneval_comparison.py --config $(DEMO_CONFIG) --use-large-model \
		$(if $(DEMO_TASKS),--task-ids $(DEMO_TASKS)) --run-name demo-$$(date -u +%Y%m%d-%H%M%S)

# Pre-flight of the embedded default: plan, load, one generation, memory vs plan, quality.
validate: setup
	HF_HUB_OFFLINE=1 $(PY) scripts/validate_large_model_setup.py --config $(DEMO_CONFIG)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest --durations=20

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow"

bench: setup
	for f in bench/bench_*.py; do echo "== $$f"; HF_HUB_OFFLINE=1 $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
