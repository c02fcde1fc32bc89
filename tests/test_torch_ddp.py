"""examples/train_ddp.py under torchrun: 2 gloo processes over 127.0.0.1 = 1 process, doubled batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope as cs
from convscope import models

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_ddp.py"
ARGS = ["lenet5", "--image-size", "28", "--max-steps", "4", "--lr", "0.1", "--seed", "3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list, tmp_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_ddp_on_two_processes_equals_one_process_with_the_doubled_batch(tmp_path):
    one_process = [sys.executable, str(SCRIPT), *ARGS, "--batch-size", "32", "--out", "one/model.pth"]
    single = _run(one_process, tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    torchrun += ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    ddp = _run([*torchrun, str(SCRIPT), *ARGS, "--batch-size", "16", "--out", "two/model.pth"], tmp_path)
    assert (single["world_size"], ddp["world_size"], ddp["steps"]) == (1, 2, 4)
    one, two = cs.load(tmp_path / "one/model.pth"), cs.load(tmp_path / "two/model.pth")
    cs.manual_seed(3)
    start = models.create("lenet5").state_dict()
    assert list(one) == list(two) == list(start)
    moved = max(float(np.abs(one[k].data - start[k].data).max()) for k in one)
    assert moved > 1e-3, "training did not change the weights"
    for k in one:
        assert one[k].data.dtype == np.float32
        np.testing.assert_allclose(two[k].data, one[k].data, rtol=1e-5, atol=1e-6, err_msg=k)
    # the round trip into convscope: the checkpoint beside the .pth rebuilds the model with these weights
    model = cs.load_model(tmp_path / "two/model.npz")
    for k, v in model.state_dict().items():
        assert np.array_equal(v.data, two[k].data), k
    assert ddp["test_accuracy_convscope"] == ddp["test_accuracy_torch"]
