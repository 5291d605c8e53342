"""Tests written by a tier itself, for the cascade's checks (CodeT, Chen et al. 2022; "Model
Cascading for Code", Chen et al. 2024): once per step the tier is asked for
`router.cascade.self_tests` assert statements of the function it is answering; the inputs of the
parsed tests join the near probes (answers that return different values on them conflict), and
each answer's pass count on them is recorded with its check.

Only a tier that can be asked gets asked: a replayed tier has no recorded answer to this request.
The model's expected values are not trusted to reject an answer (a weak model's tests share its
misreadings); the agreement between answers on the tests' inputs is what decides.
"""

from __future__ import annotations

import dataclasses

from routerllm.backends.base import GenerationRequest
from routerllm.evaluation.examples import PlainExample, parse_asserts
from routerllm.evaluation.prompting import Mode

# Chat tiers get an instruction; base models continue a comment and a first `assert`.
INSTRUCTION = (
    "Write {n} different assert statements that test the following Python function, one per line, "
    "each of the form `assert {entry_point}(...) == expected`, in a single ```python code block. "
    "Do not write the function.\n\n```python\n{prompt}```"
)
CONTINUATION = "{prompt}    ...\n\n\n# {n} tests of {entry_point}, one per line\nassert {entry_point}("
STOP = ["\ndef ", "\nclass ", "\nif __name__"]


def request_for(request: GenerationRequest, entry_point: str, n: int, mode: Mode) -> GenerationRequest:
    """The request asking a tier for `n` assert tests of `entry_point`."""
    if mode == "chat":
        content = INSTRUCTION.format(n=n, entry_point=entry_point, prompt=request.prompt)
        return dataclasses.replace(request, messages=[{"role": "user", "content": content}], stop=[], sample=0)
    prompt = CONTINUATION.format(n=n, entry_point=entry_point, prompt=request.prompt)
    return dataclasses.replace(request, prompt=prompt, messages=None, stop=list(STOP), sample=0)


def parse(reply: str, entry_point: str, n: int, mode: Mode) -> list[PlainExample]:
    """The tests in a reply (a continuation starts after the prompt's `assert f(`)."""
    text = reply if mode == "chat" else f"assert {entry_point}(" + reply
    return parse_asserts(text, entry_point, limit=n)
