"""The batch a plan runs at, and its throughput table (pure arithmetic over plans).

Offloaded decoding streams the offloaded weights once per step whatever the batch, so the batch is
the lever (DESIGN: FlexGen). Holding a batch's KV cache takes GPU memory that would otherwise hold
layers: planning at batch B makes the planner move as many layers to cpu/disk as B's KV cache needs
(planner._plan reserves KV for B rows of `context_length` tokens on the devices that execute them).
Each layer moved costs its bytes streamed once per step; each row added divides that cost by one
more sequence. FlexGen (Sheng et al., ICML 2023, sec. 4-5) searches the placement fractions x
batch size under its cost model; here the search is the small, discrete version of it:

    for B in SEARCH_BATCHES: plan at batch B (the fewest layers moved that hold B rows), then
        tokens/s ceiling = speed.predict(plan_B, B) ;  stop at the first B that cannot run
    chosen = the smallest B within KNEE_FRACTION (3%) of the best ceiling

A batch that fits without moving a layer is planned with the batch-1 map, so the search never does
worse than not trading. Every figure is a ceiling (speed.predict: datasheet
peaks, no stalls, every task generating `max_new_tokens`).
"""

from __future__ import annotations

from typing import Any, Callable

from routerllm.planning import speed

THROUGHPUT_BATCHES = (1, 4, 16, 64)  # the rows of a plan's throughput table, besides the chosen batch
SEARCH_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # up to speed.MAX_AUTO_BATCH
# the chosen batch: the smallest within 3% of the best ceiling. Not speed.KNEE_FRACTION (10%): under
# offload a batch's time is the weight stream, nearly the same for 8 rows as for 16, so a larger batch
# costs little latency and a 10% knee would leave most of the gain (405B on 2xA100: 16 rows give 9%
# more than 8 at the same seconds per batch).
KNEE_FRACTION = 0.97


def _offloaded_layers(plan: Any) -> int:
    return sum(d.num_layers for d in plan.devices if d.device in ("cpu", "disk") and _has_gpu(plan))


def _has_gpu(plan: Any) -> bool:
    return any(not isinstance(d.device, str) and d.layers for d in plan.devices)


def task_shape(plan: Any) -> tuple[int, int]:
    """(prompt tokens, new tokens) of one task under the plan's options, within its context."""
    o = plan.options
    context = int(o.get("context_length") or 4096)
    new = max(1, min(int(o.get("max_new_tokens") or 512), context - 1))
    prompt = max(0, min(int(o.get("prompt_tokens") or speed.DEFAULT_PROMPT_TOKENS), context - new))
    return prompt, new


def throughput_row(plan: Any, batch_size: int) -> dict[str, Any]:
    """One row of the table: the aggregate tokens/s and tasks/hour ceilings of `plan` (planned at
    `batch_size`); a plan that cannot run gets no figures."""
    row: dict[str, Any] = {"batch_size": batch_size, "runs": plan.verdict != "cannot_run",
                           "offloaded_layers": _offloaded_layers(plan)}
    if plan.verdict == "cannot_run":
        return {**row, "tokens_per_s_ceiling": None, "tasks_per_hour_ceiling": None, "seconds_per_batch_floor": None,
                "reason": plan.reason}
    prompt, new = task_shape(plan)
    pred = speed.predict(plan, batch_size, prompt_tokens=prompt, new_tokens=new)
    return {**row, "tokens_per_s_ceiling": pred.tokens_per_s, "tasks_per_hour_ceiling": 3600.0 * batch_size / pred.total_s,
            "seconds_per_batch_floor": pred.total_s}


def throughput_table(chosen: Any, plan_at: Callable[[int], Any]) -> list[dict[str, Any]]:
    """Rows for THROUGHPUT_BATCHES and the chosen plan's batch (marked), each planned at its own
    batch by `plan_at` (the map that batch's KV cache needs), in batch order."""
    rows = []
    for b in sorted(set(THROUGHPUT_BATCHES) | {chosen.batch_size}):
        row = throughput_row(chosen if b == chosen.batch_size else plan_at(b), b)
        row["chosen"] = b == chosen.batch_size
        rows.append(row)
    return rows


def search(plan_at: Callable[[int], Any]) -> tuple[Any, dict[str, Any]]:
    """The FlexGen-style trade: `plan_at(B)` plans at batch B; returns (chosen plan, the choice).

    The choice records every candidate (batch, layers offloaded, tokens/s ceiling), the chosen batch
    and, when the chosen plan offloads more layers than the batch-1 plan, a sentence saying so."""
    base = plan_at(1)
    prompt, new = task_shape(base)
    context = int(base.options.get("context_length") or 4096)
    candidates: list[tuple[int, Any, float]] = []
    if base.verdict != "cannot_run":
        candidates.append((1, base, speed.predict_tokens_per_s(base, 1, prompt_tokens=prompt, new_tokens=new)))
    for b in SEARCH_BATCHES[1:]:
        p = plan_at(b)
        if p.verdict == "cannot_run":
            break
        candidates.append((b, p, speed.predict_tokens_per_s(p, b, prompt_tokens=prompt, new_tokens=new)))
    if not candidates:
        return base, {"requested": "auto", "chosen": 1, "reason": "the plan cannot run at batch 1", "candidates": [],
                      "layers_moved": 0}
    best = max(tps for _, _, tps in candidates)
    # smallest batch within the knee of the best; at equal batch the plan with fewer layers moved
    ordered = sorted(candidates, key=lambda c: (c[0], _offloaded_layers(c[1])))
    chosen_b, chosen_p, chosen_tps = next(c for c in ordered if c[2] >= KNEE_FRACTION * best)
    base_tps = candidates[0][2]
    moved = _offloaded_layers(chosen_p) - _offloaded_layers(base)
    if moved > 0:
        # what the batch-1 map reaches without the move, for the sentence
        n0 = _offloaded_layers(base)
        no_move = max((c for c in candidates if _offloaded_layers(c[1]) <= n0), key=lambda c: c[2])
        reason = (f"batch {chosen_b}: moved {moved} layer(s) from GPU to cpu/disk so the KV cache of {chosen_b} rows fits; "
                  f"ceiling {chosen_tps:.3g} tokens/s against {no_move[2]:.3g} at batch {no_move[0]} without the move "
                  f"({chosen_tps / no_move[2]:.1f}x)")
    elif chosen_b > 1:
        reason = (f"batch {chosen_b}: the smallest batch within {round((1 - KNEE_FRACTION) * 100)}% of the best ceiling "
                  f"({chosen_tps:.3g} tokens/s, {chosen_tps / base_tps:.1f}x batch 1); no layer moved")
    else:
        reason = "batch 1: a larger batch does not raise the throughput ceiling (or its KV cache does not fit)"
    choice = {
        "requested": "auto",
        "chosen": chosen_b,
        "layers_moved": max(0, moved),
        "reason": reason,
        "candidates": [{"batch_size": b, "offloaded_layers": _offloaded_layers(p), "tokens_per_s_ceiling": tps}
                       for b, p, tps in candidates],
    }
    return chosen_p, choice


HUMANEVAL_TASKS = (50, 164)  # the benchmark's two usual runs: --num-examples 50 and the full HumanEval


def task_estimates(plan: Any, counts: tuple[int, ...] = HUMANEVAL_TASKS, *, new_tokens: int | None = None,
                   prompt_tokens: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Floors on the wall time of `counts` tasks at `batch_size` rows (default: the plan's batch)
    under the plan's map: ceil(n / batch) batches, each the prefill plus `new_tokens` decoding steps
    of speed.predict (every task generating them all; a batch runs until its longest row ends)."""
    prompt, new = task_shape(plan)
    new = new_tokens or new
    prompt = prompt if prompt_tokens is None else prompt_tokens
    batch = int(batch_size or plan.batch_size)
    pred = speed.predict(plan, batch, prompt_tokens=prompt, new_tokens=new)
    out: dict[str, Any] = {"batch_size": batch, "prompt_tokens": prompt, "new_tokens": new,
                           "seconds_per_batch_floor": pred.total_s}
    for n in counts:
        out[f"tasks_{n}_floor_s"] = -(-n // batch) * pred.total_s
    return out
