"""The inference plan's fast paths (scratch_models/inference: Winograd and buffered im2col Conv2D, offset-wise
pooling, BatchNormalization folded or as one affine pass) against independent float64 references, the
layers' textbook forward and Keras."""
from __future__ import annotations

import numpy as np
import pytest

from scratch_models.inference import conv as convolution
from scratch_models.inference import kernels
from scratch_models.inference.conv import ConvStep, conv2d
from scratch_models.inference.pooling import AffineStep, PoolStep
from scratch_models.layers import AveragePooling2D, BatchNormalization, Conv2D, MaxPooling2D

RNG = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def numpy_path():
    """These are tests of the NumPy algorithms: the compiled kernel (tests/engine/test_engine_c_kernels.py) is
    off for the steps and plans they make."""
    with kernels.selected("numpy"):
        yield


def tol(dtype, ref) -> float:
    """Max |difference| allowed, relative to the magnitude of the reference."""
    return (1e-5 if np.dtype(dtype) == np.float32 else 1e-12) * max(1.0, float(np.abs(ref).max()))


def same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def conv_reference(x, kernel, bias, strides, padding):
    """Direct cross-correlation in float64: one output position at a time over the whole batch."""
    x, kernel = x.astype(np.float64), kernel.astype(np.float64)
    kh, kw, _, f = kernel.shape
    (sh, sw), (n, h, w, _) = strides, x.shape
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(h, kh, sh), same_pads(w, kw, sw)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((n, ho, wo, f))
    for oy in range(ho):
        for ox in range(wo):
            patch = x[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :]
            out[:, oy, ox] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    return out if bias is None else out + bias


def winograd_applies(layer, shape, split: bool = False) -> bool:
    """Whether the plan's convolution step takes Winograd for an input of ``shape``."""
    return ConvStep(layer).choose(shape, split) == "winograd"


def fused_chains(model) -> dict:
    """{first node's layer: (the other layers of its step)} for every plan step covering several nodes."""
    return {model.nodes[st.covers[0]].layer: tuple(model.nodes[i].layer for i in st.covers[1:])
            for st in model.plan().steps if len(st.covers) > 1}


def make_conv(c, f, k, strides, padding, activation, use_bias, h, w, dtype):
    layer = Conv2D(f, k, strides=strides, padding=padding, activation=activation, use_bias=use_bias)
    layer.build((None, h, w, c))
    kernel = RNG.standard_normal(layer.weights["kernel"].shape) * np.sqrt(2.0 / (k[0] * k[1] * c))
    weights = [kernel] + ([RNG.standard_normal(f) * 0.1] if use_bias else [])
    layer.set_weights(weights)
    return layer.astype(dtype)


# (n, h, w, c, filters, kernel, strides, padding, activation, use_bias): Winograd-eligible shapes
# (3x3/1 same, even H and W, C >= 16), odd sizes, RGB and grey (channel-major im2col), strides, 1x1.
CONV_CASES = [
    (7, 16, 16, 64, 32, (3, 3), (1, 1), "same", "relu", False),
    (1, 8, 12, 32, 64, (3, 3), (1, 1), "same", "linear", True),
    (64, 4, 4, 16, 8, (3, 3), (1, 1), "same", "relu", True),
    (7, 15, 13, 64, 16, (3, 3), (1, 1), "same", "relu", True),
    (7, 32, 32, 3, 32, (3, 3), (1, 1), "same", "linear", False),
    (7, 11, 9, 1, 8, (3, 3), (1, 1), "valid", "relu", True),
    (64, 9, 9, 3, 4, (5, 5), (2, 2), "same", "tanh", True),
    (7, 10, 9, 64, 8, (2, 2), (2, 1), "valid", "linear", True),
    (7, 6, 7, 16, 8, (1, 1), (1, 1), "valid", "relu", True),
    (1, 7, 7, 8, 4, (3, 3), (2, 2), "same", "linear", True),
    (7, 2, 2, 32, 8, (3, 3), (1, 1), "same", "linear", True),
]


@pytest.fixture(params=["winograd-where-it-applies", "im2col-only"])
def winograd_min_tiles(request, monkeypatch):
    """Run each case with Winograd allowed at any size, and with it off (the im2col path)."""
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_TILES", 1 if request.param == "winograd-where-it-applies" else 10**9)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-k{c[5][0]}{c[5][1]}s{c[6][0]}{c[6][1]}{c[7]}")
def test_conv2d_inference_matches_direct_reference(case, dtype, winograd_min_tiles):
    n, h, w, c, f, k, strides, padding, activation, use_bias = case
    layer = make_conv(c, f, k, strides, padding, activation, use_bias, h, w, dtype)
    x = np.maximum(RNG.standard_normal((n, h, w, c)) * 3, 0).astype(dtype)  # ReLU-like activations
    ref = conv_reference(x, layer.weights["kernel"], layer.weights.get("bias"), strides, padding)
    ref = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "linear": lambda z: z}[activation](ref)
    out = conv2d(layer, x.copy())
    assert out.dtype == np.dtype(dtype) and out.shape == ref.shape
    assert np.abs(out - ref).max() <= tol(dtype, ref)
    # the layer's textbook forward, at inference and in training, gives the same values
    for training in (False, True):
        assert np.abs(out - layer.forward(x.copy(), training=training)).max() <= tol(dtype, ref)


def test_winograd_is_taken_where_it_applies():
    layer = make_conv(64, 8, (3, 3), (1, 1), "same", "linear", False, 8, 8, "float32")
    big = -(-convolution.WINOGRAD_MIN_TILES // 16)  # 16 tiles of 2x2 per 8x8 image
    assert winograd_applies(layer, (big, 8, 8, 64))
    assert not winograd_applies(layer, (big, 7, 8, 64))  # odd height
    assert not winograd_applies(layer, (big, 8, 8, 3))   # too few channels
    assert not winograd_applies(layer, (big - 1, 8, 8, 64))  # too few tiles: im2col


def test_winograd_kernel_follows_weight_changes(monkeypatch):
    """The plan holds U = G g Gᵀ: replaced weights (set_weights, assignment) are seen at the next predict,
    and weights changed in place after ``invalidate_plan()`` (training calls it)."""
    import scratch_models
    from scratch_models.layers import InputLayer
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_TILES", 1)
    layer = make_conv(32, 16, (3, 3), (1, 1), "same", "linear", True, 8, 8, "float32")
    weights = layer.get_weights()
    model = scratch_models.Model.sequential(InputLayer((None, 8, 8, 32)), [layer])
    model.set_weights(weights)
    x = RNG.random((3, 8, 8, 32), dtype=np.float32)

    def check():
        ref = conv_reference(x, layer.weights["kernel"], layer.weights["bias"], (1, 1), "same")
        assert np.abs(model.predict(x) - ref).max() <= tol(np.float32, ref)
    check()
    assert model.plan().steps[0].fn.choose(x.shape) == "winograd"
    layer.weights["kernel"] *= 2  # in place, as the optimizers update weights
    model.invalidate_plan()
    check()
    model.set_weights([np.ones_like(layer.weights["kernel"]), layer.weights["bias"]])  # replaced
    check()
    layer.weights["kernel"] = -layer.weights["kernel"]  # a new array assigned: the plan notices by itself
    check()


def test_conv2d_inference_does_not_modify_its_input():
    layer = make_conv(16, 8, (3, 3), (1, 1), "same", "relu", True, 6, 6, "float32")
    x = RNG.standard_normal((2, 6, 6, 16)).astype(np.float32)
    before = x.copy()
    conv2d(layer, x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("n, h, w, c, f", [(128, 16, 16, 64, 32), (7, 16, 16, 64, 32), (1, 15, 15, 3, 16),
                                           (7, 32, 32, 3, 32)])
def test_conv2d_inference_matches_keras(n, h, w, c, f):
    import keras
    layer = make_conv(c, f, (3, 3), (1, 1), "same", "relu", True, h, w, "float32")
    assert winograd_applies(layer, (n, h, w, c)) == (n * h * w >= 4 * convolution.WINOGRAD_MIN_TILES and c >= 16
                                                      and h % 2 == 0)
    klayer = keras.layers.Conv2D(f, 3, padding="same", activation="relu")
    klayer.build((None, h, w, c))
    klayer.set_weights([layer.weights["kernel"], layer.weights["bias"]])
    x = np.maximum(RNG.standard_normal((n, h, w, c)) * 3, 0).astype(np.float32)
    ref = np.asarray(klayer(x))
    assert np.abs(conv2d(layer, x) - ref).max() <= tol(np.float32, ref)
    assert np.abs(layer.forward(x) - ref).max() <= tol(np.float32, ref)


def pool_reference(x, pool, strides, padding, kind):
    x = x.astype(np.float64)
    (ph, pw), (sh, sw), (n, h, w, c) = pool, strides, x.shape
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(h, ph, sh), same_pads(w, pw, sw)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=np.nan)
    ho, wo = (x.shape[1] - ph) // sh + 1, (x.shape[2] - pw) // sw + 1
    out = np.empty((n, ho, wo, c))
    for oy in range(ho):
        for ox in range(wo):
            win = x[:, oy * sh:oy * sh + ph, ox * sw:ox * sw + pw]
            out[:, oy, ox] = np.nanmax(win, axis=(1, 2)) if kind == "max" else np.nanmean(win, axis=(1, 2))
    return out


POOL_CASES = [((2, 2), None, "valid", (7, 16, 16, 32)), ((2, 2), None, "valid", (1, 15, 13, 3)),
              ((2, 2), None, "same", (7, 15, 13, 1)), ((3, 3), (2, 2), "same", (64, 9, 10, 4)),
              ((3, 3), (1, 1), "valid", (7, 6, 7, 64)), ((2, 3), (1, 2), "same", (7, 5, 7, 8)),
              ((1, 1), None, "valid", (7, 4, 4, 3))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, padding, shape", POOL_CASES)
def test_pooling_inference_matches_reference(pool, strides, padding, shape, kind, dtype):
    layer = (MaxPooling2D if kind == "max" else AveragePooling2D)(pool, strides=strides, padding=padding)
    x = RNG.standard_normal(shape).astype(dtype)
    ref = pool_reference(x, pool, layer.strides, padding, kind)
    out = np.array(PoolStep(layer, kind)(x))
    assert out.dtype == np.dtype(dtype) and out.shape == ref.shape
    assert np.abs(out - ref).max() <= tol(dtype, ref)
    train = layer.forward(x, training=True)
    if kind == "max":
        np.testing.assert_array_equal(out, train)  # a maximum is exact whatever the order
    else:
        assert np.abs(out - train).max() <= tol(dtype, ref)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale, center", [(True, True), (False, True), (True, False), (False, False)])
@pytest.mark.parametrize("shape", [(7, 5, 6, 32), (1, 3, 64), (64, 16)])
def test_batchnorm_inference_matches_formula(shape, scale, center, dtype):
    c = shape[-1]
    layer = BatchNormalization(epsilon=1e-3, scale=scale, center=center)
    layer.build((None, *shape[1:]))
    values = {"gamma": RNG.standard_normal(c), "beta": RNG.standard_normal(c),
              "moving_mean": RNG.standard_normal(c) * 5, "moving_variance": RNG.random(c) * 4 + 0.01}
    layer.set_weights([values[k] for k in layer.weights])
    layer.astype(dtype)
    w = {k: v.astype(np.float64) for k, v in layer.weights.items()}
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    ref = (x.astype(np.float64) - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-3)
    ref = ref * w["gamma"] if scale else ref
    ref = ref + w["beta"] if center else ref
    for out in (layer.forward(x), AffineStep(layer)(x)):  # the textbook and the plan's step
        assert out.dtype == np.dtype(dtype)
        assert np.abs(out - ref).max() <= tol(dtype, ref)
    layer.weights["moving_mean"] += 1  # in place: seen by the next call / the next plan
    shifted = ref - (w["gamma"] if scale else 1) / np.sqrt(w["moving_variance"] + 1e-3)
    for out in (layer.forward(x), AffineStep(layer)(x)):
        assert np.abs(out - shifted).max() <= tol(dtype, ref)


def _randomize(kmodel, seed):
    rng = np.random.default_rng(seed)
    kmodel.set_weights([rng.uniform(0.2, 2.0, w.shape).astype(np.float32) if "variance" in w.path
                        else (rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in kmodel.weights])


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("batch", [1, 3, 130])  # 130: the Winograd path takes the folded kernel too
def test_conv_batchnorm_relu_are_fused_at_inference_with_keras_numbers(use_bias, batch):
    import keras
    import scratch_models
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((8, 8, 16)),
                               L.Conv2D(16, 3, padding="same", use_bias=use_bias), L.BatchNormalization(), L.Activation("relu"),
                               L.Conv2D(8, 3, padding="same", use_bias=use_bias), L.BatchNormalization(),  # no ReLU after
                               L.Conv2D(4, 3, padding="same", activation="relu"), L.BatchNormalization(),  # conv has an activation
                               L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")])
    _randomize(kmodel, 3)
    model = scratch_models.from_keras(kmodel)
    conv, bn, act, dense = ([n.layer for n in model.nodes if type(model.layers[n.layer]).__name__ == t]
                            for t in ("Conv2D", "BatchNormalization", "Activation", "Dense"))
    assert fused_chains(model) == {conv[0]: (bn[0], act[0]), conv[1]: (bn[1],)}
    x = RNG.random((batch, 8, 8, 16), dtype=np.float32)
    ref = np.asarray(kmodel(x, training=False))
    assert np.abs(model.predict(x) - ref).max() <= 1e-5


def test_a_conv_output_read_twice_is_not_fused():
    import keras
    import scratch_models
    L = keras.layers
    inp = keras.Input((6, 6, 4))
    z = L.Conv2D(4, 3, padding="same")(inp)
    out = L.Add()([L.BatchNormalization()(z), z])  # z has two readers: folding BN into it would change the Add
    kmodel = keras.Model(inp, L.Dense(2)(L.Flatten()(out)))
    _randomize(kmodel, 4)
    model = scratch_models.from_keras(kmodel)
    assert fused_chains(model) == {}
    x = RNG.random((5, 6, 6, 4), dtype=np.float32)
    assert np.abs(model.predict(x) - np.asarray(kmodel(x, training=False))).max() <= 1e-5
