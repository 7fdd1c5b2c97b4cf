"""Model: a DAG of layer calls (a Sequential is the chain special case), run in topological order.

Tensors are named as Keras names them in a functional config: ``(layer_name, node_index,
tensor_index)``. A node is one call of a layer (or of a ``keras.ops`` op) on argument tensors, with an
optional explicit ``mask=`` tensor; otherwise the mask that the first input carries is passed, as
Keras does, and the layer's ``compute_mask`` gives the mask its output carries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graph import Node, TensorRef, call_node, flat_refs, is_ref, resolve
from .layers import InputLayer, Layer, deserialize_layer, serialize_layer
from .ops import Op

DEFAULT_BATCH_SIZE = 256


@dataclass
class Model:
    """Inputs, layers (in Keras' weight order), nodes (topologically sorted) and outputs."""
    inputs: list[InputLayer]
    layers: dict[str, Layer | Op]
    nodes: list[Node]
    outputs: list[TensorRef]
    name: str = "model"
    vectorizer: Any = None  # TextVectorizer for text models
    built: bool = field(default=False, init=False)
    dtype: np.dtype = field(default=np.dtype(np.float32), init=False)  # of weights, inputs and outputs

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def sequential(cls, input_layer: InputLayer, layers: list[Layer], name: str = "sequential") -> "Model":
        nodes, prev = [], (input_layer.name, 0, 0)
        for layer in layers:
            nodes.append(Node(layer.name, 0, [prev]))
            prev = (layer.name, 0, 0)
        model = cls([input_layer], {l.name: l for l in layers}, nodes, [prev], name)
        model.build()
        return model

    def build(self) -> "Model":
        """Propagate shapes from the inputs, creating every layer's weights with Keras' shapes."""
        shapes = {(i.name, 0, 0): (None, *i.shape[1:]) for i in self.inputs}
        order = self._topological_order()
        for node in order:
            layer = self.layers[node.layer]
            in_shape = self._resolve(node.args[0], shapes) if node.args else None
            if isinstance(layer, Op):
                shapes[node.output] = self._op_shape(node, shapes)
                continue
            if layer.built and node.index > 0:  # a shared layer called again
                out = layer.compute_output_shape(in_shape)
            else:
                out = layer.build(in_shape, **self._build_shapes(node, layer, shapes))
            shapes[node.output] = out
            if getattr(layer, "return_state", False):  # tensors 1.. of the node: the final states
                for k, state in enumerate(layer.state_shapes(in_shape), start=1):
                    shapes[(node.layer, node.index, k)] = state
        self.nodes = order
        self.shapes = shapes
        self._plan = None
        self.built = True
        return self

    @staticmethod
    def _build_shapes(node: Node, layer, shapes: dict) -> dict:
        """The shapes of a layer's other named tensor arguments (``<name>_shape``: MultiHeadAttention's
        value and key), for its ``build``."""
        names = getattr(layer, "call_args", ())
        named = [*zip(names, node.args[1:]), *node.kwargs.items()]
        return {f"{name}_shape": shapes[tuple(a)] for name, a in named if is_ref(a) and name in ("value", "key")}

    def _op_shape(self, node: Node, shapes: dict) -> tuple:
        """An op's output shape, by running it on ones of its arguments' shapes (batch 2 standing for
        the unknown batch size, which the output keeps as None when its first axis is that batch)."""
        batched = any(shapes[r][:1] == (None,) for r in flat_refs(node.args))
        dummy = {r: np.ones(tuple(2 if d is None else d for d in shapes[r]), np.float32) for r in flat_refs(node.args)}
        with np.errstate(all="ignore"):
            out = np.asarray(self.layers[node.layer].forward(resolve(node.args, dummy)))
        return (None, *out.shape[1:]) if batched and out.ndim and out.shape[0] == 2 else tuple(out.shape)

    _resolve = staticmethod(resolve)

    def _topological_order(self) -> list[Node]:
        available = {(i.name, 0) for i in self.inputs}  # (layer, node index): every tensor of that call
        pending, order = list(self.nodes), []
        while pending:
            progressed = False
            for node in list(pending):
                if all(tuple(r[:2]) in available for r in node.inputs()):
                    order.append(node)
                    available.add((node.layer, node.index))
                    pending.remove(node)
                    progressed = True
            if not progressed:
                missing = sorted({tuple(r) for n in pending for r in n.inputs() if tuple(r[:2]) not in available})
                raise ValueError(f"Model graph is not connected: nodes {[n.layer for n in pending]} "
                                 f"wait for tensors {missing}")
        return order

    # -- inference ------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        return (None, *self.inputs[0].shape[1:])

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    @property
    def takes_token_ids(self) -> bool:
        """True when input 0 feeds an Embedding: the input is token ids whatever its declared dtype.
        Worked out once per graph (``predict`` asks on every call)."""
        key = (id(self.nodes), len(self.nodes), self.input_dtype)
        cached = self.__dict__.get("_token_ids")
        if cached is not None and cached[0] == key:
            return cached[1]
        from .layers import Embedding
        first = (self.inputs[0].name, 0, 0)
        value = np.dtype(self.input_dtype).kind in "iu" or any(
            isinstance(self.layers[n.layer], Embedding) and first in flat_refs(n.args[:1]) for n in self.nodes)
        self.__dict__["_token_ids"] = (key, value)
        return value

    @property
    def output_shape(self) -> tuple:
        return self.shapes[tuple(self.outputs[0])]

    def check_input(self, x) -> np.ndarray:
        """Validate one batch for input 0: rank, shape, dtype family, finiteness. Returns the cast array."""
        expected = self.input_shape
        try:
            x = np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"Expected a numeric array of shape {expected}, received a ragged sequence ({exc})") from None
        if x.dtype == object:
            raise ValueError(f"Expected a numeric array of shape {expected}, received an object array")
        if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]):
            raise ValueError(f"Expected input of shape {expected} (batch first), received {x.shape}")
        if self.takes_token_ids:
            if x.dtype.kind == "f" and np.isfinite(x).all() and (x == np.round(x)).all():
                x = x.astype(np.int64)  # a float32 Keras input that carries ids, as Keras casts it
            if x.dtype.kind not in "iu":
                raise ValueError(f"Expected integer token ids, received dtype {x.dtype}"
                                 + (" with non-integral or non-finite values" if x.dtype.kind == "f" else ""))
            return x.astype(np.int64, copy=False)
        if x.dtype.kind != "f":
            raise ValueError(f"Expected floating-point input (dtype float32), received dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"Expected finite values, received {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
        return x

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """One forward pass over the whole batch, node by node through each layer's own ``forward`` (no
        validation, no fusion, no split): the reference that ``predict``'s plan is tested against, and the
        forward half of a training step."""
        values: dict[tuple, Any] = {(self.inputs[0].name, 0, 0): x}
        masks: dict[tuple, Any] = {(self.inputs[0].name, 0, 0): None}
        for node in self.nodes:
            call_node(node, self.layers[node.layer], values, masks, training)
        return values[tuple(self.outputs[0])]

    forward = __call__

    def backward(self, dout: np.ndarray, pre_activation: bool = False) -> None:
        """Propagate d loss / d output back through the graph (after ``self(x, training=True)``): every
        layer's ``grads`` gets filled. ``pre_activation``: ``dout`` is w.r.t. the output layer's
        pre-activation (the softmax's logits), as training takes it."""
        output = tuple(self.outputs[0])
        grads: dict[tuple, np.ndarray] = {output: dout}
        for node in reversed(self.nodes):
            layer = self.layers[node.layer]
            g = grads.pop(node.output, None)
            if isinstance(layer, Op) or g is None:
                continue
            dx = layer.backward(g, pre_activation=True) if (node.output == output and pre_activation) else layer.backward(g)
            if dx is None:
                continue
            for ref, d in zip(flat_refs(node.args[:1]), dx if isinstance(dx, list) else [dx]):
                grads[ref] = grads[ref] + d if ref in grads else d

    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) float32, computed ``batch_size`` items at a time (default 256) by the
        model's inference plan (``scratch_models.inference``: fused steps, compiled once)."""
        x = self.check_input(x)
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"Expected a positive integer for `batch_size`, received: {batch_size}")
        plan = self.plan()
        if len(x) <= batch_size:
            return np.asarray(plan.run(x), self.dtype)
        return np.concatenate([plan.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).astype(self.dtype)

    def plan(self):
        """The inference plan, compiled at the first call and again after the weights changed."""
        plan = getattr(self, "_plan", None)
        if plan is None or not plan.current():
            from .inference import compile_plan
            plan = self._plan = compile_plan(self)
        return plan

    def invalidate_plan(self) -> None:
        """Forget the inference plan (its folded and reordered weights): call after changing weight arrays
        in place outside ``fit``/``train_step`` (which call it themselves)."""
        self._plan = None

    # -- training (scratch_models.training) ------------------------------------------------------
    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy") -> None:
        """Set the optimizer (an object or its Keras name) and the loss for ``fit``/``train_step``."""
        from . import training
        training.compile(self, optimizer, loss)

    def train_step(self, x, y) -> float:
        from . import training
        return training.train_step(self, x, y)

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None, shuffle: bool = True,
            seed: int | None = 0, verbose: int = 1):
        from . import training
        return training.fit(self, x, y, epochs, batch_size, validation_data, shuffle, seed, verbose)

    def evaluate(self, x, y, batch_size: int = 256) -> tuple[float, float]:
        from . import training
        return training.evaluate(self, x, y, batch_size)

    # -- weights --------------------------------------------------------------------------------
    def astype(self, dtype) -> "Model":
        """Cast every weight to ``dtype`` (float32, the default, or float64) and compute in it:
        ``check_input`` casts float inputs to it and ``predict`` returns it. Call it before ``compile``
        (optimizer slots take the dtype of the weights at the first step)."""
        from .layers.base import check_float_dtype
        self.dtype = check_float_dtype(dtype)
        for layer in self.layers.values():
            if not isinstance(layer, Op):
                layer.astype(self.dtype)
        self.invalidate_plan()
        return self

    def weight_layers(self) -> list[Layer]:
        return [l for l in self.layers.values() if not isinstance(l, Op) and l.weights]

    def get_weights(self) -> list[np.ndarray]:
        """All weights in Keras' ``model.get_weights()`` order and shapes."""
        return [w for layer in self.weight_layers() for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        expected = sum(len(l.weights) for l in self.weight_layers())
        if len(weights) != expected:
            raise ValueError(f"Model {self.name!r} expected {expected} weight arrays, received {len(weights)}")
        i = 0
        for layer in self.weight_layers():
            n = len(layer.weights)
            layer.set_weights(list(weights[i:i + n]))
            i += n
        self.invalidate_plan()

    def count_params(self) -> int:
        return sum(l.count_params() for l in self.layers.values())

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"name": self.name,
                "inputs": [i.get_config() for i in self.inputs],
                "layers": [{"class_name": l.class_name, "op": True, "config": l.get_config()} if isinstance(l, Op)
                           else serialize_layer(l) for l in self.layers.values()],
                "nodes": [n.to_json() for n in self.nodes],
                "outputs": [list(o) for o in self.outputs]}

    @classmethod
    def from_json(cls, d: dict) -> "Model":
        inputs = [InputLayer(**c) for c in d["inputs"]]
        layers: dict[str, Layer | Op] = {}
        for spec in d["layers"]:
            layer = Op(spec["class_name"], spec["config"]["name"], spec["config"]) if spec.get("op") \
                else deserialize_layer(spec)
            layers[layer.name] = layer
        model = cls(inputs, layers, [Node.from_json(n) for n in d["nodes"]], [tuple(o) for o in d["outputs"]], d["name"])
        return model.build()

    def summary(self) -> str:
        rows = [f"Model {self.name!r}: input {self.input_shape} {self.input_dtype}"]
        for node in self.nodes:
            layer = self.layers[node.layer]
            kind = layer.class_name if isinstance(layer, Op) else type(layer).__name__
            rows.append(f"  {node.layer:<28} {kind:<24} {str(self.shapes[node.output]):<22} {layer.count_params():>9,}")
        rows.append(f"  total params: {self.count_params():,}")
        return "\n".join(rows)


_flat_refs = flat_refs  # the name other modules imported before graph.py
