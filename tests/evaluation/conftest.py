"""The Judge of the evaluation attack and plumbing suites (one per test module; the
session's `code_judge` for scoring real programs is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from routerllm.evaluation.judge import Judge
from routerllm.exceptions import SandboxUnavailable


@pytest.fixture(scope="module")
def judge():
    """A Judge for the attack and plumbing suites: skips with the reason where no jail can start."""
    try:
        j = Judge(workers=2, timeout_s=5)
    except SandboxUnavailable as exc:
        pytest.skip(f"no jail on this machine: {exc}")
    with j:
        yield j

