"""The model zoo: a registry of classic CNNs with their metadata."""
from .registry import ModelInfo, create, list_models, model_info, register

__all__ = ["create", "list_models", "model_info", "register", "ModelInfo"]
