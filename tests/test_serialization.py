"""convscope.save / convscope.load: one .npz, no pickle, atomic, clear errors."""

import os
import zipfile

import numpy as np
import pytest

import convscope as cs
from convscope import models


def test_round_trip_model_state(tmp_path):
    model = models.create("resnet20")
    path = tmp_path / "w.npz"
    cs.save(model.state_dict(), path)
    loaded = cs.load(path)
    assert list(loaded) == list(model.state_dict())
    fresh = models.create("resnet20")
    fresh.load_state_dict(loaded)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
        assert a.dtype == b.dtype
    with zipfile.ZipFile(path) as z:  # plain .npy members, nothing pickled
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(path, allow_pickle=False) as archive:
        assert archive["layer1.0.bn1.num_batches_tracked"].dtype == np.int64


def test_failed_save_keeps_existing_file(tmp_path):
    path = tmp_path / "w.npz"
    cs.save({"a": np.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="without pickle"):
        cs.save({"a": np.ones(3), "b": np.array(["text"], dtype=object)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temp file left behind


@pytest.mark.parametrize(
    "content,pattern",
    [
        (b"not a zip file at all", "not a weights file convscope knows"),
        (None, "is corrupt"),
    ],
)
def test_corrupt_or_foreign_files(tmp_path, content, pattern):
    path = tmp_path / "bad.npz"
    if content is None:  # an archive holding an object array (would need pickle)
        np.savez(path, a=np.array([{"x": 1}], dtype=object))
    else:
        path.write_bytes(content)
    with pytest.raises(cs.CheckpointError, match=pattern):
        cs.load(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "w.npz"
    cs.save(models.create("lenet5", in_channels=1).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(cs.CheckpointError):
        cs.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        cs.load(tmp_path / "nope.npz")
    assert not os.path.exists(tmp_path / "nope.npz")
