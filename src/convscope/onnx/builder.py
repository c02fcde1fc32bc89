"""A small ONNX graph builder over the ``onnx`` package's helpers.

It hands out unique value and node names, turns NumPy arrays into initializers (deduplicated by
identity, so a weight shared by two layers is stored once) and keeps the node list in the order the
nodes were added, which the exporter makes topological.
"""

from __future__ import annotations

import numpy as np

SUPPORTED_EXPORT_OPSETS = range(13, 21)
DEFAULT_OPSET = 17


def ir_version_for(opset: int) -> int:
    """The lowest IR version that declares ``opset`` of the default domain (what runtimes accept).

    Raises:
        ValueError: opset outside 13-20.
    """
    if opset not in SUPPORTED_EXPORT_OPSETS:
        raise ValueError(
            f"ONNX export: opset must be between {SUPPORTED_EXPORT_OPSETS.start} and "
            f"{SUPPORTED_EXPORT_OPSETS.stop - 1}, got {opset}"
        )
    from onnx import helper

    return int(helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


class GraphBuilder:
    """Collects nodes, initializers and names for one ONNX graph.

    Args:
        opset (int): the default-domain opset the nodes are written for.
    """

    def __init__(self, opset: int):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()
        self._by_array: dict[int, tuple[np.ndarray, str]] = {}

    def unique(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... when taken; reserves the result."""
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def initializer(self, array: np.ndarray, base: str) -> str:
        """The name of an initializer holding ``array`` (stored once per array object)."""
        key = id(array)
        hit = self._by_array.get(key)
        if hit is not None and hit[0] is array:
            return hit[1]
        name = self.unique(base)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        self._by_array[key] = (array, name)
        return name

    def const(self, values, dtype, base: str = "const") -> str:
        """A fresh initializer of ``values`` in ``dtype`` (shapes, axes, scalars)."""
        return self.initializer(np.asarray(values, dtype=dtype), base)

    def constant_node(self, array: np.ndarray, name: str) -> str:
        """A Constant node holding ``array``: a fixed operand that an importer should not train
        (initializers are the model's weights)."""
        tensor = self.numpy_helper.from_array(np.ascontiguousarray(array), self.unique(name + "_value"))
        return self.one("Constant", [], name, value=tensor)

    def ints(self, values, base: str = "shape") -> str:
        return self.const(list(values), np.int64, base)

    def node(self, op_type: str, inputs: list, name: str, outputs: int | list = 1, **attrs) -> list:
        """Add one node; returns its output value names.

        Args:
            op_type: the ONNX operator.
            inputs: value names ('' for an omitted optional input).
            name: the node's name (made unique); outputs are named after it.
            outputs: how many outputs, or their names.
        """
        node_name = self.unique(name)
        if isinstance(outputs, int):
            outs = [self.unique(f"{node_name}_output_{i}") for i in range(outputs)]
        else:
            outs = list(outputs)
            self._names.update(outs)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=node_name, **attrs))
        return outs

    def one(self, op_type: str, inputs: list, name: str, **attrs) -> str:
        """:meth:`node` for a single-output node: its output name."""
        return self.node(op_type, inputs, name, **attrs)[0]
