"""Module: the base class of layers and models, mirroring torch.nn.Module.

Assigning a Parameter, a Module or (via ``register_buffer``) a buffer to an
attribute registers it, so ``parameters()``, ``state_dict()`` and friends
find it with PyTorch-identical dotted names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ...autograd.tensor import DTypeLike, Tensor
from ..parameter import Parameter

if TYPE_CHECKING:
    from typing_extensions import Self

#: ``hook(module, inputs)`` before forward; may return new inputs (a tuple, or one value).
#: (``...``: hooks often bind loop values as extra defaulted parameters.)
ForwardPreHook = Callable[..., Any]
#: ``hook(module, inputs, output)`` after forward; may return a new output.
ForwardHook = Callable[..., Any]


class StateDictError(ValueError, RuntimeError):
    """load_state_dict found missing/unexpected keys or mismatched shapes.

    A ValueError (a user mistake) that is also a RuntimeError, the class PyTorch raises.
    """


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by hook registration; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class LayerName:
    """A module's ``Type(extra_repr)`` label, built only when formatted into a message."""

    __slots__ = ("module",)

    def __init__(self, module: Module) -> None:
        self.module = module

    def __str__(self) -> str:
        return f"{type(self.module).__name__}({self.module.extra_repr()})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class Module:
    """Base class for all layers and models.

    Subclasses call ``super().__init__()`` first, assign parameters and
    submodules as attributes, and implement ``forward``.
    """

    training: bool
    _parameters: OrderedDict[str, Parameter | None]
    _buffers: OrderedDict[str, Tensor | None]
    _non_persistent: set[str]
    _modules: OrderedDict[str, Any]  # Module, or None for an emptied slot (as in PyTorch)
    _forward_hooks: OrderedDict[int, ForwardHook]
    _forward_pre_hooks: OrderedDict[int, ForwardPreHook]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attribute {name!r}"
            )
        if isinstance(value, Parameter):
            self.__dict__["_modules"].pop(name, None)
            self.__dict__["_buffers"].pop(name, None)
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__["_parameters"].pop(name, None)
            self.__dict__["_buffers"].pop(name, None)
            self.__dict__.pop(name, None)
            self._modules[name] = value
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} to buffer {name!r} (a Tensor or None is expected)"
                )
            self._buffers[name] = value
        elif name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    f"(convscope.nn.Parameter or None expected)"
                )
            self._parameters[name] = None
        elif name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} "
                    f"(a Module or None expected)"
                )
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # parameters, buffers and submodules
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[store]:
                del self.__dict__[store][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter({name!r}) expects a Parameter or None, got {type(param).__name__}"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a non-trainable tensor (e.g. BatchNorm's running mean) saved in state_dict."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"register_buffer({name!r}) expects a Tensor or None, got {type(tensor).__name__}"
            )
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}) expects a Module, got {type(module).__name__}")
        self._modules[name] = module

    register_module = add_module

    # ---------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            new = hook(self, args, out)
            if new is not None:
                out = new
        return out

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; it may return a new output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: ForwardPreHook) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before every forward; it may return new inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # -------------------------------------------------------------- traversal
    def named_modules(self, memo: set[int] | None = None, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant, depth first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen = set()
        modules: Iterator[tuple[str, Module]] | list[tuple[str, Module]] = (
            self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        )
        for mod_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a shared parameter is listed once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at a dotted path such as ``'layer1.0.conv1'``."""
        if target == "":
            return self
        module = self
        for part in target.split("."):
            if part not in module._modules:
                valid = [n for n, _ in self.named_modules() if n]
                raise ValueError(
                    f"{type(self).__name__} has no submodule {target!r}; valid names: "
                    f"{', '.join(valid[:60])}{' ...' if len(valid) > 60 else ''}"
                )
            module = module._modules[part]
        return module

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Self:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Self:
        return self.train(False)

    @contextmanager
    def evaluating(self) -> Iterator[Self]:
        """Context manager: eval mode inside, then every submodule's own mode restored.

        (``train(was_training)`` afterwards would reset a layer the user had put in eval mode
        on purpose, e.g. frozen BatchNorm.) A convscope extension, used by the analysis and
        explanation tools.
        """
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for m, mode in modes:
                object.__setattr__(m, "training", mode)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def apply(self, fn: Callable[[Module], object]) -> Self:
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, dtype: DTypeLike) -> Self:
        """Convert floating-point parameters and buffers to ``dtype`` (in place)."""
        dtype = np.dtype(dtype)
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is not None and t.data.dtype.kind == "f":
                        t.data = t.data.astype(dtype)
                        if t.grad is not None:
                            t.grad.data = t.grad.data.astype(dtype)
        return self

    def float(self) -> Self:
        return self.to(np.float32)

    def double(self) -> Self:
        return self.to(np.float64)

    # -------------------------------------------------------------- state dict
    def state_dict(
        self, destination: OrderedDict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict[str, Any]:
        """Parameters and persistent buffers by dotted name (detached Tensors sharing memory)."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into this module's parameters and buffers, checking keys and shapes.

        Args:
            state_dict (mapping): name -> Tensor or array, e.g. from ``state_dict()`` or ``convscope.load``.
            strict (bool, default True): missing or unexpected keys are an error.

        Raises:
            StateDictError: missing/unexpected keys (strict) or any shape mismatch.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if tuple(array.shape) != tuple(target.shape):
                problems.append(
                    f"size mismatch for {key}: the checkpoint has shape {tuple(array.shape)}, "
                    f"this model expects {tuple(target.shape)}"
                )
        if strict:
            if missing:
                problems.insert(0, f"missing keys: {_short(missing)}")
            if unexpected:
                problems.insert(0, f"unexpected keys: {_short(unexpected)}")
        if problems:
            raise StateDictError(
                f"error loading state_dict into {type(self).__name__}: " + "; ".join(problems)
            )
        for key, target in own.items():
            if key in state_dict:
                value = state_dict[key]
                array = value.data if isinstance(value, Tensor) else np.asarray(value)
                target.data[...] = array.astype(target.data.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"{extra}" if extra else "")
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def _layer_name(self) -> LayerName:
        """The layer as written in error messages, e.g. ``Conv2d(3, 16, kernel_size=3)``.

        Layers pass it to the functional ops on every forward, so it is formatted only when
        a message is actually written.
        """
        return LayerName(self)

    def __dir__(self) -> list[str]:
        return sorted(
            set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules)
        )


def _short(keys: list, limit: int = 10) -> str:
    text = ", ".join(repr(k) for k in keys[:limit])
    return text + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")
