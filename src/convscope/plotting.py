"""The one place that sets up matplotlib (headless Agg backend) and saves figures atomically."""

from __future__ import annotations

import io
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .formats.atomic import StrPath


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend (works without a screen)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: StrPath, dpi: int = 100) -> str:
    """Write ``fig`` as PNG to ``path`` atomically (temp file + rename), close it, return the path."""
    from .serialization import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return str(path)
