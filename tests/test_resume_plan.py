"""`convscope train`: --resume keeps the run's own plan, --epochs extends it, other flags are refused;
numeric flags are range-checked at parse time; a run that fails before its first save leaves no
folder; a model that does not fit the data is refused before anything is written (issue 15)."""

import math

import pytest

from cli_run import run_cli
from convscope.checkpoint import load_checkpoint
from convscope.train import TrainConfig, Trainer, TrainingInterrupted

FAST = ["--batch-size", "64", "--no-progress"]


def _interrupted_after_first_epoch(out, epochs=3):
    """A digits run planned for ``epochs`` epochs, stopped (as by Ctrl-C) after its first."""

    def log(message):
        if message.startswith("epoch 1/"):
            raise KeyboardInterrupt

    trainer = Trainer(TrainConfig(epochs=epochs, batch_size=64, out=str(out)), progress=False, log=log)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    assert load_checkpoint(out / "last.npz").meta["train_state"]["epoch"] == 1


def cosine(epoch, epochs, lr=0.05):
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


def test_resume_without_epochs_finishes_the_saved_plan(tmp_path, capsys):
    run = tmp_path / "r"
    _interrupted_after_first_epoch(run, epochs=3)
    code, out, err = run_cli(["train", "--resume", "--out", str(run), "--no-progress"], capsys)
    assert code == 0, err
    history = load_checkpoint(run / "last.npz").history
    # before: the CLI's default of 15 epochs, with the 3-epoch cosine plan cycling back up
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["lr"] for h in history] == pytest.approx([cosine(e, 3) for e in range(3)], rel=1e-6)
    assert f"resuming {run} at epoch 2 of 3" in err and "after 3 epochs" in out


def test_resume_with_epochs_extends_and_recomputes_the_schedule(tmp_path, capsys):
    run = tmp_path / "r"
    _interrupted_after_first_epoch(run, epochs=2)
    code, out, err = run_cli(["train", "--resume", "--out", str(run), "--epochs", "4"] + FAST[2:], capsys)
    assert code == 0, err
    assert "extended from 2 to 4 epochs" in err and "recomputed for 4 epochs" in err
    ckpt = load_checkpoint(run / "last.npz")
    assert len(ckpt.history) == 4 and ckpt.meta["train_config"]["epochs"] == 4
    # epoch 1 ran on the 2-epoch plan; from epoch 2 on, the lr is the 4-epoch plan's
    expected = [cosine(0, 2)] + [cosine(e, 4) for e in range(1, 4)]
    assert [h["lr"] for h in ckpt.history] == pytest.approx(expected, rel=1e-6)


def test_finished_run_says_so_and_shorter_epochs_are_refused(tmp_path, capsys):
    run = tmp_path / "r"
    code, _, err = run_cli(["train", "--epochs", "1", "--out", str(run)] + FAST, capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", "--resume", "--out", str(run)], capsys)
    assert code == 1 and "is finished" in err and "--epochs" in err and "Traceback" not in err
    code, _, err = run_cli(["train", "--resume", "--out", str(run), "--epochs", "1"], capsys)
    assert code == 1 and "already trained 1 epochs" in err.replace("1 epoch;", "1 epochs;")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--lr", "0.1"], "--lr"),
        (["--batch-size", "8"], "--batch-size"),
        (["--model", "lenet5", "--seed", "3"], "--model, --seed"),
        (["--label-smoothing", "0.1"], "--label-smoothing"),
    ],
)
def test_other_training_flags_with_resume_are_refused_by_name(tmp_path, capsys, flags, named):
    code, _, err = run_cli(["train", "--resume", "--out", str(tmp_path / "r")] + flags, capsys)
    assert code == 2 and named in err and "--resume" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gamma", "-1"], "--gamma must be in (0, 1]"),
        (["--gamma", "0"], "--gamma must be in (0, 1]"),
        (["--gamma", "1.5"], "--gamma must be in (0, 1]"),
        (["--step-size", "0"], "--step-size must be a positive integer"),
        (["--milestones", "5,x"], "argument --milestones: expected whole epochs separated by commas"),
        (["--milestones", "8,5"], "--milestones must be increasing epochs"),
        (["--milestones", "0,5"], "--milestones must be positive whole epochs"),
        (["--seed", "-1"], "--seed must be a non-negative integer"),
        (["--crop-padding", "-2"], "--crop-padding must be a non-negative integer"),
    ],
)
def test_numeric_flags_are_range_checked_before_training(tmp_path, capsys, flags, message):
    code, out, err = run_cli(["train", "--out", str(tmp_path / "r")] + flags + FAST, capsys)
    assert code == 2 and message in err and "diverged" not in err
    assert err.strip().splitlines()[-1].startswith("convscope train: error:")
    assert not (tmp_path / "r").exists()


def test_a_run_that_diverges_at_once_leaves_no_folder(tmp_path, capsys):
    code, _, err = run_cli(["train", "--lr", "1e12", "--out", str(tmp_path / "r")] + FAST, capsys)
    assert code == 1 and "diverged" in err and "no checkpoint had been saved" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("unet", "unet is a segmentation model, but the data is for classification"),
        (
            "alexnet",
            "alexnet cannot run on 8x8 images: its windows and pooling need larger inputs (it was "
            "designed for 224x224); expected --image-size 224",
        ),
        # the hint names a model that fits 8x8 images, never the one refused
        ("lenet5", "expected --image-size 28 or a model for small images such as simple\n"),
    ],
)
def test_model_data_mismatch_is_refused_before_anything_is_written(tmp_path, capsys, model, expected):
    code, _, err = run_cli(["train", "--model", model, "--out", str(tmp_path / "r")] + FAST, capsys)
    assert code == 1 and expected in err, err
    assert "cross_entropy" not in err and "MaxPool2d" not in err
    assert not (tmp_path / "r").exists()
