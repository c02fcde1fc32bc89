"""Fine-tuning (--weights, --freeze, --init gaussian), `convscope convert` and `explain scoremap`."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from cli_run import last_json, run_cli
from convscope import models
from convscope.checkpoint import load_checkpoint
from convscope.cli import main
from convscope.train.pretrained import file_sha256, gaussian_init


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "short"
    assert main(["train", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    return out


def test_weights_with_another_class_count_replace_the_classifier(tmp_path, capsys):
    cs.manual_seed(5)
    pre = models.create("simple", num_classes=5, in_channels=1, input_size=[8, 8])
    weights = tmp_path / "pre.pth"
    cs.save(pre, weights)
    out = tmp_path / "ft"
    code, _, err = run_cli(
        ["train", "--epochs", "1", "--out", str(out), "--no-progress", "--weights", str(weights)]
        + ["--freeze", "features.*", "--json"],
        capsys,
    )
    assert code == 0, err
    assert "classifier.fc2.weight has shape (5, 128)" in err and "(10, 128)" in err
    init = load_checkpoint(out / "last.npz").meta["init"]
    assert init["source"] == "weights" and init["reinitialised"] == ["classifier.fc2"]
    assert init["sha256"] == file_sha256(weights) and init["freeze"] == "features.*"
    trained = cs.load_model(out / "last.npz").state_dict()
    for key, value in pre.state_dict().items():
        if key.startswith("features."):  # frozen: exactly the file's values after training
            np.testing.assert_array_equal(trained[key].data, value.data)
        elif key == "classifier.fc1.weight":
            assert not np.array_equal(trained[key].data, value.data)


def test_frozen_batch_norm_keeps_its_running_statistics(tmp_path):
    from convscope.train import TrainConfig, Trainer

    cs.manual_seed(0)
    pre = models.create("resnet20", num_classes=10, in_channels=1)
    with cs.no_grad():  # some statistics to keep
        for m in pre.modules():
            if isinstance(m, cs.nn.BatchNorm2d):
                m.running_mean.data[...] = 0.1
                m.running_var.data[...] = 2.0
    weights = tmp_path / "pre.safetensors"
    cs.save(pre, weights)
    config = TrainConfig(model="resnet20", epochs=1, out=str(tmp_path / "run"), weights=str(weights))
    config.freeze = "layer1.*"
    Trainer(config, progress=False, log=lambda m: None).fit()
    after = load_checkpoint(tmp_path / "run" / "last.npz").model_state
    np.testing.assert_array_equal(after["layer1.0.bn1.running_mean"], pre.layer1[0].bn1.running_mean.data)
    np.testing.assert_array_equal(after["layer1.2.bn2.running_var"], pre.layer1[2].bn2.running_var.data)
    assert not np.array_equal(after["layer2.0.bn1.running_mean"], pre.layer2[0].bn1.running_mean.data)
    assert not np.array_equal(after["layer2.0.conv1.weight"], pre.layer2[0].conv1.weight.data)


def test_gaussian_init_and_its_flags(tmp_path, capsys):
    model = models.create("resnet20", num_classes=10)
    record = gaussian_init(model, 0.01, np.random.default_rng(0))
    assert record == {"source": "gaussian", "std": 0.01}
    w = model.layer3[0].conv2.weight.data
    assert w.dtype == np.float32 and abs(float(w.std()) - 0.01) < 0.0005 and abs(float(w.mean())) < 0.0005
    assert not model.fc.bias.data.any()
    assert model.bn1.weight.data.all()  # batch norm keeps its own initialisation
    code, _, err = run_cli(
        ["train", "--init", "gaussian", "--weights", "x.pth", "--out", str(tmp_path)], capsys
    )
    assert code == 1 and "choose one" in err
    code, _, err = run_cli(
        ["train", "--freeze", "nothing.*", "--epochs", "1", "--out", str(tmp_path / "f")], capsys
    )
    assert code == 1 and err.strip().splitlines()[-1].startswith("convscope train: error: --freeze")
    assert "matches no parameter; names look like features.conv1.weight" in err


def test_convert_run_checkpoint_to_torch_and_back(short_run, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pth = tmp_path / "w.pth"
    code, out, err = run_cli(["convert", str(short_run), str(pth), "--json"], capsys)
    assert code == 0, err
    state = torch.load(pth, weights_only=True)
    model = cs.load_model(short_run / "best.npz")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key].numpy(), value.data)
    assert last_json(out)["arrays"] == len(state)
    st = tmp_path / "w.safetensors"
    assert run_cli(["convert", str(pth), str(st)], capsys)[0] == 0
    fresh = models.create("simple", num_classes=10, in_channels=1, input_size=[8, 8])
    fresh.load_state_dict(cs.load(st))
    code, _, err = run_cli(["convert", str(pth), str(st)], capsys)
    assert code == 1 and "--force" in err


def test_explain_scoremap(short_run, tmp_path, capsys):
    from PIL import Image

    canvas = np.zeros((20, 28), dtype=np.uint8)
    canvas[4:12, 10:18] = 255
    image = tmp_path / "big.png"
    Image.fromarray(canvas).save(image)
    code, out, err = run_cli(
        ["explain", "scoremap", str(short_run), "--image", str(image), "--out", str(tmp_path), "--json"],
        capsys,
    )
    assert code == 0, err
    result = last_json(out)
    s = result["stride"]
    assert result["window"] == [8, 8] and s[0] >= 1
    assert np.array(result["map"]).shape == ((20 - 8) // s[0] + 1, (28 - 8) // s[1] + 1)
    assert (tmp_path / "scoremap_big.png").stat().st_size > 0
    code, _, err = run_cli(
        ["explain", "scoremap", str(short_run), "--image", str(image), "--size", "6x6"], capsys
    )
    assert code == 2 and "larger image" in err
