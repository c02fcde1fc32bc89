"""Bad input gets a clear ValueError/TypeError naming the layer, what was expected and what was got."""

import numpy as np
import pytest

import convscope as cs
import convscope.nn.functional as F
from convscope import nn


def test_channel_mismatch_message():
    conv = nn.Conv2d(3, 16, kernel_size=3)
    with pytest.raises(ValueError) as err:
        conv(cs.randn(8, 1, 28, 28))
    assert str(err.value) == (
        "Conv2d(3, 16, kernel_size=3) expects 3 input channels, got 1 in input of shape (8, 1, 28, 28)"
    )


@pytest.mark.parametrize(
    "layer,x,pattern",
    [
        (nn.Conv2d(3, 4, 3), cs.randn(3, 8), r"Conv2d\(3, 4, kernel_size=3\) expects a 3-D or 4-D input"),
        (nn.MaxPool2d(2), cs.randn(2, 2, 2, 2, 2), r"MaxPool2d.*expects a 3-D or 4-D input .*5-D"),
        (nn.BatchNorm2d(4), cs.randn(2, 4), r"BatchNorm2d\(4\) expects a 4-D input"),
        (nn.Linear(10, 2), cs.randn(2, 3, 4, 4), r"expects 10 input features.*flatten"),
        (nn.Conv1d(2, 4, 3), cs.randn(1, 2, 3, 3, 3), r"Conv1d.*expects a 2-D or 3-D input"),
    ],
)
def test_wrong_dimensions(layer, x, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer(x)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"window 5x5 is larger than the padded input 4x4"):
        nn.Conv2d(1, 1, 5, padding=1)(cs.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"window 3x3 is larger than the padded input 2x2"):
        nn.MaxPool2d(3)(cs.randn(1, 1, 2, 2))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(stride=0), "stride must be positive"),
        (dict(kernel_size=0), "kernel_size must be positive"),
        (dict(dilation=-1), "dilation must be positive"),
        (dict(padding=-1), "padding must be non-negative"),
        (dict(padding="full"), "'valid' or 'same'"),
        (dict(groups=3), "groups=3 must divide in_channels=4"),
        (dict(padding_mode="mirror"), "padding_mode must be one of"),
    ],
)
def test_bad_conv_arguments(kwargs, pattern):
    args = dict(in_channels=4, out_channels=8, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        nn.Conv2d(**args)


def test_bad_pool_and_functional_arguments():
    with pytest.raises(ValueError, match="stride must be positive"):
        nn.MaxPool2d(2, stride=0)
    with pytest.raises(ValueError, match="at most half the kernel"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="groups=3 must divide the 8 output channels"):
        F.conv2d(cs.randn(1, 3, 5, 5), cs.randn(8, 1, 3, 3), groups=3)
    with pytest.raises(TypeError, match="convscope Tensor"):
        F.conv2d(np.zeros((1, 1, 3, 3)), cs.randn(1, 1, 3, 3))


def test_nan_and_inf_reaching_a_loss():
    logits = cs.tensor([[0.0, float("nan")], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"cross_entropy: input contains 1 non-finite value\(s\) \(NaN\)"):
        F.cross_entropy(logits, cs.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"mse_loss: input contains .*inf"):
        F.mse_loss(cs.tensor([float("inf")]), cs.tensor([0.0]))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"target labels must be in \[0, 2\] for 3 classes, got \[3, 7\]"):
        F.cross_entropy(cs.randn(4, 3), cs.tensor([0, 3, 7, 1]))
    with pytest.raises(ValueError, match=r"must be in \[0, 2\].*got \[-1\]"):
        F.cross_entropy(cs.randn(2, 3), cs.tensor([-1, 0]))
    with pytest.raises(ValueError, match="does not match input"):
        F.cross_entropy(cs.randn(4, 3), cs.tensor([0, 1]))


def test_dtype_mismatch_and_non_tensor():
    with pytest.raises(TypeError, match="input dtype float64 does not match weight dtype float32"):
        nn.Linear(3, 2)(cs.randn(1, 3, dtype=cs.float64))
    with pytest.raises(TypeError, match="wrap arrays with convscope.tensor"):
        nn.ReLU()(np.zeros(3))


def test_batch_norm_single_value_per_channel():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(cs.randn(1, 3))
