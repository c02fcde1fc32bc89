"""ONNX export: every zoo model and every exported op against onnxruntime (batch 1 and 3 through the
dynamic batch dimension; the export itself runs at batch 2), the small models also in the onnx
package's reference evaluator; opsets and IR versions, metadata, folded normalisation, names,
and the errors for what ONNX cannot express."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convscope as cs
from convscope import models, nn
from convscope.nn import functional as F

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from convscope.onnx import OnnxExportError, export  # noqa: E402
from onnx_helpers import assert_close_scaled, ours, run_ort  # noqa: E402

# ImageNet-sized zoo models build 10-140 M parameters: exported in the slow tier (ResNet-18 stays)
HEAVY = {"alexnet", "resnet34", "resnet50", "resnet101", "resnet152"} | {
    n for n in models.list_models() if n.startswith("vgg")
}


def _small_shape(name):
    """(C, S, S) for image models (S small enough for CI), (C, L) for 1-D series models."""
    c, *size = models.model_info(name).input_size
    if len(size) == 1:
        return c, min(size[0], 64)
    s = 64 if name == "alexnet" else min(size[0], 32)
    return c, s, s


def _zoo_params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in models.list_models()]


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_model_runs_in_onnxruntime(name, tmp_path):
    shape = _small_shape(name)
    cs.manual_seed(0)
    kwargs = {"input_size": list(shape[1:])} if models.accepts(name, "input_size") else {}
    model = models.create(name, num_classes=10, **kwargs).eval()
    rng = np.random.default_rng(0)
    path = tmp_path / f"{name}.onnx"
    export(model, rng.standard_normal((2, *shape)).astype(np.float32), path)
    for batch in (1, 3):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        assert_close_scaled(run_ort(path, x), ours(model, x), what=f"{name} batch {batch}")


@pytest.mark.parametrize("name", ["lenet5", "simple", "tinyvgg"])
def test_small_zoo_models_in_the_reference_evaluator(name, tmp_path):
    from onnx.reference import ReferenceEvaluator

    c, s, _ = _small_shape(name)
    cs.manual_seed(1)
    kwargs = {"input_size": [s, s]} if models.accepts(name, "input_size") else {}
    model = models.create(name, num_classes=10, **kwargs).eval()
    x = np.random.default_rng(1).standard_normal((3, c, s, s)).astype(np.float32)
    proto = export(model, x[:2], tmp_path / "m.onnx")
    got = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    assert_close_scaled(got, ours(model, x), what=name)


class Lambda(nn.Module):
    def __init__(self, fn, *layers):
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        return self.fn(x, *self.layers)


def _bn_with_stats(c, cls=nn.BatchNorm2d):
    bn = cls(c)
    rng = np.random.default_rng(c)
    bn.running_mean.data[...] = rng.uniform(-1, 1, c)
    bn.running_var.data[...] = rng.uniform(0.5, 2, c)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
    bn.bias.data[...] = rng.uniform(-0.5, 0.5, c)
    return bn


# (id, model factory, input shape (C, ...)): every op of the export list
OP_CASES = [
    (
        "conv_groups_dilation",
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
        (4, 11, 9),
    ),
    ("conv_same_stride2", lambda: nn.Conv2d(3, 5, 4, stride=2, padding="same"), (3, 9, 10)),
    ("conv_reflect", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 7, 8)),
    ("conv_replicate", lambda: nn.Conv2d(3, 4, 3, padding=2, padding_mode="replicate"), (3, 7, 8)),
    ("conv_circular", lambda: nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="circular"), (3, 7, 8)),
    ("conv_no_bias", lambda: nn.Conv2d(3, 4, (3, 1), bias=False), (3, 6, 6)),
    ("conv1d", lambda: nn.Conv1d(3, 4, 5, stride=2, padding=2, dilation=1), (3, 20)),
    ("conv1d_circular", lambda: nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular"), (2, 12)),
    (
        "conv_transpose",
        lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, groups=1),
        (4, 5, 6),
    ),
    ("conv_transpose_groups", lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2, dilation=1), (4, 3, 3)),
    ("maxpool_ceil_dilation", lambda: nn.MaxPool2d(3, 2, padding=1, dilation=2, ceil_mode=True), (2, 12, 11)),
    ("maxpool_ceil", lambda: nn.MaxPool2d(3, 2, ceil_mode=True), (2, 8, 9)),
    ("avgpool_exclude_pad", lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), (2, 9, 8)),
    ("avgpool_include_pad", lambda: nn.AvgPool2d(3, 2, padding=1), (2, 9, 8)),
    ("avgpool_ceil", lambda: nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False), (2, 7, 9)),
    ("avgpool_ceil_include_pad", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 6, 7)),
    ("adaptive_avg_global", lambda: nn.AdaptiveAvgPool2d(1), (3, 5, 7)),
    ("adaptive_avg_even", lambda: nn.AdaptiveAvgPool2d((2, 3)), (3, 6, 9)),
    ("adaptive_avg_uneven", lambda: nn.AdaptiveAvgPool2d((3, 4)), (3, 7, 5)),
    ("adaptive_max_global", lambda: nn.AdaptiveMaxPool2d(1), (3, 5, 7)),
    ("adaptive_max_even", lambda: nn.AdaptiveMaxPool2d((2, 2)), (3, 6, 4)),
    ("batchnorm2d", lambda: _bn_with_stats(3), (3, 4, 5)),
    ("batchnorm1d", lambda: _bn_with_stats(6, nn.BatchNorm1d), (6,)),
    ("relu", lambda: nn.ReLU(), (3, 4)),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), (3, 4)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 4)),
    ("tanh", lambda: nn.Tanh(), (3, 4)),
    ("softmax", lambda: nn.Softmax(dim=1), (5,)),
    ("log_softmax", lambda: nn.LogSoftmax(dim=1), (3, 4, 2)),
    ("linear", lambda: nn.Linear(6, 4), (6,)),
    ("linear_3d", lambda: nn.Linear(5, 3), (4, 5)),
    ("flatten", lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 3 * 4, 5)), (2, 5, 6)),
    ("dropout_eval", lambda: nn.Sequential(nn.Dropout(0.5), nn.ReLU()), (4,)),
    ("add_mul_consts", lambda: Lambda(lambda x: (x * 2.5 + 1.0) / 3.0 - x * x), (3, 4)),
    ("residual_add", lambda: Lambda(lambda x, c: x + c(x), nn.Conv2d(3, 3, 3, padding=1)), (3, 5, 5)),
    (
        "concat",
        lambda: Lambda(
            lambda x, a, b: cs.cat([a(x), b(x)], dim=1), nn.Conv2d(2, 3, 1), nn.Conv2d(2, 4, 3, 1, 1)
        ),
        (2, 5, 5),
    ),
    ("upsample_nearest", lambda: nn.Upsample(scale_factor=2, mode="nearest"), (2, 3, 4)),
    ("upsample_nearest_size", lambda: nn.Upsample(size=(7, 5), mode="nearest"), (2, 3, 4)),
    (
        "upsample_bilinear",
        lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        (2, 3, 4),
    ),
    (
        "upsample_bilinear_ac",
        lambda: nn.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
        (2, 3, 4),
    ),
    ("pad_constant", lambda: Lambda(lambda x: F.pad(x, (1, 2, 0, 3), value=0.5)), (2, 3, 4)),
    ("pad_crop", lambda: Lambda(lambda x: F.pad(x, (-1, 2, 1, -1))), (2, 3, 4)),
    ("pad_reflect", lambda: Lambda(lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect")), (2, 4, 5)),
    ("pad_replicate", lambda: Lambda(lambda x: F.pad(x, (3, 0, 1, 2), mode="replicate")), (2, 4, 5)),
    ("pad_circular", lambda: Lambda(lambda x: F.pad(x, (2, 1, 1, 3), mode="circular")), (2, 4, 5)),
    ("permute_slice", lambda: Lambda(lambda x: x.permute(0, 2, 3, 1)[:, 1:, ::2]), (3, 4, 5)),
    ("mean_spatial", lambda: Lambda(lambda x: x.mean(dim=(2, 3))), (3, 4, 5)),
    ("clamp", lambda: Lambda(lambda x: x.clamp(-0.5, 0.7)), (3, 4)),
]


@pytest.mark.parametrize("opset", [13, 20])  # the zoo tests run the default, 17
@pytest.mark.parametrize("case", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_each_op_matches_onnxruntime(case, opset, tmp_path):
    _, factory, shape = case
    cs.manual_seed(3)
    model = factory().eval()
    rng = np.random.default_rng(3)
    path = tmp_path / "op.onnx"
    proto = export(model, rng.standard_normal((2, *shape)).astype(np.float32), path, opset=opset)
    assert proto.opset_import[0].version == opset
    for batch in (1, 3):
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        assert_close_scaled(run_ort(path, x), ours(model, x), rel=1e-5, what=f"{case[0]} batch {batch}")


def test_circular_padding_is_wrap_from_opset_19_and_slices_below(tmp_path):
    model = nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular").eval()
    x = np.zeros((1, 2, 5, 5), np.float32)
    ops18 = {n.op_type for n in export(model, x, tmp_path / "a.onnx", opset=18).graph.node}
    p19 = export(model, x, tmp_path / "b.onnx", opset=19)
    assert "Pad" not in ops18 and {"Slice", "Concat"} <= ops18
    pad = next(n for n in p19.graph.node if n.op_type == "Pad")
    assert onnx.helper.get_attribute_value(pad.attribute[0]) == b"wrap"


def test_conv1d_exports_as_a_1d_conv_with_the_3d_weight(tmp_path):
    model = nn.Sequential(nn.Conv1d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 2, 3)).eval()
    proto = export(model, np.zeros((2, 3, 16), np.float32), tmp_path / "c.onnx")
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and {n.op_type for n in proto.graph.node} == {"Conv", "Relu"}
    for n in convs:
        ks = next(a for a in n.attribute if a.name == "kernel_shape")
        assert len(ks.ints) == 1
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    assert weights["0.weight"] == (4, 3, 5) and weights["2.weight"] == (2, 4, 3)


@pytest.mark.parametrize("opset", range(13, 21))
def test_opsets_declare_the_lowest_ir_version_that_has_them(opset, tmp_path):
    proto = export(nn.Conv2d(1, 2, 3), np.zeros((1, 1, 5, 5), np.float32), tmp_path / "m.onnx", opset=opset)
    expected = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    assert proto.ir_version == expected
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)


@pytest.mark.parametrize("opset", [12, 21])
def test_unsupported_opset_is_a_value_error(opset, tmp_path):
    with pytest.raises(ValueError, match="opset must be between 13 and 20"):
        export(nn.ReLU(), np.zeros((1, 2), np.float32), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_static_batch(tmp_path):
    proto = export(nn.Linear(3, 2), np.zeros((4, 3), np.float32), tmp_path / "m.onnx", dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_metadata_and_folded_normalisation(tmp_path):
    cs.manual_seed(0)
    model = models.create("simple", num_classes=4, in_channels=3, input_size=[8, 8]).eval()
    pre = {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0], "input_size": (3, 8, 8), "classes": list("abcd")}
    x01 = np.random.default_rng(0).random((3, 3, 8, 8)).astype(np.float32)
    plain = export(model, x01, tmp_path / "plain.onnx", preprocessing=pre)
    props = {p.key: p.value for p in plain.metadata_props}
    assert json.loads(props["preprocessing.mean"]) == pytest.approx(pre["mean"])
    assert json.loads(props["preprocessing.std"]) == pytest.approx(pre["std"])
    assert props["preprocessing.input_size"] == "3x8x8"
    assert json.loads(props["classes"]) == ["a", "b", "c", "d"]
    assert props["preprocessing.normalization_in_graph"] == "false"
    folded = export(model, x01, tmp_path / "folded.onnx", preprocessing=pre, fold_normalization=True)
    assert {p.key: p.value for p in folded.metadata_props}["preprocessing.normalization_in_graph"] == "true"
    mean = np.asarray(pre["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(pre["std"], np.float32).reshape(1, 3, 1, 1)
    expected = ours(model, (x01 - mean) / std)
    assert_close_scaled(run_ort(tmp_path / "folded.onnx", x01), expected, rel=1e-5)
    assert_close_scaled(run_ort(tmp_path / "plain.onnx", (x01 - mean) / std), expected, rel=1e-5)
    with pytest.raises(ValueError, match="fold_normalization needs"):
        export(model, x01, tmp_path / "x.onnx", fold_normalization=True)


def test_names_come_from_modules_and_state_dict_keys(tmp_path):
    model = models.create("resnet20").eval()
    proto = export(model, np.zeros((1, 3, 32, 32), np.float32), tmp_path / "r.onnx")
    inits = {t.name for t in proto.graph.initializer}
    assert {"conv1.weight", "layer1.0.conv1.weight", "bn1.running_mean", "fc.weight"} <= inits
    names = [n.name for n in proto.graph.node]
    assert "/conv1/Conv" in names and "/layer1/0/conv1/Conv" in names and "/fc/Gemm" in names
    assert proto.graph.output[0].name == "output" and proto.graph.input[0].name == "input"


class DivisorOverride(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, divisor_override=3))

    def forward(self, x):
        return self.body(x)


def test_inexpressible_attribute_names_the_layer(tmp_path):
    with pytest.raises(OnnxExportError, match=r"layer body\.1 .*divisor_override=3"):
        export(DivisorOverride(), np.zeros((1, 1, 6, 6), np.float32), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_op_without_onnx_form_names_the_layer(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), Lambda(lambda x: x.var(dim=1, keepdim=True)))
    with pytest.raises(OnnxExportError, match=r"layer 1 \(VarOp\).*no ONNX form"):
        export(model, np.zeros((1, 1, 5, 5), np.float32), tmp_path / "m.onnx")


def test_batch_changing_reshape_needs_a_static_batch(tmp_path):
    model = Lambda(lambda x: x.reshape(-1, 2))
    with pytest.raises(OnnxExportError, match="changes the batch dimension"):
        export(model, np.zeros((2, 4), np.float32), tmp_path / "m.onnx")
    export(model, np.zeros((2, 4), np.float32), tmp_path / "m.onnx", dynamic_batch=False)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(run_ort(tmp_path / "m.onnx", x), x.reshape(4, 2))


FREE_SIZES = [("resnet18", True), ("unet", True), ("lenet5", False), ("resnet20", False)]


@pytest.mark.parametrize("name,free", FREE_SIZES)
def test_spatial_sizes_stay_free_when_every_op_is_size_agnostic(name, free, tmp_path):
    c = models.model_info(name).input_size[0]
    cs.manual_seed(0)
    model = models.create(name, num_classes=10).eval()
    s = 28 if name == "lenet5" else 32
    proto = export(model, np.zeros((1, c, s, s), np.float32), tmp_path / "m.onnx")
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == (["batch", c, "height", "width"] if free else ["batch", c, s, s])
    if free:  # another size than the export's, run by onnxruntime as by convscope
        x = np.random.default_rng(0).standard_normal((2, c, 48, 40)).astype(np.float32)
        assert_close_scaled(run_ort(tmp_path / "m.onnx", x), ours(model, x), what=name)


def test_loss_and_empty_example_are_refused(tmp_path):
    model = Lambda(lambda x: nn.functional.cross_entropy(x, cs.tensor(np.zeros(len(x), np.int64))))
    with pytest.raises(OnnxExportError, match="a loss cannot be exported"):
        export(model, np.ones((2, 3), np.float32), tmp_path / "m.onnx")
    with pytest.raises(OnnxExportError, match="empty tensor"):
        export(nn.Conv2d(2, 3, 3), np.ones((0, 2, 5, 5), np.float32), tmp_path / "m.onnx")
