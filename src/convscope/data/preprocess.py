"""Turning images into model input, identically at training and at prediction time.

One function, :func:`image_to_array`, converts any Pillow image (any mode, size,
bit depth) to a (C, H, W) float32 array in [0, 1]; the image-folder loader and
:func:`prepare_image` both use it, so a picture given to ``predict`` goes through
exactly the steps the training images went through. :class:`Normalizer` then
applies the per-channel statistics of the training split.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import DataError

_HIGH_DEPTH = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is in the 'app' extra
        raise DataError(
            "reading images needs Pillow; expected it installed "
            "(pip install 'convscope[app]'), found it missing"
        ) from None
    return Image


def is_color(img) -> bool:
    """Whether a Pillow image carries colour (by mode; a palette counts if any entry is not grey)."""
    if img.mode in ("P", "PA"):
        palette = img.getpalette() or []
        rgb = np.asarray(palette[: len(palette) // 3 * 3], dtype=np.int64).reshape(-1, 3)
        return bool(np.any(rgb != rgb[:, :1]))
    return img.mode not in _GRAY_MODES


def _size_hw(size):
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise DataError(f"image size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"image size must be positive, got {h}x{w}")
    return h, w


def image_to_array(img, channels: int, size=None) -> np.ndarray:
    """Convert one Pillow image to float32 in [0, 1] with the given channels and size.

    Steps: transparency is composited onto white; 16-bit and 32-bit integer
    images are scaled by 1/65535 (float 'F' images are clipped to [0, 1]); other
    modes go through Pillow's ``convert('L')`` (ITU-R 601 luma) or
    ``convert('RGB')``; then a bilinear resize to ``size``.

    Args:
        img (PIL.Image.Image): any mode (1, L, P, RGB, RGBA, LA, CMYK, I;16, I, F, ...).
        channels (int): 1 (grey) or 3 (RGB).
        size (int or (H, W), optional): output size; default the image's own.

    Shape:
        output: (C, H, W) with C = ``channels``.

    Returns:
        ndarray: float32 in [0, 1].

    Raises:
        DataError: ``channels`` not 1 or 3, or a bad ``size``.
    """
    Image = _pil()
    if channels not in (1, 3):
        raise DataError(f"images can be converted to 1 (grey) or 3 (RGB) channels, got {channels}")
    hw = _size_hw(size)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in _HIGH_DEPTH:
        array = np.asarray(img, dtype=np.float32) / np.float32(_HIGH_DEPTH[img.mode])
        img = Image.fromarray(np.clip(array, 0.0, 1.0).astype(np.float32))  # mode F
        if hw is not None and img.size != (hw[1], hw[0]):
            img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        grey = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[None]  # (H, W) -> (1, H, W)
        return np.repeat(grey, channels, axis=0) if channels == 3 else grey
    img = img.convert("L" if channels == 1 else "RGB")
    if hw is not None and img.size != (hw[1], hw[0]):
        img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)


def open_image(path):
    """Open and fully decode an image file with Pillow.

    Raises:
        DataError: the file is missing or is not a readable image (the path is named).
    """
    Image = _pil()
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; expected an image file (PNG, JPEG, ...)")
    if not os.path.isfile(path):
        raise DataError(f"image file not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # UnidentifiedImageError, truncated data, decoder errors
        raise DataError(
            f"{path} is not a readable image ({type(exc).__name__}); expected a PNG/JPEG/BMP/GIF file"
        ) from None
    return img


def prepare_image(image, in_channels: int, size) -> np.ndarray:
    """Load one image for prediction, preprocessed exactly as the training images were.

    Args:
        image (str, path or PIL.Image.Image): the picture, any size or mode.
        in_channels (int): the model's input channels (1 or 3).
        size (int or (H, W)): the model's input size.

    Shape:
        output: (1, C, H, W).

    Returns:
        ndarray: float32 in [0, 1]; apply the model's :class:`Normalizer` next.

    Raises:
        DataError: a missing file or one that is not an image.
    """
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    elif not hasattr(image, "convert") or not hasattr(image, "mode"):
        raise DataError(f"prepare_image expects a path or a PIL image, got {type(image).__name__}")
    return image_to_array(image, in_channels, size)[None]


def resize_array(x: np.ndarray, size) -> np.ndarray:
    """Bilinearly resize a batch of [0, 1] images (Pillow 'F' mode, one channel at a time).

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out).
    """
    Image = _pil()
    h, w = _size_hw(size)
    if x.shape[2:] == (h, w):
        return x
    out = np.empty(x.shape[:2] + (h, w), dtype=np.float32)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            img = Image.fromarray(np.ascontiguousarray(x[n, c], dtype=np.float32))  # mode F
            out[n, c] = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0, out=out)


class Normalizer:
    """Per-channel standardisation ``(x - mean) / std`` with statistics of the training split.

    Args:
        mean (sequence of float): one value per channel.
        std (sequence of float): one positive value per channel.

    Shape:
        input (N, C, H, W) or (C, H, W); output the same, float32.

    Raises:
        DataError: mismatched lengths, non-positive std, or input with other channels.

    Example:
        >>> norm = Normalizer.fit(train.x)
        >>> norm(train.x[:8]).shape
        (8, 1, 28, 28)
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if len(self.mean) != len(self.std) or len(self.mean) == 0:
            raise DataError(
                f"Normalizer: expected one mean and one std per channel, got "
                f"{len(self.mean)} means and {len(self.std)} stds"
            )
        if not (np.all(np.isfinite(self.mean)) and np.all(self.std > 0)):
            raise DataError(
                f"Normalizer: expected finite means and positive stds, got "
                f"mean={self.mean.tolist()} std={self.std.tolist()}"
            )

    @classmethod
    def fit(cls, x, chunk: int = 1024) -> Normalizer:
        """Statistics of ``x`` (the TRAINING images only), in float64, chunked to bound memory.

        The std is the population std (ddof=0); a constant channel gets std 1.
        """
        x = np.asarray(x)
        if x.ndim != 4 or len(x) == 0:
            raise DataError(f"Normalizer.fit expects a non-empty (N, C, H, W) batch, got {x.shape}")
        count = x.shape[0] * x.shape[2] * x.shape[3]
        total = np.zeros(x.shape[1])
        for s in range(0, len(x), chunk):
            total += x[s : s + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
        mean = total / count
        sq = np.zeros(x.shape[1])
        for s in range(0, len(x), chunk):
            d = x[s : s + chunk].astype(np.float64) - mean[None, :, None, None]
            sq += np.einsum("nchw,nchw->c", d, d)
        std = np.sqrt(sq / count)
        std[std < 1e-12] = 1.0
        return cls(mean, std)

    @property
    def channels(self) -> int:
        return len(self.mean)

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim not in (3, 4) or x.shape[-3] != self.channels:
            raise DataError(
                f"Normalizer: expected (N, {self.channels}, H, W) or "
                f"({self.channels}, H, W) input, got shape {x.shape}"
            )
        shape = (-1, 1, 1)
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)

    def to_dict(self) -> dict:
        """JSON-friendly ``{'mean': [...], 'std': [...]}``."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d) -> Normalizer:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or "mean" not in d or "std" not in d:
            raise DataError(f"Normalizer.from_dict expects a dict with 'mean' and 'std', got {d!r}")
        return cls(d["mean"], d["std"])

    def __repr__(self) -> str:
        return f"Normalizer(mean={self.to_dict()['mean']}, std={self.to_dict()['std']})"
