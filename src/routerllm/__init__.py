"""routerllm: run 70B-405B models on too little hardware and route coding tasks between them
and small models.

Importing this package is cheap: it does not import torch, transformers or any client. The heavy
pieces live in submodules (`routerllm.manager`, `routerllm.planning`, ...) imported on use.
"""

__version__ = "0.1.0"

from routerllm.exceptions import RouterLLMError  # noqa: E402  (light: pure Python)

__all__ = ["RouterLLMError", "__version__"]
