"""Time series: the .ts/.tsv reader on files written here, padding and z-normalisation, the 1-D
models in summary, a short fcn1d run and its class activation map; aeon's shipped sets when
aeon is installed."""

import os

import numpy as np
import pytest

from cli_run import last_json, run_cli
from convscope import models
from convscope.analysis import summary
from convscope.data import DataError, load_dataset
from convscope.data.ucr import AEON_CLASSIFICATION_SETS, aeon_data_folder, read_ts

HEADER = "# a comment\n@problemName Toy\n@timeStamps false\n@univariate {uni}\n@equalLength {eq}\n"


def _write_ts(folder, name, split, rows, uni=True, labels="a b"):
    eq = len({len(r[0][0]) for r in rows}) == 1
    text = HEADER.format(uni=str(uni).lower(), eq=str(eq).lower())
    text += f"@classLabel true {labels}\n@data\n"
    for channels, label in rows:
        text += ":".join(",".join(str(v) for v in c) for c in channels) + f":{label}\n"
    os.makedirs(folder, exist_ok=True)
    (folder / f"{name}_{split}.ts").write_text(text)


def _toy(tmp_path, n=12, length=20, seed=0):
    """Two classes: a bump early (a) or late (b), with noise."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / "Toy"
    for split in ("TRAIN", "TEST"):
        rows = []
        for i in range(n):
            label = "ab"[i % 2]
            series = rng.normal(0, 0.1, length)
            centre = 5 if label == "a" else 14
            series[centre - 2 : centre + 2] += 3.0
            rows.append(([series.round(4)], label))
        _write_ts(folder, "Toy", split, rows)
    return folder


def test_ts_reader_univariate_znormalised(tmp_path):
    folder = tmp_path / "Uni"
    _write_ts(folder, "Uni", "TRAIN", [([[1, 2, 3, 4]], "b"), ([[2, 2, 2, 8]], "a")])
    _write_ts(folder, "Uni", "TEST", [([[0, 0, 1, 1]], "a")])
    splits = load_dataset(f"ucr:{folder}")
    x, y = splits.train.x, splits.train.y
    assert x.shape == (2, 1, 4) and x.dtype == np.float32 and list(y) == [1, 0]
    assert splits.classes == ["a", "b"] and splits.normalize is False
    expected = (np.array([1, 2, 3, 4]) - 2.5) / np.std([1, 2, 3, 4])
    np.testing.assert_allclose(x[0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(x.mean(axis=2), 0, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=2), 1, rtol=1e-5)


def test_ts_reader_multivariate_variable_length_padding(tmp_path):
    folder = tmp_path / "Multi"
    rows = [([[1, 2, 3], [3, 2, 1]], "1"), ([[5, 6, 7, 8, 9], [1, 1, 2, 2, 3]], "2")]
    _write_ts(folder, "Multi", "TRAIN", rows, uni=False, labels="1 2")
    _write_ts(folder, "Multi", "TEST", rows[:1], uni=False, labels="1 2")
    edge = load_dataset(f"ucr:{folder}?pad=edge")
    assert edge.train.x.shape == (2, 2, 5) and edge.test.x.shape == (1, 2, 5)
    first = edge.train.x[0]  # length 3 padded to 5 with its last (z-normalised) value
    np.testing.assert_allclose(first[:, 3:], first[:, 2:3].repeat(2, axis=1))
    assert "padded to 5 (edge)" in edge.note
    zero = load_dataset(f"ucr:{folder}")  # the default
    np.testing.assert_array_equal(zero.train.x[0, :, 3:], 0)
    np.testing.assert_allclose(zero.train.x[0, :, :3], first[:, :3])
    with pytest.raises(DataError, match="pad=edge or pad=zero"):
        load_dataset(f"ucr:{folder}?pad=mean")


def test_ts_reader_errors(tmp_path):
    bad = tmp_path / "bad.ts"
    bad.write_text("@problemName x\n1,2,3:a\n")
    with pytest.raises(DataError, match="no @data"):
        read_ts(str(bad))
    bad.write_text("@data\n1,2,3:4,5,6:a\n1,2,3:a\n")
    with pytest.raises(DataError, match="1 dimensions; expected 2"):
        read_ts(str(bad))
    with pytest.raises(DataError, match="not a set aeon ships"):
        load_dataset("ucr:NoSuchArchiveSet")


def test_tsv_reader(tmp_path):
    folder = tmp_path / "T"
    os.makedirs(folder)
    (folder / "T_TRAIN.tsv").write_text("1\t0.0\t1.0\t2.0\n2\t3.0\t1.0\tNaN\n")
    (folder / "T_TEST.tsv").write_text("2\t1.0\t1.0\t5.0\n")
    splits = load_dataset(f"ucr:{folder}")
    assert splits.train.x.shape == (2, 1, 3) and list(splits.train.y) == [0, 1]
    np.testing.assert_allclose(splits.train.x[1, 0], [1, -1, 0], rtol=1e-6)  # NaN tail: zero pad


@pytest.mark.parametrize("name, rf", [("fcn1d", 14), ("resnet1d", 40)])
def test_summary_of_1d_models(name, rf, capsys):
    result = summary(models.create(name, num_classes=2), "1x150")
    assert result.input_size == (1, 150) and result.output_shape == (2,)
    # 'same' convolutions: k=8,5,3 per block, one block (fcn) or three (resnet) on the path
    assert result.to_dict()["receptive_field"] == rf
    conv = next(r for r in result.rows if r.type == "Conv1d")
    assert (
        conv.output_shape == ((128, 150) if name == "fcn1d" else (64, 150)) and conv.macs == conv.params * 150
    )
    code, out, _ = run_cli(["summary", name, "--input", "1x64"], capsys)
    assert code == 0 and "on a 1x64 input" in out and "time steps" in out
    code, _, err = run_cli(["summary", name, "--input", "1x32x32"], capsys)
    assert code == 2 and "CxL" in err


def test_fcn1d_trains_and_explains_a_toy_set(tmp_path, capsys):
    folder = _toy(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--model", "fcn1d", "--data", f"ucr:{folder}", "--epochs", "8", "--optimizer", "adam"]
    args += ["--batch-size", "4", "--out", str(out), "--no-progress", "--json"]
    code, stdout, _ = run_cli(args, capsys)
    result = last_json(stdout)
    assert code == 0 and result["task"] == "classify" and result["best_accuracy"] >= 0.9
    code, stdout, _ = run_cli(
        ["explain", "heatmap", str(out / "best.npz"), "--data", f"ucr:{folder}", "--index", "1"]
        + ["--out", str(tmp_path / "cam"), "--json"],
        capsys,
    )
    report = last_json(stdout)
    cam = np.array(report["cam"])
    assert code == 0 and os.path.getsize(report["png"]) > 0 and cam.shape == (20,)
    assert cam.max() == pytest.approx(1.0) and cam.min() >= 0
    code, _, err = run_cli(
        ["explain", "heatmap", str(out / "best.npz"), "--data", f"ucr:{folder}", "--index", "99"], capsys
    )
    assert code == 2 and "out of range" in err


@pytest.mark.skipif(aeon_data_folder() is None, reason="aeon (convscope[timeseries]) is not installed")
@pytest.mark.parametrize("name", AEON_CLASSIFICATION_SETS)
def test_every_aeon_classification_set_loads(name):
    splits = load_dataset(f"ucr:{name}")
    assert len(splits.train) > 0 and len(splits.test) > 0 and splits.train.x.ndim == 3
    assert np.isfinite(splits.train.x).all() and splits.num_classes >= 2


@pytest.mark.slow
@pytest.mark.skipif(aeon_data_folder() is None, reason="aeon (convscope[timeseries]) is not installed")
@pytest.mark.parametrize("name, epochs, target", [("GunPoint", 150, 0.98), ("ItalyPowerDemand", 150, 0.95)])
def test_fcn1d_reaches_the_issue_targets_on_shipped_sets(name, epochs, target, tmp_path):
    from convscope.train import TrainConfig, Trainer

    config = TrainConfig(
        data=f"ucr:{name}", model="fcn1d", epochs=epochs, batch_size=16, optimizer="adam", out=str(tmp_path)
    )
    result = Trainer(config, progress=False, log=lambda m: None).fit()
    assert result["test_accuracy"] >= target


def test_series_models_record_the_papers_training_settings_for_any_series_shape():
    from convscope.models import train_defaults
    from convscope.train import TrainConfig

    for name in ("fcn1d", "resnet1d"):
        for shape in ((1, 150), (12, 29)):  # univariate and multivariate, any length
            assert train_defaults(name, shape) == {
                "optimizer": "adam",
                "lr": 1e-3,
                "batch_size": 16,
                "epochs": 150,
            }
    assert train_defaults("fcn1d", (1, 28, 28)) == {}  # keyed to (C, L) inputs only
    cfg = TrainConfig(model="fcn1d", epochs=3).validate()
    assert cfg.apply_model_defaults((1, 150)) == {"optimizer": "adam", "lr": 1e-3, "batch_size": 16}
    assert (cfg.epochs, cfg.weight_decay) == (3, 5e-4)


def test_a_config_used_before_its_model_defaults_are_filled_says_so():
    from convscope.train import TrainConfig
    from convscope.train.optim_factory import make_optimizer

    with pytest.raises(ValueError, match="TrainConfig.lr is unset; call apply_model_defaults"):
        make_optimizer(TrainConfig().validate(), [])
