"""The one batch-split policy: how many parts a batch runs in, and running them.

Rows are independent at inference, and NumPy releases the GIL in its loops and matrix products, so the
whole forward pass runs once per part in threads, one part per core, each with one BLAS thread (OpenBLAS'
own threads share a product but leave the element-wise passes, copies and transforms on one core, and
they spin between products). Each step is told which part it computes (``Part``), explicitly: the
algorithm choice of a convolution depends on it. Thresholds: reports/engine_speed_notes.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import parallel
from ..threads import single_threaded_blas

#: Smallest part worth a thread of its own, by the kind of model (a batch of N runs in at most
#: N // that parts). Other models are not split, among them 'compiled-convolutional' ones (every
#: convolution on the compiled kernel): the kernel splits each layer over the cores itself, which ran
#: faster than parts of the batch in threads (committed CNN, 7-9 alternating rounds: batch 8 3.0 vs 3.5 ms,
#: 32 12.8 vs 15.6 ms, 256 92 vs 96 ms; reports/inference_plan.md).
MIN_ITEMS_PER_PART = {"recurrent": 128, "convolutional": 4}


@dataclass(frozen=True)
class Part:
    """What a step needs to know about the part of the batch it computes."""
    arena: object          # memory.Arena (or memory.Fresh)
    count: int = 1         # parts the batch was split into
    single_blas: bool = False  # already under single_threaded_blas()
    threads: int | None = None  # threads a compiled kernel may split one call over (None: ask the machine)

    @property
    def split(self) -> bool:
        return self.count > 1


def parts_for(kind: str | None, n: int) -> int:
    """Parts for a batch of ``n`` items of a model of ``kind`` (a key of ``MIN_ITEMS_PER_PART``, another or None)."""
    min_items = MIN_ITEMS_PER_PART.get(kind) if kind else None
    if not min_items or parallel.in_worker():  # called from a part already: the cores are taken
        return 1
    return max(1, min(parallel.cores(), n // min_items))


def whole_batch_threads() -> int:
    """Threads a kernel of an unsplit batch may use: the cores, or 1 when called from a part already."""
    return 1 if parallel.in_worker() else parallel.cores()


def run_split(walk, x: np.ndarray, parts: int, arenas) -> np.ndarray:
    """``walk(x_part, Part)`` on ``parts`` near-equal row ranges in threads, concatenated."""
    def one(xs):
        with arenas.take() as arena:
            return np.array(walk(xs, Part(arena, parts, single_blas=True, threads=1)))  # a copy: the arena is reused
    with single_threaded_blas():
        return np.concatenate(parallel.map_parts(one, np.array_split(x, parts)))
