#!/usr/bin/env python3
"""Router system(s) vs the large model alone on HumanEval: a thin wrapper over `routerllm compare`.

    python scripts/enhanced_humaneval_comparison.py --config configs/replay_config.yaml \
        --num-examples 164 --use-large-model [--skip-execution] [--results-dir ...] \
        [--strategies cascade,random,...] [--resume RUN_DIR]
"""

import sys

from routerllm.cli import main

if __name__ == "__main__":
    main(["compare", *sys.argv[1:]])
