"""Open Inference Protocol v2 vs /predict: requests/s and p50/p99 of single-image cnn requests at concurrency 32,
every variant against the same server in one run, alternating round by round.

    .venv/bin/python benchmarks/bench_protocols.py                       # weights/, 3 rounds x 1,500 requests
    .venv/bin/python benchmarks/bench_protocols.py --rounds 5 --requests 2000 --backend keras

Variants (one image per request; the same 64 random 32x32 images in each):

* ``predict_png``    -- ``POST /predict/cnn``, ``{"images": ["<base64 PNG>"]}`` (what load_test.py sends);
* ``predict_nested`` -- ``POST /predict/cnn``, ``{"images": [32x32x3 nested list]}``;
* ``v2_binary``      -- ``POST /v2/models/cnn/infer``, FP32 [1, 32, 32, 3] as Triton binary tensor data and binary
  outputs (what tritonclient sends by default);
* ``v2_json``        -- the same tensor as flat JSON ``data``, JSON outputs.

The nested/JSON pair carries the very same float32 values (the PNGs' pixels / 255). Starts ``python -m
service`` (load_test.py's Server) and reports the server's RSS after the runs. Writes
``reports/protocols_bench.md`` and ``.json`` atomically. The client shares the 2 cores with the server.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_test import Server, machine, percentile, proc_cpu_seconds, proc_kb, write_atomic  # noqa: E402

VARIANTS = ("predict_png", "predict_nested", "v2_binary", "v2_json")


def requests_for(variant: str, backend: str, n: int = 64) -> list[tuple[str, bytes, dict]]:
    """(url, body, headers) per request of ``variant``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        floats = pixels.astype(np.float32) / 255.0
        if variant == "predict_png":
            buf = io.BytesIO()
            Image.fromarray(pixels, "RGB").save(buf, format="PNG")
            body = json.dumps({"images": [base64.b64encode(buf.getvalue()).decode()]}).encode()
            out.append((f"/predict/cnn?backend={backend}", body, {"Content-Type": "application/json"}))
        elif variant == "predict_nested":
            body = json.dumps({"images": [floats.tolist()]}).encode()
            out.append((f"/predict/cnn?backend={backend}", body, {"Content-Type": "application/json"}))
        elif variant == "v2_json":
            body = json.dumps({"parameters": {"backend": backend},
                               "inputs": [{"name": "images", "shape": [1, 32, 32, 3], "datatype": "FP32",
                                           "data": floats.ravel().tolist()}]}).encode()
            out.append(("/v2/models/cnn/infer", body, {"Content-Type": "application/json"}))
        else:
            header = json.dumps({"parameters": {"backend": backend, "binary_data_output": True},
                                 "inputs": [{"name": "images", "shape": [1, 32, 32, 3], "datatype": "FP32",
                                             "parameters": {"binary_data_size": floats.nbytes}}]}).encode()
            out.append(("/v2/models/cnn/infer", header + floats.tobytes(),
                        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}))
    return out


async def run(base_url: str, reqs: list, total: int, concurrency: int, warmup: int, server_pid: int) -> dict:
    """``total`` requests from ``concurrency`` senders, one kept-alive client each (as load_test.py); also the
    server's CPU time per request (all its threads), which a busy host disturbs less than wall time."""
    latencies, batch_sizes, errors = [], [], Counter()
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60))
                   for _ in range(concurrency)]

        async def sender(client, indices, record: bool):
            for i in indices:
                url, body, headers = reqs[i % len(reqs)]
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if r.status_code != 200:
                    errors[f"HTTP {r.status_code}"] += 1
                    continue
                if record:
                    latencies.append(time.perf_counter() - t0)
                    batch_sizes.append(int(r.headers.get("x-batch-size", "0")))

        shared = iter(range(warmup))
        await asyncio.gather(*(sender(c, shared, False) for c in clients))
        shared = iter(range(total))
        cpu0, t0 = proc_cpu_seconds(server_pid), time.perf_counter()
        await asyncio.gather(*(sender(c, shared, True) for c in clients))
        elapsed, cpu1 = time.perf_counter() - t0, proc_cpu_seconds(server_pid)
    ms = sorted(x * 1000 for x in latencies)
    return {"ok": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(percentile(ms, 50), 2),
            "p99_ms": round(percentile(ms, 99), 2),
            "mean_batch_size": round(statistics.fmean(batch_sizes), 2) if batch_sizes else None,
            "server_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / max(len(latencies), 1), 2)
            if cpu0 is not None and cpu1 is not None else None}


def max_batch_peak(server, n: int = 256) -> float | None:
    """Peak RSS (VmHWM, MB) after one MAX_BATCH-sized request per model x backend: what a pod's limit must hold."""
    rng = np.random.default_rng(1)
    images = rng.random((n, 32, 32, 3)).round(4).tolist()
    texts = [f"makanannya enak sekali nomor {i}" for i in range(n)]
    with httpx.Client(base_url=server.base_url, timeout=300) as c:
        for backend in ("scratch", "keras"):
            for arch, body in (("cnn", {"images": images}), ("rnn", {"texts": texts}), ("lstm", {"texts": texts})):
                c.post(f"/predict/{arch}?backend={backend}", json=body)
    kb = proc_kb(server.proc.pid, "VmHWM")
    return round(kb / 1024, 1) if kb else None


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in ("rps", "p50_ms", "p99_ms", "mean_batch_size", "server_cpu_ms_per_request"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def markdown(report: dict) -> str:
    a, m = report["args"], report["machine"]
    lines = ["# Open Inference Protocol v2 vs /predict (cnn, one image per request)", "",
             f"`{report['command']}` — {report['date']}", "",
             f"* One server (`python -m service`, weights `{a['weights_dir']}`, backend `{a['backend']}`, dynamic "
             f"batching default), concurrency {a['concurrency']}, {a['requests']} requests per run after "
             f"{a['warmup']} warm-up, {a['rounds']} rounds; each round runs every variant once, in turn.",
             f"* Machine: {m['cores']} cores, {m['cpu']}, load average at start {m['load_average_at_start']} — "
             "shared with other jobs while this ran (noisy); the client runs on the same cores as the server.",
             f"* Server RSS after the runs: {report['server_rss_mb']} MB (peak VmHWM {report['server_peak_rss_mb']} MB); "
             f"peak after one 256-item request per model x backend: {report['server_peak_rss_after_max_batch_mb']} MB "
             "(what deploy/kubernetes' memory request and limit are set from).",
             "", "| variant | req/s median (min-max) | p50 ms median | p99 ms median (min-max) | mean batch | "
             "server CPU ms/request median (min-max) | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for v, s in report["summary"].items():
        lines.append(f"| `{v}` | {s['rps']['median']} ({s['rps']['min']}-{s['rps']['max']}) | {s['p50_ms']['median']} "
                     f"| {s['p99_ms']['median']} ({s['p99_ms']['min']}-{s['p99_ms']['max']}) "
                     f"| {s['mean_batch_size']['median']} | {s['server_cpu_ms_per_request']['median']} "
                     f"({s['server_cpu_ms_per_request']['min']}-{s['server_cpu_ms_per_request']['max']}) | {s['errors']} |")
    lines += ["", "Variants: " + "; ".join(f"`{v}`" for v in VARIANTS) + " (see the script's docstring).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", type=Path, default=ROOT / "weights")
    p.add_argument("--backend", default="scratch", choices=("scratch", "keras"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "protocols_bench")
    args = p.parse_args(argv)
    reqs = {v: requests_for(v, args.backend) for v in VARIANTS}
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as logs:
        server = Server(args.weights_dir, Path(logs), "bench-protocols")
        try:
            server.wait_loaded(300)
            for rnd in range(args.rounds):
                order = VARIANTS if rnd % 2 == 0 else VARIANTS[::-1]  # alternate the order too
                for v in order:
                    r = asyncio.run(run(server.base_url, reqs[v], args.requests, args.concurrency, args.warmup,
                                        server.proc.pid))
                    runs[v].append({"round": rnd, **r})
                    print(f"round {rnd} {v}: {r}", flush=True)
            rss, peak = server.rss_mb(), proc_kb(server.proc.pid, "VmHWM")
            peak_max_batch = max_batch_peak(server)
        finally:
            server.stop()
    report = {"command": "python benchmarks/bench_protocols.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "server_rss_mb": round(rss, 1) if rss else None,
              "server_peak_rss_mb": round(peak / 1024, 1) if peak else None,
              "server_peak_rss_after_max_batch_mb": peak_max_batch,
              "summary": {v: summary(runs[v]) for v in VARIANTS}, "runs": runs}
    write_atomic(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    write_atomic(args.out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
