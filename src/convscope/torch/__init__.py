"""The PyTorch bridge: a convscope model's ``torch.nn`` twin and back.

``to_torch(model)`` builds a ``torch.nn.Module`` with the same module names (so the
``state_dict`` keys match), the same layer types, arguments and weights, BatchNorm running
statistics included; ``from_torch(module, example_input)`` does the reverse. Custom modules
(the zoo's residual blocks, a U-Net's forward) keep their own forward code: to_torch runs
convscope's forward against torch's functional ops, from_torch traces the torch forward with
``torch.fx`` one module at a time and replays the graph with convscope's ops.

This is the only place in convscope that imports PyTorch; it needs the ``torch`` extra
(``pip install "convscope[torch]"``).

Example:
    >>> import convscope
    >>> from convscope.torch import from_torch, to_torch
    >>> model = convscope.models.create("resnet20")
    >>> twin = to_torch(model)                      # a torch.nn.Module
    >>> back = from_torch(twin, torch.randn(1, 3, 32, 32))
    >>> sorted(back.state_dict()) == sorted(twin.state_dict())
    True
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (the one place convscope imports PyTorch)
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "convscope.torch needs PyTorch, which is not installed; install the extra with "
        "pip install 'convscope[torch]' (torch==2.13.0, the CPU build works)"
    ) from _err

from .from_torch import from_torch
from .to_torch import TranslationError, to_torch

__all__ = ["TranslationError", "from_torch", "to_torch"]
