"""The `local` backend: a model loaded in this process by the LargeModelManager."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from routerllm.backends.base import Generation, GenerationRequest

if TYPE_CHECKING:
    from routerllm.config import ModelConfig
    from routerllm.manager import LargeModelManager

logger = logging.getLogger(__name__)


class LocalBackend:
    """Backend protocol over a `LargeModelManager`.

    `load()` plans and loads (refusing before loading when the plan or this machine cannot hold
    the model); `generate()` loads on first use; `close()` unloads. `manager` exposes the plan,
    `memory_report()` and `load_info` to callers that want them.
    """

    def __init__(self, model_config: "ModelConfig", *, hardware: Any = None, progress: bool = False,
                 manager: "LargeModelManager | None" = None) -> None:
        from routerllm.manager import LargeModelManager

        self.model_config = model_config
        self.name = model_config.name
        self.progress = progress
        self.manager = manager or LargeModelManager(model_config, hardware=hardware)

    def load(self) -> None:
        self.manager.load(progress=self.progress)

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if not self.manager.is_loaded:
            self.load()
        return self.manager.generate(requests)

    def health(self) -> bool:
        return self.manager.is_loaded

    def close(self) -> None:
        self.manager.unload()

    def __repr__(self) -> str:
        return f"LocalBackend({self.name!r}, loaded={self.manager.is_loaded})"
