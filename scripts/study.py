#!/usr/bin/env python
"""The hyper-parameter study (issue 6): how depth, width, kernel size, pooling and direction change
test macro-F1 and the loss curves, measured over several seeds instead of one run per variant.

    DATA_DIR=../shared/data python scripts/study.py --only rnn          # train what is missing
    nohup env DATA_DIR=../shared/data python scripts/study.py > runs/logs/study.log 2>&1 &
    python scripts/study.py --scheduler tcp://HOST:8786                 # on an existing Dask cluster
    python scripts/study.py --report-only                               # reports/study.md + figures

Each (variant, seed) run is one task on Dask distributed (issue 20): a local cluster with one
single-threaded worker per core by default, or the cluster at ``--scheduler``. The task trains the
run with Keras (``scripts/train.py``; models cached under ``runs/study/`` on the worker, not
committed) in a fresh interpreter of its own that dies with the worker (``scripts/fresh_interpreter.py``:
so a run repeats the sequential run bit for bit), checks it against the scratch engine on the test
split, logs it to MLflow (``scripts/tracking.py``) and returns its result record; this process writes the record to
``reports/runs/<arch>/<variant>-seed<N>.json`` (atomically). Those files are the cache: a rerun
submits only the runs without one, so an interrupted study resumes where it stopped. A task that
raises, or whose worker dies, is retried ``--retries`` times (default 2) and then reported as failed.
Variants shared between factors (the baseline, and bidirectional-128 = 128 units) are trained once.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import platform
import sys
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from configs import cnn_layers, text_layers  # noqa: E402
from scratch_models.io_utils import atomic_write_bytes, atomic_write_json  # noqa: E402

ARCHS = ("rnn", "lstm", "cnn")  # the order of a full run: the cheap text studies first
TRACKING_EXPERIMENT = "study"


@dataclass(frozen=True)
class StudyPaths:
    """Where a study keeps its result records (the cache), the Keras run folders, the report and figures."""
    results: Path
    keras_runs: Path
    report: Path
    figures: Path

    @classmethod
    def under(cls, out: Path | None) -> "StudyPaths":
        """The committed study (``reports/``, ``runs/study``) or, for ``--out DIR``, everything in DIR."""
        if out is None:
            return cls(ROOT / "reports" / "runs", ROOT / "runs" / "study", ROOT / "reports" / "study.md",
                       ROOT / "reports" / "figures")
        out = Path(out).resolve()
        return cls(out / "runs", out / "keras-runs", out / "study.md", out / "figures")


DEFAULT_PATHS = StudyPaths.under(None)


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --------------------------------------------------------------------------- the variants, as data
# One fixed budget per data set, early stopping on validation loss (best weights restored).
CNN_TRAINING = {"batch_size": 64, "epochs": 10, "learning_rate": 1e-3, "patience": 3, "augment": False}
TEXT_TRAINING = {"max_tokens": 4000, "sequence_length": 64, "batch_size": 32, "epochs": 40,
                 "learning_rate": 1e-3, "patience": 6}
DEFAULT_SEEDS = {"cnn": 2, "rnn": 5, "lstm": 5}
# Measured before choosing the CNN budget (120 batches of 64, after a warm-up, while the served CNN's
# training and other jobs shared the 2 cores): quoted in the report.
CNN_EPOCH_TIMING = ("one epoch of 40,000 images measured at about 255 s for the baseline and 534 s for "
                    "filters [64, 128] (409 and 855 ms per batch of 64) on the shared 2-core machine, so a "
                    "10-epoch CNN run costs roughly 40-90 min there; on an idle machine a baseline epoch took "
                    "26 s (base seed 0, epoch 8)")


def cnn_variant(filters=(32, 64), kernels=(3, 3), pooling="max") -> dict:
    """Conv(ReLU) + 2x2 pool per block -> Flatten -> Dense(128, ReLU) -> Dropout(0.5) -> Dense(10)."""
    return {**CNN_TRAINING, "layers": cnn_layers(filters=filters, kernels=kernels, pooling=pooling,
                                                 dense=(128,), head_dropout=0.5)}


def text_variant(cell: str, units=(64,), bidirectional=True) -> dict:
    """Embedding(64, mask_zero) -> (Bi)RNN layer(s), last state -> Dropout(0.5) -> Dense(3, softmax).

    Stacked layers return sequences and have Dropout(0.5) between them; everything but the factor is
    the same in every variant.
    """
    return {**TEXT_TRAINING, "layers": text_layers(cell=cell, units=units, bidirectional=bidirectional,
                                                   embedding_dim=64, pool="last", dropout=0.5)}


def _text_study(cell: str) -> tuple[dict, list]:
    variants = {"base": text_variant(cell),  # one bidirectional layer of 64 units
                "layers2": text_variant(cell, units=(64, 64)),
                "layers3": text_variant(cell, units=(64, 64, 64)),
                "units32": text_variant(cell, units=(32,)),
                "units128": text_variant(cell, units=(128,)),
                "uni128": text_variant(cell, units=(128,), bidirectional=False)}
    factors = [("layers", "recurrent layers", [("1", "base"), ("2", "layers2"), ("3", "layers3")]),
               ("units", "units per direction", [("32", "units32"), ("64", "base"), ("128", "units128")]),
               ("direction", "direction (128 units)", [("unidirectional", "uni128"),
                                                       ("bidirectional", "units128")])]
    return variants, factors


STUDY: dict[str, dict] = {
    "cnn": {
        "variants": {"base": cnn_variant(),  # 2 conv layers [32, 64], 3x3, max pooling
                     "layers1": cnn_variant(filters=(32,), kernels=(3,)),
                     "layers3": cnn_variant(filters=(32, 64, 128), kernels=(3, 3, 3)),
                     "layers4": cnn_variant(filters=(32, 64, 128, 256), kernels=(3, 3, 3, 3)),
                     "filters_small": cnn_variant(filters=(16, 32)),
                     "filters_large": cnn_variant(filters=(64, 128)),
                     "kernels5": cnn_variant(kernels=(5, 5)),
                     "kernels7_3": cnn_variant(kernels=(7, 3)),
                     "pool_avg": cnn_variant(pooling="average")},
        "factors": [("layers", "conv layers", [("1", "layers1"), ("2", "base"), ("3", "layers3"),
                                               ("4", "layers4")]),
                    ("filters", "filters", [("small [16, 32]", "filters_small"), ("medium [32, 64]", "base"),
                                            ("large [64, 128]", "filters_large")]),
                    ("kernels", "kernel sizes", [("3x3, 3x3", "base"), ("5x5, 5x5", "kernels5"),
                                                 ("7x7, 3x3", "kernels7_3")]),
                    ("pooling", "pooling", [("max", "base"), ("average", "pool_avg")])],
    },
}
for _arch, _cell in (("rnn", "SimpleRNN"), ("lstm", "LSTM")):
    _v, _f = _text_study(_cell)
    STUDY[_arch] = {"variants": _v, "factors": _f}

# The reference report's single-run test macro-F1 (original CIFAR-10; issue 6), by (arch, factor, level).
REFERENCE = {
    "cnn": {"layers": {"1": 0.5655, "2": 0.6965, "3": 0.7143},
            "filters": {"small [16, 32]": 0.6728, "medium [32, 64]": 0.6965, "large [64, 128]": 0.7065},
            "kernels": {"3x3, 3x3": 0.6965, "5x5, 5x5": 0.6897, "7x7, 3x3": 0.6627},
            "pooling": {"max": 0.6965, "average": 0.6826}},
    "rnn": {"layers": {"1": 0.4920, "2": 0.5551, "3": 0.5571},
            "units": {"32": 0.5640, "64": 0.5052, "128": 0.4158},
            "direction": {"unidirectional": 0.3770, "bidirectional": 0.5701}},
    "lstm": {"layers": {"1": 0.7505, "2": 0.5604, "3": 0.5914},
             "units": {"32": 0.7407, "64": 0.7408, "128": 0.7186},
             "direction": {"unidirectional": 0.1827, "bidirectional": 0.5941}},
}
ARCH_TITLES = {"cnn": "CNN on CIFAR-10", "rnn": "SimpleRNN on NusaX-Sentiment", "lstm": "LSTM on NusaX-Sentiment"}


def result_path(arch: str, variant: str, seed: int, paths: StudyPaths = DEFAULT_PATHS) -> Path:
    return paths.results / arch / f"{variant}-seed{seed}.json"


def factor_levels(arch: str, variant: str) -> dict[str, str]:
    """``{factor: level}`` of every factor that uses ``variant`` (tracking tags, e.g. ``units: 128``)."""
    return {key: level for key, _, levels in STUDY[arch]["factors"] for level, v in levels if v == variant}


# --------------------------------------------------------------------------- one run (a task)
def network_inputs(arch: str, run_dir: Path, cfg: dict, data_dir: str | None = None):
    """The test split as the network sees it (images, or token ids from the run's own vocabulary)."""
    from scratch_models.datasets import load_dataset_for
    from train import text_vectorizer

    data = load_dataset_for(arch, data_dir)
    if arch == "cnn":
        return data.test.x, data.test.y
    vec = text_vectorizer(data.train.x, cfg["max_tokens"], cfg["sequence_length"])
    saved = json.loads((run_dir / "vectorizer.json").read_text())["vocabulary"]
    if vec.get_vocabulary() != saved:
        raise RuntimeError(f"{run_dir}: the re-adapted vocabulary differs from the one saved at training")
    return np.asarray(vec(list(data.test.x)), dtype=np.int32), data.test.y


def run_one(arch: str, variant: str, seed: int, epochs: int, keras_runs: Path = DEFAULT_PATHS.keras_runs,
            data_dir: str | None = None, tracking_uri: str | None = None) -> dict:
    """Train (or reuse the cached Keras run), compare Keras with the scratch engine, log the run to
    MLflow (when ``tracking_uri``), return the record."""
    import keras

    import scratch_models
    import tracking
    from export import compare_backends
    from train import train

    cfg = copy.deepcopy(STUDY[arch]["variants"][variant])
    cfg["epochs"] = epochs
    run_dir = train(arch, f"{variant}-e{epochs}", seed, runs_dir=Path(keras_runs), config=cfg, verbose=0,
                    data_dir=data_dir, experiment=None)  # tracked below, with the engine check
    trained = json.loads((run_dir / "result.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    x_test, y_test = network_inputs(arch, run_dir, trained["config"], data_dir)
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    t0 = time.time()
    smodel = scratch_models.from_keras(model)
    comparison = compare_backends(model, smodel, x_test, y_test)
    record = {"arch": arch, "variant": variant, "seed": seed, "epoch_budget": epochs,
              "patience": trained["config"]["patience"], "batch_size": trained["config"]["batch_size"],
              "test_macro_f1": comparison["keras"]["macro_f1"], "test_accuracy": comparison["keras"]["accuracy"],
              "params": trained["params"], "train_seconds": trained["train_seconds"],
              "epochs_run": trained["epochs_run"], "best_epoch": trained["best_epoch"],
              "history": {k: history[k] for k in ("loss", "val_loss", "accuracy", "val_accuracy", "epoch_seconds")
                          if k in history},
              "scratch": {"agreement": comparison["agreement"], "max_abs_prob_diff": comparison["max_abs_prob_diff"],
                          "test_macro_f1": comparison["scratch"]["macro_f1"],
                          "test_accuracy": comparison["scratch"]["accuracy"], "n_test": comparison["n"],
                          "check_seconds": time.time() - t0},
              "config": trained["config"], "data_source": trained["data_source"], "split": trained["split"],
              "keras_run_dir": shown(run_dir), "environment": environment()}
    if tracking_uri:
        record["mlflow_run_id"] = tracking.log_run(
            run_dir, TRACKING_EXPERIMENT, uri=tracking_uri, source="scripts/study.py",
            metrics={f"scratch_{k}": v for k, v in record["scratch"].items()},
            tags={"study.variant": variant, **{f"study.factor.{k}": v for k, v in factor_levels(arch, variant).items()}})
    return record


def environment() -> dict:
    """What a run's exact numbers depend on besides the seed: library versions and the CPU (oneDNN picks
    kernels by instruction set). Records made before issue 20's fix do not have it."""
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "cpu": cpu_model(), "cores": local_cores()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor()


def train_task(arch: str, variant: str, seed: int, epochs: int, keras_runs: str | None, data_dir: str | None,
               tracking_uri: str | None, fresh_interpreter: bool = False) -> dict:
    """One study run wherever it is scheduled (a Dask worker, or this process with ``--sequential``).

    ``keras_runs`` None means the worker's own ``runs/study``. The worker's own ``DATA_DIR`` wins over
    the submitter's (the data folder may be mounted elsewhere on another machine). Returns the result
    record; writing it is the submitter's job.

    ``fresh_interpreter`` (on Dask workers): train in a child interpreter that dies with the worker
    (``scripts/fresh_interpreter.py``). Inside the worker process the event loop's draws from Python's
    global ``random`` interleave with the seeds Keras takes from it, and runs would not repeat.
    """
    t0 = time.time()
    keras_runs = keras_runs or str(DEFAULT_PATHS.keras_runs)
    data_dir = os.environ.get("DATA_DIR") or data_dir
    if fresh_interpreter:
        import fresh_interpreter as child
        record = child.call("study", "run_one", {"arch": arch, "variant": variant, "seed": seed, "epochs": epochs,
                                                 "keras_runs": keras_runs, "data_dir": data_dir,
                                                 "tracking_uri": tracking_uri})
    else:
        record = run_one(arch, variant, seed, epochs, Path(keras_runs), data_dir, tracking_uri)
    record["run_wall_seconds"] = time.time() - t0
    record["worker"] = {"host": platform.node(), "pid": os.getpid(), "fresh_interpreter": fresh_interpreter}
    return record


def shipped_task():
    """``train_task`` as the workers import it (``study.train_task``, not a copy from ``__main__``): Dask
    then pickles it by reference, so every worker runs its own checkout of the code and paths."""
    import study
    return study.train_task


# --------------------------------------------------------------------------- the study (the submitter)
def planned_runs(archs, seeds_override: list[int] | None, variants: list[str] | None = None
                 ) -> list[tuple[str, str, int]]:
    """The text studies first, then the CNN; seed-major within each group (seed 0 of every variant of
    both text archs, then seed 1, ...), so that an unfinished study covers every variant evenly.
    ``variants`` keeps only those names (in each arch that has them)."""
    plan = []
    for group in (("rnn", "lstm"), ("cnn",)):
        group_archs = [a for a in archs if a in group]
        seeds = {a: seeds_override if seeds_override is not None else list(range(DEFAULT_SEEDS[a]))
                 for a in group_archs}
        for seed in sorted({s for a in group_archs for s in seeds[a]}):
            plan += [(a, variant, seed) for a in group_archs if seed in seeds[a] for variant in STUDY[a]["variants"]
                     if variants is None or variant in variants]
    return plan


def pending_runs(plan, epochs_override: int | None, paths: StudyPaths) -> list[tuple[str, str, int, int]]:
    """The planned runs without a result record, with their epoch budget (a record is never redone)."""
    todo = []
    for arch, variant, seed in plan:
        budget = epochs_override or STUDY[arch]["variants"][variant]["epochs"]
        path = result_path(arch, variant, seed, paths)
        if path.is_file():
            done_budget = json.loads(path.read_text())["epoch_budget"]
            if done_budget != budget:
                print(f"[study] {shown(path)} was run with {done_budget} epochs, not {budget}: "
                      "kept (delete it to rerun)", flush=True)
            continue
        todo.append((arch, variant, seed, budget))
    return todo


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def dask_client(scheduler: str | None, workers: int | None, retries: int):
    """A client of the cluster at ``scheduler``, or of a local cluster: ``workers`` processes (default
    one per core), one task at a time each, TensorFlow's threads split evenly between them. A task
    whose worker dies is rescheduled at most ``retries`` times (the scheduler's allowed-failures;
    an external scheduler keeps its own setting, 3 by default)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n = workers or local_cores()
    threads = str(max(1, local_cores() // n))
    env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                         env=env) as cluster, Client(cluster) as client:
        yield client


def progress_bar(total: int):
    from tqdm import tqdm
    interactive = sys.stderr.isatty()
    return tqdm(total=total, unit="run", desc="study", dynamic_ncols=interactive,
                mininterval=0.5 if interactive else 60.0)


def run_study(archs, seeds_override, epochs_override, max_runs: int | None = None, variants=None,
              paths: StudyPaths = DEFAULT_PATHS, scheduler: str | None = None, workers: int | None = None,
              retries: int = 2, sequential: bool = False) -> list[dict]:
    """Run every planned run that has no record yet; return the failures (``[]`` when all finished)."""
    import tracking

    plan = planned_runs(archs, seeds_override, variants)
    todo = pending_runs(plan, epochs_override, paths)
    print(f"[study] {len(plan)} planned, {len(plan) - len(todo)} finished, {len(todo)} to run"
          + (f" (this session stops after {max_runs})" if max_runs else ""), flush=True)
    if max_runs is not None:
        todo = todo[:max_runs]
    if not todo:
        return []
    uri = tracking.tracking_uri() if tracking.enabled() else None
    if uri:
        try:
            tracking.experiment_id(TRACKING_EXPERIMENT, uri)  # once, before the tasks race to create it
            print(f"[study] tracking to {uri} (experiment {TRACKING_EXPERIMENT!r})", flush=True)
        except ImportError:
            print("[study] mlflow is not installed (pip install -e '.[train]'): runs not tracked", flush=True)
            uri = None
    data_dir = os.environ.get("DATA_DIR")
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    failures: list[dict] = []
    bar = progress_bar(len(todo))

    def finished(job, record: dict) -> None:
        arch, variant, seed, _ = job
        atomic_write_json(result_path(arch, variant, seed, paths), record)
        bar.update(1)
        bar.write(f"[study] {arch} {variant} seed {seed}: macro-F1 {record['test_macro_f1']:.4f}, "
                  f"acc {record['test_accuracy']:.4f}, {record['epochs_run']} epochs, train "
                  f"{record['train_seconds']:.0f} s, run {record['run_wall_seconds']:.0f} s on "
                  f"{record['worker']['host']}:{record['worker']['pid']}, scratch agreement "
                  f"{record['scratch']['agreement']:.4f} max|dp| {record['scratch']['max_abs_prob_diff']:.1e}")

    def failed(job, exc: BaseException, tb: str) -> None:
        arch, variant, seed, budget = job
        failures.append({"arch": arch, "variant": variant, "seed": seed, "epochs": budget,
                         "error": f"{type(exc).__name__}: {exc}", "traceback": tb})
        bar.update(1)
        bar.write(f"[study] FAILED {arch} {variant} seed {seed} after {retries + 1} attempts: "
                  f"{type(exc).__name__}: {exc}")

    args = (None if paths == DEFAULT_PATHS else str(paths.keras_runs), data_dir, uri)
    t0 = time.time()
    if sequential:
        for job in todo:
            for attempt in range(retries + 1):
                try:
                    finished(job, train_task(*job, *args))
                    break
                except Exception as exc:  # noqa: BLE001 -- reported per run, the study goes on
                    if attempt == retries:
                        failed(job, exc, traceback.format_exc())
    else:
        from distributed import as_completed
        with dask_client(scheduler, workers, retries) as client:
            info = client.scheduler_info(n_workers=-1)["workers"]
            # As many runs in flight as the cluster has threads, the next one submitted when one ends:
            # Dask hands a lone task to a worker at once, even a busy one (only large groups of tasks
            # wait on the scheduler), so submitting all would queue runs behind busy workers.
            slots = max(1, sum(w["nthreads"] for w in info.values()))
            bar.write(f"[study] {len(todo)} tasks on {len(info)} Dask workers, {slots} at a time "
                      f"({client.scheduler.address})")
            task, queue, futures = shipped_task(), iter(todo), {}

            def submit(job) -> None:
                key = f"study-{job[0]}-{job[1]}-seed{job[2]}-{uuid.uuid4().hex[:8]}"
                future = client.submit(task, *job, *args, True, retries=retries, pure=False, key=key)
                futures[future] = job
                running.add(future)

            running = as_completed()
            for job in itertools.islice(queue, slots):
                submit(job)
            for future in running:
                job = futures.pop(future)
                if future.status == "finished":
                    finished(job, future.result())
                else:
                    exc = future.exception()
                    failed(job, exc, "".join(traceback.format_exception(exc, exc, future.traceback())))
                future.release()
                following = next(queue, None)
                if following is not None:
                    submit(following)
    bar.close()
    print(f"[study] {len(todo) - len(failures)} of {len(todo)} runs finished in {time.time() - t0:.0f} s wall"
          + (f"; {len(failures)} failed: " + ", ".join(f"{f['arch']} {f['variant']} seed {f['seed']}"
                                                        for f in failures) if failures else ""), flush=True)
    return failures


# --------------------------------------------------------------------------- the report
def load_results(paths: StudyPaths = DEFAULT_PATHS) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(paths.results.glob("*/*.json")):
        r = json.loads(path.read_text())
        out.setdefault(r["arch"], {}).setdefault(r["variant"], []).append(r)
    for variants in out.values():
        for runs in variants.values():
            runs.sort(key=lambda r: r["seed"])
    return out


def welch(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value, or None when either side has fewer than 2 runs."""
    from scipy import stats
    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def fmt_ms(values: list[float], digits: int = 4) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def curves_figure(arch: str, factor: str, title: str, levels, runs_by_variant, path: Path) -> None:
    """Train and validation loss per epoch: mean over the seeds that reached the epoch, min-max band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, name in ((axes[0], "loss", "training loss"), (axes[1], "val_loss", "validation loss")):
        for i, (level, variant) in enumerate(levels):
            runs = runs_by_variant.get(variant, [])
            if not runs:
                continue
            curves = [r["history"][key] for r in runs]
            length = max(len(c) for c in curves)
            mean, lo, hi = [], [], []
            for e in range(length):
                vals = [c[e] for c in curves if len(c) > e]
                mean.append(np.mean(vals)), lo.append(np.min(vals)), hi.append(np.max(vals))
            epochs = np.arange(1, length + 1)
            color = f"C{i}"
            ax.plot(epochs, mean, color=color, label=f"{level} (n={len(runs)})")
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.18, linewidth=0)
        ax.set_title(name), ax.set_xlabel("epoch"), ax.grid(alpha=0.3)
    axes[0].set_ylabel("sparse categorical cross-entropy")
    axes[1].legend(title=title, fontsize=8)
    fig.suptitle(f"{ARCH_TITLES[arch]}: {title} — mean over seeds, band = min–max "
                 "(after early stopping, over the seeds still training)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def factor_conclusion(levels, runs_by_variant, alpha: float) -> tuple[str, dict]:
    """Which level leads, and which differences from it exceed the seed-to-seed spread (Welch, p < alpha)."""
    f1 = {level: [r["test_macro_f1"] for r in runs_by_variant.get(v, [])] for level, v in levels}
    have = {lv: vals for lv, vals in f1.items() if vals}
    if len(have) < 2:
        return "Not enough finished variants to compare.", {}
    ranked = sorted(have, key=lambda lv: -np.mean(have[lv]))
    best, runner_up = ranked[0], ranked[1]
    beaten, tied, untestable = [], [], []
    for level in ranked[1:]:
        p = welch(have[best], have[level])
        gap = f"Δ = {np.mean(have[best]) - np.mean(have[level]):+.3f}"
        if p is None:
            untestable.append(f"{level} ({gap})")
        elif p < alpha:
            beaten.append(f"{level} ({gap}, p = {p:.2g})")
        else:
            tied.append(f"{level} ({gap}, p = {p:.2f})")
    p_lead = welch(have[best], have[runner_up])
    lead = np.mean(have[best]) - np.mean(have[runner_up])
    if p_lead is None:
        verdict, lead_real = (f"its lead over {runner_up} ({lead:+.3f}) cannot be tested: fewer than 2 runs "
                              "on one side"), None
    else:
        lead_real = bool(p_lead < alpha)
        verdict = (f"its lead over the runner-up {runner_up} ({lead:+.3f}, p = {p_lead:.2g}) "
                   + ("**exceeds** the seed-to-seed spread" if lead_real
                      else "does **not** exceed the seed-to-seed spread"))
    parts = [f"Best mean macro-F1: **{best}** ({fmt_ms(have[best])}, n = {len(have[best])}); {verdict}."]
    if beaten:
        parts.append("Differences from the best beyond the spread: " + "; ".join(beaten) + ".")
    if tied:
        parts.append("Within the spread: " + "; ".join(tied) + ".")
    if untestable:
        parts.append("Not testable (fewer than 2 runs): " + "; ".join(untestable) + ".")
    summary = {"best": best, "mean": float(np.mean(have[best])),
               "std": float(np.std(have[best], ddof=1)) if len(have[best]) > 1 else None,
               "n": len(have[best]), "runner_up": runner_up, "lead": float(lead), "p_lead": p_lead,
               "lead_exceeds_spread": lead_real}
    return " ".join(parts), summary


def served_models_section(summaries: dict) -> list[str]:
    """The models the service serves (``weights/<arch>/manifest.json``, issue 17) beside the study's
    best variant per model: the study fixes one protocol, the served models are what came after it."""
    rows = []
    for arch in ARCHS:
        manifest = ROOT / "weights" / arch / "manifest.json"
        if not manifest.is_file():
            continue
        m = json.loads(manifest.read_text())
        test = m["metrics"]["test"]
        best = max((sm["mean"] for (a, _), sm in summaries.items() if a == arch and sm), default=None)
        rows.append(f"| {arch} | `{m['config_name']}` seed {m['seed']} | {m['params']:,} | "
                    f"{test['keras']['macro_f1']:.4f} | {test['scratch']['macro_f1']:.4f} | {test['agreement']:.4f} | "
                    f"{f'{best:.4f}' if best is not None else '–'} |")
    if not rows:
        return []
    return ["## The served models", "",
            "What `weights/` serves now, read from each `manifest.json` (recipes in `reports/models_v2.md`), beside "
            "the best variant's mean test macro-F1 in this study:", "",
            "| model | config | params | test macro-F1 (keras) | test macro-F1 (scratch) | agreement | study's best mean |",
            "|---|---|---:|---:|---:|---:|---:|", *rows, ""]


def write_report(alpha: float = 0.05, seeds_override=None, paths: StudyPaths = DEFAULT_PATHS) -> dict:
    results = load_results(paths)
    lines = ["# Hyper-parameter study: depth, width, kernels, pooling and direction",
             "",
             f"Generated by `scripts/study.py --report-only` from the per-run JSON files in `{shown(paths.results)}/` "
             "(issue 6). Every number below is computed from those files; nothing is typed in by hand "
             "except the reference report's single-run numbers.",
             ""]
    total_runs = sum(len(rs) for v in results.values() for rs in v.values())
    total_train = sum(r["train_seconds"] for v in results.values() for rs in v.values() for r in rs)
    total_wall = sum(r.get("run_wall_seconds", r["train_seconds"]) for v in results.values()
                     for rs in v.values() for r in rs)
    lines += ["## Method", "",
              f"- Keras, Adam (learning rate 1e-3), sparse categorical cross-entropy, early stopping on the "
              f"validation loss with the best weights restored. Fixed budgets: CNN {CNN_TRAINING['epochs']} "
              f"epochs, batch {CNN_TRAINING['batch_size']}, patience {CNN_TRAINING['patience']}, no data "
              f"augmentation (chosen for a shared 2-core CPU: {CNN_EPOCH_TIMING}); text {TEXT_TRAINING['epochs']} epochs, batch "
              f"{TEXT_TRAINING['batch_size']}, patience {TEXT_TRAINING['patience']}.",
              "- The same splits for every run: CIFAR-10 train 40,000 / validation 10,000 (stratified, split "
              "seed 1234) / test 10,000 from the JPEG copy in `DATA_DIR` (not the original pixels, so numbers "
              "are comparable to, not identical with, the reference report's); NusaX-Sentiment (Indonesian) "
              "train 500 / validation 100 / test 400. The seed changes weight initialisation, shuffling and "
              "dropout only.",
              "- CNN variants: Conv2D(ReLU, same padding) + 2×2 pooling per layer → Flatten → Dense(128, ReLU) → "
              "Dropout(0.5) → Dense(10, softmax). The baseline is 2 conv layers [32, 64], 3×3, max pooling; "
              "3 and 4 layers continue the doubling ([32, 64, 128], [32, 64, 128, 256]), 1 layer is [32].",
              "- Text variants (SimpleRNN and LSTM alike): TextVectorization (4,000 tokens max, 64 ids) → "
              "Embedding(64, mask_zero) → recurrent layer(s), the last one returning its final state → "
              "Dropout(0.5) → Dense(3, softmax); stacked layers return sequences with Dropout(0.5) between "
              "them. The baseline is one bidirectional layer of 64 units per direction; "
              "\"bidirectional (128 units)\" is the same model as \"128 units\" and is trained once.",
              "- Test macro-F1 and accuracy are the Keras model's on the test split. Every model is also "
              "loaded into the scratch NumPy engine (`scratch_models.from_keras`) and run on the same test "
              "inputs: agreement of the predicted classes and max |Δp| over all class probabilities.",
              f"- **Rule for \"exceeds the seed-to-seed spread\"**: a two-sided Welch t-test between the best "
              f"variant of a factor and each other variant, p < {alpha}. With 2 seeds per CNN variant the "
              "test has little power: only large, consistent gaps pass it.",
              "- Training times are wall-clock on a 2-core machine shared with other jobs (a long CNN "
              "training ran at the same time): compare them within a table, roughly.",
              f"- Runs finished: {total_runs}; total training time {total_train / 3600:.2f} h, total wall "
              f"time including the scratch-engine check {total_wall / 3600:.2f} h.",
              ""]
    summaries: dict = {}
    missing_lines = []
    head, lines = lines, []
    for arch in ARCHS:
        spec = STUDY[arch]
        runs_by_variant = results.get(arch, {})
        planned = len(seeds_override) if seeds_override is not None else DEFAULT_SEEDS[arch]
        n_done = sum(len(v) for v in runs_by_variant.values())
        lines += [f"## {ARCH_TITLES[arch]}", "",
                  f"{n_done} of {planned * len(spec['variants'])} planned runs finished "
                  f"({len(spec['variants'])} distinct variants × {planned} seeds)."]
        if runs_by_variant:
            budgets = sorted({r["epoch_budget"] for rs in runs_by_variant.values() for r in rs})
            agree = [r["scratch"]["agreement"] for rs in runs_by_variant.values() for r in rs]
            dp = [r["scratch"]["max_abs_prob_diff"] for rs in runs_by_variant.values() for r in rs]
            lines += [f"Epoch budget(s) found: {budgets}. Scratch engine vs Keras over all {len(agree)} runs: "
                      f"agreement min {min(agree):.4f}, max |Δp| at most {max(dp):.1e}."]
        for variant in spec["variants"]:
            n = len(runs_by_variant.get(variant, []))
            if n < planned:
                missing_lines.append(f"- {arch} `{variant}`: {n} of {planned} runs"
                                     + (" (used by: " + ", ".join(f"{f[1]} {lv}" for f in spec["factors"]
                                                                  for lv, v in f[2] if v == variant) + ")"))
        lines.append("")
        for key, title, levels in spec["factors"]:
            lines += [f"### {title}", "",
                      "| variant | n | test macro-F1 (mean ± std) | test accuracy | reference macro-F1 (1 run) "
                      "| params | training time (s) | epochs run (best) | lowest val loss | scratch agreement / max abs Δp |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for level, variant in levels:
                rs = runs_by_variant.get(variant, [])
                ref = REFERENCE[arch][key].get(level)
                if not rs:
                    lines.append(f"| {level} | 0 | not run yet | – | {f'{ref:.4f}' if ref is not None else '–'} "
                                 "| – | – | – | – | – |")
                    continue
                lines.append(
                    f"| {level} | {len(rs)} | {fmt_ms([r['test_macro_f1'] for r in rs])} | "
                    f"{fmt_ms([r['test_accuracy'] for r in rs])} | {f'{ref:.4f}' if ref is not None else '–'} | "
                    f"{rs[0]['params']:,} | {np.mean([r['train_seconds'] for r in rs]):.0f} | "
                    f"{np.mean([r['epochs_run'] for r in rs]):.1f} ({np.mean([r['best_epoch'] for r in rs]):.1f}) | "
                    f"{fmt_ms([min(r['history']['val_loss']) for r in rs], 3)} | "
                    f"{min(r['scratch']['agreement'] for r in rs):.4f} / "
                    f"{max(r['scratch']['max_abs_prob_diff'] for r in rs):.1e} |")
            fig = paths.figures / f"study_{arch}_{key}.png"
            if any(runs_by_variant.get(v) for _, v in levels):
                curves_figure(arch, key, title, levels, runs_by_variant, fig)
                lines += ["", f"![{arch} {title}: loss per epoch]({os.path.relpath(fig, paths.report.parent)})"]
            text, summary = factor_conclusion(levels, runs_by_variant, alpha)
            summaries[(arch, title)] = summary
            lines += ["", f"**Conclusion.** {text}", ""]
    lines += ["## Variants with fewer runs than planned", ""]
    lines += missing_lines or ["None: every planned run finished."]
    if missing_lines:
        lines += ["", "Resume with `nohup env DATA_DIR=/work/shared/data .venv/bin/python scripts/study.py "
                      ">> runs/logs/study.log 2>&1 &` (finished runs are skipped), then "
                      "`scripts/study.py --report-only`."]
    lines.append("")
    overview = ["## Summary: the best variant per factor", "",
                "| model | factor | best (mean ± std, n) | runner-up | lead | Welch p | lead exceeds the spread? |",
                "|---|---|---|---|---:|---:|---|"]
    for (arch, title), sm in summaries.items():
        if not sm:
            overview.append(f"| {arch} | {title} | not enough runs | – | – | – | – |")
            continue
        std = f" ± {sm['std']:.4f}" if sm["std"] is not None else ""
        answer = {True: "yes", False: "no", None: "not testable"}[sm["lead_exceeds_spread"]]
        p_text = f"{sm['p_lead']:.2g}" if sm["p_lead"] is not None else "–"
        overview.append(f"| {arch} | {title} | {sm['best']}: {sm['mean']:.4f}{std} (n={sm['n']}) | "
                        f"{sm['runner_up']} | {sm['lead']:+.4f} | {p_text} | {answer} |")
    lines = head + overview + [""] + served_models_section(summaries) + lines
    atomic_write_bytes(paths.report, "\n".join(lines).encode("utf-8"))
    print(f"[study] wrote {shown(paths.report)} ({total_runs} runs)", flush=True)
    return summaries


def parse_seeds(text: str | None) -> list[int] | None:
    """``"5"`` -> seeds 0..4; ``"0,3,7"`` -> exactly those."""
    if text is None:
        return None
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    return list(range(int(text)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="one architecture's study (rnn, lstm or cnn), or a comma list (rnn,lstm: the "
                                  "text part)")
    p.add_argument("--variants", help="comma list of variant names (e.g. base,units32); default: all")
    p.add_argument("--seeds", help="N (seeds 0..N-1) or a comma list; default 5 per text arch, 2 for the CNN")
    p.add_argument("--epochs", type=int, help="override the epoch budget (default: CNN 10, text 40)")
    p.add_argument("--max-runs", type=int, help="stop after N new runs")
    p.add_argument("--out", type=Path, help="keep records, Keras runs, report and figures in DIR "
                                            "(default: reports/runs, runs/study, reports/study.md, reports/figures)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786); "
                                       "default: a local cluster")
    p.add_argument("--workers", type=int, help="local cluster size (default: one worker per core)")
    p.add_argument("--retries", type=int, default=2, help="retries of a run that fails or loses its worker")
    p.add_argument("--sequential", action="store_true", help="no Dask: run the runs one after another here")
    p.add_argument("--report-only", action="store_true", help="only write the report and the figures")
    args = p.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    paths = StudyPaths.under(args.out)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    archs = [a.strip() for a in args.only.split(",") if a.strip()] if args.only else list(ARCHS)
    if set(archs) - set(ARCHS):
        p.error(f"--only: expected architectures from {list(ARCHS)}, received {args.only!r}")
    if variants:
        unknown = sorted(set(variants) - {v for a in archs for v in STUDY[a]["variants"]})
        if unknown:
            p.error(f"--variants: unknown {unknown}; expected names from "
                    f"{sorted({v for a in archs for v in STUDY[a]['variants']})}")
    failures = []
    if not args.report_only:
        failures = run_study(archs, seeds, args.epochs, args.max_runs, variants, paths, args.scheduler,
                             args.workers, args.retries, args.sequential)
    write_report(seeds_override=seeds if args.seeds else None, paths=paths)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
