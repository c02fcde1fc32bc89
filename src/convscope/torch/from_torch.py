"""from_torch: a torch.nn.Module as a convscope model with the same names, layers and weights."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.fx as fx

from .. import nn as cnn
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from .graph import GraphModule, Node, Ref, function_name, graph_code, method_supported
from .layers import FROM_TORCH, copy_tensors_from_torch, leaf_class, to_convscope_array

tnn = torch.nn
_SIMPLE = (bool, int, float, str, type(None))


class _ShallowTracer(fx.Tracer):
    """Traces one module's own forward: every submodule call stays a call (one level deep)."""

    def is_leaf_module(self, m: tnn.Module, module_qualified_name: str) -> bool:
        return True


_GRAPH_CLASSES: dict[type, type] = {}


def _graph_class(torch_cls: type) -> type:
    """A GraphModule subclass named like the torch class (one per class)."""
    if torch_cls not in _GRAPH_CLASSES:
        _GRAPH_CLASSES[torch_cls] = type(
            torch_cls.__name__,
            (GraphModule,),
            {"__module__": torch_cls.__module__, "__qualname__": torch_cls.__qualname__},
        )
    return _GRAPH_CLASSES[torch_cls]


def _is_simple(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_is_simple(v) for v in value)
    return isinstance(value, _SIMPLE)


def _plain_arg(value, where: str, problems: list):
    """An fx argument with nodes as Refs; torch-only values are reported."""
    if isinstance(value, fx.Node):
        return Ref(value.name)
    if isinstance(value, tuple):
        return tuple(_plain_arg(v, where, problems) for v in value)
    if isinstance(value, list):
        return [_plain_arg(v, where, problems) for v in value]
    if isinstance(value, dict):
        return {k: _plain_arg(v, where, problems) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(_plain_arg(v, where, problems) for v in (value.start, value.stop, value.step)))
    if isinstance(value, (torch.Tensor, torch.dtype, torch.device, torch.memory_format)):
        problems.append(f"{where}: a torch constant ({type(value).__name__}) in forward")
        return None
    return value


def _is_state(m: tnn.Module, target: str) -> bool:
    owner, _, name = target.rpartition(".")
    try:
        sub = m.get_submodule(owner)
    except AttributeError:
        return False
    return name in sub._parameters or name in sub._buffers


def _trace(m: tnn.Module, path: str, problems: list) -> tuple | None:
    label = f"{path!r} ({type(m).__name__})" if path else f"the root ({type(m).__name__})"
    try:
        graph = _ShallowTracer().trace(m)
    except Exception as err:  # fx raises many kinds (TraceError, TypeError on proxies in control flow)
        problems.append(f"{label}: torch.fx cannot trace its forward ({type(err).__name__}: {err})")
        return None
    nodes = []
    for n in graph.nodes:
        target = n.target
        if n.op == "call_function":
            target = function_name(n.target)
            if target is None:
                name = getattr(n.target, "__qualname__", None) or getattr(
                    n.target, "__name__", repr(n.target)
                )
                problems.append(f"{label}: function {getattr(n.target, '__module__', '') or ''}.{name}")
        elif n.op == "call_method" and not method_supported(n.target):
            problems.append(f"{label}: tensor method .{n.target}()")
        elif n.op == "get_attr" and not _is_state(m, n.target):
            problems.append(
                f"{label}: attribute {n.target!r} is a tensor that is neither a parameter nor a buffer"
            )
        args = _plain_arg(n.args, label, problems)
        kwargs = _plain_arg(dict(n.kwargs), label, problems)
        nodes.append(Node(n.op, n.name, str(target), args, kwargs))
    return tuple(nodes)


_TORCH_INTERNAL = set(vars(tnn.Module())) | {"training"}


def _original_class(m: tnn.Module) -> type | None:
    """The convscope class of a module that ``to_torch`` made, or None."""
    from .to_torch import original_class

    return original_class(type(m))


def _from_twin(m: tnn.Module, cls: type) -> cnn.Module:
    """Rebuild a to_torch twin as an instance of its original convscope class."""
    leaf = leaf_class(m, FROM_TORCH)
    if leaf is not None:
        new = FROM_TORCH[leaf](m)
    elif isinstance(m, tnn.Sequential):
        new = cnn.Sequential()
    elif isinstance(m, tnn.ModuleList):
        new = cnn.ModuleList()
    else:
        new = cnn.Module()
    if type(new) is not cls:
        new.__class__ = cls
    for name, value in vars(m).items():
        if name not in _TORCH_INTERNAL and name not in vars(new):
            object.__setattr__(new, name, _attribute(value))
    return new


def _attribute(value):
    if isinstance(value, torch.Tensor):
        return Tensor(to_convscope_array(value))
    try:
        return copy.deepcopy(value)
    except Exception:  # an object that does not copy is shared, as it is in the original
        return value


def _convert(m: tnn.Module, path: str, problems: list, memo: dict):
    if id(m) in memo:
        return memo[id(m)]
    label = f"{path!r} ({type(m).__name__})" if path else f"the root ({type(m).__name__})"
    leaf = leaf_class(m, FROM_TORCH)
    original = _original_class(m)
    if original is not None:
        new = _from_twin(m, original)
    elif leaf is not None and getattr(type(m), "forward") is getattr(leaf, "forward"):  # noqa: B009
        try:
            new = FROM_TORCH[leaf](m)
        except (ValueError, TypeError) as err:
            problems.append(f"{label}: {err}")
            return None
    elif isinstance(m, tnn.Sequential) and getattr(type(m), "forward") is tnn.Sequential.forward:  # noqa: B009
        new = cnn.Sequential()
    elif isinstance(m, tnn.ModuleList):
        new = cnn.ModuleList()
    elif type(m).__module__.startswith("torch."):
        problems.append(label)
        return None
    else:
        new = _graph_class(type(m))()
        new._graph = _trace(m, path, problems) or ()
        for name, value in vars(m).items():
            if name not in _TORCH_INTERNAL and _is_simple(value):
                setattr(new, name, value)
    copy_tensors_from_torch(m, new)
    for name, child in m._modules.items():
        sub = None if child is None else _convert(child, f"{path}.{name}" if path else name, problems, memo)
        new.add_module(name, sub)
    object.__setattr__(new, "training", m.training)
    memo[id(m)] = new
    return new


def _as_torch(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, Tensor):
        return torch.from_numpy(np.array(x.data, copy=True))
    return torch.from_numpy(np.array(x, copy=True))


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [v for o in out for v in _flat(o)]
    return [out]


def _check_outputs(module: tnn.Module, model: cnn.Module, example_input) -> None:
    """Both models in eval mode on ``example_input`` must agree to float rounding."""
    x = _as_torch(example_input)
    torch_modes = [(mod, mod.training) for mod in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            expected = _flat(module(x))
    finally:
        for mod, mode in torch_modes:
            mod.training = mode
    with model.evaluating(), no_grad():
        got = _flat(model(Tensor(to_convscope_array(x))))
    if len(got) != len(expected):
        raise ValueError(
            f"from_torch: the converted model returns {len(got)} outputs, the torch module {len(expected)}"
        )
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        a = a.data if isinstance(a, Tensor) else np.asarray(a)
        b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"from_torch: output {i} has shape {a.shape}, the torch module's {b.shape}")
        tol = 1e-4 if a.dtype == np.float32 else 1e-9
        scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
        if a.size and not np.allclose(a, b, rtol=tol, atol=tol * scale):
            raise ValueError(
                f"from_torch: on example_input the converted model's output {i} differs from the torch "
                f"module's by up to {float(np.abs(a - b).max()):.3g} (expected float rounding, "
                f"below {tol * scale:.3g}); a forward uses an op whose semantics differ"
            )


def from_torch(module: tnn.Module, example_input, *, check: bool = True) -> cnn.Module:
    """A convscope model equal to a torch module: same module names, layers, arguments and weights.

    Layers convscope has (Conv1d/2d, ConvTranspose2d, pools, BatchNorm1d/2d with running
    statistics, Dropout, activations, Linear, Flatten, Upsample, losses) become their convscope
    twins; Sequential and ModuleList stay containers. A custom module (a torchvision-style
    ResNet's ``BasicBlock``, VGG, AlexNet) is traced with ``torch.fx`` one level deep and
    becomes a convscope module of the same class name that replays that graph with
    convscope's functions, calling the same children, so hooks, Grad-CAM layer names and
    summaries see the original structure.

    Args:
        module (torch.nn.Module): the model to convert (left unchanged).
        example_input (torch.Tensor, convscope.Tensor or array): an input of the model's shape,
            e.g. (1, C, H, W); both models are run on it in eval mode and must agree.
        check (bool, default True): run that comparison.

    Returns:
        convscope.nn.Module: the twin, each module in the torch module's train/eval mode.

    Raises:
        TypeError: ``module`` is not a torch.nn.Module.
        ValueError: unsupported layers, functions or tensor methods (all listed in one message),
            or outputs that differ on ``example_input``.

    Example:
        >>> model = from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()),
        ...                    torch.randn(1, 3, 32, 32))
        >>> model(convscope.randn(1, 3, 32, 32)).shape
        (1, 8, 30, 30)
    """
    if not isinstance(module, tnn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    problems: list = []
    model = _convert(module, "", problems, {})
    if problems:
        raise ValueError(
            f"from_torch: {type(module).__name__} uses what convscope cannot express: "
            + "; ".join(dict.fromkeys(problems))
            + ". Supported layers: "
            + ", ".join(sorted(c.__name__ for c in FROM_TORCH))
            + ", Sequential, ModuleList and custom modules whose forward uses them"
        )
    if check:
        _check_outputs(module, model, example_input)
    return model


__all__ = ["from_torch", "graph_code"]
