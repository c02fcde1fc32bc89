"""Data-parallel training under `mpiexec` (loopback only, every launch bounded by a timeout).

Weight tolerance: N ranks with batch b and one process with batch N*b add the same per-sample
gradients in a different order (each rank's sum, then the Allreduce), so each step's gradient
differs by a few float32 ulps; a handful of SGD steps at lr 0.05 keeps the weights within 1e-6
(about 10 ulps of the largest weight). A real mistake (a wrong shard, weight or augmentation)
moves them by more than 1e-3, which the control comparison in each test shows.

With batch norm the two runs also compute the statistics by different formulas (the
single-process kernel sums x - shift in float32, SyncBatchNorm sums x and x^2 in float64 per
rank), so every normalisation differs by float32 rounding. Over many float32 steps that
rounding is enough to flip a ReLU input lying within ~1e-6 of zero, and one flipped element
changes a gradient by ~1e-3 of its size, which training then amplifies: such a comparison
passes or fails by luck, not by correctness. So SyncBatchNorm's equivalence to batch norm on
the doubled batch is tested in float64 through the library (ResNet-20, six SGD steps: equal
to 1e-9, where rounding is ~1e-15 and no branch comes near flipping), and the CLI's
--sync-bn is tested over one step on what is continuous in the rounding: the running
statistics of the first forward pass (1e-4). Without SyncBatchNorm (each rank normalising its
own half batch) both comparisons differ by more than 1e-3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convscope

pytestmark = pytest.mark.mpi

SRC = str(Path(convscope.__file__).resolve().parents[1])
CLI = [sys.executable, "-c", "import sys; from convscope.cli import main; sys.exit(main())", "train"]
TIMEOUT = 120
ATOL = 1e-6
RTOL_DEEP_BN = 1e-4


def _env():
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CI", None)
    return env


def _mpiexec(args, cwd, n=2, timeout=TIMEOUT):
    return subprocess.run(
        ["mpiexec", "-n", str(n), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _single(args, cwd):
    return subprocess.run(CLI + args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def _weights(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith("model/")}


def _max_relative_diff(a, b):
    """The largest |a - b| of a tensor relative to the tensor's largest |b| (float tensors)."""
    return max(
        float(np.abs(a[k].astype(np.float64) - b[k]).max() / max(np.abs(b[k]).max(), 1e-30))
        for k in b
        if b[k].dtype.kind == "f"
    )


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """161 training images: global batches of 32 leave a last one of 1 (rank 1's shard is empty)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 16).astype(np.float32)
    folder = tmp_path_factory.mktemp("data")
    path = folder / "small.npz"
    np.savez(path, x_train=x[:161], y_train=d.target[:161], x_test=x[161:261], y_test=d.target[161:261])
    return str(path)


COMMON = ["--epochs", "1", "--no-progress", "--image-size", "28", "--lr", "0.05"]


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_two_ranks_equal_one_process_with_the_doubled_batch(tmp_path, data):
    args = [
        "--data",
        f"npz:{data}",
        "--model",
        "lenet5",
        "--augment",
        "crop+flip",
        "--epochs",
        "2",
        *COMMON[2:],
    ]
    dist = _ok(_mpiexec(CLI + args + ["--distributed", "--batch-size", "8", "--out", "d"], tmp_path))
    _ok(_single(args + ["--batch-size", "16", "--out", "s"], tmp_path))
    _ok(_single(args + ["--batch-size", "8", "--out", "control"], tmp_path))
    assert "2 processes" in dist.stderr and "1 thread per process" in dist.stderr
    assert sorted(os.listdir(tmp_path / "d")) == sorted(os.listdir(tmp_path / "s"))  # rank 0 alone wrote
    d, s = _weights(tmp_path / "d/last.npz"), _weights(tmp_path / "s/last.npz")
    assert _max_diff(d, s) <= ATOL
    assert _max_diff(_weights(tmp_path / "control/last.npz"), s) > 1e-3
    # the reduced training statistics and the sharded evaluation report the single-process numbers
    hd, hs = (json.loads((tmp_path / f"{r}/history.json").read_text()) for r in ("d", "s"))
    assert [e["train_accuracy"] for e in hd] == [e["train_accuracy"] for e in hs]
    assert [e["test_accuracy"] for e in hd] == [e["test_accuracy"] for e in hs]
    for key in ("train_loss", "test_loss"):
        assert [e[key] for e in hd] == pytest.approx([e[key] for e in hs], rel=1e-5)


def test_sync_bn_statistics_match_the_doubled_batch_and_plain_bn_do_not(tmp_path, data):
    with np.load(data) as f:  # one global batch of 16: one step, statistics of one forward pass
        np.savez(tmp_path / "one.npz", **{k: f[k][:16] if "train" in k else f[k] for k in f.files})
    args = ["--data", "npz:one.npz", "--model", "resnet20", *COMMON[:3], "--image-size", "8"]
    _ok(_mpiexec(CLI + args + ["--distributed", "--sync-bn", "--batch-size", "8", "--out", "sync"], tmp_path))
    _ok(_mpiexec(CLI + args + ["--distributed", "--batch-size", "8", "--out", "local"], tmp_path))
    _ok(_single(args + ["--batch-size", "16", "--out", "s"], tmp_path))
    sync, local, s = (_weights(tmp_path / f"{run}/last.npz") for run in ("sync", "local", "s"))
    stats = [k for k in s if "running_" in k]
    assert len(stats) == 2 * 19  # every batch norm of ResNet-20
    assert _max_relative_diff({k: sync[k] for k in stats}, {k: s[k] for k in stats}) <= RTOL_DEEP_BN
    assert all(np.array_equal(sync[k], s[k]) for k in s if "num_batches_tracked" in k)
    assert min(_max_relative_diff({k: local[k]}, {k: s[k]}) for k in stats) > 1e-3


SYNC_BN_FLOAT64 = """
import copy
import numpy as np
import convscope as cs
import convscope.nn.functional as F
from convscope import distributed as dist, optim
from convscope.autograd.tensor import Tensor
from convscope.distributed import comm
from convscope.distributed.sync_bn import SyncBatchNorm

dist.init()
r = dist.rank()
cs.manual_seed(0)
base = cs.models.create("resnet20", in_channels=1).double()
rng = np.random.default_rng(1)
batches = [(rng.random((16, 1, 8, 8)), rng.integers(0, 10, 16)) for _ in range(6)]


def train(model, shard):
    net = dist.DistributedDataParallel(model) if shard else model
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in batches:
        if shard:  # this rank's half of the global batch
            x, y = x[8 * r : 8 * r + 8], y[8 * r : 8 * r + 8]
        opt.zero_grad()
        F.cross_entropy(net(Tensor._wrap(x, False)), Tensor._wrap(y, False)).backward()
        if shard:
            net.allreduce_gradients()
        opt.step()
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


single = train(copy.deepcopy(base), shard=False)
sync = train(SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(base)), shard=True)
local = train(copy.deepcopy(base), shard=True)
floats = [k for k in single if single[k].dtype == np.float64]
rel = lambda a, k: float(np.abs(a[k] - single[k]).max() / max(np.abs(single[k]).max(), 1e-300))
row = f"{r} {len(floats)} {max(rel(sync, k) for k in floats)} {min(rel(local, k) for k in floats)}"
rows = comm.allgather_object(row)
if r == 0:
    print("\\n".join(rows), flush=True)
"""


def test_sync_bn_training_equals_the_doubled_batch_in_float64(tmp_path):
    (tmp_path / "sync64.py").write_text(SYNC_BN_FLOAT64)
    proc = _ok(_mpiexec([sys.executable, "sync64.py"], tmp_path))
    rows = sorted(line.split() for line in proc.stdout.splitlines())
    assert [row[0] for row in rows] == ["0", "1"]
    for _, n_tensors, sync, local in rows:
        assert int(n_tensors) == 19 + 19 * 4 + 2  # convs; BN weight, bias, running mean and var; fc
        assert float(sync) <= 1e-9  # the largest difference of any tensor
        assert float(local) > 1e-3  # the smallest: every tensor differs without SyncBatchNorm


def test_one_rank_equals_the_plain_run(tmp_path, data):
    args = ["--data", f"npz:{data}", "--model", "lenet5", "--augment", "crop", "--batch-size", "16", *COMMON]
    _ok(_mpiexec(CLI + args + ["--distributed", "--out", "d"], tmp_path, n=1))
    _ok(_single(args + ["--out", "s"], tmp_path))
    d, s = _weights(tmp_path / "d/last.npz"), _weights(tmp_path / "s/last.npz")
    assert all(np.array_equal(d[k], s[k]) for k in s)


def test_checkpoints_resume_across_distributed_and_single(tmp_path, data):
    # (no schedule: a run started with --epochs 1 keeps its one-epoch cosine plan when extended)
    args = ["--data", f"npz:{data}", "--model", "lenet5", "--scheduler", "none", *COMMON[2:]]
    _ok(_single(args + ["--epochs", "2", "--batch-size", "16", "--out", "full"], tmp_path))
    # one epoch on two ranks, the second in one process
    _ok(
        _mpiexec(CLI + args + ["--distributed", "--epochs", "1", "--batch-size", "8", "--out", "a"], tmp_path)
    )
    # --resume continues the run's own settings: only --epochs (to extend the plan) comes with it
    _ok(_single(["--no-progress", "--epochs", "2", "--resume", "--out", "a"], tmp_path))
    # one epoch in one process, the second on two ranks (batch per process: 8)
    _ok(_single(args + ["--epochs", "1", "--batch-size", "16", "--out", "b"], tmp_path))
    resumed = _mpiexec(
        CLI + ["--no-progress", "--distributed", "--epochs", "2", "--resume", "--out", "b"],
        tmp_path,
    )
    _ok(resumed)
    full = _weights(tmp_path / "full/last.npz")
    assert _max_diff(_weights(tmp_path / "a/last.npz"), full) <= ATOL
    assert _max_diff(_weights(tmp_path / "b/last.npz"), full) <= ATOL


def test_ctrl_c_saves_the_agreed_batch_and_resume_is_exact(tmp_path):
    args = ["--model", "lenet5", "--image-size", "28", "--epochs", "3", "--batch-size", "16", "--no-progress"]
    proc = subprocess.Popen(
        ["mpiexec", "-n", "2", *CLI, *args, "--distributed", "--out", "i"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (tmp_path / "i/history.csv").exists():  # inside epoch 2
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted in epoch 2 after batch" in err and "--resume --out i" in err
    assert err.count("interrupted in epoch") == 1  # rank 0 alone reports
    _ok(_mpiexec(CLI + ["--no-progress", "--distributed", "--resume", "--out", "i"], tmp_path))
    _ok(_mpiexec(CLI + args + ["--distributed", "--out", "u"], tmp_path))
    i, u = _weights(tmp_path / "i/last.npz"), _weights(tmp_path / "u/last.npz")
    assert all(np.array_equal(i[k], u[k]) for k in u)


FAULT = """
import os, signal, sys, time
import numpy as np
from convscope import distributed as dist
from convscope.distributed import comm
dist.init()
if dist.rank() == 1:
    time.sleep(0.5)
    if sys.argv[1] == "raise":
        raise RuntimeError("injected failure")
    os.kill(os.getpid(), signal.SIGKILL if sys.argv[1] == "kill" else signal.SIGTERM)
    time.sleep(30)
comm.allreduce_sum_(np.ones(4, np.float32))  # rank 0 waits here for a rank that never comes
print("not stopped")
"""


@pytest.mark.parametrize(
    "fault, message",
    [
        ("raise", "rank 1 of 2 failed with RuntimeError: injected failure; stopping all 2 processes"),
        ("term", "rank 1 of 2 received SIGTERM; stopping all 2 processes"),
        ("kill", "BAD TERMINATION"),
    ],
)
def test_a_failing_rank_stops_the_job_in_bounded_time(tmp_path, fault, message):
    (tmp_path / "fault.py").write_text(FAULT)
    t0 = time.monotonic()
    proc = _mpiexec([sys.executable, "fault.py", fault], tmp_path, timeout=60)
    assert time.monotonic() - t0 < 20
    assert proc.returncode != 0 and "not stopped" not in proc.stdout
    assert message in proc.stdout + proc.stderr


def test_a_rank_without_the_data_fails_the_job_before_training(tmp_path, data):
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(data, tmp_path / "small.npz")
    args = [
        *CLI,
        "--data",
        "npz:small.npz",
        "--model",
        "lenet5",
        *COMMON,
        "--distributed",
        "--out",
        str(tmp_path / "r"),
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        ["mpiexec", "-n", "1", "-wdir", str(tmp_path), *args, ":", "-n", "1", "-wdir", str(other), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert time.monotonic() - t0 < 60 and proc.returncode != 0
    assert "loading the data failed on rank 1" in proc.stderr and "no rank started training" in proc.stderr
    assert proc.stderr.count("error:") == 1 and not (tmp_path / "r").exists()


def test_mismatched_settings_are_detected_at_start(tmp_path, data):
    args = [*CLI, "--data", f"npz:{data}", "--model", "lenet5", *COMMON, "--distributed", "--out", "r"]
    proc = subprocess.run(
        ["mpiexec", "-n", "1", *args, "--seed", "0", ":", "-n", "1", *args, "--seed", "1"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode != 0
    assert "settings differ between ranks: seed=0 on rank 0 but 1 on rank 1" in proc.stderr


def test_distributed_outside_mpi_says_how_to_launch(tmp_path):
    env = {k: v for k, v in _env().items() if not k.startswith(("PMI_", "PMIX_", "OMPI_"))}
    proc = subprocess.run(
        CLI + ["--distributed"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 1 and "mpiexec -n 2 convscope train --distributed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_readme_example_trains_on_two_ranks(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    fence = readme.index("```python", readme.index("A training script with the library API"))
    start = fence + len("```python")
    (tmp_path / "train_ddp.py").write_text(readme[start : readme.index("```", start)])
    proc = _ok(_mpiexec([sys.executable, "train_ddp.py"], tmp_path))
    losses = [float(line.split("loss ")[1]) for line in proc.stdout.splitlines() if line.startswith("epoch")]
    assert len(losses) == 5 and losses[-1] < losses[0] / 5  # rank 0 alone prints, and it learns


API = """
import numpy as np
import convscope as cs
from convscope import distributed as dist, optim
from convscope.autograd.tensor import Tensor
from convscope.distributed import comm
import convscope.nn.functional as F

dist.init()
r = dist.rank()
cs.manual_seed(r)  # each rank draws different weights and data
model = cs.models.create("lenet5")
model.features.conv1.weight.data[...] += r  # certainly different before the broadcast
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
if r == 0:  # only rank 0 has momentum buffers
    loss = F.cross_entropy(model(cs.randn(2, 1, 28, 28)), Tensor._wrap(np.array([1, 2]), False))
    loss.backward()
    opt.step()
ddp = dist.DistributedDataParallel(model)
dist.broadcast_optimizer_state(opt)
flat = np.concatenate([p.data.ravel() for p in model.parameters()])
moms = np.concatenate([opt.state[p]["momentum_buffer"].ravel() for p in model.parameters()])
same = [np.array_equal(a, flat) for a in comm.allgather_object(flat)]
same_m = [np.array_equal(a, moms) for a in comm.allgather_object(moms)]
x = cs.randn(4, 1, 28, 28)
opt.zero_grad()
F.cross_entropy(ddp(x), Tensor._wrap(np.arange(4), False)).backward()
local = np.concatenate([p.grad.data.ravel() for p in model.parameters()])
ddp.allreduce_gradients()
mean = np.concatenate([p.grad.data.ravel() for p in model.parameters()])
expected = sum(comm.allgather_object(local)) / dist.size()
row = f"{r} {all(same)} {all(same_m)} {np.abs(mean - expected).max()} {np.abs(local - mean).max()}"
rows = comm.allgather_object(row)
if r == 0:  # one writer: two ranks printing at once may interleave on mpiexec's stdout
    print("\\n".join(rows), flush=True)
"""


def test_library_broadcasts_and_gradient_average(tmp_path):
    (tmp_path / "api.py").write_text(API)
    proc = _ok(_mpiexec([sys.executable, "api.py"], tmp_path))
    rows = sorted(line.split() for line in proc.stdout.splitlines())
    assert [row[:3] for row in rows] == [["0", "True", "True"], ["1", "True", "True"]]
    for row in rows:  # the mean of the ranks' gradients (float32 rounding), not the local one
        assert float(row[3]) <= 1e-6 and float(row[4]) > 1e-4
