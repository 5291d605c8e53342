#!/usr/bin/env python3
"""Benchmark one model on HumanEval (thin wrapper over `routerllm benchmark`; see --help)."""

import sys

from routerllm.cli import main

if __name__ == "__main__":
    main(["benchmark", *sys.argv[1:]])
