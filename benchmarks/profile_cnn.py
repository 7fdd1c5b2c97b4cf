#!/usr/bin/env python
"""Scratch CNN forward-pass latency per batch size, and where the time goes layer by layer.

    python benchmarks/profile_cnn.py [--weights weights/cnn] [--batches 1 8 32 256] [--repeats 15]
                                     [--profile-batch 256]

Times ``model.predict(x)`` (median of ``--repeats`` runs after a warm-up; x uniform in [0, 1)
float32), then walks ``model.nodes`` in order as ``Model.__call__`` does, timing each layer's
``forward`` at ``--profile-batch``. On a shared machine compare runs made back to back.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import scratch_models  # noqa: E402
from scratch_models.ops import Op  # noqa: E402


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, BLAS threads, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def layer_times(model, x, repeats: int) -> list[tuple[str, str, float]]:
    """Median seconds of every node's forward, fed the outputs of the previous nodes (inference)."""
    samples = defaultdict(list)
    for rep in range(repeats + 1):  # the first pass is a warm-up
        values = {(model.inputs[0].name, 0, 0): x}
        for node in model.nodes:
            layer = model.layers[node.layer]
            args = model._resolve(node.args, values)
            t0 = time.perf_counter()
            values[node.output] = layer.forward(args) if isinstance(layer, Op) else layer.forward(args[0])
            if rep:
                samples[node.layer].append(time.perf_counter() - t0)
    return [(name, type(model.layers[name]).__name__, float(np.median(ts))) for name, ts in samples.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "cnn"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 256])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--profile-batch", type=int, default=256)
    args = p.parse_args()

    model = scratch_models.load(args.weights)
    rng = np.random.default_rng(0)
    print(f"{'batch':>6} {'median ms':>10} {'ms/item':>8}")
    for n in args.batches:
        x = rng.random((n, *model.input_shape[1:]), dtype=np.float32)
        t = median_time(lambda: model.predict(x), args.repeats)
        print(f"{n:>6} {t * 1e3:>10.2f} {t * 1e3 / n:>8.3f}")

    x = rng.random((args.profile_batch, *model.input_shape[1:]), dtype=np.float32)
    rows = layer_times(model, x, args.repeats)
    total = sum(t for *_, t in rows)
    print(f"\nper-layer forward at batch {args.profile_batch} (medians; sum {total * 1e3:.1f} ms)")
    by_kind = defaultdict(float)
    for name, kind, t in rows:
        by_kind[kind] += t
        print(f"  {name:<26} {kind:<20} {t * 1e3:>8.2f} ms {100 * t / total:>5.1f}%")
    print("by layer type: " + ", ".join(f"{k} {v * 1e3:.1f} ms ({100 * v / total:.0f}%)"
                                        for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
