"""Sparse categorical cross-entropy and categorical cross-entropy (with label smoothing), as Keras
computes them, with their gradients.

From probabilities Keras clips them to [1e-7, 1 - 1e-7] and renormalises (TensorFlow takes the
log of the clipped probabilities as logits). When the probabilities come straight out of a softmax,
Keras (TensorFlow backend) uses the softmax's logits instead -- ``Model.compile`` does the same.
Reduction: mean over the batch ("sum_over_batch_size").
"""
from __future__ import annotations

import numpy as np

EPSILON = 1e-7


def _check(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if scores.ndim != 2:
        raise ValueError(f"Expected scores of shape (N, C), received {scores.shape}")
    if y.shape != (scores.shape[0],):
        raise ValueError(f"Expected integer labels of shape ({scores.shape[0]},), received {y.shape}")
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= scores.shape[1])):
        raise ValueError(f"Expected integer labels in [0, {scores.shape[1] - 1}], received {y.dtype} "
                         f"values in [{y.min() if y.size else '-'}, {y.max() if y.size else '-'}]")
    return y.astype(np.int64)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class SparseCategoricalCrossentropy:
    """``loss(y, scores) -> float`` and ``gradient(y, scores) -> d loss / d scores`` (N, C)."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def on_logits(self) -> "SparseCategoricalCrossentropy":
        """The same loss taken from the final softmax's logits (what Keras' TensorFlow backend does)."""
        return SparseCategoricalCrossentropy(from_logits=True)

    @staticmethod
    def labels(y) -> np.ndarray:
        """The class index of each target (N,): these targets are indices already."""
        return np.asarray(y)

    def _logits(self, scores: np.ndarray) -> np.ndarray:
        return scores if self.from_logits else np.log(np.clip(scores, EPSILON, 1 - EPSILON))

    def __call__(self, y, scores) -> float:
        y = _check(y, scores)
        logp = log_softmax(self._logits(scores).astype(np.float64))
        return float(-logp[np.arange(len(y)), y].mean())

    def gradient(self, y, scores) -> np.ndarray:
        y = _check(y, scores)
        logits = self._logits(scores)
        p = np.exp(log_softmax(logits.astype(np.float64)))
        p[np.arange(len(y)), y] -= 1
        grad = p / len(y)  # d loss / d logits
        if not self.from_logits:  # chain through log(clip(scores)): zero outside the clip range
            inside = (scores > EPSILON) & (scores < 1 - EPSILON)
            grad = np.where(inside, grad / np.clip(scores, EPSILON, 1 - EPSILON), 0.0)
        return grad.astype(scores.dtype)


def _check_targets(targets, scores: np.ndarray) -> np.ndarray:
    targets = np.asarray(targets)
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(f"Expected targets and scores of one shape (N, C), received {targets.shape} and {scores.shape}")
    if targets.dtype.kind != "f":
        raise ValueError(f"Expected float targets (one-hot or soft rows), received {targets.dtype}")
    return targets.astype(np.float64)


class CategoricalCrossentropy:
    """Keras' categorical cross-entropy on (soft) target rows, with ``label_smoothing``.

    Targets become ``t * (1 - label_smoothing) + label_smoothing / C`` (Keras' rule). From
    probabilities, as TensorFlow computes it: scores divided by their row sum, clipped to
    [1e-7, 1 - 1e-7], ``-sum(t * log p)``; from logits, ``-sum(t * log_softmax(z))``. Mean over the
    batch. ``gradient`` is d loss / d scores (N, C): from logits ``(softmax(z) * sum(t) - t) / N``;
    from probabilities ``(g - sum_j g_j p_j) / (N * S)`` with ``g = -t / p`` inside the clip range
    (0 outside) and ``S`` the row sum (the chain rule through the normalisation).
    """

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0):
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"Expected label_smoothing in [0, 1], received {label_smoothing!r}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def on_logits(self) -> "CategoricalCrossentropy":
        """The same loss (same smoothing) taken from the final softmax's logits, as Keras does."""
        return CategoricalCrossentropy(from_logits=True, label_smoothing=self.label_smoothing)

    @staticmethod
    def labels(targets) -> np.ndarray:
        """The class index of each target row (N,): Keras' categorical accuracy compares argmaxes."""
        return np.asarray(targets).argmax(1)

    def smoothed(self, targets: np.ndarray) -> np.ndarray:
        if not self.label_smoothing:
            return targets
        return targets * (1.0 - self.label_smoothing) + self.label_smoothing / targets.shape[1]

    def __call__(self, targets, scores) -> float:
        t = self.smoothed(_check_targets(targets, scores))
        z = np.asarray(scores, np.float64)
        if self.from_logits:
            return float(-(t * log_softmax(z)).sum(1).mean())
        p = np.clip(z / z.sum(1, keepdims=True), EPSILON, 1 - EPSILON)
        return float(-(t * np.log(p)).sum(1).mean())

    def gradient(self, targets, scores) -> np.ndarray:
        t = self.smoothed(_check_targets(targets, scores))
        z = np.asarray(scores, np.float64)
        n = len(z)
        if self.from_logits:
            grad = (np.exp(log_softmax(z)) * t.sum(1, keepdims=True) - t) / n
        else:
            row_sum = z.sum(1, keepdims=True)
            p = z / row_sum
            inside = (p > EPSILON) & (p < 1 - EPSILON)
            g = np.where(inside, -t / np.where(inside, p, 1.0), 0.0)
            grad = (g - (g * p).sum(1, keepdims=True)) / (n * row_sum)
        return grad.astype(scores.dtype)


def get(spec):
    """The training loop's loss from a name or an instance: sparse categorical cross-entropy on
    integer labels, or categorical cross-entropy (with its label smoothing) on target rows."""
    if isinstance(spec, (SparseCategoricalCrossentropy, CategoricalCrossentropy)):
        return spec
    if spec in ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"):
        return SparseCategoricalCrossentropy()
    if spec in ("categorical_crossentropy", "CategoricalCrossentropy"):
        return CategoricalCrossentropy()
    raise ValueError("Expected loss 'sparse_categorical_crossentropy', 'categorical_crossentropy' or an instance of "
                     f"either class, received {spec!r}")
