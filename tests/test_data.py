"""convscope.data: sources, hold-out, preprocessing, loader and augmentation (no network)."""

import gzip
import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.data import (
    ArrayDataset,
    Compose,
    DataError,
    DataLoader,
    Normalizer,
    RandomCrop,
    RandomHorizontalFlip,
    load_cifar_folder,
    load_dataset,
    load_idx_folder,
    load_image_folder,
    parse_spec,
    prepare_image,
    stratified_split,
)

# the shared MNIST t10k files live beside the repository (../shared), never inside it
MNIST = next(
    (
        str(p)
        for p in (
            os.environ.get("CONVSCOPE_MNIST_DIR"),
            "/work/shared/data/mnist",
            Path(__file__).resolve().parents[2] / "shared/data/mnist",
        )
        if p and (Path(p) / "t10k-images-idx3-ubyte.gz").is_file()
    ),
    None,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_shapes_and_ranges(digits):
    tr, te = digits.train, digits.test
    assert tr.x.shape == (1437, 1, 8, 8) and te.x.shape == (360, 1, 8, 8) and len(tr) == 1437
    assert tr.x.dtype == np.float32 and tr.y.dtype == np.int64 and tr.x.min() == 0 == tr.x.max() - 1
    assert tr.num_classes == 10 and tr.input_shape == (1, 8, 8)
    assert "held out a stratified 20% (360 images)" in digits.note and "seed 0" in digits.note


def test_stratified_split_proportions_seeded_disjoint():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, te = stratified_split(y, 0.2, seed=3)
    assert len(te) == 40 and len(tr) == 160 and np.bincount(y[te]).tolist() == [20, 10, 6, 4]
    assert np.intersect1d(tr, te).size == 0 and np.union1d(tr, te).size == 200
    assert np.array_equal(te, stratified_split(y, 0.2, seed=3)[1])
    assert not np.array_equal(te, stratified_split(y, 0.2, seed=4)[1])
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(DataError, match="test split"):
            stratified_split(y, bad)


@pytest.mark.skipif(
    MNIST is None, reason="no MNIST t10k files in ../shared/data/mnist (or $CONVSCOPE_MNIST_DIR)"
)
def test_real_mnist_one_split():
    raw = load_idx_folder(MNIST)
    assert list(raw) == ["test"] and raw["test"].y[0] == 7 and len(raw["test"]) == 10000
    splits = load_dataset(MNIST)  # auto-detected as mnist
    assert len(splits.train) == 8000 and len(splits.test) == 2000
    assert splits.train.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert splits.train.x.dtype == np.float32 and splits.train.x.min() == 0 == splits.train.x.max() - 1
    assert set(np.unique(splits.test.y)) == set(range(10)) and "(2000 images)" in splits.note


def _write_bytes(path, data, gz=False):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return data


def _write_idx(path, magic, array, gz=False):
    head = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)  # big-endian magic, dims
    return _write_bytes(path, head + array.astype(np.uint8).tobytes(), gz)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_and_corruption(tmp_path, gz):
    imgs, labels = np.random.default_rng(0).integers(0, 256, (20, 5, 4)), np.arange(20) % 3
    img_path = tmp_path / ("train-images-idx3-ubyte" + ".gz" * gz)
    raw = _write_idx(img_path, 2051, imgs, gz)
    _write_idx(tmp_path / ("train-labels-idx1-ubyte" + ".gz" * gz), 2049, labels, gz)
    splits = load_dataset(f"mnist:{tmp_path}", test_split=0.25)
    assert splits.train.x.shape == (15, 1, 5, 4) and len(splits.test) == 5
    assert np.isclose(splits.train.x.sum() + splits.test.x.sum(), imgs.sum() / 255, rtol=1e-5)
    broken = [
        (lambda: _write_bytes(img_path, raw[:-7], gz), "file truncated.*expected"),
        (lambda: _write_idx(img_path, 2049, imgs, gz), "magic number 2049.*expected 2051"),
        (lambda: _write_idx(img_path, 2051, imgs[:19], gz), "20 labels.*19 images"),
    ]
    broken += [(lambda: img_path.write_bytes(gzip.compress(raw)[:-30]), "cannot read IDX")] * gz
    for damage, match in broken:
        damage()
        with pytest.raises(DataError, match=match) as info:
            load_dataset(f"mnist:{tmp_path}")
        assert str(tmp_path) in str(info.value)


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 'str' opcodes, the way the official CIFAR files were made."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_bytes(self, obj):
        head = (
            pickle.SHORT_BINSTRING + bytes([len(obj)])
            if len(obj) < 256
            else pickle.BINSTRING + struct.pack("<i", len(obj))
        )
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes


def _dump(path, obj, py2=False):
    buf = io.BytesIO()
    (_Py2Pickler if py2 else pickle.Pickler)(buf, protocol=2).dump(obj)
    old = b"numpy.core.multiarray" if py2 else b"numpy._core.multiarray"  # py2: NumPy 1 name
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray", old))


@pytest.mark.parametrize("py2", [False, True])
def test_fake_cifar10_round_trip(tmp_path, py2):
    (root := tmp_path / "cifar-10-batches-py").mkdir()
    rng = np.random.default_rng(1)
    data, labels = rng.integers(0, 256, (18, 3072), dtype=np.uint8), rng.integers(0, 10, 18)
    for i, name in enumerate(["data_batch_1", "data_batch_2", "test_batch"]):
        part = slice(6 * i, 6 * i + 6)
        _dump(root / name, {b"batch_label": b"x", b"data": data[part], b"labels": labels[part].tolist()}, py2)
    _dump(root / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)]}, py2)
    splits = load_dataset(str(tmp_path))  # auto-detected, inner folder found
    assert splits.train.x.shape == (12, 3, 32, 32) and splits.test.x.shape == (6, 3, 32, 32)
    assert splits.classes == [f"c{i}" for i in range(10)] and splits.note == ""
    assert np.allclose(splits.train.x[7], data[7].reshape(3, 32, 32) / 255.0)
    assert splits.train.y.tolist() + splits.test.y.tolist() == labels.tolist()


def test_fake_cifar100_and_wrong_kind(tmp_path):
    _dump(
        tmp_path / "train",
        {b"data": np.zeros((4, 3072), np.uint8), b"fine_labels": [0, 99, 5, 5], b"coarse_labels": [0] * 4},
    )
    _dump(tmp_path / "meta", {b"fine_label_names": [b"n%d" % i for i in range(100)]})
    splits = load_dataset(f"cifar100:{tmp_path}", test_split=0.5)
    assert splits.num_classes == 100 and len(splits.train) == 2 and splits.classes[99] == "n99"
    with pytest.raises(DataError, match="looks like CIFAR-100"):
        load_cifar_folder(str(tmp_path), 10)


@pytest.mark.parametrize("payload", ["os", "eval", "truncated"])
def test_malicious_or_broken_cifar_pickle_refused(tmp_path, payload):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = {"os": Evil(), "eval": eval, "truncated": 0}[payload]
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, bad]}, protocol=2)
    (tmp_path / "test_batch").write_bytes(blob[: len(blob) // 2] if payload == "truncated" else blob)
    match = "truncated" if payload == "truncated" else r"global '(posix|__builtin__)\.(system|eval)'"
    with pytest.raises(DataError, match="test_batch.*" + match):
        load_dataset(f"cifar10:{tmp_path}")
    assert not (tmp_path / "pwned").exists()


def _img(path, size=(6, 5), mode="L", value=128):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    color = value if mode in ("L", "I;16") else (value, 0, 255 - value) + ((255,) if mode == "RGBA" else ())
    Image.new(mode, size, color).save(path)


def test_image_folder_basic_and_splits(tmp_path):
    for i in range(3):
        _img(tmp_path / "flat/cat" / f"{i}.png", value=10)
        _img(tmp_path / "flat/dog" / f"{i}.jpg", value=200)
    splits = load_dataset(f"folder:{tmp_path / 'flat'}", test_split=1 / 3)
    assert splits.classes == ["cat", "dog"] and splits.input_shape == (1, 5, 6)
    assert len(splits.train) == 4 and np.bincount(splits.test.y).tolist() == [1, 1]
    for sub in ("train/a", "train/b", "test/a", "test/b"):
        _img(tmp_path / "split" / sub / "x.bmp", mode="RGB")
    splits = load_dataset(str(tmp_path / "split"), image_size=(7, 9))
    assert splits.note == "" and splits.train.x.shape == (2, 3, 7, 9) and len(splits.test) == 2


def test_image_folder_sizes_and_modes(tmp_path):
    _img(tmp_path / "a/0.png", size=(8, 8))
    _img(tmp_path / "b/0.png", size=(10, 6))
    with pytest.raises(DataError, match="image size"):
        load_image_folder(tmp_path)
    splits = load_dataset(str(tmp_path), image_size=4, test_split=0.5)
    assert splits.train.x.shape == (1, 1, 4, 4)
    by_label = {int(y): x for part in splits for x, y in zip(part.x, part.y, strict=True)}
    assert np.array_equal(prepare_image(tmp_path / "a/0.png", 1, 4)[0], by_label[0])  # as trained
    _img(tmp_path / "b/0.png", size=(8, 8), mode="RGB")  # now one grey, one colour
    data, note = load_image_folder(tmp_path)
    assert data["all"].x.shape == (2, 3, 8, 8) and "1 of 2 images are colour" in note
    assert load_image_folder(tmp_path, mode="gray")[0]["all"].x.shape == (2, 1, 8, 8)
    with pytest.raises(DataError, match="auto, gray, rgb"):
        load_image_folder(tmp_path, mode="cmyk")


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    _img(tmp_path / "one/only/0.png")
    _img(tmp_path / "d/cat/0.png")
    (tmp_path / "d/dog").mkdir()
    for folder, junk, match in [
        ("nope", None, "image folder not found"),
        ("empty", None, "one sub-folder per class"),
        ("one", None, "at least 2 class folders"),
        ("d", None, r"class folder .*dog has no images"),
        ("d", "fake.png", r"fake\.png is not a readable image"),
        ("d", "notes.txt", r"notes\.txt is not an image file"),
    ]:
        for old in (tmp_path / "d/dog").iterdir():
            old.unlink()
        if junk:
            (tmp_path / "d/dog" / junk).write_text("not an image")
        with pytest.raises(DataError, match=match):
            load_image_folder(tmp_path / folder)


@pytest.mark.parametrize("layout", ["nhw", "nchw", "nhwc", "float", "split"])
def test_npz_variants(tmp_path, layout):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (10, 6, 6), dtype=np.uint8), np.arange(10) % 2
    arrays = {
        "nhw": {"x": x, "y": y},
        "nchw": {"x": x[:, None], "y": y},
        "nhwc": {"x": np.stack([x] * 3, -1), "y": y},
        "float": {"x": x / 255.0, "y": y},
        "split": {"x_train": x[:6], "y_train": y[:6], "x_test": x[6:], "y_test": y[6:]},
    }[layout]
    np.savez(tmp_path / "d.npz", classes=np.array(["even", "odd"]), **arrays)
    splits = load_dataset(str(tmp_path / "d.npz"), test_split=0.2)
    assert splits.input_shape == (3 if layout == "nhwc" else 1, 6, 6)
    assert splits.classes == ["even", "odd"] and splits.note.startswith("d has one split") != (
        layout == "split"
    )
    assert len(splits.train) + len(splits.test) == 10 and splits.train.x.max() <= 1.0
    both = np.concatenate([splits.train.x, splits.test.x])[:, 0]
    assert np.isclose(both.sum(), x.sum() / 255.0, rtol=1e-5)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.full((4, 2, 2), 3.0), "y": np.zeros(4, int)}, "float 'x' ranges 3..3; expected finite"),
        ({"images": np.zeros((4, 2, 2))}, "arrays \\['images'\\]; expected x and y"),
        ({"x": np.zeros((4, 2, 2)), "y": np.zeros(3, int)}, "4 images in 'x' but 3 labels"),
        ({"x": np.zeros((2, 2, 2)), "y": np.array([0, {}], dtype=object)}, "pickle"),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=f"bad.npz.*{match}"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def test_normalizer_fit_on_train_only_and_round_trip(digits):
    norm = Normalizer.fit(digits.train.x)
    assert np.isclose(norm.mean[0], digits.train.x.mean(), atol=1e-6)
    assert not np.isclose(norm.mean[0], digits.test.x.mean(), atol=1e-6)
    out = norm(digits.train.x)
    assert out.dtype == np.float32 and abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert np.array_equal(again(digits.test.x), norm(digits.test.x))
    with pytest.raises(DataError, match="expected .*3, H, W"):
        Normalizer([0, 0, 0], [1, 1, 1])(digits.test.x)


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "L", "RGB"])
def test_prepare_image_any_mode(tmp_path, mode):
    img = (
        Image.new("RGB", (12, 9), (200, 100, 50)).convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.full((9, 12), 65535, np.uint16))
    )
    for channels in (1, 3):
        x = prepare_image(img, channels, (4, 5))
        assert x.shape == (1, channels, 4, 5) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert mode != "I;16" or np.allclose(x, 1.0)  # 16-bit white stays white
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.png"):
        prepare_image(tmp_path / "junk.png", 1, 4)


def test_loader_order_determinism_and_drop_last():
    ds = ArrayDataset(np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), np.arange(10) % 3)
    assert [y.tolist() for _, y in DataLoader(ds, batch_size=4)] == [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0]]
    assert len(DataLoader(ds, 4)) == 3 and len(DataLoader(ds, 4, drop_last=True)) == 2
    assert [len(x) for x, _ in DataLoader(ds, 4, drop_last=True)] == [4, 4]
    a, b = DataLoader(ds, 4, shuffle=True, seed=5), DataLoader(ds, 4, shuffle=True, seed=5)
    e0, e1 = (np.concatenate([x.ravel() for x, _ in a]) for _ in range(2))
    assert sorted(e0) == list(range(10)) and not np.array_equal(e0, e1)
    b.set_epoch(1)  # a resumed run sees epoch 1 exactly
    assert np.array_equal(np.concatenate([x.ravel() for x, _ in b]), e1)
    assert np.array_equal(np.concatenate([x.ravel() for x, _ in b.iter_epoch(1, start_batch=1)]), e1[4:])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, 0)


def test_augmentations_shapes_and_determinism():
    batch, rng = np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32), np.random.default_rng(2)
    out = RandomCrop(8, padding=2)(batch, np.random.default_rng(1))
    rng1 = np.random.default_rng(1)  # the same draws, in the same order
    top, left = rng1.integers(0, 5, 16), rng1.integers(0, 5, 16)
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    assert out.shape == batch.shape and len(set(zip(top, left, strict=True))) > 1
    for i in range(16):  # slow obvious reference
        assert np.array_equal(out[i], padded[i, :, top[i] : top[i] + 8, left[i] : left[i] + 8])
    assert RandomCrop((4, 6))(batch, rng).shape == (16, 3, 4, 6)
    assert np.array_equal(RandomHorizontalFlip(1.0)(batch, rng), batch[..., ::-1])
    with pytest.raises(ValueError, match="larger than the padded"):
        RandomCrop(13, padding=2)(batch, rng)
    aug, ds = Compose([RandomCrop(8, 1), RandomHorizontalFlip()]), ArrayDataset(batch, np.zeros(16, int))
    first, resumed = (DataLoader(ds, 5, shuffle=True, seed=3, transform=aug) for _ in range(2))
    full = [x for x, _ in first.iter_epoch(2)]  # a resumed run re-draws the same augmentation
    assert all(
        np.array_equal(p, q) for p, q in zip(full[1:], (x for x, _ in resumed.iter_epoch(2, 1)), strict=True)
    )
    assert len(full) == 4 and not np.array_equal(full[0], batch[first.permutation(2)[:5]])


def test_parse_spec(tmp_path):
    assert parse_spec("digits") == ("digits", None)
    assert parse_spec(f"folder:{tmp_path}") == parse_spec(str(tmp_path)) == ("folder", str(tmp_path))
    for spec, match in [
        ("imagenet:/tmp", "unknown data kind 'imagenet'.*digits, mnist:PATH"),
        ("mnist:/no/such/dir", "does not exist"),
        ("mnist:", "has no path"),
        ("/no/such/path", "neither a known kind nor an existing path"),
    ]:
        with pytest.raises(DataError, match=match):
            parse_spec(spec)
