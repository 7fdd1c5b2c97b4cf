#!/usr/bin/env python
"""Scratch CNN forward-pass latency per batch size, and where the time goes layer by layer.

    python benchmarks/profile_cnn.py [--weights weights/cnn] [--batches 1 8 32 256] [--repeats 15]
                                     [--profile-batch 256]

Times ``model.predict(x)`` (median of ``--repeats`` runs after a warm-up; x uniform in [0, 1)
float32), then walks ``model.nodes`` in order as ``Model.__call__`` does, timing each layer's
``forward`` at ``--profile-batch``, and times the steps of the inference plan inside ``predict`` itself,
where a Conv2D -> BatchNormalization [-> ReLU] [-> 2x2 max pooling] chain is one fused step. Also counts each Conv2D's and Dense's FLOPs as the direct
algorithm does them (2 x multiply-adds; Winograd performs fewer multiplications for the same result),
and so the achieved GFLOP/s against the machine's peak: cores x 32 FP32 FLOP per cycle (two AVX2
FMA units, 8 lanes, 2 FLOP each) x the clock /proc/cpuinfo reports. On a shared machine compare runs
made back to back. ``--out`` writes the tables as Markdown too.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import threading
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


def fused_layer_times(model, x, repeats: int) -> list[tuple[str, str, float]]:
    """Median seconds of every step of the inference plan inside ``model.predict`` itself, where each
    Conv2D -> BN [-> ReLU] [-> MaxPooling2D 2x2] chain is one step (timed under the conv's name).

    When ``predict`` splits the batch into parts, one per core, computed at the same time, only the
    calling thread's part is timed: each row is then one part's step, the other parts running beside it."""
    from scratch_models.inference import plan as plan_module
    samples = defaultdict(list)
    caller = threading.current_thread()
    plan = model.plan()

    def timed(fn, name):
        def run(*a, **k):
            t0 = time.perf_counter()
            result = fn(*a, **k)
            if threading.current_thread() is caller:
                samples[name].append(time.perf_counter() - t0)
            return result
        return run
    originals = [(st, st.fn) for st in plan.steps]
    for st in plan.steps:
        if st.fn is not None:
            st.fn = timed(st.fn, model.nodes[st.covers[0]].layer)
    real_call_node = plan_module.call_node
    plan_module.call_node = lambda node, layer, *a, **k: timed(real_call_node, node.layer)(node, layer, *a, **k)
    try:
        model.predict(x)  # warm-up
        samples.clear()
        for _ in range(repeats):
            model.predict(x)
    finally:
        plan_module.call_node = real_call_node
        for st, fn in originals:
            st.fn = fn
    return [(name, type(model.layers[name]).__name__, float(np.median(ts))) for name, ts in samples.items()]


def direct_flops(model, batch: int) -> dict[str, float]:
    """FLOPs of each Conv2D and Dense for one batch: 2 x (output cells) x (multiply-adds per cell)."""
    shapes = {}
    values = {(model.inputs[0].name, 0, 0): np.zeros((1, *model.input_shape[1:]), np.float32)}
    for node in model.nodes:  # one item through the model, to learn every layer's input shape
        layer = model.layers[node.layer]
        args = model._resolve(node.args, values)
        inp = args if isinstance(layer, Op) else args[0]
        shapes[node.layer] = getattr(inp, "shape", None)
        values[node.output] = layer.forward(inp) if isinstance(layer, Op) else layer.forward(inp)
    flops = {}
    for name, layer in model.layers.items():
        kind = type(layer).__name__
        if kind == "Conv2D":
            out = layer.compute_output_shape((batch, *shapes[name][1:]))
            kh, kw, cin, f = layer.weights["kernel"].shape
            flops[name] = 2.0 * out[0] * out[1] * out[2] * f * kh * kw * cin
        elif kind == "Dense":
            k = layer.weights["kernel"]
            flops[name] = 2.0 * batch * k.shape[0] * k.shape[1]
    return flops


def machine_peak_gflops() -> tuple[float, str]:
    """Cores x 32 FP32 FLOP/cycle (AVX2 + FMA: 2 units x 8 lanes x 2) x the reported clock."""
    mhz = []
    try:
        with open("/proc/cpuinfo") as fh:
            mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", fh.read())]
    except OSError:
        pass
    cores = os.cpu_count() or 1
    ghz = (max(mhz) / 1000) if mhz else float("nan")
    return cores * 32 * ghz, f"{cores} cores x 32 FP32 FLOP/cycle x {ghz:.3f} GHz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "cnn"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 256])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--profile-batch", type=int, default=256)
    p.add_argument("--out", type=Path, default=None, help="also write the tables to this Markdown file")
    args = p.parse_args()
    md = ["# Scratch CNN forward: latency, GFLOP/s and a per-layer profile", "",
          f"`python benchmarks/profile_cnn.py` on `{os.path.relpath(args.weights, ROOT)}`; medians of "
          f"{args.repeats} runs after a warm-up, every number from this one run.", "",
          "| batch | median ms | ms/item | GFLOP/s (direct-conv count) |", "|---:|---:|---:|---:|"]

    model = scratch_models.load(args.weights)
    rng = np.random.default_rng(0)
    peak, peak_text = machine_peak_gflops()
    print(f"{'batch':>6} {'median ms':>10} {'ms/item':>8} {'GFLOP/s':>8}")
    for n in args.batches:
        x = rng.random((n, *model.input_shape[1:]), dtype=np.float32)
        t = median_time(lambda: model.predict(x), args.repeats)
        gflops = sum(direct_flops(model, n).values()) / t / 1e9
        print(f"{n:>6} {t * 1e3:>10.2f} {t * 1e3 / n:>8.3f} {gflops:>8.1f}")
        md.append(f"| {n} | {t * 1e3:.2f} | {t * 1e3 / n:.3f} | {gflops:.1f} |")
    print(f"machine peak: {peak:.0f} GFLOP/s ({peak_text})")
    md += ["", f"Machine peak: **{peak:.0f} GFLOP/s** ({peak_text}).", ""]

    x = rng.random((args.profile_batch, *model.input_shape[1:]), dtype=np.float32)
    rows = layer_times(model, x, args.repeats)
    flops = direct_flops(model, args.profile_batch)
    total = sum(t for *_, t in rows)
    print(f"\nper-layer forward at batch {args.profile_batch} (medians; sum {total * 1e3:.1f} ms)")
    md += [f"Per layer at batch {args.profile_batch} (medians; sum {total * 1e3:.1f} ms). Each layer's own "
           "`forward`, one by one: `predict` runs Conv2D -> BatchNormalization -> ReLU chains as one fused "
           "convolution, so there the BatchNormalization and Activation rows mostly disappear.", "",
           "| layer | type | ms | share | GFLOP/s |", "|---|---|---:|---:|---:|"]
    by_kind = defaultdict(float)
    for name, kind, t in rows:
        by_kind[kind] += t
        rate = f"{flops[name] / t / 1e9:.1f}" if name in flops else ""
        print(f"  {name:<26} {kind:<20} {t * 1e3:>8.2f} ms {100 * t / total:>5.1f}% {rate:>7}")
        md.append(f"| {name} | {kind} | {t * 1e3:.2f} | {100 * t / total:.1f} % | {rate} |")
    summary = ", ".join(f"{k} {v * 1e3:.1f} ms ({100 * v / total:.0f}%)"
                        for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))
    print("by layer type: " + summary)
    md += ["", "By layer type: " + summary + "."]

    rows = fused_layer_times(model, x, args.repeats)
    total = sum(t for *_, t in rows)
    from scratch_models.inference.split import parts_for
    parts = parts_for(model.plan().kind, args.profile_batch)
    split_note = (f" `predict` splits this batch into {parts} parts of ~{-(-args.profile_batch // parts)} images, one "
                  "per core, each through the whole network at the same time: the rows time the calling thread's "
                  "part, and GFLOP/s counts the whole batch's FLOPs in that time (all parts at once)."
                  if parts > 1 else "")
    chains = {model.nodes[st.covers[0]].layer: st.describe(model) for st in model.plan().steps}
    print(f"\nas predict runs them at batch {args.profile_batch} (fused chains; medians; sum {total * 1e3:.1f} ms)")
    md += ["", f"As `predict` runs them at batch {args.profile_batch} (medians; sum {total * 1e3:.1f} ms): each "
           "Conv2D row is the whole fused chain, Conv2D -> BatchNormalization [-> ReLU] [-> 2x2 MaxPooling2D], "
           "in one step of the inference plan (scratch_models/inference/conv.py)." + split_note, "", "| call | covers | ms | share | GFLOP/s |",
           "|---|---|---:|---:|---:|"]
    for name, kind, t in rows:
        rate = f"{flops[name] / t / 1e9:.1f}" if name in flops else ""
        covers = chains.get(name, name)
        print(f"  {covers:<70} {t * 1e3:>8.2f} ms {100 * t / total:>5.1f}% {rate:>7}")
        md.append(f"| {name} | {covers} | {t * 1e3:.2f} | {100 * t / total:.1f} % | {rate} |")
    if args.out:
        from scratch_models.io_utils import atomic_write_bytes
        atomic_write_bytes(args.out, ("\n".join(md) + "\n").encode())
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
