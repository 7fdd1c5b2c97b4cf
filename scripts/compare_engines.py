#!/usr/bin/env python
"""Keras-trained vs scratch-trained: the same architecture, seed and initial weights, trained by each engine.

    python scripts/compare_engines.py --arch rnn lstm --seeds 0 1 2

Reads the cached runs of ``scripts/train.py`` (``runs/<arch>/<config>-seed<N>`` for Keras and
``...-scratch`` for the scratch engine; train them first with ``--engine keras|scratch``) and writes
``reports/engine_training.md`` and ``.json``: test macro-F1 of both, their difference, epochs and
seconds per epoch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from scratch_models.io_utils import atomic_write_bytes, atomic_write_json  # noqa: E402


def load_result(run_dir: Path) -> dict | None:
    path = run_dir / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def keras_run_for(arch: str, config_name: str, seed: int, scratch_config: dict, runs: Path,
                  variant: str = "", subset: int | None = None) -> dict | None:
    """The Keras run with the same config and seed: ``<config>-seed<N>``, or any cached run of that seed
    whose recorded config is identical (experiments are cached under their own names)."""
    for run_dir in [runs / arch / f"{config_name}-seed{seed}{variant}", *sorted((runs / arch).glob(f"*-seed{seed}{variant}"))]:
        r = load_result(run_dir)
        if r and r.get("engine", "keras") == "keras" and r.get("train_subset") == subset and r["config"] == scratch_config:
            return r
    return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["rnn", "lstm"])
    p.add_argument("--config", default="default")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variant", default="", help="run-name suffix of train.py options, e.g. -n10000-noaug")
    p.add_argument("--name", default="engine_training", help="report file name under reports/")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--out", type=Path, default=ROOT / "reports")
    args = p.parse_args(argv)
    rows = []
    for arch in args.arch:
        for seed in args.seeds:
            scratch = load_result(args.runs_dir / arch / f"{args.config}-seed{seed}-scratch{args.variant}")
            if scratch is None:
                print(f"[compare] {arch} seed {seed}: no scratch run (train.py --arch {arch} --engine scratch --seed {seed})")
                continue
            keras = keras_run_for(arch, args.config, seed, scratch["config"], args.runs_dir, args.variant,
                                  scratch.get("train_subset"))
            if keras is None:
                print(f"[compare] {arch} seed {seed}: no Keras run with the same config")
                continue
            per_epoch = {name: r["train_seconds"] / r["epochs_run"] for name, r in (("keras", keras), ("scratch", scratch))}
            control = load_result(args.runs_dir / arch / f"{args.config}-seed{seed}{args.variant}-noise{seed + 100}")
            rows.append({"arch": arch, "seed": seed,
                         "keras_macro_f1": keras["test_metrics_keras"]["macro_f1"],
                         "scratch_macro_f1": scratch["test_metrics_keras"]["macro_f1"],
                         "keras_noise_macro_f1": control["test_metrics_keras"]["macro_f1"] if control else None,
                         "keras_epochs": keras["epochs_run"], "scratch_epochs": scratch["epochs_run"],
                         "keras_s_per_epoch": per_epoch["keras"], "scratch_s_per_epoch": per_epoch["scratch"]})
    lines = [f"# Training with Keras vs with the scratch engine{' (' + args.variant.strip('-') + ')' if args.variant else ''}", "",
             "Same architecture (`scripts/configs.py`), seed and initial weights; Adam, early stopping on the validation "
             "loss restoring the best weights. Dropout masks come from each engine's own random generator, so the "
             "runs differ by that noise. Seconds per epoch were measured on a shared 2-core machine while other jobs "
             "ran (they compare loosely).", "",
             "The control column is Keras again, from the same initial weights, with the shuffling and dropout "
             "masks drawn from another seed (`train.py --noise-seed <seed+100>`): how far two runs that share "
             "their start drift apart on training noise alone, with no engine difference at all.", "",
             "| arch | seed | Keras test macro-F1 | scratch test macro-F1 | scratch - Keras | control: Keras, other noise | control - Keras | epochs (K / S) | s/epoch Keras | s/epoch scratch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v, sign="": "n/a" if v is None else f"{v:{sign}.4f}"
    for r in rows:
        ctrl = r["keras_noise_macro_f1"]
        lines.append(f"| {r['arch']} | {r['seed']} | {r['keras_macro_f1']:.4f} | {r['scratch_macro_f1']:.4f} | "
                     f"{r['scratch_macro_f1'] - r['keras_macro_f1']:+.4f} | {fmt(ctrl)} | "
                     f"{fmt(None if ctrl is None else ctrl - r['keras_macro_f1'], '+')} | {r['keras_epochs']} / {r['scratch_epochs']} | "
                     f"{r['keras_s_per_epoch']:.1f} | {r['scratch_s_per_epoch']:.1f} |")
    lines += ["", "| arch | mean Keras | mean scratch | difference of means | paired t-test p | mean \\|scratch - Keras\\| | mean \\|control - Keras\\| |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for arch in args.arch:
        sel = [r for r in rows if r["arch"] == arch]
        if sel:
            k = np.array([r["keras_macro_f1"] for r in sel])
            s = np.array([r["scratch_macro_f1"] for r in sel])
            ctrl = [r["keras_noise_macro_f1"] - r["keras_macro_f1"] for r in sel if r["keras_noise_macro_f1"] is not None]
            p = float(stats.ttest_rel(s, k).pvalue) if len(sel) > 2 else float("nan")
            summary[arch] = {"n": len(sel), "keras_mean": float(k.mean()), "scratch_mean": float(s.mean()),
                             "difference": float(s.mean() - k.mean()), "paired_t_p": p,
                             "mean_abs_engine_gap": float(np.abs(s - k).mean()),
                             "mean_abs_noise_gap": float(np.abs(ctrl).mean()) if ctrl else None, "n_controls": len(ctrl)}
            lines.append(f"| {arch} (n={len(sel)}) | {k.mean():.4f} | {s.mean():.4f} | {s.mean() - k.mean():+.4f} | {p:.2f} | "
                         f"{np.abs(s - k).mean():.4f} | {fmt(summary[arch]['mean_abs_noise_gap'])} (n={len(ctrl)}) |")
    atomic_write_bytes(args.out / f"{args.name}.md", ("\n".join(lines) + "\n").encode())
    atomic_write_json(args.out / f"{args.name}.json", {"rows": rows, "summary": summary})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
