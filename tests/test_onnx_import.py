"""ONNX import: torch-written models exported by torch's TorchScript exporter and imported (outputs
equal onnxruntime's, gradients equal torch's, parameter counts), the convscope -> ONNX ->
convscope round trip, hand-built graphs for the exporters' patterns at opsets 11-20, the naming
rule, and the errors (unsupported ops all listed, bad files, several inputs, external data)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope as cs
from convscope import models, nn

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convscope.onnx import OnnxImportError, export, load  # noqa: E402
from convscope.onnx.importer import module_name  # noqa: E402
from onnx_helpers import assert_close_scaled, ours, run_ort  # noqa: E402
from torch_onnx_models import make_torch_model, torch_export  # noqa: E402

# torch model, spatial size; ResNet-18's two exports take a few seconds each
TORCH_CASES = [
    pytest.param("resnet18", 32, marks=pytest.mark.slow),
    ("mobilenet_v2_style", 16),
    ("squeezenet_style", 33),
]


def _weight_initializer_count(proto) -> int:
    """Elements of the initializers that are weights: Conv/Gemm/MatMul operands and batch norm's
    scale and bias (its mean and variance are running statistics, not parameters)."""
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    used = set()
    for n in proto.graph.node:
        positions = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (0, 1), "BatchNormalization": (1, 2)}
        for i in positions.get(n.op_type, ()):
            if i < len(n.input) and n.input[i] in inits:
                used.add(n.input[i])
    # torch's exporter dedups equal initializers through Identity nodes: count each use
    for n in proto.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    for n in proto.graph.node:
        if n.op_type == "BatchNormalization":
            used.update(v for v in n.input[1:3] if v in inits)
    return sum(inits[k].size for k in used)


def _grads(model_out, x):
    return x.grad


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "bn_kept"])
@pytest.mark.parametrize("name,size", TORCH_CASES)
def test_torch_model_imports_with_outputs_gradients_and_counts(name, size, fold, tmp_path):
    tm = make_torch_model(name)
    path = tmp_path / f"{name}.onnx"
    torch_export(tm, torch.randn(2, 3, size, size), path, do_constant_folding=fold)
    proto = onnx.load(path)
    assert proto.opset_import[0].version == 20  # torch 2.13's TorchScript exporter default
    model = load(path)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        assert_close_scaled(ours(model, x), run_ort(path, x), rel=2e-5, what=f"{name} batch {batch}")

    # gradients of a scalar function of the output, for the same input and weights
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    w = rng.standard_normal((3, 10)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    (tm(xt) * torch.tensor(w)).sum().backward()
    xc = cs.tensor(x, requires_grad=True)
    (model(xc) * cs.tensor(w)).sum().backward()
    assert_close_scaled(xc.grad.data, xt.grad.numpy(), rel=1e-4, what="input gradient")

    ours_params = list(model.parameters())
    n_ours = sum(p.numel() for p in ours_params)
    assert n_ours == _weight_initializer_count(proto)
    assert cs.summary(model, (3, size, size)).total_params == n_ours
    if not fold:  # batch-norm nodes kept: the parameters are torch's, one for one
        n_torch = sum(p.numel() for p in tm.parameters())
        assert n_ours == n_torch
        torch_params = list(tm.parameters())
        matched = 0
        for p in ours_params:
            twin = [
                q for q in torch_params if q.shape == p.shape and np.array_equal(q.detach().numpy(), p.data)
            ]
            assert len(twin) == 1, f"no unique torch parameter for one of shape {p.shape}"
            assert_close_scaled(p.grad.data, twin[0].grad.numpy(), rel=1e-4, what=f"grad {tuple(p.shape)}")
            matched += 1
        assert matched == len(torch_params)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(bns) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in tm.modules())


def test_imported_names_follow_the_rule(tmp_path):
    tm = make_torch_model("squeezenet_style")
    torch_export(tm, torch.randn(1, 3, 33, 33), tmp_path / "s.onnx")
    model = load(tmp_path / "s.onnx")
    names = [n for n, _ in model.named_children()]
    assert "features_features_0_Conv" in names and "features_features_3_squeeze_Conv" in names
    keys = set(model.state_dict())
    assert "features_features_0_Conv.weight" in keys and "features_features_0_Conv.bias" in keys
    assert isinstance(model.features_features_0_Conv, nn.Conv2d)


def test_module_name_rule():
    taken: set = set()
    assert module_name("/layer1/layer1.0/conv1/Conv", "Conv", 0, taken) == "layer1_layer1_0_conv1_Conv"
    assert module_name("/layer1/layer1.0/conv1/Conv", "Conv", 1, taken) == "layer1_layer1_0_conv1_Conv_2"
    assert module_name("", "Relu", 7, taken) == "Relu_7"
    assert module_name("0:conv", "Conv", 3, taken) == "n0_conv"
    assert module_name("//", "Add", 4, taken) == "Add_4"


ROUND_TRIP = [("lenet5", 28), ("simple", 28), ("tinyvgg", 64), ("resnet20", 32), ("unet", 32)]


@pytest.mark.parametrize("name,size", ROUND_TRIP)
def test_round_trip_gives_identical_outputs_and_summary(name, size, tmp_path):
    c = models.model_info(name).input_size[0]
    kwargs = {"input_size": [size, size]} if models.accepts(name, "input_size") else {}
    cs.manual_seed(0)
    model = models.create(name, num_classes=10, **kwargs).eval()
    rng = np.random.default_rng(0)
    export(model, rng.standard_normal((2, c, size, size)).astype(np.float32), tmp_path / "m.onnx")
    back = load(tmp_path / "m.onnx")
    for batch in (1, 3):
        x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
        np.testing.assert_array_equal(ours(back, x), ours(model, x))
    a, b = cs.summary(model, (c, size, size)), cs.summary(back, (c, size, size))
    assert (a.total_params, a.trainable_params, a.total_macs) == (
        b.total_params,
        b.trainable_params,
        b.total_macs,
    )
    assert a.receptive_field == b.receptive_field and a.layers_counted == b.layers_counted
    # and once more: the imported model exports again to the same graph operators
    again = export(back, np.zeros((1, c, size, size), np.float32), tmp_path / "again.onnx")
    first = onnx.load(tmp_path / "m.onnx")
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in first.graph.node]


def _train_losses(model, steps=4):
    opt = cs.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x = cs.tensor(rng.standard_normal((8, 3, 16, 16)).astype(np.float32))
    y = cs.tensor(rng.integers(0, 10, 8))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_imported_model_trains_like_the_original(tmp_path):
    # batch norm in training mode too: the imported BatchNormalization nodes are batch-norm layers
    cs.manual_seed(0)
    model = models.create("resnet20", num_classes=10).eval()
    export(model, np.zeros((1, 3, 16, 16), np.float32), tmp_path / "m.onnx")
    back = load(tmp_path / "m.onnx").train()
    ours_losses, original = _train_losses(back), _train_losses(model.train())
    np.testing.assert_allclose(ours_losses, original, rtol=1e-5)
    assert ours_losses[-1] < ours_losses[0]
    for bn in (m for m in back.modules() if isinstance(m, nn.BatchNorm2d)):
        assert int(bn.num_batches_tracked.item()) == 4


# ------------------------------------------------------------ hand-built graphs
def _model(nodes, inits, in_shape, out_name="y", opset=13, inputs=None, elem=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", elem, in_shape)],
        [helper.make_tensor_value_info(out_name, elem, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    ir = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _check_against_ort(proto, tmp_path, x):
    path = tmp_path / "h.onnx"
    onnx.save(proto, path)
    model = load(path)
    assert_close_scaled(ours(model, x), run_ort(path, x), rel=1e-5)
    xc = cs.tensor(x, requires_grad=True)
    model(xc).sum().backward()  # backward runs through every imported node
    assert xc.grad is not None and np.isfinite(xc.grad.data).all()
    return model


def test_opset11_forms_unsqueeze_squeeze_softmax_reducemean(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="relu6"),
        helper.make_node("ReduceMean", ["r"], ["m"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m"], ["u"], name="unsq", axes=[2]),
        helper.make_node("Squeeze", ["u"], ["s"], name="sq", axes=[2]),
        helper.make_node("Softmax", ["r"], ["sm"], name="softmax", axis=1),  # opset 11: over C*H*W
        helper.make_node("ReduceSum", ["sm"], ["t"], name="total", axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["t"], ["t2"], name="unsq2", axes=[1]),
        helper.make_node("Mul", ["s", "t2"], ["y"], name="mul"),
    ]
    inits = {"w": w, "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    proto = _model(nodes, inits, ["N", 3, 6, 6], opset=11)
    x = rng.standard_normal((3, 3, 6, 6)).astype(np.float32)
    _check_against_ort(proto, tmp_path, x)


def test_nhwc_input_transpose_is_absorbed(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w", "b"], ["c"], name="conv", pads=[0, 1, 1, 0]),
        helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
        helper.make_node("HardSigmoid", ["h"], ["g"], name="hsig", alpha=0.3, beta=0.4),
        helper.make_node("GlobalAveragePool", ["g"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["y"], name="flat"),
    ]
    proto = _model(nodes, {"w": w, "b": b}, ["N", 7, 8, 3], opset=14)
    path = tmp_path / "nhwc.onnx"
    onnx.save(proto, path)
    model = load(path)
    assert model.input_layout == "NHWC" and model.input_shape == (3, 7, 8)
    x_nhwc = rng.standard_normal((2, 7, 8, 3)).astype(np.float32)
    got = ours(model, np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    assert_close_scaled(got, run_ort(path, x_nhwc), rel=1e-5)


def test_unsupported_ops_are_all_listed(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("Erf", ["a"], ["b"], name="bad_erf"),
        helper.make_node("LRN", ["b"], ["y"], name="bad_lrn", size=3),
    ]
    onnx.save(_model(nodes, {}, [1, 2, 3, 3]), tmp_path / "u.onnx")
    with pytest.raises(OnnxImportError) as err:
        load(tmp_path / "u.onnx")
    text = str(err.value)
    assert "opset 13" in text and "Erf (bad_erf)" in text and "LRN (bad_lrn)" in text
    assert "supported op types" in text and "Conv" in text and "Relu (ok)" not in text


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07\x12\x03not a model at all" * 5)
    with pytest.raises(OnnxImportError, match="junk.onnx"):
        load(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.onnx")
    two = _model(
        [helper.make_node("Add", ["x", "z"], ["y"], name="add")],
        {},
        None,
        inputs=[
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2]),
        ],
    )
    onnx.save(two, tmp_path / "two.onnx")
    with pytest.raises(OnnxImportError, match="one input, got 2"):
        load(tmp_path / "two.onnx")
    old = _model([helper.make_node("Relu", ["x"], ["y"])], {}, [1, 2], opset=10)
    onnx.save(old, tmp_path / "old.onnx")
    with pytest.raises(OnnxImportError, match="opset 10; supported are opsets 11-20"):
        load(tmp_path / "old.onnx")


def test_external_data_is_refused(tmp_path):
    w = np.ones((4, 1, 3, 3), np.float32)
    proto = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], {"w": w}, [1, 1, 5, 5])
    onnx.save(proto, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0, location="ext.bin")
    with pytest.raises(OnnxImportError, match="external data"):
        load(tmp_path / "ext.onnx")


class _TorchLambda(torch.nn.Module):
    def __init__(self, fn, *mods):
        super().__init__()
        self.fn = fn
        self.mods = torch.nn.ModuleList(mods)

    def forward(self, x):
        return self.fn(x, *self.mods)


tF = torch.nn.functional
TORCH_OPS = [
    ("upsample_nearest", lambda: torch.nn.Upsample(scale_factor=2), (2, 3, 4)),
    ("upsample_bilinear", lambda: torch.nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 4)),
    (
        "upsample_bilinear_ac",
        lambda: torch.nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
        (2, 3, 4),
    ),
    ("conv_transpose", lambda: torch.nn.ConvTranspose2d(3, 2, 3, 2, 1, output_padding=1), (3, 4, 5)),
    ("conv_reflect", lambda: torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (2, 6, 5)),
    ("conv_circular", lambda: torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), (2, 6, 5)),
    ("conv_dilated_groups", lambda: torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), (4, 7, 7)),
    ("conv1d", lambda: torch.nn.Conv1d(3, 4, 5, stride=2, padding=2), (3, 17)),
    ("avgpool", lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=False, count_include_pad=False), (2, 9, 8)),
    ("maxpool_dilated", lambda: torch.nn.MaxPool2d(3, 2, 1, dilation=2), (2, 11, 9)),
    ("adaptive_even", lambda: torch.nn.AdaptiveAvgPool2d(2), (2, 6, 6)),
    (
        "activations",
        lambda: _TorchLambda(lambda x: torch.sigmoid(x) + torch.tanh(x) - tF.leaky_relu(x, 0.1)),
        (5,),
    ),
    ("softmaxes", lambda: _TorchLambda(lambda x: torch.softmax(x, 1) + torch.log_softmax(x, -1)), (3, 4)),
    ("hard_activations", lambda: _TorchLambda(lambda x: tF.hardswish(x) * tF.hardsigmoid(x)), (3, 4)),
    (
        "pad_modes",
        lambda: _TorchLambda(lambda x: tF.pad(tF.pad(x, (1, 2, 2, 1), "reflect"), (1, 1, 0, 2), "replicate")),
        (2, 5, 5),
    ),
    (
        "bn1d_linear",
        lambda: torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU()),
        (6,),
    ),
]


@pytest.mark.parametrize("case", TORCH_OPS, ids=[c[0] for c in TORCH_OPS])
def test_torch_exported_ops_import(case, tmp_path):
    _, factory, shape = case
    torch.manual_seed(0)
    tm = factory().eval()
    for m in tm.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch_export(tm, torch.randn(2, *shape), tmp_path / "t.onnx")
    model = load(tmp_path / "t.onnx")
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    assert_close_scaled(ours(model, x), run_ort(tmp_path / "t.onnx", x), rel=1e-5)
    xt = torch.tensor(x, requires_grad=True)
    tm(xt).square().sum().backward()
    xc = cs.tensor(x, requires_grad=True)
    (model(xc) * model(xc)).sum().backward()
    assert_close_scaled(xc.grad.data, xt.grad.numpy(), rel=1e-4, what="input gradient")
