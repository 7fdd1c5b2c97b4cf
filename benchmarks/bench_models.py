#!/usr/bin/env python
"""Forward-pass latency, throughput and peak memory of both backends for every arch and batch size.

    python benchmarks/bench_models.py [--archs cnn rnn lstm] [--batches 1 8 32 256] [--repeats 30]

Each (arch, backend) runs in a process of its own, so its peak RSS is its own. Keras is measured on
its fastest inference path (a ``tf.function`` with a fixed input signature) and on ``model.predict``.
The three processes of an arch stay up and take turns: ``--rounds`` rounds, each timing every batch size
on every backend (the order rotating), so a slow spell of a shared machine hits all backends alike. The
scratch/Keras ratio of a batch size is the median over rounds of the ratio within the round; the table
also gives its lowest and highest round. Writes ``reports/benchmarks.md``, ``reports/benchmarks.json``
and ``reports/figures/benchmarks.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BACKENDS = ("scratch", "keras-tf.function", "keras-predict")


def make_inputs(arch_dir: Path, n: int, seed: int = 0) -> np.ndarray:
    manifest = json.loads((arch_dir / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    if manifest["input"]["kind"] == "image":
        return rng.random((n, 32, 32, 3), dtype=np.float32)
    length, vocab = manifest["input"]["sequence_length"], manifest["input"]["vocabulary_size"]
    ids = rng.integers(2, vocab, (n, length)).astype(np.int32)
    lengths = rng.integers(5, length + 1, n)  # realistic padding: texts of varied length
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids


def measure(fn, x, repeats: int, min_seconds: float = 0.5) -> list[float]:
    fn(x)  # warm-up (tracing, caches)
    times, t_start = [], time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - t_start < min_seconds and len(times) < 10 * repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return times


def load_backend(arch: str, backend: str, keep_memory: bool = True):
    """In the worker process: the forward function (N, ...) -> probabilities of one backend of one arch."""
    arch_dir = ROOT / "weights" / arch
    if keep_memory:  # as the service does at start-up (KEEP_FREED_MEMORY), for every backend alike
        from scratch_models.allocator import keep_freed_memory
        keep_freed_memory()
    if backend == "scratch":
        import scratch_models
        model = scratch_models.load(arch_dir)
        fn = model.predict
    else:
        import keras
        import tensorflow as tf
        kmodel = keras.saving.load_model(arch_dir / "model.keras", compile=False)
        if backend == "keras-predict":
            fn = lambda x: kmodel.predict(x, verbose=0, batch_size=len(x))  # noqa: E731
        else:
            spec = tf.TensorSpec([None, *kmodel.inputs[0].shape[1:]], kmodel.inputs[0].dtype)
            serve = tf.function(lambda x: kmodel(x, training=False), input_signature=[spec], jit_compile=False)
            fn = lambda x: serve(x).numpy()  # noqa: E731
    return fn


def worker_loop(arch: str, backend: str, keep_memory: bool = True) -> None:
    """The worker process: load the backend, then answer one JSON line per request line on stdin,
    ``<batch> <repeats>`` -> the times in seconds, ``rss`` -> the peak RSS in MB; stop at end of input."""
    fn = load_backend(arch, backend, keep_memory)
    arch_dir = ROOT / "weights" / arch
    inputs: dict[int, np.ndarray] = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), flush=True)
            continue
        b, repeats = map(int, line.split())
        x = inputs.setdefault(b, make_inputs(arch_dir, b))
        print(json.dumps(measure(fn, x, repeats)), flush=True)


class Worker:
    """One (arch, backend) worker process, driven over its stdin/stdout."""

    def __init__(self, arch: str, backend: str, keep_memory: bool, env: dict) -> None:
        self.arch, self.backend = arch, backend
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", arch, backend]
                                     + ([] if keep_memory else ["--default-allocator"]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ask(None)  # wait until loaded

    def ask(self, request: str | None):
        if request is not None:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker {self.arch}/{self.backend} exited with {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def bench_arch(arch: str, batches: list[int], repeats: int, rounds: int, keep_memory: bool, env: dict) -> list[dict]:
    """Every backend of ``arch``, ``rounds`` alternating rounds of every batch size; one result per backend."""
    workers = [Worker(arch, backend, keep_memory, env) for backend in BACKENDS]
    try:
        times = {(w.backend, b): [] for w in workers for b in batches}
        round_medians = {(w.backend, b): [] for w in workers for b in batches}
        for r in range(rounds):
            for b in batches:
                n = max(3, -(-(repeats if b <= 32 else max(5, repeats // 3)) // rounds))
                for w in workers[r % len(workers):] + workers[:r % len(workers)]:
                    ts = w.ask(f"{b} {n}")
                    times[(w.backend, b)] += ts
                    round_medians[(w.backend, b)].append(float(np.median(ts)))
            print(f"[bench] {arch}: round {r + 1}/{rounds} done", flush=True)
        results = []
        for w in workers:
            rows = []
            for b in batches:
                ts, med = times[(w.backend, b)], float(np.median(times[(w.backend, b)]))
                rows.append({"batch": b, "median_ms": med * 1e3, "p90_ms": float(np.percentile(ts, 90)) * 1e3,
                             "items_per_s": b / med, "runs": len(ts),
                             "round_median_ms": [m * 1e3 for m in round_medians[(w.backend, b)]]})
            results.append({"arch": arch, "backend": w.backend, "rows": rows, "peak_rss_mb": w.ask("rss")})
        return results
    finally:
        for w in workers:
            w.close()


def paired_ratios(scratch_row: dict, keras_row: dict) -> list[float]:
    """Scratch/Keras throughput within each round (Keras time / scratch time), rounds in order."""
    return [k / s for s, k in zip(scratch_row["round_median_ms"], keras_row["round_median_ms"])]


def machine() -> dict:
    info = {"cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "processor": _cpu_model()}
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                        for p in threadpool_info()]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    info["numpy"] = np.__version__
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_report(results: list[dict], out_dir: Path, keep_memory: bool = True, rounds: int = 1) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    by = {(r["arch"], r["backend"]): r for r in results}
    archs = sorted({r["arch"] for r in results}, key=["cnn", "rnn", "lstm"].index)
    lines = ["# Forward-pass benchmarks", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/bench_models.py`; "
             "medians over repeated calls, every number from this one run.", "",
             "Machine: " + json.dumps(machine()), "",
             "Allocator: " + ("large freed buffers kept in the heap (`scratch_models.allocator.keep_freed_memory()`, "
                              "as the service does by default), in every backend's process alike"
                              if keep_memory else "glibc defaults (`--default-allocator`)") + ".", "",
             f"Rounds: {rounds}, the backends taking turns; ms columns are medians over every call of every round. "
             "**scratch/keras** is the median over rounds of the throughput ratio within a round (Keras "
             "`tf.function` time / scratch time), with the lowest and highest round beside it.", "",
             "| arch | batch | scratch ms | keras tf.function ms | keras predict ms | scratch items/s | keras tf.function items/s | scratch/keras throughput | rounds: min - max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for arch in archs:
        s, k, p = (by.get((arch, b)) for b in BACKENDS)
        for i, row in enumerate(s["rows"]):
            kr, pr = k["rows"][i], p["rows"][i]
            ratios = paired_ratios(row, kr)
            lines.append(f"| {arch} | {row['batch']} | {row['median_ms']:.2f} | {kr['median_ms']:.2f} | {pr['median_ms']:.2f} | "
                         f"{row['items_per_s']:.0f} | {kr['items_per_s']:.0f} | **{np.median(ratios):.2f}x** | "
                         f"{min(ratios):.2f} - {max(ratios):.2f} |")
    lines += ["", "Peak RSS of each process (MB; model loaded and all batch sizes run):", "",
              "| arch | " + " | ".join(BACKENDS) + " |", "|---|" + "---:|" * len(BACKENDS)]
    for arch in archs:
        lines.append(f"| {arch} | " + " | ".join(f"{by[(arch, b)]['peak_rss_mb']:.0f}" for b in BACKENDS) + " |")
    lines += ["", "![throughput](figures/benchmarks.png)", ""]
    write_atomic(out_dir / "benchmarks.md", "\n".join(lines))
    write_atomic(out_dir / "benchmarks.json", json.dumps({"machine": machine(), "rounds": rounds, "results": results},
                                                         indent=1))

    fig, axes = plt.subplots(1, len(archs), figsize=(5 * len(archs), 4), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        for b in BACKENDS:
            r = by[(arch, b)]["rows"]
            ax.plot([x["batch"] for x in r], [x["items_per_s"] for x in r], marker="o", label=b)
        ax.set_xscale("log", base=2), ax.set_yscale("log")
        ax.set_title(arch), ax.set_xlabel("batch size"), ax.set_ylabel("items / s (median)")
        ax.grid(alpha=0.3), ax.legend()
    fig.tight_layout()
    tmp = out_dir / "figures" / "benchmarks.tmp.png"
    fig.savefig(tmp, dpi=100)
    tmp.replace(out_dir / "figures" / "benchmarks.png")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["cnn", "rnn", "lstm"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 256])
    p.add_argument("--repeats", type=int, default=30, help="calls per batch size and backend, over all rounds "
                                                               "(a third of it, at least 5, above batch 32)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds over the backends")
    p.add_argument("--out", type=Path, default=ROOT / "reports")
    p.add_argument("--default-allocator", action="store_true",
                   help="leave glibc's malloc thresholds alone (the service's KEEP_FREED_MEMORY=false)")
    p.add_argument("--worker", nargs=2, metavar=("ARCH", "BACKEND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_loop(*args.worker, keep_memory=not args.default_allocator)
        return
    if args.rounds < 1 or args.repeats < 1:
        p.error(f"--rounds and --repeats must be positive, received {args.rounds} and {args.repeats}")
    results = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for arch in args.archs:
        if not (ROOT / "weights" / arch / "manifest.json").is_file():
            print(f"[bench] weights/{arch} missing: skipped", flush=True)
            continue
        print(f"[bench] {arch}: loading {', '.join(BACKENDS)} ...", flush=True)
        results += bench_arch(arch, args.batches, args.repeats, args.rounds, not args.default_allocator, env)
        for r in results[-len(BACKENDS):]:
            for row in r["rows"]:
                print(f"         {r['backend']:<18} batch {row['batch']:>4}: {row['median_ms']:8.2f} ms  "
                      f"{row['items_per_s']:9.0f} items/s", flush=True)
    write_report(results, args.out, keep_memory=not args.default_allocator, rounds=args.rounds)
    print((args.out / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
