#!/usr/bin/env python
"""Forward-pass latency, throughput and peak memory of every backend, arch, input kind and batch size.

    python benchmarks/bench_models.py [--archs cnn rnn lstm] [--batches 1 8 32 256] [--rounds 5]

Backends, each in a process of its own (so its peak RSS is its own), each through the code that serves it:

* ``scratch``: the service's ``ScratchBackend`` (``scratch_models.load(...).predict``), nothing tuned by hand:
  what a library user gets out of the box;
* ``keras-tf.function``: the service's ``KerasBackend`` (a ``tf.function`` with a fixed input signature);
* ``keras-predict``: ``model.predict`` of the same Keras file;
* ``onnxruntime``: the same ``model.keras`` converted by tf2onnx (``pip install -e ".[bench]"``), served by an
  ONNX Runtime ``InferenceSession`` with its default (all-core) thread pool. Skipped, and said so, when
  onnxruntime or tf2onnx is missing.

Text models are measured on two kinds of input: ``random`` (full-length rows of random token ids, no padding:
the worst case for a recurrent loop) and ``texts`` (the first N texts of the NusaX test split, vectorized by
the model's own vectorizer, padded as served; needs DATA_DIR). Images are uniform random in [0, 1).

The processes of an arch stay up and take turns: ``--rounds`` rounds, each timing every (input, batch) on
every backend, the order rotating, so a slow spell of a shared machine hits all backends alike. A ratio
(other backend's time / scratch time: scratch's throughput relative to it) is the median over rounds of the
ratio within the round, with the lowest and highest round beside it. Writes ``reports/benchmarks.md``,
``reports/benchmarks.json`` and ``reports/figures/benchmarks.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BACKENDS = ("scratch", "keras-tf.function", "keras-predict", "onnxruntime")
#: The backends scratch is compared with in the ratio table and the chart.
REFERENCES = ("keras-tf.function", "onnxruntime")


def input_kinds(arch_dir: Path) -> list[str]:
    manifest = json.loads((arch_dir / "manifest.json").read_text())
    return ["images"] if manifest["input"]["kind"] == "image" else ["random", "texts"]


def make_inputs(arch_dir: Path, kind: str, n: int, seed: int = 0) -> np.ndarray:
    """``images`` uniform in [0, 1); ``random`` full-length random ids; ``texts`` the first n test texts
    (repeated when the split is shorter), vectorized as the service does."""
    manifest = json.loads((arch_dir / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    if kind == "images":
        return rng.random((n, *manifest["input"]["shape"]), dtype=np.float32)
    length, vocab = manifest["input"]["sequence_length"], manifest["input"]["vocabulary_size"]
    if kind == "random":
        return rng.integers(2, vocab, (n, length)).astype(np.int32)
    from scratch_models import TextVectorizer
    from scratch_models.datasets import load_nusax
    texts = list(load_nusax().test.x)
    vectorizer = TextVectorizer(**json.loads((arch_dir / "vectorizer.json").read_text("utf-8")))
    return np.asarray(vectorizer.transform([texts[i % len(texts)] for i in range(n)]), np.int32)


def measure(fn, x, repeats: int, min_seconds: float = 0.3) -> list[float]:
    fn(x)  # warm-up (tracing, plans, caches)
    times, t_start = [], time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - t_start < min_seconds and len(times) < 10 * repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return times


def _served_backend(cls, arch_dir: Path):
    """Load ``arch_dir`` with one of the service's backend classes, as the service does (its
    ``ModelFiles`` interface when the service has it, else the older ``(arch_dir, manifest, ...)`` one)."""
    import inspect

    from scratch_models import TextVectorizer
    from service.backends import base
    manifest = json.loads((arch_dir / "manifest.json").read_text())
    spec = base.InputSpec.from_manifest(manifest["input"])
    vec_file = arch_dir / "vectorizer.json"
    vectorizer = TextVectorizer(**json.loads(vec_file.read_text("utf-8"))) if vec_file.is_file() else None
    if "files" in inspect.signature(cls.load).parameters:
        files = base.ModelFiles(arch_dir.name, 1, manifest, arch_dir / "model.keras", arch_dir, manifest.get("files", {}))
        return cls.load(files, spec, vectorizer)
    return cls.load(arch_dir, manifest, spec, vectorizer)


def onnx_session(arch_dir: Path):
    """``model.keras`` -> ONNX (tf2onnx, from the same ``tf.function`` the Keras backend serves) -> an
    ONNX Runtime session with its default options (intra-op threads = the cores)."""
    import keras
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx
    kmodel = keras.saving.load_model(arch_dir / "model.keras", compile=False)
    spec = [tf.TensorSpec((None, *kmodel.inputs[0].shape[1:]), kmodel.inputs[0].dtype, name="inputs")]
    fn = tf.function(lambda x: kmodel(x, training=False), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    dtype = np.float32 if kmodel.inputs[0].dtype == "float32" else np.int32
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype)})[0]


def load_backend(arch: str, backend: str):
    """In the worker process: the forward function (N, ...) -> probabilities of one backend of one arch."""
    arch_dir = ROOT / "weights" / arch
    if backend == "scratch":
        from service.backends.scratch_backend import ScratchBackend
        return _served_backend(ScratchBackend, arch_dir).predict_proba
    if backend == "keras-tf.function":
        from service.backends.keras_backend import KerasBackend
        return _served_backend(KerasBackend, arch_dir).predict_proba
    if backend == "onnxruntime":
        return onnx_session(arch_dir)
    import keras
    kmodel = keras.saving.load_model(arch_dir / "model.keras", compile=False)
    return lambda x: kmodel.predict(x, verbose=0, batch_size=len(x))


def worker_loop(arch: str, backend: str, service_allocator: bool = False) -> None:
    """The worker process: load the backend, then answer one JSON line per request line on stdin,
    ``<input kind> <batch> <repeats>`` -> the times in seconds, ``rss`` -> the peak RSS in MB."""
    if service_allocator:
        from scratch_models.allocator import keep_freed_memory
        keep_freed_memory()
    try:
        fn = load_backend(arch, backend)
    except ImportError as exc:
        print(json.dumps({"ready": False, "reason": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    arch_dir = ROOT / "weights" / arch
    inputs: dict[tuple, np.ndarray] = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), flush=True)
            continue
        kind, b, repeats = line.split()
        key = (kind, int(b))
        if key not in inputs:
            inputs[key] = make_inputs(arch_dir, kind, int(b))
        print(json.dumps(measure(fn, inputs[key], int(repeats))), flush=True)


class Worker:
    """One (arch, backend) worker process, driven over its stdin/stdout."""

    def __init__(self, arch: str, backend: str, service_allocator: bool, env: dict) -> None:
        self.arch, self.backend = arch, backend
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", arch, backend]
                                     + (["--service-allocator"] if service_allocator else []),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self.ask(None)  # wait until loaded
        self.skipped = None if ready.get("ready") else ready.get("reason", "not loaded")

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


def bench_arch(arch: str, kinds: list[str], batches: list[int], repeats: int, rounds: int,
               service_allocator: bool, env: dict) -> list[dict]:
    """Every backend of ``arch``, ``rounds`` alternating rounds of every (input kind, batch); one result per backend."""
    workers = []
    for backend in BACKENDS:
        w = Worker(arch, backend, service_allocator, env)
        if w.skipped:
            print(f"[bench] {arch}/{backend} skipped: {w.skipped}", flush=True)
            w.close()
        else:
            workers.append(w)
    cases = [(k, b) for k in kinds for b in batches]
    try:
        times = {(w.backend, c): [] for w in workers for c in cases}
        round_medians = {(w.backend, c): [] for w in workers for c in cases}
        for r in range(rounds):
            for kind, b in cases:
                n = max(3, -(-(repeats if b <= 32 else max(5, repeats // 3)) // rounds))
                for w in workers[r % len(workers):] + workers[:r % len(workers)]:
                    ts = w.ask(f"{kind} {b} {n}")
                    times[(w.backend, (kind, b))] += ts
                    round_medians[(w.backend, (kind, b))].append(float(np.median(ts)))
            print(f"[bench] {arch}: round {r + 1}/{rounds} done", flush=True)
        results = []
        for w in workers:
            rows = []
            for kind, b in cases:
                ts = times[(w.backend, (kind, b))]
                med = float(np.median(ts))
                rows.append({"input": kind, "batch": b, "median_ms": med * 1e3,
                             "p90_ms": float(np.percentile(ts, 90)) * 1e3, "items_per_s": b / med, "runs": len(ts),
                             "round_median_ms": [m * 1e3 for m in round_medians[(w.backend, (kind, b))]]})
            results.append({"arch": arch, "backend": w.backend, "rows": rows, "peak_rss_mb": w.ask("rss")})
        return results
    finally:
        for w in workers:
            w.close()


def paired_ratios(scratch_row: dict, other_row: dict) -> list[float]:
    """Scratch's throughput relative to another backend within each round (its time / scratch's time)."""
    return [o / s for s, o in zip(scratch_row["round_median_ms"], other_row["round_median_ms"])]


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
    for module in ("onnxruntime", "tensorflow", "tf2onnx"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def ratio_table(results: list[dict]) -> list[dict]:
    """One entry per (arch, input, batch): scratch's throughput relative to each reference backend,
    median over rounds with min and max."""
    by = {(r["arch"], r["backend"]): r for r in results}
    table = []
    for (arch, backend), res in by.items():
        if backend != "scratch":
            continue
        for i, row in enumerate(res["rows"]):
            entry = {"arch": arch, "input": row["input"], "batch": row["batch"], "scratch_ms": row["median_ms"]}
            for ref in REFERENCES + ("keras-predict",):
                other = by.get((arch, ref))
                if other is None:
                    continue
                ratios = paired_ratios(row, other["rows"][i])
                entry[ref] = {"ms": other["rows"][i]["median_ms"], "ratio": float(np.median(ratios)),
                              "min": float(min(ratios)), "max": float(max(ratios))}
            table.append(entry)
    return table


def write_report(results: list[dict], out_dir: Path, rounds: int, service_allocator: bool, notes: str = "") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(exist_ok=True)
    table = ratio_table(results)
    by = {(r["arch"], r["backend"]): r for r in results}
    archs = sorted({r["arch"] for r in results}, key=["cnn", "rnn", "lstm"].index)
    lines = ["# Forward-pass benchmarks", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/bench_models.py "
             f"--rounds {rounds}`; every number from this one run.", "",
             "Machine: " + json.dumps(machine()), "",
             "Allocator: " + ("`keep_freed_memory()` applied in every process, as the service does"
                              if service_allocator else "untouched by the benchmark: each backend as a library user "
                              "gets it (the scratch engine applies its own scoped tuning)") + ". BLAS threads: the "
             "library defaults (the service's BLAS_THREADS is not applied).", "",
             f"Rounds: {rounds}, the backends taking turns in a rotating order. ms columns: medians over every call "
             "of every round. A ratio is scratch's throughput relative to that backend (its time / scratch's), "
             "the median over rounds of the within-round ratio, with the lowest and highest round in brackets. "
             "Text inputs: `random` = 64 random token ids per row (no padding), `texts` = the NusaX test texts "
             "as served (padded).", ""]
    if notes:
        lines += [notes, ""]
    head = "| arch | input | batch | scratch ms | " + " | ".join(f"{r} ms" for r in REFERENCES + ("keras-predict",)) \
        + " | " + " | ".join(f"scratch vs {r}" for r in REFERENCES) + " |"
    lines += [head, "|---|---|---:|" + "---:|" * (1 + len(REFERENCES) + 1 + len(REFERENCES))]
    for e in table:
        ms = " | ".join(f"{e[r]['ms']:.2f}" if r in e else "-" for r in REFERENCES + ("keras-predict",))
        ratios = " | ".join(f"**{e[r]['ratio']:.2f}x** ({e[r]['min']:.2f}-{e[r]['max']:.2f})" if r in e else "-"
                            for r in REFERENCES)
        lines.append(f"| {e['arch']} | {e['input']} | {e['batch']} | {e['scratch_ms']:.2f} | {ms} | {ratios} |")
    backends = [b for b in BACKENDS if any((a, b) in by for a in archs)]
    lines += ["", "Peak RSS of each process (MB; model loaded and every case run):", "",
              "| arch | " + " | ".join(backends) + " |", "|---|" + "---:|" * len(backends)]
    for arch in archs:
        lines.append(f"| {arch} | " + " | ".join(f"{by[(arch, b)]['peak_rss_mb']:.0f}" if (arch, b) in by else "-"
                                                  for b in backends) + " |")
    lines += ["", "![scratch relative to Keras tf.function and ONNX Runtime](figures/benchmarks.png)", ""]
    write_atomic(out_dir / "benchmarks.md", "\n".join(lines))
    write_atomic(out_dir / "benchmarks.json", json.dumps({"machine": machine(), "rounds": rounds,
                                                         "ratios": table, "results": results}, indent=1))
    plot(table, out_dir / "figures" / "benchmarks.png")


def plot(table: list[dict], path: Path) -> None:
    """Bars: scratch's throughput relative to each reference, per (arch, input) and batch, with the round range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(e["arch"], e["input"]) for e in table}, key=lambda g: (["cnn", "rnn", "lstm"].index(g[0]), g[1]))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.8), squeeze=False, sharey=True)
    for ax, (arch, kind) in zip(axes[0], groups):
        rows = [e for e in table if (e["arch"], e["input"]) == (arch, kind)]
        xs = np.arange(len(rows))
        for j, ref in enumerate(REFERENCES):
            r = [e.get(ref) for e in rows]
            if not any(r):
                continue
            med = np.array([v["ratio"] if v else np.nan for v in r])
            err = np.array([[m - v["min"], v["max"] - m] if v else [0, 0] for v, m in zip(r, med)]).T
            ax.bar(xs + (j - 0.5) * 0.38, med, 0.38, yerr=err, capsize=2, label=f"vs {ref}")
        ax.axhline(1, color="k", lw=0.8)
        ax.set_xticks(xs, [str(e["batch"]) for e in rows])
        ax.set_yscale("log")
        ax.set_title(f"{arch} ({kind})"), ax.set_xlabel("batch size")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("scratch throughput / other's (median, round range)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)


def write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as fh:
        fh.write(text)
    Path(fh.name).replace(path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["cnn", "rnn", "lstm"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 256])
    p.add_argument("--inputs", nargs="+", choices=["random", "texts"], default=["random", "texts"],
                   help="kinds of text input (images are always random)")
    p.add_argument("--repeats", type=int, default=30, help="calls per case and backend, over all rounds "
                                                               "(a third of it, at least 5, above batch 32)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds over the backends")
    p.add_argument("--out", type=Path, default=ROOT / "reports")
    p.add_argument("--notes", default="", help="a sentence for the report (e.g. how busy the host was)")
    p.add_argument("--service-allocator", action="store_true",
                   help="apply keep_freed_memory() in every process, as the service does at start-up")
    p.add_argument("--resume", action="store_true", help="reuse the archs a previous run with this --out finished")
    p.add_argument("--worker", nargs=2, metavar=("ARCH", "BACKEND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_loop(*args.worker, service_allocator=args.service_allocator)
        return
    if args.rounds < 1 or args.repeats < 1:
        p.error(f"--rounds and --repeats must be positive, received {args.rounds} and {args.repeats}")
    results = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for arch in args.archs:
        arch_dir = ROOT / "weights" / arch
        if not (arch_dir / "manifest.json").is_file():
            print(f"[bench] weights/{arch} missing: skipped", flush=True)
            continue
        kinds = [k for k in input_kinds(arch_dir) if k == "images" or k in args.inputs]
        cache = args.out / ".bench_cache" / f"{arch}.json"  # finished archs, for --resume after a crash
        if args.resume and cache.is_file():
            results += json.loads(cache.read_text())
            print(f"[bench] {arch}: results of an earlier run taken from {cache}", flush=True)
            continue
        print(f"[bench] {arch}: loading {', '.join(BACKENDS)} ...", flush=True)
        done = bench_arch(arch, kinds, args.batches, args.repeats, args.rounds, args.service_allocator, env)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, json.dumps(done))
        results += done
    write_report(results, args.out, args.rounds, args.service_allocator, args.notes)
    print((args.out / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
