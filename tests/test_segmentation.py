"""Segmentation: mnist-seg (no leakage, masks from ink), segfolder, IoU by hand, U-Net upsampling,
and a short train / evaluate / predict run."""

import os

import numpy as np
import pytest

from cli_run import last_json, run_cli
from convscope import models
from convscope.data import DataError, load_dataset
from convscope.data.idx import load_idx_folder
from convscope.data.segmentation import compose_canvases, load_segfolder
from convscope.train.metrics import pixel_confusion, segmentation_report

MNIST = "/work/shared/data/mnist"
needs_mnist = pytest.mark.skipif(not os.path.isdir(MNIST), reason=f"the MNIST folder {MNIST} is missing")


def test_iou_matches_a_hand_computed_case():
    y = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    p = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = pixel_confusion(y, p, 3, ignore_index=255)
    report = segmentation_report(cm, ["a", "b", "c"])
    # labelled pixels: 7; correct: (0,0) (0,2) (0,3) (1,0) = 4
    assert report["pixels"] == 7 and report["pixel_accuracy"] == pytest.approx(4 / 7)
    # class 0: TP 1, FP 2 (pred 0 at (1,1), (1,3)), FN 1 -> 1/4; class 1: TP 2, FP 1, FN 1 -> 2/4;
    # class 2: TP 1, FP 0, FN 1 -> 1/2 (the ignored pixel predicted 2 counts for nothing)
    assert report["iou"] == pytest.approx([0.25, 0.5, 0.5])
    assert report["miou"] == pytest.approx((0.25 + 0.5 + 0.5) / 3)


def test_absent_class_is_left_out_of_the_mean():
    report = segmentation_report(pixel_confusion(np.array([0, 1]), np.array([0, 1]), 3), None)
    assert report["iou"] == [1.0, 1.0, None] and report["miou"] == 1.0


def test_canvases_hold_non_overlapping_digits_with_ink_masks():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(12, 28, 28)).astype(np.uint8)
    labels = np.arange(12) % 10
    x, masks, placed = compose_canvases(digits, labels, 30, seed=3)
    assert x.shape == (30, 1, 64, 64) and masks.shape == (30, 64, 64) and x.dtype == np.float32
    ink = np.rint(x[:, 0] * 255) >= 128
    assert np.array_equal(ink, masks > 0)  # mask = class + 1 exactly where the ink is >= 128
    counts = [len(np.unique(m[m > 0])) for m in masks]
    assert max(counts) <= 3 and min(counts) >= 1
    for n in range(30):  # boxes on one canvas never intersect
        boxes = placed[placed[:, 0] == n][:, 2:]
        for i in range(len(boxes)):
            for j in range(i):
                assert np.abs(boxes[i] - boxes[j]).max() >= 28
    again = compose_canvases(digits, labels, 30, seed=3)[0]
    assert np.array_equal(x, again)


@needs_mnist
def test_mnist_seg_never_reuses_a_test_digit_in_training():
    splits = load_dataset(f"mnist-seg:{MNIST}?train=300&test=100", seed=0)
    assert splits.task == "segment" and splits.train.x.shape == (300, 1, 64, 64)
    assert splits.classes[0] == "background" and len(splits.classes) == 11
    (digits,) = load_idx_folder(MNIST).values()
    raw = np.rint(digits.x[:, 0] * 255).astype(np.uint8)
    for ds in (splits.train, splits.test):  # the recorded placements are the real pixels
        for n, k, top, left in ds.placed[:50]:
            window = np.rint(ds.x[n, 0, top : top + 28, left : left + 28] * 255).astype(np.uint8)
            assert np.array_equal(window, raw[k])
            assert np.array_equal(ds.y[n, top : top + 28, left : left + 28] > 0, raw[k] >= 128)
            assert set(np.unique(ds.y[n, top : top + 28, left : left + 28])) <= {0, digits.y[k] + 1}
    train_used, test_used = set(splits.train.placed[:, 1]), set(splits.test.placed[:, 1])
    assert len(test_used) > 50 and not (train_used & test_used)
    again = load_dataset(f"mnist-seg:{MNIST}?train=300&test=100", seed=0)
    assert np.array_equal(again.test.x, splits.test.x)
    other = load_dataset(f"mnist-seg:{MNIST}?train=300&test=100", seed=1)
    assert not np.array_equal(other.test.x, splits.test.x)


def _write_segfolder(root, n=6, size=16):
    from PIL import Image

    for sub in ("images", "masks"):
        os.makedirs(root / sub, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[: size // 2] = 1
        mask[0, 0] = 255  # unlabeled
        img = (mask == 1).astype(np.uint8) * 200 + rng.integers(0, 40, (size, size)).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"s{i}.png")
        pal = Image.fromarray(mask, mode="P")
        pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        pal.save(root / "masks" / f"s{i}.png")


def test_segfolder_reads_palette_masks_and_ignore_index(tmp_path):
    _write_segfolder(tmp_path)
    splits = load_segfolder(str(tmp_path), test_split=0.3, seed=0)
    assert len(splits.train) == 4 and len(splits.test) == 2
    assert splits.classes == ["0", "1"] and splits.train.y[0, 0, 0] == 255
    assert splits.train.ignore_index == 255 and splits.train.x.shape[1:] == (1, 16, 16)
    os.remove(tmp_path / "masks" / "s3.png")
    with pytest.raises(DataError, match="has no mask"):
        load_segfolder(str(tmp_path))


@pytest.mark.parametrize("mode", ["transposed", "bilinear"])
def test_unet_upsampling_choices_keep_the_size(mode):
    import convscope

    model = models.create("unet", num_classes=3, in_channels=1, upsample=mode, base=4, depth=2)
    out = model(convscope.randn(2, 1, 16, 16))
    assert out.shape == (2, 3, 16, 16)
    kinds = {type(m).__name__ for m in model.upsample.modules()}
    assert ("ConvTranspose2d" in kinds) == (mode == "transposed") and ("Upsample" in kinds) == (
        mode == "bilinear"
    )
    with pytest.raises(ValueError, match="upsample must be"):
        models.create("unet", upsample="nearest")


@needs_mnist
def test_train_evaluate_predict_segmentation(tmp_path, capsys):
    spec = f"mnist-seg:{MNIST}?train=16&test=8"
    out = tmp_path / "seg"
    args = ["train", "--task", "segment", "--model", "unet", "--data", spec, "--epochs", "2"]
    args += ["--optimizer", "adam", "--batch-size", "8", "--upsample", "bilinear"]
    code, stdout, _ = run_cli(args + ["--out", str(out), "--no-progress", "--json"], capsys)
    assert code == 0
    result = last_json(stdout)
    assert result["task"] == "segment" and 0 <= result["test_miou"] <= 1
    assert set(result["test_iou"]) == {"background"} | {str(d) for d in range(10)}
    history = (out / "history.csv").read_text().splitlines()
    assert "test_miou" in history[0] and "test_iou_background" in history[0] and len(history) == 3
    from convscope.checkpoint import load_checkpoint

    best = load_checkpoint(out / "best.npz")
    assert best.meta["task"] == "segment" and best.model_config["upsample"] == "bilinear"
    scores = [row["test_miou"] for row in load_checkpoint(out / "last.npz").history]
    assert best.meta["train_state"]["best_accuracy"] == pytest.approx(max(scores))

    code, stdout, _ = run_cli(["evaluate", str(out / "best.npz"), "--json"], capsys)
    report = last_json(stdout)
    assert code == 0 and report["miou"] == pytest.approx(max(scores)) and len(report["iou"]) == 11

    from PIL import Image

    canvas = tmp_path / "canvas.png"
    Image.fromarray((load_dataset(spec).test.x[0, 0] * 255).astype(np.uint8)).save(canvas)
    code, stdout, _ = run_cli(
        ["predict", str(out / "best.npz"), str(canvas), "--out", str(tmp_path / "p"), "--json"], capsys
    )
    pred = last_json(stdout)["predictions"][0]
    assert code == 0 and sum(pred["pixels"].values()) == 64 * 64
    with Image.open(pred["overlay_png"]) as im:
        assert im.size == (256, 256) and im.mode == "RGB"


def test_segment_task_refuses_classification_data(capsys):
    code, _, err = run_cli(
        ["train", "--task", "segment", "--data", "digits", "--epochs", "1", "--no-progress"], capsys
    )
    assert code == 1 and "per-pixel masks" in err


def test_unet_gets_the_segmentation_defaults_that_flags_leave_unset():
    from convscope.models import train_defaults
    from convscope.train import TrainConfig

    recorded = train_defaults("unet", (1, 64, 64))
    assert recorded == {"optimizer": "adam", "lr": 2e-3, "epochs": 10}
    assert train_defaults("unet", (3, 128, 96)) == recorded  # any image size

    cfg = TrainConfig(model="unet").validate()
    assert cfg.apply_model_defaults((1, 64, 64)) == recorded
    assert (cfg.optimizer, cfg.lr, cfg.epochs, cfg.batch_size) == ("adam", 2e-3, 10, 32)

    cfg = TrainConfig(model="unet", epochs=2, lr=0.01).validate()
    assert cfg.apply_model_defaults((1, 64, 64)) == {"optimizer": "adam"}
    assert (cfg.optimizer, cfg.lr, cfg.epochs) == ("adam", 0.01, 2)

    # an explicit optimizer keeps its own default lr instead of the model's Adam one
    cfg = TrainConfig(model="unet", optimizer="sgd").validate()
    assert cfg.apply_model_defaults((1, 64, 64)) == {"epochs": 10}
    assert (cfg.optimizer, cfg.lr) == ("sgd", 0.05)

    cfg = TrainConfig(model="resnet20").validate()
    assert cfg.apply_model_defaults((3, 32, 32)) == {}
    assert (cfg.optimizer, cfg.lr, cfg.epochs, cfg.batch_size) == ("sgd", 0.05, 15, 32)
