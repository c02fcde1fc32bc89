"""Weights in and out: one :func:`load` that recognises the format by content, one :func:`save` by suffix.

Formats:

- convscope ``.npz`` (default): named arrays, nested objects flattened with a JSON manifest;
- PyTorch zip checkpoints (``.pth``, ``.pt``, ``.bin``, ``.ckpt``) and legacy PyTorch files,
  read through a restricted unpickler (an allowlist of globals; nothing in a file runs);
- ``.safetensors``.

Whatever the format, :func:`load` returns the stored object with every tensor as a convscope
:class:`~convscope.Tensor` (dtype kept: float16 stays float16; bfloat16 becomes float32 exactly),
and dicts, lists, tuples, numbers and strings as they are. PyTorch is never imported.
"""

from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING, Any

from . import npz_format, safetensors_format, torch_read, torch_write
from .atomic import StrPath, atomic_write
from .errors import CheckpointError, UnsafeCheckpointError
from .tree import is_flat_arrays, plain, wrap_arrays

if TYPE_CHECKING:
    from ..nn import Module

SUFFIXES = {".npz": "npz", ".pth": "torch", ".pt": "torch", ".safetensors": "safetensors"}

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "atomic_write",
    "detect_format",
    "load",
    "load_arrays",
    "load_model",
    "load_state_dict_file",
    "save",
]

NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def detect_format(path: StrPath) -> str:
    """Which format ``path`` holds, from its first bytes: 'npz', 'torch', 'torch-legacy' or 'safetensors'.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty, truncated or of no known kind.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a weights file")
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(f"{path} is a damaged or truncated zip archive") from None
        if any(n.endswith("/data.pkl") for n in names):
            return "torch"
        if all(n.endswith(".npy") for n in names):  # an empty archive is an empty .npz
            return "npz"
        raise CheckpointError(
            f"{path} is a zip archive without data.pkl or .npy members: neither a PyTorch checkpoint "
            f"nor an .npz"
        )
    if head.startswith(torch_read.LEGACY_PREFIX):
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if len(head) < 16 and head[:1] in (b"P", b"\x80", b""):
        raise CheckpointError(f"{path} is empty or truncated ({len(head)} bytes)")
    raise CheckpointError(
        f"{path} is not a weights file convscope knows (expected .npz, a PyTorch checkpoint or "
        f".safetensors; the first bytes are {head[:8]!r})"
    )


def load_arrays(path: StrPath) -> Any:
    """Like :func:`load` but with NumPy arrays at the leaves instead of Tensors."""
    path = os.fspath(path)
    kind = detect_format(path)
    if kind == "npz":
        return npz_format.load(path)
    if kind == "safetensors":
        return safetensors_format.load(path)
    if kind == "torch-legacy":
        with open(path, "rb") as f:
            return torch_read.load_legacy(path, f.read())
    try:
        with zipfile.ZipFile(path) as archive:
            return torch_read.load_zip(path, archive)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is a damaged or truncated zip archive ({err})") from None


def load(path: StrPath) -> Any:
    """Read a weights file of any supported format, recognised by its content.

    Args:
        path (str or Path): a convscope .npz, a PyTorch checkpoint (zip or legacy) or .safetensors.

    Returns:
        The stored object: a state dict comes back as an OrderedDict name -> Tensor that
        ``Module.load_state_dict`` accepts; nested checkpoints (``{"model": ..., "epoch": 3}``)
        come back nested. Tensors sharing a PyTorch storage share memory.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: truncated, corrupt or unknown content (one-line message).
        UnsafeCheckpointError: a pickle names a global outside the allowlist (nothing ran).

    Example:
        >>> sd = convscope.load("resnet18-f37072fd.pth")
        >>> sd["conv1.weight"].shape
        (64, 3, 7, 7)
    """
    return wrap_arrays(load_arrays(path))


def save(obj: Any, path: StrPath, *, metadata: dict | None = None) -> None:
    """Save a state dict, a Module, an optimizer, or a nested object, in the format the suffix names.

    Args:
        obj: a mapping name -> Tensor/array, a Module (its ``state_dict()``), an Optimizer (its
            ``state_dict()``), or dicts/lists/tuples of arrays, numbers and strings.
        path (str or Path): ``.npz`` or no suffix (no pickle; nested keys like ``state/0/momentum_buffer``
            with a JSON manifest), ``.pth``/``.pt`` (PyTorch zip, ``torch.load(weights_only=True)``
            reads it) or ``.safetensors`` (flat name -> array only).
        metadata (dict, optional): str -> str, for ``.safetensors`` only.

    Raises:
        ValueError: an unknown suffix, or metadata for a format other than .safetensors.
        TypeError: a value the format cannot hold.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    kind = SUFFIXES.get(suffix) if suffix else "npz"  # no suffix: .npz content, as before
    if kind is None:
        raise ValueError(
            f"save: unknown suffix {suffix or '(none)'!r} in {path}; expected one of {', '.join(SUFFIXES)}"
        )
    if metadata is not None and kind != "safetensors":
        raise ValueError(f"save: metadata is stored only in .safetensors files, not {suffix}")
    obj = plain(obj)
    if kind == "npz":
        npz_format.save(obj, path)
    elif kind == "torch":
        torch_write.save(obj, path)
    else:
        safetensors_format.save(obj, path, metadata)


def load_model(path: StrPath) -> Module:
    """Rebuild the model of a training run's checkpoint (``best.npz``/``last.npz`` or the run folder),
    or import an ``.onnx`` file (through :func:`convscope.models.loading.load_model_file`, the one
    loader of the command-line tools).

    Returns:
        Module: the registered model with the checkpoint's weights (or the imported graph), in
        eval mode.

    Raises:
        CheckpointError: the file is not a convscope training checkpoint (a plain weights file
            does not say which architecture it belongs to: build the model and call
            ``model.load_state_dict(convscope.load(path))``).

    Example:
        >>> model = convscope.load_model("runs/simple-digits/best.npz")
    """
    from ..models.loading import load_model_file

    return load_model_file(path).model


def load_state_dict_file(path: StrPath) -> dict:
    """A flat state dict (name -> ndarray) from any weights file, for initialising a model.

    Accepts a plain state dict file of any format, a training run's checkpoint (its model
    weights; the run folder works too) and a nested checkpoint holding the state dict under
    ``state_dict``, ``model_state_dict`` or ``model``.

    Raises:
        CheckpointError: no flat state dict found (the message lists the top-level keys).
    """
    from ..checkpoint import load_checkpoint

    path = os.fspath(path)
    if os.path.isdir(path):
        return dict(load_checkpoint(path).model_state)
    obj = load_arrays(path)
    if isinstance(obj, dict) and "__meta__" in obj and any(str(k).startswith("model/") for k in obj):
        return dict(load_checkpoint(path).model_state)
    if is_flat_arrays(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in NESTED_KEYS:
            if is_flat_arrays(obj.get(key)):
                return dict(obj[key])
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(
            f"{path} holds no state dict at its top level or under {', '.join(NESTED_KEYS)} "
            f"(its keys: {keys}); extract one with `convscope convert {path} OUT --key KEY`"
        )
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of named arrays")
