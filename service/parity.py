"""``/parity``: the Keras and scratch backends on the test split -- agreement, max |dp|, accuracy, macro-F1 and
both confusion matrices.

A computation runs in a worker thread (never on the event loop) and is cached per
(arch, keras sha256, scratch sha256, limit); concurrent identical requests share one computation.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scratch_models.datasets import DataNotFoundError, load_cifar10, load_nusax

from .errors import DataUnavailable, ServiceError
from .registry import ARCH_KINDS, ModelRegistry

log = logging.getLogger("service.parity")
CHUNK = 256

# (arch, data_dir) -> (x, y, classes): x float32 NHWC in [0, 1] for images, a list of str for texts.
TestSplitLoader = Callable[[str, Path | None], tuple[object, np.ndarray, tuple[str, ...]]]


def load_test_split(arch: str, data_dir: Path | None):
    """The test split an arch is evaluated on, from ``DATA_DIR`` (never downloaded by the service)."""
    if data_dir is None:
        raise DataUnavailable("DATA_DIR is not set: /parity needs the test data (cifar10/test/<class>/*.jpg and "
                              "nusax-sentiment/indonesian/test.csv); start the service with DATA_DIR=<folder>",
                              field="DATA_DIR", reason="DATA_DIR is not set")
    try:
        if ARCH_KINDS[arch] == "image":
            data = load_cifar10(data_dir, splits=("test",))
            return data.test.x, data.test.y, data.classes
        data = load_nusax(data_dir)
        return [str(t) for t in data.test.x], data.test.y, data.classes
    except (DataNotFoundError, ValueError, OSError) as exc:
        raise DataUnavailable(f"test data for {arch} not readable from DATA_DIR={data_dir}: {exc}",
                              field="DATA_DIR", reason=str(exc)) from None


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred`` (as scikit-learn)."""
    labels = np.union1d(y_true, y_pred)
    scores = []
    for c in labels:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """(n_classes, n_classes) counts: row = true class, column = predicted class (as scikit-learn)."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts.tolist()


def compare(keras_probs: np.ndarray, scratch_probs: np.ndarray, y: np.ndarray) -> dict:
    kp, sp = keras_probs.argmax(1), scratch_probs.argmax(1)
    n_classes = keras_probs.shape[1]
    return {"n": int(len(y)), "agreement": float(np.mean(kp == sp)),
            "max_abs_prob_diff": float(np.max(np.abs(keras_probs.astype(np.float64) - scratch_probs))),
            "keras": {"accuracy": float(np.mean(kp == y)), "macro_f1": macro_f1(y, kp)},
            "scratch": {"accuracy": float(np.mean(sp == y)), "macro_f1": macro_f1(y, sp)},
            "confusion_matrices": {"keras": confusion_matrix(y, kp, n_classes),
                                   "scratch": confusion_matrix(y, sp, n_classes)}}


class ParityService:
    def __init__(self, registry: ModelRegistry, data_dir: Path | None,
                 loader: TestSplitLoader = load_test_split) -> None:
        self.registry = registry
        self.data_dir = data_dir
        self.loader = loader
        self._results: dict[tuple, concurrent.futures.Future] = {}
        self._data: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="parity")

    async def run(self, arch: str, limit: int | None) -> dict:
        entry = self.registry.get(arch)
        keras_b = self.registry.backend(arch, "keras")
        scratch_b = self.registry.backend(arch, "scratch")
        key = (arch, keras_b.sha256, scratch_b.sha256, limit)
        t0 = time.perf_counter()
        with self._lock:
            future = self._results.get(key)
            cached = future is not None and future.done()
            if future is None:
                future = self._pool.submit(self._compute, arch, entry.classes, keras_b, scratch_b, limit)
                self._results[key] = future
        try:
            result = await asyncio.wrap_future(future)
        except BaseException:
            with self._lock:  # a failed computation is not cached: the next call retries
                if future.done() and future.exception() is not None and self._results.get(key) is future:
                    del self._results[key]
            raise
        return {**result, "cached": cached, "elapsed_s": round(time.perf_counter() - t0, 6)}

    def _test_split(self, arch: str):
        family = ARCH_KINDS[arch]
        if family not in self._data:
            self._data[family] = self.loader(arch, self.data_dir)
        return self._data[family]

    def _compute(self, arch: str, classes: tuple[str, ...], keras_b, scratch_b, limit: int | None) -> dict:
        t0 = time.perf_counter()
        x, y, data_classes = self._test_split(arch)
        if tuple(data_classes) != tuple(classes):
            raise ServiceError(f"the {arch} manifest's classes {list(classes)} differ from the test data's "
                               f"{list(data_classes)}", status=503, code="class_mismatch")
        n = len(y) if limit is None else min(limit, len(y))
        kps, sps = [], []
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            batch = x[start:stop] if ARCH_KINDS[arch] == "image" else scratch_b.encode_texts(x[start:stop])
            kps.append(keras_b.predict_proba(batch))
            sps.append(scratch_b.predict_proba(batch))
        result = {"arch": arch, "split": "test", "classes": list(classes), **compare(np.concatenate(kps), np.concatenate(sps), np.asarray(y[:n])),
                  "computed_in_s": round(time.perf_counter() - t0, 3), "limit": limit}
        log.info("parity computed", extra={"fields": {k: v for k, v in result.items() if not isinstance(v, (dict, list))}})
        return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
