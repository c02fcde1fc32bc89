"""Class activation maps along time for 1-D CNNs (Wang, Yan, Oates 2017, Fig. 3).

Grad-CAM generalised to (N, C, L) activations: with A the target layer's maps (K, l) and
g = d y_c / d A, the weights are ``alpha_k = mean_t g_kt`` and the map is
``ReLU(sum_k alpha_k A_k)``, resampled linearly to the series' length L. For a network that
ends in global average pooling and one linear layer (fcn1d, resnet1d) at its last block this is
exactly the paper's CAM ``sum_k w_ck A_k`` up to the positive factor 1/l.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor
from .gradcam import _frozen, resolve_layer


def cam_1d(model, series: np.ndarray, target_layer=None, class_idx: int | None = None) -> dict:
    """Class activation map of one series.

    Args:
        model (Module): a 1-D classifier, (1, C, L) -> (1, num_classes).
        series (ndarray): one series (1, C, L) as the model expects it (already normalised).
        target_layer (str or Module, optional): default the registry's ``gradcam_layer``.
        class_idx (int, optional): class to explain; default the predicted one.

    Shape:
        series (1, C, L) -> cam (L,) in [0, 1].

    Returns:
        dict: cam, class_idx, predicted, probabilities (K,), layer.

    Raises:
        ValueError: a series that is not (1, C, L), a layer whose output is not (1, K, l), a bad class.

    Example:
        >>> cam_1d(model, x[:1])["cam"].shape
        (150,)
    """
    data = np.asarray(series)
    if data.ndim != 3 or data.shape[0] != 1:
        raise ValueError(f"cam_1d: expected one series of shape (1, C, L), got {tuple(data.shape)}")
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    x = Tensor._wrap(np.array(data, dtype=dtype), False)
    if target_layer is None and getattr(model, "model_name", None) is None:
        raise ValueError("cam_1d: pass target_layer for a model that is not from the registry")
    name, module = resolve_layer(model, None, target_layer)
    captured = []

    def hook(mod, inputs, out):
        if isinstance(out, Tensor) and out.requires_grad:
            out.retain_grad()
        captured.append(out)

    handle = module.register_forward_hook(hook)
    try:
        with _frozen(model), enable_grad():
            # parameters are frozen, so the activation needs a grad-requiring path of its own
            x.requires_grad = True
            logits = model(x)
            if logits.ndim != 2 or logits.shape[0] != 1:
                raise ValueError(
                    f"cam_1d needs a classifier output (1, num_classes), got {tuple(logits.shape)}"
                )
            k = logits.shape[1]
            predicted = int(np.argmax(logits.data[0]))
            c = predicted if class_idx is None else class_idx
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < k:
                raise ValueError(f"class_idx must be an int in 0..{k - 1}, got {class_idx!r}")
            seed = np.zeros(logits.shape, dtype=logits.dtype)
            seed[0, int(c)] = 1
            logits.backward(seed)
    finally:
        handle.remove()
    act = captured[-1] if captured else None
    if not isinstance(act, Tensor) or act.ndim != 3:
        raise ValueError(
            f"a 1-D CAM needs a (1, K, l) feature map, but layer {name!r} outputs shape "
            f"{tuple(getattr(act, 'shape', ()))}"
        )
    a = act.data[0]  # (K, l)
    g = act.grad.data[0] if act.grad is not None else np.zeros_like(a)
    cam = np.maximum((g.mean(axis=1)[:, None] * a).sum(axis=0), 0)  # (l,)
    length = data.shape[2]
    if cam.shape[0] != length:  # align cell centres to sample positions
        cam = np.interp((np.arange(length) + 0.5) * cam.shape[0] / length - 0.5, np.arange(cam.shape[0]), cam)
    peak = cam.max()
    z = logits.data[0] - logits.data[0].max()
    probs = np.exp(z) / np.exp(z).sum()
    return {
        "cam": (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32),
        "class_idx": int(c),
        "predicted": predicted,
        "probabilities": probs,
        "layer": name,
    }


def save_cam_1d(series: np.ndarray, cam: np.ndarray, path: str, title: str = "") -> None:
    """Draw each channel of a series as a line coloured by the CAM (jet, 0 blue .. 1 red).

    Shape:
        series (C, L), cam (L,).
    """
    from matplotlib.collections import LineCollection

    from ..plotting import pyplot, save_figure

    plt = pyplot()
    c, length = series.shape
    fig, axes = plt.subplots(c, 1, figsize=(8, 2.2 * c + 0.6), squeeze=False)
    t = np.arange(length)
    for i in range(c):
        ax = axes[i, 0]
        points = np.stack([t, series[i]], axis=1)[:, None, :]  # (L, 1, 2)
        segments = np.concatenate([points[:-1], points[1:]], axis=1)  # (L-1, 2, 2)
        lines = LineCollection(list(segments), cmap="jet", norm=plt.Normalize(0, 1), linewidth=3)
        lines.set_array((cam[:-1] + cam[1:]) / 2)
        ax.add_collection(lines)
        ax.set_xlim(0, max(length - 1, 1))
        pad = 0.1 * (np.ptp(series[i]) or 1.0)
        ax.set_ylim(series[i].min() - pad, series[i].max() + pad)
        ax.set_ylabel(f"channel {i}" if c > 1 else "value")
    axes[-1, 0].set_xlabel("time step")
    fig.colorbar(lines, ax=axes[:, 0].tolist(), label="class activation")
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=110)
