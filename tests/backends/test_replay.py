"""The replay backend on the real recorded generations (data/humaneval-generations)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routerllm.backends import GenerationRequest, make_backend
from routerllm.backends.replay import ReplayBackend, estimate_tokens
from routerllm.config import ModelConfig
from routerllm.evaluation.humaneval import load_tasks
from routerllm.evaluation.programs import build
from routerllm.evaluation.prompting import mode_for
from routerllm.evaluation.judge import Judge
from routerllm.exceptions import BackendError, BackendRejected, ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "humaneval-generations"


def _model(path: Path, **cost) -> ModelConfig:
    return ModelConfig(name="recorded", backend="replay", replay_file=str(path),
                       cost={"tokens_per_s": 50.0, "ttft_s": 0.5, "watts": 360.0, **cost})


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "rec.jsonl"
    rows = [
        {"task_id": "HumanEval/0", "sample": 0, "completion": "def f():\n    return 1", "passed": True, "passed_plus": True},
        {"task_id": "HumanEval/0", "sample": 1, "completion": "def f():\n    return 2", "passed": False, "passed_plus": False},
        {"task_id": "HumanEval/1", "sample": 0, "completion": "x = 1", "passed": False, "passed_plus": False},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_generate_returns_recorded_sample_with_modelled_cost(small_file):
    backend = make_backend(_model(small_file))
    assert isinstance(backend, ReplayBackend)
    backend.load()
    gens = backend.generate([
        GenerationRequest(prompt="def f():\n", task_id="HumanEval/0", sample=0),
        GenerationRequest(prompt="def f():\n", task_id="HumanEval/0", sample=1),
    ])
    assert [g.text for g in gens] == ["def f():\n    return 1", "def f():\n    return 2"]
    g = gens[0]
    assert g.timing == "modelled"
    assert g.completion_tokens == estimate_tokens("def f():\n    return 1") == 7
    assert g.prompt_tokens == 5
    assert g.total_s == pytest.approx(0.5 + 7 / 50.0)
    assert g.ttft_s == 0.5
    assert g.energy_kwh == pytest.approx(360.0 * g.total_s / 3.6e6)
    assert backend.samples("HumanEval/0") == 2 and backend.samples("HumanEval/9") == 0
    assert backend.available_samples("HumanEval/0") == 2 and backend.available_samples("HumanEval/1") == 1
    assert backend.recorded_passed("HumanEval/0", 0) is True
    assert backend.recorded_passed("HumanEval/0", 1) is False
    assert backend.health()


def test_a_sample_that_was_not_recorded_is_an_error_naming_the_file_and_the_count(small_file):
    # replaying sample 5 of a task with 2 recorded samples used to return sample 1 again (5 mod 2):
    # an answer that "agrees with itself" was then counted as agreement
    backend = make_backend(_model(small_file))
    with pytest.raises(BackendError) as exc:
        backend.generate([GenerationRequest(prompt="def f():\n", task_id="HumanEval/0", sample=5)])
    assert isinstance(exc.value, BackendRejected) and exc.value.code == "unknown_sample"
    message = exc.value.message  # shown to a serve client: no path; the operator's fix names the file
    assert "2 recorded sample(s)" in message and "sample 5" in message and str(small_file) not in message
    assert str(small_file) in exc.value.fix and "router.cascade.small_samples" in exc.value.fix
    with pytest.raises(BackendError):
        backend.recorded_passed("HumanEval/0", 2)


def test_unknown_task_and_missing_task_id_are_the_clients_error(small_file):
    backend = ReplayBackend(_model(small_file))
    with pytest.raises(BackendRejected, match="HumanEval/99") as unknown:
        backend.generate([GenerationRequest(prompt="", task_id="HumanEval/99")])
    with pytest.raises(BackendRejected, match="task_id") as missing:
        backend.generate([GenerationRequest(prompt="")])
    for exc, code in ((unknown.value, "unknown_task"), (missing.value, "missing_task_id")):
        assert isinstance(exc, BackendError) and exc.tier == "recorded"
        assert (exc.param, exc.code) == ("routerllm.task_id", code)
        # the message is shown to clients: no file path; the path is in the operator's fix
        assert str(small_file) not in exc.message and "Fix" not in exc.message
    assert str(small_file) in unknown.value.fix


def test_max_tokens_and_stop_cut_the_recorded_answer(small_file):
    backend = ReplayBackend(_model(small_file))
    whole, stopped, cut, exact = backend.generate([
        GenerationRequest(prompt="", task_id="HumanEval/0"),
        GenerationRequest(prompt="", task_id="HumanEval/0", stop=["return", "zzz"]),
        GenerationRequest(prompt="", task_id="HumanEval/0", max_new_tokens=3),
        GenerationRequest(prompt="", task_id="HumanEval/0", max_new_tokens=7),  # the answer has 7 pieces
    ])
    assert (whole.text, whole.finish_reason) == ("def f():\n    return 1", "stop")
    assert (stopped.text, stopped.finish_reason) == ("def f():\n    ", "stop")
    assert stopped.completion_tokens == estimate_tokens(stopped.text) == 5  # def f ( ) :
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("def f(", "length", 3)
    assert (exact.text, exact.finish_reason, exact.completion_tokens) == (whole.text, "stop", 7)
    one = backend.generate([GenerationRequest(prompt="", task_id="HumanEval/0", max_new_tokens=1)])[0]
    assert (one.text, one.finish_reason, one.completion_tokens) == ("def", "length", 1)


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="replay_file"):
        ReplayBackend(_model(tmp_path / "nope.jsonl")).load()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0"}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1"):
        ReplayBackend(_model(bad)).load()


@pytest.mark.skipif(not DATA.is_dir(), reason="recorded generations not present")
def test_recorded_gpt4_verdicts_reproduced_by_the_judge():
    """Sample 0 of gpt-4-0613 on 40 tasks: the Judge's verdicts agree with the recorded ones."""
    model = _model(DATA / "gpt-4-0613.jsonl")
    backend = ReplayBackend(model)
    assert len(backend.task_ids()) == 164 and backend.samples("HumanEval/0") == 3
    tasks = load_tasks(num_examples=40)
    gens = backend.generate([GenerationRequest(prompt=t.prompt, task_id=t.task_id) for t in tasks])
    assert mode_for(model) == "program"
    with Judge(timeout_s=10, workers=2) as judge:
        verdicts = judge.judge_many([build(t, g.text, "program") for t, g in zip(tasks, gens)])
    recorded = [backend.recorded_passed(t.task_id, 0) for t in tasks]
    agree = sum(v.passed == r for v, r in zip(verdicts, recorded))
    assert agree >= 38, [(t.task_id, str(v), r) for t, v, r in zip(tasks, verdicts, recorded) if v.passed != r]
