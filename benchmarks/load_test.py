"""Service load test: requests/s, p50/p99 latency, errors and server memory under concurrent load.

    .venv/bin/python benchmarks/load_test.py                          # weights/, 2,000 requests per run
    .venv/bin/python benchmarks/load_test.py --requests 200 --weights-dir /tmp/tiny --label "tiny weights"

Starts ``python -m service`` on 127.0.0.1 (a free port) as a subprocess, waits for /ready, and sends bounded
runs of single-item ``POST /predict/{arch}?backend=...`` requests from an async httpx client at concurrency
1, 8 and 32 for every arch x backend that loaded (dynamic batching on, the default). Then a second server
with ``DYNAMIC_BATCHING=false`` gets the same runs at concurrency 32, for the batching on/off ratio. Last, a
server with ``WORKERS=2`` reports the memory (RSS and PSS) of each uvicorn worker process.

Writes ``reports/load_test.md`` and ``reports/load_test.json`` (atomically). Every run is bounded in count
(``--requests``) and time (``--max-seconds``); only 127.0.0.1 is contacted. The client runs on the same
cores as the server, so the figures are those of the pair on this machine (its load is in the report).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("cnn", "rnn", "lstm")
BACKENDS = ("scratch", "keras")
TEXTS = ["Makanannya enak dan pelayanannya ramah sekali", "Saya kecewa, pesanan datang terlambat dan dingin",
         "Tempatnya biasa saja, tidak ada yang istimewa", "Harga mahal tapi rasanya tidak sebanding",
         "Pemandangan indah dan udaranya sejuk", "Pelayanan buruk, saya tidak akan kembali lagi",
         "Hotel ini bersih, nyaman, dan dekat dengan pantai", "Dia sedang jaga warung di dekat hotel"]


# ------------------------------------------------------------------ the server process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_kb(pid: int, field: str = "VmRSS") -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), or Pss from smaps_rollup; None if unreadable."""
    path = f"/proc/{pid}/smaps_rollup" if field == "Pss" else f"/proc/{pid}/status"
    with contextlib.suppress(OSError):
        m = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.M)
        return int(m.group(1)) if m else None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all its threads (/proc/<pid>/stat); None if unreadable."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


async def forward_totals(client: httpx.AsyncClient, arch: str, backend: str) -> tuple[float, float, float]:
    """From the server's /metrics: (forward passes, their seconds, their items) so far for arch x backend."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"inference_forward_duration_seconds_count": 0.0, "inference_forward_duration_seconds_sum": 0.0,
              "inference_batch_size_sum": 0.0}
    for family in text_string_to_metric_families((await client.get("/metrics")).text):
        for sample in family.samples:
            if sample.name in totals and sample.labels.get("arch") == arch and sample.labels.get("backend") == backend:
                totals[sample.name] += sample.value
    return tuple(totals.values())


class Server:
    """``python -m service`` on 127.0.0.1:<free port> with ``env`` overrides; logs to a file."""

    def __init__(self, weights_dir: Path, log_dir: Path, name: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "WEIGHTS_DIR": str(weights_dir),
                    "LOG_LEVEL": "INFO", "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        full_env.pop("DATA_DIR", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_loaded(self, timeout: float, loaded_lines: int = 0) -> dict:
        """Waits until loading is over (``state == "loaded"``, all ready or not; with several workers, until
        each has logged ``models loaded``); returns /ready's body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = httpx.get(self.base_url + "/ready", timeout=5).json()
                if body.get("state") == "loaded" and self.log_text().count('"msg": "models loaded"') >= loaded_lines:
                    return body
            time.sleep(0.3)
        raise RuntimeError(f"the server did not finish loading in {timeout:.0f}s:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-3000:]

    def rss_mb(self) -> float | None:
        kb = proc_kb(self.proc.pid)
        return None if kb is None else kb / 1024

    def children(self) -> list[int]:
        """Pids of the direct children (uvicorn workers; the multiprocessing resource tracker left out)."""
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    pid = int(stat.parent.name)
                    cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if "resource_tracker" not in cmd:
                        out.append(pid)
        return sorted(out)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


# ------------------------------------------------------------------ payloads and runs
def payloads(arch: str, n: int = 64) -> list[dict]:
    """Single-item bodies: cnn a base64 PNG (as a client would send a photo), rnn/lstm a sentence."""
    if arch != "cnn":
        return [{"texts": [f"{TEXTS[i % len(TEXTS)]} {i}"]} for i in range(n)]
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
        out.append({"images": [base64.b64encode(buf.getvalue()).decode()]})
    return out


async def run_load(base_url: str, arch: str, backend: str, bodies: list[dict], requests: int, concurrency: int,
                   max_seconds: float, warmup: int = 0, server_pid: int | None = None) -> dict:
    """``requests`` POSTs (fewer if ``max_seconds`` runs out) from ``concurrency`` concurrent senders, after
    ``warmup`` unrecorded ones on the same connections (so connection set-up is not measured).

    With ``server_pid``, also where the time went, per request: the server's CPU time (all its threads),
    the wall time of its forward passes (from /metrics) and this client's CPU time."""
    url = f"/predict/{arch}?backend={backend}"
    latencies: list[float] = []
    batch_sizes: list[int] = []
    errors: Counter = Counter()
    indices = iter(range(requests))  # shared by the senders: the run is bounded in count
    # One client (one kept-alive connection) per sender, not one client with a pool of ``concurrency``
    # connections: httpx's pool does work per request that grows with its size, and at concurrency 32
    # the shared client cost 8.5 ms of CPU per request against 2.2 ms (cnn, alternating runs), so the
    # client, not the server, set the pace (and its ~120 req/s left the server's batches at ~2 items).
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60))
                   for _ in range(concurrency)]
        client = clients[0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds

        async def sender(client: httpx.AsyncClient) -> None:
            for i in indices:
                if loop.time() > deadline:  # the run is bounded in time too (reported as time_bounded)
                    break
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json=bodies[i % len(bodies)])
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if r.status_code != 200:
                    errors[f"HTTP {r.status_code}"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                batch_sizes.append(int(r.headers.get("x-batch-size", "0")))

        if warmup:
            indices = iter(range(warmup))
            await asyncio.gather(*(sender(c) for c in clients))
            latencies.clear(), batch_sizes.clear(), errors.clear()
            indices = iter(range(requests))
            deadline = loop.time() + max_seconds
        fwd0 = await forward_totals(client, arch, backend) if server_pid else None
        cpu0, client_cpu0 = (proc_cpu_seconds(server_pid) if server_pid else None), time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(c) for c in clients))
        elapsed = time.perf_counter() - t0
        cpu1, client_cpu1 = (proc_cpu_seconds(server_pid) if server_pid else None), time.process_time()
        fwd1 = await forward_totals(client, arch, backend) if server_pid else None
    done = len(latencies) + sum(errors.values())
    per_request = {}
    if server_pid and done and cpu0 is not None and cpu1 is not None:
        passes, seconds = fwd1[0] - fwd0[0], fwd1[1] - fwd0[1]
        per_request = {"server_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / done, 3),
                       "forward_ms_per_request": round(seconds * 1000 / done, 3),
                       "forward_ms_per_pass": round(seconds * 1000 / passes, 3) if passes else None,
                       "client_cpu_ms_per_request": round((client_cpu1 - client_cpu0) * 1000 / done, 3)}
    ms = sorted(x * 1000 for x in latencies)
    return {"arch": arch, "backend": backend, "concurrency": concurrency, "requests": done, "ok": len(latencies),
            "errors": sum(errors.values()), "error_kinds": dict(+errors), "elapsed_s": round(elapsed, 3),
            "time_bounded": done < requests,
            "rps": round(len(latencies) / elapsed, 1) if elapsed else None,
            "p50_ms": round(percentile(ms, 50), 2) if ms else None,
            "p99_ms": round(percentile(ms, 99), 2) if ms else None,
            "mean_batch_size": round(statistics.fmean(batch_sizes), 2) if batch_sizes else None,
            "max_batch_size": max(batch_sizes) if batch_sizes else None, **per_request}


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def ready_pairs(ready: dict, archs, backends) -> tuple[list[tuple[str, str]], dict]:
    pairs, skipped = [], {}
    for arch in archs:
        for backend in backends:
            status = ready.get("models", {}).get(arch, {}).get(backend, {})
            if status.get("status") == "ready":
                pairs.append((arch, backend))
            else:
                skipped[f"{arch}/{backend}"] = status.get("reason") or status.get("status") or "not loaded"
    return pairs, skipped


async def measure_server(server: Server, pairs, concurrencies, args, label: str) -> list[dict]:
    results = []
    for arch, backend in pairs:
        bodies = payloads(arch)
        for c in concurrencies:
            rss_before = server.rss_mb()
            r = await run_load(server.base_url, arch, backend, bodies, args.requests, c, args.max_seconds,
                               warmup=max(2 * c, 20), server_pid=server.proc.pid)
            r.update(batching=label, rss_before_mb=_r(rss_before), rss_after_mb=_r(server.rss_mb()))
            results.append(r)
            print(f"  {label:3} {arch:4} {backend:7} c={c:<3} {r['rps']:>8} req/s  p50 {r['p50_ms']} ms  "
                  f"p99 {r['p99_ms']} ms  errors {r['errors']}  mean batch {r['mean_batch_size']}  "
                  f"RSS {r['rss_before_mb']} -> {r['rss_after_mb']} MB", flush=True)
    return results


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def measure_workers(weights_dir: Path, log_dir: Path, workers: int, timeout: float) -> dict:
    """RSS and PSS of each worker of ``WORKERS=N python -m service`` once every worker has loaded its models."""
    server = Server(weights_dir, log_dir, f"workers{workers}", WORKERS=str(workers), LOG_LEVEL="INFO")
    try:
        server.wait_loaded(timeout, loaded_lines=workers)
        time.sleep(1.0)
        pids = server.children()
        per = [{"pid": p, "rss_mb": _r((proc_kb(p) or 0) / 1024), "pss_mb": _r((proc_kb(p, "Pss") or 0) / 1024)}
               for p in pids]
        return {"workers": workers, "supervisor_rss_mb": server.rss_mb() and _r(server.rss_mb()),
                "per_worker": per,
                "mean_worker_rss_mb": _r(statistics.fmean(w["rss_mb"] for w in per)) if per else None,
                "mean_worker_pss_mb": _r(statistics.fmean(w["pss_mb"] for w in per)) if per else None}
    finally:
        server.stop()


# ------------------------------------------------------------------ report
def machine() -> dict:
    load = (float("nan"),) * 3
    with contextlib.suppress(OSError):
        load = os.getloadavg()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load], "platform": platform.platform()}


def weights_info(weights_dir: Path) -> dict:
    info = {}
    for arch in ARCHS:
        with contextlib.suppress(OSError, ValueError):
            m = json.loads((weights_dir / arch / "manifest.json").read_text())
            info[arch] = {"params": m.get("params"), "weights.npz": (m.get("files") or {}).get("weights.npz", "")[:16]}
    return info


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def markdown(report: dict) -> str:
    m, a = report["machine"], report["args"]
    lines = [f"# Service load test — {report['label']}", "",
             f"Generated {report['generated']} by `benchmarks/load_test.py` "
             f"(`--requests {a['requests']} --concurrency {','.join(map(str, a['concurrency']))}`).", "",
             f"* Weights: `{report['weights_dir']}` — {report['label']}.",
             f"* Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}; load average at start "
             f"{m['load_average_at_start']} (the machine is shared: the client, the server and other jobs compete "
             "for the same cores).",
             "* Requests: single-item `POST /predict/{arch}?backend=...` — cnn a base64 32x32 PNG, rnn/lstm one "
             "sentence; latency measured by the client (connection kept alive); `python -m service`, one process, "
             f"`BATCH_WAIT_MS={a['batch_wait_ms']}`, JSON access log on.", ""]
    if report["skipped"]:
        lines += ["Not measured (not loaded): " + "; ".join(f"{k} ({v})" for k, v in report["skipped"].items()), ""]
    lines += ["## Throughput and latency (dynamic batching on)", "",
              "| arch | backend | concurrency | requests | req/s | p50 ms | p99 ms | errors | mean batch | RSS before → after (MB) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["runs"]:
        if r["batching"] == "on":
            lines.append(f"| {r['arch']} | {r['backend']} | {r['concurrency']} | {r['requests']} | {r['rps']} | "
                         f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['mean_batch_size']} | "
                         f"{r['rss_before_mb']} → {r['rss_after_mb']} |")
    if report["comparison"]:
        c = report["comparison"][0]["concurrency"]
        lines += ["", f"## Dynamic batching on vs off at concurrency {c} (separate server processes)", "",
                  "| arch | backend | req/s on | req/s off | on/off | p99 ms on | p99 ms off | mean batch on | errors on/off |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for x in report["comparison"]:
            lines.append(f"| {x['arch']} | {x['backend']} | {x['rps_on']} | {x['rps_off']} | {x['ratio']}x | "
                         f"{x['p99_on_ms']} | {x['p99_off_ms']} | {x['mean_batch_on']} | {x['errors_on']}/{x['errors_off']} |")
    costed = [r for r in report["runs"] if r.get("server_cpu_ms_per_request") is not None]
    if costed:
        lines += ["", "## Where a request's time goes", "",
                  "CPU time per request of the server process (all threads) and of the load-test client, measured "
                  "over each run (`/proc/<pid>/stat`, `time.process_time`), and the wall time of the server's forward "
                  "passes per request (from `/metrics`). Server and client share the machine's "
                  f"{m['cores']} cores, so (server + client) CPU per request bounds the requests/s: "
                  f"{m['cores']} x 1000 / (server + client ms).", "",
                  "| arch | backend | batching | concurrency | req/s | server CPU ms/req | forward ms/req (wall) | "
                  "forward ms/pass | client CPU ms/req | CPU bound req/s |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in costed:
            total = r["server_cpu_ms_per_request"] + r["client_cpu_ms_per_request"]
            bound = round(m["cores"] * 1000 / total, 1) if total else None
            lines.append(f"| {r['arch']} | {r['backend']} | {r['batching']} | {r['concurrency']} | {r['rps']} | "
                         f"{r['server_cpu_ms_per_request']} | {r['forward_ms_per_request']} | "
                         f"{r['forward_ms_per_pass']} | {r['client_cpu_ms_per_request']} | {bound} |")
    s = report["server"]
    lines += ["", "## Memory", "",
              f"* One server process (`python -m service`, every model loaded): RSS {s['rss_ready_mb']} MB when "
              f"ready, {s['rss_end_mb']} MB after all runs (peak VmHWM {s['rss_peak_mb']} MB); batching-off "
              f"server: {s.get('off_rss_ready_mb')} MB → {s.get('off_rss_end_mb')} MB."]
    w = report.get("workers")
    if w:
        lines.append(f"* `WORKERS={w['workers']}` (uvicorn workers, each loads every model): per worker RSS "
                     + ", ".join(f"{p['rss_mb']} MB" for p in w["per_worker"])
                     + f" (PSS, the worker's share with shared pages divided: "
                     + ", ".join(f"{p['pss_mb']} MB" for p in w["per_worker"])
                     + f"); supervisor {w['supervisor_rss_mb']} MB.")
    total = sum(r["errors"] for r in report["runs"])
    lines += ["", f"Errors over all runs: {total}.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights-dir", type=Path, default=ROOT / "weights", help="default: the committed weights/")
    p.add_argument("--label", default=None, help="what the weights are, for the report (default: the folder)")
    p.add_argument("--requests", type=int, default=2000, help="requests per run (default 2000)")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated (default 1,8,32)")
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--compare-concurrency", type=int, default=32,
                   help="concurrency of the batching on/off comparison (0: skip it)")
    p.add_argument("--batch-wait-ms", type=float, default=0.0, help="BATCH_WAIT_MS of the batching-on server (the service default: 0, no wait)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers for the memory probe (0: skip it)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="time bound of one run")
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument("--out-dir", type=Path, default=ROOT / "reports")
    args = p.parse_args(argv)
    if args.requests < 1:
        p.error("--requests must be at least 1")
    concurrencies = [int(x) for x in args.concurrency.split(",") if x]
    archs, backends = args.archs.split(","), args.backends.split(",")
    weights_dir = args.weights_dir.resolve()
    label = args.label or f"weights from {weights_dir}"
    report = {"label": label, "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "weights_dir": str(weights_dir),
              "weights": weights_info(weights_dir), "machine": machine(),
              "args": {"requests": args.requests, "concurrency": concurrencies, "batch_wait_ms": args.batch_wait_ms,
                       "compare_concurrency": args.compare_concurrency, "max_seconds": args.max_seconds},
              "runs": [], "comparison": [], "skipped": {}, "server": {}}
    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        log_dir = Path(tmp)
        wait = str(args.batch_wait_ms)
        print(f"load test: {label}; server with dynamic batching on", flush=True)
        on = Server(weights_dir, log_dir, "batching-on", DYNAMIC_BATCHING="true", BATCH_WAIT_MS=wait)
        try:
            pairs, report["skipped"] = ready_pairs(on.wait_loaded(args.ready_timeout), archs, backends)
            if not pairs:
                raise SystemExit(f"no arch x backend loaded from {weights_dir}: {report['skipped']}")
            report["server"]["rss_ready_mb"] = _r(on.rss_mb())
            report["runs"] += asyncio.run(measure_server(on, pairs, concurrencies, args, "on"))
            report["server"]["rss_end_mb"] = _r(on.rss_mb())
            report["server"]["rss_peak_mb"] = _r((proc_kb(on.proc.pid, "VmHWM") or 0) / 1024)
        finally:
            on.stop()
        if args.compare_concurrency:
            print("server with dynamic batching off", flush=True)
            off = Server(weights_dir, log_dir, "batching-off", DYNAMIC_BATCHING="false")
            try:
                off.wait_loaded(args.ready_timeout)
                report["server"]["off_rss_ready_mb"] = _r(off.rss_mb())
                off_runs = asyncio.run(measure_server(off, pairs, [args.compare_concurrency], args, "off"))
                report["server"]["off_rss_end_mb"] = _r(off.rss_mb())
            finally:
                off.stop()
            report["runs"] += off_runs
            on_runs = {(r["arch"], r["backend"]): r for r in report["runs"]
                       if r["batching"] == "on" and r["concurrency"] == args.compare_concurrency}
            for r_off in off_runs:
                r_on = on_runs.get((r_off["arch"], r_off["backend"]))
                if r_on:
                    report["comparison"].append({
                        "arch": r_off["arch"], "backend": r_off["backend"], "concurrency": args.compare_concurrency,
                        "rps_on": r_on["rps"], "rps_off": r_off["rps"],
                        "ratio": round(r_on["rps"] / r_off["rps"], 2) if r_off["rps"] else None,
                        "p99_on_ms": r_on["p99_ms"], "p99_off_ms": r_off["p99_ms"],
                        "mean_batch_on": r_on["mean_batch_size"], "errors_on": r_on["errors"],
                        "errors_off": r_off["errors"]})
        if args.workers:
            print(f"memory per worker: WORKERS={args.workers}", flush=True)
            report["workers"] = measure_workers(weights_dir, log_dir, args.workers, args.ready_timeout)
            print(f"  {report['workers']}", flush=True)
    report["total_errors"] = sum(r["errors"] for r in report["runs"])
    write_atomic(args.out_dir / "load_test.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out_dir / "load_test.md", markdown(report))
    print(f"wrote {args.out_dir / 'load_test.md'} and load_test.json; errors: {report['total_errors']}")
    return report


if __name__ == "__main__":
    main()
