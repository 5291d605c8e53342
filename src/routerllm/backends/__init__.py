"""Backends: one interface (`Backend.generate`) over a local model, an OpenAI-compatible endpoint,
or recorded generations. `make_backend(model_config)` picks the class by `backend:` name."""

from routerllm.backends.base import Backend, Generation, GenerationRequest, make_backend, register_backend

__all__ = ["Backend", "Generation", "GenerationRequest", "make_backend", "register_backend"]
