"""Checkpoints: weights + model config + preprocessing + history (+ optimizer state) in one .npz.

A checkpoint is a single ``.npz`` file (no pickle): the model's state_dict
under ``model/<key>``, optional optimizer arrays under ``optim/<key>``, and a
JSON document (stored as UTF-8 bytes under ``__meta__``) with everything
else: format/version, the registry name and constructor arguments of the
model, the preprocessing, class names, metrics history and the training
state needed to resume. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .formats.errors import CheckpointError
from .formats.npz_format import read_arrays, write_arrays

if TYPE_CHECKING:
    from .formats.atomic import StrPath
    from .nn import Module

FORMAT = "convscope-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        meta: the JSON document (model name/config, preprocessing, classes, history, train_state).
        model_state: state_dict arrays of the model.
        optim_state: flattened optimizer arrays (may be empty).
        path: where it was read from.
    """

    meta: dict
    model_state: dict
    optim_state: dict = field(default_factory=dict)
    path: str = ""

    @property
    def model_name(self) -> str:
        return self.meta["model"]["name"]

    @property
    def model_config(self) -> dict:
        return dict(self.meta["model"].get("config", {}))

    @property
    def classes(self) -> list:
        return list(self.meta.get("classes") or [])

    @property
    def preprocessing(self) -> dict:
        return dict(self.meta.get("preprocessing") or {})

    @property
    def history(self) -> list:
        return list(self.meta.get("history") or [])

    def build_model(self) -> Module:
        """Rebuild the registered model and load the weights (raises CheckpointError on mismatch)."""
        from .models.loading import create_model
        from .nn.modules.module import StateDictError

        try:
            model = create_model(self.model_name, **self.model_config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{self.path}: cannot rebuild model {self.model_name!r}: {err}") from None
        try:
            model.load_state_dict(self.model_state)
        except StateDictError as err:
            raise CheckpointError(
                f"{self.path}: the weights do not fit model {self.model_name!r}: {err}"
            ) from None
        model.eval()
        return model


def save_checkpoint(
    path: StrPath, model: Module, *, meta: dict | None = None, optim_arrays: dict | None = None
) -> None:
    """Write a checkpoint of ``model`` atomically.

    Args:
        path (str): destination file (``.npz``).
        model (Module): must come from ``convscope.models.create`` (it knows its name and config),
            unless ``meta['model']`` is given.
        meta (dict): JSON-serialisable extras: preprocessing, classes, history, train_state, ...
        optim_arrays (dict): name -> ndarray of optimizer state.
    """
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    doc["model"] = {"name": getattr(model, "model_name", None), "config": getattr(model, "model_config", {})}
    doc.update(meta or {})
    if doc["model"]["name"] is None:
        raise ValueError(
            "save_checkpoint: the model has no registry name; build it with "
            "convscope.models.create(...) or pass meta={'model': {...}}"
        )
    arrays = {f"model/{k}": v.numpy() for k, v in model.state_dict().items()}
    for k, v in (optim_arrays or {}).items():
        arrays[f"optim/{k}"] = np.asarray(v)
    arrays["__meta__"] = np.frombuffer(json.dumps(doc, default=_json_default).encode("utf-8"), dtype=np.uint8)
    write_arrays(path, arrays)


def load_checkpoint(path: StrPath) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: corrupt, truncated, or not a convscope checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if os.path.isdir(path):
        for name in ("best.npz", "last.npz"):
            if os.path.exists(os.path.join(path, name)):
                return load_checkpoint(os.path.join(path, name))
        raise CheckpointError(f"{path} is a folder without best.npz or last.npz")
    arrays = read_arrays(path, "a convscope checkpoint")
    if "__meta__" not in arrays:
        raise CheckpointError(
            f"{path} is an .npz without convscope metadata (a weights "
            f"file from convscope.save, or a foreign file), not a checkpoint"
        )
    try:
        meta = json.loads(arrays["__meta__"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt (its metadata could not be read: {err})") from None
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    if meta.get("format") != FORMAT or "model" not in meta:
        raise CheckpointError(f"{path} is not a convscope checkpoint (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer convscope (checkpoint version "
            f"{meta['version']}, this one reads up to {VERSION})"
        )
    return Checkpoint(meta, model_state, optim_state, path)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")
