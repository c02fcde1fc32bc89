"""Data sets, preprocessing and a batch loader, all on NumPy arrays; nothing downloads.

Quick tour::

    from convscope.data import load_dataset, Normalizer, DataLoader
    splits = load_dataset("digits")                 # or mnist:PATH, cifar10:PATH, folder:PATH, npz:PATH
    norm = Normalizer.fit(splits.train.x)           # statistics of the training split only
    loader = DataLoader(splits.train, batch_size=64, shuffle=True, seed=0, normalizer=norm)
    x, y = next(iter(loader))                       # (64, 1, 8, 8) float32, (64,) int64
"""

from .cifar import SafeUnpickler, load_cifar_folder
from .dataset import ArrayDataset, DataSplits, hold_out, stratified_split
from .errors import DataError
from .folder import load_image_folder
from .idx import load_idx_folder, read_idx
from .loader import DataLoader
from .preprocess import Normalizer, image_to_array, open_image, prepare_image, resize_array
from .sources import (
    KINDS,
    absolute_spec,
    detect_kind,
    few_images_warning,
    load_dataset,
    load_digits,
    load_npz,
    parse_spec,
    spec_slug,
)
from .transforms import Compose, RandomCrop, RandomHorizontalFlip

__all__ = [
    "DataError",
    "ArrayDataset",
    "DataSplits",
    "stratified_split",
    "hold_out",
    "load_dataset",
    "parse_spec",
    "absolute_spec",
    "spec_slug",
    "few_images_warning",
    "detect_kind",
    "KINDS",
    "load_digits",
    "load_idx_folder",
    "read_idx",
    "load_cifar_folder",
    "SafeUnpickler",
    "load_image_folder",
    "load_npz",
    "Normalizer",
    "prepare_image",
    "image_to_array",
    "open_image",
    "resize_array",
    "DataLoader",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Compose",
]
