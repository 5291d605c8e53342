"""`routerllm serve` as a user runs it: help, a missing extra, a bad config, --strategy."""

from __future__ import annotations

import subprocess
import sys

import httpx
import yaml
from serverkit import ROOT, ServeProcess, replay_config_dict


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"{prelude}\nfrom routerllm.cli import main\nmain({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_explains_the_endpoints():
    out = run_cli("serve", "--help")
    assert out.returncode == 0
    for text in ("/v1/chat/completions", "/health", "/metrics", "--strategy", "--port"):
        assert text in out.stdout


def test_missing_server_extra_says_which_extra_to_install(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(replay_config_dict()))
    out = run_cli("serve", "--config", str(cfg), prelude="import sys; sys.modules['uvicorn'] = None")
    assert out.returncode == 2, out.stderr
    assert "pip install -e '.[server]'" in out.stderr and "uvicorn" in out.stderr


def test_bad_config_fails_before_serving_naming_the_key(tmp_path):
    data = replay_config_dict(server={"max_queue": 0})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = run_cli("serve", "--config", str(cfg))
    assert out.returncode == 2 and "server.max_queue" in out.stderr


def test_strategy_option_sets_what_router_means(tmp_path):
    proc = ServeProcess(replay_config_dict(), tmp_path, extra_args=["--strategy", "large"])
    try:
        proc.wait_ready()
        r = httpx.post(f"{proc.url}/completions", json={"model": "router", "prompt": "x",
                                                         "routerllm": {"task_id": "HumanEval/2"}})
        assert r.status_code == 200 and r.headers["x-routerllm-strategy"] == "large"
        assert r.json()["routerllm"]["tier"] == "gpt4"
    finally:
        proc.kill()


def test_unknown_strategy_is_refused_before_loading(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(replay_config_dict()))
    out = run_cli("serve", "--config", str(cfg), "--strategy", "psychic")
    assert out.returncode == 2 and "psychic" in out.stderr and "use one of: small, large" in out.stderr


def test_the_shipped_vllm_serving_config_is_valid():
    from routerllm.config import load_config

    cfg = load_config(ROOT / "configs" / "serve_vllm_config.yaml")
    assert cfg.models.large_llm.backend == "openai" and cfg.models.large_llm.base_url.endswith("/v1")
    assert cfg.server.fallback_to_small and cfg.router.strategy == "cascade"
