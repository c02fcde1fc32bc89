"""Shared by the serve tests: a tiny trained model and images for it."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import numpy as np


def train_tiny(out) -> str:
    """Train the `simple` model on the embedded digits (1x8x8) for one epoch; return the run folder."""
    from convscope.cli.main import main

    code = main(
        [
            "train",
            "--model",
            "simple",
            "--data",
            "digits",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    if code != 0:
        raise RuntimeError(f"training the test model failed with exit code {code}")
    return str(out)


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """An (H, W) uint8 array as an image file's bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def digit_images(count: int) -> list:
    """``count`` real digit images (8x8, white ink on black, 0..255) and their labels from the
    embedded digits data set, as PNG bytes."""
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for i in range(count):
        img = (d.images[i] / 16.0 * 255).round()
        out.append((png_bytes(img), int(d.target[i])))
    return out


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` gray pixels, with a tiny (wrong) body:
    reading its size is cheap, decoding it would fail or explode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, tmp, *args, env=None):
    """`convscope serve MODEL` on a free loopback port; (process, base URL) once /healthz answers."""
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from convscope.cli.main import main; sys.exit(main())"]
    cmd += ["serve", model, "--port", str(port), *args]
    log = open(tmp / f"server-{port}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the server exited with {proc.returncode}: {(tmp / f'server-{port}.log').read_text()}"
            )
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if json.load(r) == {"status": "ok"}:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer /healthz within 60 s")
