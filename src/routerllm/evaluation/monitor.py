"""Background sampler of memory (and GPU state) during a run, kept with the results.

Each sample (every `interval_s`):
    {"t": unix time, "rss_bytes": this process + children RSS (psutil),
     "ram_used_bytes": machine RAM in use, "ram_total_bytes": ...,
     "torch_cuda": [{"device": 0, "allocated_bytes", "reserved_bytes"}]   # only if torch is already
                                                                           # imported and CUDA is up
     "nvml": [{"index", "name", "utilization_pct", "temperature_c", "memory_used_bytes",
               "memory_total_bytes", "power_w"}]}                          # NVIDIA GPUs via nvidia-ml-py

The monitor never imports torch itself (a CPU-only run stays light); NVML is used when
nvidia-ml-py is installed and a driver answers.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


class ResourceMonitor:
    def __init__(self, interval_s: float = 1.0, path: str | Path | None = None, max_samples: int = 100_000) -> None:
        self.interval_s = interval_s
        self.path = Path(path) if path is not None else None  # samples appended here as JSON lines
        self.max_samples = max_samples
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._nvml_handles: list[Any] = []
        self._proc = psutil.Process()
        self._fh = None
        self.gpu_source = "none"

    # -- sources -------------------------------------------------------------------------------------
    def _init_nvml(self) -> None:
        try:
            import pynvml  # from nvidia-ml-py

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._nvml_handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.gpu_source = f"nvml ({len(self._nvml_handles)} GPU)"
        except Exception as exc:  # noqa: BLE001 - no driver / no GPU / not installed
            self._nvml = None
            log.debug("NVML unavailable: %s", exc)

    def _nvml_sample(self) -> list[dict[str, Any]]:
        out = []
        nv = self._nvml
        for i, h in enumerate(self._nvml_handles):
            entry: dict[str, Any] = {"index": i}
            for key, fn in (
                ("name", lambda: nv.nvmlDeviceGetName(h)),
                ("utilization_pct", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                ("temperature_c", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                ("memory_used_bytes", lambda: nv.nvmlDeviceGetMemoryInfo(h).used),
                ("memory_total_bytes", lambda: nv.nvmlDeviceGetMemoryInfo(h).total),
                ("power_w", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
            ):
                try:
                    value = fn()
                    entry[key] = value.decode() if isinstance(value, bytes) else value
                except Exception:  # noqa: BLE001 - some fields are unsupported on some GPUs
                    entry[key] = None
            out.append(entry)
        return out

    @staticmethod
    def _torch_sample() -> list[dict[str, Any]] | None:
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        try:
            if not torch.cuda.is_available() or not torch.cuda.is_initialized():
                return None
            return [
                {"device": i, "allocated_bytes": torch.cuda.memory_allocated(i), "reserved_bytes": torch.cuda.memory_reserved(i),
                 "max_allocated_bytes": torch.cuda.max_memory_allocated(i)}
                for i in range(torch.cuda.device_count())
            ]
        except Exception:  # noqa: BLE001
            return None

    def sample(self) -> dict[str, Any]:
        rss = 0
        try:
            rss = self._proc.memory_info().rss
            for child in self._proc.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        except psutil.Error:
            pass
        vm = psutil.virtual_memory()
        entry: dict[str, Any] = {"t": time.time(), "rss_bytes": rss, "ram_used_bytes": vm.total - vm.available,
                                 "ram_total_bytes": vm.total}
        cuda = self._torch_sample()
        if cuda is not None:
            entry["torch_cuda"] = cuda
        if self._nvml is not None:
            entry["nvml"] = self._nvml_sample()
        return entry

    # -- thread --------------------------------------------------------------------------------------
    def _record(self, entry: dict[str, Any]) -> None:
        if len(self.samples) >= self.max_samples:
            self.samples = self.samples[::2]  # keep the whole run's shape at half resolution
        self.samples.append(entry)
        if self._fh is not None:
            self._fh.write(json.dumps(entry) + "\n")
            self._fh.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._record(self.sample())
            except Exception as exc:  # noqa: BLE001 - never kill the run for a sample
                log.debug("monitor sample failed: %s", exc)

    def start(self) -> "ResourceMonitor":
        if self._thread is not None:
            return self
        self._init_nvml()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._record(self.sample())
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="resource-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            try:
                self._record(self.sample())
            except Exception:  # noqa: BLE001
                pass
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self._nvml = None
        return self.summary()

    def __enter__(self) -> "ResourceMonitor":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self) -> dict[str, Any]:
        """Peaks and means over the samples so far, per device."""
        s = list(self.samples)
        if not s:
            return {"samples": 0}
        out: dict[str, Any] = {
            "samples": len(s),
            "interval_s": self.interval_s,
            "gpu_source": self.gpu_source,
            "rss_peak_bytes": max(x["rss_bytes"] for x in s),
            "rss_mean_bytes": sum(x["rss_bytes"] for x in s) / len(s),
            "ram_used_peak_bytes": max(x["ram_used_bytes"] for x in s),
            "ram_total_bytes": s[-1]["ram_total_bytes"],
        }
        cuda: dict[int, dict[str, int]] = {}
        for x in s:
            for d in x.get("torch_cuda", []):
                entry = cuda.setdefault(d["device"], {"allocated_peak_bytes": 0, "reserved_peak_bytes": 0})
                entry["allocated_peak_bytes"] = max(entry["allocated_peak_bytes"], d["allocated_bytes"])
                entry["reserved_peak_bytes"] = max(entry["reserved_peak_bytes"], d["reserved_bytes"])
        if cuda:
            out["torch_cuda"] = {str(k): v for k, v in cuda.items()}
        gpus: dict[int, dict[str, Any]] = {}
        for x in s:
            for g in x.get("nvml", []):
                e = gpus.setdefault(g["index"], {"name": g.get("name"), "util": [], "temp": [], "mem": []})
                for key, field in (("util", "utilization_pct"), ("temp", "temperature_c"), ("mem", "memory_used_bytes")):
                    if g.get(field) is not None:
                        e[key].append(g[field])
        if gpus:
            out["nvml"] = {
                str(i): {
                    "name": e["name"],
                    "utilization_mean_pct": sum(e["util"]) / len(e["util"]) if e["util"] else None,
                    "utilization_peak_pct": max(e["util"], default=None),
                    "temperature_peak_c": max(e["temp"], default=None),
                    "memory_used_peak_bytes": max(e["mem"], default=None),
                }
                for i, e in gpus.items()
            }
        return out
