"""Hardware profiles and detection."""

from __future__ import annotations

import shutil

import psutil
import pytest

from routerllm.exceptions import HardwareError
from routerllm.hardware import GPU_MODELS, PROFILE_EXAMPLES, detect_hardware, get_profile, resolve_hardware


@pytest.mark.parametrize("name", PROFILE_EXAMPLES)
def test_every_listed_profile_resolves(name):
    hw = get_profile(name)
    assert hw.cpu_ram > 0 and hw.disk > 0 and hw.disk_bps > 0 and hw.cpu_ram_bps > 0
    for g in hw.gpus:
        assert g.memory_bytes > 10 * 2**30 and g.bandwidth_bps > 5e11 and g.host_link_bps > 1e10
    assert hw.sources


def test_nx_parsing_and_figures():
    hw = get_profile("5xA100-80GB")
    assert len(hw.gpus) == 5 and [g.index for g in hw.gpus] == [0, 1, 2, 3, 4]
    assert hw.gpus[0].memory_bytes == 80 * 2**30
    assert hw.gpus[0].bandwidth_bps == pytest.approx(2.039e12)
    assert get_profile("3xA100-80GB").cpu_ram == 3 * get_profile("1xA100-80GB").cpu_ram
    assert get_profile("1xH200").gpus[0].memory_bytes == 141 * 10**9
    assert get_profile("2xh100").gpus[0].name == "H100-80GB"
    assert get_profile("cpu-laptop").gpus == ()
    assert all(m.source for m in GPU_MODELS.values())


def test_unknown_profile_lists_choices():
    with pytest.raises(HardwareError) as info:
        get_profile("3xA100-90GB")
    assert "3xA100-80GB" in str(info.value) and "cpu-laptop" in str(info.value)


def test_overrides():
    hw = get_profile("3xA100-80GB").with_overrides(cpu_ram=200 * 10**9, disk=2 * 10**12)
    assert hw.cpu_ram == 200 * 10**9 and hw.disk == 2 * 10**12 and len(hw.gpus) == 3


def test_detect_this_machine(tmp_path):
    hw = detect_hardware(tmp_path / "not-yet" / "offload")
    assert hw.detected
    assert hw.cpu_ram == psutil.virtual_memory().total
    assert abs(hw.disk - shutil.disk_usage(tmp_path).free) < 2 * 10**9
    try:
        import torch

        assert len(hw.gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    except ImportError:  # pragma: no cover
        pass
    assert resolve_hardware(None, tmp_path).detected
    assert resolve_hardware("1xL40S").name == "1xL40S"
