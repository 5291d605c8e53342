"""The service against hostile clients, on raw sockets to a real uvicorn (in a thread, or a real
`routerllm serve` process where memory or the access log is measured): bodies that never end or
never stop (chunked floods), wrong keys, slowloris headers, idle and excess connections, huge
headers, keys in URLs, invalid UTF-8, deep JSON, wrong content types, streaming clients that vanish."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from serverkit import SMALL_FILE, TASK, ServeProcess, replay_config, replay_config_dict, running, serving, wait_for

from routerllm.config import config_from_dict

pytestmark = pytest.mark.timeout(120)
KEY = "test-key-1234"
AUTH = f"Authorization: Bearer {KEY}\r\n"


def connect(url: str, timeout_s: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)
    return sock


def read_response(sock: socket.socket, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, body) of one response, or None when the server closed without one."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), headers, body
    except (ConnectionResetError, BrokenPipeError):
        return None


def closed_by_server(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def head(path: str, *lines: str, method: str = "POST") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def guarded():
    cfg = replay_config(server={"api_keys": [KEY], "header_timeout_s": 1.0, "max_connections": 24,
                                "body_timeout_s": 2.0, "max_prompt_chars": 4000})
    with running(cfg) as url:
        yield url


def _healthy(url: str) -> None:
    r = httpx.post(f"{url}/completions", json={"model": "router", "prompt": "x", **TASK},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert r.status_code == 200, r.text


def test_a_wrong_key_with_a_body_that_never_ends_gets_its_401_at_once(guarded):
    for framing in ("Content-Length: 100000000\r\n", "Transfer-Encoding: chunked\r\n"):
        sock = connect(guarded)
        start = time.monotonic()
        sock.sendall(head("/v1/completions", "Authorization: Bearer wrong\r\n", "Content-Type: application/json\r\n",
                          framing) + (b"10\r\n" if "chunked" in framing else b"") + b'{"model": "rou')
        response = read_response(sock, 3)
        assert response is not None and response[0] == 401, response
        assert time.monotonic() - start < 1.0
        assert json.loads(response[2])["error"]["code"] == "invalid_api_key"
        assert response[1]["connection"] == "close" and closed_by_server(sock, 2)
        sock.close()
    _healthy(guarded)


def test_expect_100_continue_with_a_wrong_key_is_refused_before_the_body(guarded):
    sock = connect(guarded)
    sock.sendall(head("/v1/completions", "Authorization: Bearer wrong\r\n", "Content-Type: application/json\r\n",
                      "Content-Length: 50\r\n", "Expect: 100-continue\r\n"))
    response = read_response(sock, 3)
    assert response is not None and response[0] == 401  # not "100 Continue"
    sock.close()


def test_a_chunked_flood_is_cut_off_as_it_streams_in_without_growing_memory(tmp_path):
    """300 MB sent chunked, with the right key: the server answers 413 after reading its limit
    (~0.3 MB), closes the connection, and its resident memory does not grow with the body."""
    proc = ServeProcess(replay_config_dict(server={"api_keys": [KEY]}), tmp_path)
    try:
        proc.wait_ready()
        server = psutil.Process(proc.proc.pid)
        base_rss = server.memory_info().rss
        peak = [base_rss]
        sending = threading.Event()
        sending.set()

        def sample() -> None:
            while sending.is_set():
                peak[0] = max(peak[0], server.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sock = connect(proc.url)
        opening = b'{"model": "router", "prompt": "'
        sock.sendall(head("/v1/completions", AUTH, "Content-Type: application/json\r\n",
                          "Transfer-Encoding: chunked\r\n") + f"{len(opening):x}\r\n".encode() + opening + b"\r\n")
        piece = b"x" * (1 << 20)
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent = 0
        response = None
        try:
            while sent < 300 << 20:
                sock.sendall(chunk)
                sent += len(piece)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                sock.setblocking(True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.setblocking(True)
        response = read_response(sock, 5)
        sending.clear()
        sampler.join()
        sock.close()
        assert sent < 64 << 20, f"the server read {sent >> 20} MB before refusing"
        if response is not None:  # (a reset can beat the 413 to the client; the bound above still holds)
            assert response[0] == 413 and json.loads(response[2])["error"]["code"] == "request_too_large"
        grown_mb = (peak[0] - base_rss) / 2**20
        assert grown_mb < 40, f"server RSS grew {grown_mb:.0f} MB"
        r = httpx.post(f"{proc.url}/completions", json={"model": "router", "prompt": "x", **TASK},
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200
    finally:
        proc.kill()


def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout(guarded):
    sock = connect(guarded)
    sock.sendall(head("/v1/completions", AUTH, "Content-Type: application/json\r\n", "Content-Length: 400\r\n"))
    start = time.monotonic()
    response = None
    for _ in range(40):
        with contextlib.suppress(OSError):
            sock.sendall(b" ")
        sock.settimeout(0.1)
        with contextlib.suppress(socket.timeout):
            response = read_response(sock, 0.1)
            break
    response = response or read_response(sock, 3)
    assert response is not None and response[0] == 408, response
    assert 1.5 < time.monotonic() - start < 4  # server.body_timeout_s = 2
    sock.close()


def test_slowloris_headers_are_cut_off_at_the_header_timeout(guarded):
    sock = connect(guarded)
    start = time.monotonic()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed = False
    for _ in range(30):  # one header byte every 0.1 s: never finishes
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        if closed_by_server(sock, 0.1):
            closed = True
            break
    assert closed and time.monotonic() - start < 2.5  # server.header_timeout_s = 1
    sock.close()
    _healthy(guarded)


def test_idle_connections_are_closed_and_excess_ones_refused(guarded):
    idle = [connect(guarded) for _ in range(20)]
    time.sleep(0.2)
    excess = [connect(guarded) for _ in range(10)]  # 30 open, limit 24 (the guarded fixture)
    refused = [read_response(s, 2) for s in excess]
    statuses = [r[0] if r else None for r in refused]
    assert statuses.count(503) >= 6, statuses
    body = json.loads(next(r for r in refused if r and r[0] == 503)[2])
    assert body["error"]["code"] == "too_many_connections"
    start = time.monotonic()
    assert all(closed_by_server(s, 3) for s in idle)  # no request within header_timeout_s = 1
    assert time.monotonic() - start < 3
    for s in idle + excess:
        s.close()
    _healthy(guarded)


def test_headers_over_the_limit_are_431(guarded):
    sock = connect(guarded)
    sock.sendall(head("/v1/models", AUTH, "X-Junk: " + "a" * 200_000 + "\r\n", method="GET"))
    response = read_response(sock, 5)
    assert response is not None and response[0] == 431
    assert json.loads(response[2])["error"]["code"] == "headers_too_large"
    sock.close()
    _healthy(guarded)


@pytest.mark.parametrize("body", [
    b'{"model": "router", "prompt": "\xff\xfe"}',          # not UTF-8
    b"[" * 20_000 + b"]" * 20_000,                         # deeper than Python's recursion limit
    b'{"model": "router", "prompt": "x", "junk": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b'{"model": "router", "prompt": "x", "temperature": NaN}',
    b'{"model": "router", "prompt": "x", "max_tokens": 1e999}',
    b'{"model": "router", "prompt": {"$ref": "x"}}',
    b"\x00\x01\x02",
    b"",
])
def test_malformed_bodies_are_400s(guarded, body):
    r = httpx.post(f"{guarded}/completions", content=body,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("content_type", "status"), [
    (None, 415), ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("multipart/form-data", 415),
    ("application/json; charset=utf-8", 200), ("application/vnd.api+json", 200),
])
def test_only_json_bodies_are_read(guarded, content_type, status):
    headers = {"Authorization": f"Bearer {KEY}"}
    if content_type:
        headers["Content-Type"] = content_type
    r = httpx.post(f"{guarded}/completions", content=json.dumps({"model": "router", "prompt": "x", **TASK}),
                   headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert r.json()["error"]["code"] == "unsupported_media_type"


def test_keys_in_the_url_are_refused_and_never_logged(tmp_path):
    secret = "sk-secret-value-98765"
    proc = ServeProcess(replay_config_dict(server={"api_keys": [secret]}), tmp_path, extra_args=["--log-level", "info"])
    try:
        proc.wait_ready()
        auth = {"Authorization": f"Bearer {secret}"}
        for query in (f"api_key={secret}", f"key={secret}", f"x={secret}", "api-key=other", "token=t"):
            for method, path in (("GET", "/models"), ("POST", "/completions")):
                r = httpx.request(method, f"{proc.url}{path}?{query}", headers=auth,
                                  json={"model": "router", "prompt": "x", **TASK} if method == "POST" else None)
                assert r.status_code == 400 and r.json()["error"]["code"] == "api_key_in_url", (query, r.text)
        assert httpx.get(f"{proc.url}/models?page=2", headers=auth).status_code == 200
        assert httpx.get(f"{proc.url}/models", headers=auth).status_code == 200
        time.sleep(0.3)
        log = proc.log.read_text()
        assert secret not in log and "other" not in log
        assert '"GET /v1/models?[redacted] HTTP/1.1" 400' in log and '"GET /v1/models HTTP/1.1" 200' in log
    finally:
        proc.kill()


def _slow_upstream(closed: list[str]):
    """A real OpenAI-style streaming endpoint (FastAPI under uvicorn) that sends a chunk every
    0.1 s for 10 s and records when its stream ends (finished or abandoned)."""
    import asyncio

    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "slow", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/completions")
    async def completions() -> StreamingResponse:
        async def stream():
            try:
                for i in range(100):
                    chunk = {"id": "c", "object": "text_completion", "created": 0, "model": "slow",
                             "choices": [{"index": 0, "text": f"t{i} ", "finish_reason": None, "logprobs": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                    await asyncio.sleep(0.1)
                yield "data: [DONE]\n\n"
            finally:
                closed.append("closed")

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def test_streaming_clients_that_vanish_free_their_slots_and_close_the_upstream():
    closed: list[str] = []
    with serving(_slow_upstream(closed)) as upstream:
        config = config_from_dict({
            "models": {
                "large_llm": {"name": "remote", "backend": "openai", "base_url": upstream, "model_id": "slow",
                              "request_timeout_s": 30, "max_retries": 0},
                "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
            },
            "router": {"strategy": "small", "strategies": ["small"]},
            "server": {"api_keys_env": None, "max_queue": 8, "max_concurrency": 8},
        })
        with running(config) as url:
            base = url.removesuffix("/v1")
            clients = 8
            for _ in range(2):  # twice the queue's worth: slots freed by the first round serve the second
                socks = []
                for _ in range(clients):
                    sock = connect(url)
                    body = json.dumps({"model": "remote", "prompt": "x", "stream": True}).encode()
                    sock.sendall(head("/v1/completions", "Content-Type: application/json\r\n",
                                      f"Content-Length: {len(body)}\r\n") + body)
                    socks.append(sock)
                for sock in socks:
                    sock.settimeout(5)
                    assert b"200 OK" in sock.recv(4096)  # the status line and the first events
                for sock in socks:  # vanish mid-stream, without a goodbye
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
                wait_for(lambda: httpx.get(f"{base}/health").json()["queue"] == 0, 10, "the queue to drain")
            wait_for(lambda: len(closed) == 2 * clients, 10, "the upstream streams to close")
            metrics = httpx.get(f"{base}/metrics").text
            assert 'routerllm_requests_total{endpoint="completions",model="remote",status="499",tier="none"} 16.0' \
                in metrics
            # and the server still streams a whole answer
            done = httpx.post(f"{url}/completions", json={"model": "mistral7b", "prompt": "x", "stream": True, **TASK})
            assert done.status_code == 200 and done.text.endswith("data: [DONE]\n\n")


def _flooding_upstream(closed: list[str]):
    """A real OpenAI-style endpoint that streams 64 KB pieces as fast as it can (up to 64 MB)."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "flood", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/completions")
    async def completions() -> StreamingResponse:
        piece = "x" * 65536

        async def stream():
            try:
                for _ in range(1024):
                    chunk = {"id": "c", "object": "text_completion", "created": 0, "model": "flood",
                             "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                closed.append("closed")

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def test_a_stream_client_that_stops_reading_is_dropped_and_frees_its_slot():
    closed: list[str] = []
    with serving(_flooding_upstream(closed)) as upstream:
        config = config_from_dict({
            "models": {
                "large_llm": {"name": "remote", "backend": "openai", "base_url": upstream, "model_id": "flood",
                              "request_timeout_s": 60, "max_retries": 0},
                "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
            },
            "router": {"strategy": "small", "strategies": ["small"]},
            "server": {"api_keys_env": None, "write_timeout_s": 1.0, "request_timeout_s": 60},
        })
        with running(config) as url:
            base = url.removesuffix("/v1")
            parts = urlsplit(url)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's writes stall
            sock.connect((parts.hostname, parts.port))
            body = json.dumps({"model": "remote", "prompt": "x", "stream": True}).encode()
            sock.sendall(head("/v1/completions", "Content-Type: application/json\r\n",
                              f"Content-Length: {len(body)}\r\n") + body)
            start = time.monotonic()
            wait_for(lambda: httpx.get(f"{base}/health").json()["queue"] == 1, 10, "the stream to start")
            # the client reads nothing more: within write_timeout_s of the stall the server drops it
            wait_for(lambda: httpx.get(f"{base}/health").json()["queue"] == 0, 20, "the slot to be freed")
            assert time.monotonic() - start < 15
            wait_for(lambda: closed == ["closed"], 10, "the upstream stream to close")
            metrics = httpx.get(f"{base}/metrics").text
            assert 'routerllm_requests_total{endpoint="completions",model="remote",status="499",tier="none"} 1.0' \
                in metrics
            assert closed_by_server(sock, 5)
            sock.close()


def test_a_websocket_upgrade_is_not_a_way_around_the_guard(guarded):
    sock = connect(guarded)
    sock.sendall(head("/v1/models", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n", "Sec-WebSocket-Version: 13\r\n",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", method="GET"))
    response = read_response(sock, 3)
    assert response is not None and response[0] == 401  # answered as HTTP, and the key is still needed
    sock.close()
