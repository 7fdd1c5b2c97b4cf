#!/usr/bin/env python
"""The machine's measured FP32 peak: a register-only loop of independent fused multiply-adds, compiled here.

    python benchmarks/fma_peak.py [--seconds 1.5] [--repeats 3]

Why measured, not computed from the nominal clock: a virtual machine reports its base clock (2.1 GHz here)
while the cores run faster, so cores x FMA units x lanes x 2 x clock understates the peak, and GFLOP/s
"against the peak" would flatter every kernel. The loop keeps 24 vector accumulators (AVX-512, else AVX2)
in flight, enough to cover the FMA latency on two ports; one process per core, run alone and then all at
once (the all-core turbo is lower). Prints JSON: GFLOP/s of one core (median of the repeats) and of all.
Needs gcc.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <immintrin.h>
#ifdef __AVX512F__
typedef __m512 V; enum { LANES = 16 };
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#else
typedef __m256 V; enum { LANES = 8 };
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#endif
int main(int argc, char **argv) {
    double seconds = atof(argv[1]);
    V a[24], x = SET1(1.0000001f), y = SET1(0.9999999f);
    for (int i = 0; i < 24; i++) a[i] = SET1((float)i);
    struct timespec t0, t1;
    long rounds = 0;
    double s = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (long k = 0; k < 100000; k++) {
            _Pragma("GCC unroll 24")
            for (int i = 0; i < 24; i++) a[i] = FMA(a[i], x, y);
        }
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    } while (s < seconds);
    float sum = 0;
    for (int i = 0; i < 24; i++) { float v[LANES]; memcpy(v, &a[i], sizeof v); sum += v[0]; }
    printf("%.3f %g\n", rounds * 100000.0 * 24 * LANES * 2 / s / 1e9, sum);
    return 0;
}
"""


def build(folder: Path) -> Path:
    src, exe = folder / "fma_peak.c", folder / "fma_peak"
    src.write_text("#include <string.h>\n" + SOURCE)
    for flags in (["-mavx512f", "-mfma"], ["-mavx2", "-mfma"]):
        done = subprocess.run(["gcc", "-O2", *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
        if done.returncode == 0 and subprocess.run([str(exe), "0.01"], capture_output=True).returncode == 0:
            return exe
    raise SystemExit("fma_peak: gcc could not build an AVX-512 or AVX2 FMA loop that runs on this CPU")


def run(exe: Path, seconds: float, processes: int) -> list[float]:
    procs = [subprocess.Popen([str(exe), str(seconds)], stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    return [float(p.communicate()[0].split()[0]) for p in procs]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        one = [run(exe, args.seconds, 1)[0] for _ in range(args.repeats)]
        every = [sum(run(exe, args.seconds, cores)) for _ in range(args.repeats)]
    print(json.dumps({"cores": cores, "one_core_gflops": round(statistics.median(one), 1),
                      "all_cores_gflops": round(statistics.median(every), 1),
                      "one_core_runs": [round(v, 1) for v in one], "all_core_runs": [round(v, 1) for v in every]}))


if __name__ == "__main__":
    main()
