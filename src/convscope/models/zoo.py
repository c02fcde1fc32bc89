"""The ImageNet-era and teaching models of the zoo; importing this module registers them.

``registry._load_all`` imports it, so :func:`convscope.models.list_models` sees every model.
"""

from . import alexnet, resnet, tinyvgg, ts1d, unet, vgg  # noqa: F401  (each registers on import)

__all__ = ["alexnet", "resnet", "tinyvgg", "ts1d", "unet", "vgg"]
