"""The model zoo: a registry of classic CNNs with their metadata."""

from .fcn import to_fully_convolutional
from .registry import ModelInfo, accepts, create, list_models, model_info, register, train_defaults

__all__ = [
    "accepts",
    "create",
    "list_models",
    "model_info",
    "register",
    "train_defaults",
    "ModelInfo",
    "to_fully_convolutional",
]
