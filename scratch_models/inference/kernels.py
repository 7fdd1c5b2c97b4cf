"""The plan's compiled kernels (``_kernels.c``), when they were built, and the switch that turns them off.

``pip install`` compiles ``_kernels.c`` if a C compiler and the Python headers are there (setup.py marks the
extension optional): without them the engine runs its NumPy path, with the same results to float32 rounding.
``SCRATCH_KERNELS`` chooses, read at import (``configure`` changes it later, for tests and benchmarks):

* unset or ``auto``: the best instruction set this CPU supports (AVX-512, AVX2 + FMA, or the baseline);
* ``numpy``: no compiled kernel (the NumPy path everywhere);
* ``avx512``, ``avx2``, ``base``: that variant (an error if this CPU or build has not got it).

``DirectConv`` (the register-blocked direct convolution) and ``WinogradConv`` (Winograd F(2x2, 3x3)) are one
convolution's kernel packed once for the chosen variant (at plan compile), called per batch or part: the C call
releases the GIL and splits the work over the kernel's persistent worker pool; ``lstm_gates`` is the
element-wise gate step of the Bidirectional LSTM loop.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

import warnings

#: The ``API`` number of the _kernels.c this module calls (a build of another version is not used).
API = 4

try:
    from . import _kernels
except ImportError:  # not built (no compiler at install, or a source checkout never installed)
    _kernels = None
if _kernels is not None and getattr(_kernels, "API", None) != API:
    warnings.warn(f"scratch_models.inference._kernels is a stale build (API {getattr(_kernels, 'API', None)}, "
                  f"expected {API}): the NumPy path is used; reinstall (pip install -e .) to rebuild it",
                  RuntimeWarning, stacklevel=1)
    _kernels = None

#: The environment variable read at import.
ENV = "SCRATCH_KERNELS"
#: (index, name, block, tile) of each variant this CPU supports, best first; empty without the extension.
VARIANTS: list[tuple[int, str, int, int]] = list(_kernels.variants()) if _kernels is not None else []
#: The variant in use, or None (NumPy path).
variant: tuple[int, str, int, int] | None = None


def configure(choice: str | None = None) -> tuple[int, str, int, int] | None:
    """Select the variant for plans compiled from now on: 'auto' (or None: the environment's choice),
    'numpy', or a variant name. Returns the selection (None: the NumPy path)."""
    global variant
    choice = (os.environ.get(ENV, "auto") if choice is None else choice).strip().lower() or "auto"
    if choice == "numpy":
        variant = None
    elif choice == "auto":
        variant = VARIANTS[0] if VARIANTS else None
    else:
        named = [v for v in VARIANTS if v[1] == choice]
        if not named:
            built = [v[1] for v in VARIANTS] if _kernels is not None else "none: the extension is not built"
            raise ValueError(f"{ENV}: expected 'auto', 'numpy' or a compiled variant of this CPU ({built}), "
                             f"received {choice!r}")
        variant = named[0]
    return variant


@contextlib.contextmanager
def selected(choice: str):
    """``configure(choice)`` for the plans and steps made inside the block, then the previous selection."""
    global variant
    previous = variant
    configure(choice)
    try:
        yield variant
    finally:
        variant = previous


def pack(kernel: np.ndarray, bias: np.ndarray | None, block: int) -> tuple[np.ndarray, np.ndarray]:
    """A (kh, kw, C, F) kernel as filter blocks (FB, kh, kw, C, block), F zero-padded to FB * block, and the
    bias (FB * block,), float32 (zeros without a bias)."""
    kh, kw, c, f = kernel.shape
    fb = -(-f // block)
    padded = np.zeros((kh, kw, c, fb * block), np.float32)
    padded[..., :f] = kernel
    w = np.ascontiguousarray(padded.reshape(kh, kw, c, fb, block).transpose(3, 0, 1, 2, 4))
    return w, pack_bias(bias, f, block)


def pack_bias(bias: np.ndarray | None, filters: int, block: int) -> np.ndarray:
    """The bias of ``filters`` filters zero-padded to whole blocks, (FB * block,) float32 (zeros without one)."""
    b = np.zeros(-(-filters // block) * block, np.float32)
    if bias is not None:
        b[:filters] = bias
    return b


class DirectConv:
    """One convolution (kernel, bias, strides) packed for ``chosen`` (the current variant by default).
    ``__call__(x, out, pads, relu, pool, threads)``: ``out`` (N, Ho, Wo, F), or (N, Ho // 2, Wo // 2, F) with
    ``pool``, written by one C call that releases the GIL and splits the work over ``threads`` threads."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, strides: tuple[int, int], chosen=None):
        chosen = chosen or variant
        if chosen is None:
            raise RuntimeError("DirectConv: no compiled variant selected (the extension is not built or "
                               f"{ENV}=numpy)")
        self.index, self.name, self.block, self.tile = chosen
        self.kh, self.kw, self.channels, self.filters = kernel.shape
        self.strides = tuple(strides)
        self.w, self.b = pack(kernel, bias, self.block)

    def __call__(self, x: np.ndarray, out: np.ndarray, pads: tuple[int, int, int, int], relu: bool,
                 pool: bool, threads: int = 1) -> np.ndarray:
        pt, pb, pl, pr = pads
        _kernels.conv2d(self.index, np.ascontiguousarray(x, np.float32), self.w, self.b, out, self.kh, self.kw,
                        self.strides[0], self.strides[1], pt, pb, pl, pr, bool(relu), bool(pool), threads)
        return out


def pack_winograd(kernel: np.ndarray, block: int) -> np.ndarray:
    """U = G g Gt of a (3, 3, C, F) kernel (Winograd F(2x2, 3x3), computed in float64) as filter blocks
    (FB, 16, C, block), F zero-padded to FB * block, float32."""
    from .conv import winograd_kernel
    _, _, c, f = kernel.shape
    fb = -(-f // block)
    u = np.zeros((16, c, fb * block))
    u[..., :f] = winograd_kernel(kernel, np.float64)
    return np.ascontiguousarray(u.reshape(16, c, fb, block).transpose(2, 0, 1, 3), np.float32)


class WinogradConv:
    """A 3x3, stride 1, 'same' convolution (kernel, bias) packed for Winograd F(2x2, 3x3) in the compiled kernel
    (``chosen``: the current variant by default). ``__call__(x, out, relu, pool, threads)``: x (N, H, W, C)
    with H and W even; ``out`` (N, H, W, F), or (N, H // 2, W // 2, F) with ``pool``."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, chosen=None):
        chosen = chosen or variant
        if chosen is None:
            raise RuntimeError(f"WinogradConv: no compiled variant selected (the extension is not built or {ENV}=numpy)")
        if kernel.shape[:2] != (3, 3):
            raise ValueError(f"WinogradConv: expected a (3, 3, C, F) kernel, received {kernel.shape}")
        self.index, self.name, self.block, self.tile = chosen
        self.u = pack_winograd(kernel, self.block)
        self.b = pack_bias(bias, kernel.shape[3], self.block)

    def __call__(self, x: np.ndarray, out: np.ndarray, relu: bool, pool: bool, threads: int = 1) -> np.ndarray:
        _kernels.winograd2d(self.index, np.ascontiguousarray(x, np.float32), self.u, self.b, out, bool(relu),
                            bool(pool), threads)
        return out


def lstm_gates(z: np.ndarray, xw: np.ndarray, c: np.ndarray, h: np.ndarray) -> None:
    """The Bidirectional LSTM loop's gate step in one C call (the current variant), in place: z (2, k, 4u) =
    h_prev @ R with the sigmoid gates' columns negated (order i, f, o, c), xw (2, k, 4u), c (2, k, u) updated,
    h (2, k, u) written. float32, rows contiguous (the first axis may be strided)."""
    _kernels.lstm_gates(variant[0], z, xw, c, h)


configure()
