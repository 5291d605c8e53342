"""Batched generation (left padded, several tasks in one generate call) gives every row the same
answer as generating it alone: fp32, greedy, on the tiny fixture checkpoints of every family.

This is what lets the benchmark batch tasks without changing results: a task's answer must not
depend on which other tasks share its batch. Prompts of different lengths make the rows' left
padding differ (0 to ~30 pad tokens). No near-tie allowance is needed: every family matches token
for token (a left-padding or attention-mask bug, or a per-batch numeric path, would show here)."""

from __future__ import annotations

import pytest

from tiny_models import TINY_FAMILIES
from routerllm.backends.base import GenerationRequest
from routerllm.config import ModelConfig
from routerllm.manager import LargeModelManager

PROMPTS = [
    "def add(a, b):",
    "for i in range(10):\n    print(i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):",
    "import os",
    "def fib(n):\n    if n < 2:\n        return n\n",
    "x = [i * i for i in range(",
]
NEW_TOKENS = 16


def _manager(path, batch_size: int) -> LargeModelManager:
    return LargeModelManager(ModelConfig(name="tiny", model_id=str(path), dtype="float32", context_length=128,
                                         max_new_tokens=NEW_TOKENS, batch_size=batch_size))


@pytest.mark.parametrize("family", sorted(TINY_FAMILIES))
def test_fp32_greedy_batched_rows_match_batch_1_token_for_token(family, tiny_checkpoints):
    manager = _manager(tiny_checkpoints[family], batch_size=len(PROMPTS))
    manager.load(progress=False)
    try:
        requests = [GenerationRequest(p, max_new_tokens=NEW_TOKENS) for p in PROMPTS]
        batched = manager.generate(requests)
        assert {g.extra["batch_size"] for g in batched} == {len(PROMPTS)}
        widths = {len(manager.tokenizer(p)["input_ids"]) for p in PROMPTS}
        assert len(widths) > 3, "the prompts must pad differently"
        manager._batch_size = 1  # same loaded model, one row at a time
        alone = [manager.generate([r])[0] for r in requests]
        assert {g.extra["batch_size"] for g in alone} == {1}
    finally:
        manager.unload()
    for prompt, one, many in zip(PROMPTS, alone, batched):
        assert many.completion_tokens == one.completion_tokens, prompt
        assert many.text == one.text, f"{family}: batched answer to {prompt!r} differs from batch 1"
