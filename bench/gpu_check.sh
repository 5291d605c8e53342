#!/usr/bin/env bash
# The GPU checks (issue 10), in one short run (< 8 min on one GPU): run it whenever a GPU is lent,
# from the repository root, and paste its output into the closing note.
#   bench/gpu_check.sh            # uses .venv/bin/python when present, else python3
# 1. the test suite's GPU tests (pytest -m gpu);
# 2. bench/gpu_check.py: the embedded large tier (or a random 1.1B Llama when its PyPI parts are not
#    installed) in 4-bit on GPU 0, and with max_memory forcing CPU offload: planned against
#    measured memory (torch.cuda.max_memory_allocated, NVML), tokens/s at batch 1 and 16 against
#    the planner's ceiling.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: not found"
"$PY" -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| transformers', transformers.__version__, '| accelerate', accelerate.__version__)"
"$PY" -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" 2>&1 | tail -1
status=0
echo "== pytest -m gpu"
timeout 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15 || status=1
echo "== bench/gpu_check.py"
timeout 300 "$PY" bench/gpu_check.py "$@" 2>&1 | grep -v -i "warn" || status=1
exit $status
