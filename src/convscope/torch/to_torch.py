"""to_torch: a convscope model's torch.nn twin with the same names, layers, arguments and weights."""

from __future__ import annotations

import copy

import torch

from .. import nn as cnn
from ..autograd.tensor import Tensor
from .graph import GraphModule, run_graph
from .layers import TO_TORCH, copy_tensors_to_torch, leaf_class, to_torch_tensor
from .rebind import Rebinder, TranslationError

tnn = torch.nn

_INTERNAL = set(vars(cnn.Module()))
_SKIP_MEMBERS = {
    "__init__",
    "__dict__",
    "__weakref__",
    "__module__",
    "__qualname__",
    "__doc__",
    "__slots__",
    "__annotations__",
    "__setattr__",
    "__getattr__",
    "__delattr__",
    "__firstlineno__",
    "__static_attributes__",
    "__annotate__",
}
_ROOT_ATTRS = ("model_name", "model_config")


class TorchGraphModule(tnn.Module):
    """The torch twin of a :class:`~convscope.torch.graph.GraphModule`: replays its graph with torch's ops."""

    _graph: tuple = ()

    def forward(self, *args, **kwargs):
        return run_graph(self, self._graph, args, kwargs, "torch")


_BASES: dict[type, type] = {
    cnn.Module: tnn.Module,
    cnn.Sequential: tnn.Sequential,
    cnn.ModuleList: tnn.ModuleList,
    GraphModule: TorchGraphModule,
    **{cls: getattr(tnn, cls.__name__) for cls in TO_TORCH},
}
_TWINS: dict[type, type] = {}


def _layer_name(self) -> str:
    return f"{type(self).__name__}({self.extra_repr()})"


def twin_class(cls: type) -> type:
    """The torch class a convscope Module class translates to (made once per class)."""
    if cls in _BASES:
        return _BASES[cls]
    if cls in _TWINS:
        return _TWINS[cls]
    bases = tuple(twin_class(b) if issubclass(b, cnn.Module) else b for b in cls.__bases__)
    twin = type(cls.__name__, bases, {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    _TWINS[cls] = twin
    try:
        for name, value in cls.__dict__.items():
            if name not in _SKIP_MEMBERS:
                setattr(twin, name, _member(value, cls, twin, f"{cls.__module__}.{cls.__qualname__}"))
    except TranslationError:
        del _TWINS[cls]
        raise
    if not hasattr(twin, "_layer_name"):
        setattr(twin, "_layer_name", _layer_name)  # noqa: B010  (a dynamic class)
    return twin


_REBINDER = Rebinder(twin_class)


def original_class(torch_cls: type) -> type | None:
    """The convscope class whose twin ``torch_cls`` is (a generated class only), or None."""
    for cls, twin in _TWINS.items():
        if twin is torch_cls:
            return cls
    return None


def _member(value, cls: type, twin: type, where: str):
    fn = _REBINDER.function
    if isinstance(value, staticmethod):
        return staticmethod(fn(value.__func__, where, cls, twin))
    if isinstance(value, classmethod):
        return classmethod(fn(value.__func__, where, cls, twin))
    if isinstance(value, property):
        parts = [None if f is None else fn(f, where, cls, twin) for f in (value.fget, value.fset, value.fdel)]
        return property(parts[0], parts[1], parts[2], value.__doc__)
    if callable(value) and hasattr(value, "__code__"):
        return fn(value, where, cls, twin)
    return value


def _base_instance(m: cnn.Module, path: str) -> tnn.Module:
    leaf = leaf_class(m, TO_TORCH)
    if leaf is not None:
        try:
            return TO_TORCH[leaf](m)
        except (ValueError, TypeError, RuntimeError) as err:
            where = f"module {path!r}" if path else "the root module"
            raise TranslationError(f"to_torch: {where} ({m._layer_name()}): {err}") from None
    if isinstance(m, GraphModule):
        return TorchGraphModule()
    if isinstance(m, cnn.Sequential):
        return tnn.Sequential()
    if isinstance(m, cnn.ModuleList):
        return tnn.ModuleList()
    return tnn.Module()


def _attribute(value):
    if isinstance(value, Tensor):
        return to_torch_tensor(value)
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that does not copy is shared, as it is in the original
        return value


def _convert(m: cnn.Module, path: str, memo: dict) -> tnn.Module:
    if id(m) in memo:
        return memo[id(m)]
    label = f"to_torch: module {path!r} ({type(m).__name__})" if path else f"to_torch: {type(m).__name__}"
    try:
        twin = twin_class(type(m))
    except TranslationError as err:
        raise TranslationError(f"{label} cannot be translated: {err}") from None
    out = _base_instance(m, path)
    exact = type(m) in _BASES
    if type(out) is not twin:
        out.__class__ = twin
    copy_tensors_to_torch(m, out)
    for name, value in vars(m).items():
        if name in _INTERNAL or name == "training" or (exact and name not in _ROOT_ATTRS):
            continue
        if name in out.__dict__ and not isinstance(m, GraphModule):
            continue
        if isinstance(value, cnn.Module):
            continue
        object.__setattr__(out, name, _attribute(value))
    for name, child in m._modules.items():
        sub = None if child is None else _convert(child, f"{path}.{name}" if path else name, memo)
        out.add_module(name, sub)
    out.training = m.training
    memo[id(m)] = out
    return out


def to_torch(model: cnn.Module) -> tnn.Module:
    """The ``torch.nn`` twin of a convscope model: same module names, layers, arguments, weights.

    Layers become the torch.nn layers of the same name and arguments (Conv1d/2d,
    ConvTranspose2d, pools, BatchNorm1d/2d with running statistics, momentum and
    ``num_batches_tracked``, Dropout, activations, Linear, Flatten, Upsample, losses; ReLU and
    Dropout with ``inplace=False``, as convscope never mutates a tensor), Sequential,
    ModuleList and Identity stay what they are, and every module keeps its train/eval mode, so
    ``twin.state_dict()`` has the same keys and values as ``model.state_dict()``.

    A custom module (a zoo block, a model with a hand-written forward) becomes an instance of a
    generated torch class of the same name whose methods are the original ones run against
    torch: convscope's functional ops, ``convscope.cat`` and friends, and convscope classes in
    the code mean their torch counterparts. Forward hooks are not copied.

    Args:
        model (convscope.nn.Module): the model (left unchanged; the twin holds copies).

    Returns:
        torch.nn.Module: the twin, on the CPU, in the dtypes of the original.

    Raises:
        TypeError: ``model`` is not a convscope Module.
        TranslationError (a ValueError): a module whose forward uses something with no torch
            counterpart (NumPy, convscope's kernels), or a layer argument torch refuses (e.g.
            ``padding='same'`` at stride 2); the message names the module.

    Example:
        >>> twin = to_torch(convscope.models.create("lenet5"))
        >>> twin(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if not isinstance(model, cnn.Module):
        raise TypeError(f"to_torch: expected a convscope.nn.Module, got {type(model).__name__}")
    return _convert(model, "", {})


__all__ = ["TranslationError", "TorchGraphModule", "to_torch", "twin_class"]
