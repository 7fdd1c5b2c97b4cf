"""Training a scratch Model: backward through the graph, one optimizer step per batch, Keras' fit loop.

    model.compile(optimizer=Adam(1e-3), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=10, batch_size=32, validation_data=(xv, yv), seed=0)

As Keras (TensorFlow backend) does, a model whose output is a softmax takes the loss from the
softmax's logits, so the gradient is ``softmax(z) - onehot(y)`` without clipping.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import losses, optimizers
from .layers import Activation, Conv2D, Dense

if TYPE_CHECKING:  # model.py calls into this module; this one only takes a Model
    from .model import Model

NON_TRAINABLE = ("moving_mean", "moving_variance")
#: Ops a trainable graph may hold: they compute masks from token ids, nothing to differentiate.
MASK_OPS = frozenset({"NotEqual", "Equal", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd",
                      "LogicalOr", "LogicalNot"})


@dataclass
class History:
    """``history.history`` maps ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` to per-epoch lists."""
    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def add(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))


@dataclass
class TrainingSetup:
    optimizer: optimizers.Optimizer
    loss: losses.SparseCategoricalCrossentropy | losses.CategoricalCrossentropy
    softmax_logits: bool  # loss from the final softmax's logits, as Keras does


def trainable_params(model: Model) -> list[tuple[object, str]]:
    """(layer, weight key) of every trainable weight, in Keras' ``model.trainable_weights`` order."""
    return [(layer, key) for layer in model.weight_layers() for key in layer.weights
            if not key.endswith(NON_TRAINABLE) and key not in getattr(layer, "non_trainable", ())]


def _param_arrays(model: Model) -> list[np.ndarray]:
    return [layer.weights[key] for layer, key in trainable_params(model)]


def _ends_in_softmax(model: Model) -> bool:
    last = model.layers[model.outputs[0][0]]
    return isinstance(last, (Dense, Conv2D, Activation)) and last.activation == "softmax"  # Softmax is an Activation


def compile(model: Model, optimizer="adam", loss="sparse_categorical_crossentropy") -> None:
    for node in model.nodes:
        layer = model.layers[node.layer]
        if node.index > 0:
            raise NotImplementedError(f"Training a model that calls layer {node.layer!r} more than once is not supported")
        # Model.backward follows one output per node and the first argument of each layer; ops pass no gradient.
        if getattr(layer, "takes_all_args", False) and layer.class_name not in MASK_OPS:
            raise NotImplementedError(f"Training through the op {node.layer!r} ({layer.class_name}) is not supported "
                                      f"(ops only compute masks in training: {sorted(MASK_OPS)})")
        if getattr(layer, "return_state", False) or node.kwargs or len(node.args) > 1:
            raise NotImplementedError(f"Training layer {node.layer!r} with return_state, initial_state or several "
                                      "tensor arguments is not supported")
        for sub in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None), layer):
            if sub is not None and (getattr(sub, "recurrent_dropout", 0) or getattr(sub, "dropout", 0)):
                raise NotImplementedError(f"Training layer {node.layer!r} with dropout/recurrent_dropout inside "
                                          "the recurrent cell is not supported; use a Dropout layer")
    loss_fn = losses.get(loss)
    model.training = TrainingSetup(optimizers.get(optimizer), loss_fn,
                                   softmax_logits=_ends_in_softmax(model) and not loss_fn.from_logits)


def backward(model: Model, dout: np.ndarray, pre_activation: bool = False) -> None:
    """``model.backward``: d loss / d output back through the graph (kept for callers of this name)."""
    model.backward(dout, pre_activation)


def _logits_of_output(model: Model) -> np.ndarray:
    last = model.layers[model.outputs[0][0]]
    return last.cache.x if isinstance(last, Activation) else last.cache.z


def train_step(model: Model, x, y) -> float:
    """One batch: forward in training mode, loss, backward, optimizer step. Returns the batch loss."""
    setup: TrainingSetup = getattr(model, "training", None)
    if setup is None:
        raise RuntimeError("Call model.compile(optimizer, loss) before training")
    x = model.check_input(x)
    y = np.asarray(y)
    model.invalidate_plan()  # the optimizer updates weights in place: predict recompiles its plan
    probs = model(x, training=True)
    if setup.softmax_logits:
        logits = _logits_of_output(model)
        logit_loss = setup.loss.on_logits()
        loss = logit_loss(y, logits)
        model.backward(logit_loss.gradient(y, logits), pre_activation=True)
    else:
        loss = setup.loss(y, probs)
        model.backward(setup.loss.gradient(y, probs))
    params = trainable_params(model)
    loss += add_regularization(params)
    setup.optimizer.step([layer.weights[k] for layer, k in params], [layer.grads[k] for layer, k in params],
                         [layer.grad_squares.get(k) for layer, k in params])
    model.last_batch_accuracy = float((probs.argmax(1) == setup.loss.labels(y)).mean())
    return loss


def add_regularization(params) -> float:
    """Keras' weight penalties ``l1·Σ|w| + l2·Σw²``: added to each layer's grads; returns their sum."""
    penalty = 0.0
    for layer, key in params:
        reg = layer.regularizers.get(key)
        if not reg:
            continue
        w = layer.weights[key]
        penalty += reg["l1"] * float(np.abs(w).sum()) + reg["l2"] * float(np.square(w).sum())
        layer.grads[key] = layer.grads[key] + w.dtype.type(reg["l1"]) * np.sign(w) + w.dtype.type(2 * reg["l2"]) * w
        layer.grad_squares.pop(key, None)  # a sparse gradient plus a dense one is dense in TensorFlow
    return penalty


def evaluate(model: Model, x, y, batch_size: int = 256) -> tuple[float, float]:
    """(loss, accuracy) over the whole set, inference mode, the loss as Keras reports it."""
    y = np.asarray(y)
    probs = model.predict(x, batch_size=batch_size)
    loss_fn = getattr(getattr(model, "training", None), "loss", None) or losses.SparseCategoricalCrossentropy()
    return loss_fn(y, probs), float((probs.argmax(1) == loss_fn.labels(y)).mean())


def _reseed(model: Model, seed: int) -> None:
    for i, layer in enumerate(model.layers.values()):
        if hasattr(layer, "rng"):
            layer.rng = np.random.default_rng([seed, i])


class ProgressBar:
    """A one-line progress bar per epoch on stderr (what Keras' verbose=1 shows)."""

    def __init__(self, epoch: int, epochs: int, steps: int, enabled: bool):
        self.epoch, self.epochs, self.steps, self.enabled = epoch, epochs, steps, enabled
        self.t0 = time.time()

    def update(self, step: int, loss: float) -> None:
        if not self.enabled:
            return
        done = int(30 * step / self.steps)
        sys.stderr.write(f"\rEpoch {self.epoch}/{self.epochs} [{'=' * done}{'.' * (30 - done)}] "
                         f"{step}/{self.steps} - loss {loss:.4f} - {time.time() - self.t0:.1f}s")
        sys.stderr.flush()

    def close(self, logs: dict) -> None:
        if self.enabled:
            sys.stderr.write(" - " + " - ".join(f"{k} {v:.4f}" for k, v in logs.items()) + "\n")


def fit(model: Model, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None,
        shuffle: bool = True, seed: int | None = 0, verbose: int = 1) -> History:
    """Keras' fit loop: shuffled batches, per-epoch mean loss (weighted by batch size) and accuracy."""
    x = model.check_input(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"Expected as many labels as inputs ({len(x)}), received {len(y)}")
    rng = np.random.default_rng(seed)
    if seed is not None:
        _reseed(model, seed)
    history = History()
    steps = -(-len(x) // batch_size)
    for epoch in range(epochs):
        order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
        bar = ProgressBar(epoch + 1, epochs, steps, verbose == 1)
        total_loss = total_correct = 0.0
        t0 = time.time()
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            loss = train_step(model, x[idx], y[idx])
            total_loss += loss * len(idx)
            total_correct += model.last_batch_accuracy * len(idx)
            bar.update(step + 1, total_loss / min((step + 1) * batch_size, len(x)))
        logs = {"loss": total_loss / len(x), "accuracy": total_correct / len(x)}
        if validation_data is not None:
            logs["val_loss"], logs["val_accuracy"] = evaluate(model, *validation_data)
        logs["epoch_seconds"] = time.time() - t0
        bar.close(logs)
        if verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        history.add(epoch, logs)
    return history
