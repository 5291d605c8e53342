"""The OpenAI client surface through a real uvicorn and the official `openai` client: models.retrieve,
max_tokens and stop on replay tiers, parameters routerllm cannot honour (a 400 naming them, as vLLM
answers), integral numbers, invalid Unicode and entry points."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serverkit import TASK, replay_config, running

pytestmark = pytest.mark.timeout(120)


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def url():
    with running(replay_config(server={"api_keys": ["k1"]})) as base:
        yield base


def test_models_retrieve_works_with_the_official_client(url):
    c = client(url, "k1")
    card = c.models.retrieve("gpt4")
    assert card.id == "gpt4" and card.object == "model" and card.model_extra["kind"] == "tier"
    assert c.models.retrieve("router").model_extra["kind"] == "strategy"
    with pytest.raises(openai.NotFoundError) as exc:
        c.models.retrieve("gpt-5")
    assert exc.value.code == "model_not_found" and "gpt4" in exc.value.message


def test_replay_honours_max_tokens_and_stop(url):
    c = client(url, "k1")
    whole = c.completions.create(model="gpt4", prompt="x", max_tokens=4096, extra_body=TASK)
    assert whole.choices[0].finish_reason == "stop" and whole.usage.completion_tokens > 20
    one = c.completions.create(model="gpt4", prompt="x", max_tokens=1, extra_body=TASK)
    assert one.choices[0].finish_reason == "length" and one.usage.completion_tokens == 1
    assert whole.choices[0].text.startswith(one.choices[0].text) and len(one.choices[0].text) < 12
    cut = c.chat.completions.create(model="gpt4", messages=[{"role": "user", "content": "x"}], max_completion_tokens=10,
                                    extra_body=TASK)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 10
    stopped = c.completions.create(model="gpt4", prompt="x", stop=["return"], extra_body=TASK)
    assert stopped.choices[0].finish_reason == "stop"
    assert "return" not in stopped.choices[0].text and whole.choices[0].text.startswith(stopped.choices[0].text)
    streamed = list(c.completions.create(model="router", prompt="x", max_tokens=3, stream=True, extra_body=TASK))
    assert [ch.choices[0].finish_reason for ch in streamed if ch.choices][-1] == "length"


@pytest.mark.parametrize(("kind", "param", "value"), [
    ("completions", "echo", True),
    ("completions", "logprobs", 2),
    ("completions", "suffix", "\n"),
    ("completions", "best_of", 3),
    ("completions", "top_p", 0.5),
    ("completions", "presence_penalty", 0.7),
    ("completions", "logit_bias", {"50256": -100}),
    ("chat", "tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("chat", "tool_choice", "auto"),
    ("chat", "logprobs", True),
    ("chat", "top_logprobs", 3),
    ("chat", "response_format", {"type": "json_object"}),
    ("chat", "frequency_penalty", 1),
])
def test_parameters_routerllm_cannot_honour_are_a_400_naming_them(url, kind, param, value):
    c = client(url, "k1")
    with pytest.raises(openai.BadRequestError) as exc:
        if kind == "chat":
            c.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}], extra_body=TASK,
                                      **{param: value})
        else:
            c.completions.create(model="router", prompt="x", extra_body=TASK, **{param: value})
    assert exc.value.code == "unsupported_parameter" and exc.value.param == param
    assert f"'{param}'" in exc.value.message


def test_neutral_values_of_those_parameters_are_accepted(url):
    """What clients send by default (echo false, best_of 1, penalties 0, empty tools, ...) is answered."""
    c = client(url, "k1")
    done = c.completions.create(model="router", prompt="x", echo=False, best_of=1, presence_penalty=0,
                                frequency_penalty=0.0, logit_bias={}, top_p=1, n=1, suffix=None, extra_body=TASK)
    assert done.choices[0].text
    chat = c.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}], logprobs=False,
                                     response_format={"type": "text"}, tool_choice="none", extra_body=TASK)
    assert chat.choices[0].message.content


def _post(url: str, path: str, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/{path}", content=content,
                      headers={"Authorization": "Bearer k1", "Content-Type": "application/json"})


def test_integral_numbers_are_integers_as_json_schema_says(url):
    ok = _post(url, "completions", {"model": "router", "prompt": "x", "n": 1.0, "max_tokens": 5.0, **TASK})
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["completion_tokens"] == 5
    for field, value in (("n", 1.5), ("max_tokens", 2.5), ("n", True)):
        bad = _post(url, "completions", {"model": "router", "prompt": "x", field: value, **TASK})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == field, bad.text


@pytest.mark.parametrize("where", ["entry_point", "task_id", "prompt", "model", "stop", "user"])
def test_a_lone_surrogate_anywhere_is_a_400_and_the_connection_lives_on(url, where):
    body: dict = {"model": "router", "prompt": "x", "routerllm": {"task_id": "HumanEval/2"}}
    if where in ("entry_point", "task_id"):
        body["routerllm"][where] = "ab\ud800cd"
    else:
        body[where] = "ab\ud800cd"
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as the escape \ud800
    assert b"\\ud800" in raw
    with httpx.Client(headers={"Authorization": "Bearer k1", "Content-Type": "application/json"}) as http:
        bad = http.post(f"{url}/completions", content=raw)
        assert bad.status_code == 400, bad.text
        err = bad.json()["error"]
        assert err["param"].split(".")[-1] == where and err["type"] == "invalid_request_error"
        # the same keep-alive connection answers the next request
        good = json.dumps({"model": "router", "prompt": "x", **TASK}).encode()
        assert http.post(f"{url}/completions", content=good).status_code == 200


@pytest.mark.parametrize("entry_point", ["a b", "1abc", "import", "f()", "x;import os", "", "é" * 3])
def test_entry_point_must_be_a_python_identifier(url, entry_point):
    bad = _post(url, "completions", {"model": "router", "prompt": "x",
                                     "routerllm": {"task_id": "HumanEval/2", "entry_point": entry_point}})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["param"] == "routerllm.entry_point"


def test_a_string_with_every_other_unicode_character_is_answered(url):
    body = {"model": "router", "prompt": "naïve 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 \uffff", "user": "ü", **TASK}
    assert _post(url, "completions", body).status_code == 200
