"""Run convscope forward code against torch: the same functions with convscope's names swapped.

A custom module's methods are copied into a torch twin class with new globals in which each
convscope name the code uses means its torch counterpart (``F.pad`` -> ``torch.nn.functional.pad``,
``convscope.cat`` -> ``torch.cat``, ``nn.Conv2d`` -> the twin class), helper functions of the
same module are rebound the same way, and names that have no counterpart (NumPy, convscope's
kernels) make the translation fail with the module's name instead of failing at run time.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

from .. import nn as cnn
from ..autograd import creation as C
from ..autograd import grad_mode
from ..autograd.tensor import Tensor
from ..nn import functional as CF
from ..nn.functional import _fused as fused_passes
from ..nn.parameter import Parameter
from .graph import _no_inplace


def _conv_bn_relu(conv, bn, relu, x):
    """The zoo's fused conv pass as plain module calls (``bn``, ``relu``: None when absent)."""
    y = conv(x)
    y = y if bn is None else bn(y)
    return y if relu is None else relu(y)


class TranslationError(ValueError):
    """A convscope module whose forward cannot run on torch tensors."""


_F_SPECIAL = {
    "flatten": torch.flatten,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": _no_inplace(TF.relu),
    "leaky_relu": _no_inplace(TF.leaky_relu),
    "dropout": _no_inplace(TF.dropout),
}
F_MAP: dict[str, Any] = {name: _F_SPECIAL.get(name) or getattr(TF, name) for name in CF.__all__}

TOP_MAP: dict[str, Any] = {
    "cat": torch.cat,
    "stack": torch.stack,
    "where": torch.where,
    "zeros": torch.zeros,
    "ones": torch.ones,
    "full": torch.full,
    "zeros_like": torch.zeros_like,
    "ones_like": torch.ones_like,
    "randn": torch.randn,
    "rand": torch.rand,
    "arange": torch.arange,
    "tensor": torch.tensor,
    "from_numpy": torch.from_numpy,
    "no_grad": torch.no_grad,
    "enable_grad": torch.enable_grad,
    "is_grad_enabled": torch.is_grad_enabled,
    "set_grad_enabled": torch.set_grad_enabled,
    "Tensor": torch.Tensor,
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
}

# identity of a convscope callable -> its torch counterpart
_BY_ID: dict[int, Any] = {id(getattr(CF, name)): fn for name, fn in F_MAP.items()}
for _name, _fn in TOP_MAP.items():
    for _owner in (C, grad_mode):
        if hasattr(_owner, _name):
            _BY_ID[id(getattr(_owner, _name))] = _fn
_BY_ID[id(Tensor)] = torch.Tensor
_BY_ID[id(Parameter)] = torch.nn.Parameter


class Namespace:
    """A stand-in for a convscope module object (``F``, ``nn``, ``convscope``) inside translated code."""

    def __init__(self, label: str, members: dict, resolve=None):
        self._label, self._members, self._resolve = label, members, resolve

    def __getattr__(self, name: str):
        members = self.__dict__["_members"]
        if name in members:
            resolve = self.__dict__["_resolve"]
            return members[name] if resolve is None else resolve(members[name])
        raise AttributeError(
            f"{self.__dict__['_label']}.{name} has no PyTorch counterpart in convscope.torch; "
            f"translated forwards may use: {', '.join(sorted(members))}"
        )


class Rebinder:
    """Translates functions and values; ``twin_class`` maps a convscope Module class to its twin."""

    def __init__(self, twin_class):
        self.twin_class = twin_class
        self._globals: dict[int, dict] = {}
        self._done: dict[int, set] = {}
        self._functions: dict[int, types.FunctionType] = {}
        self.f_ns = Namespace("convscope.nn.functional", F_MAP)
        nn_members: dict[str, Any] = {"functional": self.f_ns, "Parameter": torch.nn.Parameter}
        for name in cnn.__all__:
            obj = getattr(cnn, name)
            if isinstance(obj, type) and issubclass(obj, cnn.Module):
                nn_members[name] = obj  # resolved to twins lazily below
        self.nn_ns = Namespace("convscope.nn", nn_members, self._twin_if_module)
        self.top_ns = Namespace("convscope", {**TOP_MAP, "nn": self.nn_ns})
        # the zoo's fused inference passes are plain module calls in torch (torch fuses its own)
        self.fused_ns = Namespace(
            "convscope.nn.functional._fused",
            {
                "batch_norm_relu": lambda bn, relu, x: relu(bn(x)),
                "add_relu": lambda relu, a, b: relu(a + b),
                "conv_bn_relu": _conv_bn_relu,
            },
        )

    def _twin_if_module(self, obj):
        """convscope.nn's classes become their twins when translated code reads them."""
        if isinstance(obj, type) and issubclass(obj, cnn.Module):
            return self.twin_class(obj)
        return obj

    def value(self, value, name: str, where: str):
        """The torch-side meaning of a value that translated code refers to as ``name``."""
        import convscope

        if isinstance(value, types.ModuleType):
            if value is CF:
                return self.f_ns
            if value is fused_passes:
                return self.fused_ns
            if value is cnn:
                return self.nn_ns
            if value is convscope:
                return self.top_ns
            if value is np:
                raise TranslationError(
                    f"{where} uses NumPy ({name!r}) in its forward; NumPy arrays do not carry torch's "
                    f"autograd, so the module has no torch twin (write it with convscope.nn.functional ops)"
                )
            if value.__name__.startswith("convscope."):
                raise TranslationError(
                    f"{where} uses the module {value.__name__} ({name!r}) in its forward, which has no "
                    f"PyTorch counterpart; use convscope.nn.functional ops"
                )
            return value
        if id(value) in _BY_ID:
            return _BY_ID[id(value)]
        if isinstance(value, type) and issubclass(value, cnn.Module):
            return self.twin_class(value)
        if isinstance(value, types.FunctionType) and _translatable_module(value):
            return self.function(value, f"{where} -> {value.__module__}.{value.__qualname__}")
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)) and getattr(
            value, "__module__", ""
        ).startswith("convscope."):
            raise TranslationError(
                f"{where} calls {value.__module__}.{getattr(value, '__qualname__', name)}, which has no "
                f"PyTorch counterpart in convscope.torch"
            )
        if isinstance(value, Tensor):
            return torch.from_numpy(np.array(value.data, copy=True))
        return value

    def function(self, fn: Any, where: str, owner=None, twin=None) -> types.FunctionType:
        """``fn`` with convscope names in its globals, closure and defaults swapped for torch's."""
        key = id(fn)
        if key in self._functions and owner is None:
            return self._functions[key]
        old = fn.__globals__
        new_globals = self._globals.setdefault(id(old), dict(old))
        done = self._done.setdefault(id(old), set())
        closure = None
        if fn.__closure__:
            cells = []
            for cell in fn.__closure__:
                try:
                    content = cell.cell_contents
                except ValueError:  # an empty cell (a name assigned later)
                    cells.append(cell)
                    continue
                if owner is not None and content is owner:
                    cells.append(types.CellType(twin))  # zero-argument super() and __class__
                else:
                    cells.append(types.CellType(self.value(content, "closure", where)))
            closure = tuple(cells)
        new = types.FunctionType(fn.__code__, new_globals, fn.__name__, fn.__defaults__, closure)
        new.__kwdefaults__ = fn.__kwdefaults__
        new.__qualname__, new.__doc__, new.__module__ = fn.__qualname__, fn.__doc__, fn.__module__
        if owner is None:
            self._functions[key] = new
        for name in _code_names(fn.__code__):
            if name in old and name not in done:
                done.add(name)
                try:
                    new_globals[name] = self.value(old[name], name, where)
                except TranslationError:
                    done.discard(name)
                    raise
        return new


def _translatable_module(fn: types.FunctionType) -> bool:
    """Python helpers of convscope's models and of user code are rebound; library internals are not."""
    module = fn.__module__ or ""
    if module.startswith("convscope."):
        return module.startswith("convscope.models.")
    return not module.startswith(("torch", "numpy", "builtins"))


def _code_names(code: types.CodeType) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names
