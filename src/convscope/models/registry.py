"""The model registry: ``list_models()``, ``create(name, ...)`` and per-model metadata."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..nn import Module

_B = TypeVar("_B", bound=Callable[..., "Module"])  # a model builder

_REGISTRY: dict[str, ModelInfo] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What convscope knows about a registered model.

    Attributes:
        name: registry name, e.g. ``'resnet18'``.
        builder: ``builder(num_classes=..., in_channels=..., **kw) -> Module``.
        input_size: default (C, H, W) input.
        mean, std: per-channel normalisation the model was designed for.
        gradcam_layer: dotted name of the layer Grad-CAM should target.
        citation: the paper the architecture comes from.
        family: e.g. 'resnet', 'vgg'.
        train_defaults: training settings that suit the model on a kind of input, as pairs
            ``((C, H, W), {setting: value})`` (``(C, L)`` for 1-D models); None in the shape
            matches any size. The trainer applies the first pair whose shape matches the data,
            for settings no flag or config file gave; the settings a model may choose are
            ``convscope.train.config.MODEL_DEFAULTABLE`` (optimizer, lr, epochs, batch_size,
            weight_decay, augment, crop_padding, label_smoothing).
        task: 'classify' (one score per class) or 'segment' (one score per class and pixel).
        classifier: dotted name of the final layer whose outputs are the classes (replaced
            when fine-tuning on a data set with another class count).
    """

    name: str
    builder: Callable[..., Module]
    input_size: tuple
    mean: tuple = ()
    std: tuple = ()
    gradcam_layer: str | None = None
    citation: str = ""
    family: str = ""
    train_defaults: tuple = ()
    task: str = "classify"
    classifier: str | None = None


def register(
    name: str,
    *,
    input_size: Sequence[int],
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    gradcam_layer: str | None = None,
    citation: str = "",
    family: str = "",
    train_defaults: Sequence[tuple[Sequence[int | None], dict[str, Any]]] = (),
    task: str = "classify",
    classifier: str | None = None,
) -> Callable[[_B], _B]:
    """Decorator that adds a builder function to the registry under ``name``."""

    def wrap(builder: _B) -> _B:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name,
            builder,
            tuple(input_size),
            tuple(mean),
            tuple(std),
            gradcam_layer,
            citation,
            family,
            tuple((tuple(shape), dict(settings)) for shape, settings in train_defaults),
            task,
            classifier,
        )
        return builder

    return wrap


def train_defaults(name: str, input_shape: Sequence[int]) -> dict:
    """The training settings recorded for model ``name`` on inputs of shape (C, H, W): the
    first ``train_defaults`` entry whose shape matches (None matches any size), else {}.

    Keyed to the data's shape, not to a data set's name: ``mnist:PATH`` may hold
    Fashion-MNIST, which shares MNIST's 1x28x28 shape and gets the same defaults.
    """
    shape = tuple(input_shape)
    for pattern, settings in model_info(name).train_defaults:
        if len(pattern) == len(shape) and all(
            p is None or p == s for p, s in zip(pattern, shape, strict=True)
        ):
            return dict(settings)
    return {}


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Metadata of a registered model; unknown names raise ValueError listing the valid ones."""
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def accepts(name: str, option: str) -> bool:
    """Whether the builder of model ``name`` takes the keyword ``option`` (e.g. 'input_size')."""
    import inspect

    return option in inspect.signature(model_info(name).builder).parameters


def create(name: str, num_classes: int = 10, in_channels: int | None = None, **kwargs: Any) -> Module:
    """Build a registered model.

    Args:
        name (str): one of :func:`list_models`.
        num_classes (int, default 10): size of the classifier output.
        in_channels (int, optional): input channels (default: the model's own, e.g. 3).
        **kwargs: model-specific options (e.g. ``input_size`` for 'simple').

    Returns:
        Module: the model, with ``model.model_name`` and ``model.model_config`` set so a
        checkpoint can rebuild it.

    Example:
        >>> convscope.models.create('lenet5', num_classes=10, in_channels=1)
    """
    info = model_info(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"create({name!r}): num_classes must be a positive int, got {num_classes!r}")
    if in_channels is None:
        in_channels = info.input_size[0]
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"create({name!r}): in_channels must be a positive int, got {in_channels!r}")
    model = info.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    object.__setattr__(model, "model_name", name)
    object.__setattr__(
        model, "model_config", dict(num_classes=num_classes, in_channels=in_channels, **kwargs)
    )
    return model


def _load_all():
    # importing the model modules runs their @register decorators
    from . import lenet, resnet_cifar, simple, zoo  # noqa: F401
