"""Conv2D: cross-correlation over channels-last images, as Keras."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import activations
from .base import Cache, Layer, check_choice, check_positive_int, pair

#: Upper bound on the im2col buffer of one chunk of the batch (elements, float32): keeps it in cache-ish memory.
IM2COL_CHUNK_ELEMENTS = 1 << 22
#: The same bound for the inference path, which reuses one buffer: small enough to stay in the L2/L3 caches.
IM2COL_FAST_CHUNK_ELEMENTS = 1 << 20
#: Fewer input channels than this: build the im2col matrix channel-major (contiguous runs of wo, not C).
IM2COL_CHANNEL_MAJOR_BELOW = 8
#: Winograd F(2x2, 3x3) (Lavin & Gray, 2015): Bᵀ, G, Aᵀ, and the 2-D input/output transforms as Kronecker products.
WINO_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
WINO_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
WINO_BB, WINO_AA = np.kron(WINO_BT, WINO_BT), np.kron(WINO_AT, WINO_AT)
#: Below this many input channels the 16 products are too thin for BLAS and im2col is faster.
WINOGRAD_MIN_CHANNELS = 16
#: Below this batch size im2col was as fast or faster (served CNN, 2-core EPYC, interleaved A/B:
#: batch 32 60 vs 81 ms, batch 256 Winograd 221-319 vs im2col 260-402 ms).
WINOGRAD_MIN_BATCH = 128
#: 4x4 tiles per chunk of the batch: keeps the transform buffers within the caches.
WINOGRAD_CHUNK_TILES = 1024


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

    def forward(self, x, mask=None, training=False):
        if not training:
            return self.infer(x)
        kh, kw = self.kernel_size
        kernel = self.weights["kernel"]
        k2d = kernel.reshape(kh * kw * kernel.shape[2], self.filters)  # rows ordered (i, j, c)
        n = len(x)
        _, ho, wo, _ = self.compute_output_shape((n, *x.shape[1:]))
        if ho <= 0 or wo <= 0:
            raise ValueError(f"Conv2D {self.name!r}: input {x.shape[1:3]} is smaller than the kernel {self.kernel_size}")
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
              activation: str | None = None) -> np.ndarray:
        """Inference, optionally with another ``kernel`` (kh, kw, C, filters), ``bias`` (filters,) and
        activation name than the layer's own: ``Model`` folds a following BatchNormalization (and ReLU)
        into them. Results are this call's own fresh arrays, so the activation runs in place."""
        kernel = self.weights["kernel"] if kernel is None else kernel
        bias = self.weights.get("bias") if bias is None else bias
        activation = self.activation if activation is None else activation
        kh, kw = self.kernel_size
        n = len(x)
        _, ho, wo, _ = self.compute_output_shape((n, *x.shape[1:]))
        if ho <= 0 or wo <= 0:
            raise ValueError(f"Conv2D {self.name!r}: input {x.shape[1:3]} is smaller than the kernel {self.kernel_size}")
        if self._winograd_applies(x.shape):
            out = self._winograd(x, kernel, bias)
        else:
            out = self._infer(x, kernel.reshape(kh * kw * kernel.shape[2], self.filters), bias, ho, wo)
        if activation == "relu":
            return np.maximum(out, 0, out=out)
        return activations.get(activation)(out)

    def _winograd_applies(self, x_shape) -> bool:
        """3x3, stride 1, 'same', even H and W, and enough channels and items for the 16 small products to pay."""
        return (self.kernel_size == (3, 3) and self.strides == (1, 1) and self.padding == "same"
                and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0 and x_shape[3] >= WINOGRAD_MIN_CHANNELS
                and x_shape[0] >= WINOGRAD_MIN_BATCH)

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

    def _winograd(self, x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """Winograd F(2x2, 3x3): each 2x2 output tile from its 4x4 input tile with 16 products per
        (tile, channel, filter) instead of 36, i.e. 2.25x fewer multiplications in the matrix products.

        Per chunk of the batch: gather the 16 cells of every 4x4 tile (D), V = (Bᵀ⊗Bᵀ) D, then 16 matrix
        products M[k] = V[k] @ U[k] over channels, then Y = (Aᵀ⊗Aᵀ) M scattered into the output. The
        transforms have entries 0, ±1 (B, A) so only U = G g Gᵀ is rounded; errors stay at the im2col level.
        """
        n, h, w, cin = x.shape
        f = self.filters
        th, tw = h // 2, w // 2
        u = self._winograd_kernel(kernel)
        dt = self.dtype
        step = max(1, min(n, WINOGRAD_CHUNK_TILES // (th * tw)))
        out = np.empty((n, h, w, f), dt)
        self._winograd_chunks(x, out, u, step)  # with BLAS threads: faster at batch 256 than one thread
        if bias is not None:
            out += bias
        return out

    def _winograd_chunks(self, x, out, u, step):
        """The chunk loop of ``_winograd``, writing ``out``; the buffers are reused across chunks."""
        n, h, w, cin = x.shape
        f, dt = self.filters, self.dtype
        th, tw = h // 2, w // 2
        bb, aa = WINO_BB.astype(dt), WINO_AA.astype(dt)
        xp = np.zeros((step, h + 2, w + 2, cin), dt)  # the 'same' zero border stays zero across chunks
        d = np.empty((16, step, th, tw, cin), dt)
        v = np.empty((16, step * th * tw, cin), dt)
        m = np.empty((16, step * th * tw, f), dt)
        y = np.empty((4, step * th * tw * f), dt)
        for start in range(0, n, step):
            b = min(step, n - start)
            tiles = b * th * tw
            xp[:b, 1:h + 1, 1:w + 1] = x[start:start + b]
            for i in range(4):
                for j in range(4):
                    d[4 * i + j, :b] = xp[:b, i:i + h - 1:2, j:j + w - 1:2]
            np.matmul(bb, d[:, :b].reshape(16, -1), out=v[:, :tiles].reshape(16, -1))
            np.matmul(v[:, :tiles], u, out=m[:, :tiles])
            np.matmul(aa, m[:, :tiles].reshape(16, -1), out=y[:, :tiles * f])
            o = out[start:start + b].reshape(b, th, 2, tw, 2, f)
            for r in range(2):
                for c in range(2):
                    o[:, :, r, :, c] = y[2 * r + c, :tiles * f].reshape(b, th, tw, f)

    def _infer(self, x: np.ndarray, k2d: np.ndarray, bias: np.ndarray | None, ho: int, wo: int) -> np.ndarray:
        """Inference im2col into one reused, cache-sized buffer, one slice copy per window offset.

        The generic path (``windows(...).transpose(...)``) is a 6-D strided copy whose innermost run is
        only C values (3 for RGB). Here each of the kh*kw offsets copies a whole block: (chunk, ho, wo, C)
        for many channels, or, below ``IM2COL_CHANNEL_MAJOR_BELOW`` channels, rows of wo values in a
        channel-major buffer read by the product as a transposed matrix. The padded input buffer keeps
        its zero border across chunks; the product goes straight into ``out``.
        """
        n, h, w, cin = x.shape
        (kh, kw), f, dt = self.kernel_size, self.filters, self.dtype
        out = np.empty((n, ho, wo, f), dt)
        if self.kernel_size == (1, 1) and self.strides == (1, 1):  # the image is its own im2col
            np.matmul(np.ascontiguousarray(x, dt).reshape(-1, cin), k2d, out=out.reshape(-1, f))
        else:
            pt, pb, pl, pr = same_pads(x.shape, self.kernel_size, self.strides, self.padding)
            step = max(1, min(n, IM2COL_FAST_CHUNK_ELEMENTS // (ho * wo * k2d.shape[0])))
            channel_major = cin < IM2COL_CHANNEL_MAJOR_BELOW
            xp = np.zeros((cin, step, h + pt + pb, w + pl + pr) if channel_major else
                          (step, h + pt + pb, w + pl + pr, cin), dt)
            buf = np.empty(step * ho * wo * k2d.shape[0], dt)
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
                np.matmul(a, k2d, out=out[start:start + m].reshape(-1, f))
        if bias is not None:
            out += bias
        return out

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
