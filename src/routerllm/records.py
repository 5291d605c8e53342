"""Typed records of routing runs, shared by the router, the comparison, the report and calibration.

    Attempt        one generation a strategy asked a tier for (and, for the cascade, its check)
    CheckResult    what checking one answer against the prompt gave (plain figures, no program output)
    SystemRecord   one system's answer to one task: tier, decision, cost, time, hidden-test verdict
    TaskRecord     one task: every system's record, and what the tiers could have done (oracle, ceiling)
    SystemSummary  one system over the run: pass@1, large share, false accepts, latency, throughput, ...
    ComparisonSummary  the run: every system, the better single tier, the floor and the ceilings
    BenchmarkSample    one generated answer of the one-model benchmark (runner.run_benchmark)
    BenchmarkBatch     the cross-task batch a benchmark task was generated in
    BenchmarkRecord    one benchmark task: its answers, queue wait, generation time, batch, energy share

Every class round-trips through JSON (`to_dict()` / `from_dict()`): results.jsonl holds one
TaskRecord per line, comparison.json one ComparisonSummary. Field meanings are in the docstrings;
units are in the names (`_s` seconds, `_kwh`, `_kg`, `_usd`).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def _convert(kind: Any, value: Any) -> Any:
    """`value` (from JSON) as an instance of the annotation `kind`."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(kind):
            if arg is type(None):
                continue
            return _convert(arg, value)
        return value
    if dataclasses.is_dataclass(kind) and isinstance(value, dict):
        return from_dict(kind, value)  # type: ignore[arg-type]
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        return [_convert(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(kind) or (Any, Any)
        return {k: _convert(item, v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """A dataclass from its `to_dict()` form; unknown keys (from newer versions) are ignored."""
    hints = _hints(cls)
    kwargs = {f.name: _convert(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if f.name in data}
    return cls(**kwargs)


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        return from_dict(cls, data)


@dataclass
class CheckResult(_Record):
    """One answer checked against what the prompt gives (routing/checker.py).

    `examples_passed` of `examples_total` visible examples; `near_probes` calls on inputs next to
    them (compared between answers, never with an expected value), of which `shape_mismatches`
    returned a value whose type differs from every visible expected value's; `load_error` names
    why the code could not be called at all. `failure` describes the first failed example (for the
    run's records and the repair prompt; never shown to a client). `fingerprint` digests the
    answer's results on the near probes."""

    examples_total: int
    examples_passed: int
    failed_examples: list[int] = field(default_factory=list)
    near_probes: int = 0
    shape_mismatches: int = 0
    load_error: str | None = None
    failure: str | None = None
    fingerprint: str | None = None
    check_s: float = 0.0
    self_tests: int = 0  # tests the tier wrote itself (routing/self_tests.py) that were run
    self_tests_passed: int = 0  # of them, those whose expected value this answer returned

    @property
    def passed(self) -> bool:
        """Every visible example passed (and there was at least one) and no shape mismatch."""
        return (self.load_error is None and self.examples_total > 0
                and self.examples_passed == self.examples_total and self.shape_mismatches == 0)

    def summary(self) -> str:
        """What was checked and how it went, in words (safe to show: no program output)."""
        if self.load_error is not None:
            return "the code could not be called"
        text = f"{self.examples_passed} of {self.examples_total} visible examples passed"
        if self.shape_mismatches:
            text += f", {self.shape_mismatches} result(s) of the wrong type on inputs next to them"
        return text


@dataclass
class Attempt(_Record):
    """One generation requested from a tier. `total_s` is the generation's own time (measured, or
    modelled for replay tiers); `batch_s` the time of the stage batch it was part of (its longest
    member: the task waited for all of it); `queue_s` the time the request waited for earlier
    batches (other tiers, other stages) before its batch started. Energy and CO2 are this
    generation's share of its batch (by generated tokens)."""

    tier: str
    sample: int
    temperature: float
    total_s: float
    batch_s: float = 0.0
    queue_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    energy_kwh: float | None = None
    co2_kg: float | None = None
    timing: str = "measured"
    stage: int | None = None  # index of the stage batch within the task's answer
    repair: bool = False
    self_tests: bool = False  # the tier was asked for tests of the function, not for an answer
    check: CheckResult | None = None
    cache_key: str | None = None


@dataclass
class SystemRecord(_Record):
    """One system's answer to one task.

    `tier` answered; `escalated`: the router moved past a tier it tried; `accepted`: the answer
    comes from a tier before the last after the router checked it (a false accept when it then
    fails the hidden tests); `state` is the evidence the last checked tier ended in (see
    routing/cascade.py). Time: `latency_s` = `queue_s` + `generation_s` + `check_s`, on the run's
    clock (measured for local and openai tiers, modelled for replay tiers, check (jail) wall time for
    checks). `batch_key`/`batch_clock_s` identify the task batch it was answered in and how long
    that batch took for this system (throughput = tasks / sum of batch clocks)."""

    tier: str
    reason: str
    escalated: bool = False
    accepted: bool = False
    state: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    small_calls: int = 0
    large_calls: int = 0
    queue_s: float = 0.0
    generation_s: float = 0.0
    check_s: float = 0.0
    latency_s: float = 0.0
    energy_kwh: float | None = None
    co2_kg: float | None = None
    cost_usd: float = 0.0
    timing: str = ""
    passed: bool | None = None
    verdict: str | None = None
    batch_key: str | None = None
    batch_clock_s: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def false_accept(self) -> bool:
        return bool(self.accepted and self.passed is False)


@dataclass
class TaskRecord(_Record):
    """Every system's answer to one task, and what the tiers could have done on it:
    `oracle`: some tier's first answer passes; `solvable`: some answer a tier before the last
    could give (within the cascade's sample budget) passes (the floor counts tasks where none
    does); `ceiling`: the pass@1 of a perfect checker (the first such tier's correct answer, else
    the last tier's answer)."""

    task_id: str
    systems: dict[str, SystemRecord] = field(default_factory=dict)
    oracle: bool | None = None
    solvable: bool | None = None
    ceiling: bool | None = None
    samples_scored: dict[str, int] = field(default_factory=dict)
    finished_at: str | None = None


@dataclass
class Percentiles(_Record):
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None


@dataclass
class SystemSummary(_Record):
    """One system over the run. `relative_pass_at_1` is against the better single tier (named in
    ComparisonSummary.better_tier); `pgr` the share of the gap between the worse and the better
    single tier this system recovers at its operating point; `apgr` RouteLLM's average PGR (the
    area under pass@1 over large share, from the worse tier's line to the better tier's, with this
    system's operating points joined to small-only at 0 and large-only at 1: random routing scores
    0.5; both None when the two tiers are fewer than comparison.MIN_GAP_TASKS tasks apart);
    `ceiling_share` its pass@1 as a share of the perfect-checker ceiling. `false_accepts` is None
    for systems that never check an answer."""

    tasks: int
    pass_at_1: float | None = None
    relative_pass_at_1: float | None = None
    large_share: float = 0.0
    small_calls_per_task: float = 0.0
    large_calls_per_task: float = 0.0
    escalated: int = 0
    accepted: int = 0
    false_accepts: int | None = None
    pgr: float | None = None
    apgr: float | None = None
    ceiling_share: float | None = None
    latency_s: Percentiles = field(default_factory=Percentiles)
    queue_s_mean: float | None = None
    generation_s_mean: float | None = None
    check_s_mean: float | None = None
    tasks_per_hour: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    cost_usd: float = 0.0
    relative_cost: float | None = None
    timing: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class CurvePoint(_Record):
    target: float
    large_share: float
    pass_at_1: float


@dataclass
class LearnedCV(_Record):
    curve: list[CurvePoint] = field(default_factory=list)
    auc: float | None = None
    folds: int = 0
    features: int = 0
    tasks: int = 0
    apgr: float | None = None


@dataclass
class BetterTier(_Record):
    """The better of the two single-tier baselines (small-only: the first tier of the chain;
    large-only: the last), by pass@1."""

    system: str  # "small" or "large"
    tier: str
    pass_at_1: float


@dataclass
class ComparisonSummary(_Record):
    tasks: int
    chain: list[str] = field(default_factory=list)  # tier names, cheapest first; the last is the large tier
    timing: dict[str, str] = field(default_factory=dict)  # tier -> "measured" | "modelled"
    systems: dict[str, SystemSummary] = field(default_factory=dict)
    better_tier: BetterTier | None = None
    worse_tier: BetterTier | None = None
    floor: float | None = None  # share of tasks no answer of a tier before the last solves
    ceiling_pass_at_1: float | None = None  # pass@1 of a perfect checker
    oracle_pass_at_1: float | None = None  # some tier's first answer passes
    oracle_large_share: float | None = None
    learned_cv: LearnedCV | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    isolation: str | None = None  # how generated code was isolated (the Judge's own words)
    unsafe_no_sandbox: bool = False  # benchmark.unsafe_no_sandbox was set (printed in every report)
    status: str = ""
    run_dir: str | None = None
    config: str | None = None
    carbon: dict[str, Any] = field(default_factory=dict)
    carbon_intensity_kg_per_kwh: float | None = None
    generation_cache: dict[str, int] = field(default_factory=dict)
    skip_execution: bool = False

    @property
    def small_tiers(self) -> list[str]:
        return self.chain[:-1]

    @property
    def large_tier(self) -> str | None:
        return self.chain[-1] if self.chain else None


# --------------------------------------------------------------------------------------------------
# the one-model benchmark (runner.run_benchmark): one BenchmarkRecord per line of results.jsonl
# --------------------------------------------------------------------------------------------------

@dataclass
class BenchmarkSample(_Record):
    """One answer. `total_s` is this row's own time, from its batch's start until the row stopped
    (stop sequence, EOS or its token limit; measured, or modelled for replay tiers): the latency one
    request would see, whatever else shared its batch. `verdict` is the hidden tests' verdict
    (Verdict.to_dict()), None until executed (`--skip-execution`)."""

    sample: int
    completion: str
    raw: str | None = None  # the text as generated, when postprocessing changed it
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str = "stop"
    timing: str = "measured"
    tokens_per_s: float | None = None
    verdict: dict[str, Any] | None = None


@dataclass
class BenchmarkBatch(_Record):
    """The batch a task was generated in: `index` within its `session` (0 = the first run, 1 = the
    first resume, ...), `tasks` and `rows` (answers) it held, `size` the tier's batch size (tasks per
    batch), `generation_s` the batch's generate call (wall time; modelled tiers: its longest row)."""

    index: int
    session: int
    tasks: int
    rows: int
    size: int
    generation_s: float

    @property
    def key(self) -> str:
        return f"{self.session}:{self.index}"


@dataclass
class BenchmarkRecord(_Record):
    """One task of the benchmark. Its latency is `queue_wait_s` (from the moment the session queued
    every pending task, after the model loaded, until this task's batch started: earlier batches'
    generation and scoring; on the modelled clock for replay tiers, earlier batches' generation) +
    `generation_s` (its batch's generate call: the task's answers exist when the batch returns).
    `energy` is the task's share of its batch's energy and CO2, by generated tokens
    (evaluation.carbon.split_batch_energy), with the measurement's source."""

    task_id: str
    model: str
    mode: str
    samples: list[BenchmarkSample] = field(default_factory=list)
    queue_wait_s: float = 0.0
    generation_s: float = 0.0
    batch: BenchmarkBatch | None = None
    energy: dict[str, Any] | None = None
    timing: str = "measured"
    finished_at: str | None = None

    @property
    def latency_s(self) -> float:
        return self.queue_wait_s + self.generation_s
