"""The model zoo: a registry of classic CNNs with their metadata."""

from .fcn import to_fully_convolutional
from .registry import ModelInfo, accepts, create, list_models, model_info, register

__all__ = [
    "accepts",
    "create",
    "list_models",
    "model_info",
    "register",
    "ModelInfo",
    "to_fully_convolutional",
]
