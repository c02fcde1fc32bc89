"""Every layer class against its torch.nn twin: same constructor arguments, same state_dict keys,
the torch weights loaded into ours, then the forward output and every gradient compared."""

import numpy as np
import pytest
import torch

import convscope as cs
from convscope import nn
from parity import assert_close

LAYERS = [
    ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 9, 9)),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=4, kernel_size=(2, 3), groups=2, bias=False, dilation=2),
        (2, 4, 8, 9),
    ),
    (
        "Conv2d",
        dict(in_channels=2, out_channels=3, kernel_size=3, padding="same", padding_mode="reflect"),
        (1, 2, 6, 7),
    ),
    ("Conv1d", dict(in_channels=3, out_channels=5, kernel_size=3, padding=1, stride=2), (2, 3, 11)),
    ("ConvTranspose2d", dict(in_channels=4, out_channels=2, kernel_size=2, stride=2), (2, 4, 4, 5)),
    (
        "ConvTranspose2d",
        dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2),
        (1, 4, 3, 3),
    ),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 8, 7)),
    ("AvgPool2d", dict(kernel_size=2), (2, 3, 8, 7)),
    ("AdaptiveAvgPool2d", dict(output_size=(2, 3)), (2, 3, 8, 7)),
    ("AdaptiveAvgPool1d", dict(output_size=1), (2, 3, 11)),
    ("AdaptiveAvgPool1d", dict(output_size=4), (2, 3, 11)),
    ("AdaptiveMaxPool2d", dict(output_size=1), (2, 3, 8, 7)),
    ("ReLU", {}, (3, 5)),
    ("LeakyReLU", dict(negative_slope=0.1), (3, 5)),
    ("Sigmoid", {}, (3, 5)),
    ("Tanh", {}, (3, 5)),
    ("Softmax", dict(dim=1), (3, 5)),
    ("LogSoftmax", dict(dim=1), (3, 5)),
    ("Flatten", {}, (2, 3, 4, 4)),
    ("Linear", dict(in_features=6, out_features=4), (3, 6)),
    ("Linear", dict(in_features=6, out_features=4, bias=False), (2, 3, 6)),
    ("BatchNorm1d", dict(num_features=4), (6, 4)),
    ("BatchNorm1d", dict(num_features=4, affine=False), (6, 4, 3)),
    ("BatchNorm2d", dict(num_features=3, momentum=0.3), (4, 3, 5, 5)),
    ("BatchNorm2d", dict(num_features=3, momentum=None), (4, 3, 5, 5)),
    ("Dropout", dict(p=0.0), (4, 3)),
    ("Identity", {}, (2, 3)),
    ("Upsample", dict(scale_factor=2, mode="nearest"), (1, 2, 3, 4)),
    ("Upsample", dict(size=(5, 7), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    ("Upsample", dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (1, 2, 3, 4)),
    ("Upsample", dict(scale_factor=1.5, mode="linear"), (2, 3, 5)),
]


@pytest.mark.parametrize("i", range(len(LAYERS)))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_layer_parity(i, mode, backend):
    name, kwargs, shape = LAYERS[i]
    torch.manual_seed(i)
    theirs = getattr(torch.nn, name)(**kwargs)
    ours = getattr(nn, name)(**kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    if "BatchNorm" in name and mode == "eval":  # give the running statistics non-trivial values
        with torch.no_grad():
            theirs.running_mean.uniform_(-1, 1)
            theirs.running_var.uniform_(0.5, 2)
        ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    getattr(ours, mode)()
    getattr(theirs, mode)()
    x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
    xc, xt = cs.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_c, out_t = ours(xc), theirs(xt)
    assert_close(out_c.numpy(), out_t.detach().numpy(), np.float32, f"{name} forward")
    g = np.random.default_rng(i + 100).standard_normal(out_c.shape).astype(np.float32)
    out_c.backward(cs.tensor(g))
    out_t.backward(torch.tensor(g))
    assert_close(xc.grad.numpy(), xt.grad.numpy(), np.float32, f"{name} input grad")
    for (pname, p), tp in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert_close(p.grad.numpy(), tp.grad.numpy(), np.float32, f"{name}.{pname} grad")
    for (bname, b), tb in zip(ours.named_buffers(), theirs.buffers(), strict=True):
        assert_close(
            b.numpy(), tb.numpy(), b.dtype.type if b.dtype.kind == "f" else np.float32, f"{name}.{bname}"
        )


def test_every_layer_class_is_covered():
    covered = {name for name, _, _ in LAYERS}
    layers = {
        n
        for n in nn.__all__
        if n[:1].isupper()
        and n
        not in (
            "Module",
            "Parameter",
            "Sequential",
            "ModuleList",
            "StateDictError",
            "IncompatibleKeys",
            "RemovableHandle",
            "CrossEntropyLoss",
            "NLLLoss",
            "MSELoss",
        )
    }
    assert layers <= covered, f"layers without a parity test: {sorted(layers - covered)}"


@pytest.mark.parametrize(
    "cls,kw",
    [("CrossEntropyLoss", dict(label_smoothing=0.1)), ("NLLLoss", dict(reduction="sum")), ("MSELoss", {})],
)
def test_loss_modules(cls, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    target = rng.integers(0, 4, 5) if cls != "MSELoss" else rng.standard_normal((5, 4)).astype(np.float32)
    ours = getattr(nn, cls)(**kw)(cs.tensor(x), cs.tensor(target))
    theirs = getattr(torch.nn, cls)(**kw)(torch.tensor(x), torch.tensor(target))
    assert_close(ours.numpy(), theirs.numpy(), np.float32, cls)
