"""Hardware: the machine in hand (detected) or a named profile for one you do not have.

    >>> hw = get_profile("3xA100-80GB")
    >>> len(hw.gpus), hw.gpus[0].memory_bytes // 2**30
    (3, 80)
    >>> hw = detect_hardware(offload_folder="./offload")   # torch.cuda / NVML, psutil, shutil

Profiles are `NxGPU` with N any positive integer (`5xA100-80GB` works) plus `cpu-laptop`.
Every figure carries its unit and its source. Bandwidths are peak datasheet figures: real
transfers reach 70-90% of them, so speeds predicted from them are upper bounds.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from routerllm.exceptions import HardwareError

logger = logging.getLogger(__name__)

GiB = 2**30
GB = 10**9

# --- link and storage figures --------------------------------------------------------------------
# PCIe x16, one direction: Gen3 8 GT/s x16 x 128/130 / 8 = 15.75 GB/s; Gen4 31.5 GB/s; Gen5 63 GB/s
# (PCI-SIG PCIe 3.0/4.0/5.0 base specifications).
PCIE3_X16_BPS = 15.75e9  # B/s
PCIE4_X16_BPS = 31.5e9  # B/s
PCIE5_X16_BPS = 63.0e9  # B/s
# Datacenter NVMe (PCIe Gen4 x4) sequential read: 6.8 GB/s, Samsung PM9A3 datasheet.
NVME_GEN4_BPS = 6.8e9  # B/s
# Consumer NVMe (PCIe Gen4 x4): 7.0 GB/s sequential read, Samsung 990 PRO / WD SN850X datasheets.
NVME_GEN4_CONSUMER_BPS = 7.0e9  # B/s
# Laptop NVMe (PCIe Gen3 x4): 3.5 GB/s sequential read, Samsung 970 EVO Plus datasheet.
NVME_GEN3_BPS = 3.5e9  # B/s
# Host DRAM bandwidth: 8 channels DDR4-3200 = 8 x 25.6 GB/s = 204.8 GB/s per socket (AMD EPYC 7003,
# DGX A100 host); 8 x DDR5-4800 = 307 GB/s (Intel Xeon 4th gen, DGX H100 host, per socket);
# dual-channel DDR4-3200 = 51.2 GB/s (laptop); 4 x DDR4-3200 = 102.4 GB/s (workstation).
DDR4_8CH_BPS = 204.8e9
DDR5_8CH_BPS = 307.2e9
DDR4_4CH_BPS = 102.4e9
DDR4_2CH_BPS = 51.2e9
# CPU matmul peak per core: 2.5 GHz x 32 FP32 FLOP/cycle (AVX2/AVX-512 parts with two 256-bit FMA
# ports: 2 ports x 8 lanes x 2 FLOP; Intel and AMD optimization reference manuals). A ceiling: bf16
# on a CPU without AVX512_BF16/AMX converts to fp32 and runs slower still.
CPU_FLOPS_PER_CORE = 2.5e9 * 32  # FLOP/s


@dataclass(frozen=True)
class GPUModel:
    """One GPU model's datasheet figures."""

    name: str
    memory_bytes: int  # B
    bandwidth_bps: float  # B/s, HBM/GDDR peak
    host_link_bps: float  # B/s, host <-> GPU, one direction
    source: str
    flops: float = 100e12  # FLOP/s, dense bf16/fp16 tensor-core peak (no sparsity)


# Memory sizes are the boards' nominal sizes in the unit their HBM comes in (80 GB HBM2e = 80 GiB,
# 81920 MiB in nvidia-smi; H200's 141 GB is decimal). What CUDA lets a process allocate is ~1-3%
# less (ECC, driver reservations), which the planner's gpu_headroom_fraction (5%) covers together
# with allocator fragmentation; the CUDA context is a separate planner constant.
GPU_MODELS: dict[str, GPUModel] = {
    g.name: g
    for g in [
        GPUModel("A100-40GB", 40 * GiB, 1.555e12, PCIE4_X16_BPS,
                 "NVIDIA A100 datasheet: 40 GB HBM2, 1,555 GB/s; PCIe Gen4; 312 TFLOPS bf16 dense", 312e12),
        GPUModel("A100-80GB", 80 * GiB, 2.039e12, PCIE4_X16_BPS,
                 "NVIDIA A100 datasheet: 80 GB HBM2e, 2,039 GB/s (SXM); PCIe Gen4; 312 TFLOPS bf16 dense", 312e12),
        GPUModel("H100-80GB", 80 * GiB, 3.35e12, PCIE5_X16_BPS,
                 "NVIDIA H100 datasheet: 80 GB HBM3, 3.35 TB/s (SXM); PCIe Gen5; 989 TFLOPS bf16 dense (1,979 sparse)", 989e12),
        GPUModel("H200", 141 * GB, 4.8e12, PCIE5_X16_BPS,
                 "NVIDIA H200 datasheet: 141 GB HBM3e, 4.8 TB/s (SXM); PCIe Gen5; 989 TFLOPS bf16 dense (1,979 sparse)", 989e12),
        GPUModel("RTX3090", 24 * GiB, 936e9, PCIE4_X16_BPS,
                 "NVIDIA GeForce RTX 3090 specs: 24 GB GDDR6X, 936 GB/s; PCIe Gen4; 71 TFLOPS fp16 tensor dense with "
                 "fp32 accumulate (NVIDIA Ampere GA102 whitepaper)", 71e12),
        GPUModel("RTX4090", 24 * GiB, 1008e9, PCIE4_X16_BPS,
                 "NVIDIA GeForce RTX 4090 specs: 24 GB GDDR6X, 1,008 GB/s; PCIe Gen4; 165 TFLOPS fp16 tensor dense "
                 "with fp32 accumulate (NVIDIA Ada Lovelace whitepaper)", 165.2e12),
        GPUModel("L40S", 48 * GB, 864e9, PCIE4_X16_BPS,
                 "NVIDIA L40S datasheet: 48 GB GDDR6 with ECC, 864 GB/s; PCIe Gen4 x16; 362 TFLOPS bf16 dense "
                 "(733 sparse)", 362e12),
    ]
}
_GPU_ALIASES = {
    "A100": "A100-80GB", "A100-80G": "A100-80GB", "A100-40G": "A100-40GB", "H100": "H100-80GB",
    "H100-80G": "H100-80GB", "H200-141GB": "H200", "3090": "RTX3090", "4090": "RTX4090",
    "RTX-3090": "RTX3090", "RTX-4090": "RTX4090",
}


@dataclass(frozen=True)
class HostDefaults:
    """Host figures that go with a GPU model when a profile is named (per GPU where it says so)."""

    cpu_ram_per_gpu: int  # B
    cpu_ram_bps: float  # B/s
    disk_bytes: int  # B
    disk_bps: float  # B/s
    source: str


_HOSTS: dict[str, HostDefaults] = {
    "A100-40GB": HostDefaults(85 * GB, DDR4_8CH_BPS, 2 * 10**12, NVME_GEN4_BPS,
                              "GCP a2-highgpu-1g: 85 GB RAM per A100-40GB"),
    "A100-80GB": HostDefaults(170 * GB, DDR4_8CH_BPS, 2 * 10**12, NVME_GEN4_BPS,
                              "GCP a2-ultragpu-1g: 170 GB RAM per A100-80GB (a2-ultragpu-8g: 1360 GB)"),
    "H100-80GB": HostDefaults(234 * GB, DDR5_8CH_BPS, 2 * 10**12, NVME_GEN4_BPS,
                              "GCP a3-highgpu-8g: 1872 GB RAM for 8 H100 = 234 GB per GPU"),
    "H200": HostDefaults(369 * GB, DDR5_8CH_BPS, 2 * 10**12, NVME_GEN4_BPS,
                         "GCP a3-ultragpu-8g: 2952 GB RAM for 8 H200 = 369 GB per GPU"),
    "RTX3090": HostDefaults(64 * GB, DDR4_4CH_BPS, 2 * 10**12, NVME_GEN4_CONSUMER_BPS,
                            "typical workstation: 64 GB DDR4 per consumer GPU (4 GPUs: 256 GB)"),
    "RTX4090": HostDefaults(64 * GB, DDR4_4CH_BPS, 2 * 10**12, NVME_GEN4_CONSUMER_BPS,
                            "typical workstation: 64 GB DDR4 per consumer GPU"),
    "L40S": HostDefaults(128 * GiB, DDR4_8CH_BPS, 2 * 10**12, NVME_GEN4_BPS,
                         "AWS g6e.4xlarge: 1 L40S, 128 GiB RAM"),
}


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory_bytes: int  # B
    bandwidth_bps: float  # B/s
    host_link_bps: float = PCIE4_X16_BPS  # B/s, one direction
    flops: float = 100e12  # FLOP/s, dense bf16 tensor peak (GPU_MODELS; 100 TFLOPS when unknown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hardware:
    """A machine: GPUs, CPU RAM, disk at the offload folder, and the bandwidths between them.

    `host_link_bps` is host->GPU (PCIe, one direction); `disk_bps` sequential read at the offload
    folder; `cpu_ram_bps` DRAM bandwidth (what CPU compute and CPU-side copies read at)."""

    name: str
    gpus: tuple[GPU, ...]
    cpu_ram: int  # B
    disk: int  # B, free at the offload folder
    host_link_bps: float  # B/s
    disk_bps: float  # B/s
    cpu_ram_bps: float  # B/s
    detected: bool = False
    sources: tuple[str, ...] = field(default=())
    # CPU matmul peak, FLOP/s: what CPU-executed layers compute at on a named profile (a detected
    # machine's CPU is measured instead: planning.profile)
    cpu_flops: float = 4 * CPU_FLOPS_PER_CORE

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def total_gpu_memory(self) -> int:
        return sum(g.memory_bytes for g in self.gpus)

    def with_overrides(self, *, cpu_ram: int | None = None, disk: int | None = None) -> "Hardware":
        """A copy with CPU RAM and/or disk replaced (e.g. `--cpu-ram 200GB`)."""
        return replace(
            self,
            cpu_ram=self.cpu_ram if cpu_ram is None else int(cpu_ram),
            disk=self.disk if disk is None else int(disk),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gpus"] = [g.to_dict() for g in self.gpus]
        out["sources"] = list(self.sources)
        return out


# --- named profiles ------------------------------------------------------------------------------

# cpu-only laptop: 16 GB RAM, dual-channel DDR4-3200 (51.2 GB/s), 512 GB PCIe Gen3 NVMe (3.5 GB/s),
# 4 cores.
_LAPTOP = dict(cpu_ram=16 * GB, cpu_ram_bps=DDR4_2CH_BPS, disk=512 * GB, disk_bps=NVME_GEN3_BPS,
               cpu_flops=4 * CPU_FLOPS_PER_CORE)

PROFILE_EXAMPLES = [
    "1xA100-40GB", "1xA100-80GB", "2xA100-80GB", "3xA100-80GB", "4xA100-80GB", "8xA100-80GB",
    "1xH100-80GB", "2xH100-80GB", "8xH100-80GB", "1xH200", "4xRTX3090", "2xRTX4090", "1xL40S", "cpu-laptop",
]
_PROFILE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(.+?)\s*$")


def _canonical_gpu(name: str) -> str | None:
    key = name.strip().upper().replace("_", "-").replace(" ", "")
    for known in GPU_MODELS:
        if known.upper() == key:
            return known
    for alias, known in _GPU_ALIASES.items():
        if alias.upper() == key:
            return known
    return None


def get_profile(name: str) -> Hardware:
    """A named machine: `NxGPU` (N >= 1, GPU one of GPU_MODELS) or `cpu-laptop` / `cpu-only`."""
    text = name.strip()
    if text.lower() in ("cpu-laptop", "cpu-only", "cpu-only-laptop", "laptop", "cpu"):
        return Hardware(
            name="cpu-laptop", gpus=(), host_link_bps=0.0, detected=False,
            sources=("typical laptop: 16 GB dual-channel DDR4-3200 (51.2 GB/s), PCIe Gen3 NVMe 3.5 GB/s, "
                     "4 cores (CPU_FLOPS_PER_CORE each)",),
            **_LAPTOP,
        )
    match = _PROFILE_RE.match(text)
    gpu_name = _canonical_gpu(match.group(2)) if match else _canonical_gpu(text)
    count = int(match.group(1)) if match else 1
    if match and count < 1:
        raise HardwareError(
            f"hardware profile {name!r}: GPU count must be >= 1 (got {count})",
            fix=f"write e.g. 1x{gpu_name or match.group(2)}, or cpu-laptop for a machine without GPUs",
        )
    if gpu_name is None or count < 1:
        choices = PROFILE_EXAMPLES
        close = difflib.get_close_matches(text, choices, n=3, cutoff=0.3)
        raise HardwareError(
            f"unknown hardware profile {name!r}",
            fix=(f"did you mean {close[0]!r}? " if close else "")
            + f"write NxGPU with GPU one of {', '.join(GPU_MODELS)} (e.g. 5xA100-80GB), or one of: "
            + ", ".join(choices)
            + "; omit --hardware to detect this machine",
        )
    model = GPU_MODELS[gpu_name]
    host = _HOSTS[gpu_name]
    gpus = tuple(GPU(i, gpu_name, model.memory_bytes, model.bandwidth_bps, model.host_link_bps, model.flops)
                 for i in range(count))
    return Hardware(
        name=f"{count}x{gpu_name}",
        gpus=gpus,
        cpu_ram=host.cpu_ram_per_gpu * count,
        disk=host.disk_bytes,
        host_link_bps=model.host_link_bps,
        disk_bps=host.disk_bps,
        cpu_ram_bps=host.cpu_ram_bps,
        detected=False,
        sources=(model.source, host.source),
    )


def list_profiles() -> list[str]:
    return list(PROFILE_EXAMPLES)


# --- detection -----------------------------------------------------------------------------------


def _model_for(gpu_name: str) -> GPUModel | None:
    """The GPU_MODELS entry a detected GPU name matches, or None."""
    upper = gpu_name.upper().replace(" ", "")
    for key, model in GPU_MODELS.items():
        base = key.split("-")[0].upper()
        if base in upper:
            if base == "A100" and "40GB" in key and "80" in upper:
                continue
            return model
    return None


def _detected_gpu(index: int, name: str, memory_bytes: int) -> GPU:
    """A detected GPU with its datasheet figures by name (GPU_MODELS), else assumed ones."""
    model = _model_for(name)
    if model is None:
        logger.info("no bandwidth figure for GPU %r; assuming 1 TB/s and PCIe Gen4", name)
        return GPU(index, name, memory_bytes, 1.0e12, PCIE4_X16_BPS)
    return GPU(index, name, memory_bytes, model.bandwidth_bps, model.host_link_bps, model.flops)


def _detect_gpus() -> list[GPU]:
    gpus: list[GPU] = []
    try:  # NVML: no CUDA context needed, works with CPU-only torch
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else name
                mem = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
                gpus.append(_detected_gpu(i, name, mem))
        finally:
            pynvml.nvmlShutdown()
        if gpus:
            return gpus
    except Exception as exc:  # noqa: BLE001 - no driver / library: fall back to torch
        logger.debug("NVML unavailable: %s", exc)
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                gpus.append(_detected_gpu(i, props.name, int(props.total_memory)))
    except Exception as exc:  # noqa: BLE001
        logger.debug("torch.cuda unavailable: %s", exc)
    return gpus


def detect_hardware(offload_folder: str | os.PathLike = ".") -> Hardware:
    """The machine in hand: GPUs (NVML, else torch.cuda), total RAM (psutil), free disk at
    `offload_folder` (its nearest existing parent when it does not exist yet)."""
    import psutil

    gpus = tuple(_detect_gpus())
    ram = int(psutil.virtual_memory().total)
    folder = Path(offload_folder).expanduser().resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    disk = int(shutil.disk_usage(folder).free)
    link = max((g.host_link_bps for g in gpus), default=0.0)
    return Hardware(
        name="detected" + (f" ({len(gpus)}x{gpus[0].name})" if gpus else " (cpu only)"),
        gpus=gpus,
        cpu_ram=ram,
        disk=disk,
        host_link_bps=link,
        # not measured: a datacenter NVMe read figure and 4-channel DDR4 are assumed
        disk_bps=NVME_GEN4_BPS,
        cpu_ram_bps=DDR4_4CH_BPS,
        detected=True,
        cpu_flops=(os.cpu_count() or 1) * CPU_FLOPS_PER_CORE,  # planning.profile measures it when CPUs compute
        sources=(
            "GPUs: NVML / torch.cuda; RAM: psutil.virtual_memory().total; disk: shutil.disk_usage(offload_folder)",
            "bandwidths not measured: GPU datasheet by name, NVMe Gen4 6.8 GB/s, DDR4 4-channel 102.4 GB/s assumed",
        ),
    )


def resolve_hardware(name: str | None, offload_folder: str | os.PathLike = ".") -> Hardware:
    """A named profile, or this machine when `name` is None/'detect'/'auto'."""
    if name is None or name.strip().lower() in ("", "detect", "auto", "local", "this"):
        return detect_hardware(offload_folder)
    return get_profile(name)
