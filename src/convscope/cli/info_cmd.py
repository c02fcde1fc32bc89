"""`convscope info`: which kernel backend runs, the native build, threads, NumPy/BLAS."""

from __future__ import annotations

from .common import add_common, emit_json

HELP = "show the kernel backend in use (native, numpy or reference), the native build and the threads"


def add_parser(sub):
    p = sub.add_parser(
        "info",
        help=HELP,
        description=HELP + ". CONVSCOPE_BACKEND selects the backend; when the native backend is "
        "unavailable this says why.",
    )
    add_common(p)
    p.set_defaults(handler=run)
    return p


def format_info(report: dict) -> str:
    """The text form of :func:`convscope.backends.info`."""
    native = report["native"]
    if native["available"]:
        extra = ", ".join(f"{k} {v}" for k, v in native.items() if k not in ("available", "reason"))
        native_line = "built" + (f" ({extra})" if extra else "")
    else:
        native_line = f"unavailable: {native['reason']}"
    lines = [
        f"backend: {report['backend'] if report['backend'] else '(none: see error)'}",
        f"available: {', '.join(report['available'])}",
        f"native: {native_line}",
        f"threads: {report['threads']}",
        f"numpy: {report['numpy']} (BLAS: {report['blas']})",
        f"machine: {report['machine']}",
        f"keep freed memory: {'on' if report['keep_freed_memory'] else 'off'}",
    ]
    if report.get("requested_by_env"):
        lines.insert(1, f"CONVSCOPE_BACKEND: {report['requested_by_env']}")
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    return "\n".join(lines)


def run(args) -> int:
    from .. import backends

    report = backends.info()
    print(format_info(report))
    if args.json:
        emit_json(report)
    return 1 if report.get("error") else 0
