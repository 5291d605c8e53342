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


# --- bad inputs, tried as a new user would -------------------------------------------------------


@pytest.mark.parametrize("kind", ["t5", "mamba"])
def test_non_causal_or_attention_free_checkpoint_is_refused_by_name(kind, tmp_path, capsys):
    from transformers import MambaConfig, T5Config

    config = (T5Config(d_model=64, num_layers=2, num_heads=2, d_kv=32, d_ff=128, vocab_size=128) if kind == "t5"
              else MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=128))
    config.save_pretrained(tmp_path / kind)
    r = run_inproc(capsys, "--model", str(tmp_path / kind), "--hardware", "cpu-laptop")
    assert r.returncode == 2, r.stdout
    assert "Traceback" not in r.stderr
    assert f"architecture {'t5' if kind == 't5' else 'Mamba'}" in r.stderr
    assert ("encoder-decoder" if kind == "t5" else "no attention layers") in r.stderr
    assert "llama" in r.stderr and "llama3_405b" in r.stderr  # what is supported


def test_a_size_without_unit_is_refused_with_the_fix(capsys):
    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "2xH100-80GB", "--cpu-ram", "200")
    assert r.returncode == 2
    assert "--cpu-ram 200: a size needs a unit" in r.stderr and "--cpu-ram 200GB" in r.stderr
    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "2xH100-80GB", "--disk", "1.5")
    assert r.returncode == 2 and "--disk 1.5GB" in r.stderr


def test_zero_gpus_is_a_count_error_not_an_unknown_profile(capsys):
    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "0xA100-80GB")
    assert r.returncode == 2
    assert "count must be >= 1" in r.stderr and "1xA100-80GB" in r.stderr
    assert "unknown hardware profile" not in r.stderr


def test_context_beyond_max_position_embeddings_warns_with_both_numbers(capsys):
    r = run_inproc(capsys, "--model", "llama2_70b", "--hardware", "2xH100-80GB", "--quant", "nf4", "--context", "8192",
                   "--batch", "1")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())  # rich wraps at the console width
    assert "WARNING" in text and "context_length 8192" in text and "max_position_embeddings 4096" in text
    r = run_inproc(capsys, "--model", "llama2_70b", "--hardware", "2xH100-80GB", "--quant", "nf4", "--context", "8192",
                   "--batch", "1", "--json")
    (warning,) = json.loads(r.stdout)["warnings"]
    assert "8192" in warning and "4096" in warning
    r = run_inproc(capsys, "--model", "llama2_70b", "--hardware", "2xH100-80GB", "--quant", "nf4", "--context", "4096",
                   "--batch", "1", "--json")
    assert json.loads(r.stdout)["warnings"] == []


def test_headroom_is_its_own_column_apart_from_the_cuda_context(capsys, monkeypatch):
    from routerllm.planning.memory import CUDA_CONTEXT_BYTES

    r = run_inproc(capsys, "--model", "mistral_7b", "--hardware", "1xA100-80GB", "--batch", "1", "--json")
    gpu = json.loads(r.stdout)["devices"][0]
    assert gpu["overhead_bytes"] == CUDA_CONTEXT_BYTES
    assert gpu["headroom_bytes"] == int(80 * 2**30 * 0.05)
    assert gpu["total_bytes"] == (gpu["weight_bytes"] + gpu["kv_bytes"] + gpu["activation_bytes"] + gpu["overhead_bytes"]
                                  + gpu["headroom_bytes"] + gpu["offload_staging_bytes"])
    monkeypatch.setenv("COLUMNS", "200")  # rich's console width: no truncated headers
    r = run_inproc(capsys, "--model", "mistral_7b", "--hardware", "1xA100-80GB", "--batch", "1")
    assert "headroom" in r.stdout and "CUDA context" in r.stdout


def test_vllm_table_overhead_is_the_sourced_per_gpu_figure(capsys):
    from routerllm.planning.parallel import vllm_overhead_bytes

    r = run_inproc(capsys, "--model", "llama3_70b", "--hardware", "8xH100-80GB", "--batch", "1", "--json")
    rows = json.loads(r.stdout)["parallel"]
    assert all(row["overhead_bytes"] == vllm_overhead_bytes(row["gpus"]) for row in rows)
    eight = next(row for row in rows if row["gpus"] == 8)
    assert 5 * 2**30 <= eight["overhead_bytes"] <= 7 * 2**30  # ~6 GiB per GPU with NCCL and CUDA graphs
