"""Pictures of segmentation results: a coloured class mask and its overlay on the image."""

from __future__ import annotations

import os

import numpy as np

from ..serialization import atomic_write


def palette(num_classes: int) -> np.ndarray:
    """One RGB colour per class (uint8, (num_classes, 3)); class 0 (background) is black.

    Colours follow the PASCAL VOC bit-interleaving scheme, so neighbouring indices differ clearly.
    """
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for k in range(num_classes):
        c, r, g, b = k, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[k] = (r, g, b)
    return colours


def colour_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours (indices outside the classes are white)."""
    colours = np.vstack([palette(num_classes), np.full((1, 3), 255, np.uint8)])
    index = np.where((mask >= 0) & (mask < num_classes), mask, num_classes)
    return colours[index]


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured mask over an image (C, H, W) in [0, 1]; background pixels stay the image.

    Returns:
        ndarray: (H, W, 3) uint8.
    """
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    base = (np.clip(rgb.transpose(1, 2, 0), 0, 1) * 255).astype(np.float32)  # (C, H, W) -> (H, W, C)
    colours = colour_mask(mask, num_classes).astype(np.float32)
    blend = np.where((mask > 0)[..., None], (1 - alpha) * base + alpha * colours, base)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: str, scale: int = 1) -> str:
    """Write an (H, W, 3) uint8 array as PNG atomically (nearest-neighbour enlarged by ``scale``)."""
    from PIL import Image

    if scale > 1:
        array = np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
    img = Image.fromarray(np.ascontiguousarray(array))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return path
