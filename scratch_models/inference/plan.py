"""The inference plan of a Model: its graph rewritten into fused steps once, run by ``Model.predict``.

``compile_plan(model)`` walks the topologically sorted nodes and matches, by layer type, each node whose
output has only the next link as reader (and is not a model output):

* Conv2D [-> BatchNormalization, folded into the kernel and bias once] [-> ReLU (Activation or ReLU layer)]
  [-> MaxPooling2D 2x2/2 'valid'] -> one ``conv.ConvStep``;
* Dense [-> Activation] -> ``pooling.DenseStep``; BatchNormalization alone -> ``pooling.AffineStep``;
  Max/AveragePooling2D -> ``pooling.PoolStep``; the dropouts and noise layers (identity at inference) pass
  their input on, Flatten reshapes it (no layer call, no state written: ~10 us each per batch);
* SimpleRNN / LSTM -> ``recurrent.RecurrentStep``; a Bidirectional of two such cells ->
  ``recurrent.BidirectionalStep`` (stacked directions);
* anything else: the layer's own ``forward(x, mask=..., training=False)``.

Weights are read when the plan is compiled: ``Model`` drops its plan on ``set_weights``, ``astype`` and
every training step, and ``Plan.current`` also notices a weight array replaced by assignment. Code that
changes weight arrays in place, outside training, calls ``model.invalidate_plan()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from ..graph import call_node, flat_refs, is_ref, readers
from ..layers import (LSTM, Activation, AlphaDropout, AveragePooling2D, BatchNormalization, Bidirectional, Conv2D,
                      Dense, Dropout, Embedding, Flatten, GaussianDropout, GaussianNoise, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, MaxPooling2D, ReLU, SimpleRNN, SpatialDropout1D, SpatialDropout2D)
from ..ops import Op
from . import recurrent
from .conv import POOL_COMMUTING_ACTIVATIONS, ConvStep, fold_batchnorm
from .memory import Arenas
from .pooling import AffineStep, DenseStep, PoolStep
from ..threads import single_threaded_blas
from .split import Part, parts_for, run_split, whole_batch_threads


#: Layers that are the identity at inference (exact types: a subclass may do more).
INFERENCE_IDENTITY = (Dropout, SpatialDropout1D, SpatialDropout2D, GaussianDropout, AlphaDropout, GaussianNoise)


@dataclass
class Step:
    """Nodes ``covers`` (indices into ``model.nodes``) computed by ``fn`` from the first one's arguments.
    ``kind``: 'fused' (``fn(x, part)``; output without mask), 'masked' (``fn(x, mask, part)``; output mask
    from the last layer's ``compute_mask``), 'layer' or 'op' (one node, run by ``graph.call_node`` as
    ``Model.__call__`` runs it)."""
    covers: list[int]
    kind: str
    fn: object = None
    name: str = ""
    #: Filled by ``compile_plan`` for 'fused' and 'masked' steps: the tensor read, the tensor written, the
    #: explicit mask tensor (or None) and the last covered layer (its ``compute_mask``), so that ``walk``
    #: looks nothing up per call.
    keys: tuple | None = None

    def describe(self, model) -> str:
        return " + ".join(model.nodes[i].layer for i in self.covers)


@dataclass
class Plan:
    model: object
    steps: list[Step]
    kind: str | None  # the split policy's kind of model (split.MIN_ITEMS_PER_PART), or None
    fingerprint: tuple
    arenas: Arenas = field(default_factory=Arenas)

    def current(self) -> bool:
        """False once a weight array of the model was replaced (``layer.weights[k] = ...``)."""
        return self.fingerprint == _fingerprint(self.model)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The model's output for one batch, a fresh array."""
        parts = parts_for(self.kind, len(x))
        if parts > 1:
            return run_split(self.walk, x, parts, self.arenas)
        # One BLAS thread here too: the cores are used by the split above, and OpenBLAS' own threads,
        # woken for every product, cost far more than they share when another process holds a core.
        # The compiled kernels may still use the cores (``Part.threads``: the batch is not split).
        with self.arenas.take() as arena, single_threaded_blas():
            return np.array(self.walk(x, Part(arena, single_blas=True, threads=whole_batch_threads())))

    def walk(self, x: np.ndarray, part: Part):
        model = self.model
        values, masks = {self.first: x}, {self.first: None}
        for step in self.steps:
            if step.keys is None:  # 'op' and 'layer': exactly as Model.__call__ runs a node
                node = model.nodes[step.covers[0]]
                call_node(node, model.layers[node.layer], values, masks, training=False)
                continue
            src, out, mask_key, last = step.keys
            x_in = values[src]
            if step.kind == "fused":
                values[out], masks[out] = step.fn(x_in, part), None
                continue
            carried = masks[src]
            mask = values[mask_key] if mask_key is not None else carried
            values[out], masks[out] = step.fn(x_in, mask, part), last.compute_mask(x_in, carried)
        return values[self.last]

    @property
    def first(self) -> tuple:
        return (self.model.inputs[0].name, 0, 0)

    @property
    def last(self) -> tuple:
        return tuple(self.model.outputs[0])

    def describe(self) -> list[str]:
        return [f"{s.name}: {s.describe(self.model)}" for s in self.steps]


def _fingerprint(model) -> tuple:
    return tuple(map(id, chain.from_iterable(layer.weights.values() for layer in model.layers.values())))


def _embedding_chain(model, i: int, read: dict, outputs: set) -> list[int] | None:
    """[Embedding node, identity nodes...] whose last output node i alone reads, each the previous one's only
    reader and no model output; None when node i's input does not come that way."""
    nodes, chain, j = model.nodes, [], i
    while True:
        node = nodes[j]
        if node.mask is not None or len(node.args) != 1 or not is_ref(node.args[0]) or node.kwargs:
            return None
        src = tuple(node.args[0])
        k = next((n for n, other in enumerate(nodes) if other.output == src), None)
        if k is None or src in outputs or read.get(src, []) != [j]:
            return None
        layer = model.layers[nodes[k].layer]
        if type(layer) is Embedding:
            chain.insert(0, k)
            return chain if (len(nodes[k].args) == 1 and is_ref(nodes[k].args[0]) and not nodes[k].kwargs
                             and nodes[k].mask is None) else None
        if type(layer) not in INFERENCE_IDENTITY:
            return None
        chain.insert(0, k)
        j = k


def _fill_keys(model, steps: list[Step]) -> None:
    """Each 'fused' and 'masked' step's (input tensor, output tensor, explicit mask tensor, last layer)."""
    for step in steps:
        if step.kind in ("fused", "masked"):
            node, end = model.nodes[step.covers[0]], model.nodes[step.covers[-1]]
            step.keys = (tuple(node.args[0]), end.output, None if node.mask is None else tuple(node.mask),
                         model.layers[end.layer])


def compile_plan(model) -> Plan:
    nodes = model.nodes
    read = readers(nodes)
    outputs = {tuple(o) for o in model.outputs}
    taken: set[int] = set()

    def only_reader(i: int, types: tuple) -> int | None:
        """The node reading node i's output, if it is the only reader, of one of ``types``, with that
        output as its single argument and no explicit mask; else None."""
        out = nodes[i].output
        rs = read.get(out, [])
        if out in outputs or len(rs) != 1:
            return None
        j = rs[0]
        node = nodes[j]
        ok = (type(model.layers[node.layer]) in types and node.mask is None and len(node.args) == 1
              and is_ref(node.args[0]) and tuple(node.args[0]) == out)
        return j if ok else None

    def activation_of(j: int) -> str | None:
        """The activation an Activation or a plain ReLU layer (no max_value, slope or threshold) applies."""
        layer = model.layers[nodes[j].layer]
        if type(layer) is ReLU:
            plain = (getattr(layer, "max_value", None) is None and not getattr(layer, "negative_slope", 0)
                     and not getattr(layer, "threshold", 0))
            return "relu" if plain else None
        return layer.activation

    steps, kinds = [], set()
    for i, node in enumerate(nodes):
        if i in taken:
            continue
        layer = model.layers[node.layer]
        kind = type(layer)
        covers = [i]
        # Special steps take one tensor argument and give one output; anything else runs as Model.__call__ does.
        simple = (len(node.args) == 1 and is_ref(node.args[0]) and not getattr(node, "kwargs", None)
                  and not getattr(layer, "return_state", False))
        if isinstance(layer, Op):
            steps.append(Step(covers, "op", name="op"))
        elif not simple:
            steps.append(Step(covers, "layer", name=type(layer).__name__))
        elif kind is Conv2D and not getattr(layer, "general", False):
            kernel = bias = None
            activation = layer.activation
            j = only_reader(i, (BatchNormalization,)) if activation == "linear" else None
            if j is not None:
                kernel, bias = fold_batchnorm(layer, model.layers[nodes[j].layer])
                covers.append(j)
            if activation == "linear":
                k = only_reader(covers[-1], (Activation, ReLU))
                if k is not None and activation_of(k) in POOL_COMMUTING_ACTIVATIONS:
                    activation = activation_of(k)
                    covers.append(k)
            pool = False
            if activation in POOL_COMMUTING_ACTIVATIONS:
                p = only_reader(covers[-1], (MaxPooling2D,))
                pl = None if p is None else model.layers[nodes[p].layer]
                out_hw = model.shapes[node.output][1:3]
                if (pl is not None and pl.pool_size == pl.strides == (2, 2) and pl.padding == "valid"
                        and None not in out_hw and min(out_hw) >= 2):
                    pool = True
                    covers.append(p)
            conv = ConvStep(layer, kernel, bias, activation, pool, key=i)
            steps.append(Step(covers, "fused", conv, "conv"))
            kinds.add("compiled-convolutional" if conv.direct is not None else "convolutional")
        elif kind is Dense:
            activation = layer.activation
            if activation == "linear":
                k = only_reader(i, (Activation, ReLU))
                if k is not None and activation_of(k) is not None:
                    activation = activation_of(k)
                    covers.append(k)
            # Dense passes its input's mask on: keep it ('masked' with the mask ignored by the product).
            dense = DenseStep(layer, activation, key=i)
            steps.append(Step(covers, "masked", lambda x, mask, part, d=dense: d(x, part), "dense"))
        elif kind in INFERENCE_IDENTITY:  # the mask passes on as compute_mask says
            steps.append(Step(covers, "masked", lambda x, mask, part: x, "identity"))
        elif kind is GlobalAveragePooling2D:  # images carry no mask: its forward, without a node call around it
            steps.append(Step(covers, "fused", lambda x, part, f=layer.forward: f(x), "global-average"))
        elif kind is Flatten:
            steps.append(Step(covers, "masked", lambda x, mask, part: x.reshape(len(x), -1), "flatten"))
        elif kind is BatchNormalization:
            affine = AffineStep(layer, key=i)
            steps.append(Step(covers, "masked", lambda x, mask, part, a=affine: a(x, part), "batchnorm"))
        elif kind in (MaxPooling2D, AveragePooling2D):
            steps.append(Step(covers, "fused", PoolStep(layer, "max" if kind is MaxPooling2D else "avg", key=i), "pool"))
        elif kind in (SimpleRNN, LSTM) and recurrent.plannable(layer):
            steps.append(Step(covers, "masked", recurrent.RecurrentStep(layer, key=i), "recurrent"))
            kinds.add("recurrent")
        elif kind is Bidirectional and recurrent.stackable(layer):
            # A GlobalAveragePooling1D reading the whole sequence output is folded in (no gather of it).
            j = (only_reader(i, (GlobalAveragePooling1D,)) if layer.return_sequences and layer.merge_mode == "concat"
                 else None)
            pooling = model.layers[nodes[j].layer] if j is not None else None
            average = pooling is not None and not pooling.keepdims
            if average:
                covers.append(j)
            bidirectional = recurrent.BidirectionalStep(layer, key=i, pooling=pooling if average else None)
            # The Embedding it reads (through identity layers) folded into its input projection: only when the
            # average ends the step (its output carries no mask), taken from the steps already made.
            chain = _embedding_chain(model, i, read, outputs) if average else None
            if chain is not None and recurrent.foldable(model.layers[nodes[chain[0]].layer], bidirectional):
                bidirectional.fold_embedding(model.layers[nodes[chain[0]].layer],
                                             [model.layers[nodes[k].layer] for k in chain[1:]])
                while steps and steps[-1].covers[0] in chain:
                    steps.pop()
                covers = chain + covers
            steps.append(Step(covers, "masked", bidirectional, "bidirectional"))
            kinds.add("recurrent")
        else:
            steps.append(Step(covers, "layer", name=type(layer).__name__))
            if kind in (SimpleRNN, LSTM, Bidirectional) or hasattr(layer, "step"):
                kinds.add("recurrent")
        taken.update(covers)
    kind = next((k for k in ("recurrent", "convolutional", "compiled-convolutional") if k in kinds), None)
    _fill_keys(model, steps)
    return Plan(model, steps, kind, _fingerprint(model))


__all__ = ["Plan", "Step", "compile_plan", "flat_refs"]
