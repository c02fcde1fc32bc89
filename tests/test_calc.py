"""`convscope calc`: the lecture's hand calculations, checked against the lecture's numbers and PyTorch."""

import numpy as np
import pytest

from cli_run import last_json, run_cli
from convscope.analysis.calc import CalcUsageError, conv_calc, parse_hwc, parse_layer, pool_calc, stack_calc
from convscope.kernels import geometry as G


def fits_exactly(n, k, s, pb, pa, d=1):
    """Independent of the module under test: the windows tile the padded input."""
    return (n + pb + pa - (d * (k - 1) + 1)) % s == 0


# ---- conv -------------------------------------------------------------------------------------------


def test_lecture_32x32x3_ten_5x5_filters_stride1_pad2():
    r = conv_calc((32, 32, 3), filters=10, kernel=5, stride=1, padding=2)
    assert r["output"] == [10, 32, 32]
    assert r["params"] == 760 == (5 * 5 * 3 + 1) * 10 and r["weights"] == 750 and r["biases"] == 10
    assert r["macs"] == 768_000 == 32 * 32 * 10 * 75
    assert r["output_volume"] == 10_240 and r["exact"]
    text = "\n".join(r["lines"])
    assert "(32 - 5 + 2*2)/1 + 1 = 32" in text
    assert "(5*5*3 + 1)*10 = 760" in text
    assert "32*32*10*75 = 768,000" in text
    assert "does not depend on the input size" in text


@pytest.mark.parametrize("size", [8, 57, 224])
def test_parameter_count_does_not_depend_on_input_size(size):
    assert conv_calc((size, size, 3), 10, 5, 1, 2)["params"] == 760


def test_cs231n_demo_5x5x3_pad1_stride2_two_3x3_filters():
    r = conv_calc("5x5x3", filters=2, kernel=3, stride=2, padding=1)
    assert r["output"] == [2, 3, 3] and r["params"] == 56 and r["exact"]
    assert "(5 - 3 + 2*1)/2 = 2 is exact" in "\n".join(r["lines"])


def test_alexnet_227_is_exact():
    r = conv_calc("227x227x3", filters=96, kernel=11, stride=4, padding=0)
    assert r["output"] == [96, 55, 55] and r["exact"] and r["suggestions"] == []
    assert r["params"] == (11 * 11 * 3 + 1) * 96
    assert "(227 - 11 + 2*0)/4 = 54 is exact" in "\n".join(r["lines"])


def test_alexnet_224_is_not_an_integer_and_suggestions_all_fit():
    r = conv_calc("224x224x3", filters=96, kernel=11, stride=4, padding=0)
    text = "\n".join(r["lines"])
    assert r["output"] == [96, 54, 54] and not r["exact"]
    assert "(224 - 11 + 2*0)/4 = 53.25 is not an integer" in text
    assert "drops the last 1 row(s) and column(s)" in text
    assert r["axes"]["W"]["dropped_input"] == 1 == (224 - 11) % 4
    inputs = {f["input"] for f in r["suggestions"] if f["change"] == "input"}
    assert {223, 227} <= inputs
    assert any(f["change"] == "padding" for f in r["suggestions"])
    assert any(f["change"] == "stride" for f in r["suggestions"])
    for f in r["suggestions"]:
        (pb, pa), n, s = f["padding"], f["input"], f["stride"]
        assert fits_exactly(n, 11, s, pb, pa), f
        assert f["output"] == (n + pb + pa - 11) // s + 1
        assert f["text"] in text


def test_torchvision_224_pad2_leaves_only_padding_uncovered():
    r = conv_calc("224x224x3", filters=64, kernel=11, stride=4, padding=2)
    assert r["output"][1:] == [55, 55] and not r["exact"]
    assert r["axes"]["H"]["dropped_input"] == 0
    assert "only padding is left over" in "\n".join(r["lines"])


@pytest.mark.parametrize("n", [224, 225, 7, 32])
def test_same_padding_at_stride_2_gives_ceil(n):
    r = conv_calc((n, n, 3), filters=8, kernel=3, stride=2, padding="same")
    assert r["output"] == [8, -(-n // 2), -(-n // 2)]
    assert r["padding"][0] == list(G.same_padding(n, 3, 2))
    assert "padding 'same'" in r["lines"][1]


def test_dilation_groups_no_bias_and_rectangles():
    r = conv_calc("7x7x4", filters=6, kernel=3, dilation=2, groups=2, bias=False)
    assert r["output"] == [6, 3, 3] and r["params"] == 3 * 3 * 2 * 6
    text = "\n".join(r["lines"])
    assert "F_eff = d*(F - 1) + 1 = 2*(3 - 1) + 1 = 5" in text and "(no bias)" in text and "(4/2)" in text
    r = conv_calc("28x28", filters=6, kernel="5x3", padding="valid")
    assert r["input"] == [1, 28, 28] and r["output"] == [6, 24, 26] and r["params"] == (5 * 3 + 1) * 6


def test_conv_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for _ in range(40):
        c, k, s, p, d = (int(v) for v in rng.integers([1, 1, 1, 0, 1], [4, 6, 4, 3, 3]))
        n = int(rng.integers(d * (k - 1) + 1, 30))
        g = int(rng.choice([1, c]))
        conv = torch.nn.Conv2d(c, 2 * g, k, s, p, d, groups=g)
        shape = conv(torch.zeros(1, c, n, n + 3)).shape
        r = conv_calc((n, n + 3, c), 2 * g, k, s, p, d, groups=g)
        assert r["output"] == [shape[1], shape[2], shape[3]]
        assert r["params"] == sum(t.numel() for t in conv.parameters())


# ---- pool -------------------------------------------------------------------------------------------


def test_pool_224x224x64_2x2_stride2():
    r = pool_calc("224x224x64", kernel=2, stride=2)
    assert r["output"] == [64, 112, 112] and r["params"] == 0 and r["kept"] == 0.25
    text = "\n".join(r["lines"])
    assert "(224 - 2 + 2*0)/2 + 1 = 112" in text and "depth stays 64" in text and "= 25%" in text
    assert pool_calc("224x224x64", kernel=2)["output"] == [64, 112, 112]  # stride defaults to the kernel


def test_pool_ceil_mode_and_pytorch():
    r = pool_calc("7x7x8", kernel=2, stride=2)
    assert r["output"] == [8, 3, 3] and "ceil_mode=True would give 4x4" in "\n".join(r["lines"])
    assert pool_calc("7x7x8", 2, 2, ceil_mode=True)["output"] == [8, 4, 4]
    torch = pytest.importorskip("torch")
    for n, k, s, p in [(7, 2, 2, 0), (5, 2, 2, 1), (6, 3, 2, 1), (55, 3, 2, 0), (13, 3, 3, 1)]:
        for ceil in (False, True):
            shape = torch.nn.functional.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, ceil_mode=ceil).shape
            assert pool_calc((n, n, 1), k, s, p, ceil_mode=ceil)["output"][1:] == list(shape[2:])


# ---- stack ------------------------------------------------------------------------------------------


def test_three_3x3_vs_one_7x7():
    r = stack_calc(["3x3", "3x3", "3x3"], vs="7x7", channels=64)
    assert [row["rf"] for row in r["stack"]["layers"]] == [[3, 3], [5, 5], [7, 7]]
    assert r["stack"]["rf"] == r["vs"]["rf"] == [7, 7] and r["equal_rf"]
    assert r["stack"]["params"] == 27 * 64**2 == 110_592 and r["vs"]["params"] == 49 * 64**2 == 200_704
    assert (r["stack"]["nonlinearities"], r["vs"]["nonlinearities"]) == (3, 1)
    assert r["stack"]["macs_per_position"] == 110_592
    text = "\n".join(r["lines"])
    assert "3 -> 5 -> 7 vs 7: equal" in text and "biases excluded" in text
    assert "3*(3*3*C*C) = 27*C^2 = 27*64^2 = 110,592" in text and "49*C^2 = 49*64^2 = 200,704" in text


def test_stack_strides_pools_and_specs():
    r = stack_calc("3x3/2,3x3,pool2x2/2", vs=None, channels=8)
    assert [row["rf"] for row in r["stack"]["layers"]] == [[3, 3], [7, 7], [9, 9]]
    assert r["stack"]["params"] == 18 * 64 and r["stack"]["nonlinearities"] == 2 and r["vs"] is None
    assert stack_calc("3x3,3x3", strides=[2, 1], vs="5x5")["stack"]["rf"] == [7, 7]
    assert parse_layer("pool3x3/2") == {
        "spec": "pool3x3/2",
        "kind": "pool",
        "kernel": [3, 3],
        "stride": [2, 2],
    }
    assert parse_layer("1x1")["stride"] == [1, 1]


# ---- parsing ----------------------------------------------------------------------------------------


def test_parse_hwc():
    assert parse_hwc("32x32x3") == (32, 32, 3) and parse_hwc("28x28") == (28, 28, 1)
    assert parse_hwc(" 224 × 224 × 3 ") == (224, 224, 3)


@pytest.mark.parametrize("bad", ["32x32x", "abc", "0x3x3", "-3x3x3", "3x3x3x3", "", "3.5x3x3"])
def test_parse_hwc_rejects_malformed(bad):
    with pytest.raises(CalcUsageError, match="input"):
        parse_hwc(bad)


@pytest.mark.parametrize("bad", ["3x3x3", "x3", "0x0", "pool", "3x3/0"])
def test_parse_layer_rejects_malformed(bad):
    with pytest.raises(CalcUsageError):
        parse_layer(bad)


def test_usage_errors_are_value_errors():
    assert issubclass(CalcUsageError, ValueError)
    with pytest.raises(CalcUsageError, match="does not fit"):
        conv_calc("5x5x3", 1, kernel=7)
    with pytest.raises(CalcUsageError, match="groups"):
        conv_calc("8x8x3", 10, kernel=3, groups=2)


# ---- CLI --------------------------------------------------------------------------------------------


def test_cli_conv_lecture_example(capsys):
    code, out, err = run_cli(
        [
            "calc",
            "conv",
            "--input",
            "3x32x32",
            "--filters",
            "10",
            "--kernel",
            "5",
            "--stride",
            "1",
            "--padding",
            "2",
        ],
        capsys,
    )
    assert code == 0 and err == ""
    assert "(32 - 5 + 2*2)/1 + 1 = 32" in out and "= 760" in out and "768,000" in out


def test_cli_json_has_the_numbers(capsys):
    code, out, _ = run_cli(
        [
            "calc",
            "conv",
            "--input",
            "3x224x224",
            "--filters",
            "96",
            "--kernel",
            "11",
            "--stride",
            "4",
            "--json",
        ],
        capsys,
    )
    data = last_json(out)
    assert code == 0 and data["output"] == [96, 54, 54] and data["params"] == 34_944 and not data["exact"]
    assert {227, 223} <= {f["input"] for f in data["suggestions"]}
    code, out, _ = run_cli(
        ["calc", "pool", "--input", "64x224x224", "--kernel", "2", "--stride", "2", "--json"], capsys
    )
    assert last_json(out)["output"] == [64, 112, 112]
    code, out, _ = run_cli(
        ["calc", "stack", "3x3,3x3,3x3", "--vs", "7x7", "--channels", "64", "--json"], capsys
    )
    data = last_json(out)
    assert code == 0 and data["stack"]["params"] == 110_592 and data["vs"]["params"] == 200_704


@pytest.mark.parametrize(
    "argv",
    [
        ["conv", "--input", "32x32x", "--filters", "10", "--kernel", "5"],
        ["conv", "--input", "abc", "--filters", "10", "--kernel", "5"],
        ["pool", "--input", "0x3x3"],
        ["stack", "3x3,,3x3"],
    ],
)
def test_cli_malformed_input_is_a_one_line_usage_error(argv, capsys):
    code, out, err = run_cli(["calc"] + argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"usage: convscope calc {argv[0]}")
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"convscope calc {argv[0]}: error:")
