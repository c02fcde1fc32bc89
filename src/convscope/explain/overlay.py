"""Figures of explanations: input, heatmap and overlay side by side (matplotlib, Agg backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..plotting import pyplot as _plt
from ..plotting import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..formats.atomic import StrPath

COLORMAP = "jet"


def _check(image, heatmap):
    img = np.asarray(image, dtype=np.float32)
    heat = np.asarray(heatmap, dtype=np.float32)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"save_heatmap_overlay: image must be (H, W) or (H, W, 3), got shape {img.shape}")
    if heat.ndim != 2 or heat.shape != img.shape[:2]:
        raise ValueError(
            f"save_heatmap_overlay: heatmap must be (H, W) = {img.shape[:2]} like the image, "
            f"got shape {heat.shape}"
        )
    return np.clip(img, 0, 1), np.clip(heat, 0, 1)


def build_heatmap_figure(
    image: npt.ArrayLike,
    heatmap: npt.ArrayLike,
    title: str = "",
    box: dict[str, Any] | None = None,
    alpha: float = 0.45,
    box_label: str = "receptive field of the strongest cell",
) -> Figure:
    """The three-panel figure (input | heatmap with colorbar | overlay); caller closes it.

    Args:
        image (ndarray): (H, W) or (H, W, 3) in [0, 1].
        heatmap (ndarray): (H, W) in [0, 1].
        title (str): the figure's title.
        box (tuple, optional): (y0, x0, y1, x1) inclusive pixel coordinates, drawn on the
            overlay as a rectangle with a legend entry ``box_label``.
        alpha (float, default 0.45): opacity of the heatmap on the overlay.

    Returns:
        matplotlib.figure.Figure: with three image axes (plus the colorbar's axes).
    """
    img, heat = _check(image, heatmap)
    if not 0 <= alpha <= 1:
        raise ValueError(f"save_heatmap_overlay: alpha must be in [0, 1], got {alpha}")
    plt = _plt()
    gray = dict(cmap="gray", vmin=0, vmax=1) if img.ndim == 2 else {}
    fig, (ax_in, ax_heat, ax_over) = plt.subplots(1, 3, figsize=(12, 4.4))
    ax_in.imshow(img, **gray)
    ax_in.set_title("input")
    im = ax_heat.imshow(heat, cmap=COLORMAP, vmin=0, vmax=1)
    ax_heat.set_title("heatmap")
    fig.colorbar(im, ax=ax_heat, fraction=0.046, pad=0.04, label="relevance (0-1)")
    ax_over.imshow(img, **gray)
    ax_over.imshow(heat, cmap=COLORMAP, vmin=0, vmax=1, alpha=alpha)
    ax_over.set_title("overlay")
    if box is not None:
        from matplotlib.patches import Rectangle

        y0, x0, y1, x1 = (float(v) for v in box)
        # pixel centres sit at integer coordinates, so a pixel spans +-0.5
        ax_over.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5),
                x1 - x0 + 1,
                y1 - y0 + 1,
                fill=False,
                edgecolor="magenta",
                linewidth=2,
                linestyle="--",
                label=box_label,
            )
        )
        ax_over.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, frameon=False)
    for ax in (ax_in, ax_heat, ax_over):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_heatmap_overlay(
    image: npt.ArrayLike,
    heatmap: npt.ArrayLike,
    path: StrPath,
    title: str = "",
    box: dict[str, Any] | None = None,
    alpha: float = 0.45,
) -> str:
    """Save the input, the heatmap (with a 'relevance (0-1)' colorbar) and their overlay as a PNG.

    Args:
        image (ndarray): (H, W) or (H, W, 3) in [0, 1] (e.g. ``x[0].transpose(1, 2, 0)``).
        heatmap (ndarray): (H, W) in [0, 1], e.g. from :func:`convscope.explain.grad_cam`.
        path (str or Path): destination; written atomically (temp file + rename).
        title (str): e.g. method, layer, predicted class and probability.
        box (tuple, optional): (y0, x0, y1, x1) receptive-field box to outline.
        alpha (float, default 0.45): heatmap opacity on the overlay.

    Returns:
        str: ``path``.

    Raises:
        ValueError: mismatched or malformed image/heatmap shapes, or alpha outside [0, 1].

    Example:
        >>> save_heatmap_overlay(np.zeros((28, 28)), np.zeros((28, 28)), 'heat.png', 'demo')
        'heat.png'
    """
    return save_figure(build_heatmap_figure(image, heatmap, title, box, alpha), path)
