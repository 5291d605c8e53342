# Two commands for a fresh machine:  make demo   and   make test
# Both create .venv (Python 3.10+) and install routerllm with everything its tests need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEMO_CONFIG ?= configs/local_config.yaml

.PHONY: setup bwrap demo validate test test-fast bench clean

setup: bwrap $(VENV)/.installed

# The jail for model code (evaluation/jail.py) needs bubblewrap (Debian/Ubuntu package `bubblewrap`)
# and util-linux `setpriv` (root mode). Installed here when missing and root; otherwise the command.
# libseccomp2 (a dependency of Debian's apt, so nearly always present) lets it add a seccomp filter.
bwrap:
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get install -y -q bubblewrap || (apt-get update -q && apt-get install -y -q bubblewrap)); \
		else echo "bubblewrap missing: run  sudo apt-get install bubblewrap  (the jail refuses to run without it, unless benchmark.unsafe_no_sandbox: true)"; fi; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.0 CPU build (pip takes the wheel on disk where there is one); a CUDA torch
	# already in the venv is kept.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[server,dev]"
	touch $@

# The main job on the embedded default (CPU, no model hub): the router (cascade: Gemma 3 270M
# answers, its code is run against the examples visible in the prompt, failures go to
# Qwen2.5-Coder-1.5B-Instruct) against the large tier alone and the small tier alone, on the first
# DEMO_N HumanEval tasks (HumanEval/0 .. DEMO_N-1: the benchmark's own order, not picked for either
# model), with results/demo-<time>/report.md, report.html and plots. Prints the wall time.
DEMO_N ?= 8
demo: setup
	@started=$$(date +%s); \
	HF_HUB_OFFLINE=1 $(PY) scripts/enhanced_humaneval_comparison.py --config $(DEMO_CONFIG) --use-large-model \
		--num-examples $(DEMO_N) --run-name demo-$$(date -u +%Y%m%d-%H%M%S) && \
	echo "make demo: $(DEMO_N) tasks in $$(( $$(date +%s) - started )) s wall time"

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
