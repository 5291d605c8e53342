"""The OpenAPI document matches what the server does, checked by schemathesis.

schemathesis (its CLI, `python -m schemathesis.cli run`) reads GET /openapi.json from a real
uvicorn with auth on and generates requests from it: its coverage phase (boundary and invalid
values of every field) and its fuzzing phase (EXAMPLES cases per operation, 6 operations), valid
data and invalid data. Every check runs on every answer: no 5xx, a documented status, content
type, headers and body schema (server-sent events included, event by event), valid data accepted,
invalid data refused with a 4xx, a request without the key refused, an undocumented method
answered 405. About 1,200 requests; ~15 s here (bounded well under 2 minutes by `timeout`).

`model` is an enum of the served names in the document, so generated requests reach routing; the
replay tiers make routerllm.task_id required and an enum of the recorded tasks. The prompt limit is
set above what the generator writes, since the limit on all chat messages together cannot be said
in JSON Schema (each message's limit is)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from serverkit import replay_config, running

KEY = "contract-key"
EXAMPLES = 50  # fuzzing cases per operation
SEED = 1  # reproducible: the same cases every run

pytestmark = pytest.mark.timeout(300)


def test_the_server_does_what_its_openapi_document_says(tmp_path):
    config = replay_config(
        router={"strategy": "cascade", "strategies": ["cascade", "small", "large", "random"]},
        server={"api_keys": [KEY], "max_prompt_chars": 1_000_000, "max_queue": 64},
    )
    with running(config) as url:
        base = url.removesuffix("/v1")
        out = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
             "--header", f"Authorization: Bearer {KEY}", "--checks", "all", "--max-examples", str(EXAMPLES),
             "--seed", str(SEED), "--generation-database", "none", "--phases", "examples,coverage,fuzzing",
             "--workers", "1", "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )
    summary = out.stdout[out.stdout.find("SUMMARY"):] if "SUMMARY" in out.stdout else out.stdout[-4000:]
    print(summary)
    assert out.returncode == 0, out.stdout[-15000:] + out.stderr[-3000:]
    assert "No issues found" in out.stdout and "6 selected / 6 total" in out.stdout
    generated = int(summary.split(" generated")[0].split()[-1])
    assert generated >= 6 * EXAMPLES, summary


def test_the_document_names_the_auth_the_errors_and_the_streams():
    import httpx

    with running(replay_config(server={"api_keys": [KEY]})) as url:
        doc = httpx.get(url.removesuffix("/v1") + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "one of the server's API keys"}
    paths = doc["paths"]
    assert set(paths) == {"/v1/models", "/v1/models/{model}", "/v1/completions", "/v1/chat/completions", "/health",
                          "/metrics"}
    for path, operations in paths.items():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert ("security" in operation) == (path != "/health"), path
    completions = paths["/v1/completions"]["post"]["responses"]
    assert set(completions) >= {"200", "400", "401", "404", "408", "413", "415", "429", "500", "503", "504"}
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    assert all(completions[s]["content"]["application/json"]["schema"] == error_ref for s in completions if s != "200")
    ok = completions["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Completion"}
    assert "text/event-stream" in ok and "x-routerllm-tier" in completions["200"]["headers"]
    chat_event = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert "ChatCompletionChunk" in str(chat_event) and "ChatCompletionChunk" in doc["components"]["schemas"]
    request = doc["components"]["schemas"]["CompletionRequest"]["properties"]
    assert request["model"]["enum"] == ["router", "small", "large", "random", "mistral7b", "gpt4"]
    assert request["echo"]["enum"] == [False, None] and request["n"]["maximum"] == 1
    assert "HumanEval/163" in doc["components"]["schemas"]["RouterLLMOptions"]["properties"]["task_id"]["enum"]
    assert paths["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"}
