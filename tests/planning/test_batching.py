"""batch_size="auto": the FlexGen-style trade of layers to offload for a larger batch, the
throughput table (batch 1, 4, 16, 64 and the chosen one) and the 50/164-task floors."""

from __future__ import annotations

import pytest

from routerllm.catalog import get_spec
from routerllm.hardware import get_profile
from routerllm.planning import PlanOptions, plan
from routerllm.planning.speed import auto_batch_size, predict

GB = 10**9


@pytest.fixture(scope="module")
def offloaded_405b():
    """The issue's setup: Llama-3.1-405B NF4 on 2xA100-80GB + 200 GB RAM: 39 layers off the GPUs."""
    hw = get_profile("2xA100-80GB").with_overrides(cpu_ram=200 * GB)
    spec = get_spec("llama3_405b")
    return spec, hw, plan(spec, hw, PlanOptions(quantization="nf4", batch_size="auto"))


def test_auto_moves_layers_to_offload_when_a_larger_batch_pays_for_them(offloaded_405b):
    spec, hw, p = offloaded_405b
    one = plan(spec, hw, PlanOptions(quantization="nf4", batch_size=1))
    choice = p.batch_choice
    assert choice["chosen"] == p.batch_size > 1
    offloaded = lambda q: sum(d.num_layers for d in q.devices if d.device in ("cpu", "disk"))  # noqa: E731
    assert offloaded(p) > offloaded(one)  # layers left the GPUs for the batch's KV cache
    assert choice["layers_moved"] == offloaded(p) - offloaded(one)
    assert "moved" in choice["reason"] and f"batch {p.batch_size}" in choice["reason"]
    # and that paid: the chosen plan's ceiling beats the batch-1 plan's, and the batch-1 map's own best
    assert p.tokens_per_s_ceiling > 2 * one.tokens_per_s_ceiling
    no_move_best = max(predict(one, b, prompt_tokens=160, new_tokens=512).tokens_per_s
                       for b in range(1, auto_batch_size(one, context_length=4096, max_new_tokens=512) + 1))
    assert p.tokens_per_s_ceiling > 1.5 * no_move_best
    # the plan holds the KV cache of its batch on the GPUs within their budgets
    assert p.verdict != "cannot_run"
    assert all(d.total_bytes <= d.budget_bytes for d in p.devices if isinstance(d.device, int))
    assert sum(d.kv_bytes for d in p.devices) == pytest.approx(spec.kv_cache_bytes(4096, p.batch_size, 2), rel=1e-6)
    # callers resolving batch_size: auto through speed.auto_batch_size get the batch the plan holds
    assert auto_batch_size(p, context_length=4096, max_new_tokens=512) == p.batch_size


def test_auto_moves_nothing_when_the_model_fits_and_picks_a_batch_on_the_gpus():
    p = plan(get_spec("llama3_70b"), get_profile("2xH100-80GB"), PlanOptions(quantization="nf4", batch_size="auto"))
    assert p.verdict == "fits_gpu"
    assert p.batch_choice["layers_moved"] == 0
    assert all(c["offloaded_layers"] == 0 for c in p.batch_choice["candidates"])
    assert p.batch_size > 1
    assert p.throughput[0]["batch_size"] == 1  # rows in batch order
    assert p.tokens_per_s_ceiling > 10 * p.throughput[0]["tokens_per_s_ceiling"]


def test_table_has_batches_1_4_16_64_and_the_chosen_each_planned_at_its_batch(offloaded_405b):
    spec, hw, p = offloaded_405b
    rows = {r["batch_size"]: r for r in p.throughput}
    assert {1, 4, 16, 64, p.batch_size} == set(rows)
    assert [r["batch_size"] for r in p.throughput] == sorted(rows)
    assert [b for b, r in rows.items() if r["chosen"]] == [p.batch_size]
    for b in (1, 4):
        alone = plan(spec, hw, PlanOptions(quantization="nf4", batch_size=b))
        assert rows[b]["tokens_per_s_ceiling"] == pytest.approx(alone.tokens_per_s_ceiling)
        assert rows[b]["tasks_per_hour_ceiling"] == pytest.approx(alone.tasks_per_hour_ceiling)
    assert rows[64]["runs"] is False and rows[64]["tokens_per_s_ceiling"] is None and "GPU" in rows[64]["reason"]
    assert rows[p.batch_size]["tokens_per_s_ceiling"] == pytest.approx(p.tokens_per_s_ceiling)


def test_task_estimates_use_the_chosen_batch(offloaded_405b):
    _, _, p = offloaded_405b
    est = p.estimates
    assert est["batch_size"] == p.batch_size
    per_batch = predict(p, p.batch_size, prompt_tokens=160, new_tokens=512).total_s
    assert est["tasks_164_floor_s"] == pytest.approx(-(-164 // p.batch_size) * per_batch)
    assert est["tasks_50_floor_s"] == pytest.approx(-(-50 // p.batch_size) * per_batch)
    # far less than 164 tasks one at a time
    one_row = next(r for r in p.throughput if r["batch_size"] == 1)
    assert est["tasks_164_floor_s"] < 0.5 * 164 * one_row["seconds_per_batch_floor"]


def test_explicit_batch_wins_and_bad_batches_are_refused():
    from routerllm.exceptions import PlanError

    p = plan(get_spec("gemma3_270m"), get_profile("cpu-laptop"), PlanOptions(batch_size=4, context_length=1024))
    assert p.batch_size == 4 and p.batch_choice is None
    for bad in (0, "many", 2.5):
        with pytest.raises(PlanError, match="batch_size"):
            plan(get_spec("gemma3_270m"), get_profile("cpu-laptop"), PlanOptions(batch_size=bad))  # type: ignore[arg-type]
