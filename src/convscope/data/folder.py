"""Image folders: ``root/<class name>/*.png`` (one sub-folder per class), optionally split.

``root/train/<class>/...`` plus ``root/test/<class>/...`` (or ``val/``) gives two
splits; otherwise the whole folder is one split. Class indices follow the sorted
class-folder names, as in torchvision's ``ImageFolder``.
"""

from __future__ import annotations

import os

import numpy as np

from .dataset import ArrayDataset
from .errors import DataError
from .preprocess import _pil, _size_hw, image_to_array, is_color, open_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEST_FOLDER_NAMES = ("test", "val", "valid", "validation")
MODES = {"auto": None, "gray": 1, "grey": 1, "l": 1, "rgb": 3}


def _visible(names):
    return sorted(n for n in names if not n.startswith(".") and n not in ("Thumbs.db", "__MACOSX"))


def _subdirs(folder: str) -> list:
    return [n for n in _visible(os.listdir(folder)) if os.path.isdir(os.path.join(folder, n))]


def find_split_folders(root: str) -> dict:
    """``{'train': dir, 'test': dir}`` if ``root`` has train/ and test/ (or val/) holding class
    folders, else ``{'all': root}``."""
    names = {n.lower(): n for n in _subdirs(root)}
    test = next((names[t] for t in TEST_FOLDER_NAMES if t in names), None)
    if "train" in names and test is not None:
        train_dir, test_dir = os.path.join(root, names["train"]), os.path.join(root, test)
        if _subdirs(train_dir) and _subdirs(test_dir):
            return {"train": train_dir, "test": test_dir}
    return {"all": root}


def list_images(folder: str):
    """Class names and ``(path, class_name)`` pairs of one split folder, checked.

    Raises:
        DataError: missing or empty folder, images outside class folders, fewer than 2
            classes, a class folder with no images, or a file that is not an image.
    """
    if not os.path.exists(folder):
        raise DataError(f"image folder not found: {folder}")
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is a file; expected a folder with one sub-folder per class")
    classes = _subdirs(folder)
    if not classes:
        loose = [n for n in _visible(os.listdir(folder)) if n.lower().endswith(IMAGE_EXTENSIONS)]
        found = f"{len(loose)} images directly inside it" if loose else "no sub-folders"
        raise DataError(
            f"{folder}: expected one sub-folder per class (e.g. {folder}/cat/1.png), found {found}"
        )
    if len(classes) < 2:
        raise DataError(f"{folder}: expected at least 2 class folders, found 1 ({classes[0]!r})")
    items = []
    for name in classes:
        class_dir = os.path.join(folder, name)
        count = 0
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = _visible(dirnames)
            for fname in _visible(filenames):
                path = os.path.join(dirpath, fname)
                if not fname.lower().endswith(IMAGE_EXTENSIONS):
                    raise DataError(
                        f"{path} is not an image file; expected only "
                        f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} files in "
                        f"class folders"
                    )
                items.append((path, name))
                count += 1
        if count == 0:
            raise DataError(
                f"class folder {class_dir} has no images; expected at least one "
                f"{'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} file"
            )
    return classes, items


def _headers(items):
    """(mode, (W, H), colour?) of every image, reading only file headers."""
    Image = _pil()
    out = []
    for path, _ in items:
        try:
            with Image.open(path) as img:
                out.append((img.mode, img.size, is_color(img)))
        except Exception as exc:
            raise DataError(
                f"{path} is not a readable image ({type(exc).__name__}); expected a PNG/JPEG/BMP/GIF file"
            ) from None
    return out


def _choose_channels(mode, headers, items, root):
    key = str(mode).lower()
    if key not in MODES:
        raise DataError(f"image mode must be one of auto, gray, rgb; got {mode!r}")
    if MODES[key] is not None:
        return MODES[key], ""
    colour = [i for i, h in enumerate(headers) if h[2]]
    if not colour:
        return 1, ""
    if len(colour) == len(headers):
        return 3, ""
    example = items[colour[0]][0]
    note = (
        f"{root}: {len(colour)} of {len(headers)} images are colour (e.g. {example}), the "
        f"rest grey; mode 'auto' loads all as RGB (pass mode 'gray' for one channel)"
    )
    return 3, note


def _choose_size(image_size, headers, items, root):
    if image_size is not None:
        return _size_hw(image_size)
    sizes = {h[1] for h in headers}
    if len(sizes) == 1:
        w, h = headers[0][1]
        return h, w
    first = items[0][0]
    other = next(i for i, h in enumerate(headers) if h[1] != headers[0][1])
    (w0, h0), (w1, h1) = headers[0][1], headers[other][1]
    raise DataError(
        f"{root}: images have {len(sizes)} different sizes ({first} is {w0}x{h0}, "
        f"{items[other][0]} is {w1}x{h1}); pass an image size (--image-size) to "
        f"resize them all"
    )


def load_image_folder(root: str, image_size=None, mode: str = "auto"):
    """Load an image-folder data set into memory.

    Args:
        root (str): the folder (see the module docstring for the layouts).
        image_size (int or (H, W), optional): resize every image to this size; required
            when the images do not all have the same size.
        mode (str, default 'auto'): 'gray' (1 channel), 'rgb' (3 channels) or 'auto' (RGB
            if any image is colour, else grey).

    Shape:
        each split's x is (N, C, H, W) float32 in [0, 1].

    Returns:
        tuple: ``({'train': ds, 'test': ds} or {'all': ds}, note)`` where note is '' or a
        message about a choice made for the user (mixed grey and colour images).

    Raises:
        DataError: every layout or file problem (see :func:`list_images`), mixed sizes
            without ``image_size``, or a bad ``mode``.
    """
    root = os.fspath(root)
    split_dirs = find_split_folders(root) if os.path.isdir(root) else {"all": root}
    listed = {split: list_images(d) for split, d in split_dirs.items()}
    classes = listed["train"][0] if "train" in listed else listed["all"][0]
    if "test" in listed:
        extra = [c for c in listed["test"][0] if c not in classes]
        if extra:
            raise DataError(
                f"{split_dirs['test']}: class folder {extra[0]!r} has no counterpart "
                f"in {split_dirs['train']}; expected test classes to be among "
                f"{', '.join(classes)}"
            )
    all_items = [it for _, items in listed.values() for it in items]
    headers = _headers(all_items)
    channels, note = _choose_channels(mode, headers, all_items, root)
    h, w = _choose_size(image_size, headers, all_items, root)
    index = {c: i for i, c in enumerate(classes)}
    name = os.path.basename(os.path.normpath(root)) or "images"
    out = {}
    for split, (_, items) in listed.items():
        x = np.empty((len(items), channels, h, w), dtype=np.float32)
        for i, (path, _) in enumerate(items):
            with open_image(path) as img:
                x[i] = image_to_array(img, channels, (h, w))
        y = np.array([index[c] for _, c in items], dtype=np.int64)
        out[split] = ArrayDataset(x, y, classes, name, root)
    return out, note
