"""The service under `wrk` (a C load generator from Debian's packages) that costs the server nothing: wrk pinned
to one core with taskset, the server (`python -m service`, one process) to the other.

    .venv/bin/python benchmarks/wrk/run_wrk.py                        # 3 alternating rounds, 8 s each
    .venv/bin/python benchmarks/wrk/run_wrk.py --rounds 1 --seconds 4 --cases cnn-png/scratch

For every case (single-item bodies: a 32x32x3 CIFAR-10 test image as a nested JSON list or as a base64 PNG,
one text for rnn/lstm) and batching on vs off (two servers, DYNAMIC_BATCHING=true/false, both on the server
core, idle when not measured), rounds alternate on/off so both see the same machine. Per run: wrk's requests/s
and latency, the server's CPU seconds (all its threads, /proc/<pid>/stat) over the run, hence requests/s per
server core (requests / server CPU seconds) and server CPU per request. Also the compute bound of batching
for cnn/scratch: t(batch 1) / (t(batch 32) / 32) of the scratch forward pass on the server core.

Writes reports/wrk.md and reports/wrk.json (atomically). Only 127.0.0.1 is contacted; every run is bounded
(wrk -d). Needs `wrk` and `taskset` (Debian: wrk, util-linux).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from load_test import free_port, proc_cpu_seconds  # noqa: E402

LUA = Path(__file__).with_name("post.lua")
TEXT = "Makanannya enak dan pelayanannya ramah sekali, saya pasti akan kembali lagi"
CASES = ("cnn-list/scratch", "cnn-list/keras", "cnn-png/scratch", "cnn-png/keras", "rnn-text/scratch", "lstm-text/scratch",
         "rnn-text/keras")
#: Issue 18's targets, batching on: (case, what, value). BentoML 1.4.40 measured here the same way (server on one
#: core, wrk -c32 on the other, the cnn-list body): 243 req/s.
TARGETS = (("cnn-list/scratch", "rps", 243.0), ("cnn-list/keras", "rps", 243.0),
           ("cnn-png/scratch", "rps_per_server_core", 800.0), ("rnn-text/scratch", "rps_per_server_core", 1500.0))


def cifar_image() -> np.ndarray:
    """A real CIFAR-10 test image (uint8 32x32x3) from DATA_DIR if there, else a fixed random one (seed 0)."""
    data = Path(os.environ.get("DATA_DIR", ROOT.parent / "shared" / "data"))
    jpg = data / "cifar10" / "test" / "cat" / "0000.jpg"
    if jpg.is_file():
        from PIL import Image

        return np.asarray(Image.open(jpg).convert("RGB"))
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def bodies() -> dict[str, bytes]:
    from PIL import Image

    pixels = cifar_image()
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return {"cnn-list": json.dumps({"images": [(pixels / 255).round(4).tolist()]}).encode(),
            "cnn-png": json.dumps({"images": [base64.b64encode(buf.getvalue()).decode()]}).encode(),
            "rnn-text": json.dumps({"texts": [TEXT]}).encode(),
            "lstm-text": json.dumps({"texts": [TEXT]}).encode()}


class PinnedServer:
    """``python -m service`` on 127.0.0.1:<free port>, pinned to ``core`` (taskset), logs to a file."""

    def __init__(self, core: int, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")
        full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "INFO",
                    "TF_CPP_MIN_LOG_LEVEL": "2", "WORKERS": "1", **env}
        full_env.pop("DATA_DIR", None)
        self.proc = subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-m", "service"], cwd=ROOT,
                                     env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError("the server was not ready in time")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid) or 0.0

    def wait_idle(self, timeout: float = 120, quiet_s: float = 0.3) -> None:
        """Until the server spends under 3 % of a core for ``quiet_s``: the requests wrk left in flight when it
        stopped (still computed after their connections closed) must not run into the next measurement."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cpu0 = self.cpu()
            time.sleep(quiet_s)
            if self.cpu() - cpu0 < 0.03 * quiet_s:
                return

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wrk(core: int, url: str, body_file: Path, seconds: float, connections: int) -> dict:
    cmd = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
           "-s", str(LUA), url]
    out = subprocess.run(cmd, env={**os.environ, "WRK_BODY": str(body_file)}, capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRK_JSON "))
    return json.loads(line[len("WRK_JSON "):])


def measure(server: PinnedServer, wrk_core: int, path: str, body_file: Path, seconds: float, connections: int) -> dict:
    wrk(wrk_core, server.url + path, body_file, 1, connections)  # warm-up: connections, caches, first batches
    server.wait_idle()
    cpu0, t0 = server.cpu(), time.monotonic()
    w = wrk(wrk_core, server.url + path, body_file, seconds, connections)
    cpu, wall = server.cpu() - cpu0, time.monotonic() - t0
    server.wait_idle()  # (not counted: the requests left in flight are answered to nobody)
    ok = w["statuses"].get("200", 0)
    errors = w["requests"] - ok + w["errors_connect"] + w["errors_read"] + w["errors_write"] + w["errors_timeout"]
    rps = w["requests"] / (w["duration_us"] / 1e6)
    return {"requests": w["requests"], "ok": ok, "errors": errors, "statuses": w["statuses"], "rps": rps,
            "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "server_cpu_s": cpu,
            "server_cores_busy": cpu / wall, "rps_per_server_core": w["requests"] / cpu if cpu else None,
            "server_cpu_ms_per_request": 1000 * cpu / w["requests"] if w["requests"] else None}


def compute_bound(core: int, repeats: int = 30) -> dict:
    """cnn/scratch forward pass on the server core: t(batch 1), t(batch 32) (medians), and the bound of the
    batching gain t(1) / (t(32) / 32)."""
    code = f"""
import json, os, time, numpy as np
os.sched_setaffinity(0, {{{core}}})
from scratch_models.threads import set_blas_threads; set_blas_threads(1)
from scratch_models.allocator import keep_freed_memory; keep_freed_memory()
import scratch_models
m = scratch_models.load("weights/cnn")
x = np.random.default_rng(0).random((32, 32, 32, 3), dtype=np.float32)
out = {{}}
for n in (1, 32):
    for _ in range(5): m.predict(x[:n])
    ts = []
    for _ in range({repeats}):
        t0 = time.perf_counter(); m.predict(x[:n]); ts.append(time.perf_counter() - t0)
    out[n] = float(np.median(ts))
print(json.dumps(out))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    t1, t32 = out["1"], out["32"]
    return {"t1_ms": 1000 * t1, "t32_ms": 1000 * t32, "bound": t1 / (t32 / 32)}


def median_range(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    return (f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
            if values else "-")


def report(results: dict, args, bound: dict | None) -> str:
    lines = ["# The service under wrk: requests/s per server core", "",
             f"`{' '.join([Path(sys.executable).name, 'benchmarks/wrk/run_wrk.py'] + sys.argv[1:])}` at "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
             f"({os.cpu_count()} cores; load average {args.load_before:.2f} before the run, "
             f"{os.getloadavg()[0]:.2f} after: above ~0.3 other jobs shared the cores and the figures are noisy).", "",
             f"Server: `python -m service` (1 process, BLAS_THREADS=1, BATCH_WAIT_MS=0, JSON access log on) pinned "
             f"to core {args.server_core}; load: `wrk -t1 -c{args.connections}` with `benchmarks/wrk/post.lua`, "
             f"pinned to core {args.wrk_core}. {args.rounds} rounds of {args.seconds:g} s, batching on and off "
             "alternating; each cell: median (min-max) over the rounds. req/s per server core = requests / the "
             "server's CPU seconds during the run.", "",
             "| case | batching | req/s | req/s per server core | server CPU ms/request | server cores busy | p50 ms | p99 ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case, modes in results.items():
        for mode in ("on", "off"):
            runs = modes[mode]
            lines.append(f"| {case} | {mode} | {median_range([r['rps'] for r in runs])} | "
                         f"{median_range([r['rps_per_server_core'] for r in runs])} | "
                         f"{median_range([r['server_cpu_ms_per_request'] for r in runs], 2)} | "
                         f"{statistics.median(r['server_cores_busy'] for r in runs):.2f} | "
                         f"{statistics.median(r['p50_ms'] for r in runs):.1f} | "
                         f"{statistics.median(r['p99_ms'] for r in runs):.1f} | {sum(r['errors'] for r in runs)} |")
        ratios = [a["rps"] / b["rps"] for a, b in zip(modes["on"], modes["off"]) if a["rps"] and b["rps"]]
        per_core = [a["rps_per_server_core"] / b["rps_per_server_core"] for a, b in zip(modes["on"], modes["off"])
                    if a["rps_per_server_core"] and b["rps_per_server_core"]]
        lines.append(f"| {case} | **on/off** | **{ratio_range(ratios)}** | **{ratio_range(per_core)}** | | | | | |")
    if bound:
        lines += ["", f"cnn/scratch compute bound of the batching gain on the server core: t(batch 1) = "
                      f"{bound['t1_ms']:.2f} ms, t(batch 32) = {bound['t32_ms']:.1f} ms, "
                      f"t(1) / (t(32) / 32) = **{bound['bound']:.2f}x** (80 %: {0.8 * bound['bound']:.2f}x)."]
    lines += ["", "Targets (issue 18, batching on; medians of the rounds):", "",
              "| case | measure | target | measured | met |", "|---|---|---:|---:|---|"]
    for case, key, target in TARGETS:
        values = [r[key] for r in results.get(case, {}).get("on", []) if r[key] is not None]
        if values:
            got = statistics.median(values)
            name = "req/s" if key == "rps" else "req/s per server core"
            lines.append(f"| {case} | {name} | {target:g} | {got:.0f} | {'yes' if got >= target else 'no'} |")
    if bound and "cnn-png/scratch" in results and results["cnn-png/scratch"]["on"]:
        modes = results["cnn-png/scratch"]
        gain = statistics.median(a["rps"] / max(b["rps"], 1e-9) for a, b in zip(modes["on"], modes["off"]))
        lines.append(f"| cnn-png/scratch | batching on/off req/s | {0.8 * bound['bound']:.2f} (80 % of the bound) | "
                     f"{gain:.2f} | {'yes' if gain >= 0.8 * bound['bound'] else 'no'} |")
    return "\n".join(lines) + "\n"


def ratio_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})" if values else "-"


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), help=f"of {', '.join(CASES)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--server-core", type=int, default=1)
    p.add_argument("--wrk-core", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "wrk.md")
    p.add_argument("--no-compute-bound", action="store_true")
    p.add_argument("--env", nargs="*", default=[], help="extra KEY=VALUE for both servers")
    args = p.parse_args()
    args.load_before = os.getloadavg()[0]
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    extra = dict(kv.split("=", 1) for kv in args.env)
    tmp = Path(tempfile.mkdtemp(prefix="wrk-"))
    files = {}
    for kind, body in bodies().items():
        files[kind] = tmp / f"{kind}.json"
        files[kind].write_bytes(body)
    servers = {"on": PinnedServer(args.server_core, tmp / "on.log", DYNAMIC_BATCHING="true", **extra),
               "off": PinnedServer(args.server_core, tmp / "off.log", DYNAMIC_BATCHING="false", **extra)}
    results: dict = {case: {"on": [], "off": []} for case in args.cases}
    try:
        for s in servers.values():
            s.wait_ready()
        for rnd in range(args.rounds):
            for case in args.cases:
                kind, backend = case.split("/")
                path = f"/predict/{kind.split('-')[0]}?backend={backend}"
                for mode in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                    r = measure(servers[mode], args.wrk_core, path, files[kind], args.seconds, args.connections)
                    results[case][mode].append(r)
                    print(f"round {rnd} {case} batching {mode}: {r['rps']:.0f} req/s, "
                          f"{r['rps_per_server_core']:.0f}/server core, {r['errors']} errors", flush=True)
    finally:
        for s in servers.values():
            s.stop()
    bound = None if args.no_compute_bound or not any(c.startswith("cnn") for c in args.cases) \
        else compute_bound(args.server_core)
    atomic_write(args.out, report(results, args, bound))
    atomic_write(args.out.with_suffix(".json"), json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                            "results": results, "compute_bound": bound}, indent=1))
    print(args.out.read_text())
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
