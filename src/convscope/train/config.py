"""Training configuration: defaults, TOML files and validation."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "multistep", "cosine")
AUGMENTATIONS = ("none", "flip", "crop", "crop+flip")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
# settings a model's zoo metadata may choose per input shape (None in a TrainConfig: not given);
# these values apply where the model records nothing (lr: the optimizer's DEFAULT_LR)
MODEL_DEFAULTABLE = {
    "optimizer": "sgd",
    "lr": None,
    "epochs": 15,
    "batch_size": 32,
    "weight_decay": 5e-4,
    "augment": "none",
    "crop_padding": 4,
    "label_smoothing": 0.0,
}


def resolved(value: _T | None, name: str) -> _T:
    """``value`` of TrainConfig setting ``name``, which must have been filled (by the user or by
    :meth:`TrainConfig.apply_model_defaults`) before training uses it."""
    if value is None:
        raise ValueError(
            f"TrainConfig.{name} is unset; call apply_model_defaults(input_shape) first, which fills "
            f"the model's defaults for the data"
        )
    return value


class ConfigError(ValueError):
    """A setting out of its range; ``setting`` is its name (the CLI words it as --flag)."""

    def __init__(self, setting: str, expected: str, got):
        self.setting, self.expected, self.got = setting, expected, got
        super().__init__(self.worded(setting))

    def worded(self, name: str) -> str:
        return f"{name} must be {self.expected}, got {self.got!r}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """Everything that defines a training run (also what a TOML config file may set).

    Attributes:
        data: dataset spec ('digits', 'mnist:PATH', 'cifar10:PATH', 'folder:PATH', 'npz:PATH').
        model: registry name ('simple', 'lenet5', 'resnet20', ...).
        epochs, batch_size, seed: the usual.
        optimizer: 'sgd' (with momentum), 'adam' or 'adamw'.
        optimizer, lr, epochs, batch_size, weight_decay None: the model's defaults for the
            data's shape (zoo metadata, see :meth:`apply_model_defaults`), else SGD, 15 epochs,
            batch 32, weight decay 5e-4 and the optimizer's own lr (SGD 0.05, Adam/AdamW 1e-3).
        scheduler: 'none', 'step' (step_size, gamma), 'multistep' (milestones, gamma) or 'cosine'.
        test_split: fraction held out (stratified, seeded) when the source has one split.
        image_size: (H, W) to resize folder images to; mode: 'auto', 'gray' or 'rgb'.
        augment: 'none', 'flip', 'crop' or 'crop+flip' (random crop with padding crop_padding).
        label_smoothing: cross-entropy label smoothing.
        augment, crop_padding, label_smoothing None: the model's defaults for the data's shape
            (zoo metadata, see :meth:`apply_model_defaults`), else 'none', 4, 0.0.
        out: run folder (default: a new folder under ./runs/).
        weights: a weights file to initialise the model from (fine-tuning); a classifier layer
            of another class count is re-initialised.
        freeze: glob over parameter names whose gradients are turned off (e.g. 'features.*').
        init: 'default' (each layer's reset_parameters) or 'gaussian' (weights N(0, init_std²),
            biases zero).
        task: 'auto' (follow the data), 'classify' or 'segment' (per-pixel masks).
        upsample: U-Net decoder upsampling, 'transposed' or 'bilinear' (None: the model's default).
        ignore_index: mask value of unlabeled pixels (segmentation; default 255).
    """

    data: str = "digits"
    model: str = "simple"
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    scheduler: str = "cosine"
    step_size: int = 10
    gamma: float = 0.1
    milestones: list = field(default_factory=list)
    seed: int = 0
    test_split: float = 0.2
    image_size: list | None = None
    mode: str = "auto"
    augment: str | None = None
    crop_padding: int | None = None
    label_smoothing: float | None = None
    out: str | None = None
    weights: str | None = None
    freeze: str | None = None
    init: str = "default"
    init_std: float = 0.01
    task: str = "auto"
    upsample: str | None = None
    ignore_index: int = 255

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first bad setting. Settings left None (the model's
        defaults, filled by :meth:`apply_model_defaults` once the data's shape is known) are
        checked then."""

        def bad(name, expected):
            raise ConfigError(name, expected, getattr(self, name))

        for name in ("epochs", "batch_size", "step_size"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                bad(name, "a positive integer")
        if not _is_int(self.seed) or self.seed < 0:
            bad("seed", "a non-negative integer")
        if self.crop_padding is not None and (not _is_int(self.crop_padding) or self.crop_padding < 0):
            bad("crop_padding", "a non-negative integer")
        if not isinstance(self.gamma, (int, float)) or not 0.0 < self.gamma <= 1.0:
            bad("gamma", "in (0, 1] (the factor the learning rate is multiplied by)")
        ms = self.milestones
        if not isinstance(ms, list) or not all(_is_int(m) and m >= 1 for m in ms):
            bad("milestones", "positive whole epochs, e.g. 5,8")
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            bad("milestones", "increasing epochs, e.g. 5,8")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            bad("scheduler", f"one of {', '.join(SCHEDULERS)}")
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            bad("augment", f"one of {', '.join(AUGMENTATIONS)}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            bad("lr", "a positive number")
        if not 0.0 < self.test_split < 1.0:
            bad("test_split", "a fraction between 0 and 1")
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            bad("label_smoothing", "in [0, 1)")
        if self.weight_decay is not None and not (
            isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0
        ):
            bad("weight_decay", "non-negative")
        if self.momentum < 0:
            bad("momentum", "non-negative")
        if self.mode not in ("auto", "gray", "rgb"):
            bad("mode", "'auto', 'gray' or 'rgb'")
        if self.init not in ("default", "gaussian"):
            bad("init", "'default' or 'gaussian'")
        if not (isinstance(self.init_std, (int, float)) and self.init_std > 0):
            bad("init_std", "a positive number")
        if self.weights is not None and self.init != "default":
            raise ValueError(f"weights and init={self.init!r} both set the initial weights; choose one")
        if self.task not in ("auto", "classify", "segment"):
            bad("task", "'auto', 'classify' or 'segment'")
        if self.upsample not in (None, "transposed", "bilinear"):
            bad("upsample", "'transposed' or 'bilinear'")
        return self

    def apply_model_defaults(self, input_shape) -> dict:
        """Fill the settings left None from the model's zoo metadata for inputs of shape
        (C, H, W) or (C, L), then from MODEL_DEFAULTABLE; returns what came from the model
        (empty when nothing did).

        A model's lr belongs to its optimizer: it applies only when the run uses that optimizer
        (``--optimizer adam`` alone on a model recorded with SGD keeps Adam's own lr).
        """
        from ..models import train_defaults

        try:
            chosen = train_defaults(self.model, input_shape)
        except ValueError:  # not a zoo name (e.g. an .onnx file): nothing recorded
            chosen = {}
        unknown = set(chosen) - set(MODEL_DEFAULTABLE)
        if unknown:
            raise ValueError(
                f"model {self.model}: train_defaults may set {', '.join(MODEL_DEFAULTABLE)}, "
                f"not {', '.join(sorted(unknown))}"
            )
        intended = chosen.get("optimizer", MODEL_DEFAULTABLE["optimizer"])
        if self.optimizer is not None and self.optimizer != intended:
            chosen.pop("lr", None)
        applied = {}
        for name, fallback in MODEL_DEFAULTABLE.items():
            if getattr(self, name) is None:
                if name in chosen:
                    applied[name] = chosen[name]
                setattr(self, name, chosen.get(name, fallback))
        if self.lr is None:
            self.lr = DEFAULT_LR[resolved(self.optimizer, "optimizer")]
        self.validate()
        return applied

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> set:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        unknown = set(values) - cls.field_names()
        if unknown:
            raise ValueError(
                f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; valid: "
                f"{', '.join(sorted(cls.field_names()))}"
            )
        return cls(**values)


def read_toml(path) -> dict:
    """Read a TOML config; settings may sit at the top level or in a [train] table."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {path} is not valid TOML: {err}") from None
    values = dict(doc.get("train", {}))
    values.update({k: v for k, v in doc.items() if not isinstance(v, dict)})
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = set(values) - TrainConfig.field_names()
    if unknown:
        raise ValueError(
            f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}; valid: "
            f"{', '.join(sorted(TrainConfig.field_names()))}"
        )
    return values
