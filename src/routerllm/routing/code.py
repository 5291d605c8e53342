"""The code an answer stands for, read the way every scorer reads it (built by evaluation/programs.py).

A tier's output is a continuation of the prompt (base models), a chat reply with a code block
(`chat: true`), or a whole program (replayed recordings). The cascade checks exactly the program
the hidden tests will later score, minus the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.evaluation.humaneval import Task
from routerllm.evaluation.programs import solution_from_output
from routerllm.evaluation.prompting import Mode, mode_for

if TYPE_CHECKING:
    from routerllm.routing.base import Tiers


def tier_mode(tiers: "Tiers", tier_name: str, request: GenerationRequest, generation: Generation | None = None) -> Mode:
    """How to read this tier's output: from its config when known, else from the request/answer."""
    config = tiers.configs.get(tier_name)
    if config is not None:
        return mode_for(config)
    if generation is not None and generation.extra.get("whole_program"):
        return "program"
    return "chat" if request.messages else "continuation"


def code_for(tiers: "Tiers", tier_name: str, request: GenerationRequest, generation: Generation, entry_point: str) -> str:
    """The candidate program (without tests) for an answer of `tier_name` to `request`."""
    mode = tier_mode(tiers, tier_name, request, generation)
    task = Task(task_id=request.task_id or "", prompt=request.prompt, canonical_solution="", test="", entry_point=entry_point)
    return solution_from_output(task, generation.text, mode, request.stop or None)
