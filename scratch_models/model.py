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

from . import parallel
from .layers import InputLayer, Layer, deserialize_layer, serialize_layer
from .ops import Op
from .threads import single_threaded_blas

TensorRef = tuple  # (layer_name, node_index, tensor_index)
DEFAULT_BATCH_SIZE = 256
#: Smallest part worth a thread of its own, by the kind of model (``predict`` splits a batch of N into at
#: most N // that parts): recurrent models 128 texts; convolutional ones 16 images (served cnn, 2 cores,
#: the split against OpenBLAS' own 2 threads, alternating in one process, median of per-pair ratios:
#: batch 16 in 2 parts 1.00-1.02x, 32 0.93-0.98x (1.18x before Winograd chunks of 1024 tiles), 48 0.88x,
#: 64 0.84x, 256 0.85x). Other models are not split.
PARALLEL_MIN_ITEMS_PER_PART = {"recurrent": 128, "convolutional": 16}
RECURRENT_LAYERS = ("SimpleRNN", "LSTM", "Bidirectional")
CONVOLUTIONAL_LAYERS = ("Conv2D",)


def is_ref(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 3 and isinstance(value[0], str)


@dataclass
class Node:
    """One call of ``layer`` on ``args`` (tensor refs, lists of refs, or constants)."""
    layer: str
    index: int
    args: list
    mask: TensorRef | None = None

    @property
    def output(self) -> TensorRef:
        return (self.layer, self.index, 0)

    def to_json(self) -> dict:
        return {"layer": self.layer, "index": self.index, "args": _jsonable(self.args),
                "mask": None if self.mask is None else list(self.mask)}

    @classmethod
    def from_json(cls, d: dict) -> "Node":
        return cls(d["layer"], d["index"], _refs(d["args"]), None if d["mask"] is None else tuple(d["mask"]))


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _refs(v):
    if is_ref(v):
        return tuple(v)
    if isinstance(v, list):
        return [_refs(x) for x in v]
    return v


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
            elif layer.built and node.index > 0:  # a shared layer called again
                shapes[node.output] = layer.compute_output_shape(in_shape)
            else:
                shapes[node.output] = layer.build(in_shape)
        self.nodes = order
        self.shapes = shapes
        self._fusions = None
        self.built = True
        return self

    def _op_shape(self, node: Node, shapes: dict):
        for a in node.args:
            if is_ref(a):
                return shapes[tuple(a)]
        return (None,)

    @staticmethod
    def _resolve(arg, table):
        if is_ref(arg):
            return table[tuple(arg)]
        if isinstance(arg, list):
            return [Model._resolve(a, table) for a in arg]
        return arg

    def _topological_order(self) -> list[Node]:
        available = {(i.name, 0, 0) for i in self.inputs}
        pending, order = list(self.nodes), []
        while pending:
            progressed = False
            for node in list(pending):
                needed = _flat_refs(node.args) + ([node.mask] if node.mask is not None else [])
                if all(tuple(r) in available for r in needed):
                    order.append(node)
                    available.add(node.output)
                    pending.remove(node)
                    progressed = True
            if not progressed:
                missing = sorted({tuple(r) for n in pending for r in _flat_refs(n.args)} - available)
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
        """True when input 0 feeds an Embedding: the input is token ids whatever its declared dtype."""
        from .layers import Embedding
        first = (self.inputs[0].name, 0, 0)
        return np.dtype(self.input_dtype).kind in "iu" or any(
            isinstance(self.layers[n.layer], Embedding) and first in _flat_refs(n.args[:1]) for n in self.nodes)

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

    def _inference_fusions(self) -> dict[int, tuple[int, int | None, int | None]]:
        """Conv2D (no activation) -> BatchNormalization [-> Activation('relu')] [-> MaxPooling2D 2x2/2
        'valid'] chains, each link the only reader of the previous one: at inference they run as one
        Conv2D whose kernel and bias absorb the BatchNormalization's per-channel ``x * scale + shift``,
        whose ReLU runs in place, and which max-pools each chunk of its product while it is in cache
        (``Conv2D.infer(max_pool_2x2=True)``). The same arithmetic up to float rounding (the pooling is
        exact), three fewer passes over the largest activations.
        Returns {conv node index: (batchnorm node index, relu node index or None, pooling node index or
        None)}; the graph is fixed after ``build``, so this is computed once."""
        if getattr(self, "_fusions", None) is not None:
            return self._fusions
        readers: dict[tuple, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for r in _flat_refs(node.args) + ([node.mask] if node.mask is not None else []):
                readers.setdefault(tuple(r), []).append(i)
        outputs = {tuple(o) for o in self.outputs}

        def only_reader(i: int, kind: str) -> int | None:
            out = self.nodes[i].output
            rs = readers.get(out, [])
            if out in outputs or len(rs) != 1:
                return None
            j = rs[0]
            node = self.nodes[j]
            ok = (type(self.layers[node.layer]).__name__ == kind and node.mask is None
                  and len(node.args) == 1 and is_ref(node.args[0]) and tuple(node.args[0]) == out)
            return j if ok else None

        fusions = {}
        for i, node in enumerate(self.nodes):
            layer = self.layers[node.layer]
            if type(layer).__name__ != "Conv2D" or layer.activation != "linear":
                continue
            j = only_reader(i, "BatchNormalization")
            if j is None:
                continue
            k = only_reader(j, "Activation")
            k = k if k is not None and self.layers[self.nodes[k].layer].activation == "relu" else None
            p = only_reader(j if k is None else k, "MaxPooling2D")
            pool = None if p is None else self.layers[self.nodes[p].layer]
            two_by_two = pool is not None and pool.pool_size == pool.strides == (2, 2) and pool.padding == "valid"
            fusions[i] = (j, k, p if two_by_two else None)
        self._fusions = fusions
        return fusions

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """One forward pass over the whole batch (no chunking, no validation): the building block of predict."""
        values: dict[tuple, Any] = {(self.inputs[0].name, 0, 0): x}
        masks: dict[tuple, Any] = {(self.inputs[0].name, 0, 0): None}
        fusions = {} if training else self._inference_fusions()
        fused: set[int] = set()
        for i, node in enumerate(self.nodes):
            if i in fused:
                continue
            layer = self.layers[node.layer]
            args = self._resolve(node.args, values)
            if i in fusions:
                j, k, p = fusions[i]
                scale, shift = self.layers[self.nodes[j].layer].affine()
                bias = layer.weights.get("bias")
                pooled = p is not None and min(layer.compute_output_shape(args[0].shape)[1:3]) >= 2
                y = layer.infer(args[0], layer.weights["kernel"] * scale, shift if bias is None else bias * scale + shift,
                                "linear" if k is None else "relu", max_pool_2x2=pooled)
                chain = [n for n in (j, k, p if pooled else None) if n is not None]
                last = self.nodes[chain[-1]].output
                values[last], masks[last] = y, None
                fused.update(chain)
                continue
            if isinstance(layer, Op):
                values[node.output] = layer.forward(args)
                masks[node.output] = None
                continue
            x_in = args[0]
            carried = self._resolve(node.args[0], masks)
            mask = values[tuple(node.mask)] if node.mask is not None else carried
            values[node.output] = layer.forward(x_in, mask=mask, training=training)
            masks[node.output] = layer.compute_mask(x_in, carried)
        return values[tuple(self.outputs[0])]

    forward = __call__

    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) float32, computed ``batch_size`` items at a time (default 256)."""
        x = self.check_input(x)
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"Expected a positive integer for `batch_size`, received: {batch_size}")
        if len(x) <= batch_size:
            return np.asarray(self._forward_split(x), self.dtype)
        return np.concatenate([self._forward_split(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)]).astype(self.dtype)

    def _forward_split(self, x: np.ndarray) -> np.ndarray:
        """Inference on one part of the batch per core, in threads, for large enough batches of recurrent
        and convolutional models: the whole forward pass per part, one BLAS thread each.

        Rows are independent at inference, and NumPy releases the GIL in its loops and matrix products,
        so the element-wise passes, which NumPy runs on one core, run on all of them. Recurrent (2 cores,
        batch 256): rnn 17.5 -> 13.3 ms, lstm 69.7 -> 53.5 ms. Convolutional: OpenBLAS' own threads
        share each product but leave the im2col copies, the Winograd transforms and the pooling on one
        core, and they wake and spin between the products; one split per forward pass instead of one per
        layer also keeps each part's activations in its core's cache (numbers at PARALLEL_MIN_ITEMS_PER_PART).
        """
        min_items = self._split_min_items()
        parts = min(parallel.cores(), len(x) // min_items) if min_items else 1
        if parts < 2 or parallel.in_worker():
            return self(x)
        with single_threaded_blas():
            return np.concatenate(parallel.map_parts(self, np.array_split(x, parts)))

    def _split_min_items(self) -> int | None:
        """Smallest part of a split batch for this model's kind (None: never split)."""
        kinds = {type(layer).__name__ for layer in self.layers.values()}
        if kinds & set(RECURRENT_LAYERS):
            return PARALLEL_MIN_ITEMS_PER_PART["recurrent"]
        if kinds & set(CONVOLUTIONAL_LAYERS):
            return PARALLEL_MIN_ITEMS_PER_PART["convolutional"]
        return None

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
            layer = Op(spec["class_name"], spec["config"]["name"]) if spec.get("op") else deserialize_layer(spec)
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


def _flat_refs(args) -> list:
    out = []
    for a in args:
        if is_ref(a):
            out.append(tuple(a))
        elif isinstance(a, list):
            out.extend(_flat_refs(a))
    return out
