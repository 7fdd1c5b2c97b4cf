/* scratch_models.inference._kernels: the fused convolution step of the inference plan, compiled.
 *
 * conv2d: Conv2D (kh x kw, stride sy x sx, explicit zero padding) of an NHWC float32 batch, + bias per filter
 * (a BatchNormalization folded in by the plan), optional ReLU, optional 2x2/2 'valid' max pooling, written as a
 * register-blocked direct convolution:
 *
 *   - the kernel is packed once (by the plan, inference/kernels.py) into filter blocks of FBW = VW * NV filters,
 *     (FB, kh, kw, C, FBW), zero-padded to a whole block, so one window row's (kx, c) taps are contiguous;
 *   - each image is copied once into a zero-bordered buffer, so no tap needs a bounds check;
 *   - an output tile of P pixels x one filter block (P * NV vectors: 24 zmm registers for AVX-512) stays in
 *     registers over the whole (ky, kx, c) reduction: per tap, NV weight vectors are loaded and each pixel's
 *     input value is broadcast into NV fused multiply-adds; a tile's pixels may span output rows (a work unit
 *     is a band of rows of at least BAND_PIXELS outputs, so narrow layers still get full tiles);
 *   - bias and ReLU are applied to the registers; with pooling, the band's rows go to a small buffer and their
 *     2x2 maxima to the output (a maximum commutes with adding a constant and with ReLU, exactly).
 *
 * winograd2d: the same step for 3x3, stride 1, 'same' layers of even-sized images by Winograd F(2x2, 3x3): the
 * input transform per band of tile rows, the 16 products in the same register tile, the output transform with
 * bias, ReLU and the pooling window (see wino_ below).
 *
 * One source, three instruction sets: the tile is written with GCC vector extensions and instantiated per
 * target (AVX-512F, AVX2+FMA, and the compiler's baseline: SSE2 on x86-64, NEON on arm64); the best one the CPU
 * supports is chosen at import (__builtin_cpu_supports), and any can be asked for by index (tests run them all).
 * Sums run in float32 in a fixed order (ky, kx, c), as im2col + sgemm does.
 *
 * Arrays come through the buffer protocol (no NumPy C API at build time); the GIL is released while computing,
 * and a call's work units are shared with a pool of worker threads kept between calls (run_job).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#ifndef _WIN32
#include <pthread.h>
#include <sched.h>
#include <time.h>
#define SCRATCH_PTHREADS 1
#endif

#if !defined(__GNUC__)
#error "_kernels.c needs GCC or Clang (vector extensions); the engine then uses its NumPy path"
#endif

#if defined(__x86_64__) || defined(__i386__)
#define SCRATCH_X86 1
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma,avx2")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif
#define TARGET_BASE

typedef struct {
    const float *x;      /* (N, H, W, C) */
    const float *kern;   /* (FB, kh, kw, C, FBW) */
    const float *bias;   /* (FB * FBW,) */
    float *out;          /* (N, Ho, Wo, F) or pooled (N, Ho / 2, Wo / 2, F) */
    Py_ssize_t n, h, w, c, f, fb;
    int kh, kw, sy, sx, pt, pl, ho, wo, hp, wp, relu, pool;
    int band;  /* output rows per work unit (even with pooling): narrow images get bands of several rows */
} ConvArgs;

/* Bidirectional LSTM gate step: per direction d (strides zs, xs, cs, hs in floats), k rows of z, xw (4u) and
 * c, h (u), rows contiguous. */
typedef struct {
    float *z, *c, *h;
    const float *xw;
    Py_ssize_t k, u, zs, xs, cs, hs;
} GateArgs;

/* Copies image i of the batch into the zero-bordered buffer. */
static void pad_image(const ConvArgs *a, float *pad, Py_ssize_t i)
{
    const Py_ssize_t rowlen = a->w * a->c;
    memset(pad, 0, sizeof(float) * (size_t)(a->hp * a->wp * a->c));
    const float *src = a->x + i * a->h * rowlen;
    for (Py_ssize_t y = 0; y < a->h; y++)
        memcpy(pad + ((y + a->pt) * a->wp + a->pl) * a->c, src + y * rowlen, sizeof(float) * (size_t)rowlen);
}

/* Tile sizes: a row of `width` pixels in the fewest tiles of at most `most`, sizes differing by at most one. */
static inline int tile_count(int width, int most) { return (width + most - 1) / most; }

#define UNROLL _Pragma("GCC unroll 16")
/* Most threads one call splits its work over. */
#define MAX_THREADS 64
/* Chunks of work per participating thread in one call (dynamic: whoever is free takes the next). */
#define CHUNKS_PER_THREAD 3
/* Fewest output pixels per work unit: two tiles of the widest variant (AVX-512: 12 pixels). */
#define BAND_PIXELS 24

/* One instruction set's tile and driver. VW: floats per vector; NV: vectors per filter block; PMAX: most pixels
 * per tile (PMAX * NV accumulators + NV weights + a broadcast must fit the register file). */
#define DEFINE_VARIANT(SFX, TGT, VW, NV, PMAX)                                                                  \
typedef float vec_##SFX __attribute__((vector_size(4 * (VW))));                                                 \
typedef float vecu_##SFX __attribute__((vector_size(4 * (VW)), aligned(4)));                                    \
typedef int ivec_##SFX __attribute__((vector_size(4 * (VW))));                                                  \
                                                                                                                \
/* a > b ? a : b per lane (the scalar epilogue's rule: b when either is NaN). */                              \
static inline __attribute__((always_inline)) TGT vec_##SFX max_##SFX(vec_##SFX a, vec_##SFX b)                  \
{                                                                                                               \
    const ivec_##SFX m = (ivec_##SFX)(a > b);                                                                   \
    return (vec_##SFX)(((ivec_##SFX)a & m) | ((ivec_##SFX)b & ~m));                                             \
}                                                                                                               \
                                                                                                                \
/* P output pixels (window p starts off[p] floats into x; kernel rows `row` floats apart) x one filter block:    \
 * the reduction over (ky, kx, c) in registers, then bias, ReLU and a store of P * FBW floats to dst             \
 * (pixels `dstride` floats apart). The pixels may span output rows (a band of a narrow image).                 \
 * Per tap: NV weight vectors loaded, each pixel's input broadcast into NV fused multiply-adds. */              \
static inline __attribute__((always_inline)) TGT void                                                           \
tile_##SFX(const int P, const float *restrict x, const ptrdiff_t *restrict off, const ptrdiff_t row,           \
           const int kh, const int kwc, const float *restrict w, const float *restrict bias, const int relu,    \
           float *restrict dst, const ptrdiff_t dstride)                                                        \
{                                                                                                               \
    vec_##SFX acc[PMAX][NV];                                                                                    \
    const float *restrict xp[PMAX];                                                                             \
    UNROLL for (int p = 0; p < P; p++) {                                                                        \
        xp[p] = x + off[p];                                                                                     \
        UNROLL for (int v = 0; v < NV; v++) acc[p][v] = (vec_##SFX){0};                                         \
    }                                                                                                           \
    for (int ky = 0; ky < kh; ky++) {                                                                           \
        const float *restrict wr = w + (ptrdiff_t)ky * kwc * ((VW) * (NV));                                     \
        const ptrdiff_t r = (ptrdiff_t)ky * row;                                                                \
        for (int j = 0; j < kwc; j++) {                                                                         \
            vec_##SFX wv[NV];                                                                                   \
            UNROLL for (int v = 0; v < NV; v++)                                                                 \
                wv[v] = *(const vecu_##SFX *)(wr + (ptrdiff_t)j * ((VW) * (NV)) + v * (VW));                    \
            UNROLL for (int p = 0; p < P; p++) {                                                                \
                const float s = xp[p][r + j];                                                                   \
                UNROLL for (int v = 0; v < NV; v++) acc[p][v] += wv[v] * s;                                     \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
    vec_##SFX b[NV];                                                                                            \
    UNROLL for (int v = 0; v < NV; v++) b[v] = *(const vecu_##SFX *)(bias + v * (VW));                          \
    UNROLL for (int p = 0; p < P; p++)                                                                          \
        UNROLL for (int v = 0; v < NV; v++) {                                                                   \
            vec_##SFX r = acc[p][v] + b[v];                                                                     \
            if (relu) /* keeps NaN, as np.maximum(z, 0) does */                                                 \
                r = (vec_##SFX)((ivec_##SFX)r & ~(ivec_##SFX)(r < (vec_##SFX){0}));                             \
            *(vecu_##SFX *)(dst + p * dstride + v * (VW)) = r;                                                  \
        }                                                                                                       \
}                                                                                                               \
                                                                                                                \
/* tile_ with P = p (1 <= p <= PMAX) chosen at run time. */                                                    \
static inline __attribute__((always_inline)) TGT void                                                           \
tile_any_##SFX(const int p, const float *x, const ptrdiff_t *off, const ptrdiff_t row, const int kh,            \
               const int kwc, const float *w, const float *bias, const int relu, float *d, const ptrdiff_t dstride) \
{                                                                                                               \
    switch (p) {                                                                                                \
    case 1: tile_##SFX(1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;                              \
    case 2: tile_##SFX(2 <= PMAX ? 2 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 3: tile_##SFX(3 <= PMAX ? 3 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 4: tile_##SFX(4 <= PMAX ? 4 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 5: tile_##SFX(5 <= PMAX ? 5 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 6: tile_##SFX(6 <= PMAX ? 6 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 7: tile_##SFX(7 <= PMAX ? 7 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 8: tile_##SFX(8 <= PMAX ? 8 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 9: tile_##SFX(9 <= PMAX ? 9 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;              \
    case 10: tile_##SFX(10 <= PMAX ? 10 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;           \
    case 11: tile_##SFX(11 <= PMAX ? 11 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;           \
    default: tile_##SFX(12 <= PMAX ? 12 : 1, x, off, row, kh, kwc, w, bias, relu, d, dstride); break;           \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* The `count` output pixels of a band of rows oy0, oy0 + 1, ... of `width` pixels each (the first `width` of    \
 * each output row), filter block w, in tiles of at most PMAX pixels of as equal sizes as possible, into dst     \
 * (pixel q at dst + q * dstride). */                                                                           \
static TGT void span_##SFX(const ConvArgs *a, const float *pad, int oy0, int width, int count, const float *w, \
                           const float *bias, float *dst, ptrdiff_t dstride)                                    \
{                                                                                                               \
    const ptrdiff_t row = (ptrdiff_t)a->wp * a->c, pix = (ptrdiff_t)a->sx * a->c;                               \
    const int kwc = a->kw * (int)a->c, tiles = tile_count(count, PMAX);                                         \
    int start = 0;                                                                                              \
    for (int t = 0; t < tiles; t++) {                                                                           \
        const int p = count / tiles + (t < count % tiles);                                                      \
        ptrdiff_t off[PMAX];                                                                                    \
        for (int q = 0; q < p; q++) {                                                                           \
            const int oy = oy0 + (start + q) / width, ox = (start + q) % width;                                 \
            off[q] = (ptrdiff_t)oy * a->sy * row + (ptrdiff_t)ox * pix;                                         \
        }                                                                                                       \
        tile_any_##SFX(p, pad, off, row, a->kh, kwc, w, bias, a->relu, dst + (ptrdiff_t)start * dstride, dstride); \
        start += p;                                                                                             \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* Work units [u0, u1) of the batch, in the order (image, filter block, band of output rows: a->band rows, or    \
 * a->band / 2 pooled row pairs), with this thread's own padded-image and band buffers. */                     \
static TGT void conv_##SFX(const ConvArgs *a, Py_ssize_t u0, Py_ssize_t u1, float *pad, float *rows,          \
                           Py_ssize_t *padded)                                                                  \
{                                                                                                               \
    const int fbw = (VW) * (NV);                                                                                \
    const ptrdiff_t block = (ptrdiff_t)a->kh * a->kw * a->c * fbw;                                              \
    const int hq = a->ho / 2, wq = a->wo / 2;                                                                   \
    const int used = a->pool ? 2 * hq : a->ho, width = a->pool ? 2 * wq : a->wo;  /* rows, columns computed */ \
    const int bands = (used + a->band - 1) / a->band;                                                           \
    for (Py_ssize_t u = u0; u < u1; u++) {                                                                      \
        const Py_ssize_t i = u / (a->fb * bands), fb = (u / bands) % a->fb;                                     \
        const int oy0 = (int)(u % bands) * a->band;                                                             \
        const int nrows = used - oy0 < a->band ? used - oy0 : a->band;                                          \
        if (i != *padded) { pad_image(a, pad, i); *padded = i; }                                                \
        const float *w = a->kern + fb * block, *bias = a->bias + fb * fbw;                                      \
        const Py_ssize_t f0 = fb * fbw;                                                                         \
        const int valid = (int)(a->f - f0 < fbw ? a->f - f0 : fbw);                                             \
        if (!a->pool) {                                                                                         \
            float *o = a->out + ((i * a->ho + oy0) * a->wo) * a->f + f0;                                        \
            if (valid == fbw) {                                                                                 \
                span_##SFX(a, pad, oy0, width, nrows * width, w, bias, o, (ptrdiff_t)a->f);                     \
                continue;                                                                                       \
            }                                                                                                   \
            span_##SFX(a, pad, oy0, width, nrows * width, w, bias, rows, fbw);                                  \
            for (int q = 0; q < nrows * width; q++)                                                             \
                memcpy(o + (ptrdiff_t)q * a->f, rows + (ptrdiff_t)q * fbw, sizeof(float) * valid);              \
            continue;                                                                                           \
        }                                                                                                       \
        span_##SFX(a, pad, oy0, width, nrows * width, w, bias, rows, fbw);                                      \
        for (int ry = 0; ry < nrows / 2; ry++) {                                                                \
            const float *r0 = rows + (ptrdiff_t)2 * ry * width * fbw, *r1 = r0 + (ptrdiff_t)width * fbw;        \
            float *o = a->out + ((i * hq + oy0 / 2 + ry) * wq) * a->f + f0;                                     \
            for (int qx = 0; qx < wq; qx++) {                                                                   \
                const float *v0 = r0 + (ptrdiff_t)2 * qx * fbw, *v1 = r1 + (ptrdiff_t)2 * qx * fbw;             \
                float *oq = o + (ptrdiff_t)qx * a->f;                                                           \
                vec_##SFX m[NV];  /* the window's maximum, a vector at a time (a > b ? a : b, as in scalars) */  \
                UNROLL for (int v = 0; v < NV; v++)                                                             \
                    m[v] = max_##SFX(max_##SFX(*(const vecu_##SFX *)(v0 + v * (VW)),                            \
                                               *(const vecu_##SFX *)(v0 + fbw + v * (VW))),                     \
                                     max_##SFX(*(const vecu_##SFX *)(v1 + v * (VW)),                            \
                                               *(const vecu_##SFX *)(v1 + fbw + v * (VW))));                    \
                if (valid == fbw) {                                                                             \
                    UNROLL for (int v = 0; v < NV; v++) *(vecu_##SFX *)(oq + v * (VW)) = m[v];                  \
                } else {                                                                                        \
                    memcpy(oq, m, sizeof(float) * valid);                                                       \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
}                                                                                                               \
                                                                                                               \
/* Winograd F(2x2, 3x3) (Lavin & Gray, 2015) for a 3x3, stride 1, 'same' convolution of an image with even H and W: \
 * per 2x2 output tile, V = Bt d B of its 4x4 input window (per channel), M[k] = V[k] @ U[k] over the channels  \
 * for the 16 k (U = G g Gt, computed once in float64 by the plan), Y = At M A; 16 products per (tile, channel, \
 * filter) instead of 36. The products run in the direct tile (one 'row' of C taps, pixels = tiles); a unit is  \
 * (image, band of tile rows, filter block), the band's V kept across its filter blocks. With pooling, a 2x2    \
 * output tile is exactly one pooling window. */                                                                \
static inline __attribute__((always_inline)) TGT void                                                           \
wino_window_##SFX(const vec_##SFX d[4][4], vec_##SFX v[16])                                                     \
{                                                                                                               \
    vec_##SFX t[4][4];                                                                                          \
    for (int j = 0; j < 4; j++) {  /* Bt d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3 */                          \
        t[0][j] = d[0][j] - d[2][j]; t[1][j] = d[1][j] + d[2][j];                                               \
        t[2][j] = d[2][j] - d[1][j]; t[3][j] = d[1][j] - d[3][j];                                               \
    }                                                                                                           \
    for (int r = 0; r < 4; r++) {  /* (Bt d) B: the same on the columns */                                      \
        v[4 * r + 0] = t[r][0] - t[r][2]; v[4 * r + 1] = t[r][1] + t[r][2];                                     \
        v[4 * r + 2] = t[r][2] - t[r][1]; v[4 * r + 3] = t[r][1] - t[r][3];                                     \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* V (16, P, C) of the band's P = nty * tw tiles, from the padded image. */                                     \
static TGT void wino_input_##SFX(const float *pad, ptrdiff_t row, int c, int ty0, int nty, int tw, float *v)    \
{                                                                                                               \
    const int P = nty * tw;                                                                                     \
    for (int p = 0; p < P; p++) {                                                                               \
        const float *base = pad + (ptrdiff_t)2 * (ty0 + p / tw) * row + (ptrdiff_t)2 * (p % tw) * c;            \
        int c0 = 0;                                                                                             \
        for (; c0 + (VW) <= c; c0 += (VW)) {                                                                    \
            vec_##SFX d[4][4], out[16];                                                                         \
            for (int i = 0; i < 4; i++)                                                                         \
                for (int j = 0; j < 4; j++) d[i][j] = *(const vecu_##SFX *)(base + i * row + (ptrdiff_t)j * c + c0); \
            wino_window_##SFX(d, out);                                                                          \
            for (int k = 0; k < 16; k++) *(vecu_##SFX *)(v + ((ptrdiff_t)k * P + p) * c + c0) = out[k];         \
        }                                                                                                       \
        if (c0 < c) {  /* the last channels through zero-padded vectors */                                      \
            vec_##SFX d[4][4], out[16];                                                                         \
            const int m = c - c0;                                                                               \
            for (int i = 0; i < 4; i++)                                                                         \
                for (int j = 0; j < 4; j++) {                                                                   \
                    float lanes[VW] = {0};                                                                      \
                    memcpy(lanes, base + i * row + (ptrdiff_t)j * c + c0, sizeof(float) * (size_t)m);           \
                    memcpy(&d[i][j], lanes, sizeof lanes);                                                      \
                }                                                                                               \
            wino_window_##SFX(d, out);                                                                          \
            for (int k = 0; k < 16; k++) memcpy(v + ((ptrdiff_t)k * P + p) * c + c0, &out[k], sizeof(float) * (size_t)m); \
        }                                                                                                       \
    }                                                                                                           \
}                                                                                                               \
                                                                                                                \
/* Work units [u0, u1): (image, band of a->band tile rows, filter block); `pad` this thread's padded image,     \
 * `buf` its V (16, P, C) and M (16, P, FBW). */                                                                \
static TGT void wino_##SFX(const ConvArgs *a, Py_ssize_t u0, Py_ssize_t u1, float *pad, float *buf, Py_ssize_t *padded) \
{                                                                                                               \
    const int fbw = (VW) * (NV), c = (int)a->c, tw = a->wo / 2, th = a->ho / 2, bands = (th + a->band - 1) / a->band; \
    const ptrdiff_t row = (ptrdiff_t)a->wp * c, ublock = (ptrdiff_t)16 * c * fbw;                               \
    float *v = buf, *m = buf + (ptrdiff_t)16 * a->band * tw * c;                                                \
    const float zero[(VW) * (NV)] = {0};                                                                        \
    Py_ssize_t have = -1;                                                                                       \
    for (Py_ssize_t u = u0; u < u1; u++) {                                                                      \
        const Py_ssize_t ib = u / a->fb, fb = u % a->fb, i = ib / bands;                                        \
        const int ty0 = (int)(ib % bands) * a->band, nty = th - ty0 < a->band ? th - ty0 : a->band, P = nty * tw; \
        if (ib != have) {                                                                                       \
            if (i != *padded) { pad_image(a, pad, i); *padded = i; }                                            \
            wino_input_##SFX(pad, row, c, ty0, nty, tw, v);                                                     \
            have = ib;                                                                                          \
        }                                                                                                       \
        const float *w = a->kern + fb * ublock, *bias = a->bias + fb * fbw;                                     \
        for (int k = 0; k < 16; k++) {  /* M[k] (P, FBW) = V[k] (P, C) @ U[fb, k] (C, FBW) */                   \
            const int tiles = tile_count(P, PMAX);                                                              \
            int start = 0;                                                                                      \
            for (int t = 0; t < tiles; t++) {                                                                   \
                const int p = P / tiles + (t < P % tiles);                                                      \
                ptrdiff_t off[PMAX];                                                                            \
                for (int q = 0; q < p; q++) off[q] = (ptrdiff_t)(start + q) * c;                                \
                tile_any_##SFX(p, v + (ptrdiff_t)k * P * c, off, 0, 1, c, w + (ptrdiff_t)k * c * fbw, zero, 0,  \
                               m + ((ptrdiff_t)k * P + start) * fbw, fbw);                                      \
                start += p;                                                                                     \
            }                                                                                                   \
        }                                                                                                       \
        const Py_ssize_t f0 = fb * fbw;                                                                         \
        const int valid = (int)(a->f - f0 < fbw ? a->f - f0 : fbw);                                             \
        for (int p = 0; p < P; p++) {  /* Y = At M A, + bias, ReLU, [2x2 maximum] */                            \
            const int ty = ty0 + p / tw, tx = p % tw;                                                           \
            float y[4][(VW) * (NV)];                                                                            \
            for (int nv = 0; nv < (NV); nv++) {                                                                 \
                vec_##SFX mk[16], s0[4], s1[4], out[4];                                                         \
                for (int k = 0; k < 16; k++) mk[k] = *(const vecu_##SFX *)(m + ((ptrdiff_t)k * P + p) * fbw + nv * (VW)); \
                for (int j = 0; j < 4; j++) {                                                                   \
                    s0[j] = mk[j] + mk[4 + j] + mk[8 + j];                                                      \
                    s1[j] = mk[4 + j] - mk[8 + j] - mk[12 + j];                                                 \
                }                                                                                               \
                out[0] = s0[0] + s0[1] + s0[2]; out[1] = s0[1] - s0[2] - s0[3];                                 \
                out[2] = s1[0] + s1[1] + s1[2]; out[3] = s1[1] - s1[2] - s1[3];                                 \
                const vec_##SFX b = *(const vecu_##SFX *)(bias + nv * (VW));                                    \
                for (int q = 0; q < 4; q++) {                                                                   \
                    vec_##SFX r = out[q] + b;                                                                   \
                    if (a->relu) r = (vec_##SFX)((ivec_##SFX)r & ~(ivec_##SFX)(r < (vec_##SFX){0}));            \
                    out[q] = r;                                                                                 \
                }                                                                                               \
                if (a->pool) out[0] = max_##SFX(max_##SFX(out[0], out[1]), max_##SFX(out[2], out[3]));          \
                for (int q = 0; q < (a->pool ? 1 : 4); q++) *(vecu_##SFX *)(y[q] + nv * (VW)) = out[q];         \
            }                                                                                                   \
            if (a->pool) {                                                                                      \
                memcpy(a->out + ((i * (a->ho / 2) + ty) * (a->wo / 2) + tx) * a->f + f0, y[0], sizeof(float) * valid); \
                continue;                                                                                       \
            }                                                                                                   \
            for (int q = 0; q < 4; q++)                                                                         \
                memcpy(a->out + ((i * a->ho + 2 * ty + q / 2) * a->wo + 2 * tx + q % 2) * a->f + f0, y[q],      \
                       sizeof(float) * valid);                                                                  \
        }                                                                                                       \
    }                                                                                                           \
}


/* The LSTM gate step of the plan's Bidirectional loop (inference/recurrent.py), per direction and row, after
 * z = h_prev @ R: z += xw; with the sigmoid gates' columns negated at plan compile, s = 1 + exp(z) for i, f, o
 * (a product by a gate is a division by s), g = tanh(z_c); c = c / s_f + g / s_i; h = tanh(c) / s_o. exp is
 * Cephes' expf polynomial (argument clamped to [-88, 88]: exp(88) = 1.65e38 makes a gate 6e-39, exactly the 0 of
 * an overflow to inf in the NumPy step up to that), tanh(x) = 1 - 2 / (exp(2x) + 1) (absolute error ~1e-7). */
#define DEFINE_GATES(SFX, TGT, VW)                                                                              \
static inline __attribute__((always_inline)) TGT vec_##SFX select_##SFX(ivec_##SFX m, vec_##SFX a, vec_##SFX b) \
{ return (vec_##SFX)(((ivec_##SFX)a & m) | ((ivec_##SFX)b & ~m)); }                                             \
static inline __attribute__((always_inline)) TGT vec_##SFX exp_##SFX(vec_##SFX x)                              \
{                                                                                                               \
    const vec_##SFX hi = (vec_##SFX){0} + 88.0f, lo = (vec_##SFX){0} - 88.0f, one = (vec_##SFX){0} + 1.0f;     \
    x = select_##SFX((ivec_##SFX)(x > hi), hi, x);                                                              \
    x = select_##SFX((ivec_##SFX)(x < lo), lo, x);                                                              \
    vec_##SFX fx = x * 1.44269504088896341f + 0.5f;                                                            \
    vec_##SFX t = __builtin_convertvector(__builtin_convertvector(fx, ivec_##SFX), vec_##SFX);                  \
    t = t - (vec_##SFX)((ivec_##SFX)(t > fx) & (ivec_##SFX)one); /* floor */                                    \
    x = x - t * 0.693359375f;                                                                                   \
    x = x - t * -2.12194440e-4f;                                                                                \
    const vec_##SFX z = x * x;                                                                                  \
    vec_##SFX y = x * 1.9875691500E-4f + 1.3981999507E-3f;                                                      \
    y = y * x + 8.3334519073E-3f;                                                                               \
    y = y * x + 4.1665795894E-2f;                                                                               \
    y = y * x + 1.6666665459E-1f;                                                                               \
    y = y * x + 5.0000001201E-1f;                                                                               \
    y = y * z + x + 1.0f;                                                                                       \
    const ivec_##SFX n = __builtin_convertvector(t, ivec_##SFX);                                                \
    return y * (vec_##SFX)((n + 127) << 23);                                                                    \
}                                                                                                               \
static inline __attribute__((always_inline)) TGT vec_##SFX tanh_##SFX(vec_##SFX x)                             \
{ return 1.0f - 2.0f / (exp_##SFX(x + x) + 1.0f); }                                                             \
static inline __attribute__((always_inline)) TGT void                                                           \
gates_block_##SFX(float *z, const float *xw, float *c, float *h, ptrdiff_t u)                                   \
{                                                                                                               \
    vec_##SFX zi = *(vecu_##SFX *)z + *(const vecu_##SFX *)xw;                                                  \
    vec_##SFX zf = *(vecu_##SFX *)(z + u) + *(const vecu_##SFX *)(xw + u);                                      \
    vec_##SFX zo = *(vecu_##SFX *)(z + 2 * u) + *(const vecu_##SFX *)(xw + 2 * u);                              \
    vec_##SFX zg = *(vecu_##SFX *)(z + 3 * u) + *(const vecu_##SFX *)(xw + 3 * u);                              \
    const vec_##SFX si = exp_##SFX(zi) + 1.0f, sf = exp_##SFX(zf) + 1.0f, so = exp_##SFX(zo) + 1.0f;            \
    const vec_##SFX g = tanh_##SFX(zg);                                                                         \
    const vec_##SFX cn = *(vecu_##SFX *)c / sf + g / si;                                                        \
    *(vecu_##SFX *)c = cn;                                                                                      \
    *(vecu_##SFX *)h = tanh_##SFX(cn) / so;                                                                     \
}                                                                                                               \
static TGT void gates_##SFX(const GateArgs *a)                                                                  \
{                                                                                                               \
    const ptrdiff_t u = a->u;                                                                                   \
    for (int d = 0; d < 2; d++)                                                                                 \
        for (Py_ssize_t r = 0; r < a->k; r++) {                                                                 \
            float *z = a->z + d * a->zs + r * 4 * u, *c = a->c + d * a->cs + r * u, *h = a->h + d * a->hs + r * u; \
            const float *xw = a->xw + d * a->xs + r * 4 * u;                                                    \
            ptrdiff_t j = 0;                                                                                    \
            for (; j + (VW) <= u; j += (VW)) gates_block_##SFX(z + j, xw + j, c + j, h + j, u);                 \
            if (j < u) { /* the tail through zero-padded copies */                                              \
                float tz[4 * (VW)] = {0}, tx[4 * (VW)] = {0}, tc[VW] = {0}, th[VW];                             \
                const ptrdiff_t m = u - j;                                                                      \
                for (int q = 0; q < 4; q++) {                                                                   \
                    memcpy(tz + q * (VW), z + q * u + j, sizeof(float) * (size_t)m);                            \
                    memcpy(tx + q * (VW), xw + q * u + j, sizeof(float) * (size_t)m);                           \
                }                                                                                               \
                memcpy(tc, c + j, sizeof(float) * (size_t)m);                                                   \
                gates_block_##SFX(tz, tx, tc, th, (VW));                                                        \
                memcpy(c + j, tc, sizeof(float) * (size_t)m);                                                   \
                memcpy(h + j, th, sizeof(float) * (size_t)m);                                                   \
            }                                                                                                   \
        }                                                                                                       \
}

#ifdef SCRATCH_X86
DEFINE_VARIANT(avx512, TARGET_AVX512, 16, 2, 12)
DEFINE_VARIANT(avx2, TARGET_AVX2, 8, 2, 6)
#endif
DEFINE_VARIANT(base, TARGET_BASE, 4, 2, 4)
#ifdef SCRATCH_X86
DEFINE_GATES(avx512, TARGET_AVX512, 16)
DEFINE_GATES(avx2, TARGET_AVX2, 8)
#endif
DEFINE_GATES(base, TARGET_BASE, 4)

typedef struct {
    const char *name;
    int block;  /* FBW: filters per packed block */
    int tile;   /* PMAX: pixels per register tile */
    void (*conv)(const ConvArgs *, Py_ssize_t, Py_ssize_t, float *, float *, Py_ssize_t *);
    void (*wino)(const ConvArgs *, Py_ssize_t, Py_ssize_t, float *, float *, Py_ssize_t *);
    int (*supported)(void);
    void (*gates)(const GateArgs *);
} Variant;

#ifdef SCRATCH_X86
static int has_avx512(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                                                           && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")
                                                           && __builtin_cpu_supports("fma"); }
static int has_avx2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif
static int always(void) { return 1; }

/* Best first. */
static const Variant VARIANTS[] = {
#ifdef SCRATCH_X86
    {"avx512", 32, 12, conv_avx512, wino_avx512, has_avx512, gates_avx512},
    {"avx2", 16, 6, conv_avx2, wino_avx2, has_avx2, gates_avx2},
#endif
    {"base", 8, 4, conv_base, wino_base, always, gates_base},
};
#define N_VARIANTS ((int)(sizeof(VARIANTS) / sizeof(VARIANTS[0])))

/* ---------------------------------------------------------------- threads --------------------------------------- */

/* One call's work: `units` work units in `chunks` contiguous chunks, taken one at a time by whoever is free
 * (the caller and the pool's workers): a worker the OS runs late finds the chunks done and has nothing to
 * wait for but its own acknowledgement. Participant t uses buffers pad + t * pad_len and rows + t * rows_len. */
typedef struct {
    const ConvArgs *a;
    void (*fn)(const ConvArgs *, Py_ssize_t, Py_ssize_t, float *, float *, Py_ssize_t *);  /* a variant's conv or wino */
    Py_ssize_t units, chunks;
    float *pads, *rows;
    size_t pad_len, rows_len;
    _Atomic Py_ssize_t next;  /* the next chunk to take */
} Job;

static void run_chunks(Job *job, int t)
{
    Py_ssize_t padded = -1;  /* the image in this participant's padded buffer */
    for (;;) {
        const Py_ssize_t k = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (k >= job->chunks) return;
        job->fn(job->a, job->units * k / job->chunks, job->units * (k + 1) / job->chunks,
                     job->pads + job->pad_len * (size_t)t, job->rows + job->rows_len * (size_t)t, &padded);
    }
}

#ifdef SCRATCH_PTHREADS
/* The pool: worker threads made at the first call that asks for them and kept. After a job a worker spins
 * for SPIN_NS waiting for the next one (the next layer of a forward pass comes within tens of microseconds:
 * a thread start cost ~16 us per layer, a condition-variable wake-up about as much), then sleeps. One job at
 * a time (pool_lock); a caller that finds the pool busy runs its work alone. */
#define SPIN_NS 150000L
typedef struct {
    _Atomic unsigned seq;   /* jobs posted to this worker */
    _Atomic unsigned done;  /* jobs it finished */
    Job *_Atomic job;
    int index;              /* its participant number (buffers) */
    int sleeping;
    pthread_mutex_t m;
    pthread_cond_t cv;
} Slot;

static Slot slots[MAX_THREADS];
static int pool_size = 0;  /* workers started (participants 1 .. pool_size) */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long elapsed_ns(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static void *worker_main(void *p)
{
    Slot *s = p;
    unsigned last = 0;
    for (;;) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        unsigned spins = 0;
        while (atomic_load_explicit(&s->seq, memory_order_acquire) == last) {
            cpu_relax();
            if ((++spins & 255) == 0 && elapsed_ns(&t0) > SPIN_NS) {
                pthread_mutex_lock(&s->m);
                s->sleeping = 1;
                while (atomic_load_explicit(&s->seq, memory_order_acquire) == last) pthread_cond_wait(&s->cv, &s->m);
                s->sleeping = 0;
                pthread_mutex_unlock(&s->m);
                break;
            }
        }
        last = atomic_load_explicit(&s->seq, memory_order_acquire);
        run_chunks(atomic_load_explicit(&s->job, memory_order_acquire), s->index);
        atomic_store_explicit(&s->done, last, memory_order_release);
    }
    return NULL;
}

/* Workers 1 .. want - 1 running (as many as could be started); returns the participants available. */
static int ensure_pool(int want)
{
    while (pool_size < want - 1) {
        Slot *s = &slots[pool_size + 1];
        atomic_init(&s->seq, 0);
        atomic_init(&s->done, 0);
        atomic_init(&s->job, NULL);
        s->index = pool_size + 1;
        s->sleeping = 0;
        pthread_mutex_init(&s->m, NULL);
        pthread_cond_init(&s->cv, NULL);
        pthread_attr_t attr;
        pthread_t id;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&id, &attr, worker_main, s);
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool_size++;
    }
    return pool_size + 1 < want ? pool_size + 1 : want;
}

/* A forked child has the parent's memory but none of its threads: it starts a pool of its own. */
static void pool_after_fork(void)
{
    pool_size = 0;
    pthread_mutex_init(&pool_lock, NULL);
}
#endif

/* Runs the job on `count` participants: the caller and count - 1 of the pool's workers (the caller alone if
 * the pool is in use by another call or no worker could be started). Called without the GIL. */
static void run_job(Job *job, int count)
{
#ifdef SCRATCH_PTHREADS
    if (count > 1 && pthread_mutex_trylock(&pool_lock) == 0) {
        count = ensure_pool(count);
        for (int t = 1; t < count; t++) {
            Slot *s = &slots[t];
            atomic_store_explicit(&s->job, job, memory_order_release);
            atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
            pthread_mutex_lock(&s->m);
            if (s->sleeping) pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->m);
        }
        run_chunks(job, 0);
        for (int t = 1; t < count; t++) {  /* each worker's acknowledgement: its chunks are written */
            Slot *s = &slots[t];
            const unsigned want = atomic_load_explicit(&s->seq, memory_order_relaxed);
            unsigned spins = 0;
            while (atomic_load_explicit(&s->done, memory_order_acquire) != want)
                if (++spins < 20000) cpu_relax(); else sched_yield();
        }
        pthread_mutex_unlock(&pool_lock);
        return;
    }
#endif
    (void)count;
    run_chunks(job, 0);
}

/* ---------------------------------------------------------------- Python interface ------------------------------ */

static int is_float32(const Py_buffer *b)
{
    const char *f = b->format;
    if (f == NULL) return 0;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return f[0] == 'f' && f[1] == '\0';
}

static void shape_text(const Py_buffer *b, char *text, size_t size)
{
    size_t used = (size_t)PyOS_snprintf(text, size, "(");
    for (int d = 0; d < b->ndim && used < size; d++)
        used += (size_t)PyOS_snprintf(text + used, size - used, d ? ", %zd" : "%zd", b->shape[d]);
    if (used < size) PyOS_snprintf(text + used, size - used, b->ndim == 1 ? ",)" : ")");
}

/* A C-contiguous float32 buffer of `ndim` dimensions, or an exception naming `what`. */
static int get_array(PyObject *obj, Py_buffer *view, int ndim, int writable, const char *what, const char *fn)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected `%s` to be a C-contiguous%s float32 array, received %.100s",
                     fn, what, writable ? ", writable" : "", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (!is_float32(view)) {
        PyErr_Format(PyExc_TypeError, "%s: expected `%s` of dtype float32 (format 'f'), received format '%s'",
                     fn, what, view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    if (view->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected `%s` with %d dimensions, received %d", fn, what, ndim, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int overlaps(const Py_buffer *a, const Py_buffer *b)
{
    const char *a0 = a->buf, *b0 = b->buf;
    return a->len && b->len && a0 < b0 + b->len && b0 < a0 + a->len;
}

/* `out` (N, Ho, Wo, F), or pooled (N, Ho / 2, Wo / 2, F), with F in the last filter block: 0, or -1 with the
 * exception naming `fn`. */
static int check_out(const ConvArgs *a, const Py_buffer *o, const Variant *v, const char *fn)
{
    const Py_ssize_t eh = a->pool ? a->ho / 2 : a->ho, ew = a->pool ? a->wo / 2 : a->wo;
    if (o->shape[0] == a->n && o->shape[1] == eh && o->shape[2] == ew && a->f > (a->fb - 1) * v->block
            && a->f <= a->fb * v->block)
        return 0;
    char got[96];
    shape_text(o, got, sizeof got);
    PyErr_Format(PyExc_ValueError, "%s: expected `out` of shape (%zd, %zd, %zd, F) with %zd < F <= %zd, received %s",
                 fn, a->n, eh, ew, (a->fb - 1) * v->block, a->fb * v->block, got);
    return -1;
}

/* `units` work units of `fn` on up to `threads` participants (the caller and the pool's workers), each with its
 * own padded image (pad_len floats) and work buffer (buf_len floats); -1 with MemoryError if those cannot be
 * had. Chunks: a few per participant, or one per image when there are more images (balance: a late worker's
 * share is taken by the others). Called with the GIL; released while computing. */
static int run_units(const ConvArgs *a, void (*fn)(const ConvArgs *, Py_ssize_t, Py_ssize_t, float *, float *, Py_ssize_t *),
                     Py_ssize_t units, int threads, size_t pad_len, size_t buf_len)
{
    const int count = (int)(units < threads ? units : threads);
    float *pads = malloc(sizeof(float) * pad_len * (size_t)count);
    float *bufs = malloc(sizeof(float) * buf_len * (size_t)count);
    const int ok = pads != NULL && bufs != NULL;
    if (ok) {
        Py_ssize_t chunks = (Py_ssize_t)CHUNKS_PER_THREAD * count;
        if (chunks < a->n) chunks = a->n;
        if (chunks > units) chunks = units;
        if (count == 1) chunks = 1;
        Job job = {a, fn, units, chunks, pads, bufs, pad_len, buf_len, 0};
        Py_BEGIN_ALLOW_THREADS
        run_job(&job, count);
        Py_END_ALLOW_THREADS
    } else {
        PyErr_NoMemory();
    }
    free(pads);
    free(bufs);
    return ok ? 0 : -1;
}

PyDoc_STRVAR(conv2d_doc,
"conv2d(variant, x, w, bias, out, kh, kw, sy, sx, pt, pb, pl, pr, relu, pool, threads=1)\n--\n\n"
"Conv2D + bias [+ ReLU] [+ 2x2/2 max pooling] of an NHWC float32 batch into `out`.\n\n"
"x: (N, H, W, C); w: the kernel packed by filter blocks, (FB, kh, kw, C, block) with `block` the variant's;\n"
"bias: (FB * block,), zero-padded; out: (N, Ho, Wo, F) or, with pool, (N, Ho // 2, Wo // 2, F), F <= FB * block\n"
"and F > (FB - 1) * block; Ho = (H + pt + pb - kh) // sy + 1, Wo likewise. All C-contiguous float32.\n"
"threads: the work (image, filter block, output row) is split over that many threads (1: the calling one).");

static PyObject *conv2d(PyObject *Py_UNUSED(self), PyObject *args)
{
    int variant, kh, kw, sy, sx, pt, pb, pl, pr, relu, pool, threads = 1;
    PyObject *xo, *wo_, *bo, *oo;
    if (!PyArg_ParseTuple(args, "iOOOOiiiiiiiipp|i:conv2d", &variant, &xo, &wo_, &bo, &oo, &kh, &kw, &sy, &sx,
                          &pt, &pb, &pl, &pr, &relu, &pool, &threads))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "conv2d: expected threads between 1 and %d, received %d", MAX_THREADS, threads);
        return NULL;
    }
    if (variant < 0 || variant >= N_VARIANTS || !VARIANTS[variant].supported()) {
        PyErr_Format(PyExc_ValueError, "conv2d: expected a variant index this CPU supports (see variants()), received %d",
                     variant);
        return NULL;
    }
    if (kh < 1 || kw < 1 || sy < 1 || sx < 1 || pt < 0 || pb < 0 || pl < 0 || pr < 0) {
        PyErr_Format(PyExc_ValueError, "conv2d: expected kernel sizes and strides >= 1 and paddings >= 0, received "
                     "kernel (%d, %d), strides (%d, %d), paddings (%d, %d, %d, %d)", kh, kw, sy, sx, pt, pb, pl, pr);
        return NULL;
    }
    const Variant *v = &VARIANTS[variant];
    Py_buffer x, w, b, o;
    if (get_array(xo, &x, 4, 0, "x", "conv2d") < 0) return NULL;
    if (get_array(wo_, &w, 5, 0, "w", "conv2d") < 0) { PyBuffer_Release(&x); return NULL; }
    if (get_array(bo, &b, 1, 0, "bias", "conv2d") < 0) { PyBuffer_Release(&x); PyBuffer_Release(&w); return NULL; }
    if (get_array(oo, &o, 4, 1, "out", "conv2d") < 0) { PyBuffer_Release(&x); PyBuffer_Release(&w); PyBuffer_Release(&b); return NULL; }

    ConvArgs a;
    memset(&a, 0, sizeof a);
    char got[96];
    PyObject *result = NULL;
    a.n = x.shape[0]; a.h = x.shape[1]; a.w = x.shape[2]; a.c = x.shape[3];
    a.fb = w.shape[0]; a.f = o.shape[3];
    a.kh = kh; a.kw = kw; a.sy = sy; a.sx = sx; a.pt = pt; a.pl = pl; a.relu = relu; a.pool = pool;
    const Py_ssize_t hp = a.h + pt + pb, wp = a.w + pl + pr;
    if (a.c < 1 || hp < kh || wp < kw) {
        shape_text(&x, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "conv2d: expected `x` (N, H, W, C) with C >= 1 and a padded image of at least "
                     "the kernel (%d, %d), received %s with paddings (%d, %d, %d, %d)", kh, kw, got, pt, pb, pl, pr);
        goto done;
    }
    a.hp = (int)hp; a.wp = (int)wp;
    a.ho = (int)((hp - kh) / sy + 1); a.wo = (int)((wp - kw) / sx + 1);
    if (w.shape[1] != kh || w.shape[2] != kw || w.shape[3] != a.c || w.shape[4] != v->block || a.fb < 1) {
        shape_text(&w, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "conv2d: expected `w` of shape (FB, %d, %d, %zd, %d) (variant %s), received %s",
                     kh, kw, a.c, v->block, v->name, got);
        goto done;
    }
    if (b.shape[0] != a.fb * v->block) {
        shape_text(&b, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "conv2d: expected `bias` of shape (%zd,), received %s", a.fb * v->block, got);
        goto done;
    }
    if (pool && (a.ho < 2 || a.wo < 2)) {
        PyErr_Format(PyExc_ValueError, "conv2d: 2x2 max pooling needs an output of at least 2x2, received (%d, %d)",
                     a.ho, a.wo);
        goto done;
    }
    if (check_out(&a, &o, v, "conv2d") < 0) goto done;
    if (overlaps(&o, &x) || overlaps(&o, &w) || overlaps(&o, &b)) {
        PyErr_SetString(PyExc_ValueError, "conv2d: expected `out` not to share memory with `x`, `w` or `bias`");
        goto done;
    }
    if (a.n == 0) { result = Py_NewRef(Py_None); goto done; }
    a.x = x.buf; a.kern = w.buf; a.bias = b.buf; a.out = o.buf;
    {
        /* Units: (image, filter block, band of output rows). A band holds at least BAND_PIXELS outputs (two
         * full register tiles) when the image has that many rows: narrow layers get tiles spanning rows. */
        const int used = pool ? 2 * (a.ho / 2) : a.ho, width = pool ? 2 * (a.wo / 2) : a.wo;
        int band = (BAND_PIXELS + width - 1) / width;
        if (pool) band += band & 1;
        if (band > used) band = used;
        a.band = band < 1 ? 1 : band;
        const Py_ssize_t units = a.n * a.fb * ((used + a.band - 1) / a.band);
        if (run_units(&a, v->conv, units, threads, (size_t)(hp * wp * a.c),
                      (size_t)a.band * (size_t)width * (size_t)v->block) < 0)
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&x); PyBuffer_Release(&w); PyBuffer_Release(&b); PyBuffer_Release(&o);
    return result;
}

PyDoc_STRVAR(winograd2d_doc,
"winograd2d(variant, x, u, bias, out, relu, pool, threads=1)\n--\n\n"
"A 3x3, stride 1, 'same' Conv2D + bias [+ ReLU] [+ 2x2/2 max pooling] of an NHWC float32 batch with even H and W,\n"
"by Winograd F(2x2, 3x3), into `out`.\n\n"
"x: (N, H, W, C); u: G g Gt of the kernel packed by filter blocks, (FB, 16, C, block) with `block` the variant's;\n"
"bias: (FB * block,), zero-padded; out: (N, H, W, F) or, with pool, (N, H // 2, W // 2, F), F <= FB * block and\n"
"F > (FB - 1) * block. All C-contiguous float32. threads: as conv2d's.");

static PyObject *winograd2d(PyObject *Py_UNUSED(self), PyObject *args)
{
    int variant, relu, pool, threads = 1;
    PyObject *xo, *uo, *bo, *oo;
    if (!PyArg_ParseTuple(args, "iOOOOpp|i:winograd2d", &variant, &xo, &uo, &bo, &oo, &relu, &pool, &threads))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "winograd2d: expected threads between 1 and %d, received %d", MAX_THREADS, threads);
        return NULL;
    }
    if (variant < 0 || variant >= N_VARIANTS || !VARIANTS[variant].supported()) {
        PyErr_Format(PyExc_ValueError, "winograd2d: expected a variant index this CPU supports, received %d", variant);
        return NULL;
    }
    const Variant *v = &VARIANTS[variant];
    Py_buffer x, u, b, o;
    if (get_array(xo, &x, 4, 0, "x", "winograd2d") < 0) return NULL;
    if (get_array(uo, &u, 4, 0, "u", "winograd2d") < 0) { PyBuffer_Release(&x); return NULL; }
    if (get_array(bo, &b, 1, 0, "bias", "winograd2d") < 0) { PyBuffer_Release(&x); PyBuffer_Release(&u); return NULL; }
    if (get_array(oo, &o, 4, 1, "out", "winograd2d") < 0) { PyBuffer_Release(&x); PyBuffer_Release(&u); PyBuffer_Release(&b); return NULL; }
    ConvArgs a;
    memset(&a, 0, sizeof a);
    char got[96];
    PyObject *result = NULL;
    a.n = x.shape[0]; a.h = x.shape[1]; a.w = x.shape[2]; a.c = x.shape[3]; a.fb = u.shape[0]; a.f = o.shape[3];
    a.kh = a.kw = 3; a.sy = a.sx = 1; a.pt = a.pl = 1; a.relu = relu; a.pool = pool;
    if (a.c < 1 || a.h < 2 || a.w < 2 || a.h % 2 || a.w % 2) {
        shape_text(&x, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "winograd2d: expected `x` (N, H, W, C) with H and W even and >= 2, C >= 1, "
                     "received %s", got);
        goto done;
    }
    if (u.shape[1] != 16 || u.shape[2] != a.c || u.shape[3] != v->block || a.fb < 1) {
        shape_text(&u, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "winograd2d: expected `u` of shape (FB, 16, %zd, %d) (variant %s), received %s",
                     a.c, v->block, v->name, got);
        goto done;
    }
    if (b.shape[0] != a.fb * v->block) {
        shape_text(&b, got, sizeof got);
        PyErr_Format(PyExc_ValueError, "winograd2d: expected `bias` of shape (%zd,), received %s", a.fb * v->block, got);
        goto done;
    }
    a.hp = (int)a.h + 2; a.wp = (int)a.w + 2; a.ho = (int)a.h; a.wo = (int)a.w;
    if (check_out(&a, &o, v, "winograd2d") < 0) goto done;
    if (overlaps(&o, &x) || overlaps(&o, &u) || overlaps(&o, &b)) {
        PyErr_SetString(PyExc_ValueError, "winograd2d: expected `out` not to share memory with `x`, `u` or `bias`");
        goto done;
    }
    if (a.n == 0) { result = Py_NewRef(Py_None); goto done; }
    a.x = x.buf; a.kern = u.buf; a.bias = b.buf; a.out = o.buf;
    {
        /* Units: (image, band of tile rows, filter block); a band holds about one register tile of tiles. */
        const int tw = a.wo / 2, th = a.ho / 2;
        int band = v->tile / tw;
        if (band < 1) band = 1;
        if (band > th) band = th;
        a.band = band;
        const Py_ssize_t units = a.n * ((th + band - 1) / band) * a.fb;
        if (run_units(&a, v->wino, units, threads, (size_t)(a.hp * a.wp * a.c),
                      (size_t)16 * (size_t)band * (size_t)tw * (size_t)(a.c + v->block)) < 0)
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&x); PyBuffer_Release(&u); PyBuffer_Release(&b); PyBuffer_Release(&o);
    return result;
}

/* A float32 (2, k, cols) buffer whose rows are contiguous (the first axis may be strided), or an exception. */
static int get_stack(PyObject *obj, Py_buffer *view, int writable, const char *what, Py_ssize_t k, Py_ssize_t cols)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "lstm_gates: expected `%s` to be a%s float32 array, received %.100s", what,
                     writable ? " writable" : "", Py_TYPE(obj)->tp_name);
        return -1;
    }
    char got[96];
    const char *problem = NULL;
    if (!is_float32(view)) problem = "of dtype float32";
    else if (view->ndim != 3 || view->shape[0] != 2 || view->shape[1] != k || view->shape[2] != cols)
        problem = "of shape (2, k, cols)";
    else if (view->strides[2] != 4 || (k > 1 && view->strides[1] != 4 * cols) || view->strides[0] % 4)
        problem = "with contiguous rows";
    if (problem != NULL) {
        if (view->ndim >= 1 && view->shape != NULL) shape_text(view, got, sizeof got); else strcpy(got, "?");
        PyErr_Format(PyExc_ValueError, "lstm_gates: expected `%s` %s with k=%zd, cols=%zd, received shape %s, "
                     "format '%s'", what, problem, k, cols, got, view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(lstm_gates_doc,
"lstm_gates(variant, z, xw, c, h)\n--\n\n"
"The gate step of the plan's Bidirectional LSTM loop, in place: z (2, k, 4u) = h_prev @ R with the i, f, o\n"
"columns negated (gate order i, f, o, c), xw (2, k, 4u) the step's input projection, c (2, k, u) the cell\n"
"state, h (2, k, u) the new output. float32, rows contiguous (the first axis may be strided).");

static PyObject *lstm_gates(PyObject *Py_UNUSED(self), PyObject *args)
{
    int variant;
    PyObject *zo, *xo, *co, *ho;
    if (!PyArg_ParseTuple(args, "iOOOO:lstm_gates", &variant, &zo, &xo, &co, &ho)) return NULL;
    if (variant < 0 || variant >= N_VARIANTS || !VARIANTS[variant].supported()) {
        PyErr_Format(PyExc_ValueError, "lstm_gates: expected a variant index this CPU supports, received %d", variant);
        return NULL;
    }
    Py_buffer c;
    if (PyObject_GetBuffer(co, &c, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "lstm_gates: expected `c` to be a writable float32 array, received %.100s",
                     Py_TYPE(co)->tp_name);
        return NULL;
    }
    if (c.ndim != 3) {
        PyErr_Format(PyExc_ValueError, "lstm_gates: expected `c` with 3 dimensions (2, k, u), received %d", c.ndim);
        PyBuffer_Release(&c);
        return NULL;
    }
    const Py_ssize_t k = c.shape[1], u = c.shape[2];
    PyBuffer_Release(&c);
    Py_buffer z, x, h;
    if (get_stack(co, &c, 1, "c", k, u) < 0) return NULL;
    if (get_stack(zo, &z, 1, "z", k, 4 * u) < 0) { PyBuffer_Release(&c); return NULL; }
    if (get_stack(xo, &x, 0, "xw", k, 4 * u) < 0) { PyBuffer_Release(&c); PyBuffer_Release(&z); return NULL; }
    if (get_stack(ho, &h, 1, "h", k, u) < 0) {
        PyBuffer_Release(&c); PyBuffer_Release(&z); PyBuffer_Release(&x); return NULL;
    }
    GateArgs a = {z.buf, c.buf, h.buf, x.buf, k, u, z.strides[0] / 4, x.strides[0] / 4, c.strides[0] / 4,
                  h.strides[0] / 4};
    if (k > 0 && u > 0) {
        Py_BEGIN_ALLOW_THREADS
        VARIANTS[variant].gates(&a);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&c); PyBuffer_Release(&z); PyBuffer_Release(&x); PyBuffer_Release(&h);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(variants_doc, "variants() -> list of (index, name, block, tile) this CPU supports, best first.\n\n"
"block: filters per packed block (the last axis of conv2d's `w`); tile: output pixels per register tile.");

static PyObject *variants(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused))
{
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    for (int i = 0; i < N_VARIANTS; i++) {
        if (!VARIANTS[i].supported()) continue;
        PyObject *item = Py_BuildValue("(isii)", i, VARIANTS[i].name, VARIANTS[i].block, VARIANTS[i].tile);
        if (item == NULL || PyList_Append(list, item) < 0) { Py_XDECREF(item); Py_DECREF(list); return NULL; }
        Py_DECREF(item);
    }
    return list;
}

static PyMethodDef methods[] = {
    {"conv2d", conv2d, METH_VARARGS, conv2d_doc},
    {"winograd2d", winograd2d, METH_VARARGS, winograd2d_doc},
    {"variants", variants, METH_NOARGS, variants_doc},
    {"lstm_gates", lstm_gates, METH_VARARGS, lstm_gates_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "The inference plan's compiled kernels (see inference/kernels.py): a register-blocked direct convolution.",
    -1, methods,
};

/* Raised whenever a function or its arguments change: kernels.py ignores a stale build (an edited source
 * without a reinstall) instead of calling what it does not have. */
#define KERNELS_API 4

PyMODINIT_FUNC PyInit__kernels(void)
{
#ifdef SCRATCH_PTHREADS
    pthread_atfork(NULL, NULL, pool_after_fork);
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "API", KERNELS_API) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
