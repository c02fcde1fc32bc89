"""The training tool: the default run, exact resume, the NaN stop, Ctrl-C, evaluate/predict and bad input."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_run import last_json, run_cli
from convscope.checkpoint import load_checkpoint
from convscope.cli import main
from convscope.data.errors import DataError
from convscope.train import TrainConfig, Trainer, TrainingDiverged


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The README's main job: `convscope train` with its defaults (digits + simple CNN)."""
    out = tmp_path_factory.mktemp("runs") / "default"
    code = main(["train", "--out", str(out), "--no-progress", "--json"])
    assert code == 0
    return out


def test_default_train_reaches_97_percent(digits_run):
    ckpt = load_checkpoint(digits_run / "last.npz")
    history = ckpt.history
    assert len(history) == 15 and history[-1]["test_accuracy"] >= 0.97
    assert ckpt.model_name == "simple" and ckpt.meta["data"]["spec"] == "digits"
    for name in ("last.npz", "best.npz", "history.csv", "history.json", "curve.png"):
        assert (digits_run / name).stat().st_size > 0
    csv_lines = (digits_run / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_accuracy,test_loss,test_accuracy")
    assert len(csv_lines) == 1 + len(history)
    from PIL import Image

    with Image.open(digits_run / "curve.png") as im:
        assert im.size[0] > 600 and im.size[1] > 300


def test_train_json_has_required_keys(tmp_path, capsys):
    code, out, err = run_cli(
        ["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress", "--json"], capsys
    )
    assert code == 0
    result = last_json(out)
    for key in ("test_accuracy", "checkpoint", "epochs", "seconds"):
        assert key in result
    assert result["epochs"] == 1 and os.path.exists(result["checkpoint"])
    assert "held out a stratified 20% (360 images)" in err


def weights(path):
    return load_checkpoint(path).model_state


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_equals_uninterrupted_run(tmp_path):
    # the simple CNN has dropout and the run augments, so this also checks that the random
    # generator's state and the per-batch augmentation streams are restored
    cfg = dict(epochs=4, batch_size=64, augment="crop+flip", crop_padding=1)
    Trainer(TrainConfig(out=str(tmp_path / "full"), **cfg), progress=False).fit()
    part = Trainer(TrainConfig(out=str(tmp_path / "part"), **cfg), progress=False)
    original = part._train_epoch

    def stop_in_epoch_3(epoch, start):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(epoch, start)

    part._train_epoch = stop_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    assert load_checkpoint(tmp_path / "part" / "last.npz").meta["train_state"]["epoch"] == 2
    result = Trainer(TrainConfig(out=str(tmp_path / "part"), **cfg), progress=False).fit(resume=True)
    assert result["epochs"] == 4
    assert_same_weights(weights(tmp_path / "full" / "last.npz"), weights(tmp_path / "part" / "last.npz"))
    h_full = load_checkpoint(tmp_path / "full" / "last.npz").history
    h_part = load_checkpoint(tmp_path / "part" / "last.npz").history
    assert [h["test_loss"] for h in h_full] == [h["test_loss"] for h in h_part]


def _interrupt_at_step_30_then_resume(tmp_path, interrupt, expected_state):
    """Train 2 epochs of 23 batches; ``interrupt(step)`` runs the 30th optimizer step (epoch 2,
    batch 7) and interrupts it. Checks the saved (epoch, batch) and that resuming ends with the
    uninterrupted run's weights."""
    cfg = dict(epochs=2, batch_size=64)
    Trainer(TrainConfig(out=str(tmp_path / "full"), **cfg), progress=False).fit()
    part = Trainer(TrainConfig(out=str(tmp_path / "part"), **cfg), progress=False)
    original_setup = part._setup

    def setup(resume):
        original_setup(resume)
        step, calls = part.optimizer.step, [0]

        def counted_step(*args):
            calls[0] += 1
            return interrupt(step, args) if calls[0] == 30 else step(*args)

        part.optimizer.step = counted_step

    part._setup = setup
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    state = load_checkpoint(tmp_path / "part" / "last.npz").meta["train_state"]
    assert (state["epoch"], state["batch"]) == expected_state
    Trainer(TrainConfig(out=str(tmp_path / "part"), **cfg), progress=False).fit(resume=True)
    assert_same_weights(weights(tmp_path / "full" / "last.npz"), weights(tmp_path / "part" / "last.npz"))


def test_ctrl_c_inside_a_batch_resumes_exactly(tmp_path):
    # Ctrl-C in the optimizer step, after dropout drew this batch's mask: the saved generator
    # state must be the one after the last finished batch, or the resumed masks differ
    def before_update(step, args):
        raise KeyboardInterrupt

    _interrupt_at_step_30_then_resume(tmp_path, before_update, (1, 6))


def test_sigint_right_after_the_update_counts_that_batch(tmp_path):
    # a real SIGINT delivered just after the optimizer changed the weights: the batch must be
    # recorded as done (else resume applies it twice), so the interrupt waits for the record
    def after_update(step, args):
        out = step(*args)
        os.kill(os.getpid(), signal.SIGINT)
        return out

    _interrupt_at_step_30_then_resume(tmp_path, after_update, (1, 7))


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    trainer = Trainer(TrainConfig(out=str(tmp_path / "r"), epochs=3), progress=False)
    original = trainer._train_epoch

    def poisoned(epoch, start):
        if epoch == 1:  # corrupt one weight at the start of the second epoch
            next(trainer.model.parameters()).data[0, 0, 0, 0] = np.nan
        return original(epoch, start)

    trainer._train_epoch = poisoned
    with pytest.raises(
        TrainingDiverged,
        match=r"diverged in epoch 2, batch 1: .*NaN.*kept the last good "
        r"checkpoint .*last.npz \(epoch 1\)",
    ):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "r" / "last.npz")
    assert ckpt.meta["train_state"]["epoch"] == 1
    assert all(np.isfinite(v).all() for v in ckpt.model_state.values())


def test_nan_from_huge_learning_rate_is_one_line_error(tmp_path, capsys):
    code, out, err = run_cli(
        ["train", "--epochs", "2", "--lr", "1e12", "--out", str(tmp_path / "r"), "--no-progress"], capsys
    )
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("convscope train: error:")]
    assert len(lines) == 1 and "diverged" in lines[0] and "lower --lr" in lines[0]
    assert "Traceback" not in err


def test_sigint_saves_and_resume_matches_uninterrupted(tmp_path):
    cfg = ["--data", "mnist:" + MNIST, "--model", "lenet5", "--epochs", "2", "--batch-size", "16"]
    if not os.path.isdir(MNIST):
        cfg = ["--epochs", "6", "--batch-size", "8"]
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "convscope.cli.main", "train", *cfg, "--out", str(run), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "last.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # now somewhere inside the second epoch
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted in epoch" in err and "--resume" in err and "Traceback" not in err
    state = load_checkpoint(run / "last.npz").meta["train_state"]
    assert state["batch"] > 0 or state["epoch"] >= 1
    # --resume continues the run's own saved plan: only the folder is needed
    resume_cmd = [*cmd[:4], "--out", str(run), "--no-progress", "--resume"]
    resumed = subprocess.run(resume_cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    full = tmp_path / "full"
    subprocess.run(
        [*cmd[:-3], "--out", str(full), "--no-progress"], check=True, capture_output=True, timeout=300
    )
    assert_same_weights(weights(full / "last.npz"), weights(run / "last.npz"))


MNIST = os.environ.get("CONVSCOPE_MNIST_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"
)


@pytest.mark.skipif(not os.path.isdir(MNIST), reason="the shared MNIST test set is not on this machine")
def test_lenet5_on_real_mnist_reaches_98_percent(tmp_path, capsys):
    # the README's recipe: 8,000 training images overfit quickly, so shifts of up to 2 pixels and
    # label smoothing (measured over seeds 0-4: 98.65% to 99.25%)
    code, out, err = run_cli(
        [
            "train",
            "--data",
            "mnist:" + MNIST,
            "--model",
            "lenet5",
            "--epochs",
            "5",
            "--augment",
            "crop",
            "--crop-padding",
            "2",
            "--label-smoothing",
            "0.1",
            "--out",
            str(tmp_path / "m"),
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = last_json(out)
    assert "held out a stratified 20% (2000 images)" in err
    assert result["test_accuracy"] >= 0.98


def test_evaluate_and_predict(digits_run, tmp_path, capsys):
    code, out, err = run_cli(
        ["evaluate", str(digits_run / "best.npz"), "--out", str(tmp_path), "--json"], capsys
    )
    assert code == 0, err
    report = last_json(out)
    assert report["count"] == 360 and report["accuracy"] >= 0.97
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 360 and np.trace(cm) == round(report["accuracy"] * 360)
    assert len(report["per_class"]) == 10 and all(0 <= c["precision"] <= 1 for c in report["per_class"])
    assert "precision" in err and "confusion matrix" in err  # --json: the table goes to stderr
    from PIL import Image

    with Image.open(report["confusion_png"]) as im:
        assert im.size[0] > 400
    # predict: a digit drawn large and in RGB is converted to the training preprocessing
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = int(np.flatnonzero(digits.target == 3)[5])
    img = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8)).resize((96, 96)).convert("RGB")
    img.save(tmp_path / "three.png")
    code, out, err = run_cli(
        ["predict", str(digits_run), str(tmp_path / "three.png"), "--top-k", "2", "--json"], capsys
    )
    assert code == 0, err
    pred = last_json(out)["predictions"][0]
    assert pred["top"][0]["label"] == "3" and len(pred["top"]) == 2
    assert pred["top"][0]["probability"] >= pred["top"][1]["probability"]


def test_config_file_and_flag_override(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[train]\nepochs = 3\nbatch_size = 128\noptimizer = "adam"\n')
    code, out, err = run_cli(
        [
            "train",
            "--config",
            str(cfg),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    saved = load_checkpoint(tmp_path / "r" / "last.npz").meta["train_config"]
    assert saved["epochs"] == 1 and saved["batch_size"] == 128 and saved["optimizer"] == "adam"
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\nlearning_rate = 0.1\n")
    code, out, err = run_cli(["train", "--config", str(bad), "--out", str(tmp_path / "b")], capsys)
    assert code == 1 and "unknown setting(s) learning_rate" in err


def make_folder(root, sizes=((8, 8),), modes=("L",), per_class=3, classes=("a", "b")):
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = sizes[i % len(sizes)]
            mode = modes[i % len(modes)]
            Image.new(mode, size, color=40 * i if mode == "L" else (40 * i, 0, 0)).save(root / c / f"{i}.png")
    return root


def bad_inputs(tmp):
    missing = tmp / "nope"
    empty = tmp / "empty"
    empty.mkdir()
    mixed = make_folder(tmp / "mixed", sizes=((8, 8), (9, 7)))
    noclass = make_folder(tmp / "noclass")
    (noclass / "emptyclass").mkdir()
    notimg = make_folder(tmp / "notimg")
    (notimg / "a" / "x.png").write_text("not a png")
    corrupt_idx = tmp / "idx"
    corrupt_idx.mkdir()
    (corrupt_idx / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)
    (corrupt_idx / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    return [
        ("folder:" + str(missing), "does not exist"),
        ("folder:" + str(empty), "empty"),
        ("folder:" + str(mixed), "image size"),
        ("folder:" + str(noclass), "emptyclass"),
        ("folder:" + str(notimg), "x.png"),
        ("mnist:" + str(corrupt_idx), "t10k-images-idx3-ubyte"),
        ("imagenet:/x", "digits"),
    ]


def test_bad_data_gets_one_line_error_and_keeps_existing_run(digits_run, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in digits_run.iterdir() if p.is_file()}
    for spec, fragment in bad_inputs(tmp_path):
        code, out, err = run_cli(
            ["train", "--data", spec, "--epochs", "1", "--out", str(tmp_path / "o"), "--no-progress"], capsys
        )
        lines = err.strip().splitlines()
        assert code == 1, spec
        assert lines[-1].startswith("convscope train: error:") and fragment in lines[-1], (spec, err)
        assert "Traceback" not in err
    # an existing run is never overwritten by a new run pointed at it
    code, out, err = run_cli(["train", "--epochs", "1", "--out", str(digits_run), "--no-progress"], capsys)
    assert code == 1 and "already holds a run" in err
    after = {p.name: p.read_bytes() for p in digits_run.iterdir() if p.is_file()}
    assert before == after


def test_corrupt_and_foreign_checkpoints(digits_run, tmp_path, capsys):
    good = (digits_run / "best.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x89PNG not really")
    weights_only = tmp_path / "weights.npz"
    import convscope as cs

    cs.save({"w": np.zeros(3)}, weights_only)
    for path, fragment in (
        (truncated, "not a convscope checkpoint"),
        (garbage, "not a convscope checkpoint"),
        (weights_only, "without convscope metadata"),
        (tmp_path / "none.npz", "no such"),
    ):
        for cmd in (["evaluate", str(path)], ["predict", str(path), str(path)]):
            code, out, err = run_cli(cmd, capsys)
            assert code == 1 and fragment in err and "Traceback" not in err, (cmd, err)
    # a checkpoint whose weights belong to a different model
    from convscope import models
    from convscope.checkpoint import save_checkpoint

    other = models.create("lenet5", in_channels=1)
    ckpt = load_checkpoint(digits_run / "best.npz")
    object.__setattr__(other, "model_name", "simple")
    object.__setattr__(other, "model_config", ckpt.model_config)
    save_checkpoint(
        tmp_path / "mixed.npz",
        other,
        meta={k: v for k, v in ckpt.meta.items() if k not in ("format", "version", "model")},
    )
    code, out, err = run_cli(["evaluate", str(tmp_path / "mixed.npz")], capsys)
    assert code == 1 and "do not fit model 'simple'" in err


def test_predict_bad_images(digits_run, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("hello")
    code, out, err = run_cli(["predict", str(digits_run), str(tmp_path / "notes.png")], capsys)
    assert code == 1 and "notes.png" in err and "not a readable image" in err
    code, out, err = run_cli(["predict", str(digits_run), str(tmp_path / "missing.png")], capsys)
    assert code == 1 and "missing.png" in err


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(DataError, match="nope"):
        main(["train", "--data", "folder:" + str(tmp_path / "nope"), "--debug"])
