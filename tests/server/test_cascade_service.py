"""The cascade through the service: small answers checked in the sandbox against the visible
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
