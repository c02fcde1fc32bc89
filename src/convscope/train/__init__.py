"""Training: the Trainer loop, its configuration, metrics and figures."""

from .config import ConfigError, TrainConfig, read_toml
from .metrics import classification_report, confusion_matrix
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "Trainer",
    "TrainConfig",
    "ConfigError",
    "TrainingDiverged",
    "TrainingInterrupted",
    "read_toml",
    "classification_report",
    "confusion_matrix",
]
