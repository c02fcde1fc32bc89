"""Explain endpoints: Grad-CAM heatmaps, feature maps, filters and the arithmetic of one conv value.

Each answers JSON built by :mod:`convscope.schemas`, or a PNG with ``?format=png``. The model
work runs in a thread under the service's lock (explanations never overlap with each other
or with a predict batch); matplotlib figures are drawn under a lock of their own.
"""

from __future__ import annotations

import io
import os
import threading
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.responses import Response

from .. import schemas
from .errors import invalid
from .service import check_json_size, parse_at

if TYPE_CHECKING:
    from .app import Server

_PLOT_LOCK = threading.Lock()  # pyplot keeps global state


def _png(build, *args) -> bytes:
    """Draw the figure ``build(*args)`` and return it as PNG bytes."""
    from ..plotting import pyplot

    with _PLOT_LOCK:
        fig = build(*args)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        pyplot().close(fig)
    return buf.getvalue()


def _format(value: str) -> str:
    if value not in ("json", "png"):
        raise invalid(f"format must be 'json' or 'png'; got {value!r}")
    return value


def install_explain_routes(app: FastAPI, server: Server) -> None:
    service = server.service

    @app.post("/v1/explain/gradcam", summary="Grad-CAM, Grad-CAM++ or saliency heatmap of one image")
    async def gradcam(
        file: Annotated[UploadFile, File()],
        class_index: int | None = Form(None),
        layer: str | None = Form(None),
        method: str = Form("gradcam"),
        format: str = Query("json"),
    ):
        fmt = _format(format)
        name, image, x, size = await server.decode(file)
        out = await server.explain_work(service.heatmap, image, x, method, layer or None, class_index)
        r, box = out["result"], out["box"]
        classes = service.classes
        k, pred = r["class_idx"], r["predicted"]
        probs = r["probabilities"]
        c, h, w = service.input_shape
        if fmt == "png":
            from ..explain.overlay import build_heatmap_figure

            display = image[0].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            display = display[:, :, 0] if c == 1 else display
            title = f"{method} | {out['layer'] or 'input'} | class {classes[k]} ({100 * probs[k]:.1f}%)"
            data = await server.explain_work(
                _png, build_heatmap_figure, display, r["heatmap"], title, box["box"] if box else None
            )
            return Response(data, media_type="image/png")
        return schemas.heatmap(
            {
                "checkpoint": os.path.basename(service.path.rstrip("/")),
                "image": name,
                "png": None,
                "method": method,
                "layer": out["layer"],
                "class_index": k,
                "class": classes[k],
                "probability": float(probs[k]),
                "score": r["score"],
                "predicted_index": pred,
                "predicted": classes[pred],
                "predicted_probability": float(probs[pred]),
                "resized_from": None if tuple(size) == (w, h) else [size[1], size[0]],
                "input_size": [c, h, w],
                "strongest_cell": box,
                "heatmap": r["heatmap"],
                "cam": r["cam"],
            }
        )

    @app.post("/v1/explain/features", summary="feature maps of one layer for one image")
    async def features(
        file: Annotated[UploadFile, File()],
        layer: str = Form(...),
        format: str = Query("json"),
    ):
        fmt = _format(format)
        service.check_layer(layer)
        _, _, x, _ = await server.decode(file)
        act = await server.explain_work(service.features, x, layer)
        if fmt == "png":
            from ..explain.figures import feature_map_figure

            return Response(
                await server.explain_work(_png, feature_map_figure, act, f"feature maps of {layer}"),
                media_type="image/png",
            )
        check_json_size(act.shape, layer)
        return schemas.feature_maps(layer, act)

    @app.get("/v1/filters", summary="the filters (weights) of one conv layer")
    async def filters(layer: str | None = Query(None), format: str = Query("json")):
        fmt = _format(format)
        name = service.check_layer(layer, conv_only=True)
        weight, bias = service.filters(name)
        if fmt == "png":
            from ..explain.figures import filter_figure

            return Response(
                await server.explain_work(_png, filter_figure, weight, f"filters of {name}"),
                media_type="image/png",
            )
        check_json_size(weight.shape, name)
        return schemas.filters(name, weight, bias)

    @app.post("/v1/explain/conv", summary="the arithmetic of one output value of a conv layer")
    async def conv(file: Annotated[UploadFile, File()], layer: str = Form(...), at: str = Form(...)):
        service.check_layer(layer, conv_only=True)
        pos = parse_at(at)
        _, _, x, _ = await server.decode(file)
        return schemas.trace(await server.explain_work(service.conv_trace, x, layer, pos))
