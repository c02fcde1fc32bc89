"""convscope.summary: published MACs and receptive fields, branches, users' own models, the CLI."""

import json

import numpy as np
import pytest

import convscope as cs
from convscope import models, nn
from convscope.cli import main


@pytest.fixture(scope="module")
def imagenet_summaries():
    out = {}
    for name in ("vgg16", "resnet18", "resnet50"):
        out[name] = cs.summary(models.create(name, num_classes=1000), "3x224x224")
    return out


def test_published_macs(imagenet_summaries):
    assert round(imagenet_summaries["resnet18"].total_macs / 1e9, 2) == 1.81
    assert round(imagenet_summaries["vgg16"].total_macs / 1e9, 2) == 15.47


def test_published_receptive_fields_and_layer_counts(imagenet_summaries):
    assert imagenet_summaries["vgg16"].to_dict()["receptive_field"] == 212
    assert imagenet_summaries["resnet50"].to_dict()["receptive_field"] == 427
    assert imagenet_summaries["vgg16"].layers_counted == 16
    assert imagenet_summaries["resnet18"].layers_counted == 18
    assert imagenet_summaries["resnet50"].layers_counted == 50
    r20 = cs.summary(models.create("resnet20"), (3, 32, 32))
    assert r20.to_dict()["receptive_field"] == 81 and r20.layers_counted == 20
    assert r20.total_params == 269_722


def test_params_in_summary_match_model(imagenet_summaries):
    s = imagenet_summaries["vgg16"]
    assert s.total_params == 138_357_544 == sum(r.params for r in s.rows)
    assert s.total_macs == sum(r.macs for r in s.rows)


def test_lecture_rows_stacked_3x3():
    m = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)])
    d = cs.summary(m, "8x32x32").to_dict()
    assert [row["receptive_field"] for row in d["layers"]] == [3, 5, 7]
    assert [row["params"] for row in d["layers"]] == [(3 * 3 * 8 + 1) * 8] * 3
    assert all(row["output_shape"] == [8, 32, 32] for row in d["layers"])
    assert d["layers"][0]["macs"] == 32 * 32 * 8 * (3 * 3 * 8)


class TwoBranch(nn.Module):
    """A user's own branching net: a 3x3 path and a wider 7x7 + dilated 3x3 path meet in an add."""

    def __init__(self, pool=nn.AvgPool2d):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.narrow = nn.Conv2d(4, 4, 3, padding=1)
        self.wide = nn.Sequential(nn.Conv2d(4, 4, 7, padding=3), nn.Conv2d(4, 4, 3, padding=2, dilation=2))
        self.pool = pool(2)
        self.head = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        x = self.narrow(x) + self.wide(x)
        return self.head(self.pool(x))


def empirical_rf(model, size):
    """Receptive field measured by back-propagating from the centre output pixel (positive weights)."""
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    x = cs.ones(1, model.stem.in_channels, size, size, requires_grad=True)
    out = model(x)
    h, w = out.shape[2] // 2, out.shape[3] // 2
    g = np.zeros(out.shape, dtype=np.float32)
    g[0, 0, h, w] = 1
    out.backward(cs.tensor(g))
    rows = np.flatnonzero(np.abs(x.grad.numpy()[0]).sum(axis=(0, 2)) > 0)
    return rows.max() - rows.min() + 1


def test_receptive_field_through_branches_matches_gradient_support():
    model = TwoBranch()
    d = cs.summary(model, "1x64x64").to_dict()
    assert d["receptive_field"] == empirical_rf(TwoBranch(), 64) == 18
    narrow_only = 3 + 2 + 1 + 2 * 2  # stem, narrow, 2x2 pool, head at jump 2
    assert d["receptive_field"] > narrow_only  # the wide branch dominates: the max over paths
    by_name = {row["name"]: row for row in d["layers"]}
    assert by_name["narrow"]["receptive_field"] == 5


def test_resnet_block_rows_show_merged_field():
    d = cs.summary(models.create("resnet20"), "3x32x32").to_dict()
    names = [row["name"] for row in d["layers"]]
    assert "layer1.0" in names  # the block's residual add gets its own row
    block = next(r for r in d["layers"] if r["name"] == "layer3.2")
    assert block["receptive_field"] == 81 and block["stride"] == 4


def test_summary_of_checkpoint_and_json_cli(tmp_path, capsys):
    from convscope.checkpoint import save_checkpoint

    model = models.create("lenet5", in_channels=1)
    save_checkpoint(tmp_path / "m.npz", model, meta={"preprocessing": {"input_shape": [1, 28, 28]}})
    assert main(["summary", str(tmp_path / "m.npz"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["total_params"] == 61_706 and doc["layers_counted"] == 5
    assert set(doc) >= {
        "layers",
        "total_params",
        "trainable_params",
        "total_macs",
        "receptive_field",
        "layers_counted",
    }
    assert set(doc["layers"][0]) == {
        "name",
        "type",
        "output_shape",
        "params",
        "macs",
        "receptive_field",
        "stride",
        "padding",
    }
    assert doc["layers"][0] == {
        "name": "features.conv1",
        "type": "Conv2d",
        "output_shape": [6, 28, 28],
        "params": 156,
        "macs": 28 * 28 * 6 * 25,
        "receptive_field": 5,
        "stride": 1,
        "padding": 2,
    }


def test_too_small_input_names_the_layer():
    with pytest.raises(
        ValueError, match=r"too small for vgg16: the feature map vanishes at layer features\.30"
    ):
        cs.summary(models.create("vgg16"), "3x16x16")


def test_cli_errors(capsys):
    assert main(["summary", "vgg16", "--input", "3x16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: convscope summary") and "CxHxW" in err and "Traceback" not in err
    assert main(["summary", "vgg17"]) == 1
    assert "valid names: alexnet" in capsys.readouterr().err


def test_frozen_model_still_traced():
    m = models.create("lenet5", in_channels=1).requires_grad_(False)
    s = cs.summary(m, "1x28x28")
    assert s.trainable_params == 0 and s.total_params == 61_706 and s.total_macs == 416_520


def test_field_of_blocks_and_strongest_cell_on_a_resnet():
    # Grad-CAM's registry layer for ResNets is a container ('layer3'): it has a field too
    model = models.create("resnet20")
    s = cs.summary(model, "3x32x32")
    block = next(r for r in s.rows if r.name == "layer3.2")
    assert s.field_of("layer3") == block.rf and s.field_of("layer3")[0].size == 81
    with pytest.raises(ValueError, match="no receptive field.*modules with one: conv1"):
        s.field_of("fc")
    from convscope.explain import strongest_cell

    cell = strongest_cell(model, cs.randn(1, 3, 32, 32))
    assert cell["layer"] == "layer3" and cell["rf_size"] == (81.0, 81.0) and cell["jump"] == (4.0, 4.0)
    i, j = cell["cell"]
    lo, hi = block.rf[0].span(i)
    assert cell["box"][0] == max(0, int(np.ceil(lo))) and cell["box"][2] == min(31, int(np.floor(hi)))
