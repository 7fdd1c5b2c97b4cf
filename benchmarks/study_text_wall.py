#!/usr/bin/env python
"""Issue 20's figure: the wall time of the study's text part (SimpleRNN and LSTM, 6 variants each,
40-epoch budget with early stopping) on the default local Dask cluster against the sequential run,
measured in the same slot, and a check that the records of the two sides are bit-identical.

    DATA_DIR=../shared/data python benchmarks/study_text_wall.py --out runs/bench/text --seeds 1   # 2 x 12 runs
    DATA_DIR=../shared/data python benchmarks/study_text_wall.py --out runs/bench/text --seeds 1 --rounds 2
    DATA_DIR=../shared/data python benchmarks/study_text_wall.py --out runs/bench/text-dask --modes dask  # 60 runs
    python benchmarks/study_text_wall.py --out runs/bench/text --summary-only

Each round runs ``scripts/study.py --only rnn,lstm`` once per side (``--modes``, default dask then
sequential; even rounds reverse the order) into a fresh folder ``OUT/round<N>-<mode>`` (records, Keras
runs, its own MLflow store). The study's progress goes to the terminal and to the folder's
``study.log``; each session is appended to its ``sessions.json`` (wall and CPU time, load average).
Interrupted, the same command resumes: finished sides are skipped, an unfinished one continues from
its records (its wall time is then a sum over sessions, and the summary says so). Afterwards each
record is compared exactly (test macro-F1, accuracy, epochs, every per-epoch loss and accuracy) with
the same round's sequential record and with the committed one in ``reports/runs/``; ``OUT/benchmark.json``
holds everything, and a Markdown summary goes to stdout.

The committed records were made sequentially on 2026-11-27 on the shared 2-core host while a CNN
trained beside them, with library versions that were not recorded: their run times are a reference,
not a same-slot figure, and today's runs (sequential too) differ from them in the low bits.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from scratch_models.io_utils import atomic_write_json  # noqa: E402

COMMITTED = ROOT / "reports" / "runs"
TEXT_ARCHS = ("rnn", "lstm")
EXACT = ("test_macro_f1", "test_accuracy", "epochs_run", "best_epoch", "params")
EXACT_HISTORY = ("loss", "val_loss", "accuracy", "val_accuracy")
STUDY_WALL = re.compile(r"\[study\] (\d+) of (\d+) runs finished in (\d+) s wall")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def records(folder: Path) -> dict[tuple[str, str, int], dict]:
    found = {}
    for arch in TEXT_ARCHS:
        for path in sorted((folder / arch).glob("*-seed*.json")):
            r = json.loads(path.read_text())
            found[(r["arch"], r["variant"], r["seed"])] = r
    return found


def run_session(out: Path, seeds: str, variants: str | None, sequential: bool, workers: int | None) -> dict:
    """One session of ``scripts/study.py`` on the text part, its output teed to OUT/study.log."""
    cmd = [sys.executable, str(ROOT / "scripts" / "study.py"), "--only", ",".join(TEXT_ARCHS), "--seeds", seeds,
           "--out", str(out)]
    cmd += ["--variants", variants] if variants else []
    cmd += ["--sequential"] if sequential else []
    cmd += ["--workers", str(workers)] if workers else []
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", (out / "mlruns").as_uri())
    before = len(records(out / "runs"))
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, start, t0 = os.getloadavg(), utc_now(), time.monotonic()
    study_wall = None
    print(f"[bench] {start} {' '.join(cmd)}", flush=True)
    with open(out / "study.log", "a", encoding="utf-8") as log:
        log.write(f"\n[bench] session start {start}: {' '.join(cmd)}\n")
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                 bufsize=1)
        for line in child.stdout:
            log.write(line)
            log.flush()
            if line.startswith(("[study]", "[bench]", "[train] resuming")) or "Traceback" in line:
                print(line, end="", flush=True)
            match = STUDY_WALL.search(line)
            if match:
                study_wall = int(match.group(3))
        status = child.wait()
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    session = {"start_utc": start, "end_utc": utc_now(), "command": cmd, "exit_code": status,
               "mode": "sequential" if sequential else "dask", "command_wall_seconds": wall,
               "study_wall_seconds": study_wall,
               "cpu_seconds": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
               "records_before": before, "records_after": len(records(out / "runs")),
               "loadavg_start": load0, "loadavg_end": os.getloadavg(), "cores": os.cpu_count()}
    sessions_path = out / "sessions.json"
    sessions = json.loads(sessions_path.read_text()) if sessions_path.is_file() else []
    atomic_write_json(sessions_path, sessions + [session])
    print(f"[bench] session done: exit {status}, {wall:.0f} s command wall, study wall {study_wall} s, "
          f"{session['records_after'] - before} new records", flush=True)
    return session


def compare(new: dict, committed: dict) -> dict:
    """Which fields differ between a new record and the committed one (exact comparison)."""
    differing = [k for k in EXACT if new[k] != committed[k]]
    differing += [f"history.{k}" for k in EXACT_HISTORY if new["history"].get(k) != committed["history"].get(k)]
    shared = min(len(new["history"]["loss"]), len(committed["history"]["loss"]))
    same_prefix = 0
    while same_prefix < shared and all(new["history"][k][same_prefix] == committed["history"][k][same_prefix]
                                       for k in EXACT_HISTORY):
        same_prefix += 1
    return {"identical": not differing, "differing": differing, "identical_epochs": same_prefix}


def side_summary(folder: Path, reference: dict) -> dict:
    """One session folder's wall and CPU time, and each record compared with ``reference`` (same key)."""
    new = records(folder / "runs")
    sessions = json.loads((folder / "sessions.json").read_text()) if (folder / "sessions.json").is_file() else []
    rows = []
    for key, rec in sorted(new.items(), key=lambda kv: (TEXT_ARCHS.index(kv[0][0]), kv[0][2], kv[0][1])):
        ref = reference.get(key)
        row = {"arch": key[0], "variant": key[1], "seed": key[2], "test_macro_f1": rec["test_macro_f1"],
               "epochs_run": rec["epochs_run"], "run_wall_seconds": rec["run_wall_seconds"],
               "train_seconds": rec["train_seconds"], "worker": rec.get("worker"), "reference": None}
        if ref is not None and ref["epoch_budget"] == rec["epoch_budget"]:
            row["reference"] = {"test_macro_f1": ref["test_macro_f1"], "run_wall_seconds": ref["run_wall_seconds"],
                                **compare(rec, ref)}
        rows.append(row)
    compared = [r for r in rows if r["reference"]]
    return {"folder": str(folder), "runs": len(rows), "sessions": sessions,
            "complete_in_one_session": len(sessions) == 1 and sessions[0]["records_before"] == 0,
            "command_wall_seconds": sum(s["command_wall_seconds"] for s in sessions),
            "study_wall_seconds": sum(s["study_wall_seconds"] or 0 for s in sessions),
            "cpu_seconds": sum(s["cpu_seconds"] for s in sessions),
            "sum_run_wall_seconds": sum(r["run_wall_seconds"] for r in rows),
            "compared": len(compared), "identical": sum(r["reference"]["identical"] for r in compared),
            "same_test_macro_f1": sum(r["reference"]["test_macro_f1"] == r["test_macro_f1"] for r in compared),
            "rows": rows}


def print_side(title: str, side: dict, reference_name: str) -> None:
    print(f"\n### {title}: {side['runs']} runs in {side['folder']}\n")
    for x in side["sessions"]:
        print(f"- session {x['start_utc']} -> {x['end_utc']}: exit {x['exit_code']}, command wall "
              f"{x['command_wall_seconds']:.0f} s, study wall {x['study_wall_seconds']} s, CPU {x['cpu_seconds']:.0f} s, "
              f"records {x['records_before']} -> {x['records_after']}, load average "
              f"{x['loadavg_start'][0]:.2f} -> {x['loadavg_end'][0]:.2f} ({x['cores']} cores)")
    if not side["complete_in_one_session"]:
        print("- NOT one uninterrupted session from an empty folder: its wall time covers only what each session did")
    print(f"- against {reference_name}: {side['identical']} of {side['compared']} records bit-identical (test metrics, "
          f"epochs, every per-epoch loss and accuracy); same test macro-F1 in {side['same_test_macro_f1']}\n")
    print(f"| arch | variant | seed | macro-F1 | {reference_name} | identical | same epochs | run wall (s) | "
          f"{reference_name} run wall (s) |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|")
    for r in side["rows"]:
        c = r["reference"]
        if c is None:
            print(f"| {r['arch']} | {r['variant']} | {r['seed']} | {r['test_macro_f1']:.4f} | – | no record with this "
                  f"budget | – | {r['run_wall_seconds']:.0f} | – |")
            continue
        same = "yes" if c["identical"] else "no: " + ", ".join(c["differing"])
        print(f"| {r['arch']} | {r['variant']} | {r['seed']} | {r['test_macro_f1']:.4f} | {c['test_macro_f1']:.4f} | "
              f"{same} | {c['identical_epochs']}/{r['epochs_run']} | {r['run_wall_seconds']:.0f} | "
              f"{c['run_wall_seconds']:.0f} |")


def spread(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{statistics.median(values):.0f} s ({min(values):.0f}-{max(values):.0f}, n={len(values)})"


def summary(out: Path, rounds: int, modes: list[str]) -> dict:
    """Each round's sides against each other (same slot) and against the committed records."""
    committed = records(COMMITTED)
    rounds = max([rounds] + [int(m.group(1)) for f in out.glob("round*-*") if (m := re.match(r"round(\d+)-", f.name))])
    result = {"out": str(out), "rounds": []}
    for n in range(1, rounds + 1):
        folders = {m: round_folder(out, n, m) for m in modes if (round_folder(out, n, m) / "sessions.json").is_file()}
        sides = {m: side_summary(f, committed) for m, f in folders.items()}
        entry = {"round": n, "sides": sides}
        if {"dask", "sequential"} <= set(folders):
            entry["dask_vs_sequential"] = side_summary(folders["dask"], records(folders["sequential"] / "runs"))
        result["rounds"].append(entry)
    walls = {m: [e["sides"][m]["study_wall_seconds"] for e in result["rounds"]
                 if m in e["sides"] and e["sides"][m]["complete_in_one_session"]] for m in modes}
    result["study_wall_seconds"] = walls
    atomic_write_json(out / "benchmark.json", result)
    print(f"\n## The study's text part, {out}\n")
    for e in result["rounds"]:
        for m, side in e["sides"].items():
            print_side(f"round {e['round']}, {m}", side, "committed")
        if "dask_vs_sequential" in e:
            print_side(f"round {e['round']}, dask against this round's sequential run", e["dask_vs_sequential"],
                       "sequential")
    print("\n| mode | study wall: median (range, rounds) |\n|---|---:|")
    for m in modes:
        print(f"| {m} | {spread(walls[m])} |")
    if all(walls.get(m) for m in ("dask", "sequential")):
        print(f"\nsequential / dask (medians): {statistics.median(walls['sequential']) / statistics.median(walls['dask']):.2f}")
    return result


def round_folder(out: Path, n: int, mode: str) -> Path:
    return out / f"round{n}-{mode}"


def complete(folder: Path) -> bool:
    """The folder's last session finished with exit code 0 (every planned run has its record)."""
    path = folder / "sessions.json"
    return path.is_file() and json.loads(path.read_text())[-1]["exit_code"] == 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="a fresh folder (rerun the same command to resume)")
    p.add_argument("--seeds", default="5", help="N (seeds 0..N-1) or a comma list; the committed study has 5")
    p.add_argument("--variants", help="comma list (default: all 6 per arch)")
    p.add_argument("--modes", default="dask,sequential",
                   help="sides to measure, in round 1's order; later rounds alternate it (default dask,sequential)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", type=int, help="local cluster size (default: one per core)")
    p.add_argument("--summary-only", action="store_true", help="only compare and summarise OUT")
    args = p.parse_args(argv)
    out = args.out.resolve()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - {"dask", "sequential"}:
        p.error(f"--modes: expected dask and/or sequential, received {args.modes!r}")
    status = 0
    if not args.summary_only:
        if not os.environ.get("DATA_DIR"):
            p.error("set DATA_DIR to the data folder (e.g. DATA_DIR=../shared/data)")
        for n in range(1, args.rounds + 1):
            for mode in (modes if n % 2 else modes[::-1]):
                folder = round_folder(out, n, mode)
                if complete(folder):
                    print(f"[bench] round {n} {mode}: already complete in {folder}", flush=True)
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                status |= run_session(folder, args.seeds, args.variants, mode == "sequential", args.workers)["exit_code"]
    summary(out, args.rounds, modes)
    return status


if __name__ == "__main__":
    sys.exit(main())
