"""The measured CPU linear profile (planning.profile): measured for real, cached on disk only when
the machine was quiet enough for the figure to describe the host."""

from __future__ import annotations

import os

import pytest

from routerllm.planning import cache, profile

SHAPE = {"256x512": 2}


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTERLLM_CACHE", str(tmp_path))
    monkeypatch.setenv("ROUTERLLM_PLANNING_CACHE", "1")
    profile._MEMO.clear()
    yield tmp_path
    profile._MEMO.clear()


def _stored(tmp_path) -> list:
    return sorted((tmp_path / "planning" / "cpu_linear").glob("*.json")) if (tmp_path / "planning").exists() else []


def test_a_quiet_measurement_is_cached_and_reused(fresh, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    first = profile.linear_seconds(SHAPE, 4, "float32")
    assert first > 0 and len(_stored(fresh)) == 1
    # a later process (memo cleared) reads the stored figure instead of measuring again
    profile._MEMO.clear()
    assert profile.linear_seconds(SHAPE, 4, "float32") == first
    # rows scale linearly past the profiled maximum
    assert profile.linear_seconds(SHAPE, 2 * profile.PROFILE_MAX_ROWS, "float32") == pytest.approx(
        2 * profile.linear_seconds(SHAPE, profile.PROFILE_MAX_ROWS, "float32"))


def test_a_measurement_on_a_busy_machine_is_not_cached(fresh, monkeypatch):
    busy = float(os.cpu_count() or 1) * 4
    monkeypatch.setattr(os, "getloadavg", lambda: (busy, busy, busy))
    assert profile.linear_seconds(SHAPE, 4, "float32") > 0
    assert _stored(fresh) == []  # used by this process only: a quieter plan measures again
    assert cache.enabled()


def test_first_touch_of_fresh_pages_is_measured_and_cached(fresh, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    profile._FIRST_TOUCH.clear()
    per_byte = profile.first_touch_seconds_per_byte()
    # a page fault costs between 0.02 us and 1 ms per 4 KiB page on any host this runs on
    assert 0.02e-6 / 4096 < per_byte < 1e-3 / 4096
    stored = sorted((fresh / "planning" / "cpu_first_touch").glob("*.json"))
    assert len(stored) == 1
    profile._FIRST_TOUCH.clear()
    assert profile.first_touch_seconds_per_byte() == per_byte  # read back, not measured again
    profile._FIRST_TOUCH.clear()
