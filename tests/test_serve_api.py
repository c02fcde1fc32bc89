"""The HTTP API of `convscope serve` against the real app (FastAPI's TestClient), every endpoint
and every bad input: one trained model, real images, JSON bodies built by convscope.schemas."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from convscope import schemas  # noqa: E402
from convscope.serve import ModelService, Settings, create_app  # noqa: E402
from serve_helpers import digit_images, png_bytes, png_header_only, train_tiny  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("serve") / "run")


@pytest.fixture(scope="module")
def service(run_dir):
    return ModelService(run_dir)


@pytest.fixture
def make_client(service, monkeypatch):
    monkeypatch.delenv("CONVSCOPE_API_KEY", raising=False)
    clients = []

    def make(**kw):
        c = TestClient(create_app(service, Settings(**kw)))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def digits():
    return digit_images(6)


def is_error(r, status: int, kind: str | None = None) -> dict:
    body = r.json()
    assert r.status_code == status, (r.status_code, body)
    assert set(body) == {"error", "type"}, body
    assert body["error"] and "\n" not in body["error"]
    if kind is not None:
        assert body["type"] == kind, body
    return body


def files(*images):
    return [("file", (f"img{i}.png", data, "image/png")) for i, data in enumerate(images)]


# ---- health, model, docs ---------------------------------------------------------------------


def test_healthz_and_model_is_the_summary_json(client, service):
    from convscope.analysis import summary

    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/v1/model").json()
    expected = schemas.summary(summary(service.model, service.input_shape, model_name="simple"))
    for key, value in expected.items():
        assert body[key] == value, key
    assert body["classes"] == [str(i) for i in range(10)]
    assert body["task"] == "classify"  # the checkpoint's own word (Predictor.task)
    assert body["preprocessing"]["input_shape"] == [1, 8, 8]
    assert body["polarity"] == "light-on-dark"
    assert body["conv_layers"] == ["features.conv1", "features.conv2"]


def test_openapi_lists_every_route_and_pages_load_nothing_from_the_internet(client):
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/healthz", "/metrics", "/v1/model", "/v1/predict", "/v1/calc", "/v1/filters"):
        assert route in paths
    for route in ("/v1/explain/gradcam", "/v1/explain/features", "/v1/explain/conv"):
        assert route in paths
    for page in ("/", "/docs", "/static/app.js", "/static/style.css"):
        r = client.get(page)
        assert r.status_code == 200, page
        assert "http://" not in r.text and "https://" not in r.text, page


# ---- predict ---------------------------------------------------------------------------------


def test_predict_files_matches_the_cli_predictor(client, service, digits):
    r = client.post("/v1/predict?top_k=4", files=files(*(d for d, _ in digits)))
    assert r.status_code == 200, r.text
    body = r.json()
    images = [service.decode(d)[0] for d, _ in digits]
    expected = service.predictor.predict_images(images, [f"img{i}.png" for i in range(len(digits))], 4)
    assert len(body["predictions"]) == len(digits)
    for got, want in zip(body["predictions"], expected, strict=True):
        assert got["image"] == want["image"]
        assert [t["index"] for t in got["top"]] == [t["index"] for t in want["top"]]
        assert set(got["top"][0]) == {"index", "label", "probability"}
        probs = [t["probability"] for t in got["top"]]
        assert probs == sorted(probs, reverse=True)
        np.testing.assert_allclose(probs, [t["probability"] for t in want["top"]], rtol=1e-5)
    assert body["warnings"] == []


def test_predict_json_equals_the_uploaded_image(client, service, digits):
    data = digits[0][0]
    x = service.decode(data)[1]
    a = client.post("/v1/predict?top_k=10", json={"inputs": x.tolist()}).json()["predictions"][0]
    b = client.post("/v1/predict?top_k=10", files=files(data)).json()["predictions"][0]
    assert a["image"] == "inputs[0]"
    assert [t["index"] for t in a["top"]] == [t["index"] for t in b["top"]]
    assert sum(t["probability"] for t in a["top"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_warns_about_inverted_polarity(client, digits):
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(digits[0][0])))
    r = client.post("/v1/predict", files=files(png_bytes(255 - img)))
    assert r.status_code == 200
    assert any("inverted" in w for w in r.json()["warnings"])


def test_predict_bad_json_inputs(client):
    body = is_error(
        client.post("/v1/predict", json={"inputs": np.zeros((2, 1, 9, 8)).tolist()}), 422, "ShapeError"
    )
    assert "(N, 1, 8, 8)" in body["error"] and "[2, 1, 9, 8]" in body["error"]
    is_error(client.post("/v1/predict", json={"inputs": [[[[1, 2], [3]]]]}), 422, "ShapeError")
    is_error(client.post("/v1/predict", json={"inputs": []}), 422, "ShapeError")
    is_error(client.post("/v1/predict", json={"x": 1}), 422)
    is_error(
        client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    is_error(client.post("/v1/predict?top_k=0", json={"inputs": np.zeros((1, 1, 8, 8)).tolist()}), 422)


def test_predict_bad_files(client):
    is_error(client.post("/v1/predict", files=files(b"hello, not an image")), 415, "UnsupportedMediaType")
    is_error(client.post("/v1/predict", files=files(b"")), 415)
    is_error(client.post("/v1/predict", files=files(png_bytes(np.zeros((8, 8)), "TIFF"))), 415)
    truncated = png_bytes(np.arange(64 * 64).reshape(64, 64) % 255)[:-40]
    is_error(client.post("/v1/predict", files=files(truncated)), 415)
    is_error(client.post("/v1/predict", data={"other": "x"}, files=[("nofile", ("a", b"x"))]), 422)
    body = is_error(client.post("/v1/predict", content=b"abc", headers={"content-type": "text/plain"}), 415)
    assert "multipart/form-data" in body["error"]


def test_other_image_formats_are_accepted(client, digits):
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(digits[1][0])))
    for fmt in ("JPEG", "GIF", "BMP", "WEBP"):
        r = client.post("/v1/predict", files=files(png_bytes(img, fmt)))
        assert r.status_code == 200, (fmt, r.text)


def test_upload_over_the_limit_is_413(make_client):
    c = make_client(max_upload_mb=0.01)
    big = png_bytes(np.random.default_rng(0).integers(0, 255, (200, 200)))  # ~40 kB of noise
    assert len(big) > 0.01 * 1024 * 1024
    is_error(c.post("/v1/predict", files=files(big)), 413, "PayloadTooLarge")

    def chunks():  # no Content-Length: the body is counted as it arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 4096

    headers = {"content-type": "multipart/form-data; boundary=b"}
    body = is_error(c.post("/v1/predict", content=chunks(), headers=headers), 413, "PayloadTooLarge")
    assert "passed" in body["error"]  # counted while streaming, not from a Content-Length


def test_decompression_bomb_is_refused_before_decoding(client, monkeypatch):
    from PIL import Image

    decoded = []
    original = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1) or original(self))
    for w, h in ((7000, 7000), (30000, 30000)):  # over our limit; over Pillow's own
        body = is_error(client.post("/v1/predict", files=files(png_header_only(w, h))), 413)
        assert "before decoding" in body["error"]
    assert decoded == []


# ---- explanations ----------------------------------------------------------------------------


def test_gradcam_json_and_png(client, service, digits):
    from convscope.explain import explain_heatmap

    data = digits[2][0]
    r = client.post("/v1/explain/gradcam", files=files(data), data={"class_index": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    heat = np.asarray(body["heatmap"])
    assert heat.shape == (8, 8) and heat.min() >= 0 and heat.max() <= 1
    assert body["class_index"] == 3 and body["layer"] == "features.relu2"
    want = explain_heatmap(service.model, service.decode(data)[1], "gradcam", "features.relu2", 3)["heatmap"]
    np.testing.assert_allclose(heat, want, atol=1e-6)
    if heat.any():
        y0, x0, y1, x1 = body["strongest_cell"]["box"]
        assert 0 <= y0 <= y1 < 8 and 0 <= x0 <= x1 < 8
    r = client.post("/v1/explain/gradcam?format=png", files=files(data), data={"method": "saliency"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradcam_bad_arguments(client, digits):
    data = digits[0][0]
    body = is_error(client.post("/v1/explain/gradcam", files=files(data), data={"layer": "nope"}), 404)
    assert "features.conv1" in body["error"] and "classifier.fc2" in body["error"]
    is_error(client.post("/v1/explain/gradcam", files=files(data), data={"class_index": "10"}), 422)
    is_error(client.post("/v1/explain/gradcam", files=files(data), data={"class_index": "x"}), 422)
    is_error(client.post("/v1/explain/gradcam", files=files(data), data={"method": "lime"}), 422)
    is_error(client.post("/v1/explain/gradcam?format=gif", files=files(data)), 422)
    is_error(client.post("/v1/explain/gradcam", data={"layer": "x"}), 422)  # no file
    is_error(client.post("/v1/explain/gradcam", files=files(b"GIF89a broken")), 415)


def test_features_json_png_and_limits(client, service, digits, monkeypatch):
    data = digits[0][0]
    r = client.post("/v1/explain/features", files=files(data), data={"layer": "features.conv2"})
    assert r.status_code == 200, r.text
    body = r.json()
    c2 = service.model.features.conv2.out_channels
    assert body["shape"] == [c2, 4, 4] and np.asarray(body["values"]).shape == (c2, 4, 4)
    r = client.post("/v1/explain/features?format=png", files=files(data), data={"layer": "features.conv1"})
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    body = is_error(client.post("/v1/explain/features", files=files(data), data={"layer": "conv9"}), 404)
    assert "features.pool1" in body["error"]
    body = is_error(
        client.post("/v1/explain/features", files=files(data), data={"layer": "classifier.fc1"}), 422
    )
    assert "not a feature map" in body["error"]
    import convscope.serve.service as svc

    monkeypatch.setattr(svc, "MAX_JSON_VALUES", 100)
    body = is_error(
        client.post("/v1/explain/features", files=files(data), data={"layer": "features.conv1"}), 413
    )
    assert "format=png" in body["error"]


def test_filters(client, service):
    body = client.get("/v1/filters", params={"layer": "features.conv2"}).json()
    conv2 = service.model.features.conv2
    assert body["shape"] == list(conv2.weight.shape) and body["shape"][2:] == [3, 3]
    np.testing.assert_array_equal(
        np.asarray(body["values"], np.float32), service.model.features.conv2.weight.data
    )
    assert len(body["bias"]) == conv2.out_channels
    assert client.get("/v1/filters").json()["layer"] == "features.conv1"
    r = client.get("/v1/filters?layer=features.conv1&format=png")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    body = is_error(client.get("/v1/filters?layer=features.relu1"), 404)
    assert "features.conv1, features.conv2" in body["error"]


def test_conv_trace_is_the_cli_trace(client, service, digits):
    from convscope.explain import trace_model_value

    data = digits[3][0]
    r = client.post("/v1/explain/conv", files=files(data), data={"layer": "features.conv2", "at": "5,1,2"})
    assert r.status_code == 200, r.text
    body = r.json()
    want = schemas.trace(
        trace_model_value(service.model, service.decode(data)[1], "features.conv2", (5, 1, 2))
    )
    assert body["at"] == [5, 1, 2] and body["value"] == pytest.approx(want["value"], abs=1e-12)
    assert body["trace"] == want["trace"]
    assert abs(body["value"] - body["layer_output"]) <= body["error_bound"]
    is_error(
        client.post("/v1/explain/conv", files=files(data), data={"layer": "features.conv2", "at": "1,2"}), 422
    )
    body = is_error(
        client.post("/v1/explain/conv", files=files(data), data={"layer": "features.conv2", "at": "999,0,0"}),
        422,
    )
    assert "outside the output" in body["error"]
    is_error(
        client.post("/v1/explain/conv", files=files(data), data={"layer": "flatten", "at": "0,0,0"}), 404
    )


def test_calc(client):
    body = client.get(
        "/v1/calc", params={"input": "1x28x28", "filters": 8, "kernel": "5", "stride": "2"}
    ).json()
    assert body["output"] == [8, 12, 12] and body["exact"] is False and body["suggestions"]
    assert client.get("/v1/calc", params={"input": "1x28x28", "kernel": "3", "padding": "same"}).json()[
        "exact"
    ]
    is_error(client.get("/v1/calc", params={"input": "1x28xabc", "kernel": "3"}), 422)
    is_error(client.get("/v1/calc", params={"padding": "lots"}), 422)


def test_unknown_route_and_method(client):
    is_error(client.get("/v2/nothing"), 404)
    is_error(client.get("/v1/predict"), 405)


# ---- limits under load, timeouts, keys, metrics --------------------------------------------


def _in_threads(calls):
    results = [None] * len(calls)

    def run(i, fn):
        results[i] = fn()

    threads = []
    for i, fn in enumerate(calls):
        t = threading.Thread(target=run, args=(i, fn))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # arrival order
    return threads, results


def test_full_queue_answers_503_with_retry_after(make_client, service):
    c = make_client(max_queue=1, max_batch=1)
    x = {"inputs": np.zeros((1, 1, 8, 8)).tolist()}
    with service.lock:  # the model is busy: the first request waits in the batcher, the second in the queue
        threads, results = _in_threads([lambda: c.post("/v1/predict", json=x) for _ in range(3)])
        time.sleep(0.2)
    for t in threads:
        t.join(10)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 503], statuses
    busy = next(r for r in results if r.status_code == 503)
    assert busy.headers["retry-after"] == "1"
    is_error(busy, 503, "ServiceUnavailable")


def test_request_past_the_timeout_is_504(make_client, service, digits):
    c = make_client(timeout=0.3)
    with service.lock:
        is_error(c.post("/v1/predict", json={"inputs": np.zeros((1, 1, 8, 8)).tolist()}), 504, "Timeout")
        is_error(c.post("/v1/explain/gradcam", files=files(digits[0][0])), 504)
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/predict", files=files(digits[0][0])).status_code == 200  # still serving


def test_dynamic_batching_groups_waiting_requests(make_client, service, digits):
    c = make_client(max_batch=8)
    with service.lock:
        threads, results = _in_threads(
            [lambda d=d: c.post("/v1/predict", files=files(d)) for d, _ in digits[:5]]
        )
        time.sleep(0.2)
    for t in threads:
        t.join(10)
    single = [client_top(c.post("/v1/predict", files=files(d))) for d, _ in digits[:5]]
    assert [client_top(r) for r in results] == single  # batched answers are each request's own
    text = c.get("/metrics").text
    sizes = [line for line in text.splitlines() if line.startswith("convscope_batch_size_bucket")]
    le1 = int(next(s for s in sizes if 'le="1"' in s).rsplit(" ", 1)[1])
    count = int(
        next(s for s in text.splitlines() if s.startswith("convscope_batch_size_count")).rsplit(" ", 1)[1]
    )
    assert count - le1 >= 1, text  # at least one model call carried several requests


def client_top(r):
    assert r.status_code == 200, r.text
    return [t["index"] for t in r.json()["predictions"][0]["top"]]


def test_concurrent_gradcam_requests_never_mix(make_client, service, digits):
    from convscope.explain import explain_heatmap

    c = make_client()
    jobs = [
        (d, k, m)
        for (d, _), k, m in zip(digits, (0, 3, 5, 7, 9, 1), ("gradcam", "gradcam++") * 3, strict=True)
    ]
    want = [
        explain_heatmap(service.model, service.decode(d)[1], m, "features.relu2", k)["heatmap"]
        for d, k, m in jobs
    ]
    calls = [
        lambda d=d, k=k, m=m: c.post(
            "/v1/explain/gradcam", files=files(d), data={"class_index": str(k), "method": m}
        )
        for d, k, m in jobs
    ] * 2
    calls += [lambda: c.post("/v1/predict", files=files(digits[0][0]))] * 4
    threads = []
    results = [None] * len(calls)
    for i, fn in enumerate(calls):
        t = threading.Thread(target=lambda i=i, fn=fn: results.__setitem__(i, fn()))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(30)
    for i, r in enumerate(results[: 2 * len(jobs)]):
        d, k, m = jobs[i % len(jobs)]
        assert r.status_code == 200, r.text
        assert r.json()["class_index"] == k and r.json()["method"] == m
        np.testing.assert_allclose(np.asarray(r.json()["heatmap"]), want[i % len(jobs)], atol=1e-6)
    assert all(r.status_code == 200 for r in results[2 * len(jobs) :])
    assert all(p.requires_grad for p in service.model.parameters())  # flags restored
    assert all(not m._forward_hooks for m in service.model.modules())  # no hook left behind


def test_api_key_guards_v1_routes(service, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_API_KEY", "s3cret")
    with TestClient(create_app(service)) as c:
        is_error(c.get("/v1/model"), 401, "Unauthorized")
        is_error(c.get("/v1/model", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200


def test_metrics_text(client, digits):
    client.post("/v1/predict", files=files(digits[0][0]))
    client.post("/v1/predict", files=files(b"nope"))
    text = client.get("/metrics").text
    assert 'endpoint="/v1/predict",status="200"} 1' in text
    assert 'endpoint="/v1/predict",status="415"} 1' in text
    assert "# TYPE convscope_request_seconds histogram" in text
    assert 'convscope_request_seconds_bucket{worker="' in text and 'le="+Inf"' in text
    assert "convscope_batch_size_count" in text
    load = float(
        next(s for s in text.splitlines() if s.startswith("convscope_model_load_seconds")).split()[-1]
    )
    assert load > 0


def test_cli_serve_refuses_bad_models(tmp_path, capsys):
    from convscope.cli.main import main

    assert main(["serve", str(tmp_path / "missing")]) != 0
    assert "model not found" in capsys.readouterr().err
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    assert main(["serve", str(onnx)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m.onnx" in err[0]  # one line naming the file
    assert main(["serve", str(onnx), "--workers", "0"]) == 2


def test_an_unexpected_failure_is_a_json_500_and_the_server_keeps_serving(service, monkeypatch):
    monkeypatch.delenv("CONVSCOPE_API_KEY", raising=False)

    def broken():
        raise RuntimeError("disk on fire")

    app = create_app(service)
    with TestClient(app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(service, "describe", broken)
        body = is_error(c.get("/v1/model"), 500, "RuntimeError")
        assert "disk on fire" in body["error"]
        monkeypatch.undo()
        assert c.get("/v1/model").status_code == 200
        assert 'endpoint="/v1/model",status="500"} 1' in c.get("/metrics").text


def test_a_model_that_is_not_a_classifier_gets_422_from_predict(service, monkeypatch, digits):
    monkeypatch.delenv("CONVSCOPE_API_KEY", raising=False)
    monkeypatch.setattr(service, "output_shape", (2, 8, 8))  # as a segmentation model's mask
    with TestClient(create_app(service)) as c:
        body = is_error(c.post("/v1/predict", files=files(digits[0][0])), 422, "NotApplicable")
        assert "classifiers" in body["error"] and "[2, 8, 8]" in body["error"]


def test_an_onnx_file_serves_the_same_predictions(run_dir, tmp_path, digits, monkeypatch):
    pytest.importorskip("onnx")
    from convscope.cli.main import main

    monkeypatch.delenv("CONVSCOPE_API_KEY", raising=False)
    onnx_path = str(tmp_path / "model.onnx")
    assert main(["export", run_dir, "-o", onnx_path]) == 0
    answers = []
    for model in (run_dir, onnx_path):
        with TestClient(create_app(model)) as c:
            r = c.post("/v1/predict?top_k=10", files=files(digits[4][0]))
            assert r.status_code == 200, r.text
            answers.append(r.json()["predictions"][0]["top"])
            assert c.post("/v1/explain/gradcam", files=files(digits[4][0])).status_code == 200
    assert [t["index"] for t in answers[0]] == [t["index"] for t in answers[1]]
    np.testing.assert_allclose(
        [t["probability"] for t in answers[0]], [t["probability"] for t in answers[1]], atol=1e-5
    )
