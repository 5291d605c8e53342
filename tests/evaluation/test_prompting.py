"""Prompt shapes and post-processing, checked by judging the resulting programs (the Judge)."""

from __future__ import annotations

import re

from routerllm.config import ModelConfig
from routerllm.evaluation.humaneval import load_tasks
from routerllm.evaluation.programs import build
from routerllm.evaluation.prompting import (STOP_SEQUENCES, build_request, chat_to_program,
                                            extract_code, mode_for, postprocess, prompt_preamble,
                                            truncate_continuation)


def test_requests_per_mode():
    task = load_tasks(task_ids=["HumanEval/0"])[0]
    base = ModelConfig(name="base", model_id="x", max_new_tokens=77, stop=["\n\n\n"])
    req = build_request(task, base, sample=2)
    assert req.prompt == task.prompt and req.messages is None and req.task_id == task.task_id and req.sample == 2
    assert req.stop[: len(STOP_SEQUENCES)] == STOP_SEQUENCES and "\n\n\n" in req.stop and req.max_new_tokens == 77
    chat = ModelConfig(name="chat", model_id="x", chat=True)
    req = build_request(task, chat)
    assert req.messages[0]["role"] == "user" and task.prompt in req.messages[0]["content"]
    assert "```python" in req.messages[0]["content"] and "\ndef " not in req.stop
    assert mode_for(base) == "continuation" and mode_for(chat) == "chat"
    assert mode_for(ModelConfig(name="r", backend="replay", replay_file="x.jsonl")) == "program"


def test_truncate_continuation():
    body = "    x = 1\n\n    def helper(y):\n        # inner comment\n        return y\n    return helper(x)\n"
    assert truncate_continuation(body + "\ndef other():\n    pass\n") == body
    assert truncate_continuation(body + "\nprint(f(1))\n") == body
    assert truncate_continuation(body + "\n# tests\nassert f(1) == 1\n") == body
    assert truncate_continuation(body + "\nif __name__ == '__main__':\n    main()\n") == body
    assert truncate_continuation(body + "x = f(2)\n") == body  # column-0 statement ends the function
    assert truncate_continuation("") == ""
    assert truncate_continuation(body.rstrip("\n")) == body


def test_extract_code_shapes():
    fn = "def add(a, b):\n    return a + b\n"
    assert extract_code(f"Sure!\n```python\n{fn}```\nThis adds.", "add") == fn
    two = f"Usage:\n```python\nprint(add(1, 2))\n```\nCode:\n```python\n{fn}```"
    assert extract_code(two, "add") == fn  # the block that defines the entry point
    assert extract_code(f"```py\n{fn}", "add") == fn  # unterminated fence
    assert extract_code(f"```\n{fn}```", "add") == fn  # no language tag
    assert extract_code(f"Here is the function:\n\n{fn}", "add") == fn  # no fence at all
    assert extract_code("", "add") == ""


def test_chat_program_gets_prompt_imports_and_helpers():
    t0 = load_tasks(task_ids=["HumanEval/0"])[0]
    assert "from typing import List" in prompt_preamble(t0)
    reply = "```python\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n```"
    program = chat_to_program(t0, reply)
    assert program.startswith("from typing import List")
    assert chat_to_program(t0, program) == program  # idempotent
    # a bare body continues the prompt
    body_program = chat_to_program(t0, "```python\nreturn False\n```")
    assert body_program.startswith(t0.prompt) and body_program.endswith("    return False\n")


def _chat_reply(task) -> str:
    """What a chat model typically answers: prose, then the function alone (no imports, no
    helper functions from the prompt), then an example block."""
    sig = re.search(rf"^def {task.entry_point}\(.*?:\n", task.prompt, re.M | re.S).group(0)
    return (f"Here is the implementation:\n\n```python\n{sig}{task.canonical_solution}```\n\n"
            f"Example:\n```python\nprint({task.entry_point}(...))\n```\n")


def test_chat_replies_become_passing_programs(code_judge):
    tasks = load_tasks()  # all 164, including HumanEval/115 whose prompt imports inside the function
    programs = [build(t, postprocess(t, _chat_reply(t), "chat"), "program") for t in tasks]
    verdicts = code_judge.judge_many(programs)
    assert {t.task_id: str(v) for t, v in zip(tasks, verdicts) if not v.passed} == {}
    # and the raw reply through the chat mode gives the same programs
    assert build(tasks[0], _chat_reply(tasks[0]), "chat") == programs[0]


def test_continuations_with_trailing_junk_pass(code_judge):
    tasks = load_tasks(40)
    junk = "\n\ndef unrelated():\n    raise SystemExit(1)\n\nprint(unrelated())\n"
    programs = [build(t, postprocess(t, t.canonical_solution + junk, "continuation"), "continuation")
                for t in tasks]
    verdicts = code_judge.judge_many(programs)
    assert {t.task_id: str(v) for t, v in zip(tasks, verdicts) if not v.passed} == {}
