"""The lecture's worked examples, computed by the layers and the shared geometry module."""

import pytest

import convscope as cs
from convscope import nn
from convscope.kernels import geometry as G


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_ten_5x5_filters_stride1_pad2_on_32x32x3():
    conv = nn.Conv2d(3, 10, kernel_size=5, stride=1, padding=2)
    out = conv(cs.randn(1, 3, 32, 32))
    assert out.shape == (1, 10, 32, 32)
    assert n_params(conv) == 760 == (5 * 5 * 3 + 1) * 10


def test_cs231n_demo_5x5x3_pad1_stride2_two_filters():
    conv = nn.Conv2d(3, 2, kernel_size=3, stride=2, padding=1)
    assert conv(cs.randn(1, 3, 5, 5)).shape == (1, 2, 3, 3)
    assert G.conv_output_size(5, 3, 2, 1) == 3


@pytest.mark.parametrize("size", [8, 32, 57, 224])
def test_parameter_count_independent_of_input_size(size):
    conv = nn.Conv2d(3, 10, kernel_size=5, padding=2)
    out = conv(cs.randn(1, 3, size, size))
    assert out.shape == (1, 10, size, size)
    assert n_params(conv) == 760


def test_output_size_formula_and_same_padding():
    # (W - F + 2P)/S + 1
    assert G.conv_output_size(227, 11, 4, 0) == 55  # AlexNet conv1
    assert G.conv_output_size(224, 11, 4, 2) == 55  # torchvision's variant
    assert G.conv_output_size(7, 3, 1, 0, dilation=2) == 3
    for n in range(1, 20):
        for s in (1, 2, 3):
            for k in (1, 2, 3, 4, 5):
                before, after = G.same_padding(n, k, s)
                assert G.conv_output_size(n, k, s, before, padding_after=after) == -(-n // s)
                assert after - before in (0, 1)


def test_receptive_field_of_stacked_3x3():
    rf = G.ReceptiveField()
    sizes = []
    for _ in range(3):
        rf = G.receptive_field_step(rf, 3, 1, 1)
        sizes.append(rf.size)
    assert sizes == [3, 5, 7]
    assert G.receptive_field_step(G.ReceptiveField(), 7, 1, 3).size == 7
    c = 64
    three = n_params(nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)]))
    one = n_params(nn.Conv2d(c, c, 7, padding=3, bias=False))
    assert (three, one) == (27 * c * c, 49 * c * c)


def test_filters_are_as_deep_as_their_input():
    conv = nn.Conv2d(3, 16, 5)
    assert conv.weight.shape == (16, 3, 5, 5)
    grouped = nn.Conv2d(8, 16, 3, groups=4)
    assert grouped.weight.shape == (16, 2, 3, 3)


def test_same_padding_beyond_pytorch_at_stride_2():
    conv = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding="same")
    for n in (7, 8, 31, 32):
        assert conv(cs.randn(1, 3, n, n)).shape == (1, 4, -(-n // 2), -(-n // 2))
