"""Build of convscope's optional native backend (everything else is in pyproject.toml).

The C files in src/convscope/kernels/native are compiled into one shared library that
convscope loads with ctypes (it is not a Python extension module: it needs no Python
headers). The build can never fail the install: when there is no C compiler or the compile
fails, the reason is written to ``_build_failure.txt`` next to where the library would be,
``convscope.backends.info()`` reports it, and convscope runs on the NumPy backend.

Instruction set: the library is compiled for the build machine (``-march=native``), so it
uses AVX-512 or AVX2 where the host has them; set ``CONVSCOPE_NATIVE_MARCH`` to another
``-march`` value (e.g. ``x86-64-v3``) or to ``none`` for the compiler's portable default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE_DIR = os.path.join("src", "convscope", "kernels", "native")
FAILURE_FILE = "_build_failure.txt"
SOURCES = [
    "conv_tiles.c",
    "conv_forward.c",
    "conv_input_grad.c",
    "conv_weight_grad.c",
    "conv_parallel.c",
    "passes_parallel.c",
    "threads.c",
    "batchnorm.c",
    "pool.c",
    "elementwise.c",
    "info.c",
]
WARNINGS = ["-Wall", "-Wextra"]
OPTIMIZE = ["-O3", "-funroll-loops", "-std=gnu11", "-fPIC", "-pthread"]


class OptionalNativeBuild(build_ext):
    """Compile the native library; on any failure record why and carry on."""

    def build_extension(self, ext: Extension) -> None:
        target = self.get_ext_fullpath(ext.name)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        failure = os.path.join(folder, FAILURE_FILE)
        try:
            self._compile_library(ext, target)
        except Exception as exc:  # noqa: BLE001 - any failure leaves a NumPy-only install
            reason = _reason(exc)
            sys.stderr.write(f"convscope: native backend not built: {reason}\n")
            with open(failure, "w", encoding="utf-8") as fh:
                fh.write(reason + "\n")
            if os.path.exists(target):  # a library from an earlier build would contradict it
                os.remove(target)
            return
        if os.path.exists(failure):
            os.remove(failure)

    def _compile_library(self, ext: Extension, target: str) -> None:
        cc = os.environ.get("CC") or _default_compiler()
        if cc is None:
            raise FileNotFoundError("no C compiler was found when convscope was installed")
        cmd = cc.split()
        if shutil.which(cmd[0]) is None:
            raise FileNotFoundError(f"no C compiler was found when convscope was installed (CC={cc})")
        march = os.environ.get("CONVSCOPE_NATIVE_MARCH", "native")
        arch = [] if march == "none" else [f"-march={march}"]
        base = cmd + OPTIMIZE + WARNINGS + ["-shared", "-o", target] + ext.sources
        try:
            _run(base[:1] + arch + base[1:])
        except RuntimeError:
            if not arch:
                raise
            _run(base)  # a compiler without -march=native: its portable default


def _default_compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def _run(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"the C compiler could not be run ({exc})") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(
            f"the C compiler {cmd[0]} failed (exit {proc.returncode}) when convscope was installed: "
            + " / ".join(tail or ["no message"])
        )


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, (FileNotFoundError, RuntimeError)) else f"{type(exc).__name__}: {exc}"


setup(
    ext_modules=[
        Extension(
            "convscope.kernels.native._convscope_native",
            sources=[os.path.join(NATIVE_DIR, name) for name in SOURCES],
            depends=[os.path.join(NATIVE_DIR, name) for name in ("common.h", "conv_tiles.h", "threads.h")],
        )
    ],
    cmdclass={"build_ext": OptionalNativeBuild},
)
