"""Convolution at inference: Conv2D [-> BatchNormalization folded in] [-> ReLU] [-> 2x2 max pooling] as one step.

Algorithms, chosen per layer and input shape (``choose``):

* ``direct-winograd``: the compiled kernel's Winograd F(2x2, 3x3) (``kernels.WinogradConv``, U = G g Gᵀ packed
  once here) for 3x3, stride 1, 'same' layers of ``COMPILED_WINOGRAD_MIN_CHANNELS`` or more channels on
  even-sized images; bias, ReLU and the 2x2 pooling window in its output transform;
* ``direct``: the compiled register-blocked direct convolution (``_kernels.c`` through ``kernels.DirectConv``,
  kernel packed once here), bias, ReLU and pooling fused in its tile epilogue; every other float32 Conv2D
  without dilation or groups. Both are taken whenever the extension is built and ``SCRATCH_KERNELS`` is not
  ``numpy``; per layer of the committed CNN they ran 0.9-4.7x as fast as the NumPy algorithms below
  (reports/inference_plan.md). The NumPy algorithms are the fallback:
* ``winograd``: F(2x2, 3x3) (Lavin & Gray, 2015) for 3x3/1 'same' convolutions of even-sized images with
  enough channels and tiles: 16 products per (tile, channel, filter) instead of 36. Only U = G g Gᵀ is rounded
  beyond float32 sums (computed in float64), so errors stay at the im2col level (F(4x4, 3x3) would not: it is
  not used, see issue 16's parity bound);
* ``im2col``: a cache-sized reused im2col buffer, one slice copy per window offset, channel-major for few
  input channels; ``1x1``: the image is its own im2col.

Each chunk of the batch is biased, ReLU'd and (with ``pool``) max-pooled while it is in cache: a maximum
commutes with adding a per-channel constant and with a non-decreasing activation, so the values are those of
conv -> pool, and the full-size output is never written. Thresholds and their measurements:
reports/engine_speed_notes.md.
"""
from __future__ import annotations

import numpy as np

from .. import activations
from . import kernels
from ..layers.convolution import same_pads, window_offsets
from ..threads import single_threaded_blas
from .memory import Fresh
from .split import Part, whole_batch_threads

#: im2col buffer of one chunk (elements): small enough to stay in the L2/L3 caches.
IM2COL_FAST_CHUNK_ELEMENTS = 1 << 19
#: Fewer input channels than this: build the im2col matrix channel-major (contiguous runs of wo, not C).
IM2COL_CHANNEL_MAJOR_BELOW = 8
#: Winograd F(2x2, 3x3): Bᵀ, G, Aᵀ, and the 2-D transforms as Kronecker products (the input one, WINO_BB,
#: is applied as row and column differences instead; tests use it).
WINO_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
WINO_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
WINO_BB, WINO_AA = np.kron(WINO_BT, WINO_BT), np.kron(WINO_AT, WINO_AT)
#: Activations a 2x2 max pooling commutes with (non-decreasing): pooled before them.
POOL_COMMUTING_ACTIVATIONS = ("linear", "relu")
#: The compiled kernel's Winograd F(2x2, 3x3) from this many input channels (fewer: its direct tile; the
#: committed CNN's 3-channel first layer ran 4x slower by Winograd, 1.1 vs 0.27 ms at batch 16).
COMPILED_WINOGRAD_MIN_CHANNELS = 16
#: Below this many input channels the 16 products are too thin for BLAS: im2col.
WINOGRAD_MIN_CHANNELS = 16
#: Fewer 2x2 output tiles (N * H * W / 4) than this: im2col (whole batch, OpenBLAS' own threads).
WINOGRAD_MIN_TILES = 4096
#: The same within one part of a split batch (one BLAS thread, the other cores busy with the other parts).
WINOGRAD_MIN_TILES_IN_PART = 256
#: 2x2 output tiles per chunk: the transform buffers are reused across chunks.
WINOGRAD_CHUNK_TILES = 1024
#: The compiled kernel's call gets one more thread per this many FLOPs (outside a split batch). The kernel's
#: pool keeps its workers spinning between the layers of a forward pass, so handing out work costs a few
#: microseconds (a thread start cost ~16 us): the committed CNN's first layer at batch 1 (1.8 MFLOP) took
#: 0.015 ms on 2 threads against 0.021 ms on one (min of 200 calls, quiet host).
DIRECT_THREAD_MIN_FLOPS = 1e6


def direct_threads(part: Part, flops: float) -> int:
    """Threads the compiled kernel splits one call of ``flops`` over: 1 inside a part (the other cores compute
    the other parts); for a batch the split policy left whole (batch 1 to 7 of a CNN on 2 cores) the cores,
    one per ``DIRECT_THREAD_MIN_FLOPS``."""
    if part.split:
        return 1
    cores = part.threads if part.threads is not None else whole_batch_threads()
    return max(1, min(cores, int(flops // DIRECT_THREAD_MIN_FLOPS)))


def balanced_step(n: int, most: int) -> int:
    """Items per chunk: at most ``most`` (at least 1), with the fewest chunks, of sizes as equal as possible.
    8 images in chunks of at most 7 are 4 + 4, not 7 + 1: a 1-image product is the least efficient one."""
    chunks = -(-n // max(1, min(n, most)))
    return -(-n // chunks)


def max_pool_2x2(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, 'valid' (a last odd row/column is dropped): (N, H, W, C) -> ``out``
    (N, H // 2, W // 2, C). Pairs of rows first (contiguous runs of W*C values), then pairs of columns."""
    n, h, w, c = z.shape
    hp, wp = h // 2, w // 2
    if out.shape != (n, hp, wp, c):
        raise ValueError(f"max_pool_2x2: expected an output of shape {(n, hp, wp, c)}, received {out.shape}")
    rows = np.maximum(z[:, 0:2 * hp:2], z[:, 1:2 * hp:2])
    return np.maximum(rows[:, :, 0:2 * wp:2], rows[:, :, 1:2 * wp:2], out=out)


def _bias_relu(z: np.ndarray, bias: np.ndarray | None, relu: bool) -> None:
    if bias is not None:
        z += bias
    if relu:
        np.maximum(z, 0, out=z)


def winograd_input(xp: np.ndarray, cols: np.ndarray, v: np.ndarray) -> None:
    """V = Bᵀ D B for every 4x4 tile D (stride 2) of the padded chunk ``xp`` (b, h+2, w+2, C) into
    ``v`` (16, b, h/2, w/2, C), with ``cols`` (4, b, h+2, w/2, C) as scratch: differences of strided views
    along the columns, then along the rows (Bᵀ has entries 0, ±1); 20 whole-array passes."""
    th, tw = v.shape[2], v.shape[3]
    _bt_apply([xp[:, :, k:k + 2 * tw - 1:2] for k in range(4)], cols)
    for j in range(4):
        _bt_apply([cols[j][:, k:k + 2 * th - 1:2] for k in range(4)], v[j::4])


def _bt_apply(d: list, out: np.ndarray) -> None:
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def winograd_kernel(kernel: np.ndarray, dtype) -> np.ndarray:
    """U = G g Gᵀ of a (3, 3, C, F) kernel, (16, C, F), computed in float64."""
    u = np.einsum("ai,ijcf,bj->abcf", WINO_G, kernel.astype(np.float64), WINO_G)
    return np.ascontiguousarray(u.reshape(16, *kernel.shape[2:]), dtype)


class ConvStep:
    """A Conv2D (its weights, or a BatchNormalization folded in once) with its activation and optional
    2x2/2 max pooling. ``__call__(x, part)`` -> the output, written into the part's arena."""

    def __init__(self, layer, kernel: np.ndarray | None = None, bias: np.ndarray | None = None,
                 activation: str | None = None, pool: bool = False, key=None):
        self.layer, self.key = layer, key if key is not None else id(self)
        self.kernel = layer.weights["kernel"] if kernel is None else kernel
        self.bias = layer.weights.get("bias") if bias is None else bias
        self.activation = layer.activation if activation is None else activation
        self.pool = bool(pool)
        if self.pool and self.activation not in POOL_COMMUTING_ACTIVATIONS:
            raise ValueError(f"Conv2D {layer.name!r}: max_pool_2x2 needs an activation in {POOL_COMMUTING_ACTIVATIONS} "
                             f"(a maximum commutes with it), received {self.activation!r}")
        kh, kw, cin, f = self.kernel.shape
        self.k2d = np.ascontiguousarray(self.kernel.reshape(kh * kw * cin, f), layer.dtype)
        self.winograd_geometry = layer.kernel_size == (3, 3) and layer.strides == (1, 1) and layer.padding == "same"
        self.u = winograd_kernel(self.kernel, layer.dtype) if self.winograd_geometry else None
        self._aa = WINO_AA.astype(layer.dtype)
        compiled = kernels.variant is not None and np.dtype(layer.dtype) == np.float32 and not layer.general
        self.direct = kernels.DirectConv(self.kernel, self.bias, layer.strides) if compiled else None
        # Winograd F(2x2, 3x3) in the compiled kernel, for 'same' 3x3 layers with enough channels (images of
        # even size, checked per call): ~30 % faster than the direct tile on the committed CNN's layers of 32+
        # channels (reports/inference_plan.md), errors no larger (U is computed in float64).
        self.winograd = (kernels.WinogradConv(self.kernel, self.bias) if compiled and self.winograd_geometry
                         and cin >= COMPILED_WINOGRAD_MIN_CHANNELS else None)
        self._geometry: dict[tuple, tuple] = {}  # input shape (H, W, C) -> (output shape tail, pads, FLOPs per item)

    def choose(self, x_shape, split: bool = False) -> str:
        """'direct', 'winograd', '1x1' or 'im2col' for an input of ``x_shape`` (a part's, when ``split``)."""
        layer = self.layer
        if self.direct is not None:
            return "direct-winograd" if self._compiled_winograd(x_shape) else "direct"
        min_tiles = WINOGRAD_MIN_TILES_IN_PART if split else WINOGRAD_MIN_TILES
        if (self.winograd_geometry and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0
                and x_shape[3] >= WINOGRAD_MIN_CHANNELS and x_shape[0] * x_shape[1] * x_shape[2] >= 4 * min_tiles):
            return "winograd"
        if layer.kernel_size == (1, 1) and layer.strides == (1, 1):
            return "1x1"
        return "im2col"

    def __call__(self, x: np.ndarray, part: Part | None = None) -> np.ndarray:
        part = part or Part(Fresh())
        if self.direct is not None and self.activation in POOL_COMMUTING_ACTIVATIONS:
            return self._direct_call(x, part)
        layer, arena = self.layer, part.arena
        n = len(x)
        ho, wo = layer._output_hw(x)
        pool = self.pool
        if pool and (ho < 2 or wo < 2):
            raise ValueError(f"Conv2D {layer.name!r}: max_pool_2x2 needs an output of at least 2x2, received {(ho, wo)}")
        f, dt = layer.filters, layer.dtype
        out = arena.get((self.key, "out"), (n, ho // 2, wo // 2, f) if pool else (n, ho, wo, f), dt)
        in_chunks = self.activation in POOL_COMMUTING_ACTIVATIONS  # bias and ReLU per chunk, in cache
        bias, relu = (self.bias if in_chunks else None), self.activation == "relu"
        algorithm = self.choose(x.shape, part.split)
        if algorithm == "direct":  # bias (always), ReLU and pooling in the kernel's epilogue
            flops = 2.0 * n * ho * wo * self.k2d.shape[0] * f  # K = kh * kw * C multiply-adds per output
            self.direct(x, out, same_pads(x.shape, layer.kernel_size, layer.strides, layer.padding), relu, pool,
                        direct_threads(part, flops))
            if not in_chunks:
                out[...] = activations.get(self.activation)(out)
            return out
        if algorithm == "winograd":
            if part.single_blas:
                self._winograd(x, out, arena, bias, relu)
            else:
                with single_threaded_blas():  # 17 products per chunk: waking BLAS threads for each costs more
                    self._winograd(x, out, arena, bias, relu)
        elif algorithm == "1x1":
            self._one_by_one(x, out, arena, ho, wo, bias, relu)
        else:
            self._im2col(x, out, arena, ho, wo, bias, relu)
        if not in_chunks:
            if self.bias is not None:
                out += self.bias
            out[...] = activations.get(self.activation)(out)
        return out

    def _compiled_winograd(self, x_shape) -> bool:
        return self.winograd is not None and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0

    def _direct_call(self, x: np.ndarray, part: Part) -> np.ndarray:
        """The compiled kernel, bias, ReLU and pooling in its epilogue. The geometry of an input shape is
        worked out once (a batch-1 forward pass is ~0.5 ms: per-call Python shows)."""
        geometry = self._geometry.get(x.shape[1:])
        if geometry is None:
            layer = self.layer
            ho, wo = layer._output_hw(x)
            if self.pool and (ho < 2 or wo < 2):
                raise ValueError(f"Conv2D {layer.name!r}: max_pool_2x2 needs an output of at least 2x2, received "
                                 f"{(ho, wo)}")
            tail = (ho // 2, wo // 2, layer.filters) if self.pool else (ho, wo, layer.filters)
            pads = same_pads(x.shape, layer.kernel_size, layer.strides, layer.padding)
            flops = 2.0 * ho * wo * self.k2d.shape[0] * layer.filters  # per item: K = kh * kw * C multiply-adds
            winograd = self._compiled_winograd(x.shape)
            geometry = self._geometry[x.shape[1:]] = (tail, pads, flops, winograd)
        tail, pads, flops, winograd = geometry
        n = len(x)
        out = part.arena.get((self.key, "out"), (n, *tail), self.layer.dtype)
        relu, threads = self.activation == "relu", direct_threads(part, n * flops)
        if winograd:
            self.winograd(x, out, relu, self.pool, threads)
        else:
            self.direct(x, out, pads, relu, self.pool, threads)
        return out

    def _winograd(self, x, out, arena, bias, relu) -> None:
        """Per chunk: V = Bᵀ D B of every 4x4 input tile, 16 products M[k] = V[k] @ U[k] over channels,
        Y = (Aᵀ⊗Aᵀ) M scattered into the output, or with ``pool`` the maximum of each tile's 4 outputs
        (a 2x2 output tile is exactly a 2x2 pooling window)."""
        n, h, w, cin = x.shape
        f, dt, key = self.layer.filters, self.layer.dtype, self.key
        th, tw = h // 2, w // 2
        step = balanced_step(n, WINOGRAD_CHUNK_TILES // (th * tw))
        xp = arena.get((key, "wino-xp"), (step, h + 2, w + 2, cin), dt)
        xp[:, 0], xp[:, -1], xp[:, :, 0], xp[:, :, -1] = 0, 0, 0, 0  # the 'same' zero border
        cols = arena.get((key, "wino-cols"), (4, step, h + 2, tw, cin), dt)
        v = arena.get((key, "wino-v"), (16, step * th * tw, cin), dt)
        m = arena.get((key, "wino-m"), (16, step * th * tw, f), dt)
        y = arena.get((key, "wino-y"), (4, step * th * tw * f), dt)
        for start in range(0, n, step):
            b = min(step, n - start)
            tiles = b * th * tw
            xp[:b, 1:h + 1, 1:w + 1] = x[start:start + b]
            winograd_input(xp[:b], cols[:, :b], v[:, :tiles].reshape(16, b, th, tw, cin))
            np.matmul(v[:, :tiles], self.u, out=m[:, :tiles])
            np.matmul(self._aa, m[:, :tiles].reshape(16, -1), out=y[:, :tiles * f])
            if self.pool:  # y[2r + c] is output (r, c) of every tile
                o = out[start:start + b].reshape(-1)
                np.maximum(y[0, :tiles * f], y[1, :tiles * f], out=o)
                np.maximum(o, y[2, :tiles * f], out=o)
                np.maximum(o, y[3, :tiles * f], out=o)
                _bias_relu(out[start:start + b], bias, relu)
                continue
            _bias_relu(y[:, :tiles * f].reshape(4, tiles, f), bias, relu)
            o = out[start:start + b].reshape(b, th, 2, tw, 2, f)
            for r in range(2):
                for c in range(2):
                    o[:, :, r, :, c] = y[2 * r + c, :tiles * f].reshape(b, th, tw, f)

    def _one_by_one(self, x, out, arena, ho, wo, bias, relu) -> None:
        n, _, _, cin = x.shape
        f, dt = self.layer.filters, self.layer.dtype
        full = arena.get((self.key, "full"), (n, ho, wo, f), dt) if self.pool else out
        np.matmul(np.ascontiguousarray(x, dt).reshape(-1, cin), self.k2d, out=full.reshape(-1, f))
        if self.pool:
            max_pool_2x2(full, out)
        _bias_relu(out, bias, relu)

    def _im2col(self, x, out, arena, ho, wo, bias, relu) -> None:
        """im2col into one reused, cache-sized buffer: each of the kh*kw offsets copies a whole block,
        (chunk, ho, wo, C), or below ``IM2COL_CHANNEL_MAJOR_BELOW`` channels rows of wo values into a
        channel-major buffer that the product reads transposed. The padded input keeps its zero border."""
        layer, key = self.layer, self.key
        n, h, w, cin = x.shape
        (kh, kw), f, dt = layer.kernel_size, layer.filters, layer.dtype
        k = self.k2d.shape[0]
        pt, pb, pl, pr = same_pads(x.shape, layer.kernel_size, layer.strides, layer.padding)
        step = balanced_step(n, IM2COL_FAST_CHUNK_ELEMENTS // (ho * wo * k))
        channel_major = cin < IM2COL_CHANNEL_MAJOR_BELOW
        xp = arena.zeros((key, "xp"), (cin, step, h + pt + pb, w + pl + pr) if channel_major else
                         (step, h + pt + pb, w + pl + pr, cin), dt)
        buf = arena.get((key, "cols"), (step * ho * wo * k,), dt)
        prod = arena.get((key, "prod"), (step, ho, wo, f), dt) if self.pool else None
        offsets = list(window_offsets(layer.kernel_size, layer.strides, (ho, wo)))
        for start in range(0, n, step):
            m = min(step, n - start)
            xc = x[start:start + m]
            if channel_major:
                xp[:, :m, pt:pt + h, pl:pl + w] = xc.transpose(3, 0, 1, 2)
                cols = buf[:m * ho * wo * k].reshape(kh * kw, cin, m, ho, wo)
                for i, (_, ys, xs) in offsets:
                    cols[i] = xp[:, :m, ys, xs]
                a = cols.reshape(k, -1).T  # (m*ho*wo, K), Fortran order: BLAS reads it transposed
            else:
                xp[:m, pt:pt + h, pl:pl + w] = xc
                cols = buf[:m * ho * wo * k].reshape(m, ho, wo, kh * kw, cin)
                for i, (_, ys, xs) in offsets:
                    cols[:, :, :, i] = xp[:m, ys, xs]
                a = cols.reshape(m * ho * wo, -1)
            if self.pool:
                np.matmul(a, self.k2d, out=prod[:m].reshape(-1, f))
                max_pool_2x2(prod[:m], out[start:start + m])
            else:
                np.matmul(a, self.k2d, out=out[start:start + m].reshape(-1, f))
            _bias_relu(out[start:start + m], bias, relu)


def fold_batchnorm(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of ``conv`` followed by inference-mode ``bn``, folded once in float64:
    ``kernel * scale`` and ``bias * scale + shift`` with ``scale = gamma / sqrt(var + eps)``,
    ``shift = beta - mean * scale``."""
    scale, shift = batchnorm_affine(bn, np.float64)
    kernel = conv.weights["kernel"].astype(np.float64) * scale
    bias = shift if conv.weights.get("bias") is None else conv.weights["bias"].astype(np.float64) * scale + shift
    return kernel.astype(conv.dtype), bias.astype(conv.dtype)


def batchnorm_affine(bn, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization at inference as ``x * scale + shift`` per channel (C,) each."""
    dtype = np.dtype(dtype or bn.dtype)
    w = {k: v.astype(dtype) for k, v in bn.weights.items()}
    scale = 1.0 / np.sqrt(w["moving_variance"] + dtype.type(bn.epsilon))
    if bn.scale:
        scale = scale * w["gamma"]
    shift = -w["moving_mean"] * scale
    if bn.center:
        shift = shift + w["beta"]
    return scale, shift


def conv2d(layer, x: np.ndarray, kernel=None, bias=None, activation: str | None = None,
           max_pool_2x2: bool = False, part: Part | None = None) -> np.ndarray:
    """One-off inference of ``layer`` on ``x`` (fresh arrays), as a plan's step computes it; for tests and
    profiling. ``part``: as if inside a part of a split batch."""
    step = ConvStep(layer, kernel, bias, activation, max_pool_2x2)
    return np.array(step(x, part or Part(Fresh())))
