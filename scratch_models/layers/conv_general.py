"""Convolution with every option Keras has: strides, dilation, groups and explicit padding, in 2-D
(1-D convolutions are 2-D ones over an image of height 1). Shared by Conv1D, the dilated or grouped
Conv2D, DepthwiseConv2D and SeparableConv2D; textbook im2col, forward and backward side by side.

A dilated kernel of size k reads ``k`` cells ``d`` apart: its extent is ``(k - 1) * d + 1``. With
``groups`` g the C input channels and F filters split into g equal blocks; block i of the filters
sees block i of the channels only (kernel (kh, kw, C/g, F)).
"""
from __future__ import annotations

import numpy as np

from .base import Cache


def extent(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def conv_pads(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding along one axis: 'valid' none, 'same' TensorFlow's (the extra cell
    after), 'causal' all of the dilated kernel's extent before."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return extent(kernel, dilation) - 1, 0
    out = -(-size // stride)  # TensorFlow's 'same': ceil(size / stride) outputs, the odd cell after
    total = max((out - 1) * stride + extent(kernel, dilation) - size, 0)
    return total // 2, total - total // 2


def conv_out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    before, after = conv_pads(size, kernel, stride, dilation, padding)
    return (size + before + after - extent(kernel, dilation)) // stride + 1


def offsets(kernel, strides, dilation, out_hw):
    """For every kernel offset (i, j): its flat index and the slices of the padded input it reads."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, strides, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                               slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))


def pad_for_kernel(x: np.ndarray, kernel, strides, dilation, pads) -> tuple[np.ndarray, tuple[int, int]]:
    """(N, H, W, C) zero-padded by ``pads`` ((top, bottom), (left, right)), and the output size (Ho, Wo) of a
    dilated ``kernel`` with ``strides`` over it; an error if the input is smaller than the kernel's extent."""
    (pt, pb), (pl, pr) = pads
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt or pb or pl or pr else x
    ho = (h + pt + pb - extent(kernel[0], dilation[0])) // strides[0] + 1
    wo = (w + pl + pr - extent(kernel[1], dilation[1])) // strides[1] + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"Expected an input of at least the dilated kernel's extent, received {(h, w)} "
                         f"for kernel {tuple(kernel)} with dilation {tuple(dilation)}")
    return xp, (ho, wo)


def conv2d_forward(x: np.ndarray, kernel: np.ndarray, strides, dilation, pads, groups: int = 1):
    """x: (N, H, W, C), kernel (kh, kw, C/groups, F), pads ((top, bottom), (left, right)) ->
    (out (N, Ho, Wo, F), cache for ``conv2d_backward``). One batched product over the groups of the
    im2col matrix (groups, N*Ho*Wo, kh*kw*C/g) by the kernel (groups, kh*kw*C/g, F/g)."""
    n, _, _, c = x.shape
    kh, kw, cg, f = kernel.shape
    if c != cg * groups:
        raise ValueError(f"Expected {cg * groups} input channels ({groups} groups of {cg}), received {c}")
    xp, (ho, wo) = pad_for_kernel(x, (kh, kw), strides, dilation, pads)
    cols = np.empty((n, ho, wo, kh * kw, c), x.dtype)
    for k, region in offsets((kh, kw), strides, dilation, (ho, wo)):
        cols[:, :, :, k] = xp[region]
    # (groups, rows, kh*kw*cg): the channels of group g are columns g*cg..(g+1)*cg-1 of each offset.
    a = cols.reshape(n * ho * wo, kh * kw, groups, cg).transpose(2, 0, 1, 3).reshape(groups, n * ho * wo, -1)
    b = kernel.reshape(kh * kw, cg, groups, f // groups).transpose(2, 0, 1, 3).reshape(groups, kh * kw * cg, -1)
    out = np.matmul(a, b).transpose(1, 0, 2).reshape(n, ho, wo, f)
    return out, Cache(x_shape=x.shape, xp_shape=xp.shape, a=a, pads=pads, out_hw=(ho, wo),
                      strides=tuple(strides), dilation=tuple(dilation), groups=groups)


def conv2d_backward(dz: np.ndarray, kernel: np.ndarray, c) -> tuple[np.ndarray, np.ndarray]:
    """dz: (N, Ho, Wo, F) w.r.t. the output of ``conv2d_forward`` -> (dx (N, H, W, C), dkernel)."""
    kh, kw, cg, f = kernel.shape
    g = c.groups
    n, ho, wo = dz.shape[0], *c.out_hw
    d = dz.reshape(n * ho * wo, g, f // g).transpose(1, 0, 2)  # (groups, rows, F/g)
    b = kernel.reshape(kh * kw, cg, g, f // g).transpose(2, 0, 1, 3).reshape(g, kh * kw * cg, -1)
    dkernel = np.matmul(c.a.transpose(0, 2, 1), d)  # (groups, kh*kw*cg, F/g)
    dkernel = dkernel.reshape(g, kh * kw, cg, f // g).transpose(1, 2, 0, 3).reshape(kernel.shape)
    da = np.matmul(d, b.transpose(0, 2, 1))  # (groups, rows, kh*kw*cg)
    dcols = da.reshape(g, n, ho, wo, kh * kw, cg).transpose(1, 2, 3, 4, 0, 5).reshape(n, ho, wo, kh * kw, g * cg)
    dxp = np.zeros(c.xp_shape, dz.dtype)
    for k, region in offsets((kh, kw), c.strides, c.dilation, (ho, wo)):  # col2im
        dxp[region] += dcols[:, :, :, k]
    (pt, _), (pl, _) = c.pads
    h, w = c.x_shape[1:3]
    return dxp[:, pt:pt + h, pl:pl + w], dkernel


def depthwise_forward(x: np.ndarray, kernel: np.ndarray, strides, dilation, pads) -> np.ndarray:
    """x: (N, H, W, C), depthwise kernel (kh, kw, C, M) -> (N, Ho, Wo, C*M), output channel c*M + m
    (Keras' order). One multiply-add per kernel offset over the whole batch: every channel has its
    own kh*kw filters, so there is no product to hand to BLAS."""
    n, _, _, c = x.shape
    kh, kw, kc, m = kernel.shape
    if kc != c:
        raise ValueError(f"Expected {kc} input channels, received {c}")
    xp, (ho, wo) = pad_for_kernel(x, (kh, kw), strides, dilation, pads)
    out = np.zeros((n, ho, wo, c, m), x.dtype)
    term = np.empty_like(out)  # one product buffer for all offsets
    for k, region in offsets((kh, kw), strides, dilation, (ho, wo)):
        np.multiply(xp[region][..., None], kernel[k // kw, k % kw], out=term)
        out += term
    return out.reshape(n, ho, wo, c * m), Cache(x_shape=x.shape, xp=xp, pads=pads, out_hw=(ho, wo),
                                                strides=tuple(strides), dilation=tuple(dilation))


def depthwise_backward(dz: np.ndarray, kernel: np.ndarray, c) -> tuple[np.ndarray, np.ndarray]:
    """dz: (N, Ho, Wo, C*M) w.r.t. the output of ``depthwise_forward`` -> (dx (N, H, W, C), dkernel
    (kh, kw, C, M)): per offset, ``dkernel[i, j] = Σ x_window * dz`` and ``dx_window += Σ_m dz * kernel[i, j]``."""
    kh, kw, ch, m = kernel.shape
    n, (ho, wo) = dz.shape[0], c.out_hw
    d = dz.reshape(n, ho, wo, ch, m)
    dkernel = np.empty_like(kernel)
    dxp = np.zeros(c.xp.shape, dz.dtype)
    for k, region in offsets((kh, kw), c.strides, c.dilation, (ho, wo)):
        dkernel[k // kw, k % kw] = np.einsum("nhwc,nhwcm->cm", c.xp[region], d)
        dxp[region] += (d * kernel[k // kw, k % kw]).sum(axis=-1)
    (pt, _), (pl, _) = c.pads
    h, w = c.x_shape[1:3]
    return dxp[:, pt:pt + h, pl:pl + w], dkernel
