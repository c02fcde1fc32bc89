"""Figures of what a CNN computes: feature maps, first-layer filters, a receptive-field box.

matplotlib with the Agg backend; every figure states how its colours were scaled. The
``*_figure`` builders return the matplotlib Figure (tiles are the axes labelled
``tile <i>``), the ``*_grid`` functions save it atomically as PNG and return the path.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..autograd.tensor import Tensor
from ..plotting import pyplot as _plt
from ..plotting import save_figure
from .inputs import run_with_hooks

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..formats.atomic import StrPath
    from ..nn import Module

TILE_INCHES = 1.8
MAX_WIDTH_INCHES = 16.0


def grid_shape(n: int) -> tuple:
    """(rows, cols) of a near-square grid for ``n`` tiles: cols = ceil(sqrt(n)), rows = ceil(n/cols).

    Example:
        >>> grid_shape(6), grid_shape(16), grid_shape(1)
        ((2, 3), (4, 4), (1, 1))
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"grid_shape: expected a positive number of tiles, got {n!r}")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _tiles(n: int, title: str, subtitle: str):
    """A figure with exactly ``n`` visible tile axes (unused grid cells hidden)."""
    plt = _plt()
    rows, cols = grid_shape(n)
    tile = min(TILE_INCHES, MAX_WIDTH_INCHES / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * tile + 1.2, rows * tile + 1.0), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            ax.set_label(f"tile {i}")
        else:
            ax.set_visible(False)
    fig.suptitle(f"{title}\n{subtitle}", fontsize=10)
    return fig, axes.ravel()[:n]


def tile_axes(fig: Figure) -> list:
    """The visible tile axes of a figure made here (what a reader sees as tiles)."""
    # str(): matplotlib types an artist's label as object
    return [ax for ax in fig.axes if ax.get_visible() and str(ax.get_label()).startswith("tile ")]


def _chw(activation) -> np.ndarray:
    a = np.asarray(activation.data if isinstance(activation, Tensor) else activation, dtype=np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.size == 0:
        raise ValueError(f"expected an activation of shape (C, H, W) or (1, C, H, W), got {a.shape}")
    return a


def feature_map_figure(activation: Tensor | npt.ArrayLike, title: str, shared_scale: bool = True) -> Figure:
    """One tile per channel of ``activation`` (C, H, W), titled 'channel c', with colour bars.

    ``shared_scale=True`` uses one colour scale for all tiles (one colour bar; channels are
    comparable), else each tile is scaled to its own min..max (a colour bar per tile).
    """
    a = _chw(activation)
    c, h, w = a.shape
    lo, hi = float(a.min()), float(a.max())
    scale = (
        f"colour scale shared by all tiles: min {lo:.3g} .. max {hi:.3g}"
        if shared_scale
        else "each tile scaled to its own min..max (see its colour bar)"
    )
    fig, axes = _tiles(c, title, f"{c} channels of {h}x{w} (rows x columns); {scale}")
    for i, ax in enumerate(axes):
        kw = dict(vmin=lo, vmax=hi) if shared_scale else {}
        im = ax.imshow(a[i], cmap="viridis", interpolation="nearest", **kw)
        ax.set_title(f"channel {i}", fontsize=8)
        if not shared_scale:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    if shared_scale:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="activation value")
    return fig


def feature_map_grid(
    activation: Tensor | npt.ArrayLike, path: StrPath, title: str, shared_scale: bool = True
) -> str:
    """Save :func:`feature_map_figure` of ``activation`` (C, H, W) to ``path`` (PNG); return the path."""
    return save_figure(feature_map_figure(activation, title, shared_scale), path)


def filter_figure(weight: Tensor | npt.ArrayLike, title: str) -> Figure:
    """First-layer filters ``weight`` (C_out, C_in, KH, KW) as tiles.

    C_in == 3: each filter in RGB (input channels 0, 1, 2 as red, green, blue), min-max
    normalised to [0, 1] per filter. Otherwise a grayscale tile per filter: the mean over the
    input channels (the channel itself when C_in == 1), scaled to its own min..max.
    """
    wt = np.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=np.float64)
    if wt.ndim != 4 or wt.size == 0:
        raise ValueError(f"filter_grid: expected weight (C_out, C_in, KH, KW), got shape {wt.shape}")
    c_out, c_in, kh, kw = wt.shape
    if c_in == 3:
        how = (
            "shown in RGB (input channels 0, 1, 2 = red, green, blue), each filter min-max "
            "normalised to [0, 1] for display"
        )
    else:
        what = "its single input channel" if c_in == 1 else f"the mean over its {c_in} input channels"
        how = f"grayscale: each tile shows {what}, scaled to its own min (black) .. max (white)"
    fig, axes = _tiles(c_out, title, f"{c_out} filters of {c_in}x{kh}x{kw} (C_in x KH x KW); {how}")
    for o, ax in enumerate(axes):
        if c_in == 3:
            f = wt[o].transpose(1, 2, 0)  # (KH, KW, 3) for imshow
            span = f.max() - f.min()
            ax.imshow((f - f.min()) / span if span > 0 else np.full_like(f, 0.5), interpolation="nearest")
        else:
            ax.imshow(wt[o].mean(axis=0), cmap="gray", interpolation="nearest")
        ax.set_title(f"filter {o}", fontsize=8)
    return fig


def filter_grid(weight: Tensor | npt.ArrayLike, path: StrPath, title: str) -> str:
    """Save :func:`filter_figure` of ``weight`` (C_out, C_in, KH, KW) to ``path`` (PNG); return the path."""
    return save_figure(filter_figure(weight, title), path)


def receptive_field_figure(image: npt.ArrayLike, box: dict, title: str) -> Figure:
    """The input image (C, H, W) in [0, 1] with a receptive-field ``box`` drawn on it.

    ``box`` is ``trace_model_value(...)['receptive_field']``: the part inside the image is a
    solid rectangle, the full extent (reaching into the padding) a dashed one.
    """
    from matplotlib.patches import Rectangle

    img = _chw(image)
    c, h, w = img.shape
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 6 * h / max(w, 1) + 0.6), layout="constrained")
    if c == 3:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    else:
        ax.imshow(img.mean(axis=0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    (r0, r1), (c0, c1) = box["rows"], box["cols"]
    (i0, i1), (j0, j1) = box["rows_in_image"], box["cols_in_image"]
    ax.add_patch(
        Rectangle(
            (c0 - 0.5, r0 - 0.5),
            c1 - c0,
            r1 - r0,
            fill=False,
            ec="orange",
            ls="--",
            lw=1.5,
            label=f"full field rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1}",
        )
    )
    ax.add_patch(
        Rectangle(
            (j0 - 0.5, i0 - 0.5),
            j1 - j0,
            i1 - i0,
            fill=False,
            ec="red",
            lw=2,
            label=f"inside the image: rows {i0}..{i1 - 1}, cols {j0}..{j1 - 1}",
        )
    )
    ax.set_xlim(min(c0, 0) - 1, max(c1, w) + 0.5)
    ax.set_ylim(max(r1, h) + 0.5, min(r0, 0) - 1)
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    ax.set_title(
        f"{title}\nreceptive field {box['size'][0]}x{box['size'][1]} pixels; dashed part "
        f"beyond the image = zero padding",
        fontsize=10,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8)
    return fig


def features_for_layers(
    model: Module, x: Tensor | npt.NDArray[Any], layers: Sequence[str] | None = None
) -> OrderedDict[str, np.ndarray]:
    """Activations of named layers for one image, captured with forward hooks.

    Args:
        model (Module); x (ndarray or Tensor): (1, C, H, W), preprocessed as the model expects.
        layers (list of str or None): dotted module names; None: every Conv2d in order.

    Returns:
        OrderedDict: layer name -> activation (C, H, W) float array, in the order asked.

    Raises:
        ValueError: an unknown name (listing the valid ones), a layer that did not run, or one
            whose output is not a feature map (1, C, H, W).
    """
    from .model_trace import conv_layer_names

    modules = OrderedDict((n, m) for n, m in model.named_modules() if n)
    if layers is None:
        layers = conv_layer_names(model)
    layers = list(layers)
    unknown = [n for n in layers if n not in modules]
    if unknown or not layers:
        raise ValueError(
            f"unknown layer(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"expected names from: {', '.join(modules)}"
        )
    seen = {}

    def hook_for(name):
        def hook(mod, inputs, output):
            seen[name] = output[0] if isinstance(output, tuple) else output

        return hook

    run_with_hooks(model, x, [(modules[name], hook_for(name)) for name in layers])
    result = OrderedDict()
    for name in layers:
        if name not in seen:
            raise ValueError(f"layer {name!r} did not run in the model's forward pass")
        out = seen[name].data
        if out.ndim != 4:
            raise ValueError(
                f"layer {name!r} ({type(modules[name]).__name__}) outputs shape "
                f"{tuple(out.shape)}, not a feature map (1, C, H, W)"
            )
        result[name] = out[0].copy()
    return result
