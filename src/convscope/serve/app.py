"""The FastAPI application of ``convscope serve``: middleware, error bodies, health, model, predict.

:func:`create_app` loads the model before the app accepts connections; the explain routes
live in :mod:`.explain_routes`, the explorer page in ``static/``.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import schemas
from .batching import Batcher
from .errors import ApiError, invalid, timed_out, too_large, unsupported
from .metrics import Metrics
from .service import ModelService

STATIC = Path(__file__).parent / "static"
INLINE_DECODE_BYTES = 256 * 1024
DEFAULT_TOP_K = 3  # as `convscope predict --top-k`
ROUTES = (
    "/",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/v1/model",
    "/v1/predict",
    "/v1/calc",
    "/v1/filters",
    "/v1/explain/gradcam",
    "/v1/explain/features",
    "/v1/explain/conv",
)


@dataclass
class Settings:
    """Limits of one server: upload size, batch size, waiting requests, time per request, API key."""

    max_upload_mb: float = 10.0
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 512
    timeout: float = 30.0
    api_key: str | None = None


def error_response(status: int, message: str, type_: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(schemas.error(message, type_), status_code=status, headers=headers)


_T = TypeVar("_T")


class Server:
    """What the routes share: the model service, the batcher, metrics, limits and a temp folder."""

    def __init__(self, service: ModelService, settings: Settings):
        self.service, self.settings = service, settings
        self.metrics = Metrics()
        self.metrics.load_seconds = service.load_seconds
        self.batcher = Batcher(
            service.probabilities,
            settings.max_batch,
            settings.max_wait_ms / 1000.0,
            settings.max_queue,
            self.metrics.observe_batch,
            inline=os.environ.get("CONVSCOPE_SERVE_THREADED_BATCHES") != "1",
        )
        self.explain_waiting = 0
        self.tmp = _own_temp_dir("convscope-serve-")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)

    async def within_timeout(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable``; 504 past the timeout."""
        try:
            return await asyncio.wait_for(awaitable, self.settings.timeout)
        except asyncio.TimeoutError:
            raise timed_out(self.settings.timeout) from None

    async def explain_work(self, fn, *args):
        """Run model work ``fn(*args)`` in a thread (one at a time: the service's lock), bounded
        in waiting requests (503) and time (504)."""
        if self.explain_waiting >= self.settings.max_queue:
            from .errors import busy

            raise busy(f"{self.explain_waiting} explanation requests are waiting; retry shortly")
        self.explain_waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await self.within_timeout(loop.run_in_executor(None, fn, *args))
        finally:
            self.explain_waiting -= 1

    async def read_upload(self, upload) -> tuple:
        """An UploadFile -> (name, bytes), 413 over the size limit."""
        name = upload.filename or "upload"
        data = await upload.read(self.max_upload_bytes + 1)
        if len(data) > self.max_upload_bytes:
            raise too_large(f"{name} is larger than the upload limit of {self.settings.max_upload_mb:g} MB")
        return name, data

    async def decode(self, upload) -> tuple:
        """An UploadFile -> (name, image01, normalised x, original (W, H))."""
        name, data = await self.read_upload(upload)
        if len(data) <= INLINE_DECODE_BYTES:  # a thread hop costs more than decoding a small image
            image, x, size = self.service.decode(data, name)
        else:
            loop = asyncio.get_running_loop()
            image, x, size = await loop.run_in_executor(None, self.service.decode, data, name)
        return name, image, x, size


def _own_temp_dir(prefix: str) -> str:
    """A fresh temporary folder that is removed when the process exits."""
    import atexit
    import shutil

    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


def create_app(model: str | ModelService, settings: Settings | None = None) -> FastAPI:
    """The app serving ``model`` (a run folder, ``.npz`` or ``.onnx`` path, or a :class:`ModelService`).

    Raises:
        ValueError / CheckpointError: the model cannot be loaded (before anything is served).
    """
    settings = settings or Settings()
    if settings.api_key is None:
        settings.api_key = os.environ.get("CONVSCOPE_API_KEY") or None
    if "MPLCONFIGDIR" not in os.environ:  # matplotlib's cache: a folder of the server's own
        os.environ["MPLCONFIGDIR"] = _own_temp_dir("convscope-serve-mpl-")
    service = model if isinstance(model, ModelService) else ModelService(model)
    server = Server(service, settings)

    @asynccontextmanager
    async def lifespan(app):
        server.batcher.start()
        try:
            yield
        finally:
            await server.batcher.stop()
            shutil.rmtree(server.tmp, ignore_errors=True)

    app = FastAPI(
        title="convscope serve",
        version=_version(),
        description="Predictions and explanations of one trained convscope model.",
        docs_url=None,  # FastAPI's /docs loads its assets from a CDN; ours is a local page
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.server = server
    _install_middleware(app, server)
    _install_errors(app)
    _install_core_routes(app, server)
    from .explain_routes import install_explain_routes

    install_explain_routes(app, server)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def _install_middleware(app: FastAPI, server: Server) -> None:
    """A plain ASGI wrapper (cheaper than ``@app.middleware``): the API key and the declared
    body size are checked before anything is read; every answer is counted and timed."""
    app.add_middleware(_Guard, server=server)


class _Guard:
    def __init__(self, app, server: Server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ROUTES else ("/static" if path.startswith("/static/") else "other")
        status = {"code": 500}

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal = await _guard(Request(scope), self.server)
        limit = self.server.max_upload_bytes + 64 * 1024
        seen = {"bytes": 0}

        async def receive_limited():  # a body sent without Content-Length is counted as it comes
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    raise too_large(
                        f"the request body passed {seen['bytes']} bytes; the upload limit is "
                        f"{self.server.settings.max_upload_mb:g} MB"
                    )
            return message

        try:
            if refusal is not None:
                await refusal(scope, receive, send_counted)
            else:
                await self.app(scope, receive_limited, send_counted)
        finally:
            self.server.metrics.observe_request(endpoint, status["code"], time.perf_counter() - start)


async def _guard(request: Request, server: Server):
    """API key and declared body size, checked before the body is read."""
    key = server.settings.api_key
    if key and request.url.path.startswith("/v1"):
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return error_response(
                401,
                "this server requires an API key: send the header 'Authorization: Bearer KEY'",
                "Unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )
    length = request.headers.get("content-length")
    limit = server.max_upload_bytes + 64 * 1024  # room for the multipart framing
    if length is not None and length.isdigit() and int(length) > limit:
        return error_response(
            413,
            f"the request body is {int(length)} bytes; the upload limit is "
            f"{server.settings.max_upload_mb:g} MB",
            "PayloadTooLarge",
        )
    return None


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; see /openapi.json for the API"
        return error_response(exc.status_code, message, "HTTPError", getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):  # the server answers, it never crashes
        return error_response(500, f"internal error: {exc}", type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(v) for v in e.get("loc", ()) if v != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request", "ValidationError")


def _install_core_routes(app: FastAPI, server: Server) -> None:
    service = server.service

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html")

    @app.get("/healthz", summary="ok once the model is loaded")
    async def healthz():
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
    async def metrics():
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/model", summary="the model: summary --json, classes, task, preprocessing")
    async def model():
        return service.describe()

    @app.get("/v1/calc", summary="conv output size, parameters and exact-fit suggestions (convscope calc)")
    async def calc(
        input: str = Query("1x28x28", description="C x H x W, as `convscope calc conv --input`"),
        filters: int = Query(8, ge=1),
        kernel: str = "3",
        stride: str = "1",
        padding: str = "0",
        dilation: str = "1",
    ):
        from ..analysis.calc import conv_calc, parse_chw

        pad: str | int = (
            padding if padding in ("same", "valid") or "x" in padding else _int(padding, "padding")
        )
        try:
            c, h, w = parse_chw(input)
            return schemas.calc(conv_calc((h, w, c), filters, kernel, stride, pad, dilation))
        except ValueError as e:
            raise invalid(str(e)) from None

    @app.post(
        "/v1/predict",
        summary="top-k classes of uploaded images (multipart field 'file') or of JSON "
        "{'inputs': (N, C, H, W)}",
        openapi_extra={
            "requestBody": {
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                            },
                        }
                    },
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "inputs": {"type": "array", "description": "(N, C, H, W), normalised"}
                            },
                        }
                    },
                }
            }
        },
    )
    async def predict(request: Request, top_k: int = Query(DEFAULT_TOP_K, ge=1)):
        service.check_classifier()
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                raise invalid('the body is not valid JSON; expected {"inputs": [[[[...]]]]}') from None
            if not isinstance(body, dict) or "inputs" not in body:
                raise invalid('expected a JSON object {"inputs": A} with A of shape (N, C, H, W)')
            x = service.check_inputs(body["inputs"])
            names = [f"inputs[{i}]" for i in range(len(x))]
            warnings: list = []
        elif ctype.startswith("multipart/form-data"):
            form = await request.form()
            uploads = [f for f in form.getlist("file") if hasattr(f, "read")]
            if not uploads:
                raise invalid("no file in the form field 'file'; expected one or more image files")
            names, xs, warnings = [], [], []
            for up in uploads:
                name, image, x1, _ = await server.decode(up)
                names.append(name)
                xs.append(x1)
                w = service.predictor.polarity_warning(image, name)
                if w:
                    warnings.append(w.replace("try --invert", "invert the image"))
            x = np.concatenate(xs)
        else:
            raise unsupported(
                f"content type {ctype or '(none)'!r}; expected multipart/form-data (field 'file') "
                'or application/json ({"inputs": ...})'
            )
        probs = await server.within_timeout(server.batcher.submit(x))
        items = [schemas.prediction(n, p, service.classes, top_k) for n, p in zip(names, probs, strict=True)]
        return schemas.predictions(os.path.basename(service.path.rstrip("/")), items, warnings)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise invalid(f"{name} must be an integer, 'same', 'valid' or HxW; got {text!r}") from None


def app_from_env() -> FastAPI:
    """The app configured by ``CONVSCOPE_SERVE_*`` variables (what each ``--workers`` process builds)."""
    env = os.environ
    model = env.get("CONVSCOPE_SERVE_MODEL")
    if not model:
        raise ValueError("CONVSCOPE_SERVE_MODEL is not set; expected the path of the model to serve")
    settings = Settings(
        max_upload_mb=float(env.get("CONVSCOPE_SERVE_MAX_UPLOAD_MB", 10)),
        max_batch=int(env.get("CONVSCOPE_SERVE_MAX_BATCH", 32)),
        max_queue=int(env.get("CONVSCOPE_SERVE_MAX_QUEUE", 512)),
        timeout=float(env.get("CONVSCOPE_SERVE_TIMEOUT", 30)),
    )
    return create_app(model, settings)
