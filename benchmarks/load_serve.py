"""Load test of `convscope serve` on loopback: concurrent clients posting images to /v1/predict.

Starts the server itself (127.0.0.1, a free port) on a model trained here for one epoch on the
embedded digits (LeNet-5 at 1x28x28, or CIFAR ResNet-20 at 3x32x32 with ``--train resnet20``),
or on ``--model RUN``, then, bounded in clients and seconds:

* ``--mode batching``: the same load with dynamic batching on (``--max-batch 32``) and off
  (``--max-batch 1``): throughput, p50/p99 latency, errors, server RSS before/after;
* ``--mode kill``: ``--workers 2`` under load, one worker killed with SIGKILL after a third of
  the run: what the clients saw (statuses and connection errors per second) and whether the
  service kept answering.

Usage:
    python benchmarks/load_serve.py --mode batching --clients 200 --seconds 30
    python benchmarks/load_serve.py --mode kill --clients 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_pids(pid: int) -> list:
    """The uvicorn worker processes under a ``--workers N`` master (its spawned children)."""
    try:
        kids = [int(v) for v in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    out = []
    for k in kids:
        try:
            cmd = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "resource_tracker" not in cmd:
            out.append(k)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHAPES = {
    "lenet5": ["--image-size", "28", "--mode", "gray"],
    "resnet20": ["--image-size", "32", "--mode", "rgb"],
}


def train_model(folder: Path, name: str) -> str:
    run = folder / f"{name}-digits"
    cmd = [sys.executable, "-c", "import sys; from convscope.cli.main import main; sys.exit(main())"]
    cmd += ["train", "--model", name, "--data", "digits", *SHAPES[name], "--epochs", "1"]
    cmd += ["--out", str(run), "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return str(run)


def start_server(model: str, folder: Path, *args) -> tuple:
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from convscope.cli.main import main; sys.exit(main())"]
    cmd += ["serve", model, "--port", str(port), *args]
    log = open(folder / f"server-{port}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(folder / f'server-{port}.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def digit_png() -> bytes:
    import io

    from PIL import Image
    from sklearn.datasets import load_digits

    img = (load_digits().images[0] / 16 * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).resize((28, 28)).save(buf, "PNG")
    return buf.getvalue()


async def load(url: str, clients: int, seconds: float, payload: bytes, on_tick=None) -> dict:
    """``clients`` loops posting ``payload`` for ``seconds``; latencies, statuses, errors per second."""
    import httpx

    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + seconds
    latencies, statuses, errors = [], Counter(), Counter()
    per_second: dict = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one():
            while loop.time() < deadline:
                t0 = loop.time()
                try:
                    files = {"file": ("d.png", payload, "image/png")}
                    r = await client.post(url + "/v1/predict", files=files)
                    key = str(r.status_code)
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        latencies.append(loop.time() - t0)
                except httpx.HTTPError as e:
                    key = type(e).__name__
                    errors[key] += 1
                    await asyncio.sleep(0.05)
                sec = int(t0 - start)
                per_second.setdefault(sec, Counter())[key] += 1

        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        if on_tick is not None:
            tasks.append(asyncio.create_task(on_tick(start)))
        await asyncio.gather(*tasks)
    lat = np.asarray(latencies) * 1000
    ok = statuses.get(200, 0)
    return {
        "requests": int(sum(statuses.values()) + sum(errors.values())),
        "ok": ok,
        "throughput_rps": ok / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "per_second": {k: dict(v) for k, v in sorted(per_second.items())},
    }


def batching(model: str, folder: Path, clients: int, seconds: float) -> dict:
    payload = digit_png()
    out = {}
    for label, max_batch in (("batching on (--max-batch 32)", "32"), ("batching off (--max-batch 1)", "1")):
        proc, url = start_server(model, folder, "--max-batch", max_batch)
        try:
            asyncio.run(load(url, 4, 2, payload))  # warm-up
            before = rss_mb(proc.pid)
            result = asyncio.run(load(url, clients, seconds, payload))
            result.pop("per_second")
            result["rss_before_mb"], result["rss_after_mb"] = before, rss_mb(proc.pid)
            import urllib.request

            text = urllib.request.urlopen(url + "/metrics").read().decode()
            count = [ln for ln in text.splitlines() if ln.startswith("convscope_batch_size_count")]
            total = [ln for ln in text.splitlines() if ln.startswith("convscope_batch_size_sum")]
            if count and total:
                result["mean_batch"] = float(total[0].split()[-1]) / max(1.0, float(count[0].split()[-1]))
            out[label] = result
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        print(label, json.dumps({k: v for k, v in result.items()}), flush=True)
    return out


def kill(model: str, folder: Path, clients: int, seconds: float) -> dict:
    payload = digit_png()
    proc, url = start_server(model, folder, "--workers", "2")
    events = []
    try:
        time.sleep(1.0)
        workers = worker_pids(proc.pid)
        events.append(f"workers before: {workers}")

        async def killer(start):
            await asyncio.sleep(seconds / 3)
            victim = worker_pids(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            events.append(f"t={asyncio.get_running_loop().time() - start:.1f}s: SIGKILL worker {victim}")
            await asyncio.sleep(seconds / 3)
            now = asyncio.get_running_loop().time() - start
            events.append(f"t={now:.1f}s: workers {worker_pids(proc.pid)}")

        result = asyncio.run(load(url, clients, seconds, payload, killer))
        result["events"] = events
        result["workers_after"] = worker_pids(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["batching", "kill"], default="batching")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--model", help="a run folder to serve (default: train --train on digits for one epoch)")
    p.add_argument("--train", choices=sorted(SHAPES), default="lenet5", help="default: lenet5")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    if not (1 <= args.clients <= 500 and 1 <= args.seconds <= 120):
        p.error("clients must be in 1..500 and seconds in 1..120 (the test is bounded)")
    with tempfile.TemporaryDirectory(prefix="convscope-load-") as tmp:
        folder = Path(tmp)
        model = args.model or train_model(folder, args.train)
        fn = batching if args.mode == "batching" else kill
        result = fn(model, folder, args.clients, args.seconds)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
