"""Every command's --json prints exactly one JSON object on stdout (errors too); evaluation files
are named after their data; relative data paths work from anywhere; an --out that is or lies
under a file is a one-line error (issue 15)."""

import json
import os

import numpy as np
import pytest

from cli_run import run_cli
from convscope.checkpoint import load_checkpoint


def only_json(out: str) -> dict:
    """stdout must be one JSON object and nothing else (explain features is checked so in
    test_explain_trace.py: its figures take long to draw)."""
    assert out.count("\n") == 1 and out.endswith("\n"), out[:300]
    return json.loads(out)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A simple CNN trained 2 epochs on digits, and a PNG of a digit 3 in the training polarity."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from convscope.cli import main

    root = tmp_path_factory.mktemp("json")
    code = main(["train", "--epochs", "3", "--out", str(root / "run"), "--no-progress"])
    assert code == 0
    digits = load_digits()
    three = digits.images[int(np.flatnonzero(digits.target == 3)[0])]
    Image.fromarray((three * 255 / 16).astype(np.uint8)).resize((32, 32)).save(root / "three.png")
    return root


def test_json_stdout_is_one_object_for_every_command(small_run, capsys):
    run, img = small_run / "run", small_run / "three.png"
    commands = [
        ["summary", "lenet5"],
        ["summary", "--list"],
        ["calc", "conv", "--input", "3x32x32", "--filters", "10", "--kernel", "5"],
        ["calc", "stack", "3x3,3x3"],
        ["evaluate", str(run)],
        ["predict", str(run), str(img)],
        ["explain", "conv", "--at", "0,0,0"],
        ["explain", "heatmap", str(run), "--image", str(img), "--out", str(small_run / "h")],
    ]
    for argv in commands:
        code, out, err = run_cli(argv + ["--json"], capsys)
        assert code == 0, (argv, err)
        doc = only_json(out)
        assert "error" not in doc and doc
    doc = only_json(run_cli(["predict", str(run), str(img), "--json"], capsys)[1])
    top = doc["predictions"][0]["top"]
    assert set(top[0]) == {"index", "label", "probability"} and top[0]["label"] == "3"


def test_train_json_is_one_object(tmp_path, capsys):
    code, out, err = run_cli(
        ["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress", "--json"], capsys
    )
    assert code == 0 and only_json(out)["epochs"] == 1 and "final test accuracy" in err


@pytest.mark.parametrize(
    ("argv", "kind", "code"),
    [
        (["summary", "nosuchmodel"], "ValueError", 1),
        (["train", "--gamma", "x"], "UsageError", 2),  # an argparse error
        (["train", "--nosuchflag"], "UsageError", 2),
        (["nosuchcommand"], "UsageError", 2),
        (["calc", "conv", "--input", "3x3x", "--filters", "2", "--kernel", "3"], "UsageError", 2),
        (["predict", "/nonexistent/run", "x.png"], "FileNotFoundError", 1),
    ],
)
def test_json_errors_are_one_error_object(argv, kind, code, capsys):
    got, out, err = run_cli(argv + ["--json"], capsys)
    doc = only_json(out)
    assert got == code and set(doc) == {"error", "type"} and doc["type"] == kind
    assert doc["error"] and "\n" not in doc["error"] and "Traceback" not in err


def test_evaluating_other_data_keeps_earlier_results(small_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "other.npz", x=(digits.images[:200] / 16).astype(np.float32), y=digits.target[:200])
    run = small_run / "run"
    code, out, err = run_cli(["evaluate", str(run), "--json"], capsys)
    first = only_json(out)
    code2, out, err = run_cli(
        ["evaluate", str(run), "--data", f"npz:{tmp_path / 'other.npz'}", "--json"], capsys
    )
    second = only_json(out)
    assert code == code2 == 0, err
    names = {os.path.basename(d[k]) for d in (first, second) for k in ("report_json", "confusion_png")}
    assert len(names) == 4  # before: both wrote evaluation_test.json and confusion_test.png
    assert os.path.basename(first["report_json"]) == "evaluation_digits_test.json"
    assert os.path.basename(second["report_json"]).startswith("evaluation_npz-other-")
    assert all(os.path.exists(d["report_json"]) for d in (first, second))


def test_relative_data_path_works_from_another_directory(tmp_path, monkeypatch, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "a" / "data" / "d.npz", x=(digits.images / 16).astype(np.float32), y=digits.target)
    monkeypatch.chdir(tmp_path / "a")
    code, _, err = run_cli(["train", "--data", "npz:data/d.npz", "--epochs", "1", "--out", "run"], capsys)
    assert code == 0, err
    data = load_checkpoint(tmp_path / "a" / "run" / "last.npz").meta["data"]
    assert data["spec"] == "npz:data/d.npz"
    assert data["spec_absolute"] == f"npz:{tmp_path / 'a' / 'data' / 'd.npz'}"
    monkeypatch.chdir(tmp_path / "b")
    code, out, err = run_cli(["evaluate", str(tmp_path / "a" / "run"), "--json"], capsys)
    assert code == 0, err  # before: "data/d.npz does not exist"
    assert f"data: npz:{tmp_path / 'a' / 'data' / 'd.npz'}" in err and only_json(out)["count"] == 360


def test_out_that_is_or_lies_under_a_file_is_a_one_line_error(small_run, tmp_path, capsys):
    run, img = small_run / "run", small_run / "three.png"
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        commands = [
            ["train", "--epochs", "1", "--out", str(out)],
            ["evaluate", str(run), "--out", str(out)],
            ["explain", "features", str(run), "--image", str(img), "--out", str(out)],
            ["explain", "heatmap", str(run), "--image", str(img), "--out", str(out)],
        ]
        if out != blocker:  # explain conv --out names a PNG file: only a file above it is wrong
            commands.append(
                ["explain", "conv", str(run), "--image", str(img), "--layer", "features.conv1"]
                + ["--at", "0,0,0", "--out", str(out / "rf.png")]
            )
        for argv in commands:
            code, _, err = run_cli(argv, capsys)
            assert code == 2 and "Traceback" not in err, (argv, err)
            last = err.strip().splitlines()[-1]
            assert "error: --out" in last and str(blocker) in last and "file" in last
    assert blocker.read_text() == "not a folder"
