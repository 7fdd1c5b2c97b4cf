#!/usr/bin/env python
"""Issue 16: the compiled direct convolution (scratch_models/inference/_kernels.c) against the NumPy path and
ONNX Runtime on the committed CNN, in one process.

    python benchmarks/bench_c_kernels.py [--batches 1 8 32 256] [--rounds 5] [--repeats 3] [--layers] [--json F]

Model level: ``Model.predict`` of weights/cnn with the plan compiled for the C kernel (``c``) and for the NumPy
algorithms (``numpy``, as with SCRATCH_KERNELS=numpy), beside ONNX Runtime (tf2onnx conversion, default session;
skipped without the ``bench`` extra). Alternating rounds (order reversed every other round), each variant's
round = the median of ``--repeats`` timed calls after one warm-up; printed: median over rounds, the rounds'
range (ms), GFLOP/s of the direct Conv2D + Dense count, each ratio ORT time / variant time (throughput
relative to ORT), and max |dp| against ORT.

``--kernel-threads-from F``: also the C path with ``conv.DIRECT_THREAD_MIN_FLOPS = F`` (the threshold of the
kernel's own threads for a batch the split policy leaves whole; default 4e6; 1e12 keeps every such batch on one
thread, 1.5e7 batch 1 only).

``--layers``: every fused conv step alone on one part of the batch as the split policy cuts it (N // parts
images), one thread, ConvStep called directly, C vs NumPy, median of 7 calls, GFLOP/s.

The final comparison with Keras tf.function (one process per backend) is benchmarks/bench_models.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import scratch_models  # noqa: E402
from scratch_models.inference import conv, kernels, split  # noqa: E402
from scratch_models.inference.conv import ConvStep  # noqa: E402
from scratch_models.inference.memory import Arena  # noqa: E402
from scratch_models.inference.split import Part  # noqa: E402
from scratch_models.threads import single_threaded_blas  # noqa: E402
from alternating import alternating_medians  # noqa: E402

CNN_DIR = ROOT / "weights" / "cnn"


def model_flops(model, n: int) -> float:
    """2 x multiply-adds of every Conv2D (direct count) and Dense of the CNN, batch ``n``."""
    total, shape = 0.0, tuple(model.inputs[0].shape[1:])
    for layer in model.layers.values():
        name = type(layer).__name__
        if name == "Conv2D":
            kh, kw, cin, f = layer.weights["kernel"].shape
            total += 2.0 * shape[0] * shape[1] * kh * kw * cin * f
            shape = (shape[0], shape[1], f)
        elif name == "MaxPooling2D":
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
        elif name == "Dense":
            total += 2.0 * np.prod(layer.weights["kernel"].shape)
    return total * n


def load_for(choice: str):
    """The committed CNN with its plan compiled for ``choice`` ('auto' or 'numpy')."""
    model = scratch_models.load(CNN_DIR)
    with kernels.selected(choice):
        model.plan()
    return model


def conv_inputs(model, x):
    """[(ConvStep, its input)] of the plan walked on ``x`` in one part (recorded in front of every step)."""
    plan = model.plan()
    record = []

    class Recorder:
        def __init__(self, fn):
            self.fn = fn

        def __call__(self, xs, part):
            record.append((self.fn, np.array(xs)))
            return self.fn(xs, part)
    for step in plan.steps:
        if isinstance(step.fn, ConvStep):
            step.fn = Recorder(step.fn)
    try:
        plan.walk(x, Part(Arena(), single_blas=True))
    finally:
        for step in plan.steps:
            if isinstance(step.fn, Recorder):
                step.fn = step.fn.fn
    return record


def layer_table(c_model, np_model, batches) -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    for n in batches:
        parts = split.parts_for("convolutional", n)  # each step computes one part of the split batch
        x = rng.random((n // parts, 32, 32, 3), dtype=np.float32)
        pairs = zip(conv_inputs(c_model, x), conv_inputs(np_model, x))
        for i, ((c_step, xi), (np_step, _)) in enumerate(pairs):
            layer = c_step.layer
            kh, kw, cin, f = c_step.kernel.shape
            ho, wo = layer._output_hw(xi)
            flops = 2.0 * len(xi) * ho * wo * kh * kw * cin * f
            row = {"batch": n, "parts": parts, "layer": layer.name, "shape": list(xi.shape), "filters": f, "pool": c_step.pool}
            for name, step in (("c", c_step), ("numpy", np_step)):
                arena = Arena()
                with single_threaded_blas():
                    step(xi, Part(arena, parts, single_blas=True))
                    times = []
                    for _ in range(7):
                        t0 = time.perf_counter()
                        step(xi, Part(arena, parts, single_blas=True))
                        times.append(time.perf_counter() - t0)
                med = float(np.median(times))
                row[f"{name}_ms"], row[f"{name}_gflops"] = med * 1e3, flops / med / 1e9
                row[f"{name}_algorithm"] = step.choose(xi.shape, parts > 1)
            rows.append(row)
            print(f"b{n:<4} {layer.name:>10} {str(tuple(xi.shape)):>18} F={f:<4} pool={int(c_step.pool)} "
                  f"c {row['c_ms']:8.3f} ms {row['c_gflops']:6.1f} GFLOP/s | numpy ({row['numpy_algorithm']}) "
                  f"{row['numpy_ms']:8.3f} ms {row['numpy_gflops']:6.1f} GFLOP/s | c x{row['numpy_ms'] / row['c_ms']:.2f}",
                  flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 256])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--layers", action="store_true", help="also time every conv step alone (one thread)")
    p.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--kernel-threads-from", type=float, metavar="FLOPS",
                   help="also time the C path with conv.DIRECT_THREAD_MIN_FLOPS set to this (default 1e6; e.g. "
                        "1.5e7: batch 1 on one kernel thread)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if kernels.variant is None:
        sys.exit(f"the compiled kernel is not available (built variants: {kernels.VARIANTS}; "
                 f"{kernels.ENV}={kernels.os.environ.get(kernels.ENV)!r}); pip install -e . with a C compiler")
    print(f"compiled variant: {kernels.variant[1]} (filter block {kernels.variant[2]}, tile {kernels.variant[3]} pixels)")
    c_model, np_model = load_for("auto"), load_for("numpy")
    fns = {"c": c_model.predict, "numpy": np_model.predict}
    if args.kernel_threads_from is not None:
        def more_threads(x):
            old = conv.DIRECT_THREAD_MIN_FLOPS
            conv.DIRECT_THREAD_MIN_FLOPS = args.kernel_threads_from
            try:
                return c_model.predict(x)
            finally:
                conv.DIRECT_THREAD_MIN_FLOPS = old
        fns[f"c-threads>={args.kernel_threads_from:g}"] = more_threads
    if not args.no_ort:
        try:
            from bench_models import onnx_session
            fns["onnxruntime"] = onnx_session(CNN_DIR)
        except ImportError as e:
            print(f"onnxruntime not measured: {e}")
    result = {"variant": kernels.variant[1], "model": [], "layers": []}
    if args.layers:
        result["layers"] = layer_table(c_model, np_model, args.batches)
    rng = np.random.default_rng(0)
    xs = {n: rng.random((n, 32, 32, 3), dtype=np.float32) for n in args.batches}
    ref_name = "onnxruntime" if "onnxruntime" in fns else "numpy"
    diffs = {}
    for n, x in xs.items():
        ref = np.asarray(fns[ref_name](x), np.float64)
        for name, fn in fns.items():
            diffs[(name, n)] = float(np.abs(np.asarray(fn(x), np.float64) - ref).max())
    samples = alternating_medians(fns, xs, args.rounds, args.repeats)
    print(f"{'batch':>5} {'variant':>12} {'median ms':>10} {'range ms':>18} {'GFLOP/s':>8} {'vs ORT':>7} "
          f"{'max|dp| vs ' + ref_name:>20}")
    for n in xs:
        ref_med = float(np.median(samples[(ref_name, n)]))
        for name in fns:
            s = np.array(samples[(name, n)]) * 1e3
            med = float(np.median(s))
            gflops = model_flops(c_model, n) / (med * 1e-3) / 1e9
            ratio = ref_med * 1e3 / med
            result["model"].append({"batch": n, "variant": name, "median_ms": med, "min_ms": float(s.min()),
                                    "max_ms": float(s.max()), "gflops": gflops, "throughput_vs_" + ref_name: ratio,
                                    "max_dp": diffs[(name, n)], "rounds_ms": s.tolist()})
            print(f"{n:>5} {name:>12} {med:>10.2f} {s.min():>8.2f}-{s.max():<9.2f} {gflops:>8.1f} {ratio:>7.2f} "
                  f"{diffs[(name, n)]:>20.2e}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
