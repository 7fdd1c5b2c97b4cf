"""Soak (`-m soak`, run by hand, not in CI): a real service process (committed weights, both backends) under
concurrency 32 for SOAK_SECONDS (default 1800), mixed models, backends and input kinds (base64 PNG, nested
list, texts). 0 errors; RSS growth after the first window (warm-up) under 5 %; requests, errors, p50/p99 and RSS
per window (SOAK_WINDOW_S, default 300). With SOAK_REPORT=reports/reliability_soak.md, writes that report and a
plot beside it (.png).

    SOAK_REPORT=reports/reliability_soak.md nohup nice .venv/bin/python -m pytest -q -s -m soak \\
        tests/reliability/test_reliability_soak.py > soak.log 2>&1 &
"""
from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from reliability_helpers import TEXTS, Service, png_b64

SECONDS = float(os.environ.get("SOAK_SECONDS", "1800"))
WINDOW = float(os.environ.get("SOAK_WINDOW_S", "300"))
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "32"))
pytestmark = [pytest.mark.soak, pytest.mark.timeout(SECONDS + 900)]  # the suite's 900 s would end it early


def mixed_requests() -> list[tuple[str, dict]]:
    image_list = np.random.default_rng(1).random((32, 32, 3)).round(4).tolist()
    out = []
    for backend in ("scratch", "keras"):
        out += [(f"/predict/cnn?backend={backend}", {"images": [png_b64(seed=backend == "keras")]}),
                (f"/predict/cnn?backend={backend}", {"images": [image_list]}),
                (f"/predict/rnn?backend={backend}", {"texts": [TEXTS[0]]}),
                (f"/predict/lstm?backend={backend}", {"texts": TEXTS[1:3]})]
    return out


async def soak(service: Service) -> tuple[list, list]:
    requests = mixed_requests()
    records: list[tuple[float, float, str]] = []  # (t, latency s, "ok" | error)
    rss: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def sender(k: int) -> None:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            i = k
            while loop.time() - t0 < SECONDS:
                path, body = requests[i % len(requests)]
                i += 1
                start = loop.time()
                try:
                    r = await client.post(path, json=body)
                    outcome = "ok" if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                records.append((start - t0, loop.time() - start, outcome))

    async def sampler() -> None:
        while loop.time() - t0 < SECONDS:
            rss.append((loop.time() - t0, service.rss_mb()))
            await asyncio.sleep(5)

    await asyncio.gather(sampler(), *(sender(k) for k in range(CONCURRENCY)))
    return records, rss


def windows(records, rss) -> list[dict]:
    out = []
    for w in range(int(np.ceil(SECONDS / WINDOW))):
        lo, hi = w * WINDOW, (w + 1) * WINDOW
        rows = [r for r in records if lo <= r[0] < hi]
        lat = sorted(r[1] for r in rows if r[2] == "ok")
        mem = [m for t, m in rss if lo <= t < hi]
        out.append({"window": f"{lo / 60:.0f}-{hi / 60:.0f} min", "requests": len(rows),
                    "errors": sum(r[2] != "ok" for r in rows), "rps": len(rows) / WINDOW,
                    "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
                    "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
                    "rss_end_mb": mem[-1] if mem else None, "rss_max_mb": max(mem) if mem else None})
    return out


def write_report(path: Path, table: list[dict], records, rss, growth: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ok = [(t, l) for t, l, o in records if o == "ok"]
    per_min: dict[int, list[float]] = {}
    for t, l in ok:
        per_min.setdefault(int(t // 60), []).append(l)
    minutes = sorted(per_min)
    a1.plot(minutes, [1000 * np.percentile(per_min[m], 99) for m in minutes], label="p99")
    a1.plot(minutes, [1000 * np.percentile(per_min[m], 50) for m in minutes], label="p50")
    a1.set_ylabel("latency per minute (ms)")
    a1.legend()
    a2.plot([t / 60 for t, _ in rss], [m for _, m in rss])
    a2.set_ylabel("server RSS (MB)")
    a2.set_xlabel("minutes")
    fig.suptitle(f"soak: concurrency {CONCURRENCY}, mixed models/backends/inputs, {SECONDS / 60:.0f} min")
    fig.tight_layout()
    png = path.with_suffix(".png")
    fig.savefig(png.with_suffix(".tmp.png"), dpi=90)
    os.replace(png.with_suffix(".tmp.png"), png)
    lines = [f"# Soak: {SECONDS / 60:.0f} minutes at concurrency {CONCURRENCY}", "",
             f"`SOAK_REPORT={path} python -m pytest -q -s -m soak tests/reliability/test_reliability_soak.py` at "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: one `python -m service` process (committed "
             "weights, both backends, batching on, BATCH_WAIT_MS=0), an httpx client on the same 2 cores (shared "
             "with other jobs), requests cycling through cnn (base64 PNG, nested list), rnn and lstm (texts) on "
             "both backends.", "",
             f"Total {len(records)} requests, {sum(o != 'ok' for _, _, o in records)} errors; RSS growth after the "
             f"first window: {100 * growth:+.1f} %.", "",
             "| window | requests | errors | req/s | p50 ms | p99 ms | RSS end MB | RSS max MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w in table:
        lines.append(f"| {w['window']} | {w['requests']} | {w['errors']} | {w['rps']:.1f} | {w['p50_ms'] or 0:.1f} | "
                     f"{w['p99_ms'] or 0:.1f} | {w['rss_end_mb'] or 0:.0f} | {w['rss_max_mb'] or 0:.0f} |")
    lines += ["", f"![soak]({png.name})", ""]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


def test_soak(tmp_path):
    service = Service(tmp_path / "service.log")
    try:
        service.wait_ready()
        records, rss = asyncio.run(soak(service))
    finally:
        service.stop()
    table = windows(records, rss)
    warm = [m for t, m in rss if t >= min(WINDOW, SECONDS / 2)]
    growth = (warm[-1] - warm[0]) / warm[0] if len(warm) > 1 else 0.0
    for w in table:
        print(w)
    if os.environ.get("SOAK_REPORT"):
        write_report(Path(os.environ["SOAK_REPORT"]), table, records, rss, growth)
    assert sum(o != "ok" for _, _, o in records) == 0
    assert growth < 0.05, f"RSS grew {100 * growth:.1f} % after warm-up"
    assert statistics.median(w["requests"] for w in table) > 0
