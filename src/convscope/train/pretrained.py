"""Where a run's initial weights come from: a weights file (fine-tuning), a plain Gaussian, or the default.

- :func:`init_from_weights` copies a weights file of any format :func:`convscope.load` reads
  into a registered model; the model's classifier layer (recorded in the registry) is kept
  freshly initialised when its shape does not fit (another class count).
- :func:`gaussian_init` is the lecture's plain initialisation: every conv/linear weight drawn
  from N(0, std²), every bias zero.
- :func:`freeze` turns off gradients of parameters whose names match a glob pattern; batch-norm
  layers inside the frozen part keep their running statistics (they stay in eval mode).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Callable

import numpy as np

from ..formats import CheckpointError, load_state_dict_file
from ..nn.modules.conv import Conv2d
from ..nn.modules.linear import Linear
from ..nn.modules.module import Module
from ..nn.modules.normalization import _BatchNorm


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def init_from_weights(model: Module, path: str, classifier: str | None, log: Callable[[str], None]) -> dict:
    """Load ``path`` into ``model``, re-initialising a classifier layer whose shape differs.

    Args:
        model (Module): a freshly built registered model.
        path (str): weights file (.npz, .pth/.pt/.bin/.ckpt, .safetensors, or a run's checkpoint).
        classifier (str or None): dotted name of the model's final layer (from the registry).
        log (callable): receives a line naming the re-initialised layers.

    Returns:
        dict: {'source': 'weights', 'weights': absolute path, 'sha256', 'reinitialised': [names]}.

    Raises:
        CheckpointError: unreadable file, or weights that do not fit the architecture (beyond
            the classifier layer).
    """
    state = load_state_dict_file(path)
    own = model.state_dict()
    replaced = []
    if classifier is not None:
        for key in (f"{classifier}.weight", f"{classifier}.bias"):
            if key in state and key in own and tuple(state[key].shape) != tuple(own[key].shape):
                log(
                    f"weights: {key} has shape {tuple(state[key].shape)} in {path}, the model needs "
                    f"{tuple(own[key].shape)} (the data's class count): kept freshly initialised"
                )
                del state[key]
                replaced.append(key)
    missing = [k for k in own if k not in state and k not in replaced]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
        raise CheckpointError(
            f"--weights {path} does not fit model {getattr(model, 'model_name', type(model).__name__)} "
            f"({'; '.join(parts)})"
        )
    model.load_state_dict(state, strict=False)
    layers = sorted({k.rsplit(".", 1)[0] for k in replaced})
    return {
        "source": "weights",
        "weights": os.path.abspath(path),
        "sha256": file_sha256(path),
        "reinitialised": layers,
    }


def gaussian_init(model: Module, std: float, generator: np.random.Generator) -> dict:
    """Draw every Conv2d/Linear weight from N(0, std²) and set every bias to zero (in place).

    Returns:
        dict: {'source': 'gaussian', 'std': std}.
    """
    for m in model.modules():
        if isinstance(m, (Conv2d, Linear)):
            w = m.weight.data
            w[...] = generator.normal(0.0, std, size=w.shape).astype(w.dtype)
            if m.bias is not None:
                m.bias.data[...] = 0
    return {"source": "gaussian", "std": std}


def freeze(model: Module, pattern: str) -> tuple[list[str], list[Module]]:
    """Stop gradients of the parameters whose dotted names match the glob ``pattern``.

    Args:
        model (Module): the model.
        pattern (str): e.g. ``'features.*'`` or ``'layer[1-3].*'`` (``*`` also crosses dots).

    Returns:
        (names, batchnorms): the frozen parameter names, and the batch-norm layers whose
        parameters are all frozen (the trainer keeps them in eval mode).

    Raises:
        ValueError: the pattern matches no parameter.
    """
    names = []
    for name, p in model.named_parameters():
        if fnmatch.fnmatchcase(name, pattern):
            p.requires_grad = False
            names.append(name)
    if not names:
        sample = ", ".join(n for n, _ in list(model.named_parameters())[:3])
        raise ValueError(f"--freeze {pattern!r} matches no parameter; names look like {sample}")
    frozen = set(names)
    batchnorms: list[Module] = []
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm):
            params = [f"{name}.{n}" for n, _ in m.named_parameters()] or [f"{name}.weight"]
            if all(n in frozen or fnmatch.fnmatchcase(n, pattern) for n in params):
                batchnorms.append(m)
    return names, batchnorms
