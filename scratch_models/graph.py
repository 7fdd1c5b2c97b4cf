"""The graph structures of a functional model: tensor references and nodes (one call of a layer).

Tensors are named as Keras names them in a functional config: ``(layer_name, node_index,
tensor_index)``. A node is one call of a layer (or of a ``keras.ops`` op) on argument tensors, with an
optional explicit ``mask=`` tensor. ``Model`` (model.py), the training loop (training.py) and the
inference plan (inference/) all read these; none of them imports another for them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TensorRef = tuple  # (layer_name, node_index, tensor_index)


def is_ref(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 3 and isinstance(value[0], str)


@dataclass
class Node:
    """One call of ``layer`` on ``args`` (tensor refs, lists of refs, or constants)."""
    layer: str
    index: int
    args: list
    mask: TensorRef | None = None
    #: Call keyword arguments other than ``mask``/``training`` (refs, lists of refs or constants), e.g. an
    #: RNN's ``initial_state`` or MultiHeadAttention's ``attention_mask``.
    kwargs: dict = field(default_factory=dict)

    @property
    def output(self) -> TensorRef:
        return (self.layer, self.index, 0)

    def inputs(self) -> list[TensorRef]:
        """Every tensor this node reads: its arguments' refs, then its explicit mask."""
        return (flat_refs(self.args) + flat_refs(list(self.kwargs.values()))
                + ([tuple(self.mask)] if self.mask is not None else []))

    def to_json(self) -> dict:
        return {"layer": self.layer, "index": self.index, "args": _jsonable(self.args),
                "mask": None if self.mask is None else list(self.mask),
                **({"kwargs": {k: _jsonable(v) for k, v in self.kwargs.items()}} if self.kwargs else {})}

    @classmethod
    def from_json(cls, d: dict) -> "Node":
        return cls(d["layer"], d["index"], _refs(d["args"]), None if d["mask"] is None else tuple(d["mask"]),
                   {k: _refs(v) for k, v in d.get("kwargs", {}).items()})


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):  # a constant tensor argument (Keras' __tensor__)
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype)}
    if isinstance(v, slice):
        return {"__slice__": [v.start, v.stop, v.step]}
    if v is Ellipsis:
        return {"__ellipsis__": True}
    return v


def _refs(v):
    if is_ref(v):
        return tuple(v)
    if isinstance(v, list):
        return [_refs(x) for x in v]
    if isinstance(v, dict) and "__ndarray__" in v:
        return np.asarray(v["__ndarray__"], v["dtype"])
    if isinstance(v, dict) and "__slice__" in v:
        return slice(*v["__slice__"])
    if isinstance(v, dict) and "__ellipsis__" in v:
        return Ellipsis
    return v


def flat_refs(args) -> list:
    """The tensor refs in ``args`` (nested lists allowed), in order, as tuples."""
    out = []
    for a in args:
        if is_ref(a):
            out.append(tuple(a))
        elif isinstance(a, list):
            out.extend(flat_refs(a))
    return out


def resolve(arg, table: dict):
    """``arg`` with every tensor ref replaced by its entry in ``table`` (lists kept, constants as they are)."""
    if is_ref(arg):
        return table[tuple(arg)]
    if isinstance(arg, list):
        return [resolve(a, table) for a in arg]
    return arg


def readers(nodes: list[Node]) -> dict[tuple, list[int]]:
    """For every tensor, the indices (in ``nodes``) of the nodes that read it."""
    out: dict[tuple, list[int]] = {}
    for i, node in enumerate(nodes):
        for r in node.inputs():
            out.setdefault(r, []).append(i)
    return out


#: Named tensor arguments whose Keras mask goes to the layer as ``<name>_mask`` (as Keras 3 fills them in).
MASKED_CALL_ARGS = ("value", "key")


def call_node(node: Node, layer, values: dict, masks: dict, training: bool = False) -> None:
    """Run one node and store its output(s) in ``values`` and their masks in ``masks``, as Keras 3's
    ``Layer.__call__`` passes masks.

    An op (``takes_all_args``) gets all its resolved arguments and its output carries no mask. A layer
    gets its first argument as ``x`` and its other ones by name: positional ones after the first as
    ``layer.call_args`` names them, then the node's kwargs. ``mask``: the explicit ``mask=`` tensor, else,
    when ``x`` is the only tensor argument, the mask ``x`` carries; with several tensor arguments Keras
    passes none (an RNN given ``initial_state`` ignores its input's mask), except to a layer that takes
    each argument's mask (``masks_each_argument``: MultiHeadAttention's query/value/key masks, as
    ``mask``, ``value_mask``, ``key_mask``). The output mask is ``compute_mask(x, explicit mask or the
    mask x carries)``. A layer returning a list (an RNN with ``return_state``) has one tensor per item,
    ``(layer, index, k)``; item 0 carries the output mask, the others none.
    """
    args = resolve(node.args, values)
    if getattr(layer, "takes_all_args", False):  # an Op
        outputs, out_mask = layer.forward(args), None
    else:
        names = getattr(layer, "call_args", ())
        if len(node.args) > 1 + len(names):
            raise ValueError(f"Layer {node.layer!r} takes 1 + {len(names)} positional tensors {names}, "
                             f"received {len(node.args)}")
        named = [*zip(names, node.args[1:]), *node.kwargs.items()]
        kwargs = {name: resolve(arg, values) for name, arg in named}
        carried = resolve(node.args[0], masks)
        several = any(flat_refs([arg]) for _, arg in named)
        if node.mask is not None:
            mask = values[tuple(node.mask)]
        elif several and not getattr(layer, "masks_each_argument", False):
            mask = None
        else:
            mask = carried
        if getattr(layer, "masks_each_argument", False):
            kwargs.update({f"{name}_mask": masks.get(tuple(arg)) for name, arg in named
                           if is_ref(arg) and name in MASKED_CALL_ARGS})
        outputs = layer.forward(args[0], mask=mask, training=training, **kwargs)
        out_mask = layer.compute_mask(args[0], values[tuple(node.mask)] if node.mask is not None else carried)
    if isinstance(outputs, list):
        for k, y in enumerate(outputs):
            values[(node.layer, node.index, k)] = y
            masks[(node.layer, node.index, k)] = out_mask if k == 0 else None
    else:
        values[node.output], masks[node.output] = outputs, out_mask
