"""Optimizer: the base class of every optimizer, plus checkpoint helpers for its state.

Mirrors ``torch.optim.Optimizer`` (``param_groups``, ``state``, ``zero_grad``, ``step``,
``add_param_group``, ``state_dict`` in PyTorch's layout). State values are NumPy arrays and
Python numbers, so :func:`state_dict_to_arrays` splits a state dict into ``.npz`` arrays plus
a JSON document — no pickle.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..autograd.grad_mode import enable_grad
from ..autograd.tensor import Tensor

__all__ = ["Optimizer", "ParamsT", "state_dict_to_arrays", "state_dict_from_arrays"]

#: What an optimizer takes: parameters, or dicts with ``'params'`` and per-group options.
ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
_L = TypeVar("_L")  # what step's closure returns (the loss)


def check_number(
    owner: str, name: str, value: Any, low: float, high: float | None = None, high_open: bool = True
) -> None:
    """Raise ValueError unless ``low <= value`` (and ``value < high`` or ``<= high``)."""
    rng = f">= {low}" if high is None else f"in [{low}, {high}{')' if high_open else ']'}"
    # typeshed's numbers.Real declares no __ge__ (only __lt__/__le__), though every Real has one
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= low  # type: ignore[operator]
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{owner}: invalid {name}: expected a number {rng}, got {value!r}")


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define the update.

    Args:
        params (iterable): Parameters, ``(name, Parameter)`` pairs, or dicts with a ``'params'``
            entry plus options that override ``defaults`` for that group.
        defaults (dict): default options (``'lr'``, ...) of every group.

    Raises:
        TypeError: ``params`` is a single Tensor, a set, or holds something not a Tensor.
        ValueError: the parameter list is empty, a parameter appears twice, a parameter is
            not a leaf, or an option is out of range (checked by the subclass).

    Subclasses implement ``_check_options(options)`` and ``_update(param, grad, state, group)``,
    which changes the NumPy array ``param`` in place.

    Example:
        >>> opt = convscope.optim.SGD([{"params": model.fc.parameters(), "lr": 0.1},
        ...                            {"params": model.features.parameters()}], lr=0.01)
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
    """

    def __init__(self, params: ParamsT, defaults: dict) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params should be an iterable of Parameters or dicts, "
                f"got a single {type(params).__name__}; wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: parameters must be in an ordered collection (list or "
                f"tuple), got a set whose order changes between runs"
            )
        self.defaults = dict(defaults)
        self._check_options(self.defaults)
        self.state: dict = {}
        self.param_groups: list[dict[str, Any]] = []
        groups: list[Any] = list(params)  # Parameters, or group dicts
        if len(groups) == 0:
            raise ValueError(
                f"{self._name}: got an empty parameter list; expected at least "
                f"one Parameter (did the model have no parameters?)"
            )
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check_options(self, options: dict[str, Any]) -> None:
        if "lr" in options:
            check_number(self._name, "lr", options["lr"], 0.0)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (e.g. newly unfrozen layers) with its own options.

        Args:
            param_group (dict): ``'params'`` (a Parameter or an iterable of them) and any
                options; missing options take the optimizer's defaults.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)  # never mutate the caller's dict
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{self._name}: parameters must be in an ordered collection (list or "
                f"tuple), got a set whose order changes between runs"
            )
        elif params is None:
            raise ValueError(f"{self._name}: param_group needs a 'params' entry, got keys {sorted(group)}")
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    f"{self._name}: either all parameters or none must be given "
                    f"as (name, Parameter) pairs; got {len(names)} of {len(params)}"
                )
            group["param_names"] = names
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: can only optimize Tensors, but params[{i}] is a {type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{self._name}: params[{i}] is not a leaf Tensor (it was computed "
                    f"by an op); expected a Parameter"
                )
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_options(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(
                    f"{self._name}: a parameter appears twice (params[{i}] of group "
                    f"{len(self.param_groups)} with shape {p.data.shape}); expected "
                    f"each parameter once across all groups"
                )
            seen.add(id(p))
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            raise ValueError(
                f"{self._name}: either all param groups or none must use (name, Parameter) pairs"
            )
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: ``p.grad = None`` (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], _L] | None = None) -> _L | None:
        """Update every parameter that has a gradient; parameters with ``grad is None`` are skipped.

        Args:
            closure (callable or None, default None): re-evaluates the model and returns the
                loss; called with gradients enabled before the update.

        Returns:
            the closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                grad = p.grad.data if isinstance(p.grad, Tensor) else np.asarray(p.grad)
                if grad.shape != p.data.shape:
                    raise ValueError(
                        f"{self._name}: gradient of param_groups[{gi}]['params'][{pi}] "
                        f"has shape {grad.shape}; expected the parameter's shape "
                        f"{p.data.shape}"
                    )
                if grad.dtype != p.data.dtype:
                    grad = grad.astype(p.data.dtype)
                state = self.state.get(p, {})
                self._update(p.data, grad, state, group)
                if state:
                    self.state[p] = state
        return loss

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{self._name} does not define its update rule (_update)")

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout (arrays copied).

        Returns:
            dict: ``{'state': {index: {name: ndarray or number}}, 'param_groups': [{..options,
            'params': [index, ...]}]}`` where indices count parameters across groups in order.
        """
        index, groups, start = {}, [], 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            index.update({id(p): i for i, p in zip(packed["params"], group["params"], strict=True)})
            start += len(group["params"])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            state[index[id(p)]] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state and options saved by :meth:`state_dict` (for the same parameters, in order).

        Floating-point state arrays are copied and cast to their parameter's dtype, as PyTorch
        does; ``'step'`` becomes a Python number (a 0-d array from a converted torch state works).

        Raises:
            ValueError: the number of groups, of parameters in a group, or a state array's shape
                differs from this optimizer's.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self._name}.load_state_dict: the state dict has {len(saved_groups)} "
                f"parameter groups; expected {len(self.param_groups)}"
            )
        id_map: dict[int, Tensor] = {}
        for gi, (group, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{self._name}.load_state_dict: parameter group {gi} of the state "
                    f"dict has {len(saved['params'])} parameters; expected "
                    f"{len(group['params'])}"
                )
            id_map.update(zip((int(i) for i in saved["params"]), group["params"], strict=True))
        new_state = {}
        for key, saved in state_dict["state"].items():
            if int(key) not in id_map:
                raise ValueError(
                    f"{self._name}.load_state_dict: state for parameter index {key}, "
                    f"expected indices 0..{len(id_map) - 1}"
                )
            p = id_map[int(key)]
            entry = {}
            for name, value in saved.items():
                if name == "step":  # a Python number, so bias corrections stay float64
                    value = int(value) if float(value).is_integer() else float(value)
                elif isinstance(value, np.ndarray):
                    if value.shape != p.data.shape:
                        raise ValueError(
                            f"{self._name}.load_state_dict: state {name!r} of parameter "
                            f"{key} has shape {value.shape}; expected {p.data.shape}"
                        )
                    value = value.astype(p.data.dtype) if value.dtype.kind == "f" else value.copy()
                entry[name] = value
            new_state[p] = entry
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            new = {k: v for k, v in saved.items() if k != "params"}
            new["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                new["param_names"] = group["param_names"]
            new_groups.append(new)
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])


def _to_json_value(value, where: str):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v, where) for v in value]
    raise TypeError(
        f"state_dict_to_arrays: {where} is a {type(value).__name__}; expected an "
        f"ndarray, a number, a string, None or a list of those"
    )


def state_dict_to_arrays(
    state_dict: dict[str, Any], prefix: str = ""
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """Split an optimizer state dict into named arrays (for ``np.savez``) and a JSON-able dict.

    Args:
        state_dict (dict): from :meth:`Optimizer.state_dict`.
        prefix (str, default ""): prepended to every array name, e.g. ``"optimizer."``.

    Returns:
        (arrays, meta): ``arrays`` maps ``f"{prefix}state.{index}.{name}"`` to ndarray; ``meta``
        holds the param groups and the numbers, with ``{"__array__": key}`` where an array was.

    Example:
        >>> arrays, meta = state_dict_to_arrays(opt.state_dict(), prefix="optimizer.")
        >>> np.savez(f, **arrays); json.dumps(meta)
    """
    arrays, state = {}, {}
    for index, entry in state_dict["state"].items():
        out = {}
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                key = f"{prefix}state.{int(index)}.{name}"
                arrays[key] = value
                out[name] = {"__array__": key}
            else:
                out[name] = _to_json_value(value, f"state[{index}][{name!r}]")
        state[str(int(index))] = out
    groups = [
        {k: _to_json_value(v, f"param_groups[{i}][{k!r}]") for k, v in g.items()}
        for i, g in enumerate(state_dict["param_groups"])
    ]
    meta = {"state": state, "param_groups": groups}
    json.dumps(meta)  # fail here, not later when writing the checkpoint
    return arrays, meta


def state_dict_from_arrays(arrays: Mapping[str, npt.NDArray[Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`state_dict_to_arrays`: rebuild a state dict for :meth:`Optimizer.load_state_dict`.

    Args:
        arrays (mapping): name -> ndarray (e.g. an opened ``np.load(path, allow_pickle=False)``).
        meta (dict): the JSON-able dict (after a ``json.loads``).

    Returns:
        dict: ``{'state': {int: {...}}, 'param_groups': [...]}``; list options other than
        ``'params'``/``'param_names'`` (e.g. ``betas``) come back as tuples.
    """
    state = {}
    for index, entry in meta["state"].items():
        out = {}
        for name, value in entry.items():
            if isinstance(value, dict) and "__array__" in value:
                if value["__array__"] not in arrays:
                    raise ValueError(
                        f"state_dict_from_arrays: array {value['__array__']!r} is "
                        f"missing; expected it among the saved arrays"
                    )
                value = np.array(arrays[value["__array__"]])
            out[name] = value
        state[int(index)] = out
    groups = []
    for g in meta["param_groups"]:
        groups.append(
            {
                k: tuple(v) if isinstance(v, list) and k not in ("params", "param_names") else v
                for k, v in g.items()
            }
        )
    return {"state": state, "param_groups": groups}
