#!/usr/bin/env python3
"""Pre-flight a large-model setup: plan, resources, load, one generation, memory, quality.

    python scripts/validate_large_model_setup.py --config configs/local_config.yaml
    python scripts/validate_large_model_setup.py --config configs/production_config.yaml --dry-run --hardware 3xA100-80GB

A thin wrapper over `routerllm validate` (see `routerllm validate --help`).
"""

import sys

from routerllm.cli import main

if __name__ == "__main__":
    main(["validate", *sys.argv[1:]])
