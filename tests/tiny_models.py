"""Architectures of the tiny test checkpoints (imported by tests/conftest.py and by tests that
parametrize over families; a plain module because test files cannot import a conftest reliably when
several conftest.py files exist)."""

from __future__ import annotations

TINY_VOCAB = 512  # tokenizer vocabulary and embedding rows
TINY_HIDDEN = 128  # 2 heads x head_dim 64
TINY_LAYERS = 4

# family -> (transformers config class, kwargs). Decoder blocks are the accelerate no-split classes
# (LlamaDecoderLayer, FalconDecoderLayer, BloomBlock, GPTBigCodeBlock, MistralDecoderLayer,
# Qwen2DecoderLayer, Gemma3DecoderLayer).
_COMMON = dict(vocab_size=TINY_VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
TINY_FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", dict(hidden_size=TINY_HIDDEN, intermediate_size=256, num_hidden_layers=TINY_LAYERS,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                                  max_position_embeddings=1024, tie_word_embeddings=False)),
    "mistral": ("MistralConfig", dict(hidden_size=TINY_HIDDEN, intermediate_size=256, num_hidden_layers=TINY_LAYERS,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                                      max_position_embeddings=1024, sliding_window=None, tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", dict(hidden_size=TINY_HIDDEN, intermediate_size=256, num_hidden_layers=TINY_LAYERS,
                                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                                  tie_word_embeddings=True)),
    "gemma3": ("Gemma3TextConfig", dict(hidden_size=TINY_HIDDEN, intermediate_size=256, num_hidden_layers=TINY_LAYERS,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                                        max_position_embeddings=1024, sliding_window=64, tie_word_embeddings=True)),
    "falcon": ("FalconConfig", dict(hidden_size=TINY_HIDDEN, num_hidden_layers=TINY_LAYERS, num_attention_heads=2,
                                    multi_query=True, new_decoder_architecture=False, parallel_attn=True,
                                    alibi=False, bias=False)),
    "bloom": ("BloomConfig", dict(hidden_size=TINY_HIDDEN, n_layer=TINY_LAYERS, n_head=2)),
    "gpt_bigcode": ("GPTBigCodeConfig", dict(n_embd=TINY_HIDDEN, n_layer=TINY_LAYERS, n_head=2, n_inner=256,
                                             n_positions=1024, multi_query=True)),
}
