"""convscope.explain: conv traces, model value traces with receptive fields, figures and the CLI.
conv2d sums through BLAS in an unknown order, so on arbitrary reals nothing is bit-identical to it:
exact equality is asserted on random inputs on a binary grid (every product and partial sum exact in
float32); continuous inputs get the rigorous bound |fl(sum) - sum| <= gamma_n * sum|terms| (Higham 3.1).
"""

import json
import re

import numpy as np
import pytest
from PIL import Image

import convscope
from cli_run import last_json, run_cli
from convscope.checkpoint import save_checkpoint
from convscope.explain import (
    conv_trace,
    demo_example,
    feature_map_grid,
    features_for_layers,
    filter_grid,
    format_trace,
    grid_shape,
    load_trace_inputs,
    random_example,
    trace_model_value,
)
from convscope.explain.figures import feature_map_figure, filter_figure, tile_axes
from convscope.nn import functional as F


def conv_ref(ex, dtype):
    x, w, b = (convscope.tensor(np.asarray(ex[k]), dtype=dtype) for k in ("x", "weight", "bias"))
    return F.conv2d(x[None], w, b, ex["stride"], ex["padding"], ex.get("dilation", 1)).data[0]


def sweep():
    rng = np.random.default_rng(7)
    kernels = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (1, 3), (3, 2), (5, 2)]
    for i in range(60):
        k, dilation = kernels[i % len(kernels)], 1 + (i % 7 == 0)
        extra = 4 * (dilation - 1)  # a dilated 5-tap kernel spans 9 pixels
        yield (
            i,
            int(rng.integers(1, 5)),
            int(rng.integers(6, 10)) + extra,
            int(rng.integers(6, 11)) + extra,
            int(rng.integers(1, 4)),
            k,
            (i % 3) + 1,
            [0, 1, 2, "same", (1, 2)][i % 5],
            dilation,
        )


@pytest.mark.parametrize("i,c_in,h,w,c_out,k,stride,padding,dilation", list(sweep()))
def test_trace_equals_conv2d_exactly_everywhere(i, c_in, h, w, c_out, k, stride, padding, dilation):
    rng = np.random.default_rng(i)  # multiples of 1/8 and 1/16: exact float32 arithmetic
    ex = {
        "x": (rng.integers(-16, 17, (c_in, h, w)) / 8).astype(np.float32),
        "weight": (rng.integers(-16, 17, (c_out, c_in) + k) / 16).astype(np.float32),
        "bias": (rng.integers(-8, 9, c_out) / 16).astype(np.float32),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    trace = conv_trace(**ex)
    out, ref32 = np.array(trace["output"]), conv_ref(ex, "float32")
    assert out.shape == ref32.shape == tuple(trace["output_shape"])
    np.testing.assert_array_equal(out.astype(np.float32), ref32)
    np.testing.assert_array_equal(out, conv_ref(ex, "float64"))
    positions = trace["positions"]
    np.testing.assert_array_equal(np.array([p["result"] for p in positions]).reshape(out.shape), out)
    assert all(p["sum"] + p["bias"] == p["result"] and len(p["channels"]) == c_in for p in positions)
    single = conv_trace(**ex, at=tuple(s - 1 for s in out.shape), include_output=False)
    assert single["positions"][0] == positions[-1] and single["output"] is None


@pytest.mark.parametrize("seed", range(8))
def test_trace_within_rounding_bound_on_continuous_inputs(seed):
    rng = np.random.default_rng(100 + seed)
    ex = random_example(seed, 3, 7, 8, 4, (3, 2), stride=1 + seed % 3, padding=["same", 1][seed % 2])
    ex.update({k: rng.standard_normal(ex[k].shape).astype(np.float32) for k in ("x", "weight", "bias")})
    trace = conv_trace(**ex, products=True)
    n = 3 * 3 * 2 + 1
    for dtype, u in (("float32", 2.0**-24), ("float64", 2.0**-53)):
        ref = conv_ref(ex, dtype)
        for p in trace["positions"]:
            mag = np.abs(p["products"]).sum() + abs(p["bias"])
            bound = (n * u / (1 - n * u) + 2 * n * 2.0**-53) * mag
            assert abs(ref[p["o"], p["y"], p["x"]] - p["result"]) <= bound


def test_demo_structure_and_a_hand_checked_value():
    ex, again = demo_example(), demo_example()
    assert all(np.array_equal(ex[k], again[k]) for k in ("x", "weight", "bias"))
    assert ex["x"].shape == (3, 5, 5) and set(np.unique(ex["x"])) <= {0, 1, 2}
    assert ex["weight"].shape == (2, 3, 3, 3) and set(np.unique(ex["weight"])) <= {-1, 0, 1}
    assert ex["bias"].tolist() == [1, 0] and ex["stride"] == 2 and ex["padding"] == 1
    trace = conv_trace(**ex)
    assert trace["output_shape"] == [2, 3, 3] and trace["padded_shape"] == [3, 7, 7]
    assert trace["padding"] == [[1, 1], [1, 1]] and len(trace["positions"]) == 18
    p = next(q for q in trace["positions"] if (q["o"], q["y"], q["x"]) == (1, 2, 1))
    assert p["window_padded"] == {"rows": [4, 7], "cols": [2, 5], "step": [1, 1]}
    assert p["window_input"]["rows"] == [3, 6] and p["window_input"]["rows_inside"] == [3, 5]
    np.testing.assert_array_equal(np.array(trace["output"]), conv_ref(ex, "float32"))
    # a value computed by hand
    x = np.array(
        [[[1, 2, 0], [0, 1, 3], [2, 2, 1]], [[0, 1, 1], [1, 0, 2], [3, 0, 1]]], np.float32
    )  # (2, 3, 3)
    w = np.array([[[[1, -1], [0, 2]], [[2, 0], [-1, 1]]]], np.float32)  # (1, 2, 2, 2)
    p = conv_trace(x, w, np.array([0.5], np.float32), at=(0, 1, 1))["positions"][0]
    # channel 0: window [[1,3],[2,1]] . [[1,-1],[0,2]] = 1 - 3 + 0 + 2 = 0
    # channel 1: window [[0,2],[0,1]] . [[2,0],[-1,1]] = 0 + 0 + 0 + 1 = 1
    assert p["channels"] == [0.0, 1.0] and p["sum"] == 1.0 and p["result"] == 1.5
    assert p["window_padded"]["rows"] == [1, 3] and p["window_padded"]["cols"] == [1, 3]


def test_format_trace_shows_the_arithmetic():
    ex = demo_example()
    trace = conv_trace(**ex, at=(1, 2, 2))
    text, p = format_trace(trace), trace["positions"][0]
    assert "out[1, 2, 2] = sum over c of <xp[c, 4:7, 4:7], w[1, c]> + b[1]" in text
    xp = np.pad(ex["x"], ((0, 0), (1, 1), (1, 1)))
    win, wt = xp[0, 4:7, 4:7].ravel(), ex["weight"][1, 0].ravel()
    term = lambda v: f"({int(v)})" if v < 0 else str(int(v))  # noqa: E731
    expected = " + ".join(f"{term(a)}*{term(b)}" for a, b in zip(win, wt, strict=True))
    assert f"  c=0: {expected} = {int(np.dot(win, wt))}" in text
    assert f"sum over channels: {' + '.join(term(v) for v in p['channels'])} = {int(p['sum'])}" in text
    assert "+ bias b[1] = 0" in text and f"  = {int(p['result'])}" in text
    assert "out[1] =" in text and "output volume 2x3x3" in text
    many = format_trace(conv_trace(**ex), max_positions=3)
    assert many.count("sum over c of") == 3 and "15 more values not shown" in many
    trace = conv_trace(**random_example(4, 2, 5, 6, 3, 3, 1, "same"))  # JSON round trip
    back = json.loads(json.dumps(trace))
    assert back == trace and format_trace(back) == format_trace(trace)


def test_load_trace_inputs(tmp_path):
    ex = demo_example()
    doc = dict(input=ex["x"].tolist(), weight=ex["weight"].tolist(), bias=[1, 0], stride=2, padding=1)
    (tmp_path / "t.json").write_text(json.dumps(doc))
    assert conv_trace(**load_trace_inputs(tmp_path / "t.json"))["output"] == conv_trace(**ex)["output"]
    np.savez(tmp_path / "t.npz", input=ex["x"], weight=ex["weight"], bias=ex["bias"], stride=2, padding=1)
    assert conv_trace(**load_trace_inputs(tmp_path / "t.npz"))["output"] == conv_trace(**ex)["output"]
    bad = {
        "channel": (dict(doc, weight=ex["weight"][:, :2].tolist()), "filters have 2 channels but"),
        "2d": (dict(doc, input=ex["x"][0].tolist()), "input must be (C_in, H, W)"),
        "bias": (dict(doc, bias=[1, 0, 3]), "bias must have one value per filter"),
        "missing": ({"input": doc["input"]}, "expected input (C, H, W), weight"),
        "ragged": (dict(doc, input=[[[1, 2], [3]]]), "ragged"),
        "big": (
            dict(doc, padding=0, input=np.zeros((3, 2, 2)).tolist()),
            "window 3x3 is larger than the padded input 2x2",
        ),
        "pad": (dict(doc, padding="full"), "padding must be"),
    }
    (tmp_path / "broken.json").write_text("{nope")
    np.save(tmp_path / "one.npy", ex["x"])
    bad.update(broken=(None, "not a readable JSON"), one=(None, "holds one array"), no=(None, "no such file"))
    for name, (content, error) in bad.items():
        path = tmp_path / (f"{name}.npy" if name == "one" else f"{name}.json")
        if content is not None:
            path.write_text(json.dumps(content))
        with pytest.raises(FileNotFoundError if name == "no" else ValueError, match=re.escape(error)):
            load_trace_inputs(path)
    with pytest.raises(ValueError, match="outside the output 2x3x3"):
        conv_trace(**ex, at=(2, 0, 0))
    # a .npy input volume with the filters (and biases) in .npy files of their own
    np.save(tmp_path / "w.npy", ex["weight"])
    np.save(tmp_path / "b.npy", np.asarray(ex["bias"]))
    from_npy = load_trace_inputs(tmp_path / "one.npy", tmp_path / "w.npy", tmp_path / "b.npy")
    assert conv_trace(**dict(from_npy, stride=2, padding=1))["output"] == conv_trace(**ex)["output"]


def dyadic_lenet(in_channels=1, seed=0):
    """LeNet-5 with weights on a binary grid: conv arithmetic in the model is exact."""
    model = convscope.models.create("lenet5", num_classes=4, in_channels=in_channels)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.integers(-8, 9, p.data.shape) / 16
    return model.eval()


def test_trace_model_value_matches_layer_receptive_field_and_errors():
    model = dyadic_lenet()
    x = (np.random.default_rng(1).integers(-8, 9, (1, 1, 28, 28)) / 8).astype(np.float32)
    with convscope.no_grad():
        f = model.features
        conv2_out = f.conv2(f.pool1(f.relu1(f.conv1(convscope.tensor(x))))).data[0]
    row = next(r for r in convscope.summary(model, "1x28x28").rows if r.name == "features.conv2")
    assert (row.rf[0].size, row.rf[0].jump) == (14, 2)
    for o, y, xx in [(0, 0, 0), (5, 3, 9), (15, 9, 4)]:
        res = trace_model_value(model, x, "features.conv2", (o, y, xx))
        assert res["value"] == res["layer_output"] == conv2_out[o, y, xx]
        assert res["trace"]["positions"][0]["o"] == o and res["layer_output_shape"] == [16, 10, 10]
        rf = res["receptive_field"]
        # conv2 row y <- pool1 rows y..y+4 <- conv1 rows 2y..2y+9 <- input rows 2y-2..2y+11
        assert rf["rows"] == [2 * y - 2, 2 * y + 12] and rf["cols"] == [2 * xx - 2, 2 * xx + 12]
        assert rf["rows_in_image"] == [max(2 * y - 2, 0), min(2 * y + 12, 28)]
        assert rf["padding_rows"] == [max(0, 2 - 2 * y), max(0, 2 * y + 12 - 28)]
    conv1 = trace_model_value(model, x, "features.conv1", (2, 0, 27))["receptive_field"]
    assert conv1["rows"] == [-2, 3] and conv1["cols"] == [25, 30] and conv1["padding_cols"] == [0, 2]
    names = "features.conv1, features.conv2"
    for layer, at, message in [
        ("conv9", (0, 0, 0), f"unknown layer 'conv9'.*{names}"),
        ("features.pool1", (0, 0, 0), f"is a MaxPool2d, not a Conv2d.*{names}"),
        ("features.conv2", (0, 10, 0), r"features.conv2 \(16x10x10\).*y < 10"),
    ]:
        with pytest.raises(ValueError, match=message):
            trace_model_value(model, x, layer, at)


def test_trace_model_value_on_a_trained_model():
    convscope.manual_seed(0)
    model = convscope.models.create("lenet5", in_channels=1, num_classes=3)
    opt = convscope.optim.SGD(model.parameters(), lr=0.05)
    data = np.random.default_rng(0).standard_normal((16, 1, 28, 28)).astype(np.float32)
    labels = np.arange(16) % 3
    before = model.features.conv2.weight.data.copy()
    for _ in range(3):  # a few SGD steps: a trained, not a hand-made, model
        opt.zero_grad()
        F.cross_entropy(model(convscope.tensor(data)), convscope.tensor(labels)).backward()
        opt.step()
    assert not np.array_equal(before, model.features.conv2.weight.data)
    res = trace_model_value(model, data[:1], "features.conv2", (3, 4, 4))
    assert res["difference"] <= res["error_bound"] < 1e-4
    assert res["layer_output"] == pytest.approx(res["value"], rel=1e-5, abs=1e-6)


def colour_pixels(path):
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB")).astype(int)
    return int(((np.abs(a[..., 0] - a[..., 1]) > 8) | (np.abs(a[..., 1] - a[..., 2]) > 8)).sum()), a.shape


def test_grid_shape_feature_and_filter_figures(tmp_path):
    assert [grid_shape(n) for n in (1, 2, 3, 5, 6, 16, 17, 64)] == [
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
        (2, 3),
        (4, 4),
        (4, 5),
        (8, 8),
    ]
    shapes = {n: grid_shape(n) for n in range(1, 80)}
    assert all(r * c >= n > (r - 1) * c and abs(r - c) <= 1 for n, (r, c) in shapes.items())
    with pytest.raises(ValueError):
        grid_shape(0)
    model = dyadic_lenet(in_channels=3)
    acts = features_for_layers(model, np.random.default_rng(0).random((1, 3, 28, 28)))
    assert [(k, v.shape) for k, v in acts.items()] == [
        ("features.conv1", (6, 28, 28)),
        ("features.conv2", (16, 10, 10)),
    ]
    for shared in (True, False):
        fig = feature_map_figure(acts["features.conv1"], "conv1", shared_scale=shared)
        assert [t.get_title() for t in tile_axes(fig)] == [f"channel {i}" for i in range(6)]
        assert len(fig.axes) == 6 + (1 if shared else 6)  # tiles + colour bars
        text = fig._suptitle.get_text()
        assert ("shared by all tiles" in text) == shared and ("own min..max" in text) != shared
    fig = feature_map_figure(np.ones((5, 4, 4)), "five", True)
    assert len(tile_axes(fig)) == 5 and sum(not a.get_visible() for a in fig.axes) == 1
    shape = colour_pixels(feature_map_grid(acts["features.conv2"], tmp_path / "f.png", "conv2"))[1]
    assert 400 <= shape[1] <= 2000 and 300 <= shape[0] <= 2000
    rgb = filter_figure(model.features.conv1.weight.data, "filters")
    assert [t.images[0].get_array().shape for t in tile_axes(rgb)] == [(5, 5, 3)] * 6
    assert "min-max normalised to [0, 1]" in rgb._suptitle.get_text()
    gray = filter_figure(model.features.conv2.weight.data, "gray")
    assert len(tile_axes(gray)) == 16 and tile_axes(gray)[0].images[0].get_array().shape == (5, 5)
    assert "mean over its 6 input channels" in gray._suptitle.get_text()
    assert colour_pixels(filter_grid(model.features.conv1.weight.data, tmp_path / "rgb.png", "rgb"))[0] > 50
    assert colour_pixels(filter_grid(model.features.conv2.weight.data, tmp_path / "g.png", "g"))[0] == 0
    for layer, message in (
        ("nope", "unknown layer.*'nope'.*features.conv1"),
        ("classifier.fc1", "not a feature map"),
    ):
        with pytest.raises(ValueError, match=message):
            features_for_layers(model, np.zeros((1, 3, 28, 28)), [layer])
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, img = (folder := tmp_path_factory.mktemp("explain")) / "lenet.npz", folder / "img.png"
    pre = {"normalizer": {"mean": [0.5] * 3, "std": [0.25] * 3}, "input_shape": [3, 28, 28]}
    save_checkpoint(path, dyadic_lenet(3, seed=3), meta={"classes": list("abcd"), "preprocessing": pre})
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(img)
    return str(path), str(img)


def run(capsys, command):
    code, out, err = run_cli(command.split(), capsys)
    doc = last_json(out) if "--json" in command and code == 0 else None
    return code, out, err, doc


def test_cli_conv_demo_and_errors(capsys, tmp_path):
    code, out, err, doc = run(capsys, "explain conv --at 1,2,2 --json")
    assert code == 0 and "out[1, 2, 2] = sum over c of <xp[c, 4:7, 4:7], w[1, c]> + b[1]" in err  # --json
    assert doc["positions"][0]["result"] == conv_ref(demo_example(), "float32")[1, 2, 2]
    for bad in ("1,2", "a,b,c", "1,-2,0"):
        code, out, err, _ = run(capsys, f"explain conv --at {bad}")
        assert code == 2 and "--at must be three non-negative integers" in err
    code, out, err, doc = run(capsys, "explain conv --random 5 --stride 2 --padding same --kernel 2x3 --json")
    assert code == 0 and doc["filter_shape"] == [2, 3, 2, 3] and doc["output_shape"] == [2, 3, 3]
    (tmp_path / "in.json").write_text(json.dumps({"input": [[[1, 2], [3, 4]]], "weight": [[[[1]]]]}))
    code, out, err, _ = run(capsys, f"explain conv --input {tmp_path / 'in.json'}")
    assert code == 0 and "c=0: 4*1 = 4" in out
    code, out, err, _ = run(capsys, "explain conv --at 9,0,0")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "outside the output 2x3x3" in err
    code, out, err, _ = run(capsys, "explain conv --layer x")
    assert code == 2 and "need a checkpoint" in err


def test_cli_conv_in_a_checkpoint(checkpoint, capsys, tmp_path):
    ckpt, img = checkpoint
    code, out, err, doc = run(
        capsys,
        f"explain conv {ckpt} --image {img} --layer features.conv2 --at 0,0,0 "
        f"--out {tmp_path / 'rf.png'} --json",
    )
    assert code == 0 and "resized" in err and "from 40x30 to the model's input 28x28" in err
    assert "receptive field in the input image: 14x14 pixels" in err and "rows -2..11" in err
    assert doc["receptive_field"]["rows"] == [-2, 12] and doc["difference"] <= doc["error_bound"]
    assert colour_pixels(tmp_path / "rf.png")[1][1] > 300
    code, out, err, _ = run(capsys, f"explain conv {ckpt} --image {img} --layer nope --at 0,0,0")
    assert code == 1 and "features.conv1, features.conv2" in err and len(err.strip().splitlines()) == 1
    code, out, err, _ = run(capsys, f"explain conv {ckpt} --image {img}")
    assert code == 2 and "conv layers: features.conv1, features.conv2" in err


def test_cli_features(checkpoint, capsys, tmp_path):
    ckpt, img = checkpoint
    code, out, err, doc = run(capsys, f"explain features {ckpt} --image {img} --out {tmp_path / 'f'} --json")
    assert len(out.strip().splitlines()) == 1  # --json: stdout holds the JSON object only
    paths = [line for line in err.strip().splitlines() if line.endswith(".png") and " " not in line]
    assert code == 0 and [p.rsplit("/", 1)[-1] for p in paths] == [
        "features_features.conv1.png",
        "features_features.conv2.png",
        "filters_features.conv1.png",
    ]
    assert sorted(doc["files"].values()) == sorted(paths)
    assert colour_pixels(tmp_path / "f" / "filters_features.conv1.png")[0] > 50
    code, out, err, _ = run(
        capsys,
        f"explain features {ckpt} --image {img} --out {tmp_path / 'g'} "
        f"--layers features.pool1 --per-tile-scale",
    )
    assert code == 0 and out.splitlines()[0].endswith("features_features.pool1.png")
    code, out, err, _ = run(capsys, f"explain features {ckpt} --image {img} --layers bogus")
    assert code == 1 and "unknown layer" in err and "features.conv1" in err
