"""Grad-CAM, Grad-CAM++ and saliency: localisation on a synthetic task, a torch oracle, defaults, CLI."""

import json
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

import convscope
from convscope import models, nn
from convscope.cli import main
from convscope.explain import overlay
from convscope.explain.gradcam import explain_heatmap, grad_cam, grad_cam_plus_plus, saliency, strongest_cell
from convscope.nn import functional as F

SIZE, OBJ = 32, 8


def make_shapes(n, rng):
    """(n, 1, 32, 32) images of N(0, 0.3) noise; class 0 adds a filled 8x8 square, class 1 an 8x8
    plus (arms 2 px wide), both at a random place with a random contrast in [0.5, 1]; class 2 is
    noise only. Boxes (n, 4) are inclusive (y0, x0, y1, x1), -1 for class 2."""
    x = rng.normal(0, 0.3, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, 3, n)
    boxes = np.full((n, 4), -1)
    for i in np.flatnonzero(y < 2):
        shape = np.ones((OBJ, OBJ), np.float32)
        if y[i] == 1:
            shape[:] = 0
            shape[3:5, :] = shape[:, 3:5] = 1
        r, c = rng.integers(0, SIZE - OBJ + 1, 2)
        x[i, 0, r : r + OBJ, c : c + OBJ] += shape * rng.uniform(0.5, 1.0)
        boxes[i] = (r, c, r + OBJ - 1, c + OBJ - 1)
    return x, y, boxes


def small_cnn():
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(8, 16, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(16, 16, 3, padding=1)),
                ("relu3", nn.ReLU()),
                ("gap", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(16, 3)),
            ]
        )
    )


@pytest.fixture(scope="module")
def shapes_model():
    """The small CNN after 600 SGD steps (about 11 s on 2 cores) and 300 held-out images.

    Why SGD and a zero head: softmax ignores a map added to every class's evidence, so a logit
    (what Grad-CAM explains) may say 'plus' as 'less square, less background', with no peak at
    the plus. The cross-entropy gradient sums to zero over classes, so SGD from zero keeps the head
    zero-sum: each position's evidence is centred (with Adam or a random head, Grad-CAM found the
    plus in 0-60%). A background class needs a plus detector; random contrast hides brightness."""
    convscope.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y, _ = make_shapes(2000, rng)
    model = small_cnn()
    model.fc.weight.data[...], model.fc.bias.data[...] = 0, 0
    opt = convscope.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(600):
        idx = rng.integers(0, len(x), 64)
        loss = F.cross_entropy(model(convscope.tensor(x[idx])), convscope.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt, bt = make_shapes(300, rng)
    return model, xt, yt, bt


def _hit_rate(fn, x, y, boxes, margin=0):
    """Fraction of object images whose heatmap argmax lies in the object's box (+ margin px)."""
    hits = []
    for i in np.flatnonzero(y < 2):
        heat = fn(x[i : i + 1])
        r, c = np.unravel_index(int(np.argmax(heat)), heat.shape)
        y0, x0, y1, x1 = boxes[i]
        hits.append(y0 - margin <= r <= y1 + margin and x0 - margin <= c <= x1 + margin)
    return float(np.mean(hits)), len(hits)


def test_the_model_learned_the_task(shapes_model):
    model, x, y, _ = shapes_model
    with convscope.no_grad():
        accuracy = (model(convscope.tensor(x)).data.argmax(1) == y).mean()
    assert accuracy >= 0.97


# Measured (seed 0, 199 object images; chance is 64/1024 = 6%), margin 0 px / 2 px around the 8x8
# box: Grad-CAM 98.0% / 99.5%, Grad-CAM++ 97.5% / 99.5%, saliency 85.4% / 100% (input gradients
# peak on the object's edges, just outside it).
@pytest.mark.parametrize(
    "method,margin,threshold", [("gradcam", 0, 0.90), ("gradcam++", 0, 0.90), ("saliency", 2, 0.90)]
)
def test_heatmap_argmax_falls_on_the_object(shapes_model, method, margin, threshold):
    model, x, y, boxes = shapes_model
    fns = {
        "gradcam": lambda im: grad_cam(model, im, "conv3"),
        "gradcam++": lambda im: grad_cam_plus_plus(model, im, "conv3"),
        "saliency": lambda im: saliency(model, im),
    }
    rate, n = _hit_rate(fns[method], x, y, boxes, margin)
    assert n >= 100
    assert rate >= threshold, f"{method}: argmax inside the object box for {100 * rate:.1f}% of {n} images"


def test_strongest_cell_receptive_field(shapes_model):
    model, x, y, boxes = shapes_model
    inside = []
    for i in np.flatnonzero(y < 2)[:20]:
        cell = strongest_cell(model, x[i : i + 1], "conv3")
        r, c = cell["cell"]
        # by hand: conv3 sees 18x18 pixels, jump 4, centre of cell 0 at 1.5 -> [4r - 7, 4r + 10]
        assert cell["box_unclipped"] == (4 * r - 7, 4 * c - 7, 4 * r + 10, 4 * c + 10)
        assert cell["box"] == (max(0, 4 * r - 7), max(0, 4 * c - 7), min(31, 4 * r + 10), min(31, 4 * c + 10))
        cy, cx = (boxes[i, 0] + boxes[i, 2]) / 2, (boxes[i, 1] + boxes[i, 3]) / 2
        y0, x0, y1, x1 = cell["box"]
        inside.append(y0 <= cy <= y1 and x0 <= cx <= x1)
    assert np.mean(inside) >= 0.9


# ----------------------------------------------------------------- the formula against torch
def _tiny_pair(seed):
    torch = pytest.importorskip("torch")
    convscope.manual_seed(seed)
    ours, theirs = (
        lib.Sequential(
            lib.Conv2d(2, 4, 3, padding=1),
            lib.ReLU(),
            lib.MaxPool2d(2),
            lib.Conv2d(4, 5, 3),
            lib.ReLU(),
            lib.Flatten(),
            lib.Linear(45, 3),
        )
        for lib in (nn, torch.nn)
    )  # 1x2x10x10 -> 10x10 -> 5x5 -> 3x3 -> 45 -> 3
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    return torch, ours, theirs


def _torch_heatmap(torch, model, x, index, c, method):
    """Grad-CAM / Grad-CAM++ / saliency written out in torch (the oracle)."""
    acts = {}

    def keep(module, inputs, output):
        output.retain_grad()
        acts["a"] = output

    xt = torch.tensor(x, requires_grad=True)
    with model[index].register_forward_hook(keep):
        model(xt)[0, c].backward()
    if method == "saliency":
        m = xt.grad.abs().amax(dim=1)[0]
        return (m / m.max()).detach().numpy()
    a, g = acts["a"][0].detach(), acts["a"].grad[0]
    if method == "gradcam":
        w = g.mean(dim=(1, 2))
    else:
        denom = 2 * g**2 + a.sum(dim=(1, 2), keepdim=True) * g**3
        alpha = torch.where(denom != 0, g**2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
        w = (alpha * torch.relu(g)).sum(dim=(1, 2))
    cam = torch.relu((w[:, None, None] * a).sum(0))
    up = torch.nn.functional.interpolate(
        cam[None, None], size=x.shape[2:], mode="bilinear", align_corners=False
    )[0, 0]
    return (up / up.max()).numpy() if up.max() > 0 else up.numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "saliency"])
def test_matches_torch_oracle(seed, method):
    torch, ours, theirs = _tiny_pair(seed)
    x = np.random.default_rng(seed).normal(size=(1, 2, 10, 10)).astype(np.float32)
    for name, index in (("3", 3), ("4", 4)):  # the second conv and its ReLU
        for c in range(3):
            got = explain_heatmap(ours, x, method, name, c)
            want = _torch_heatmap(torch, theirs, x, index, c, method)
            assert got["heatmap"].shape == (10, 10) and got["heatmap"].dtype == np.float32
            np.testing.assert_allclose(got["heatmap"], want, rtol=1e-4, atol=2e-5)


def test_gradcam_before_global_pooling_is_cam():
    """conv -> GAP -> linear: Grad-CAM's weights are W[c] / (h w), so the map is Zhou et al.'s CAM."""
    convscope.manual_seed(3)
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(1, 6, 3)),
                ("gap", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(6, 4)),
            ]
        )
    )
    x = np.random.default_rng(3).normal(size=(1, 1, 9, 9)).astype(np.float32)
    with convscope.no_grad():
        a = model.conv(convscope.tensor(x)).data[0]  # (6, 7, 7)
    for c in range(4):
        cam = np.maximum(np.tensordot(model.fc.weight.data[c], a, axes=1), 0)
        got = explain_heatmap(model, x, "gradcam", "conv", c)["cam"]
        np.testing.assert_allclose(got, cam / cam.max() if cam.max() > 0 else cam, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------- defaults
def _net_with_1x1_last_conv():
    convscope.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 4, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(4, 8, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("head", nn.Conv2d(8, 3, 4)),
                ("flatten", nn.Flatten()),
            ]
        )
    )  # 16 -> 8 -> 4 -> 1x1


def test_default_layer_registry_and_last_conv():
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    model = models.create("simple", num_classes=4, in_channels=1, input_size=(16, 16))
    assert explain_heatmap(model, x)["layer"] == models.model_info("simple").gradcam_layer
    net = _net_with_1x1_last_conv()
    out = explain_heatmap(net, x)
    assert out["layer"] == "conv2" and out["cam"].shape == (8, 8)
    assert explain_heatmap(net, x, target_layer=net.conv1)["layer"] == "conv1"


def test_bad_arguments_raise_value_error():
    net = _net_with_1x1_last_conv()
    x = np.zeros((1, 1, 16, 16), np.float32)
    cases = [
        (lambda: grad_cam(net, x, "conv9"), "valid names: conv1, relu1"),
        (lambda: grad_cam(net, x, nn.Conv2d(1, 1, 1)), "not a submodule"),
        (lambda: grad_cam(net, np.zeros((2, 1, 16, 16), np.float32)), r"\(1, C, H, W\)"),  # batch 2
        (lambda: saliency(net, np.zeros((1, 16, 16), np.float32)), r"\(1, C, H, W\)"),  # 3-D
        (lambda: grad_cam(net, x, class_idx=3), r"0\.\.2"),
        (lambda: grad_cam(net, x, "flatten"), "feature map"),
        (lambda: explain_heatmap(net, x, "lime"), "method"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_range_shape_and_no_side_effects():
    net = _net_with_1x1_last_conv()
    net.add_module("drop", nn.Dropout(0.5))
    net.train()
    modes = []
    net.conv2.register_forward_hook(lambda m, i, o: modes.append(m.training))
    preset = np.full(net.conv1.weight.shape, 7.0, np.float32)
    net.conv1.weight.grad = convscope.tensor(preset.copy())
    x = convscope.tensor(np.random.default_rng(1).random((1, 1, 16, 16), dtype=np.float32))
    for heat in (grad_cam(net, x), grad_cam_plus_plus(net, x), saliency(net, x)):
        assert heat.shape == (16, 16) and heat.dtype == np.float32
        assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert modes and not any(modes)  # eval mode during the call
    assert all(m.training for m in net.modules())  # and train mode restored after
    np.testing.assert_array_equal(net.conv1.weight.grad.data, preset)
    assert all(p.grad is None for n, p in net.named_parameters() if n != "conv1.weight")
    assert x.grad is None and all(p.requires_grad for p in net.parameters())


def test_all_zero_map_stays_zero():
    net = _net_with_1x1_last_conv()
    net.head.weight.data[...] = 0  # every class score ignores the features
    x = np.random.default_rng(2).random((1, 1, 16, 16), dtype=np.float32)
    for method in ("gradcam", "gradcam++", "saliency"):
        heat = explain_heatmap(net, x, method)["heatmap"]
        assert np.isfinite(heat).all() and not heat.any()


# ------------------------------------------------------------------------ overlay and CLI
def test_overlay_figure_has_three_panels(tmp_path):
    rng = np.random.default_rng(0)
    fig = overlay.build_heatmap_figure(rng.random((20, 24, 3)), rng.random((20, 24)), "t", box=(2, 3, 9, 12))
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3 and [ax.get_title() for ax in images[:3]] == ["input", "heatmap", "overlay"]
    assert any(ax.get_ylabel() == "relevance (0-1)" for ax in fig.axes)
    assert len(images[2].patches) == 1 and images[2].get_legend() is not None
    overlay._plt().close(fig)
    with pytest.raises(ValueError, match="heatmap"):
        overlay.save_heatmap_overlay(np.zeros((8, 8)), np.zeros((7, 8)), tmp_path / "x.png")


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("heat")
    assert main(["train", "--epochs", "1", "--out", str(root / "run"), "--no-progress"]) == 0
    image = (load_digits().images[3] * 255 / 16).astype(np.uint8)  # a '3', 8x8
    Image.fromarray(image).resize((40, 40)).convert("RGB").save(root / "three.png")
    return root


def test_cli_heatmap(digits_ckpt, capsys, monkeypatch):
    real, built = overlay.build_heatmap_figure, []
    monkeypatch.setattr(
        overlay, "build_heatmap_figure", lambda *a, **k: built.append(real(*a, **k)) or built[-1]
    )
    code = main(
        [
            "explain",
            "heatmap",
            str(digits_ckpt / "run"),
            "--image",
            str(digits_ckpt / "three.png"),
            "--layer",
            "features.relu2",
            "--box",
            "--out",
            str(digits_ckpt / "out"),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    png = digits_ckpt / "out" / "heatmap_gradcam_three.png"
    assert result["png"] == str(png) and str(png) in err and "layer: features.relu2" in err
    assert "resized" in err and result["resized_from"] == [40, 40]
    assert 0 <= result["class_index"] < 10 and 0 < result["probability"] <= 1
    with Image.open(png) as im:
        assert 800 <= im.size[0] <= 1600 and 300 <= im.size[1] <= 700
        assert np.asarray(im.convert("RGB")).std() > 20  # not a blank canvas
    assert len([ax for ax in built[0].axes if ax.images]) == 3
    assert result["strongest_cell"]["layer"] == "features.relu2"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--class", "10"], "valid indices are 0..9"),
        (["--layer", "nope"], "valid names: features, features.conv1"),
        (["--method", "saliency", "--box"], "--box needs a target layer"),
    ],
)
def test_cli_heatmap_errors(digits_ckpt, capsys, extra, message):
    code = main(
        [
            "explain",
            "heatmap",
            str(digits_ckpt / "run"),
            "--image",
            str(digits_ckpt / "three.png"),
            "--out",
            str(digits_ckpt / "bad"),
        ]
        + extra
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not (digits_ckpt / "bad").exists()
