"""Energy and CO2 with codecarbon's offline tracker (no network), per task and per run.

    tracker = CarbonTracker(country_iso_code="USA", output_dir=run_dir)   # or output_dir=None: no files
    tracker.start()
    with tracker.task("HumanEval/0") as energy:   # energy: dict filled when the block ends
        ...
    run_totals = tracker.stop()
    tracker.parts  # {"cpu": {"status": "estimated", "method": ...}, "gpu": {...}, "ram": {...}}

How honest each figure is depends on what codecarbon could read on this machine, and `parts`
records it per part:

* ``measured``: a hardware energy counter (CPU: Intel RAPL / Power Gadget / Apple powermetrics /
  Windows EMI; GPU: NVML's energy counter through nvidia-ml-py).
* ``estimated``: a model, not a measurement (CPU: "cpu_load" = the CPU model's TDP from
  codecarbon's table scaled by CPU load, or "constant" = a fixed TDP fraction; RAM: codecarbon
  always estimates RAM power from its size, there is no RAM power counter).
* ``unavailable``: codecarbon found no such part (e.g. no NVIDIA GPU): its energy is reported as
  null, not zero.

CO2 = energy x the carbon intensity of the configured country's grid (codecarbon's bundled
global_energy_mix.json; offline: nothing is fetched).

Energy is tracked in codecarbon's "process" mode by default (this process and its children,
e.g. the jail workers), so other jobs on a shared machine are not charged to the run;
"machine" mode charges the whole machine.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

MEASURED_CPU_MODES = {"intel_rapl", "intel_power_gadget", "apple_powermetrics", "windows_emi"}
PartStatus = str  # "measured" | "estimated" | "unavailable"


def _kwh(value: Any) -> float | None:
    if value is None:
        return None
    return float(getattr(value, "kWh", value))


class CarbonTracker:
    def __init__(
        self,
        country_iso_code: str = "USA",
        output_dir: str | Path | None = None,
        *,
        enabled: bool = True,
        tracking_mode: str = "process",
        measure_power_secs: float = 1.0,
        project_name: str = "routerllm",
    ) -> None:
        self.country_iso_code = country_iso_code
        self._task_numbers = itertools.count(1)  # codecarbon task names are made unique (see task())
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.enabled = enabled
        self.tracking_mode = tracking_mode
        self.measure_power_secs = measure_power_secs
        self.project_name = project_name
        self._tracker = None
        self.parts: dict[str, dict[str, str]] = {
            p: {"status": "unavailable", "method": "tracking disabled"} for p in ("cpu", "gpu", "ram")
        }
        self.error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "CarbonTracker":
        if not self.enabled or self._tracker is not None:
            return self
        try:
            # codecarbon 3.3.2 applies log_level only after its first INFO line; silence it first
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            self.error = f"codecarbon not installed ({exc})"
            self._mark_unavailable(self.error)
            return self
        kwargs: dict[str, Any] = dict(
            country_iso_code=self.country_iso_code,
            project_name=self.project_name,
            measure_power_secs=self.measure_power_secs,
            log_level="error",
            tracking_mode=self.tracking_mode,
            allow_multiple_runs=True,  # several runs/tests on one machine; no lock file in /tmp
            save_to_file=self.output_dir is not None,
        )
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            kwargs["output_dir"] = str(self.output_dir)
        try:
            tracker = OfflineEmissionsTracker(**kwargs)
            tracker.start()
            if not getattr(tracker, "_hardware", None):
                raise RuntimeError("codecarbon found no hardware to track (bad country code or config?)")
        except Exception as exc:  # noqa: BLE001 - CO2 is reported unavailable, the run goes on
            self.error = f"codecarbon failed to start: {exc}"
            log.warning("%s; energy and CO2 are recorded as unavailable", self.error)
            self._mark_unavailable(self.error)
            return self
        self._tracker = tracker
        self.parts = self._describe_parts(tracker)
        return self

    def _mark_unavailable(self, why: str) -> None:
        self.parts = {p: {"status": "unavailable", "method": why} for p in ("cpu", "gpu", "ram")}

    @staticmethod
    def _describe_parts(tracker: Any) -> dict[str, dict[str, str]]:
        parts = {
            "cpu": {"status": "unavailable", "method": "codecarbon found no CPU power source"},
            "gpu": {"status": "unavailable", "method": "no GPU found by codecarbon (NVIDIA via NVML only)"},
            "ram": {"status": "unavailable", "method": "not tracked"},
        }
        for hw in tracker._hardware:  # codecarbon 3.x keeps its hardware objects here
            kind = type(hw).__name__
            if kind == "CPU":
                mode = getattr(hw, "_mode", "unknown")
                tdp = getattr(hw, "_tdp", None)
                model = getattr(hw, "_model", "?")
                if mode in MEASURED_CPU_MODES:
                    parts["cpu"] = {"status": "measured", "method": f"{mode} energy counter ({model})"}
                else:
                    parts["cpu"] = {"status": "estimated",
                                    "method": f"{mode}: {model} TDP {tdp} W from codecarbon's table, scaled by load"
                                    if mode == "cpu_load" else f"{mode}: fixed share of TDP {tdp} W ({model})"}
            elif kind == "GPU":
                parts["gpu"] = {"status": "measured", "method": f"NVML energy counter, {getattr(hw, 'num_gpus', '?')} GPU(s)"}
            elif kind == "RAM":
                parts["ram"] = {"status": "estimated", "method": "codecarbon power model from RAM size (no RAM power counter)"}
        return parts

    def stop(self) -> dict[str, Any] | None:
        """Stop; returns this session's totals (None when not tracking)."""
        if self._tracker is None:
            return None
        tracker, self._tracker = self._tracker, None
        try:
            tracker.stop()
            data = tracker.final_emissions_data
        except Exception as exc:  # noqa: BLE001
            log.warning("codecarbon failed to stop: %s", exc)
            return None
        return self._to_dict(data) if data is not None else None

    @property
    def active(self) -> bool:
        return self._tracker is not None

    # -- per task ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def task(self, name: str) -> Iterator[dict[str, Any]]:
        """Measure the block; the yielded dict is filled with energy/CO2 when it ends (stays empty
        when not tracking)."""
        result: dict[str, Any] = {}
        if self._tracker is None:
            yield result
            return
        # Workaround for codecarbon 3.3.2: start_task renames a task whose name was used before
        # (name + "_" + uuid) but stop_task(name) then stops the OLD entry, so the new one stays
        # "active" and tracker.stop() logs an error per such task and reports it as zero. Every
        # measured block gets a name of its own.
        name = f"{name} #{next(self._task_numbers)}"
        started = False
        try:
            self._tracker.start_task(name)
            started = True
        except Exception as exc:  # noqa: BLE001
            log.warning("codecarbon start_task failed: %s", exc)
        try:
            yield result
        finally:
            if started:
                try:
                    data = self._tracker.stop_task(name)
                    if data is not None:
                        result.update(self._to_dict(data))
                except Exception as exc:  # noqa: BLE001
                    log.warning("codecarbon stop_task failed: %s", exc)

    def _to_dict(self, data: Any) -> dict[str, Any]:
        parts = self.parts
        gpu_kwh = _kwh(getattr(data, "gpu_energy", None)) if parts["gpu"]["status"] != "unavailable" else None
        return {
            "energy_kwh": _kwh(getattr(data, "energy_consumed", None)),
            "co2_kg": float(data.emissions) if getattr(data, "emissions", None) is not None else None,
            "cpu_kwh": _kwh(getattr(data, "cpu_energy", None)) if parts["cpu"]["status"] != "unavailable" else None,
            "gpu_kwh": gpu_kwh,
            "ram_kwh": _kwh(getattr(data, "ram_energy", None)) if parts["ram"]["status"] != "unavailable" else None,
            "duration_s": float(getattr(data, "duration", 0.0) or 0.0),
            "cpu_power_w": float(getattr(data, "cpu_power", 0.0) or 0.0),
            "gpu_power_w": float(getattr(data, "gpu_power", 0.0) or 0.0),
            "ram_power_w": float(getattr(data, "ram_power", 0.0) or 0.0),
            "country_iso_code": getattr(data, "country_iso_code", self.country_iso_code),
            "source": "codecarbon",
        }

    def describe(self) -> dict[str, Any]:
        """What the results can say about energy: per-part status and the tracker's settings."""
        return {
            "tracker": "codecarbon OfflineEmissionsTracker" if self.enabled else "disabled",
            "country_iso_code": self.country_iso_code,
            "tracking_mode": self.tracking_mode,
            "parts": self.parts,
            "error": self.error,
        }


# energy-like figures of a measurement that add up over tasks (split by share); the rest (power,
# country, source) describe the measurement and are copied to every part
_ADDITIVE = ("energy_kwh", "co2_kg", "cpu_kwh", "gpu_kwh", "ram_kwh", "duration_s")


def split_by_share(measured: dict[str, Any] | None, weights: list[float]) -> list[dict[str, Any] | None]:
    """A batch's measurement (`CarbonTracker.task` of one batched generate) split over its tasks in
    proportion to `weights` (their generated tokens): the one place a batch's energy and CO2 are
    shared out, so the per-task figures still add up to what codecarbon measured for the batch.
    Zero total weight splits evenly. An empty or missing measurement gives None per task."""
    if not weights:
        return []
    if not measured:
        return [None] * len(weights)
    total = float(sum(max(w, 0.0) for w in weights))
    shares = [max(w, 0.0) / total for w in weights] if total > 0 else [1.0 / len(weights)] * len(weights)
    parts = []
    for share in shares:
        part = dict(measured)
        for key in _ADDITIVE:
            if measured.get(key) is not None:
                part[key] = float(measured[key]) * share
        part["batch_share"] = share
        parts.append(part)
    return parts


MODELLED_SOURCE = "modelled (tier cost model)"


def batch_energy(generations: list[Any], measured: dict[str, Any] | None,
                 intensity: float | None) -> dict[str, Any] | None:
    """The energy and CO2 of ONE batched generate call: modelled when every generation carries a
    modelled energy (replay tiers: the batch's longest member, since its rows decode together and the
    batch draws the tier's power for that long), else what codecarbon measured around the call (None
    when nothing was measured). The result's "source" says which."""
    if generations and all(getattr(g, "energy_kwh", None) is not None for g in generations):
        kwh = max(float(g.energy_kwh) for g in generations)
        return {"energy_kwh": kwh, "co2_kg": kwh * intensity if intensity is not None else None,
                "cpu_kwh": None, "gpu_kwh": None, "ram_kwh": None, "source": MODELLED_SOURCE,
                "measured_local": measured or None}
    if not measured:
        return None
    return {**measured, "source": measured.get("source") or "codecarbon"}


def split_batch_energy(generations: list[Any], measured: dict[str, Any] | None, intensity: float | None,
                       weights: list[float]) -> list[dict[str, Any] | None]:
    """`batch_energy` of a batch split over its members (tasks or answers) by `weights` (their
    generated tokens; split_by_share), CO2 filled from the energy where only energy is known."""
    parts = split_by_share(batch_energy(generations, measured, intensity), weights)
    for part in parts:
        if part is not None and part.get("co2_kg") is None and part.get("energy_kwh") is not None \
                and intensity is not None:
            part["co2_kg"] = float(part["energy_kwh"]) * intensity
    return parts


def carbon_intensity_kg_per_kwh(country_iso_code: str) -> float | None:
    """The grid's carbon intensity codecarbon uses offline for a country (kg CO2eq per kWh), from
    its bundled global_energy_mix.json (g/kWh / 1000). None when codecarbon or the country is missing.
    Used to turn modelled energy (replay tiers) into CO2 with the same figures as measured runs."""
    try:
        from codecarbon.input import DataSource

        mix = DataSource().get_global_energy_mix_data()
    except Exception as exc:  # noqa: BLE001
        log.debug("codecarbon energy mix unavailable: %s", exc)
        return None
    entry = mix.get(country_iso_code.upper())
    if not entry or entry.get("carbon_intensity") is None:
        return None
    return float(entry["carbon_intensity"]) / 1000.0
