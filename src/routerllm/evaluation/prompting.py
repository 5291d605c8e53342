"""Prompts for HumanEval and the answers the Judge runs.

Three shapes of model output, one per `mode`:

* ``continuation`` (base models): the model continues the prompt (signature + docstring). The
  continuation is cut at the first stop sequence (the Codex paper's set) and at the end of the
  function (the first non-blank line that starts at column 0). Program = prompt + completion.
* ``chat`` (chat/instruct models, `chat: true`): the model gets one user message asking for the
  completed function in a ```python block; the code block is extracted (the one defining the entry
  point when there are several; an unterminated fence or no fence at all is handled). A function
  without the prompt's imports or helper functions gets the prompt's preamble (everything before
  the entry point's `def`) prepended. A bare body (no `def` of the entry point) is treated as a
  continuation of the prompt.
* ``program`` (recorded generations): the completion is already a whole program; it runs as is.

What is executed for a completion is built in one place: evaluation/programs.py.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Literal

from routerllm.backends.base import GenerationRequest

if TYPE_CHECKING:
    from routerllm.config import ModelConfig
    from routerllm.evaluation.humaneval import Task

Mode = Literal["continuation", "chat", "program"]
MODES: tuple[str, ...] = ("continuation", "chat", "program")

# Codex paper (Chen et al. 2021, section 2.3) stop set, plus print/assert lines models add as demos.
STOP_SEQUENCES = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert"]

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including its "
    "imports, in a single ```python code block.\n\n```python\n{prompt}```"
)

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_IMPORT_LINE = re.compile(r"^[ \t]*(?:import [\w., ]+|from [\w.]+ import [\w., ()*]+)[ \t]*$", re.M)
_CODE_START = re.compile(r"^(?:def |async def |class |import |from |@)", re.M)


def mode_for(model: "ModelConfig") -> Mode:
    if model.backend == "replay":
        return "program"
    return "chat" if model.chat else "continuation"


def build_request(task: "Task", model: "ModelConfig", *, sample: int = 0, temperature: float | None = None,
                  seed: int | None = None) -> GenerationRequest:
    """The generation request for one task on one model tier."""
    mode = mode_for(model)
    messages = None
    stop = list(model.stop)
    if mode == "chat":
        messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=task.prompt)}]
    elif mode == "continuation":
        stop = STOP_SEQUENCES + [s for s in stop if s not in STOP_SEQUENCES]
    return GenerationRequest(
        prompt=task.prompt,
        messages=messages,
        max_new_tokens=model.max_new_tokens,
        temperature=model.temperature if temperature is None else temperature,
        stop=stop,
        task_id=task.task_id,
        sample=sample,
        seed=seed,
    )


def truncate_continuation(text: str, stop: list[str] | None = None) -> str:
    """Cut a base model's continuation at the first stop sequence and at the function's end."""
    cut = len(text)
    for s in STOP_SEQUENCES if stop is None else stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    text = text[:cut]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i == 0:
            continue  # the first line continues the prompt's last line (usually empty)
        if line.strip() and not line[0].isspace():
            return "\n".join(lines[:i]).rstrip() + "\n"
    return text.rstrip() + "\n" if text.strip() else ""


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a chat reply: the fenced block defining `entry_point` (else the longest python
    block), or, with no fence, the text from the first line that looks like code."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    if blocks:
        python_blocks = [b for lang, b in blocks if lang in ("", "python", "py", "python3")] or [b for _, b in blocks]
        if entry_point:
            defining = [b for b in python_blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
            if defining:
                return defining[0].strip("\n") + "\n"
        return max(python_blocks, key=len).strip("\n") + "\n"
    m = _CODE_START.search(text)
    if m:
        return text[m.start():].strip("\n") + "\n"
    return text.strip("\n") + "\n" if text.strip() else ""


def prompt_preamble(task: "Task") -> str:
    """Everything in the prompt before the entry point's `def` (imports, helper functions)."""
    m = re.search(rf"^def\s+{re.escape(task.entry_point)}\s*\(", task.prompt, re.M)
    return task.prompt[: m.start()] if m else ""


def chat_to_program(task: "Task", reply: str) -> str:
    """A whole program from a chat reply (idempotent: a program it made comes back unchanged)."""
    code = extract_code(reply, task.entry_point)
    if not re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(task.entry_point)}\s*\(", code, re.M):
        # a bare body: continue the prompt with it
        body = code if code.startswith((" ", "\t")) else textwrap.indent(code, "    ")
        return task.prompt + body
    preamble = prompt_preamble(task)
    if preamble.strip() and preamble.strip() not in code:
        code = preamble.rstrip("\n") + "\n\n" + code
    # imports the prompt makes inside the function (e.g. HumanEval/115's `import math` before its
    # docstring) that the model's version dropped
    missing = [line.strip() for line in _IMPORT_LINE.findall(task.prompt[len(preamble):])
               if line.strip() not in code]
    if missing:
        code = "\n".join(dict.fromkeys(missing)) + "\n" + code
    return code


def postprocess(task: "Task", text: str, mode: Mode, stop: list[str] | None = None) -> str:
    """Model output -> the completion stored in results (continuation: the body; chat: a program)."""
    if mode == "continuation":
        return truncate_continuation(text, stop)
    if mode == "chat":
        return chat_to_program(task, text)
    if mode == "program":
        return text
    raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
