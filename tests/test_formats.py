"""convscope.load/save across formats: PyTorch zip and legacy files, safetensors, nested .npz."""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import convscope as cs
from convscope import formats

torch = pytest.importorskip("torch")


def _np(t):
    return t.detach().contiguous().numpy() if t.dtype != torch.bfloat16 else t.float().numpy()


def _same(ours, theirs):
    """Bit-identical: same dtype (bf16 as float32), shape and bytes."""
    expected = _np(theirs)
    got = ours.data if isinstance(ours, cs.Tensor) else ours
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == expected.tobytes()


def _sample():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return OrderedDict(
        contiguous=torch.randn(3, 5, 2, 2, generator=g),
        transposed=torch.randn(5, 3, generator=g).t(),
        view=base[1:3, ::2],  # shares base's storage, offset and strides
        base=base,
        fp16=torch.randn(7, generator=g).half(),
        bf16=torch.randn(2, 3, generator=g).bfloat16(),
        f64=torch.randn(2, generator=g).double(),
        i64=torch.arange(5),
        i32=torch.arange(3, dtype=torch.int32),
        i16=torch.arange(3, dtype=torch.int16),
        i8=torch.arange(-2, 2, dtype=torch.int8),
        u8=torch.arange(4, dtype=torch.uint8),
        flag=torch.tensor([True, False]),
        scalar=torch.tensor(7),
        empty=torch.zeros(0, 3),
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_checkpoints_load_bit_identically(tmp_path, legacy):
    sd = _sample()
    path = tmp_path / "w.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    assert formats.detect_format(path) == ("torch-legacy" if legacy else "torch")
    loaded = cs.load(path)
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(sd)
    for key, value in sd.items():
        _same(loaded[key], value)
    assert np.shares_memory(loaded["view"].data, loaded["base"].data)


def test_nested_checkpoint_with_parameters_and_optimizer(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    model.train()(torch.randn(4, 3)).sum().backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.step()
    head = model[0].weight  # a Parameter, pickled through _rebuild_parameter
    obj = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "tied": [head, head]}
    path = tmp_path / "nested.pt"
    torch.save(obj, path)
    loaded = cs.load(path)
    assert loaded["epoch"] == 3
    for key, value in model.state_dict().items():
        _same(loaded["model"][key], value)
    buf = opt.state_dict()["state"][0]["momentum_buffer"]
    _same(loaded["optimizer"]["state"][0]["momentum_buffer"], buf)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert np.shares_memory(loaded["tied"][0].data, loaded["tied"][1].data)
    cs_model = cs.nn.Sequential(cs.nn.Linear(3, 2), cs.nn.BatchNorm1d(2))
    cs_model.load_state_dict(loaded["model"])
    np.testing.assert_array_equal(cs_model[0].weight.data, model[0].weight.detach().numpy())


def test_big_endian_storages(tmp_path):
    sd = {"w": torch.randn(3, 2), "i": torch.arange(4)}
    path = tmp_path / "be.pth"
    torch.save(sd, path)
    src = zipfile.ZipFile(path)
    out = tmp_path / "be2.pth"
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:
                itemsize = 4 if name.endswith("/0") else 8
                data = np.frombuffer(data, dtype=f"<{'f' if itemsize == 4 else 'i'}{itemsize}")
                data = data.astype(data.dtype.newbyteorder(">")).tobytes()
            z.writestr(name, data)
    loaded = cs.load(out)
    _same(loaded["w"], sd["w"])
    _same(loaded["i"], sd["i"])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": _Evil(marker)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(cs.UnsafeCheckpointError, match=r"(posix|os)\.system"):
        cs.load(path)
    assert not marker.exists()


def test_builtins_eval_and_unknown_opcodes_are_refused(tmp_path):
    payload = pickle.dumps({"a": 1}, protocol=2)
    evil = b"\x80\x02cbuiltins\neval\nX\x05\x00\x00\x001+1+1\x85R."
    for name, data, pattern in [
        ("eval", evil, r"builtins\.eval"),
        ("inst", b"(i__main__\nX\n.", "opcode INST"),
    ]:
        path = tmp_path / f"{name}.pth"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", data)
        with pytest.raises(cs.UnsafeCheckpointError, match=pattern):
            cs.load(path)
    ok = tmp_path / "ok.pth"
    with zipfile.ZipFile(ok, "w") as z:
        z.writestr("archive/data.pkl", payload)
    assert cs.load(ok) == {"a": 1}


def test_corrupt_torch_files_get_one_line_errors(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.randn(100)}, path)
    data = path.read_bytes()
    cases = {}
    cases["truncated"] = data[: len(data) // 2]
    no_pkl = tmp_path / "nopkl.pth"
    with zipfile.ZipFile(no_pkl, "w") as z:
        z.writestr("archive/data/0", b"1234")
    cases["no data.pkl"] = no_pkl.read_bytes()
    short = tmp_path / "short.pth"
    src = zipfile.ZipFile(path)
    with zipfile.ZipFile(short, "w") as z:
        for name in src.namelist():
            z.writestr(name, src.read(name)[:40] if name.endswith("/data/0") else src.read(name))
    cases["short storage"] = short.read_bytes()
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.randn(100)}, legacy, _use_new_zipfile_serialization=False)
    cases["legacy truncated"] = legacy.read_bytes()[:-100]
    patterns = {
        "truncated": "damaged or truncated",
        "no data.pkl": "without data.pkl",
        "short storage": "holds 40 bytes, but 100 FloatStorage elements need 400",
        "legacy truncated": "truncated",
    }
    for name, content in cases.items():
        bad = tmp_path / "bad.pth"
        bad.write_bytes(content)
        with pytest.raises(cs.CheckpointError, match=patterns[name]) as info:
            cs.load(bad)
        assert "\n" not in str(info.value)
    unknown = tmp_path / "unknown.pth"
    pkl = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nComplexFloatStorage\n"
        b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x01\x85K\x01\x85\x89)tR."
    )
    with zipfile.ZipFile(unknown, "w") as z:
        z.writestr("archive/data.pkl", pkl)
    with pytest.raises(cs.UnsafeCheckpointError, match="ComplexFloatStorage"):
        cs.load(unknown)


def test_convscope_pth_loads_in_torch(tmp_path):
    rng = np.random.default_rng(0)
    model = cs.models.create("lenet5", in_channels=1)
    opt = cs.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = cs.tensor(rng.standard_normal((2, 1, 28, 28)).astype(np.float32))
    model(x).sum().backward()
    opt.step()
    path = tmp_path / "m.pth"
    cs.save(model, path)
    theirs = torch.load(path, weights_only=True)
    assert list(theirs) == list(model.state_dict())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[key].numpy(), value.data)
        assert theirs[key].numpy().dtype == value.data.dtype
    cs.save(opt, tmp_path / "opt.pth")
    state = torch.load(tmp_path / "opt.pth", weights_only=True)
    np.testing.assert_array_equal(
        state["state"][0]["momentum_buffer"].numpy(), opt.state_dict()["state"][0]["momentum_buffer"]
    )
    mixed = {"a": np.arange(6, dtype=np.float16).reshape(2, 3).T, "n": [1, 2.5, "x", None, (True,)]}
    mixed["zero_d"] = np.array(5, dtype=np.int64)
    cs.save(mixed, tmp_path / "mixed.pt")
    back = torch.load(tmp_path / "mixed.pt", weights_only=True)
    np.testing.assert_array_equal(back["a"].numpy(), mixed["a"])
    assert back["zero_d"].shape == () and int(back["zero_d"]) == 5
    assert back["n"] == [1, 2.5, "x", None, (True,)]
    assert cs.load(tmp_path / "mixed.pt")["n"] == [1, 2.5, "x", None, (True,)]


def test_safetensors_round_trips_and_bfloat16(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import safetensors.numpy

    sd = {
        "w": torch.randn(3, 4),
        "h": torch.randn(5).half(),
        "b": torch.randn(2, 2).bfloat16(),
        "i": torch.arange(3),
    }
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file(sd, str(path), metadata={"source": "torch"})
    loaded = cs.load(path)
    for key, value in sd.items():
        _same(loaded[key], value)
    assert formats.safetensors_format.metadata(path) == {"source": "torch"}
    ours = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "n": np.array([1, 2])}
    ours["zero_d"] = np.array(7, dtype=np.int64)
    cs.save(ours, tmp_path / "o.safetensors", metadata={"epoch": "3"})
    back = safetensors.numpy.load_file(str(tmp_path / "o.safetensors"))
    for key, value in ours.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype and back[key].shape == value.shape
    back_t = safetensors_torch.load_file(str(tmp_path / "o.safetensors"))
    np.testing.assert_array_equal(back_t["conv.weight"].numpy(), ours["conv.weight"])
    with pytest.raises(TypeError, match="only name -> array"):
        cs.save({"a": {"b": np.ones(2)}}, tmp_path / "x.safetensors")


def test_safetensors_own_reader_matches_package(tmp_path, monkeypatch):
    import builtins

    ours = {"a": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), "b": np.arange(5, dtype=np.int16)}
    path = tmp_path / "o.safetensors"
    cs.save(ours, path)
    real_import = builtins.__import__

    def no_safetensors(name, *args, **kwargs):
        if name.startswith("safetensors"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_safetensors)
    loaded = cs.load(path)
    for key, value in ours.items():
        np.testing.assert_array_equal(loaded[key].data, value)


def test_hostile_safetensors_headers(tmp_path):
    path = tmp_path / "bad.safetensors"
    cases = [
        (struct.pack("<Q", 2**62) + b"{}", "claims"),
        (struct.pack("<Q", 30) + b'{"a": 1', "claims"),
        (_st({"a": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}, 8), "does not fit"),
        (_st({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, 4), "unknown dtype"),
        (
            _st(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                12,
            ),
            "overlap",
        ),
        (struct.pack("<Q", 8) + b"{not js}", "not valid JSON"),
    ]
    for content, pattern in cases:
        path.write_bytes(content)
        with pytest.raises(cs.CheckpointError, match=pattern):
            cs.load(path)


def _st(header, data_bytes):
    import json

    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data_bytes


def test_npz_nested_objects_and_suffixes(tmp_path):
    model = cs.models.create("lenet5", in_channels=1)
    opt = cs.optim.Adam(model.parameters(), lr=1e-3)
    x = cs.tensor(np.ones((1, 1, 28, 28), dtype=np.float32))
    model(x).sum().backward()
    opt.step()
    obj = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "names": ("a", "b")}
    cs.save(obj, tmp_path / "n.npz")
    raw = np.load(tmp_path / "n.npz", allow_pickle=False)
    assert "optimizer/state/0/exp_avg" in raw.files and "model/features.conv1.weight" in raw.files
    back = cs.load(tmp_path / "n.npz")
    assert back["epoch"] == 3 and back["names"] == ("a", "b")
    np.testing.assert_array_equal(
        back["optimizer"]["state"][0]["exp_avg"].data, opt.state_dict()["state"][0]["exp_avg"]
    )
    opt2 = cs.optim.Adam(model.parameters(), lr=1e-3)
    opt2.load_state_dict(cs.load(tmp_path / "n.npz")["optimizer"])
    cs.save(model, tmp_path / "m.npz")
    model.load_state_dict(cs.load(tmp_path / "m.npz"))
    with pytest.raises(ValueError, match="unknown suffix '.h5'"):
        cs.save(model, tmp_path / "m.h5")


def test_load_model_from_run_checkpoint(tmp_path):
    from convscope.checkpoint import save_checkpoint

    model = cs.models.create("lenet5", in_channels=1)
    save_checkpoint(tmp_path / "best.npz", model)
    rebuilt = cs.load_model(tmp_path / "best.npz")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[key].data, value.data)
    cs.save(model, tmp_path / "plain.npz")
    with pytest.raises(cs.CheckpointError, match="without convscope metadata"):
        cs.load_model(tmp_path / "plain.npz")
