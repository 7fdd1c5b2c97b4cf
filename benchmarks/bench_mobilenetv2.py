#!/usr/bin/env python
"""MobileNetV2 (weights=None, 32x32x3, 10 classes) forward latency: scratch ``Model.predict`` vs Keras through
a ``tf.function`` (what serving calls), same weights, batch 1 and 64 (issue 14's closing figure).

    python benchmarks/bench_mobilenetv2.py --rounds 7 --calls 10

One process; each round times ``--calls`` calls of every (backend, batch) after a warm-up, the backend order
reversing between rounds (alternating, so drift on a shared machine hits both alike). Reported per (backend,
batch): the median over rounds of each round's median call, with min-max, and the same of each round's
fastest call (on a shared machine the median mostly measures the other jobs); the ratios scratch/Keras are
medians over rounds of the per-round ratios, min-max beside them. BLAS and TensorFlow keep their default threads
(2 cores). Writes reports/mobilenetv2_latency.json and .md (atomically).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scratch_models.io_utils import atomic_write_bytes, atomic_write_json  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "mobilenetv2_latency.json")
    args = p.parse_args(argv)

    import keras
    import tensorflow as tf

    import scratch_models
    keras.utils.set_random_seed(args.seed)
    kmodel = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    ours = scratch_models.from_keras(kmodel)
    served = tf.function(lambda x: kmodel(x, training=False), reduce_retracing=True)
    rng = np.random.default_rng(args.seed)
    inputs = {b: rng.random((b, 32, 32, 3), dtype=np.float32) for b in args.batches}
    run = {"scratch": lambda x: ours.predict(x), "keras": lambda x: served(tf.constant(x)).numpy()}
    for b, x in inputs.items():  # warm-up (tracing, plan compile) and a parity check
        gap = float(np.abs(run["scratch"](x) - run["keras"](x)).max())
        print(f"batch {b}: max |Δp| scratch vs keras = {gap:.2e}", flush=True)
        for name in run:
            for _ in range(2):
                run[name](x)

    times = {(name, b): [] for name in run for b in args.batches}
    fastest = {(name, b): [] for name in run for b in args.batches}
    for r in range(args.rounds):
        order = list(run) if r % 2 == 0 else list(run)[::-1]
        for b, x in inputs.items():
            for name in order:
                calls = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    run[name](x)
                    calls.append(time.perf_counter() - t0)
                times[(name, b)].append(float(np.median(calls)) * 1e3)
                fastest[(name, b)].append(float(np.min(calls)) * 1e3)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} b{b} {times[(n, b)][-1]:.2f} ms"
                                                       for n in run for b in args.batches), flush=True)

    results = {}
    for b in args.batches:
        s, k = np.array(times[("scratch", b)]), np.array(times[("keras", b)])
        ratio = s / k
        fs, fk = np.array(fastest[("scratch", b)]), np.array(fastest[("keras", b)])
        stats = lambda a: {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}  # noqa: E731
        results[str(b)] = {
            "fastest_call": {"scratch_ms": stats(fs), "keras_tf_function_ms": stats(fk),
                             "ratio_scratch_over_keras": stats(fs / fk)},
            "scratch_ms": {"median": float(np.median(s)), "min": float(s.min()), "max": float(s.max())},
            "keras_tf_function_ms": {"median": float(np.median(k)), "min": float(k.min()), "max": float(k.max())},
            "ratio_scratch_over_keras": {"median": float(np.median(ratio)), "min": float(ratio.min()),
                                         "max": float(ratio.max())},
            "per_round_ms": {"scratch": s.round(3).tolist(), "keras": k.round(3).tolist()}}
    report = {"model": "MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)",
              "params": int(kmodel.count_params()), "rounds": args.rounds, "calls_per_round": args.calls,
              "seed": args.seed, "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
              "command": "python benchmarks/bench_mobilenetv2.py " + " ".join(argv or sys.argv[1:]),
              "batches": results}
    atomic_write_json(args.out, report)
    lines = ["# MobileNetV2 (32x32x3, weights=None) forward latency: scratch vs Keras tf.function", "",
             f"`{report['command']}` — {args.rounds} alternating rounds x {args.calls} calls, medians of per-round "
             f"medians (min-max). Machine: {report['machine']}; numbers are noisy.", "",
             "| batch | statistic | scratch ms | Keras tf.function ms | scratch / Keras |", "|---|---|---|---|---|"]
    for b, v in results.items():
        fmt = lambda d: f"{d['median']:.2f} ({d['min']:.2f}-{d['max']:.2f})"  # noqa: E731
        lines.append(f"| {b} | round median | {fmt(v['scratch_ms'])} | {fmt(v['keras_tf_function_ms'])} | "
                     f"{fmt(v['ratio_scratch_over_keras'])} |")
        f = v["fastest_call"]
        lines.append(f"| {b} | round fastest | {fmt(f['scratch_ms'])} | {fmt(f['keras_tf_function_ms'])} | "
                     f"{fmt(f['ratio_scratch_over_keras'])} |")
    atomic_write_bytes(args.out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
