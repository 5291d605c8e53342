"""`routerllm plan` as a user runs it: a real subprocess of the console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def run(*args: str) -> subprocess.CompletedProcess:
    """A real `python -m routerllm.cli plan ...` process."""
    return subprocess.run([sys.executable, "-m", "routerllm.cli", "plan", *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def run_inproc(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same entry point (`routerllm.cli.main`) in this process: exit code, stdout, stderr."""
    from routerllm.cli import main

    code = 0
    try:
        main(["plan", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_table_for_405b_on_3xa100_nf4():
    r = run("--model", "llama3_405b", "--hardware", "3xA100-80GB", "--cpu-ram", "200GB", "--quant", "nf4",
            "--context", "4096")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Placement" in out and "Verdict:" in out and "tokens/s" in out and "Tensor x pipeline" in out
    assert "fits_gpu" in out or "cpu_offload" in out


def test_json_is_complete_and_device_map_is_usable(capsys):
    r = run_inproc(capsys, "--model", "gemma3_270m", "--hardware", "cpu-laptop", "--quant", "int8", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for key in ("model", "hardware", "options", "device_map", "no_split_modules", "max_memory", "devices",
                "offloaded_modules", "verdict", "reason", "suggestions", "load_time_floor_s", "tokens_per_s_ceiling",
                "decode_tokens_per_s_ceiling", "throughput", "estimates", "parallel", "min_gpus"):
        assert key in data, key
    assert data["device_map"] == {"": "cpu"}
    assert data["no_split_modules"] == ["Gemma3DecoderLayer"]
    assert data["devices"][0]["weight_bytes"] == pytest.approx(436.4e6, rel=0.01)


def test_vllm_engine_prints_command_and_slurm_script(capsys):
    r = run_inproc(capsys, "--model", "llama3_405b", "--hardware", "8xH100-80GB", "--engine", "vllm", "--tp", "8", "--pp", "2",
            "--nodes", "2", "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["vllm"]
    assert v["layout"]["tp"] == 8 and v["layout"]["pp"] == 2
    assert v["command"].startswith("vllm serve meta-llama/Llama-3.1-405B-Instruct")
    assert "--tensor-parallel-size 8" in v["command"] and "--pipeline-parallel-size 2" in v["command"]
    assert "#SBATCH --nodes=2" in v["slurm_script"]


def test_vllm_rejects_tp_not_dividing_heads(capsys):
    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "8xA100-80GB", "--engine", "vllm", "--tp", "3")
    assert r.returncode == 1
    assert "not divisible by TP=3" in r.stdout


def test_unknown_model_and_hardware_list_choices(capsys):
    r = run_inproc(capsys, "--model", "llama3_4o5b", "--hardware", "1xA100-80GB")
    assert r.returncode == 2 and "did you mean 'llama3_405b'" in r.stderr
    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "3xB900")
    assert r.returncode == 2 and "3xA100-80GB" in r.stderr


def test_local_checkpoint_and_detected_hardware(tiny_llama, capsys):
    r = run_inproc(capsys, "--model", str(tiny_llama), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["hardware"]["detected"] is True
    assert data["model"]["source"] == "checkpoint"
    assert data["no_split_modules"] == ["LlamaDecoderLayer"]
