"""The on-disk planning cache: a model rebuilt from its cached walk plans exactly like the real
meta model, a cached plan equals the uncached one, and a cached `routerllm plan` imports neither
transformers nor (on a whole-plan hit) torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from routerllm.catalog import ModelSpec, get_spec
from routerllm.hardware import get_profile
from routerllm.planning import PlanOptions, memory, plan
from routerllm.planning import walk as walk_mod

GB = 10**9


def _fresh(spec: ModelSpec) -> ModelSpec:
    """The same model as a new spec object: nothing built in this process yet."""
    out = ModelSpec(name=spec.name, model_type=spec.model_type, config_dict=spec.config_dict, hub_id=spec.hub_id,
                    source=spec.source, path=spec.path, description=spec.description)
    out._config = spec._config
    return out


def _as_json(p) -> str:
    return json.dumps(p.to_dict(), sort_keys=True, default=str)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ROUTERLLM_PLANNING_CACHE", "1")
    return tmp_path / "cache" / "planning"


@pytest.mark.parametrize("name", ["gemma3_270m", "falcon_40b", "starcoder", "bloom_176b", "qwen2_5_7b"])
def test_rebuilt_model_has_the_real_models_tensors_ties_and_quantizable_linears(name):
    real = get_spec(name).meta_model("bfloat16")
    rebuilt = walk_mod.rebuild(json.loads(json.dumps(walk_mod.describe(real))))
    assert type(rebuilt).__name__ == type(real).__name__
    real_params = [(n, tuple(p.shape), p.dtype) for n, p in real.named_parameters(remove_duplicate=False)]
    assert [(n, tuple(p.shape), p.dtype) for n, p in rebuilt.named_parameters(remove_duplicate=False)] == real_params
    assert [(n, tuple(b.shape), b.dtype) for n, b in rebuilt.named_buffers()] == [
        (n, tuple(b.shape), b.dtype) for n, b in real.named_buffers()]
    assert [(n, type(m).__name__) for n, m in rebuilt.named_modules()] == [
        (n, type(m).__name__) for n, m in real.named_modules()]
    assert len(list(rebuilt.parameters())) == len(list(real.parameters()))  # tied tensors are one tensor
    for quant in ("none", "int8", "nf4"):
        q = memory.quantizable_linears(real, quant)
        assert memory.quantizable_linears(rebuilt, quant) == q
        assert memory.tensor_bytes_map(rebuilt, quant, "bfloat16", q) == memory.tensor_bytes_map(real, quant, "bfloat16", q)
    assert memory.quantizable_linears(rebuilt, "nf4", exact_type=False) == memory.quantizable_linears(
        real, "nf4", exact_type=False)


CASES = [
    ("llama3_405b", "2xA100-80GB", dict(quantization="nf4")),  # GPUs + cpu + disk
    ("gemma3_270m", "cpu-laptop", dict(quantization="int8", context_length=2048)),  # tied, CPU only
    ("falcon_40b", "1xA100-40GB", dict(quantization="nf4", batch_size="auto")),  # FalconLinear, offload + search
    ("starcoder", "1xRTX4090", dict(quantization="none", max_memory={0: 20 * GB, "cpu": 8 * GB})),  # cpu + disk
]


@pytest.mark.parametrize("name,profile,opts", CASES, ids=[c[0] for c in CASES])
def test_cached_plan_equals_the_uncached_plan(name, profile, opts, cache_dir, monkeypatch):
    hw = get_profile(profile).with_overrides(cpu_ram=200 * GB if name == "llama3_405b" else None)
    options = PlanOptions(**opts)
    monkeypatch.setenv("ROUTERLLM_PLANNING_CACHE", "0")
    uncached = plan(_fresh(get_spec(name)), hw, options)
    monkeypatch.setenv("ROUTERLLM_PLANNING_CACHE", "1")
    first = plan(_fresh(get_spec(name)), hw, options)  # builds the real meta model, writes walk + plan
    assert (cache_dir / "model_walk").is_dir() and (cache_dir / "plan").is_dir()
    shutil.rmtree(cache_dir / "plan")  # force a plan computed on the model rebuilt from the walk
    spec = _fresh(get_spec(name))
    from_walk = plan(spec, hw, options)
    assert spec._meta_models == {}  # the real model was never built for it
    assert type(walk_mod.cached_spec(spec).meta_model("bfloat16")).__module__ == walk_mod.__name__
    from_plan_cache = plan(_fresh(get_spec(name)), hw, options)  # a whole-plan hit
    assert _as_json(uncached) == _as_json(first) == _as_json(from_walk) == _as_json(from_plan_cache)


def test_cache_off_and_corrupt_entries_fall_back_to_planning(cache_dir, monkeypatch):
    hw = get_profile("cpu-laptop")
    p = plan(_fresh(get_spec("gemma3_270m")), hw, PlanOptions(context_length=1024))
    for path in cache_dir.rglob("*.json"):
        path.write_text("{not json")
    again = plan(_fresh(get_spec("gemma3_270m")), hw, PlanOptions(context_length=1024))
    assert _as_json(again) == _as_json(p)
    monkeypatch.setenv("ROUTERLLM_PLANNING_CACHE", "0")
    shutil.rmtree(cache_dir)
    plan(_fresh(get_spec("gemma3_270m")), hw, PlanOptions(context_length=1024))
    assert not cache_dir.exists()


PROBE = """
import json, sys
from routerllm.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}), file=sys.stderr)
"""


def _probe(env: dict, *args: str) -> tuple[str, dict]:
    r = subprocess.run([sys.executable, "-c", PROBE, "plan", *args, "--json"], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout, json.loads(r.stderr.strip().splitlines()[-1])


def test_cached_routerllm_plan_process_skips_transformers_and_torch(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ROUTERLLM_CACHE": str(tmp_path / "cache"),
           "ROUTERLLM_PLANNING_CACHE": "1"}
    args = ("--model", "llama3_405b", "--hardware", "2xA100-80GB", "--cpu-ram", "200GB", "--quant", "nf4")
    cold, imported = _probe(env, *args)
    assert imported == {"torch": True, "transformers": True}
    hit, imported = _probe(env, *args)
    assert imported == {"torch": False, "transformers": False} and hit == cold
    # other options: the plan is new, the module walk comes from the cache (torch, no transformers)
    other = args[:-4] + ("--cpu-ram", "150GB", "--quant", "nf4")
    walked, imported = _probe(env, *other)
    assert imported == {"torch": True, "transformers": False}
    plain, _ = _probe({**env, "ROUTERLLM_PLANNING_CACHE": "0"}, *other)
    assert walked == plain
