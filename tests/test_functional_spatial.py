"""Parity with torch.nn.functional for the spatial ops, through the tape: conv, pooling, pad, resize.

The kernel tests (tests/kernels/) sweep the kernels; these check the public functions
(argument handling, padding modes, 'same', unbatched input, 1-D conv) and their gradients,
plus independent float64 central-difference checks, on every backend (`backend` fixture).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convscope as cs
import convscope.nn.functional as F
from parity import assert_gradcheck, assert_parity

# every test runs under each kernel backend (reference in the slow tier, native in the native tier)
pytestmark = pytest.mark.usefixtures("backend")


def conv_case(rng, c_in, c_out, k, groups, n=2, size=(9, 8), dtype=np.float32):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c_in) + size).astype(dtype)
    w = (rng.standard_normal((c_out, c_in // groups, kh, kw)) / np.sqrt(c_in // groups * kh * kw)).astype(
        dtype
    )
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


CONV_CASES = [
    dict(k=3, stride=1, padding=1),
    dict(k=(2, 4), stride=(2, 1), padding=(1, 2)),
    dict(k=5, stride=3, padding=2, dilation=1),
    dict(k=3, stride=1, padding=3, dilation=3),
    dict(k=2, stride=2, padding=0, groups=2),
    dict(k=3, stride=1, padding="same", dilation=2),
    dict(k=4, stride=1, padding="same"),
    dict(k=3, stride=2, padding="valid", groups=4),
    dict(k=3, stride=1, padding=1, padding_mode="reflect"),
    dict(k=(3, 5), stride=2, padding=(1, 2), padding_mode="replicate"),
    dict(k=3, stride=1, padding=2, padding_mode="circular"),
    dict(k=1, stride=1, padding=0),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_parity(case, batch, bias):
    kw = dict(CONV_CASES[case])
    k, groups = kw.pop("k"), kw.pop("groups", 1)
    mode = kw.pop("padding_mode", "zeros")
    rng = np.random.default_rng(case * 10 + batch)
    x, w, b = conv_case(rng, 4, 8, k, groups, n=batch)

    def theirs(x, w, b):
        if mode == "zeros":
            return TF.conv2d(x, w, b, groups=groups, **kw)
        ph, pw = (kw["padding"],) * 2 if isinstance(kw["padding"], int) else kw["padding"]
        xp = TF.pad(x, (pw, pw, ph, ph), mode=mode)
        return TF.conv2d(xp, w, b, stride=kw["stride"], groups=groups)

    assert_parity(
        lambda x, w, b: F.conv2d(x, w, b, groups=groups, padding_mode=mode, **kw),
        theirs,
        [x, w, b if bias else None],
        multilinear=True,
    )


@pytest.mark.parametrize("stride,k,size", [(2, 3, (7, 8)), (3, 4, (10, 11)), (2, 2, (5, 5))])
def test_same_padding_beyond_pytorch_matches_tensorflow_rule(stride, k, size):
    rng = np.random.default_rng(stride)
    x, w, b = conv_case(rng, 2, 3, k, 1, size=size)

    def theirs(x, w, b):
        pads = []
        for n in size:  # TensorFlow: out = ceil(n/s), total pad split with the extra after
            out = -(-n // stride)
            total = max((out - 1) * stride + k - n, 0)
            pads.append((total // 2, total - total // 2))
        xp = TF.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        return TF.conv2d(xp, w, b, stride=stride)

    out = assert_parity(
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding="same"), theirs, [x, w, b], multilinear=True
    )
    assert out.shape[2:] == tuple(-(-n // stride) for n in size)


def test_conv2d_unbatched_and_conv1d():
    rng = np.random.default_rng(1)
    x, w, b = conv_case(rng, 3, 5, 3, 1, n=1)
    assert_parity(
        lambda x, w, b: F.conv2d(x, w, b, padding=1),
        lambda x, w, b: TF.conv2d(x, w, b, padding=1),
        [x[0], w, b],
        multilinear=True,
    )
    x1 = rng.standard_normal((2, 3, 17)).astype(np.float32)
    w1 = (rng.standard_normal((6, 3, 4)) / 4).astype(np.float32)
    for kw in (dict(stride=2, padding=1), dict(dilation=2, padding="same"), dict(padding=2)):
        assert_parity(
            lambda x, w, b, kw=kw: F.conv1d(x, w, b, **kw),
            lambda x, w, b, kw=kw: TF.conv1d(x, w, b, **kw),
            [x1, w1, rng.standard_normal(6).astype(np.float32)],
            multilinear=True,
        )


TRANSPOSE_CASES = [
    dict(stride=2, padding=0),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=3, padding=1, dilation=2, output_padding=2),
    dict(stride=1, padding=1, groups=2),
    dict(stride=(2, 1), padding=(0, 1), output_padding=(1, 0)),
]


@pytest.mark.parametrize("case", range(len(TRANSPOSE_CASES)))
def test_conv_transpose2d_parity(case):
    kw = TRANSPOSE_CASES[case]
    rng = np.random.default_rng(case)
    groups = kw.get("groups", 1)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = (rng.standard_normal((4, 6 // groups, 3, 3)) / 6).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    assert_parity(
        lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
        lambda x, w, b: TF.conv_transpose2d(x, w, b, **kw),
        [x, w, b],
        multilinear=True,
    )


POOL_CASES = [
    (lambda m: m.max_pool2d, dict(kernel_size=2)),
    (lambda m: m.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (lambda m: m.max_pool2d, dict(kernel_size=(2, 3), stride=1, dilation=2)),
    (lambda m: m.avg_pool2d, dict(kernel_size=2)),
    (
        lambda m: m.avg_pool2d,
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    ),
    (lambda m: m.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, count_include_pad=True)),
    (lambda m: m.adaptive_avg_pool2d, dict(output_size=1)),
    (lambda m: m.adaptive_avg_pool2d, dict(output_size=(3, 4))),
    (lambda m: m.adaptive_max_pool2d, dict(output_size=(2, 3))),
]


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_parity(case, dtype):
    fn, kw = POOL_CASES[case]
    x = np.random.default_rng(case).standard_normal((2, 3, 9, 11)).astype(dtype)
    assert_parity(lambda x: fn(F)(x, **kw), lambda x: fn(TF)(x, **kw), [x], multilinear=True)


def test_max_pool_return_indices_and_ties():
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)  # all tied: the first index wins
    out_c, idx_c = F.max_pool2d(cs.tensor(x, requires_grad=True), 2, return_indices=True)
    out_t, idx_t = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(idx_c.numpy(), idx_t.numpy())
    xc = cs.tensor(x, requires_grad=True)
    F.max_pool2d(xc, 2).sum().backward()
    assert xc.grad.numpy().sum() == 8 and (xc.grad.numpy()[0, 0, ::2, ::2] == 1).all()


PAD_CASES = [
    ((1, 2), "constant"),
    ((1, 1, 2, 0), "reflect"),
    ((2, 1, 1, 3), "replicate"),
    ((1, 2, 2, 1), "circular"),
    ((-1, 2, 0, -2), "constant"),
    ((1, 1, 1, 1, 1, 1), "constant"),
]


@pytest.mark.parametrize("pads,mode", PAD_CASES)
def test_pad_parity(pads, mode):
    x = np.random.default_rng(len(pads)).standard_normal((2, 3, 5, 6)).astype(np.float32)
    assert_parity(
        lambda x: F.pad(x, pads, mode=mode), lambda x: TF.pad(x, pads, mode=mode), [x], multilinear=True
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(scale_factor=2),
        dict(size=(7, 5)),
        dict(scale_factor=2, mode="bilinear"),
        dict(size=(9, 4), mode="bilinear", align_corners=True),
        dict(size=(3, 3), mode="bilinear", align_corners=False),
    ],
)
def test_interpolate_parity(kw):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    assert_parity(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), [x], multilinear=True)


GRADCHECKS = [
    (lambda x, w: F.conv2d(x, w, stride=2, padding=1), (1, 2, 5, 5), (3, 2, 3, 3)),
    (
        lambda x, w: F.conv2d(x, w, padding="same", dilation=2, padding_mode="reflect"),
        (1, 2, 6, 5),
        (2, 2, 2, 3),
    ),
    (lambda x, w: F.conv2d(x, w, groups=2), (2, 4, 4, 4), (2, 2, 2, 2)),
    (lambda x, w: F.conv1d(x, w, stride=2, padding=1), (2, 2, 7), (3, 2, 3)),
    (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
        (1, 2, 3, 3),
        (2, 3, 3, 3),
    ),
    (lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), (1, 2, 5, 6), None),
    (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), (1, 2, 5, 6), None),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (1, 2, 5, 7), None),
    (lambda x: F.adaptive_max_pool2d(x, (2, 2)), (1, 2, 5, 5), None),
    (lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), (1, 2, 4, 4), None),
    (lambda x: F.pad(x, (1, 2, 2, 1), mode="circular"), (1, 2, 4, 4), None),
    (lambda x: F.interpolate(x, size=(5, 7), mode="bilinear"), (1, 2, 3, 4), None),
    (lambda x: F.interpolate(x, scale_factor=2), (1, 2, 3, 3), None),
]


@pytest.mark.parametrize("i", range(len(GRADCHECKS)))
def test_spatial_gradcheck(i):
    op, xs, ws = GRADCHECKS[i]
    rng = np.random.default_rng(i)
    arrays = [rng.standard_normal(xs)] + ([rng.standard_normal(ws)] if ws else [])
    assert_gradcheck(op, arrays)
