"""Does a model fit a data set? Checked once, before a run writes anything.

A registry model is run on one blank example of the data's shape: a model whose windows do
not fit the images, a segmentation model on classification labels, or a classifier whose
output is not one score per class is reported in the user's terms (which flag to change),
not in the terms of the layer that would fail deep inside the first batch.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor


def check_model_fits(model, name: str, input_shape, num_classes: int, task: str = "classify") -> None:
    """Raise ValueError when ``model`` (registry name ``name``) cannot train on inputs
    (C, H, W), or series (C, L), with ``num_classes`` classes for ``task`` ('classify' or
    'segment').

    Raises:
        ValueError: the model's task differs from the data's, its windows do not fit the image
            size (the message suggests ``--image-size``), or its output shape is not the one
            the task needs.
    """
    from ..models import model_info
    from ..nn.functional._checks import InputTooSmallError

    info = model_info(name)
    c, *size = input_shape
    if info.task != task:
        raise ValueError(
            f"{name} is a {_task_words(info.task)} model, but the data is for {_task_words(task)}; "
            f"expected a {_task_words(task)} model (see `convscope summary --list`)"
        )
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            out = model(Tensor._wrap(np.zeros((1, c, *size), np.float32), False)).data
    except InputTooSmallError:
        seen, designed = "x".join(map(str, size)), "x".join(map(str, info.input_size[1:]))
        what = "images" if len(size) == 2 else "series"
        hint = (
            f"--image-size {info.input_size[1]} or a model for small images such as simple"
            if len(size) == 2
            else "longer series"
        )
        raise ValueError(
            f"{name} cannot run on {seen} {what}: its windows and pooling need larger inputs "
            f"(it was designed for {designed}); expected {hint}"
        ) from None
    finally:
        model.train(was_training)
    want = (1, num_classes) if task == "classify" else (1, num_classes, *size)
    if tuple(out.shape) != want:
        raise ValueError(
            f"{name} on {'x'.join(map(str, input_shape))} inputs gives outputs of shape "
            f"{tuple(out.shape)}; expected "
            f"{want} for {num_classes} classes"
        )


def _task_words(task: str) -> str:
    return {"classify": "classification", "segment": "segmentation"}.get(task, task)
