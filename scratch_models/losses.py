"""Sparse categorical cross-entropy, as Keras computes it, with its gradient.

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


def get(spec) -> SparseCategoricalCrossentropy:
    if isinstance(spec, SparseCategoricalCrossentropy):
        return spec
    if spec in ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"):
        return SparseCategoricalCrossentropy()
    raise ValueError(f"Expected loss 'sparse_categorical_crossentropy' or a SparseCategoricalCrossentropy, received {spec!r}")
