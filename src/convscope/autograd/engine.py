"""Reverse-mode differentiation over the recorded tape.

``run_backward`` sorts the nodes reachable from the root topologically with an
explicit stack (no recursion, so deep networks cannot overflow Python's
stack), then visits them from the root towards the leaves, calling each op's
hand-written backward once with the summed gradient of its output. Leaf
tensors accumulate into ``.grad`` with ``+=``, as PyTorch does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..kernels.elementwise import add as _add
from .grad_mode import no_grad

if TYPE_CHECKING:
    from .function import Context


def topological_order(root_node: Context) -> list[Context]:
    """Nodes reachable from ``root_node``, every node after all nodes that consume it.

    Returns:
        list of Context: root first, leaves-side nodes last.
    """
    post = []
    seen = set()
    stack = [(root_node, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            child = getattr(t, "grad_fn", None)
            if child is not None and id(child) not in seen:
                stack.append((child, False))
    post.reverse()
    return post


def run_backward(root: Tensor, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d loss / d root) back to every leaf that requires grad.

    Args:
        root (Tensor): the tensor to differentiate, with a ``grad_fn``.
        grad (ndarray): gradient of the same shape as ``root``.
        retain_graph (bool, default False): keep the saved arrays so backward
            can run through the same graph again.

    Raises:
        RuntimeError: when the graph was already freed by an earlier backward.
    """
    if root.grad_fn is None:  # Tensor.backward accumulates a leaf itself, without the engine
        raise RuntimeError("run_backward needs a tensor produced by a recorded op (grad_fn is None)")
    order = topological_order(root.grad_fn)
    grads = {id(root.grad_fn): grad}
    with no_grad():
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if getattr(node, "released", False):
                raise RuntimeError(
                    f"backward through {node.name} a second time: its saved values were freed "
                    "by the first backward; pass retain_graph=True to the first call"
                )
            if node.hooks:
                for hook in node.hooks:
                    new = hook(_as_tensor(g))
                    if new is not None:
                        g = new.data if isinstance(new, Tensor) else np.asarray(new)
            if node.retained is not None:
                out = node.retained()
                if out is not None:
                    out._accumulate_grad(g)
            in_grads = node.fn.backward(node, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            n_in = len(node.inputs)
            if len(in_grads) < n_in or any(gi is not None for gi in in_grads[n_in:]):
                raise RuntimeError(
                    f"{node.fn.__name__}.backward returned {len(in_grads)} gradients; expected one per "
                    f"positional forward input ({n_in}; None where none is needed, extra entries None)"
                )
            for t, gi, need in zip(node.inputs, in_grads[:n_in], node.needs_input_grad, strict=True):
                if not need or gi is None:
                    continue
                child = t.grad_fn
                if child is None:
                    t._accumulate_leaf(gi)
                else:
                    key = id(child)
                    prev = grads.get(key)
                    grads[key] = gi if prev is None else _add(prev, gi)  # threaded when large
            if not retain_graph:
                node.release()


def _as_tensor(array):
    return Tensor._wrap(array, False)


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module lazily)
