"""What a new user tripped over (issue 15): file modes, ink polarity, one C x H x W size convention,
the small things, and the training defaults the model zoo records per model and input shape."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from cli_run import run_cli
from convscope.serialization import atomic_write

MNIST = os.environ.get("CONVSCOPE_MNIST_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"
)
if not os.path.isdir(MNIST):
    MNIST = "/work/shared/data/mnist"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A simple CNN trained 3 epochs on digits, and a digit 3 drawn white on black and black on white."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from convscope.cli import main

    root = tmp_path_factory.mktemp("newuser")
    assert main(["train", "--epochs", "3", "--out", str(root / "run"), "--no-progress"]) == 0
    digits = load_digits()
    three = (digits.images[int(np.flatnonzero(digits.target == 3)[0])] * 255 / 16).astype(np.uint8)
    Image.fromarray(three).resize((32, 32)).save(root / "white_on_black.png")
    Image.fromarray(255 - three).resize((32, 32)).save(root / "black_on_white.png")
    return root


# ---- 9: file modes ---------------------------------------------------------------------------


def test_written_files_get_the_umask_mode(tmp_path):
    code = (
        "import os, sys; os.umask(0o022); sys.path.insert(0, sys.argv[2]); "
        "from convscope.serialization import atomic_write; "
        "atomic_write(sys.argv[1], lambda f: f.write(b'x'))"
    )
    import convscope

    src = os.path.dirname(os.path.dirname(convscope.__file__))  # the convscope under test
    path = tmp_path / "f.bin"
    subprocess.run([sys.executable, "-c", code, str(path), src], check=True, timeout=60)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # before: 0600 from mkstemp


def test_run_files_are_not_private(digits_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("last.npz", "best.npz", "history.csv", "history.json", "curve.png"):
        assert stat.S_IMODE((digits_run / "run" / name).stat().st_mode) == 0o666 & ~mask, name
    atomic_write(digits_run / "again.txt", lambda f: f.write(b"y"))  # the writer keeps doing so
    assert stat.S_IMODE((digits_run / "again.txt").stat().st_mode) == 0o666 & ~mask


# ---- 10: ink polarity and --invert ---------------------------------------------------------------


def test_predict_warns_about_inverted_ink_and_invert_fixes_it(digits_run, capsys):
    run = digits_run / "run"
    code, out, err = run_cli(["predict", str(run), str(digits_run / "white_on_black.png")], capsys)
    assert code == 0 and "looks inverted" not in err and ": 3 (" in out
    assert "resized" in err and "from 32x32 to the model's input 8x8" in err
    code, out, err = run_cli(["predict", str(run), str(digits_run / "black_on_white.png")], capsys)
    assert code == 0 and "looks inverted" in err and "--invert" in err
    code, out, err = run_cli(
        ["predict", str(run), str(digits_run / "black_on_white.png"), "--invert"], capsys
    )
    assert code == 0 and "looks inverted" not in err and ": 3 (" in out


# ---- 11: one size convention -------------------------------------------------------------------


def test_calc_input_is_c_h_w_and_the_lecture_order_has_its_own_flags(capsys):
    base = ["calc", "conv", "--filters", "10", "--kernel", "5", "--padding", "2", "--json"]
    import json

    results = []
    for volume in (
        ["--input", "3x32x48"],
        ["--hwc", "32x48x3"],
        ["--width", "48", "--height", "32", "--depth", "3"],
    ):
        code, out, err = run_cli(base + volume, capsys)
        assert code == 0, err
        results.append(json.loads(out))
    # before: --input 3x32x48 was H=3, W=32 with 48 channels
    assert all(r["input"] == [3, 32, 48] and r["output"] == [10, 32, 48] for r in results)
    assert results[0]["params"] == (5 * 5 * 3 + 1) * 10
    code, out, err = run_cli(
        ["calc", "conv", "--input", "32x32x3", "--filters", "10", "--kernel", "3"], capsys
    )
    assert code == 0 and "did you mean 3x32x32?" in err and "--hwc 32x32x3" in err
    code, out, err = run_cli(["calc", "pool", "--input", "64x56x56"], capsys)
    assert code == 0 and "did you mean" not in err  # a real C x H x W volume
    code, out, err = run_cli(["calc", "pool", "--input", "3x8x8", "--hwc", "8x8x3"], capsys)
    assert code == 2 and "give the input volume once" in err
    code, out, err = run_cli(["summary", "lenet5", "--input", "28x28x1"], capsys)
    assert "did you mean 1x28x28?" in err


# ---- 15: the smaller things ----------------------------------------------------------------------


def test_explain_errors_name_the_subcommand(digits_run, capsys):
    code, _, err = run_cli(
        ["explain", "heatmap", str(digits_run / "run"), "--image", str(digits_run / "nope.png")], capsys
    )
    assert code == 1 and err.strip().splitlines()[-1].startswith("convscope explain heatmap: error:")


def test_predict_on_a_folder_says_it_is_a_folder(digits_run, capsys):
    code, _, err = run_cli(["predict", str(digits_run / "run"), str(digits_run)], capsys)
    assert code == 1 and "is a folder; expected an image file" in err and "not found" not in err


def test_plurals_and_gitignore(tmp_path, capsys):
    from convscope.data import ArrayDataset, hold_out

    ds = ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.array([0, 0, 1, 1]), ["a", "b"], "tiny")
    assert "(1 image)" in hold_out(ds, 0.25, 0).note
    code, out, _ = run_cli(["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0 and "after 1 epoch in" in out
    ignored = open(os.path.join(os.path.dirname(__file__), "..", ".gitignore")).read().split()
    assert "explanations/" in ignored and "runs/" in ignored


def test_unknown_toml_key_lists_the_valid_ones(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("epochz = 3\n")
    code, _, err = run_cli(
        ["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")], capsys
    )
    assert code == 1 and "unknown setting(s) epochz" in err and "valid: " in err and "epochs" in err


def test_a_two_image_folder_warns_that_it_is_too_small(tmp_path, capsys):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 40 if name == "a" else 200, np.uint8)).save(
            tmp_path / "d" / name / "1.png"
        )
        Image.fromarray(np.full((8, 8), 50 if name == "a" else 210, np.uint8)).save(
            tmp_path / "d" / name / "2.png"
        )
    for f in (tmp_path / "d" / "b").iterdir():
        if f.name == "2.png":
            f.unlink()
    (tmp_path / "d" / "a" / "2.png").unlink()
    args = ["train", "--data", f"folder:{tmp_path / 'd'}", "--test-split", "0.5", "--epochs", "1"]
    code, _, err = run_cli(args + ["--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 0, err
    assert "warning: only 1 training and 1 test image for 2 classes" in err


# ---- 16: training defaults from the model zoo ----------------------------------------------------


def test_model_defaults_apply_by_input_shape_and_flags_override(tmp_path, capsys):
    from convscope.models import train_defaults

    lenet = {"lr": 0.03, "weight_decay": 1e-3, "augment": "crop", "crop_padding": 2, "label_smoothing": 0.05}
    assert train_defaults("lenet5", (1, 28, 28)) == lenet
    assert train_defaults("lenet5", (3, 32, 32)) == {} and train_defaults("simple", (1, 28, 28)) == {}
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", x=rng.random((40, 28, 28), dtype=np.float32), y=np.arange(40) % 2)
    base = ["train", "--data", f"npz:{tmp_path / 'm.npz'}", "--model", "lenet5", "--epochs", "1"]
    import json

    code, out, err = run_cli(base + ["--out", str(tmp_path / "a"), "--no-progress", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["defaults_applied"] == lenet
    assert (
        "defaults for lenet5 on 1x28x28 inputs (model zoo): lr=0.03, weight_decay=0.001, augment=crop, "
        "crop_padding=2, label_smoothing=0.05; a flag overrides each" in err
    )
    code, out, err = run_cli(
        base + ["--augment", "none", "--out", str(tmp_path / "b"), "--no-progress", "--json"], capsys
    )
    assert json.loads(out)["defaults_applied"] == {k: v for k, v in lenet.items() if k != "augment"}
    from convscope.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "b" / "last.npz").meta["train_config"]
    assert saved["augment"] == "none" and saved["label_smoothing"] == 0.05 and saved["lr"] == 0.03


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(MNIST), reason="the shared MNIST test set is not on this machine")
@pytest.mark.parametrize("seed", range(5))
def test_plain_lenet5_command_reaches_98_percent_on_mnist(tmp_path, capsys, seed):
    # the plain command, no tuning flags: lenet5's zoo defaults for 1x28x28 inputs apply
    code, out, err = run_cli(
        ["train", "--model", "lenet5", "--data", f"mnist:{MNIST}", "--epochs", "5", "--seed", str(seed)]
        + ["--out", str(tmp_path / "m"), "--no-progress", "--json"],
        capsys,
    )
    assert code == 0, err
    import json

    result = json.loads(out)
    from convscope.models import train_defaults

    assert result["defaults_applied"] == train_defaults("lenet5", (1, 28, 28))
    assert result["test_accuracy"] >= 0.98, (seed, result["test_accuracy"])
