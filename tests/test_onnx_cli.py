"""The command line on ONNX files: `convscope export`, then summary, predict, explain heatmap and
train --model on the .onnx file, through the same loader as checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from cli_run import last_json, run_cli  # noqa: E402
from convscope.cli import main  # noqa: E402
from onnx_helpers import run_ort  # noqa: E402


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory):
    """A 2-epoch digits run and its export (plain and with the normalisation folded in)."""
    folder = tmp_path_factory.mktemp("onnx_cli")
    assert main(["train", "--epochs", "2", "--out", str(folder / "run"), "--no-progress"]) == 0
    assert main(["export", str(folder / "run" / "best.npz"), "-o", str(folder / "m.onnx")]) == 0
    args = [
        "export",
        str(folder / "run"),
        "-o",
        str(folder / "f.onnx"),
        "--fold-normalization",
        "--opset",
        "13",
    ]
    assert main(args) == 0
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = int(np.flatnonzero(digits.target == 3)[5])
    img = Image.fromarray((digits.images[index] * 255 / 16).astype(np.uint8)).resize((40, 40))
    img.save(folder / "three.png")
    return folder


def test_export_command_writes_metadata_and_reports(run_and_export, tmp_path, capsys):
    import onnx

    proto = onnx.load(run_and_export / "m.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["preprocessing.input_size"] == "1x8x8" and json.loads(props["classes"])[3] == "3"
    assert len(json.loads(props["preprocessing.mean"])) == 1
    assert proto.opset_import[0].version == 17 and proto.ir_version == 8
    code, out, err = run_cli(
        ["export", str(run_and_export / "run"), "-o", str(tmp_path / "x.onnx"), "--opset", "20", "--json"],
        capsys,
    )
    assert code == 0, err
    info = last_json(out)
    assert info["opset"] == 20 and info["ir_version"] == 9 and "Conv" in info["op_types"]
    code, out, err = run_cli(
        ["export", str(run_and_export / "run"), "-o", str(tmp_path / "y.onnx"), "--opset", "12"], capsys
    )
    assert code == 2 and "--opset must be between 13 and 20" in err and not (tmp_path / "y.onnx").exists()


def test_predict_on_onnx_equals_the_checkpoint_and_onnxruntime(run_and_export, capsys):
    image = str(run_and_export / "three.png")
    results = {}
    for name in ("run", "m.onnx", "f.onnx"):
        code, out, err = run_cli(["predict", str(run_and_export / name), image, "--json"], capsys)
        assert code == 0, err
        results[name] = last_json(out)["predictions"][0]["top"]
    assert results["run"][0]["label"] == "3"
    for name in ("m.onnx", "f.onnx"):
        assert [t["label"] for t in results[name]] == [t["label"] for t in results["run"]]
        for a, b in zip(results[name], results["run"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], rel=1e-5)
    for name in ("m.onnx", "f.onnx"):
        code, out, err = run_cli(
            ["predict", str(run_and_export / name), image, "--runtime", "onnxruntime", "--json"], capsys
        )
        assert code == 0, err
        top = last_json(out)["predictions"][0]["top"]
        for a, b in zip(top, results["run"], strict=True):
            assert a["label"] == b["label"] and a["probability"] == pytest.approx(b["probability"], rel=1e-4)
    args = ["predict", str(run_and_export / "run"), image, "--runtime", "onnxruntime"]
    code, out, err = run_cli(args, capsys)
    assert code == 1 and "export it first" in err
    # onnxruntime on the folded file with the raw [0, 1] image gives the same logits' argmax
    from convscope.data import prepare_image

    x = prepare_image(image, 1, (8, 8)).astype(np.float32)
    assert int(run_ort(run_and_export / "f.onnx", x).argmax()) == 3


def test_predict_flags_supply_missing_preprocessing(run_and_export, tmp_path, capsys):
    import onnx

    proto = onnx.load(run_and_export / "m.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "bare.onnx")
    mean, std = json.loads(props["preprocessing.mean"])[0], json.loads(props["preprocessing.std"])[0]
    image = str(run_and_export / "three.png")
    code, out, err = run_cli(
        ["predict", str(tmp_path / "bare.onnx"), image, "--mean", str(mean), "--std", str(std), "--json"],
        capsys,
    )
    assert code == 0, err
    top = last_json(out)["predictions"][0]["top"][0]
    assert top["label"] == "3"  # no class names in the file: the output index is the name


def test_summary_of_onnx_file(run_and_export, capsys):
    code, out, err = run_cli(["summary", str(run_and_export / "m.onnx"), "--json"], capsys)
    assert code == 0, err
    onnx_summary = last_json(out)
    code, out, err = run_cli(["summary", str(run_and_export / "run" / "best.npz"), "--json"], capsys)
    ckpt_summary = last_json(out)
    for key in ("total_params", "total_macs", "receptive_field", "layers_counted", "output_shape"):
        assert onnx_summary[key] == ckpt_summary[key], key
    assert onnx_summary["input_size"] == [1, 8, 8]
    weighted = [(r["type"], r["params"], r["macs"]) for r in ckpt_summary["layers"] if r["params"]]
    assert [(r["type"], r["params"], r["macs"]) for r in onnx_summary["layers"] if r["params"]] == weighted


def test_summary_needs_input_for_dynamic_sizes(run_and_export, tmp_path, capsys):
    import onnx

    proto = onnx.load(run_and_export / "m.onnx")
    del proto.metadata_props[:]
    for d in proto.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "size"
    onnx.save(proto, tmp_path / "dyn.onnx")
    code, out, err = run_cli(["summary", str(tmp_path / "dyn.onnx")], capsys)
    assert code == 2 and "give --input CxHxW" in err
    code, out, err = run_cli(["summary", str(tmp_path / "dyn.onnx"), "--input", "1x8x8", "--json"], capsys)
    assert code == 0, err and last_json(out)["input_size"] == [1, 8, 8]


def test_explain_heatmap_on_onnx_file(run_and_export, tmp_path, capsys):
    code, out, err = run_cli(
        [
            "explain",
            "heatmap",
            str(run_and_export / "m.onnx"),
            "--image",
            str(run_and_export / "three.png"),
            "--out",
            str(tmp_path),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = last_json(out)
    assert result["layer"].endswith("_Conv") and result["input_size"] == [1, 8, 8]
    assert result["predicted"] == "3"
    from PIL import Image

    with Image.open(result["png"]) as im:
        assert im.size[0] > 100


def test_train_fine_tunes_an_onnx_model(run_and_export, tmp_path, capsys):
    out_dir = tmp_path / "ft"
    code, out, err = run_cli(
        [
            "train",
            "--model",
            str(run_and_export / "m.onnx"),
            "--epochs",
            "1",
            "--out",
            str(out_dir),
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert last_json(out)["test_accuracy"] >= 0.9  # it starts from the trained weights
    from convscope.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out_dir / "best.npz")
    assert ckpt.model_name == "onnx" and ckpt.model_config["path"].endswith("m.onnx")
    code, out, err = run_cli(["predict", str(out_dir), str(run_and_export / "three.png"), "--json"], capsys)
    assert code == 0, err and last_json(out)["predictions"][0]["top"][0]["label"] == "3"
