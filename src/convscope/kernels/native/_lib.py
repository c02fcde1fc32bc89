"""Load the compiled native library (built by setup.py) with ctypes, or say why it cannot be.

The build (see ``setup.py``) compiles the C files of this package into one shared library
named ``_convscope_native`` plus the interpreter's extension suffix, next to this file. When
it could not be built (no compiler, a failed compile), the build writes the reason to
``BUILD_FAILURE_FILE`` in the same place; :func:`load_error` reports it.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

from ._unsupported import Unsupported

#: File the build writes when the library could not be compiled (its text is the reason).
BUILD_FAILURE_FILE = "_build_failure.txt"
LIBRARY_STEM = "_convscope_native"

_HERE = Path(__file__).resolve().parent
_STATE: dict = {"lib": None, "error": None, "loaded": False}

# arrays are passed as plain addresses (``a.ctypes.data``): several times cheaper per call
# than typed pointers from ``a.ctypes.data_as``
_F32 = _I32 = _I64 = _F64 = ctypes.c_void_p
_INT, _LONG = ctypes.c_int, ctypes.c_long

# name -> (restype, argtypes)
_SIGNATURES = {
    "cs_isa": (ctypes.c_char_p, []),
    "cs_vector_floats": (ctypes.c_int, []),
    "cs_compiler": (ctypes.c_char_p, []),
    "cs_conv2d_forward": (ctypes.c_int, [_F32, _F32, _F32, _F32, ctypes.c_int, _I32]),
    "cs_conv2d_forward_fused": (
        ctypes.c_int,
        [_F32, _F32, _F32, _F32, ctypes.c_int, _I32, _F32, _F32, _INT, _F32],
    ),
    "cs_conv2d_forward_parallel": (
        ctypes.c_int,
        [_F32, _F32, _F32, _F32, ctypes.c_int, _I32, _F32, _F32, _INT, _F32, _INT, _INT],
    ),
    "cs_conv2d_backward_input_parallel": (ctypes.c_int, [_F32, _F32, _F32, _INT, _I32, _INT, _INT]),
    "cs_conv2d_backward_weight_parallel": (ctypes.c_int, [_F32, _F32, _F32, _INT, _I32, _INT, _INT]),
    "cs_pass_parallel": (ctypes.c_int, [ctypes.c_void_p, _INT]),
    "cs_conv2d_forward_packed_size": (_LONG, [_I32]),
    "cs_conv2d_forward_pack": (None, [_F32, _I32, _F32]),
    "cs_conv2d_backward_input": (ctypes.c_int, [_F32, _F32, _F32, ctypes.c_int, _I32]),
    "cs_conv2d_backward_weight": (ctypes.c_int, [_F32, _F32, _F32, ctypes.c_int, _I32]),
    "cs_bn_stats": (None, [_F32, _INT, _INT, _LONG, _F32, _F64, _F64]),
    "cs_bn_apply": (None, [_F32, _F32, _INT, _INT, _LONG, _F32, _F32, _F32]),
    "cs_bn_backward_sums": (None, [_F32, _F32, _F32, _INT, _INT, _LONG, _F32, _F64, _F64, _F64]),
    "cs_bn_backward_input": (None, [_F32, _F32, _F32, _F32, _INT, _INT, _LONG, _F32, _F32, _F32, _F32]),
    "cs_channel_sums": (None, [_F32, _INT, _INT, _LONG, _F64]),
    "cs_bn_apply_relu": (None, [_F32, _F32, _INT, _INT, _LONG, _F32, _F32, _F32]),
    "cs_add_relu": (None, [_F32, _F32, _F32, _LONG]),
    "cs_relu_forward": (None, [_F32, _F32, _LONG]),
    "cs_relu_backward": (None, [_F32, _F32, _F32, _LONG]),
    "cs_max_pool2d_forward": (None, [_F32, _F32, _I64, _LONG, _I32, _INT, _INT]),
    "cs_max_pool2d_backward": (None, [_F32, _I64, _F32, _LONG, _LONG, _LONG]),
    "cs_avg_pool2d_forward": (None, [_F32, _F32, _F32, _LONG, _I32, _INT, _INT]),
    "cs_avg_pool2d_backward": (None, [_F32, _F32, _F32, _F32, _LONG, _I32, _INT, _INT]),
}


def _library_path() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / (LIBRARY_STEM + suffix)
        if path.is_file():
            return path
    return None


def _load() -> None:
    _STATE["loaded"] = True
    path = _library_path()
    if path is None:
        failure = _HERE / BUILD_FAILURE_FILE
        if failure.is_file():
            _STATE["error"] = failure.read_text(encoding="utf-8").strip()
        else:
            _STATE["error"] = (
                "the native library was not built (install convscope with pip, or run "
                "'python setup.py build_ext --inplace' in a source checkout)"
            )
        return
    try:
        lib = ctypes.CDLL(str(path))  # CDLL calls release the GIL
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    except (OSError, AttributeError) as exc:
        _STATE["error"] = f"the native library {path.name} could not be loaded: {exc}"
        return
    _STATE["lib"] = lib


def library():
    """The loaded ctypes library, or None (see :func:`load_error`)."""
    if not _STATE["loaded"]:
        _load()
    return _STATE["lib"]


def required_library():
    """The loaded ctypes library, for a native kernel about to call it.

    Raises:
        Unsupported: the library is not loaded (the dispatcher then runs the NumPy kernel).
    """
    lib = library()
    if lib is None:
        raise Unsupported("the native library is not loaded")
    return lib


def load_error() -> str | None:
    """None when the compiled library is loaded, else why it is not."""
    library()
    return _STATE["error"]


def isa() -> str | None:
    """Instruction set the library was compiled for (e.g. 'avx512'), or None when not loaded."""
    lib = library()
    return None if lib is None else lib.cs_isa().decode()


def build_info() -> dict:
    """What the library was compiled for: instruction set, floats per vector, compiler; {} if not loaded."""
    lib = library()
    if lib is None:
        return {}
    return {
        "isa": lib.cs_isa().decode(),
        "vector_floats": int(lib.cs_vector_floats()),
        "compiler": lib.cs_compiler().decode(),
        "library": str(_library_path()),
    }


def f32ptr(a):
    """Address of a C-contiguous float32 array for a ``float *`` argument (None stays None)."""
    return None if a is None else a.ctypes.data


def i32ptr(a):
    """Address of a C-contiguous int32 array for an ``int *`` argument."""
    return a.ctypes.data


def f64ptr(a):
    """Address of a C-contiguous float64 array for a ``double *`` argument."""
    return a.ctypes.data
