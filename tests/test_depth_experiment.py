"""The degradation experiment: plain and residual twins differ only by the shortcuts; a short run
of `convscope experiment depth` prints the documented JSON and draws the figure."""

import os

import numpy as np
import pytest

import convscope as cs
from cli_run import last_json, run_cli
from convscope.experiments.depth import parse_depths
from convscope.models.resnet_cifar import CifarResNet


def test_plain_and_residual_twins_share_every_weight_shape():
    plain = CifarResNet(14, 10, 1, residual=False, widths=(4, 8, 8))
    res = CifarResNet(14, 10, 1, residual=True, widths=(4, 8, 8))
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in res.state_dict().items()
    }
    res.load_state_dict(plain.state_dict())
    x = cs.tensor(np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32))
    plain.eval(), res.eval()
    # same weights, different outputs: only the identity paths differ
    assert not np.allclose(plain(x).numpy(), res(x).numpy())
    block = plain.layer1[0]
    h = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(plain.relu(plain.bn1(plain.conv1(x))))))))
    np.testing.assert_allclose(block(plain.relu(plain.bn1(plain.conv1(x)))).numpy(), np.maximum(h.numpy(), 0))


def test_depths_must_be_6n_plus_2():
    assert parse_depths("8,20,56") == (8, 20, 56)
    for bad in ("8,21", "2", "x"):
        with pytest.raises(ValueError, match="--depths"):
            parse_depths(bad)


def test_short_depth_run_prints_results_and_figure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x=rng.integers(0, 256, (40, 1, 32, 32)).astype(np.uint8), y=np.arange(40) % 2)
    args = ["experiment", "depth", "--data", f"npz:{data}", "--depths", "8,14", "--epochs", "1"]
    args += ["--widths", "4,4,8", "--batch-size", "16"]
    code, out, _ = run_cli(args + ["--out", str(tmp_path), "--json"], capsys)
    assert code == 0
    report = last_json(out)
    assert [(r["family"], r["depth"]) for r in report["results"]] == [
        ("plain", 8),
        ("residual", 8),
        ("plain", 14),
        ("residual", 14),
    ]
    for r in report["results"]:
        assert set(r) == {"family", "depth", "final_train_loss", "final_train_accuracy", "test_accuracy"}
        assert r["final_train_loss"] > 0 and 0 <= r["test_accuracy"] <= 1
    assert report["figure"] == str(tmp_path / "depth.png") and os.path.getsize(report["figure"]) > 0
    code, _, err = run_cli(["experiment", "depth", "--depths", "9"], capsys)
    assert code == 2 and "6n+2" in err
