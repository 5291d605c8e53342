"""The error tree. Every error says what is wrong and how to fix it.

    RouterLLMError
    ├── ConfigError            a YAML key is wrong; the message names the key and the fix
    ├── CatalogError           unknown model preset or unreadable local checkpoint
    ├── HardwareError          unknown hardware profile or undetectable machine
    ├── PlanError              a plan cannot be made, or says the model cannot run
    ├── ModelLoadError         loading failed (missing weights, gated hub model, RAM too small)
    │   └── HubUnavailableError    the hub cannot be reached / needs a token; says where to put a local copy
    ├── MissingExtraError      an optional dependency is not installed; says which pip extra to add
    ├── BackendError           a tier failed to answer; `tier` names it (when known)
    │   ├── BackendTimeout         no answer in time (the endpoint's or the server's time limit)
    │   ├── BackendUnavailable     the tier cannot answer now (down, not loaded, 5xx, broken stream)
    │   └── BackendRejected        the tier refused this request as invalid: the client's error, not the
    │                              tier's (a replay tier asked for a task it has not recorded, an endpoint's 400)
    ├── SandboxError           the sandbox itself could not run (not a verdict on a program)
    ├── RoutingError           unknown strategy or a router that cannot decide
    └── RunError               a benchmark/comparison run cannot start or resume
"""

from __future__ import annotations


class RouterLLMError(Exception):
    """Base class of every routerllm error. `fix` holds the suggested remedy, if any."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message}\n  Fix: {fix}" if fix else message)


class ConfigError(RouterLLMError):
    """A configuration value is invalid. `key` is the dotted YAML path (e.g. models.large_llm.max_memory)."""

    def __init__(self, key: str, message: str, *, fix: str | None = None) -> None:
        self.key = key
        super().__init__(f"config key '{key}': {message}", fix=fix)


class CatalogError(RouterLLMError):
    pass


class HardwareError(RouterLLMError):
    pass


class PlanError(RouterLLMError):
    pass


class ModelLoadError(RouterLLMError):
    pass


class HubUnavailableError(ModelLoadError):
    pass


class MissingExtraError(RouterLLMError):
    """An optional dependency is missing."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the optional package '{package}', which is not installed.",
            # from the routerllm checkout: PyPI's "routerllm" is an unrelated project
            fix=f"pip install -e '.[{extra}]' in the routerllm checkout  (or: pip install {package})",
        )


class BackendError(RouterLLMError):
    """A tier failed to answer. `tier` is the tier's name when the raiser knows it (the server's
    tier wrapper fills it in otherwise). Modelled on httpx's tree: catch `BackendError` for any
    failure, or one subclass for one kind. `message` and `fix` are for the operator (they may name
    files and endpoints); the server shows clients only what the subclass says is public."""

    def __init__(self, message: str, *, fix: str | None = None, tier: str | None = None) -> None:
        self.tier = tier
        super().__init__(message, fix=fix)

    def for_tier(self, tier: str) -> "BackendError":
        """Name the tier when the raiser did not."""
        if self.tier is None:
            self.tier = tier
        return self


class BackendTimeout(BackendError):
    """The tier gave no answer within a time limit (its endpoint's, or server.request_timeout_s)."""


class BackendUnavailable(BackendError):
    """The tier cannot answer now: its endpoint is down or failing (5xx), it did not load, or its
    stream broke. A retry later, or another tier, may answer."""


class BackendRejected(BackendError):
    """The tier refused this request as invalid: the client's error, not the tier's. `message` is
    written for the client (no paths, no operator hints: those go in `fix`, which is only logged);
    `param` names the request field at fault and `code` is a machine-readable reason."""

    def __init__(self, message: str, *, fix: str | None = None, tier: str | None = None,
                 param: str | None = None, code: str = "invalid_value") -> None:
        self.param = param
        self.code = code
        super().__init__(message, fix=fix, tier=tier)


class SandboxError(RouterLLMError):
    pass


class SandboxUnavailable(SandboxError):
    """No isolation is possible here (no bubblewrap, no namespaces); `fix` says how to get it or opt out."""


class RoutingError(RouterLLMError):
    pass


class RunError(RouterLLMError):
    pass


def require(module: str, *, package: str | None = None, extra: str, purpose: str):
    """Import an optional module or raise MissingExtraError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised when the extra is absent
        raise MissingExtraError(package or module, extra, purpose) from exc
