"""Train a convscope model on several processes, GPUs or machines with PyTorch's DistributedDataParallel.

The model (a zoo name such as ``resnet20``, or a run's checkpoint ``runs/<run>/best.npz``) is
turned into its torch twin with ``convscope.torch.to_torch``, wrapped in
``torch.nn.parallel.DistributedDataParallel`` and trained; rank 0 then writes the weights as a
PyTorch ``.pth`` state dict (``convscope.load`` reads it) and, next to it, a convscope checkpoint
``.npz`` (model name and config, preprocessing, classes) that ``convscope evaluate``,
``predict``, ``serve`` and ``explain`` take as they are.

Each step reads one global batch of ``batch_size * world_size`` images (the same seeded
shuffle in every process) and each process takes its own slice, so for a model without batch
norm or dropout N processes with ``--batch-size B`` compute what one process computes with
``--batch-size N*B``, up to float rounding. Batch norm normalises over each process's slice
(as DDP does) unless ``--sync-bn`` (GPUs only) makes it use the whole global batch.

Run it (the ``--`` options after the script are this script's):

    # CPU, 2 processes on this machine (gloo):
    torchrun --nproc_per_node 2 examples/train_ddp.py lenet5 --data mnist:../shared/data/mnist \
        --image-size 28 --epochs 2 --batch-size 64 --out runs/ddp-lenet5/model.pth

    # one machine with 4 GPUs (NCCL, one GPU per process):
    torchrun --nproc_per_node 4 examples/train_ddp.py resnet20 --data cifar10:~/data/cifar-10-batches-py \
        --epochs 30 --batch-size 128 --lr 0.1 --sync-bn --out runs/ddp-resnet20/model.pth

    # two machines with 8 GPUs each: run on both, with the first machine's address
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 \
        --rdzv-id resnet20-ddp examples/train_ddp.py resnet20 --data cifar10:/data/cifar ...

Without torchrun the script runs as one process (world size 1).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import convscope
from convscope import models
from convscope.checkpoint import load_checkpoint, save_checkpoint
from convscope.data.preprocess import Normalizer
from convscope.data.sources import load_dataset
from convscope.torch import to_torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a zoo model name (e.g. resnet20) or a run checkpoint (.npz or run folder)")
    p.add_argument("--data", default="digits", help="data spec as for `convscope train` (default digits)")
    p.add_argument("--image-size", type=int, default=None, help="resize the images to this size")
    p.add_argument("--test-split", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    p.add_argument("--batch-size", type=int, default=32, help="images per process and step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    p.add_argument("--sync-bn", action="store_true", help="batch norm over the global batch (GPUs)")
    p.add_argument("--timeout", type=float, default=300, help="seconds a collective may wait")
    p.add_argument(
        "--out", default="ddp-model.pth", help="the .pth to write (and a .npz checkpoint beside it)"
    )
    return p.parse_args(argv)


def setup(args) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = args.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    return rank, world, device


def build(args, splits):
    """The convscope model, its normaliser and the checkpoint metadata to carry over."""
    train = splits.train
    if os.path.exists(args.source):
        ckpt = load_checkpoint(args.source)
        model = ckpt.build_model()
        return model, Normalizer.from_dict(ckpt.preprocessing["normalizer"]), ckpt.classes
    convscope.manual_seed(args.seed)
    c, h, w = train.input_shape
    kwargs = {"input_size": [h, w]} if models.accepts(args.source, "input_size") else {}
    model = models.create(args.source, num_classes=train.num_classes, in_channels=c, **kwargs)
    return model, Normalizer.fit(train.x), splits.classes


def accuracy(net, x: np.ndarray, y: np.ndarray, device) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat(
            [net(torch.from_numpy(x[i : i + 256]).to(device)).argmax(1).cpu() for i in range(0, len(x), 256)]
        )
    return float((pred.numpy() == y).mean())


def main(argv=None) -> int:
    args = parse_args(argv)
    rank, world, device = setup(args)
    splits = load_dataset(args.data, test_split=args.test_split, seed=args.seed, image_size=args.image_size)
    model, normalizer, classes = build(args, splits)
    model.train()
    x_train = normalizer(splits.train.x).astype(np.float32)
    y_train = splits.train.y.astype(np.int64)
    net = to_torch(model).to(device)
    if args.sync_bn:
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    ddp = net  # one process: no wrapper needed
    if world > 1:
        ddp = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(
        ddp.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    global_batch = args.batch_size * world
    steps_per_epoch = len(x_train) // global_batch
    if steps_per_epoch == 0:
        raise SystemExit(
            f"train_ddp: {len(x_train)} training images are fewer than one global batch ({global_batch})"
        )
    step = 0
    for epoch in range(args.epochs):
        order = np.random.default_rng(args.seed + epoch).permutation(len(x_train))
        for s in range(steps_per_epoch):
            if args.max_steps is not None and step >= args.max_steps:
                break
            batch = order[s * global_batch : (s + 1) * global_batch]
            mine = batch[rank * args.batch_size : (rank + 1) * args.batch_size]
            xb = torch.from_numpy(x_train[mine]).to(device)
            yb = torch.from_numpy(y_train[mine]).to(device)
            opt.zero_grad()
            loss = loss_fn(ddp(xb), yb)
            loss.backward()  # DDP averages the gradients over the processes here
            opt.step()
            step += 1
        if rank == 0:
            print(
                f"epoch {epoch + 1}/{args.epochs}: last loss {loss.item():.4f} ({step} steps, world {world})"
            )
    if rank == 0:
        save_outputs(args, net, model, normalizer, classes, splits, device, world, step)
    if world > 1:
        dist.barrier()
        # release DDP's reducer and buckets before the process group: gloo work objects still
        # holding tensors at interpreter exit can abort the process ("terminate called ...")
        del ddp, opt
        gc.collect()
        dist.destroy_process_group()
    return 0


def save_outputs(args, net, model, normalizer, classes, splits, device, world, steps) -> None:
    """Write the .pth (atomically), read it back with convscope and write the convscope checkpoint."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, out)
    model.load_state_dict(convscope.load(out))  # the round trip: convscope's own reader
    x_test = normalizer(splits.test.x).astype(np.float32)
    acc_torch = accuracy(net, x_test, splits.test.y, device)
    model.eval()
    with convscope.no_grad():
        logits = np.concatenate(
            [model(convscope.tensor(x_test[i : i + 256])).data for i in range(0, len(x_test), 256)]
        )
    acc_convscope = float((logits.argmax(1) == splits.test.y).mean())
    c, h, w = splits.train.input_shape
    meta = {
        "classes": classes,
        "preprocessing": {
            "normalizer": normalizer.to_dict(),
            "input_shape": [c, h, w],
            "mode": "auto",
            "image_size": args.image_size,
        },
        "data": {"spec": args.data, "test_split": args.test_split, "seed": args.seed},
        "history": [],
        "trained_with": {
            "torch_ddp": {"world_size": world, "steps": steps, "batch_per_process": args.batch_size}
        },
    }
    save_checkpoint(os.path.splitext(out)[0] + ".npz", model, meta=meta)
    summary = {"pth": out, "steps": steps, "world_size": world, "test_accuracy_torch": acc_torch}
    summary["test_accuracy_convscope"] = acc_convscope
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
