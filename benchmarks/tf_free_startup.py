"""TF-free install vs full install: site-packages size, start-up to ready and RSS of `python -m service` on the
committed models (alternating rounds, medians and ranges), and what the TF-free service says about keras.

    python benchmarks/tf_free_startup.py --tf-free /tmp/tffree/venv --full /tmp/tffull/venv --rounds 3
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def site_packages_mb(venv: Path) -> float:
    (sp,) = list(venv.glob("lib/python3*/site-packages"))
    out = subprocess.run(["du", "-sm", str(sp)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def one_run(python: Path, weights: Path) -> dict:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "PYTHONPATH")}
    env.update({"PORT": str(port), "MODEL_REPOSITORY": str(weights), "LOG_LEVEL": "WARNING", "TF_CPP_MIN_LOG_LEVEL": "2"})
    t0 = time.monotonic()
    proc = subprocess.Popen([str(python), "-m", "service"], cwd="/tmp", env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{python} -m service exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() - t0 > 300:
                raise RuntimeError("not ready after 300 s")
            time.sleep(0.05)
        ready_s = time.monotonic() - t0
        r = httpx.post(base + "/predict/lstm?backend=scratch", json={"texts": ["Makanannya enak sekali"]}, timeout=30)
        r.raise_for_status()
        models = httpx.get(base + "/models", timeout=10).json()["models"]
        rss, hwm = rss_mb(proc.pid)
        return {"ready_s": ready_s, "rss_mb": rss, "peak_rss_mb": hwm,
                "keras": models["cnn"]["backends"]["keras"]["status"],
                "keras_reason": models["cnn"]["backends"]["keras"]["reason"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tf-free", type=Path, required=True, help="venv made with `pip install .`")
    p.add_argument("--full", type=Path, required=True, help="venv made with `pip install '.[keras]'`")
    p.add_argument("--weights", type=Path, default=ROOT / "weights")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "tf_free_install.json")
    args = p.parse_args()
    venvs = {"tf-free": args.tf_free, "full": args.full}
    runs: dict[str, list[dict]] = {k: [] for k in venvs}
    for round_ in range(args.rounds):
        for label, venv in venvs.items():
            runs[label].append(one_run(venv / "bin" / "python", args.weights))
            print(f"round {round_ + 1} {label}: {runs[label][-1]}", file=sys.stderr)
    result = {label: {"site_packages_mb": site_packages_mb(venv),
                      "ready_s": summary([r["ready_s"] for r in runs[label]]),
                      "rss_mb": summary([r["rss_mb"] for r in runs[label]]),
                      "peak_rss_mb": summary([r["peak_rss_mb"] for r in runs[label]]),
                      "keras_backend": runs[label][0]["keras"], "keras_reason": runs[label][0]["keras_reason"]}
              for label, venv in venvs.items()}
    result["setup"] = {"rounds": args.rounds, "order": "alternating", "models": "weights/ (cnn, rnn, lstm)",
                       "rss": "VmRSS after /ready and one /predict; peak = VmHWM",
                       "machine": "2 cores, shared with other helpers' jobs (noisy)"}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
