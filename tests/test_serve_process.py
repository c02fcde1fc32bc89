"""`convscope serve` as a real process on 127.0.0.1: serves, writes nothing outside its own
temporary folders (matplotlib's cache included), and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

pytest.importorskip("uvicorn")


def test_serve_process_writes_nothing_and_stops_on_ctrl_c(tmp_path):
    from serve_helpers import digit_images, start_server, train_tiny

    run = train_tiny(tmp_path / "run")
    work, home = tmp_path / "cwd", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "CONVSCOPE_API_KEY")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    old = os.getcwd()
    os.chdir(work)
    try:
        proc, url = start_server(run, tmp_path, env=env)
    finally:
        os.chdir(old)
    try:
        boundary = "xYzBoundary"
        image = digit_images(1)[0][0]
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        for path in ("/v1/predict", "/v1/explain/gradcam?format=png"):
            req = urllib.request.Request(url + path, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
                data = r.read()
        assert data[:4] == b"\x89PNG"  # matplotlib ran
        with urllib.request.urlopen(url + "/v1/model", timeout=10) as r:
            assert json.load(r)["model"] == "simple"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert code == 0
    assert list(work.iterdir()) == [] and list(home.iterdir()) == []
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "127.0.0.1" in log and "Traceback" not in log
