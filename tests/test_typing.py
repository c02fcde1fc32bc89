"""The package's typing contract: it ships ``py.typed`` and its public API carries type hints.

mypy itself runs in CI (``.ci/run``); these checks are the fast, import-level part of the
contract, so a new public function without hints fails here before it reaches CI.
"""

from __future__ import annotations

import inspect
import sys
from importlib import resources
from pathlib import Path

import pytest

import convscope
from convscope import backends, formats, models, nn, optim
from convscope.nn import functional as F
from convscope.optim import lr_scheduler

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_marker_ships_with_the_package():
    assert resources.files("convscope").joinpath("py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["convscope"]


def _public_callables():
    """(qualified name, function) of every public function and public method of public classes."""
    seen = set()
    for module in (convscope, nn, F, nn.init, optim, lr_scheduler, models, formats, backends):
        for name in getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]:
            obj = getattr(module, name, None)
            if inspect.isfunction(obj) and obj.__module__.startswith("convscope"):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    yield f"{obj.__module__}.{obj.__qualname__}", obj
            elif inspect.isclass(obj) and obj.__module__.startswith("convscope"):
                for attr, fn in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__init__", "__call__"):
                        continue
                    fn = fn.fget if isinstance(fn, property) else fn
                    fn = fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn
                    # Tensor's operators are attached at import (autograd/tensor_methods.py); their
                    # typed declarations sit in tensor.py's TYPE_CHECKING block, checked by mypy
                    if not inspect.isfunction(fn) or fn.__module__ == "convscope.autograd.tensor_methods":
                        continue
                    if id(fn) not in seen:
                        seen.add(id(fn))
                        yield f"{obj.__module__}.{obj.__qualname__}.{attr}", fn


def _missing_hints(fn) -> list[str]:
    sig = inspect.signature(fn)
    missing = [
        p.name
        for i, p in enumerate(sig.parameters.values())
        if p.annotation is inspect.Parameter.empty and not (i == 0 and p.name in ("self", "cls", "ctx"))
    ]
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        missing.append("return")
    return missing


def test_the_scan_sees_the_public_api():
    names = {name for name, _ in _public_callables()}
    for expected in ("conv2d", "Conv2d.__init__", "SGD.__init__", "Module.state_dict", "load", "create"):
        assert any(n.endswith(expected) for n in names), expected


@pytest.mark.parametrize("name, fn", list(_public_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_signature_is_annotated(name, fn):
    assert _missing_hints(fn) == [], f"{name} lacks type hints for {_missing_hints(fn)}"
