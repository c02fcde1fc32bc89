"""`convscope serve`: the HTTP API and the browser explorer of one trained model."""

from __future__ import annotations

import os
import sys

from .common import UsageError, add_common

HELP = "serve a trained model over HTTP: predict, explain, metrics and an explorer page at /"


def add_parser(sub):
    p = sub.add_parser(
        "serve",
        help=HELP,
        description=HELP + ". MODEL is a training run folder, a .npz checkpoint or an .onnx "
        "file. With CONVSCOPE_API_KEY set in the environment every /v1 route requires "
        "'Authorization: Bearer KEY'. Needs the serve extra (pip install 'convscope[serve]').",
    )
    p.add_argument("model", help="a run folder, a .npz checkpoint or an .onnx file")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="default: 8000")
    p.add_argument(
        "--workers", type=int, default=1, help="server processes, each with the model (default: 1)"
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, dest="max_upload_mb", help="default: 10")
    p.add_argument(
        "--max-batch",
        type=int,
        default=32,
        dest="max_batch",
        help="images per batched model call; 1 = no batching",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=512,
        dest="max_queue",
        help="waiting requests before a 503 (default: 512)",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request before a 504 (default: 30)"
    )
    add_common(p)
    p.set_defaults(handler=run)
    return p


def _env(args) -> dict:
    return {
        "CONVSCOPE_SERVE_MODEL": os.path.abspath(args.model),
        "CONVSCOPE_SERVE_MAX_UPLOAD_MB": str(args.max_upload_mb),
        "CONVSCOPE_SERVE_MAX_BATCH": str(args.max_batch),
        "CONVSCOPE_SERVE_MAX_QUEUE": str(args.max_queue),
        "CONVSCOPE_SERVE_TIMEOUT": str(args.timeout),
    }


def run(args) -> int:
    for name, value, low in (
        ("--port", args.port, 0),
        ("--workers", args.workers, 1),
        ("--max-batch", args.max_batch, 1),
        ("--max-queue", args.max_queue, 1),
    ):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if args.max_upload_mb <= 0 or args.timeout <= 0:
        raise UsageError(
            f"--max-upload-mb and --timeout must be positive, got {args.max_upload_mb} and {args.timeout}"
        )
    if not os.path.exists(args.model):
        raise FileNotFoundError(f"model not found: {args.model} (expected a run folder, .npz or .onnx file)")
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise UsageError(
            f"convscope serve needs the serve extra: pip install 'convscope[serve]' ({e})"
        ) from None
    os.environ.update(_env(args))
    # everything this process writes (uploads spooled by the form parser, matplotlib's cache)
    # goes to a temporary folder of its own, removed at exit
    import atexit
    import shutil
    import tempfile

    own = tempfile.mkdtemp(prefix="convscope-serve-")
    atexit.register(shutil.rmtree, own, True)
    os.environ["TMPDIR"] = tempfile.tempdir = own
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(own, "matplotlib"))
    url = f"http://{args.host}:{args.port}/"
    if args.workers > 1:
        from ..serve.service import ModelService

        ModelService(args.model)  # fail here, once, with a clear message if the model cannot load
        print(
            f"convscope serve: {args.model} with {args.workers} workers at {url}", file=sys.stderr, flush=True
        )
        uvicorn.run(
            "convscope.serve.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            timeout_graceful_shutdown=args.timeout,
            timeout_keep_alive=int(args.timeout),
        )
        return 0
    app = app_from_env()
    print(f"convscope serve: {args.model} at {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=args.timeout,
        timeout_keep_alive=int(args.timeout),  # clients waiting on a busy server keep their connection
    )
    return 0


def app_from_env():
    from ..serve.app import app_from_env as build

    return build()
