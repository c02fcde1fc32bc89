"""A torch.fx graph as plain data, replayed with convscope's ops or with torch's.

``from_torch`` traces a custom torch module's forward one level deep (every child call stays a
call of that child, so hooks, Grad-CAM layer names and summaries see the same modules) and
keeps the graph as :class:`Node` tuples whose function targets are names (``'flatten'``,
``'add'``), not torch objects. A convscope :class:`GraphModule` replays it with convscope's
functions; ``to_torch`` turns it back into a torch module that replays it with torch's.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as TF

from ..autograd import creation as _creation
from ..nn import functional as CF
from ..nn.modules.module import Module


@dataclass(frozen=True)
class Ref:
    """A reference to the value of an earlier node."""

    name: str


@dataclass(frozen=True)
class Node:
    """One graph node: op is placeholder, get_attr, call_module, call_function, call_method or output."""

    op: str
    name: str
    target: str
    args: tuple
    kwargs: dict


def _no_inplace(fn):
    def call(*args, inplace: bool = False, **kwargs):
        return fn(*args, **kwargs)

    return call


def _identity(x, *args, **kwargs):
    return x


def _cs_size(x, dim=None):
    return tuple(x.shape) if dim is None else x.shape[dim]


# name -> (torch callables that trace to it, the torch implementation, the convscope one)
FUNCTIONS: dict[str, tuple[tuple, Any, Any]] = {
    "add": ((operator.add, operator.iadd, torch.add), operator.add, operator.add),
    "sub": ((operator.sub, operator.isub, torch.sub), operator.sub, operator.sub),
    "mul": ((operator.mul, operator.imul, torch.mul), operator.mul, operator.mul),
    "truediv": ((operator.truediv, operator.itruediv, torch.div), operator.truediv, operator.truediv),
    "neg": ((operator.neg,), operator.neg, operator.neg),
    "getitem": ((operator.getitem,), operator.getitem, operator.getitem),
    "getattr": ((builtins.getattr,), builtins.getattr, builtins.getattr),
    "flatten": ((torch.flatten,), torch.flatten, CF.flatten),
    "cat": ((torch.cat, torch.concat), torch.cat, _creation.cat),
    "stack": ((torch.stack,), torch.stack, _creation.stack),
    "relu": ((torch.relu, TF.relu), _no_inplace(TF.relu), _no_inplace(CF.relu)),
    "leaky_relu": ((TF.leaky_relu,), _no_inplace(TF.leaky_relu), _no_inplace(CF.leaky_relu)),
    "sigmoid": ((torch.sigmoid, TF.sigmoid), torch.sigmoid, CF.sigmoid),
    "tanh": ((torch.tanh, TF.tanh), torch.tanh, CF.tanh),
    "softmax": ((torch.softmax, TF.softmax), TF.softmax, CF.softmax),
    "log_softmax": ((torch.log_softmax, TF.log_softmax), TF.log_softmax, CF.log_softmax),
    "conv1d": ((TF.conv1d, torch.conv1d), TF.conv1d, CF.conv1d),
    "conv2d": ((TF.conv2d, torch.conv2d), TF.conv2d, CF.conv2d),
    "conv_transpose2d": ((TF.conv_transpose2d,), TF.conv_transpose2d, CF.conv_transpose2d),
    "linear": ((TF.linear,), TF.linear, CF.linear),
    "max_pool2d": ((TF.max_pool2d,), TF.max_pool2d, CF.max_pool2d),
    "avg_pool2d": ((TF.avg_pool2d,), TF.avg_pool2d, CF.avg_pool2d),
    "adaptive_avg_pool2d": ((TF.adaptive_avg_pool2d,), TF.adaptive_avg_pool2d, CF.adaptive_avg_pool2d),
    "adaptive_max_pool2d": ((TF.adaptive_max_pool2d,), TF.adaptive_max_pool2d, CF.adaptive_max_pool2d),
    "dropout": ((TF.dropout,), _no_inplace(TF.dropout), _no_inplace(CF.dropout)),
    "batch_norm": ((TF.batch_norm,), TF.batch_norm, CF.batch_norm),
    "interpolate": ((TF.interpolate,), TF.interpolate, CF.interpolate),
    "pad": ((TF.pad,), TF.pad, CF.pad),
}

_BY_TORCH = {id(fn): name for name, (fns, _t, _c) in FUNCTIONS.items() for fn in fns}

# Tensor methods: the same name on both sides unless mapped here (convscope side)
METHODS: dict[str, Callable[..., Any]] = {
    "size": _cs_size,
    "contiguous": _identity,
    "view": lambda x, *shape: x.reshape(*shape),
    "add_": lambda x, y: x + y,
    "relu_": lambda x: CF.relu(x),
}
SAME_METHODS = {
    "add",
    "sub",
    "mul",
    "div",
    "matmul",
    "pow",
    "exp",
    "log",
    "sqrt",
    "abs",
    "clamp",
    "sum",
    "mean",
    "var",
    "std",
    "max",
    "min",
    "reshape",
    "permute",
    "transpose",
    "flatten",
    "unsqueeze",
    "squeeze",
    "expand",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dim",
    "numel",
    "detach",
}


def function_name(target) -> str | None:
    """The graph's name for a traced torch callable, or None when convscope has no counterpart."""
    return _BY_TORCH.get(id(target))


def method_supported(name: str) -> bool:
    return name in METHODS or name in SAME_METHODS


def _resolve(value, env: dict):
    if isinstance(value, Ref):
        return env[value.name]
    if isinstance(value, tuple):
        return tuple(_resolve(v, env) for v in value)
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, env) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(_resolve(value.start, env), _resolve(value.stop, env), _resolve(value.step, env))
    return value


def _get_path(module, path: str):
    obj = module
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def run_graph(module, nodes: tuple, args: tuple, kwargs: dict, backend: str):
    """Evaluate ``nodes`` on ``module`` (``backend`` 'torch' or 'convscope' picks the functions)."""
    side = 1 if backend == "torch" else 2
    env: dict = {}
    positional = list(args)
    for node in nodes:
        if node.op == "placeholder":
            if positional:
                env[node.name] = positional.pop(0)
            elif node.target in kwargs:
                env[node.name] = kwargs[node.target]
            elif node.args:
                env[node.name] = node.args[0]  # the default value
            else:
                raise TypeError(f"{type(module).__name__}.forward() is missing the argument {node.target!r}")
        elif node.op == "get_attr":
            env[node.name] = _get_path(module, node.target)
        elif node.op == "call_module":
            sub = _get_path(module, node.target)
            env[node.name] = sub(*_resolve(node.args, env), **_resolve(node.kwargs, env))
        elif node.op == "call_function":
            impl = FUNCTIONS[node.target]
            fn = impl[1] if side == 1 else impl[2]
            env[node.name] = fn(*_resolve(node.args, env), **_resolve(node.kwargs, env))
        elif node.op == "call_method":
            self_arg, *rest = _resolve(node.args, env)
            kw = _resolve(node.kwargs, env)
            if backend == "torch" or node.target not in METHODS:
                env[node.name] = getattr(self_arg, node.target)(*rest, **kw)
            else:
                env[node.name] = METHODS[node.target](self_arg, *rest, **kw)
        else:  # output
            return _resolve(node.args[0], env)
    raise ValueError(f"{type(module).__name__}: its graph has no output node")


class GraphModule(Module):
    """A convscope module whose forward replays a traced torch forward with convscope's ops.

    ``from_torch`` makes one subclass per torch class, named like it (``BasicBlock``), so
    summaries and error messages read as the original model.
    """

    _graph: tuple = ()

    def forward(self, *args, **kwargs):
        return run_graph(self, self._graph, args, kwargs, "convscope")


def graph_code(nodes: tuple) -> str:
    """The graph as readable lines, one node per line (for repr and error messages)."""
    lines = []
    for n in nodes:
        if n.op == "output":
            lines.append(f"return {n.args[0]}")
        elif n.op != "placeholder":
            lines.append(f"{n.name} = {n.op} {n.target}{n.args}{n.kwargs or ''}")
    return "\n".join(lines)
