"""Conv2D: cross-correlation over channels-last images, as Keras."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import activations, parallel
from ..threads import single_threaded_blas
from .base import Cache, Layer, check_choice, check_positive_int, pair

#: Upper bound on the im2col buffer of one chunk of the batch (elements, float32): keeps it in cache-ish memory.
IM2COL_CHUNK_ELEMENTS = 1 << 22
#: The same bound for the inference path, which reuses one buffer: small enough to stay in the L2/L3 caches
#: (RGB 32x32 -> 32 with pooling at batch 256, interleaved: 10.7 ms at 1 << 19, 12.2 at 1 << 20, 13.9 at 1 << 21).
IM2COL_FAST_CHUNK_ELEMENTS = 1 << 19
#: Fewer input channels than this: build the im2col matrix channel-major (contiguous runs of wo, not C).
IM2COL_CHANNEL_MAJOR_BELOW = 8
#: Winograd F(2x2, 3x3) (Lavin & Gray, 2015): Bᵀ, G, Aᵀ, and the 2-D input/output transforms as Kronecker
#: products (the input one, WINO_BB, is applied as row and column differences instead; tests use it).
WINO_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
WINO_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
WINO_BB, WINO_AA = np.kron(WINO_BT, WINO_BT), np.kron(WINO_AT, WINO_AT)
#: Activations a 2x2 max pooling commutes with (non-decreasing): Conv2D.infer can pool before them.
POOL_COMMUTING_ACTIVATIONS = ("linear", "relu")
#: Below this many input channels the 16 products are too thin for BLAS and im2col is faster.
WINOGRAD_MIN_CHANNELS = 16
#: Fewer 2x2 output tiles (N * H * W / 4) than this: im2col. Per layer on a busy host (one BLAS thread,
#: interleaved medians) Winograd won from batch 8 (16x16x64->64 at batch 8: 2.4 vs 3.2 ms); but on the
#: quiet host, whole served CNN interleaved, im2col with OpenBLAS' own threads won at batch 32 (24.3 vs
#: 34.5 ms) and they were even at 256 (173 vs 170 ms). 4096 tiles: batch 256 of 8x8, 64 of 16x16.
WINOGRAD_MIN_TILES = 4096
#: The same within one part of a split batch (``parallel.in_worker()``: one BLAS thread, the other cores
#: busy with the other parts), where the products no longer have OpenBLAS' threads: Winograd from 256
#: tiles (whole cnn split in 2 parts, interleaved: 256 / 512 / 1024 even within noise at batch 64-256;
#: at batch 32, whose 8x8 layers have 256 tiles per part, 256 against 512: 0.93x over 24 pairs).
WINOGRAD_MIN_TILES_IN_PART = 256
#: 4x4 tiles per chunk of the batch: the transform buffers are reused across chunks. Whole served cnn split
#: in 2 parts (one BLAS thread each), interleaved, relative to 1024: 128 tiles 1.19-1.24x slower, 256 1.10-1.18x,
#: 512 1.07-1.09x, 2048 0.96x, 4096 0.97-1.00x (batch 64 and 256): fewer, larger products and passes beat
#: cache-sized chunks here. 1024 keeps the buffers at 16 MB per part for 128 channels.
WINOGRAD_CHUNK_TILES = 1024
#: Inference splits the batch over the cores (threads, one BLAS thread each) only for parts of at least
#: this many items and this many multiply-adds. A hand-over costs 20 us idle but up to milliseconds when
#: the other core is busy. On a busy host a split won from batch 32 (p25 73 vs 94 ms), but on the quiet
#: host OpenBLAS' own threads were faster at batch 32 (24.3 vs 31.5 ms, whole CNN): split from 256.
CONV_PARALLEL_MIN_ITEMS = 128
CONV_PARALLEL_MIN_WORK = 1 << 22


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding along one axis: the extra cell goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


def pad_images(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding: str,
               value: float = 0.0) -> np.ndarray:
    """Pad (N, H, W, C) for a 'same' window; 'valid' returns ``x`` unchanged."""
    if padding == "valid":
        return x
    (pt, pb), (pl, pr) = (same_padding(x.shape[1], kernel[0], strides[0]),
                          same_padding(x.shape[2], kernel[1], strides[1]))
    if pt == pb == pl == pr == 0:
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def same_pads(x_shape: tuple, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of an (N, H, W, C) input."""
    if padding == "valid":
        return 0, 0, 0, 0
    return (*same_padding(x_shape[1], kernel[0], strides[0]), *same_padding(x_shape[2], kernel[1], strides[1]))


def window_offsets(kernel: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]):
    """For every kernel offset (i, j): its flat index and the strided slices it reads in a padded input.

    Loops over these (kh*kw of them) are how im2col, col2im and the pooling gradients stay vectorized.
    """
    (kh, kw), (sh, sw), (ho, wo) = kernel, strides, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """A strided view (N, Ho, Wo, C, kh, kw) of every window of an already padded (N, H, W, C)."""
    return sliding_window_view(x, kernel, axis=(1, 2))[:, ::strides[0], ::strides[1]]


def balanced_step(n: int, most: int) -> int:
    """Items per chunk: at most ``most`` (at least 1), with the fewest chunks, of sizes as equal as possible.
    8 images in chunks of at most 7 are 4 + 4, not 7 + 1: a 1-image product is the least efficient one."""
    chunks = -(-n // max(1, min(n, most)))
    return -(-n // chunks)


def max_pool_2x2(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, 'valid' (a last odd row/column is dropped): (N, H, W, C) -> ``out``
    (N, H // 2, W // 2, C). Pairs of rows first (contiguous runs of W*C values), then pairs of columns
    in the half-size result, which is still in cache for a chunk-sized ``z``."""
    n, h, w, c = z.shape
    hp, wp = h // 2, w // 2
    if out.shape != (n, hp, wp, c):
        raise ValueError(f"max_pool_2x2: expected an output of shape {(n, hp, wp, c)}, received {out.shape}")
    rows = np.maximum(z[:, 0:2 * hp:2], z[:, 1:2 * hp:2])
    return np.maximum(rows[:, :, 0:2 * wp:2], rows[:, :, 1:2 * wp:2], out=out)


def _bias_relu(z: np.ndarray, bias: np.ndarray | None, relu: bool) -> None:
    """``z += bias`` then ReLU, in place (``z``'s last axis is the filters)."""
    if bias is not None:
        z += bias
    if relu:
        np.maximum(z, 0, out=z)


def _winograd_input(xp: np.ndarray, cols: np.ndarray, v: np.ndarray) -> None:
    """V = Bᵀ D B for every 4x4 tile D (stride 2) of the padded chunk ``xp`` (b, h+2, w+2, C) into
    ``v`` (16, b, h/2, w/2, C), with ``cols`` (4, b, h+2, w/2, C) as scratch. Bᵀ's rows are
    (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1): differences of strided views along the
    columns, then along the rows; 20 whole-array passes instead of 16 gathers plus a 16x16 product.
    Columns first: the 16 row passes then read runs of (w/2)*C contiguous values, not C (10-20 % faster)."""
    th, tw = v.shape[2], v.shape[3]
    _bt_apply([xp[:, :, k:k + 2 * tw - 1:2] for k in range(4)], cols)
    for j in range(4):
        _bt_apply([cols[j][:, k:k + 2 * th - 1:2] for k in range(4)], v[j::4])


def _bt_apply(d: list, out: np.ndarray) -> None:
    """out[a] = Σ_k Bᵀ[a, k] d[k] for the four columns (rows) d[k] of every tile."""
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


class Conv2D(Layer):
    """2-D convolution (cross-correlation, channels last). x: (N, H, W, C) -> (N, Ho, Wo, filters).

    Weights: ``kernel`` (kh, kw, C, filters), ``bias`` (filters,). Computed as im2col + one matrix
    product per chunk of the batch, so any kernel size (even, large) and any stride work alike.
    Inference (``training=False``) takes faster routes to the same values: Winograd F(2x2, 3x3) for
    3x3/1 'same' convolutions of even-sized images with many channels, else a buffered im2col.
    """

    options = {"filters": None, "kernel_size": None, "strides": None, "padding": ("valid", "same"),
               "activation": None, "use_bias": None, "data_format": (None, "channels_last"),
               "dilation_rate": (1, (1, 1), [1, 1]), "groups": (1,)}

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 activation=None, use_bias: bool = True, name: str | None = None, **_ignored):
        super().__init__(name)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_choice(padding, "padding", ("valid", "same"))
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict:
        return {"name": self.name, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "activation": self.activation, "use_bias": self.use_bias}

    def weight_shapes(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D {self.name!r} expected input of shape (N, H, W, C), received {input_shape}")
        shapes = {"kernel": (*self.kernel_size, input_shape[-1], self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (n, output_size(h, kh, sh, self.padding), output_size(w, kw, sw, self.padding), self.filters)

    def _output_hw(self, x: np.ndarray) -> tuple[int, int]:
        """(Ho, Wo) of the output for input ``x``; an error if the input is smaller than the kernel."""
        _, ho, wo, _ = self.compute_output_shape(x.shape)
        if ho <= 0 or wo <= 0:
            raise ValueError(f"Conv2D {self.name!r}: input {x.shape[1:3]} is smaller than the kernel {self.kernel_size}")
        return ho, wo

    def forward(self, x, mask=None, training=False):
        if not training:
            return self.infer(x)
        kh, kw = self.kernel_size
        kernel = self.weights["kernel"]
        k2d = kernel.reshape(kh * kw * kernel.shape[2], self.filters)  # rows ordered (i, j, c)
        n = len(x)
        ho, wo = self._output_hw(x)
        xp = pad_images(x, self.kernel_size, self.strides, self.padding)
        out = np.empty((n, ho, wo, self.filters), self.dtype)
        per_item = ho * wo * k2d.shape[0]
        step = max(1, IM2COL_CHUNK_ELEMENTS // per_item)
        for start in range(0, n, step):  # chunks of the batch, not items: bounded memory
            win = windows(xp[start:start + step], self.kernel_size, self.strides)  # (n, ho, wo, C, kh, kw)
            cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k2d.shape[0])
            out[start:start + step] = (cols @ k2d).reshape(-1, ho, wo, self.filters)
        if self.use_bias:
            out += self.weights["bias"]
        y = self.act(out)
        if training:
            self.cache = Cache(x_shape=x.shape, xp=xp, z=out, y=y, out_hw=(ho, wo))
        return y

    def infer(self, x: np.ndarray, kernel: np.ndarray | None = None, bias: np.ndarray | None = None,
              activation: str | None = None, max_pool_2x2: bool = False) -> np.ndarray:
        """Inference, optionally with another ``kernel`` (kh, kw, C, filters), ``bias`` (filters,) and
        activation name than the layer's own: ``Model`` folds a following BatchNormalization (and ReLU)
        into them. Results are this call's own fresh arrays: bias and ReLU run in place, per chunk.

        ``max_pool_2x2``: also apply a following MaxPooling2D((2, 2)) ('valid', odd edges dropped) and
        return (N, Ho // 2, Wo // 2, filters). The maximum is taken per chunk while the product is still
        in cache, before the bias and activation: a maximum commutes with adding a per-channel constant
        and with a non-decreasing activation, so the values are exactly those of conv -> pool, and the
        full-size output is never written, biased, activated and read again.
        """
        kernel = self.weights["kernel"] if kernel is None else kernel
        bias = self.weights.get("bias") if bias is None else bias
        activation = self.activation if activation is None else activation
        kh, kw = self.kernel_size
        n = len(x)
        ho, wo = self._output_hw(x)
        if max_pool_2x2 and activation not in POOL_COMMUTING_ACTIVATIONS:
            raise ValueError(f"Conv2D {self.name!r}: max_pool_2x2 needs an activation in {POOL_COMMUTING_ACTIVATIONS} "
                             f"(a maximum commutes with it), received {activation!r}")
        if max_pool_2x2 and (ho < 2 or wo < 2):
            raise ValueError(f"Conv2D {self.name!r}: max_pool_2x2 needs an output of at least 2x2, received {(ho, wo)}")
        pool = max_pool_2x2
        out = np.empty((n, ho // 2, wo // 2, self.filters) if pool else (n, ho, wo, self.filters), self.dtype)
        winograd = self._winograd_applies(x.shape)
        if winograd:
            u = self._winograd_kernel(kernel)
            work = lambda xs, o, b, r: self._winograd(xs, u, o, pool, b, r)  # noqa: E731
        else:
            k2d = kernel.reshape(kh * kw * kernel.shape[2], self.filters)
            work = lambda xs, o, b, r: self._infer(xs, k2d, o, ho, wo, pool, b, r)  # noqa: E731
        in_chunks = activation in ("relu", "linear")  # bias and ReLU per chunk, while it is in cache

        def part(bounds):
            xs, o = x[bounds[0]:bounds[1]], out[bounds[0]:bounds[1]]
            work(xs, o, bias if in_chunks else None, activation == "relu")
            if not in_chunks:
                if bias is not None:
                    o += bias
                o[...] = activations.get(activation)(o)

        # One BLAS thread per part, the parts in threads: one hand-over per layer instead of one per
        # matrix product. OpenBLAS wakes its threads for every product, and when the other core is busy
        # that costs milliseconds each (Winograd makes 17 products per chunk). An unsplit im2col is one
        # product per layer and keeps OpenBLAS' threads: one BLAS thread there was faster on a busy host
        # (served CNN, batch 1: median 7.9 vs 88 ms) but rounds differently enough to break the peer
        # models' 1e-6 batch-invariance check (1.1e-6 between batch 1 and batch 256).
        parts = min(parallel.cores(), n // CONV_PARALLEL_MIN_ITEMS, self._work(x.shape) // CONV_PARALLEL_MIN_WORK)
        if parts < 2 or parallel.in_worker():  # in a pool worker: its siblings hold the cores
            if winograd:
                with single_threaded_blas():
                    part((0, n))
            else:
                part((0, n))
            return out
        edges = [n * i // parts for i in range(parts + 1)]
        with single_threaded_blas():
            parallel.map_parts(part, list(zip(edges[:-1], edges[1:])))
        return out

    def _winograd_applies(self, x_shape) -> bool:
        """3x3, stride 1, 'same', even H and W, and enough channels and tiles for the 16 small products to pay."""
        min_tiles = WINOGRAD_MIN_TILES_IN_PART if parallel.in_worker() else WINOGRAD_MIN_TILES
        return (self.kernel_size == (3, 3) and self.strides == (1, 1) and self.padding == "same"
                and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0 and x_shape[3] >= WINOGRAD_MIN_CHANNELS
                and x_shape[0] * x_shape[1] * x_shape[2] >= 4 * min_tiles)

    def _winograd_kernel(self, kernel: np.ndarray) -> np.ndarray:
        """G g Gᵀ of ``kernel``, (16, C, filters), computed in float64; recomputed whenever the kernel's
        values change (``set_weights`` replaces it, optimizers update it in place, and a folded kernel is a
        new array each call: hence a check by value)."""
        cached = getattr(self, "_wino_cache", None)
        if cached is None or cached[0].shape != kernel.shape or not np.array_equal(cached[0], kernel):
            u = np.einsum("ai,ijcf,bj->abcf", WINO_G, kernel.astype(np.float64), WINO_G)
            cached = (kernel.copy(), np.ascontiguousarray(u.reshape(16, *kernel.shape[2:]), self.dtype))
            self._wino_cache = cached
        return cached[1]

    def _winograd(self, x: np.ndarray, u: np.ndarray, out: np.ndarray, pool: bool = False,
                  bias: np.ndarray | None = None, relu: bool = False) -> None:
        """Winograd F(2x2, 3x3) into ``out``, with U = G g Gᵀ (16, C, filters): each 2x2 output tile from its
        4x4 input tile with 16 products per (tile, channel, filter) instead of 36, i.e. 2.25x fewer
        multiplications in the matrix products.

        Per chunk of the batch: V = Bᵀ D B of every 4x4 input tile D, as column then row differences of
        strided views (Bᵀ has entries 0, ±1), then 16 matrix products M[k] = V[k] @ U[k] over channels,
        then Y = (Aᵀ⊗Aᵀ) M scattered into the output, or, with ``pool``, the maximum of each tile's 4
        outputs: a 2x2 output tile is exactly a 2x2 pooling window. Only U is rounded beyond float32
        sums, so errors stay at the im2col level. ``bias`` and ``relu`` are applied per chunk, in cache.
        The buffers are reused across chunks.
        """
        n, h, w, cin = x.shape
        f, dt = self.filters, self.dtype
        th, tw = h // 2, w // 2
        step = balanced_step(n, WINOGRAD_CHUNK_TILES // (th * tw))
        aa = WINO_AA.astype(dt)
        xp = np.zeros((step, h + 2, w + 2, cin), dt)  # the 'same' zero border stays zero across chunks
        cols = np.empty((4, step, h + 2, tw, cin), dt)
        v = np.empty((16, step * th * tw, cin), dt)
        m = np.empty((16, step * th * tw, f), dt)
        y = np.empty((4, step * th * tw * f), dt)
        for start in range(0, n, step):
            b = min(step, n - start)
            tiles = b * th * tw
            xp[:b, 1:h + 1, 1:w + 1] = x[start:start + b]
            _winograd_input(xp[:b], cols[:, :b], v[:, :tiles].reshape(16, b, th, tw, cin))
            np.matmul(v[:, :tiles], u, out=m[:, :tiles])
            np.matmul(aa, m[:, :tiles].reshape(16, -1), out=y[:, :tiles * f])
            if pool:  # y[2r + c] is output (r, c) of every tile
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

    def _infer(self, x: np.ndarray, k2d: np.ndarray, out: np.ndarray, ho: int, wo: int, pool: bool = False,
               bias: np.ndarray | None = None, relu: bool = False) -> None:
        """Inference im2col into one reused, cache-sized buffer, one slice copy per window offset.

        The generic path (``windows(...).transpose(...)``) is a 6-D strided copy whose innermost run is
        only C values (3 for RGB). Here each of the kh*kw offsets copies a whole block: (chunk, ho, wo, C)
        for many channels, or, below ``IM2COL_CHANNEL_MAJOR_BELOW`` channels, rows of wo values in a
        channel-major buffer read by the product as a transposed matrix. The padded input buffer keeps
        its zero border across chunks; the product goes straight into ``out``, or, with ``pool``, into a
        chunk buffer that is max-pooled 2x2 into ``out`` while still in cache; then ``bias`` and ``relu``.
        """
        n, h, w, cin = x.shape
        (kh, kw), f, dt = self.kernel_size, self.filters, self.dtype
        if self.kernel_size == (1, 1) and self.strides == (1, 1):  # the image is its own im2col
            full = np.empty((n, ho, wo, f), dt) if pool else out
            np.matmul(np.ascontiguousarray(x, dt).reshape(-1, cin), k2d, out=full.reshape(-1, f))
            if pool:
                max_pool_2x2(full, out)
            _bias_relu(out, bias, relu)
            return
        pt, pb, pl, pr = same_pads(x.shape, self.kernel_size, self.strides, self.padding)
        step = balanced_step(n, IM2COL_FAST_CHUNK_ELEMENTS // (ho * wo * k2d.shape[0]))
        channel_major = cin < IM2COL_CHANNEL_MAJOR_BELOW
        xp = np.zeros((cin, step, h + pt + pb, w + pl + pr) if channel_major else
                      (step, h + pt + pb, w + pl + pr, cin), dt)
        buf = np.empty(step * ho * wo * k2d.shape[0], dt)
        prod = np.empty((step, ho, wo, f), dt) if pool else None
        offsets = list(window_offsets(self.kernel_size, self.strides, (ho, wo)))
        for start in range(0, n, step):
            m = min(step, n - start)
            xc = x[start:start + m]
            if channel_major:
                xp[:, :m, pt:pt + h, pl:pl + w] = xc.transpose(3, 0, 1, 2)
                cols = buf[:m * ho * wo * k2d.shape[0]].reshape(kh * kw, cin, m, ho, wo)
                for k, (_, ys, xs) in offsets:
                    cols[k] = xp[:, :m, ys, xs]
                a = cols.reshape(k2d.shape[0], -1).T  # (m*ho*wo, K), Fortran order: BLAS reads it transposed
            else:
                xp[:m, pt:pt + h, pl:pl + w] = xc
                cols = buf[:m * ho * wo * k2d.shape[0]].reshape(m, ho, wo, kh * kw, cin)
                for k, (_, ys, xs) in offsets:
                    cols[:, :, :, k] = xp[:m, ys, xs]
                a = cols.reshape(m * ho * wo, -1)
            if pool:
                np.matmul(a, k2d, out=prod[:m].reshape(-1, f))
                max_pool_2x2(prod[:m], out[start:start + m])
            else:
                np.matmul(a, k2d, out=out[start:start + m].reshape(-1, f))
            _bias_relu(out[start:start + m], bias, relu)

    def _work(self, x_shape) -> int:
        """Multiply-adds of the direct algorithm for an input of ``x_shape``."""
        _, ho, wo, _ = self.compute_output_shape(x_shape)
        return x_shape[0] * ho * wo * self.kernel_size[0] * self.kernel_size[1] * x_shape[3] * self.filters

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, Ho, Wo, filters) -> dx (N, H, W, C); grads of kernel and bias."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        kh, kw = self.kernel_size
        kernel = self.weights["kernel"]
        cin = kernel.shape[2]
        k2d = kernel.reshape(kh * kw * cin, self.filters)
        d2 = dz.reshape(-1, self.filters)
        cols = windows(c.xp, self.kernel_size, self.strides).transpose(0, 1, 2, 4, 5, 3).reshape(-1, k2d.shape[0])
        self.grads = {"kernel": (cols.T @ d2).reshape(kernel.shape)}
        if self.use_bias:
            self.grads["bias"] = d2.sum(axis=0)
        dcols = (d2 @ k2d.T).reshape(*dz.shape[:3], kh * kw, cin)
        dxp = np.zeros(c.xp.shape, self.dtype)
        for k, region in window_offsets(self.kernel_size, self.strides, c.out_hw):  # col2im
            dxp[region] += dcols[:, :, :, k]
        pt, _, pl, _ = same_pads(c.x_shape, self.kernel_size, self.strides, self.padding)
        return dxp[:, pt:pt + c.x_shape[1], pl:pl + c.x_shape[2]]
