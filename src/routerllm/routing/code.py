"""The code an answer stands for, the same way the scorer reads it (evaluation.prompting).

A tier's output is a continuation of the prompt (base models), a chat reply with a code block
(`chat: true`), or a whole program (replayed recordings). The cascade checks exactly the program
the hidden tests will later score, minus the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.evaluation.humaneval import Task
from routerllm.evaluation.prompting import Mode, chat_to_program, mode_for, truncate_continuation

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
    if mode in ("program", "chat"):
        # A recorded whole program may rely on the prompt's imports (`List`) without repeating
        # them: the recorded verdicts (evalplus) were obtained with them, so the preamble is
        # prepended when missing, as for chat replies.
        task = Task(task_id=request.task_id or "", prompt=request.prompt, canonical_solution="", test="", entry_point=entry_point)
        return chat_to_program(task, generation.text)
    return request.prompt + truncate_continuation(generation.text, request.stop or None)
