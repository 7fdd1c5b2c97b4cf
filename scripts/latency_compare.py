#!/usr/bin/env python
"""Scratch-backend latency of two models in one process, alternating rounds (issue 17's "batch-1
latency no more than 1.5x today's").

    python scripts/latency_compare.py --before weights/cnn --after cnn:v2 cnn:v3 --batches 1 --rounds 15
    python scripts/latency_compare.py --before weights/cnn --after runs/cnn/v3-seed0/model.keras

``--before`` / ``--after``: scratch artifact folders (``weights/<arch>``), ``.keras`` files, or
``arch:config`` (the config's untrained network: latency does not depend on the weights' values).
BLAS runs on one thread, as the service does by default (``BLAS_THREADS=1``). Each round times every
(model, batch) with ``--calls`` calls, the order reversing between rounds. On a shared machine the
median of a round mostly measures the other jobs, so each round keeps its fastest call (and its
median, recorded too); the ratio (after / before) is the median over rounds of the per-round ratio of
fastest calls, min-max beside it. Writes JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

import scratch_models  # noqa: E402
import scratch_models.allocator  # noqa: E402
from scratch_models.io_utils import atomic_write_json  # noqa: E402


def load(spec: str):
    if ":" in spec and not Path(spec).exists():
        import keras

        from configs import get_config
        from train import build_keras_model
        arch, name = spec.split(":")
        keras.utils.set_random_seed(0)
        model = build_keras_model(get_config(arch, name)["layers"], (32, 32, 3))
        return scratch_models.from_keras(model), {"model": spec, "params": int(model.count_params())}
    path = Path(spec)
    model = scratch_models.load_keras(str(path)) if path.suffix == ".keras" else scratch_models.load(str(path))
    return model, {"model": spec}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True)
    p.add_argument("--after", nargs="+", required=True)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--text", action="store_true",
                   help="text models: full-length rows of 64 random token ids in [2, 1200) (no padding: the worst case)")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "latency_cnn_v2.json")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    scratch_models.allocator.keep_freed_memory()
    models = {"before": load(args.before), **{spec: load(spec) for spec in args.after}}
    rng = np.random.default_rng(0)
    xs = {b: (rng.integers(2, 1200, (b, 64)).astype(np.int32) if args.text else rng.random((b, 32, 32, 3), dtype=np.float32))
          for b in args.batches}
    for m, _ in models.values():  # warm-up
        for b in args.batches:
            m.predict(xs[b])
    per_round: dict = {b: {name: {"fastest": [], "median": []} for name in models} for b in args.batches}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for b in args.batches:
            for name in order:
                model = models[name][0]
                times = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    model.predict(xs[b])
                    times.append(time.perf_counter() - t0)
                per_round[b][name]["fastest"].append(float(np.min(times)) * 1e3)
                per_round[b][name]["median"].append(float(np.median(times)) * 1e3)
    result = {"models": {name: info for name, (_, info) in models.items()}, "rounds": args.rounds,
              "calls": args.calls, "blas_threads": 1, "load_average_at_end": os.getloadavg(), "batches": {}}
    for b in args.batches:
        base = np.asarray(per_round[b]["before"]["fastest"])
        rows = {}
        for name in models:
            fastest = np.asarray(per_round[b][name]["fastest"])
            ratios = fastest / base
            rows[name] = {"fastest_ms_median": float(np.median(fastest)),
                          "round_median_ms_median": float(np.median(per_round[b][name]["median"])),
                          "ratio_median": float(np.median(ratios)), "ratio_min": float(ratios.min()),
                          "ratio_max": float(ratios.max()), "per_round_ms": per_round[b][name]}
            print(f"batch {b} {name}: fastest {rows[name]['fastest_ms_median']:.2f} ms (round medians "
                  f"{rows[name]['round_median_ms_median']:.2f} ms), ratio {np.median(ratios):.2f} "
                  f"({ratios.min():.2f} - {ratios.max():.2f})", flush=True)
        result["batches"][str(b)] = rows
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
