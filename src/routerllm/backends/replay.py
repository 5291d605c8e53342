"""Replay backend: answers HumanEval tasks with recorded generations.

The file (`models.<tier>.replay_file`) has one JSON object per line, the format of
`data/humaneval-generations/*.jsonl` in the repository:

    {"task_id": "HumanEval/0", "sample": 0, "completion": "<a whole program>", "passed": true, "passed_plus": true}

`generate()` returns the completion recorded for (request.task_id, request.sample), cut as a model
would cut it: at the first of `request.stop` (finish_reason "stop") and after
`request.max_new_tokens` estimated tokens (finish_reason "length"). It never invents a sample:
asking for one the file does not have is an error naming how many it holds for that task;
`available_samples(task_id)` says so beforehand (the cascade caps its samples with it). A request
without a task id, or for a task the file does not record, is the client's error: BackendRejected
(the server answers 400). No model runs, so latency and energy are *modelled* from the tier's
`cost` (CostModel) and labelled `timing="modelled"`:

    total_s    = ttft_s + completion_tokens / tokens_per_s
    energy_kwh = watts * total_s / 3.6e6

Token counts are estimated, not tokenized: the number of word and punctuation pieces
(`\\w+|[^\\w\\s]`), which for Python source is within about a quarter of typical BPE token counts
(recorded files carry no token counts, and the models' tokenizers are not available offline).

The recorded verdicts (`recorded_passed`) are for analysis only; a router must never use them.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.exceptions import BackendRejected, ConfigError

if TYPE_CHECKING:
    from routerllm.config import ModelConfig

log = logging.getLogger(__name__)

_PIECE = re.compile(r"\w+|[^\w\s]")
JOULES_PER_KWH = 3.6e6


def estimate_tokens(text: str) -> int:
    """Word + punctuation pieces: a tokenizer-free estimate of BPE tokens for code and English."""
    return len(_PIECE.findall(text))


def _cut(text: str, stop: list[str], max_tokens: int) -> tuple[str, Literal["stop", "length"]]:
    """The recorded text as a model asked for at most `max_tokens` tokens with `stop` sequences
    would have returned it: up to the first stop sequence (excluded), then at most `max_tokens`
    estimated tokens (the word/punctuation pieces of `estimate_tokens`)."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i != -1]
    if cuts:
        text = text[: min(cuts)]
    for n, piece in enumerate(_PIECE.finditer(text), 1):
        if n == max_tokens:
            if text[piece.end():].strip():
                return text[: piece.end()], "length"
            break
    return text, "stop"


class ReplayBackend:
    """Recorded generations as a backend (see module docstring)."""

    def __init__(self, model: "ModelConfig", **_: object) -> None:
        if not model.replay_file:
            raise ConfigError(f"models.{model.name}.replay_file", "replay backend needs a recorded JSONL file",
                              fix="set replay_file: path/to/Model.jsonl")
        self.model = model
        self.name = model.name
        self.path = Path(model.replay_file).expanduser()
        self._records: dict[str, list[dict]] | None = None

    # -- Backend protocol -------------------------------------------------------------------------
    def load(self) -> None:
        if self._records is not None:
            return
        if not self.path.is_file():
            raise ConfigError(
                f"models.{self.model.name}.replay_file",
                f"no recorded generations at {self.path}",
                fix="point replay_file at a JSONL such as data/humaneval-generations/gpt-4-0613.jsonl",
            )
        records: dict[str, dict[int, dict]] = defaultdict(dict)
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    task_id, sample, completion = row["task_id"], int(row["sample"]), row["completion"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(
                        f"models.{self.model.name}.replay_file",
                        f"{self.path}:{lineno} is not a recorded generation ({exc})",
                        fix="each line needs task_id, sample, completion (and passed)",
                    ) from None
                records[task_id][sample] = {"completion": completion, "passed": row.get("passed"),
                                            "passed_plus": row.get("passed_plus")}
        self._records = {tid: [by_sample[s] for s in sorted(by_sample)] for tid, by_sample in records.items()}
        log.info("replay %s: %d tasks from %s", self.name, len(self._records), self.path)

    def _task(self, task_id: str | None) -> list[dict]:
        self.load()
        assert self._records is not None
        if task_id is None:
            raise BackendRejected(
                f"the tier {self.name!r} replays recorded answers and needs the task id: send "
                "routerllm.task_id (e.g. \"HumanEval/0\")", tier=self.name, param="routerllm.task_id",
                code="missing_task_id", fix="set GenerationRequest.task_id to the HumanEval id (e.g. HumanEval/0)")
        rows = self._records.get(task_id)
        if not rows:
            raise BackendRejected(
                f"the tier {self.name!r} has no recorded answer for task {task_id!r} (it records "
                f"{len(self._records)} tasks)", tier=self.name, param="routerllm.task_id", code="unknown_task",
                fix=f"replay only the tasks {self.path} records, or use a file that covers them")
        return rows

    def _sample(self, task_id: str | None, sample: int) -> tuple[int, dict]:
        rows = self._task(task_id)
        if not 0 <= sample < len(rows):
            raise BackendRejected(
                f"the tier {self.name!r} has {len(rows)} recorded sample(s) for {task_id!r}; sample {sample} was "
                "asked for", tier=self.name, param="n", code="unknown_sample",
                fix=f"ask for samples 0..{len(rows) - 1} of {self.path} (router.cascade.small_samples caps the "
                "cascade, which also asks available_samples()), or record more samples per task",
            )
        return sample, rows[sample]

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        out = []
        cost = self.model.cost
        for req in requests:
            index, row = self._sample(req.task_id, req.sample)
            text, finish = _cut(row["completion"], req.stop, req.max_new_tokens)
            prompt_text = req.prompt if not req.messages else "\n".join(m.get("content", "") for m in req.messages)
            prompt_tokens = estimate_tokens(prompt_text)
            completion_tokens = estimate_tokens(text)
            total_s = cost.ttft_s + completion_tokens / cost.tokens_per_s
            out.append(Generation(
                text=text,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                ttft_s=cost.ttft_s,
                total_s=total_s,
                finish_reason=finish,
                timing="modelled",
                energy_kwh=cost.watts * total_s / JOULES_PER_KWH,
                extra={"replay_sample": index, "whole_program": True, "token_count": "estimated"},
            ))
        return out

    def health(self) -> bool:
        return self.path.is_file()

    def close(self) -> None:
        self._records = None

    # -- analysis helpers -------------------------------------------------------------------------
    def task_ids(self) -> list[str]:
        self.load()
        assert self._records is not None
        return sorted(self._records, key=lambda t: int(t.rsplit("/", 1)[-1]) if t.rsplit("/", 1)[-1].isdigit() else 0)

    def samples(self, task_id: str) -> int:
        """Number of recorded samples for a task (0 when the task is not recorded)."""
        self.load()
        assert self._records is not None
        return len(self._records.get(task_id, []))

    def available_samples(self, task_id: str | None) -> int | None:
        """Samples recorded for the task (routing.base.RecordedSamples): never ask for more."""
        return self.samples(task_id) if task_id is not None else None

    def recorded_passed(self, task_id: str, sample: int = 0) -> bool | None:
        """The verdict recorded with the file (analysis and calibration only: never route on it)."""
        return self._sample(task_id, sample)[1]["passed"]
