#!/usr/bin/env python
"""Issue 16 experiment: a compiled (Numba) fused ConvStep against the NumPy path and ONNX Runtime, CNN.

    python benchmarks/experiment_numba_conv.py [--batches 1 8 32 256] [--rounds 5] [--repeats 3] [--json F]

The kernel (below; not wired into the engine, it was not faster, see reports/inference_plan.md):
Conv2D 3x3/1 'same' [+ bias or folded BatchNormalization] [+ ReLU] [+ 2x2/2 max pooling], float32, NHWC,
one loop nest per output row (or pooled row pair): the input rows are copied with a zero border, and for
each (ky, 4 input channels) every (W, F) float32 accumulator row is loaded once for 12 taps, the loop over
F vectorized by LLVM. ``fastmath`` is off (no reassociation). ``conv3x3_rows_parallel``: ``prange`` over
the rows of the whole batch (Numba's threads); ``conv3x3_rows``: serial, ``nogil``, for the parts of
inference/split.py. Compiled code is cached when Numba finds a writable cache directory (next to this
file or ``NUMBA_CACHE_DIR``), else compiled once per process.

One process, alternating rounds (order reversed every other round); in every round each variant runs
``--repeats`` timed calls per batch (after one warm-up call) of ``Model.predict`` on the committed CNN
(weights/cnn), x uniform in [0, 1):

* ``numpy``: the engine as it is (Winograd / im2col), the split policy of inference/split.py;
* ``numba-split``: the compiled kernel for every ConvStep, serial inside each part of the same split;
* ``numba-prange``: the compiled kernel over the whole batch, no split, ``prange`` over rows;
* ``onnxruntime``: tf2onnx conversion of model.keras, default session (when onnxruntime is installed).

Prints per batch the median and range (over rounds, of each round's median) in ms, the GFLOP/s of the
direct-convolution count, and max |dp| of each variant against ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import scratch_models  # noqa: E402
from scratch_models.inference import conv, split  # noqa: E402
from scratch_models.inference.split import Part  # noqa: E402
from alternating import alternating_medians  # noqa: E402

try:
    import numba
except ImportError:  # the optional ``fast`` extra is not installed
    numba = None

AVAILABLE = numba is not None


def _rows_body(x, w, bias, relu, pool, out, t):
    """Output row ``t`` of the flattened (image, row) index: one conv row, or with ``pool`` the two conv
    rows of one pooled row. x (N, H, W, C), w (3, 3, C, F), bias (F,), out (N, Ho, Wo, F). The input rows
    are copied with a zero border; per (ky, 4 channels) each accumulator row is loaded once for 12 taps."""
    n_img, h, wd, c = x.shape
    f = w.shape[3]
    rows_out = out.shape[1]
    n = t // rows_out
    r = t - n * rows_out
    nrows = 2 if pool else 1
    y0 = 2 * r if pool else r
    xp = np.zeros((nrows + 2, wd + 2, c), np.float32)
    for i in range(nrows + 2):
        iy = y0 + i - 1
        if 0 <= iy < h:
            xp[i, 1:wd + 1] = x[n, iy]
    acc = np.zeros((nrows, wd, f), np.float32)
    c4 = c - c % 4
    for rr in range(nrows):
        for ky in range(3):
            iy = y0 + rr + ky - 1
            if iy < 0 or iy >= h:
                continue
            row = xp[rr + ky]
            for ch in range(0, c4, 4):
                w0, w1, w2, w3 = w[ky, 0, ch], w[ky, 0, ch + 1], w[ky, 0, ch + 2], w[ky, 0, ch + 3]
                w4, w5, w6, w7 = w[ky, 1, ch], w[ky, 1, ch + 1], w[ky, 1, ch + 2], w[ky, 1, ch + 3]
                w8, w9, wa, wb = w[ky, 2, ch], w[ky, 2, ch + 1], w[ky, 2, ch + 2], w[ky, 2, ch + 3]
                for ox in range(wd):
                    p0, p1, p2 = row[ox], row[ox + 1], row[ox + 2]
                    a0, a1, a2, a3 = p0[ch], p0[ch + 1], p0[ch + 2], p0[ch + 3]
                    a4, a5, a6, a7 = p1[ch], p1[ch + 1], p1[ch + 2], p1[ch + 3]
                    a8, a9, aa, ab = p2[ch], p2[ch + 1], p2[ch + 2], p2[ch + 3]
                    arow = acc[rr, ox]
                    for k in range(f):
                        s = arow[k]
                        s += a0 * w0[k]
                        s += a1 * w1[k]
                        s += a2 * w2[k]
                        s += a3 * w3[k]
                        s += a4 * w4[k]
                        s += a5 * w5[k]
                        s += a6 * w6[k]
                        s += a7 * w7[k]
                        s += a8 * w8[k]
                        s += a9 * w9[k]
                        s += aa * wa[k]
                        s += ab * wb[k]
                        arow[k] = s
            for ch in range(c4, c):
                w0, w4, w8 = w[ky, 0, ch], w[ky, 1, ch], w[ky, 2, ch]
                for ox in range(wd):
                    a0, a4, a8 = row[ox, ch], row[ox + 1, ch], row[ox + 2, ch]
                    arow = acc[rr, ox]
                    for k in range(f):
                        s = arow[k]
                        s += a0 * w0[k]
                        s += a4 * w4[k]
                        s += a8 * w8[k]
                        arow[k] = s
    if pool:
        for ox in range(out.shape[2]):
            for k in range(f):
                m = max(max(acc[0, 2 * ox, k], acc[0, 2 * ox + 1, k]),
                        max(acc[1, 2 * ox, k], acc[1, 2 * ox + 1, k])) + bias[k]
                out[n, r, ox, k] = max(m, np.float32(0.0)) if relu else m
    else:
        for ox in range(wd):
            for k in range(f):
                v = acc[0, ox, k] + bias[k]
                out[n, r, ox, k] = max(v, np.float32(0.0)) if relu else v


def _serial(x, w, bias, relu, pool, out):
    for t in range(out.shape[0] * out.shape[1]):
        _rows_body(x, w, bias, relu, pool, out, t)


def _parallel(x, w, bias, relu, pool, out):
    for t in numba.prange(out.shape[0] * out.shape[1]):
        _rows_body(x, w, bias, relu, pool, out, t)


def _jit(fn, **options):
    """``numba.njit`` with ``cache=True``, or without it when no cache directory is writable
    (e.g. a read-only install in a container): Numba then raises at decoration time."""
    try:
        return numba.njit(cache=True, fastmath=False, **options)(fn)
    except RuntimeError:
        return numba.njit(cache=False, fastmath=False, **options)(fn)


if AVAILABLE:
    _rows_body = _jit(_rows_body, inline="always")
    conv3x3_rows = _jit(_serial, nogil=True)
    conv3x3_rows_parallel = _jit(_parallel, nogil=True, parallel=True)
else:
    conv3x3_rows = conv3x3_rows_parallel = None


def supports(step, x_shape) -> bool:
    """True when the compiled kernel computes the ConvStep ``step`` on an input of ``x_shape``."""
    layer, dtype = step.layer, step.layer.dtype
    return (AVAILABLE and step.activation in ("linear", "relu") and (not step.pool or min(x_shape[1:3]) >= 2) and layer.kernel_size == (3, 3) and layer.strides == (1, 1) and layer.padding == "same"
            and tuple(getattr(layer, "dilation_rate", (1, 1))) == (1, 1) and getattr(layer, "groups", 1) == 1
            and np.dtype(dtype) == np.float32 and len(x_shape) == 4)


def conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, relu: bool, pool: bool,
            out: np.ndarray, parallel: bool) -> np.ndarray:
    """The fused step into ``out`` (N, H, W, F), or (N, H // 2, W // 2, F) with ``pool``; x (N, H, W, C)
    float32, kernel (3, 3, C, F) float32, bias (F,) or None."""
    n, h, w, c = x.shape
    f = kernel.shape[3]
    expected = (n, h // 2, w // 2, f) if pool else (n, h, w, f)
    if kernel.shape[:3] != (3, 3, c) or out.shape != expected:
        raise ValueError(f"conv3x3: expected a kernel (3, 3, {c}, F) and an output {expected}, "
                         f"received {kernel.shape} and {out.shape}")
    b = np.zeros(f, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    fn = conv3x3_rows_parallel if parallel else conv3x3_rows
    fn(np.ascontiguousarray(x, np.float32), np.ascontiguousarray(kernel, np.float32), b, bool(relu), bool(pool), out)
    return out


USE_COMPILED = False  # read by the patched ConvStep.__call__ (``patched_conv_steps``)


def patched_conv_steps():
    """Make every ``ConvStep`` run the compiled kernel where it applies (and ``USE_COMPILED`` is set):
    the whole batch with ``prange``, or serially inside a part of a split batch."""
    original = conv.ConvStep.__call__
    if getattr(original, "numba_experiment", False):
        return

    def call(self, x, part=None):
        if not (USE_COMPILED and supports(self, x.shape)):
            return original(self, x, part)
        part = part or Part(conv.Fresh())
        ho, wo = x.shape[1], x.shape[2]
        f = self.layer.filters
        shape = (len(x), ho // 2, wo // 2, f) if self.pool else (len(x), ho, wo, f)
        out = part.arena.get((self.key, "out"), shape, self.layer.dtype)
        return conv3x3(x, self.k2d.reshape(self.kernel.shape), self.bias, self.activation == "relu", self.pool,
                       out, parallel=not part.split)
    call.numba_experiment = True
    conv.ConvStep.__call__ = call


def conv_flops(model, n: int) -> float:
    """2 x multiply-adds of every Conv2D and Dense, direct algorithm, batch ``n``."""
    total, shape = 0.0, (32, 32, 3)
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


def variants(model, ort):
    split_min = split.MIN_ITEMS_PER_PART["convolutional"]

    def run(use_compiled: bool, min_items: int):
        def fn(x):
            global USE_COMPILED
            USE_COMPILED = use_compiled
            split.MIN_ITEMS_PER_PART["convolutional"] = min_items
            try:
                return model.predict(x)
            finally:
                USE_COMPILED = False
                split.MIN_ITEMS_PER_PART["convolutional"] = split_min
        return fn
    out = {"numpy": run(False, split_min)}
    if AVAILABLE:
        patched_conv_steps()
        out["numba-split"] = run(True, split_min)
        out["numba-prange"] = run(True, 1 << 30)
    if ort is not None:
        out["onnxruntime"] = ort
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 256])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    arch_dir = ROOT / "weights" / "cnn"
    model = scratch_models.load(arch_dir)
    try:
        from bench_models import onnx_session
        ort = onnx_session(arch_dir)
    except ImportError as e:
        print(f"onnxruntime not measured: {e}")
        ort = None
    fns = variants(model, ort)
    rng = np.random.default_rng(0)
    xs = {n: rng.random((n, 32, 32, 3), dtype=np.float32) for n in args.batches}
    diffs = {}
    for n, x in xs.items():  # warm-up (compilation) and agreement
        ref = fns["onnxruntime"](x) if ort is not None else fns["numpy"](x)
        for name, fn in fns.items():
            diffs[(name, n)] = float(np.abs(np.asarray(fn(x), np.float64) - ref).max())
    samples = alternating_medians(fns, xs, args.rounds, args.repeats)
    rows = []
    print(f"{'batch':>5} {'variant':>13} {'median ms':>10} {'range ms':>18} {'GFLOP/s':>8} {'max|dp| vs ORT':>15}")
    for n in xs:
        for name in fns:
            s = np.array(samples[(name, n)]) * 1e3
            med = float(np.median(s))
            gflops = conv_flops(model, n) / (med * 1e-3) / 1e9
            rows.append({"batch": n, "variant": name, "median_ms": med, "min_ms": float(s.min()),
                         "max_ms": float(s.max()), "gflops": gflops, "max_dp": diffs[(name, n)], "rounds_ms": s.tolist()})
            print(f"{n:>5} {name:>13} {med:>10.2f} {s.min():>8.2f}-{s.max():<9.2f} {gflops:>8.1f} {diffs[(name, n)]:>15.2e}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
