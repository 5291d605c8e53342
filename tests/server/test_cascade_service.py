"""The cascade through the service: small answers checked in the jail against the visible
examples of real HumanEval prompts, escalations recorded in the response and in the metrics."""

from __future__ import annotations

import httpx
import openai
import pytest
from serverkit import replay_config, running

from routerllm.evaluation.humaneval import load_tasks

pytestmark = pytest.mark.timeout(300)


def test_cascade_decisions_are_explained_and_counted():
    config = replay_config(router={"strategy": "cascade", "strategies": ["cascade", "small", "large"],
                                   "cascade": {"small_samples": 1}})
    tasks = load_tasks(num_examples=8)
    with running(config) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        escalated = 0
        for task in tasks:
            raw = client.completions.with_raw_response.create(
                model="router", prompt=task.prompt, max_tokens=512, extra_body={"routerllm": {"task_id": task.task_id}})
            info = raw.parse().model_extra["routerllm"]
            assert info["strategy"] == "cascade" and info["reason"]
            assert raw.headers["x-routerllm-strategy"] == "cascade"
            assert info["details"]["entry_point"] == task.entry_point
            if info["escalated"]:
                escalated += 1
                assert info["tier"] == "gpt4" and info["calls"].get("gpt4") == 1
                assert raw.headers["x-routerllm-reason"].startswith("escalated")
            else:
                assert info["tier"] == "mistral7b" and info["calls"] == {"mistral7b": 1}
                assert "passed" in info["reason"]
        assert 0 < escalated < len(tasks)  # Mistral-7B solves some of the first 8 tasks, not all
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert f'routerllm_escalations_total{{strategy="cascade"}} {float(escalated)}' in metrics
        assert f'routerllm_routing_decisions_total{{strategy="cascade",tier="gpt4"}} {float(escalated)}' in metrics
        assert (f'routerllm_routing_decisions_total{{strategy="cascade",tier="mistral7b"}} '
                f'{float(len(tasks) - escalated)}') in metrics


def test_slow_cascade_checks_do_not_stall_other_requests(tmp_path):
    """Two cascade requests whose small answer loops forever hold a jail worker each until
    cascade.example_timeout_s; other cascade requests, sent meanwhile, are answered at their own
    speed: the Judge has a worker per generation thread (server.max_concurrency)."""
    import json
    import threading
    import time

    from serverkit import LARGE_FILE, replay_config_dict

    from routerllm.config import config_from_dict

    tasks = {t.task_id: t for t in load_tasks(num_examples=3)}
    recorded = {(r["task_id"], r["sample"]): r for r in map(json.loads, LARGE_FILE.read_text().splitlines())}
    rows = [{"task_id": tid, "sample": 0, "passed": False,
             "completion": f"def {tasks[tid].entry_point}(*args):\n    while True:\n        pass\n"}
            for tid in ("HumanEval/0", "HumanEval/1")]
    rows.append({**recorded[("HumanEval/2", 0)]})  # gpt-4's answer: passes its examples at once
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = replay_config_dict(router={"strategy": "cascade", "strategies": ["cascade"],
                                     "cascade": {"small_samples": 1, "example_timeout_s": 3}},
                             server={"max_concurrency": 4, "max_queue": 8})
    raw["models"]["small_llms"][0]["replay_file"] = str(small)
    with running(config_from_dict(raw)) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)

        def ask(task_id: str) -> tuple[dict, float]:
            start = time.monotonic()
            raw = client.completions.create(model="router", prompt=tasks[task_id].prompt,
                                            extra_body={"routerllm": {"task_id": task_id}})
            return raw.model_extra["routerllm"], time.monotonic() - start

        ask("HumanEval/2")  # warm: the jail starts its first worker
        slow: list[tuple[dict, float]] = []
        threads = [threading.Thread(target=lambda t=t: slow.append(ask(t))) for t in ("HumanEval/0", "HumanEval/1")]
        for t in threads:
            t.start()
        time.sleep(0.5)  # both slow checks are running
        fast = [ask("HumanEval/2") for _ in range(2)]
        for t in threads:
            t.join(timeout=30)
        assert all(info["escalated"] and info["tier"] == "gpt4" for info, _ in slow)
        assert all(elapsed >= 3 for _, elapsed in slow)
        assert all(not info["escalated"] and info["tier"] == "mistral7b" for info, _ in fast)
        assert max(elapsed for _, elapsed in fast) < 1.5, fast  # not queued behind the slow checks


def test_cascade_reason_shows_no_program_output(tmp_path):
    """A small answer that prints, returns and raises a secret (and reads a file) for every call:
    the response's reason, details and headers say what was checked, never what it gave."""
    import json

    from serverkit import replay_config_dict

    from routerllm.config import config_from_dict

    secret = "SECRET-9f2c"
    tasks = {t.task_id: t for t in load_tasks(num_examples=3)}
    bodies = {
        "HumanEval/0": f"    print({secret!r})\n    return {secret!r}\n",
        "HumanEval/1": f"    raise type({secret!r}, (Exception,), {{}})({secret!r})\n",
        "HumanEval/2": f"    import sys\n    sys.stderr.write({secret!r})\n    return [open('/etc/hostname').read(), {secret!r}]\n",
    }
    rows = [{"task_id": tid, "sample": 0, "passed": False,
             "completion": f"def {tasks[tid].entry_point}(*args):\n{body}"} for tid, body in bodies.items()]
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = replay_config_dict(router={"strategy": "cascade", "strategies": ["cascade"], "cascade": {"small_samples": 1}})
    raw["models"]["small_llms"][0]["replay_file"] = str(small)
    with running(config_from_dict(raw)) as url:
        for tid in bodies:
            response = httpx.post(f"{url}/completions", timeout=120, json={
                "model": "router", "prompt": tasks[tid].prompt, "max_tokens": 64, "routerllm": {"task_id": tid}})
            assert response.status_code == 200, response.text
            info = response.json()["routerllm"]
            assert info["escalated"] and info["tier"] == "gpt4"
            assert "0 passed the" in info["reason"] and "visible example" in info["reason"] and "moved on" in info["reason"]
            leaked = json.dumps(info) + json.dumps(dict(response.headers))
            assert secret not in leaked and "non-builtin" not in leaked, leaked
