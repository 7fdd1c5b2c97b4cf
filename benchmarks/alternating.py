"""Alternating rounds over several callables on the same inputs: the one timing loop of the in-process
benchmarks (each round reverses the order of the callables, so none always runs first or after the same one)."""
from __future__ import annotations

import time

import numpy as np


def alternating_medians(fns: dict, xs: dict, rounds: int, repeats: int) -> dict[tuple, list[float]]:
    """``{(name, key): [median seconds of `repeats` calls, one per round]}`` for every callable in ``fns``
    and input in ``xs``; each timed group follows one untimed call of the same callable."""
    samples = {(name, key): [] for name in fns for key in xs}
    for r in range(rounds):
        for key, x in xs.items():
            for name, fn in (list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]):
                fn(x)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    fn(x)
                    times.append(time.perf_counter() - t0)
                samples[(name, key)].append(float(np.median(times)))
        print(f"round {r + 1}/{rounds} done", flush=True)
    return samples
