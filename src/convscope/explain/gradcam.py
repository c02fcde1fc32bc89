"""Class-activation heatmaps: Grad-CAM, Grad-CAM++ and input-gradient saliency.

All use the tape: one forward with a hook on the target layer (keeping its activation A, with
``retain_grad``), one backward from the class score y_c (the logit, before softmax).
Parameters are frozen for the call, so no ``.grad`` is left on them.

References: Selvaraju et al., "Grad-CAM", ICCV 2017; Chattopadhay et al., "Grad-CAM++",
WACV 2018; Simonyan et al., "Deep Inside Convolutional Networks", ICLR workshop 2014.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.tensor import Tensor
from .inputs import image_input, run_with_hooks

METHODS = ("gradcam", "gradcam++", "saliency")


def _layer_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError(
        f"target_layer {type(module).__name__} is not a submodule of "
        f"{type(model).__name__}; pass one of its layers or a dotted name"
    )


def last_conv_layer(model, x) -> str:
    """Dotted name of the last Conv2d (in call order) whose output is larger than 1x1 for ``x``."""
    from ..nn import Conv2d

    seen = []
    run_with_hooks(
        model,
        x,
        [
            (m, lambda mod, inp, out, name=name: seen.append((name, tuple(out.shape[2:]))))
            for name, m in model.named_modules()
            if isinstance(m, Conv2d)
        ],
    )
    big = [name for name, hw in seen if hw[0] * hw[1] > 1]
    if not big:
        raise ValueError(
            f"{type(model).__name__} has no Conv2d layer with an output larger than 1x1 "
            f"for an input of shape {tuple(np.shape(x))}; pass target_layer explicitly"
        )
    return big[-1]


def resolve_layer(model, x, target_layer=None) -> tuple:
    """(dotted name, Module) of the Grad-CAM target layer.

    ``target_layer``: a Module of ``model``, a dotted name, or None for the registry's
    ``gradcam_layer`` of ``model.model_name`` (else the last Conv2d larger than 1x1).

    Raises:
        ValueError: an unknown name (listing the valid ones) or a module not in the model.
    """
    from ..nn import Module

    if isinstance(target_layer, Module):
        return _layer_name(model, target_layer), target_layer
    if target_layer is None:
        name = getattr(model, "model_name", None)
        if name is not None:
            from ..models import model_info

            try:
                target_layer = model_info(name).gradcam_layer
            except ValueError:
                target_layer = None
        if target_layer is None:
            target_layer = last_conv_layer(model, x)
    if not isinstance(target_layer, str) or not target_layer:
        raise ValueError(
            f"target_layer must be a Module of the model, a dotted layer name or None, got {target_layer!r}"
        )
    try:
        return target_layer, model.get_submodule(target_layer)
    except ValueError:
        valid = [n for n, _ in model.named_modules() if n]
        raise ValueError(
            f"unknown layer {target_layer!r} for {type(model).__name__}; valid names: {', '.join(valid)}"
        ) from None


@contextmanager
def _frozen(model):
    """Eval mode, parameters not requiring grad; modes, flags and existing .grad restored after."""
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    model.requires_grad_(False)
    try:
        with model.evaluating():
            yield
    finally:
        for p, flag, grad in params:
            p.requires_grad, p.grad = flag, grad


def _backward_pass(model, x, module=None, class_idx=None, name=None) -> dict:
    """One forward (capturing ``module``'s output A) and one backward from the logit y_c.

    Returns:
        dict: logits (K,), class_idx, activation (K_a, h, w) and gradient dy_c/dA (same shape)
        when ``module`` is given, input_grad (C, H, W) = dy_c/dx.
    """
    captured = []

    def hook(mod, inputs, out):
        out = out[0] if isinstance(out, tuple) else out
        if isinstance(out, Tensor) and out.requires_grad:
            out.retain_grad()
        captured.append(out)

    handle = module.register_forward_hook(hook) if module is not None else None
    x_t = Tensor._wrap(image_input(model, x), True)
    try:
        with _frozen(model), enable_grad():
            logits = model(x_t)
            logits = logits[0] if isinstance(logits, tuple) else logits
            if logits.ndim != 2 or logits.shape[0] != 1:
                raise ValueError(
                    f"explain needs a classifier with output (1, num_classes), got {tuple(logits.shape)}"
                )
            k = logits.shape[1]
            if class_idx is None:
                class_idx = int(np.argmax(logits.data[0]))
            elif (
                isinstance(class_idx, bool)
                or not isinstance(class_idx, (int, np.integer))
                or not 0 <= class_idx < k
            ):
                raise ValueError(f"class_idx must be an int in 0..{k - 1}, got {class_idx!r}")
            if module is not None and not captured:
                raise ValueError(f"target layer {name!r} was not called in the forward pass")
            seed = np.zeros(logits.shape, dtype=logits.dtype)
            seed[0, int(class_idx)] = 1  # d y_c / d logits: backward from the score, not softmax
            logits.backward(seed)
    finally:
        if handle is not None:
            handle.remove()
    if x_t.grad is None:
        raise ValueError("explain needs a model whose output depends on its input; no gradient reached it")
    result = {"logits": logits.data[0].copy(), "class_idx": int(class_idx), "input_grad": x_t.grad.data[0]}
    if module is not None:
        act = captured[-1]
        if not isinstance(act, Tensor) or act.ndim != 4:
            raise ValueError(
                f"Grad-CAM needs a (1, K, h, w) feature map, but layer {name!r} ("
                f"{module._layer_name()}) outputs shape {tuple(getattr(act, 'shape', ()))}"
            )
        grad = act.grad.data[0] if act.grad is not None else np.zeros(act.shape[1:], act.dtype)
        result.update(activation=act.data[0], gradient=grad)
    return result


def _normalise(m: np.ndarray) -> np.ndarray:
    """Divide a non-negative map by its maximum; an all-zero map stays zero."""
    m = np.maximum(m, 0).astype(np.float32)
    peak = m.max() if m.size else 0.0
    return m / peak if peak > 0 else np.zeros_like(m)


def _upsample(cam: np.ndarray, hw: tuple) -> np.ndarray:
    """(h, w) -> (H, W) bilinear, align_corners=False, as torch's interpolate."""
    from ..nn import functional as F

    with no_grad():
        t = F.interpolate(
            Tensor._wrap(np.ascontiguousarray(cam[None, None], dtype=np.float32), False),
            size=tuple(int(v) for v in hw),
            mode="bilinear",
            align_corners=False,
        )
    return t.data[0, 0]


def cam_weights(activation, gradient, method="gradcam") -> np.ndarray:
    """Per-channel weights (K,) of Grad-CAM or Grad-CAM++ from A and g = dy_c/dA, both (K, h, w).

    Grad-CAM: ``alpha_k = mean_ij g_kij``. Grad-CAM++ (closed form with S = exp(y_c), exact for
    piecewise-linear nets): ``a_kij = g^2 / (2 g^2 + sum_ij(A_k) g^3)`` (0 where the denominator
    is 0), ``w_k = sum_ij a_kij * ReLU(g_kij)``.
    """
    g = np.asarray(gradient)
    if method == "gradcam":
        return g.mean(axis=(1, 2))
    if method == "gradcam++":
        g2, g3 = g * g, g * g * g
        denom = 2 * g2 + np.asarray(activation).sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1), 0)
        return (alpha * np.maximum(g, 0)).sum(axis=(1, 2))
    raise ValueError(f"method must be 'gradcam' or 'gradcam++' here, got {method!r}")


def explain_heatmap(model, x, method="gradcam", target_layer=None, class_idx=None) -> dict:
    """Heatmap of the evidence for one class, with what was explained.

    Args:
        model (Module): a classifier (1, C, H, W) -> (1, num_classes).
        x (Tensor or ndarray): one image (1, C, H, W), preprocessed as the model expects.
        method (str, default 'gradcam'): 'gradcam', 'gradcam++' or 'saliency'.
        target_layer (Module, str or None): see :func:`resolve_layer` (ignored by saliency).
        class_idx (int, optional): class to explain (default: the predicted one).

    Returns:
        dict: heatmap (H, W) float32 in [0, 1]; cam (h, w) at the layer's resolution, in
        [0, 1] (None for saliency); layer (dotted name or None); method; class_idx; score (the
        logit y_c); probabilities (num_classes,); probability (of class_idx); predicted.

    Raises:
        ValueError: not one 4-D image, an unknown layer or method, or class_idx out of range.

    Example:
        >>> explain_heatmap(model, convscope.rand(1, 1, 28, 28))['heatmap'].shape
        (28, 28)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    data = image_input(model, x)
    hw = data.shape[2:]
    name, module = (None, None) if method == "saliency" else resolve_layer(model, data, target_layer)
    r = _backward_pass(model, data, module, class_idx, name)
    if method == "saliency":
        cam, heat = None, _normalise(np.abs(r["input_grad"]).max(axis=0))
    else:
        w = cam_weights(r["activation"], r["gradient"], method)
        raw = np.maximum(np.tensordot(w, r["activation"], axes=1), 0)  # (K,) . (K, h, w) -> (h, w)
        cam = _normalise(raw)
        heat = _normalise(_upsample(raw, hw))
    z = r["logits"].astype(np.float64)
    e = np.exp(z - z.max())
    probs = e / e.sum()
    c = r["class_idx"]
    return {
        "heatmap": heat,
        "cam": cam,
        "layer": name,
        "method": method,
        "class_idx": c,
        "score": float(z[c]),
        "probabilities": probs.astype(np.float32),
        "probability": float(probs[c]),
        "predicted": int(np.argmax(z)),
    }


def grad_cam(model, x, target_layer=None, class_idx=None) -> np.ndarray:
    """Grad-CAM heatmap (Selvaraju et al. 2017) of one image.

    ``cam = ReLU(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dy_c/dA_kij``, upsampled
    bilinearly to the input size and divided by its maximum.

    Shape: x (1, C, H, W) -> heatmap (H, W), float32 in [0, 1].

    Example:
        >>> grad_cam(model, x, 'features.conv2').shape
        (28, 28)
    """
    return explain_heatmap(model, x, "gradcam", target_layer, class_idx)["heatmap"]


def grad_cam_plus_plus(model, x, target_layer=None, class_idx=None) -> np.ndarray:
    """Grad-CAM++ heatmap (Chattopadhay et al. 2018); same interface and shape as :func:`grad_cam`."""
    return explain_heatmap(model, x, "gradcam++", target_layer, class_idx)["heatmap"]


def saliency(model, x, class_idx=None) -> np.ndarray:
    """Input-gradient saliency (Simonyan et al. 2014): ``max_c |dy_c/dx|``, scaled to [0, 1].

    Shape: x (1, C, H, W) -> (H, W).
    """
    return explain_heatmap(model, x, "saliency", None, class_idx)["heatmap"]


def strongest_cell(model, x, layer=None, class_idx=None, method="gradcam", result=None) -> dict:
    """The target layer's cell with the highest CAM value and its receptive field in the input.

    The geometry (size, jump, start per axis) comes from :func:`convscope.summary` (any module,
    blocks such as ResNet's ``layer4`` included): the box is ``start + i*jump -/+ (size-1)/2``
    per axis, clipped to the image. Pass ``result`` (from :func:`explain_heatmap`) to reuse a
    map already computed.

    Returns:
        dict: layer; cell (i, j) in the layer's (h, w) map; value (CAM there, 0: all-zero map);
        box (y0, x0, y1, x1) inclusive input pixel coordinates; box_unclipped; rf_size (H, W);
        jump (H, W).

    Raises:
        ValueError: as :func:`explain_heatmap`, or a layer that is not a spatial feature map.
    """
    from ..analysis.summary import summary

    data = image_input(model, x)
    out = result if result is not None else explain_heatmap(model, data, method, layer, class_idx)
    cam, name = out["cam"], out["layer"]
    i, j = np.unravel_index(int(np.argmax(cam)), cam.shape)
    c, h, w = data.shape[1:]
    rf_h, rf_w = summary(model, (c, h, w)).field_of(name)
    box, raw = [], []
    for idx, rf, limit in ((i, rf_h, h), (j, rf_w, w)):
        lo, hi = rf.span(idx)
        raw.append((lo, hi))
        box.append((max(0, int(np.ceil(lo))), min(limit - 1, int(np.floor(hi)))))
    return {
        "layer": name,
        "cell": (int(i), int(j)),
        "value": float(cam[i, j]),
        "box": (box[0][0], box[1][0], box[0][1], box[1][1]),
        "box_unclipped": tuple(float(v) for v in (raw[0][0], raw[1][0], raw[0][1], raw[1][1])),
        "rf_size": (float(rf_h.size), float(rf_w.size)),
        "jump": (float(rf_h.jump), float(rf_w.jump)),
    }
