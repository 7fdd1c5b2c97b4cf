"""The fused CNN inference paths of the plan (scratch_models/inference/conv.py): Conv2D with its 2x2 max
pooling taken per chunk (im2col and Winograd), the separable Winograd input transform, the tile-count
Winograd threshold and the batch split over threads, against float64 references, the unfused layers and Keras."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from scratch_models import parallel
from scratch_models.inference import conv as convolution
from scratch_models.inference import kernels
from scratch_models.inference import split as split_policy
from scratch_models.inference.conv import ConvStep
from scratch_models.inference.memory import Arenas
from scratch_models.layers import Conv2D, MaxPooling2D
from test_engine_fast_paths import conv_reference, make_conv, tol, winograd_applies

RNG = np.random.default_rng(4321)
CNN_DIR = Path(__file__).resolve().parents[2] / "weights" / "cnn"


@pytest.fixture(autouse=True)
def numpy_path():
    """These are tests of the NumPy algorithms: the compiled kernel (tests/engine/test_engine_c_kernels.py) is
    off for the steps and plans they make."""
    with kernels.selected("numpy"):
        yield


def pool_reference(z: np.ndarray) -> np.ndarray:
    """2x2/2 'valid' max pooling in float64, one window at a time (odd last row/column dropped)."""
    n, h, w, c = z.shape
    out = np.empty((n, h // 2, w // 2, c))
    for i in range(h // 2):
        for j in range(w // 2):
            out[:, i, j] = z[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
    return out


@pytest.fixture(params=["winograd", "im2col"])
def path(request, monkeypatch):
    """Winograd wherever it applies (3x3/1 same, even H and W, C >= 16), or im2col only."""
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_TILES", 1 if request.param == "winograd" else 10**9)
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_TILES_IN_PART", 1 if request.param == "winograd" else 10**9)
    return request.param


@pytest.fixture(params=["one-part", "split"])
def split(request, monkeypatch):
    """The whole batch in the calling thread, or split over two threads whenever it has 2+ items."""
    if request.param == "split":
        monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    return request.param


def infer(layer, x, split="one-part", activation=None, max_pool_2x2=False):
    """The plan's convolution step on ``x``: whole, or in 2 parts in threads as ``predict`` splits a batch."""
    step = ConvStep(layer, activation=activation, pool=max_pool_2x2)
    if split == "split" and len(x) >= 2:
        return split_policy.run_split(lambda xs, part: step(xs, part), x, 2, Arenas())
    return convolution.conv2d(layer, x, activation=activation, max_pool_2x2=max_pool_2x2)


@pytest.fixture(params=["large-chunks", "tiny-chunks"])
def chunks(request, monkeypatch):
    """Default chunk sizes, or chunks of a few items so that the batch is not a multiple of them."""
    if request.param == "tiny-chunks":
        monkeypatch.setattr(convolution, "WINOGRAD_CHUNK_TILES", 48)  # 3 items of 8x8, 1 of 16x16 (at least 1)
        monkeypatch.setattr(convolution, "IM2COL_FAST_CHUNK_ELEMENTS", 20000)
    return request.param


# (n, h, w, c, filters, use_bias): Winograd-eligible, odd sizes (im2col only), RGB (channel-major im2col).
POOL_CASES = [(7, 8, 8, 16, 8, True), (1, 16, 16, 32, 16, False), (5, 6, 10, 64, 8, True),
              (7, 9, 7, 16, 8, True), (3, 32, 32, 3, 32, False), (2, 5, 4, 3, 4, True), (5, 2, 2, 16, 4, True)]


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_conv_with_max_pool_matches_float64_reference(case, activation, path, split, chunks):
    n, h, w, c, f, use_bias = case
    layer = make_conv(c, f, (3, 3), (1, 1), "same", activation, use_bias, h, w, "float32")
    x = np.maximum(RNG.standard_normal((n, h, w, c)) * 3, 0).astype(np.float32)
    z = conv_reference(x, layer.weights["kernel"], layer.weights.get("bias"), (1, 1), "same")
    ref = pool_reference(np.maximum(z, 0) if activation == "relu" else z)
    out = infer(layer, x, split, max_pool_2x2=True)
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() <= tol(np.float32, ref)
    # exactly the unfused conv followed by the MaxPooling2D layer: a maximum commutes with bias and ReLU
    np.testing.assert_array_equal(out, MaxPooling2D((2, 2)).forward(infer(layer, x, split)))


@pytest.mark.parametrize("case", [(7, 16, 16, 32, 64), (1, 8, 8, 16, 16), (9, 8, 12, 128, 8)])
def test_conv_paths_agree_with_float64_reference(case, path, split, chunks):
    n, h, w, c, f = case
    layer = make_conv(c, f, (3, 3), (1, 1), "same", "relu", True, h, w, "float32")
    x = RNG.random((n, h, w, c), dtype=np.float32)
    ref = np.maximum(conv_reference(x, layer.weights["kernel"], layer.weights["bias"], (1, 1), "same"), 0)
    assert winograd_applies(layer, x.shape) == (path == "winograd")
    assert np.abs(infer(layer, x, split) - ref).max() <= tol(np.float32, ref)


def test_max_pool_2x2_helper_matches_reference_and_checks_its_output():
    z = RNG.standard_normal((3, 7, 6, 5)).astype(np.float32)
    out = np.empty((3, 3, 3, 5), np.float32)
    convolution.max_pool_2x2(z, out)
    np.testing.assert_array_equal(out, pool_reference(z).astype(np.float32))
    with pytest.raises(ValueError, match=r"max_pool_2x2: expected an output of shape \(3, 3, 3, 5\)"):
        convolution.max_pool_2x2(z, np.empty((3, 4, 3, 5), np.float32))


def test_winograd_input_transform_matches_the_kronecker_product():
    b, h, w, c = 2, 6, 8, 3
    xp = RNG.standard_normal((b, h + 2, w + 2, c)).astype(np.float32)
    v = np.empty((16, b, h // 2, w // 2, c), np.float32)
    convolution.winograd_input(xp, np.empty((4, b, h + 2, w // 2, c), np.float32), v)
    tiles = np.stack([xp[:, i:i + h - 1:2, j:j + w - 1:2] for i in range(4) for j in range(4)]).astype(np.float64)
    ref = np.tensordot(convolution.WINO_BB, tiles, axes=1)
    assert np.abs(v - ref).max() <= 1e-5 * np.abs(ref).max()


def test_winograd_threshold_counts_tiles():
    layer = make_conv(64, 8, (3, 3), (1, 1), "same", "linear", False, 16, 16, "float32")
    tiles = convolution.WINOGRAD_MIN_TILES
    assert winograd_applies(layer, (-(-tiles // 64), 16, 16, 64))  # 64 tiles per 16x16 image
    assert winograd_applies(layer, (-(-tiles // 16), 8, 8, 64))
    assert not winograd_applies(layer, (-(-tiles // 16) - 1, 8, 8, 64))


def test_max_pool_2x2_argument_checks():
    layer = make_conv(16, 8, (3, 3), (1, 1), "same", "tanh", True, 6, 6, "float32")
    x = RNG.random((2, 6, 6, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="max_pool_2x2 needs an activation in"):
        infer(layer, x, max_pool_2x2=True)
    with pytest.raises(ValueError, match="max_pool_2x2 needs an output of at least 2x2"):
        infer(layer, x[:, :1], activation="relu", max_pool_2x2=True)


def test_predict_called_inside_a_pool_worker_does_not_split_again(monkeypatch):
    """``parallel.map_parts`` runs parts in its pool: a model predicting there must not wait on that same pool."""
    import scratch_models
    from scratch_models.layers import InputLayer
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    monkeypatch.setitem(split_policy.MIN_ITEMS_PER_PART, "convolutional", 1)
    layer = make_conv(16, 8, (3, 3), (1, 1), "same", "relu", True, 8, 8, "float32")
    weights = layer.get_weights()
    model = scratch_models.Model.sequential(InputLayer((None, 8, 8, 16)), [layer, MaxPooling2D((2, 2))])
    model.set_weights(weights)
    x = RNG.random((6, 8, 8, 16), dtype=np.float32)
    whole = model.predict(x)
    names = []

    def run(part):
        names.append(threading.current_thread().name)
        return model.predict(part)
    parts = parallel.map_parts(run, [x[:3], x[3:]])
    assert np.abs(np.concatenate(parts) - whole).max() <= tol(np.float32, whole)  # other product sizes
    assert any(name.startswith(parallel.THREAD_NAME_PREFIX) for name in names)


def _randomize(kmodel, seed):
    rng = np.random.default_rng(seed)
    kmodel.set_weights([rng.uniform(0.2, 2.0, w.shape).astype(np.float32) if "variance" in w.path
                        else (rng.standard_normal(w.shape) * 0.4).astype(np.float32) for w in kmodel.weights])


def pooled_by_conv_steps(model) -> list:
    """For each convolution step of the plan, the MaxPooling2D node it took in (None: none)."""
    return [next((i for i in st.covers if type(model.layers[model.nodes[i].layer]).__name__ == "MaxPooling2D"), None)
            for st in model.plan().steps if st.name == "conv"]


@pytest.mark.parametrize("batch", [1, 5, 40])  # 40 items of 8x8: 640 tiles, the Winograd path
@pytest.mark.parametrize("size", [16, 15])  # 15: odd sizes, im2col with the odd row/column dropped
def test_conv_bn_relu_pool_chains_are_fused_with_keras_numbers(batch, size):
    import keras
    import scratch_models
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((size, size, 3)),
                               L.Conv2D(16, 3, padding="same", use_bias=False), L.BatchNormalization(),
                               L.Activation("relu"), L.MaxPooling2D(),                    # fused, with ReLU
                               L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.MaxPooling2D(),  # no ReLU
                               L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
                               L.MaxPooling2D(pool_size=2, strides=1),                    # stride 1: not fused
                               L.Flatten(), L.Dense(3, activation="softmax")])
    _randomize(kmodel, 5)
    model = scratch_models.from_keras(kmodel)
    kinds = [type(model.layers[n.layer]).__name__ for n in model.nodes]
    pools = [i for i, k in enumerate(kinds) if k == "MaxPooling2D"]
    assert pooled_by_conv_steps(model) == [pools[0], pools[1], None]
    x = RNG.random((batch, size, size, 3), dtype=np.float32)
    ref = np.asarray(kmodel(x, training=False))
    assert np.abs(model.predict(x) - ref).max() <= 1e-5


def test_a_pool_output_that_is_a_model_output_is_still_fused_only_before_it():
    import keras
    import scratch_models
    L = keras.layers
    inp = keras.Input((8, 8, 4))
    z = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp)))
    kmodel = keras.Model(inp, [L.MaxPooling2D()(z)])
    _randomize(kmodel, 6)
    model = scratch_models.from_keras(kmodel)
    x = RNG.random((3, 8, 8, 4), dtype=np.float32)
    assert np.abs(model.predict(x) - np.asarray(kmodel(x, training=False))).max() <= 1e-5


@pytest.mark.skipif(not (CNN_DIR / "model.keras").is_file(), reason="committed CNN weights absent")
@pytest.mark.parametrize("batch", [1, 8, 33])
def test_committed_cnn_matches_keras(batch):
    import keras
    import scratch_models
    model = scratch_models.load(CNN_DIR)
    kinds = [type(model.layers[n.layer]).__name__ for n in model.nodes]
    # every max pooling of the committed CNN is fused into the convolution before it
    assert kinds.count("MaxPooling2D") >= 3
    assert sum(p is not None for p in pooled_by_conv_steps(model)) == kinds.count("MaxPooling2D")
    kmodel = keras.saving.load_model(CNN_DIR / "model.keras", compile=False)
    x = np.random.default_rng(batch).random((batch, 32, 32, 3), dtype=np.float32)
    ref = np.asarray(kmodel(x, training=False))
    assert np.abs(model.predict(x) - ref).max() <= 1e-5


@pytest.mark.parametrize("training", [False, True])
def test_input_smaller_than_the_kernel_is_refused_with_the_sizes(training):
    layer = make_conv(3, 4, (5, 5), (1, 1), "valid", "relu", True, 8, 8, "float32")
    with pytest.raises(ValueError, match=r"input \(3, 3\) is smaller than the kernel \(5, 5\)"):
        layer.forward(RNG.random((2, 3, 3, 3), dtype=np.float32), training=training)


def test_the_caller_of_map_parts_counts_as_in_a_part_while_it_computes_its_own():
    """Its own first part must not split again either: the pool's threads are busy with the others."""
    assert not parallel.in_worker()
    assert parallel.map_parts(lambda _: parallel.in_worker(), [0, 1, 2]) == [True, True, True]
    assert not parallel.in_worker()


def test_winograd_starts_at_fewer_tiles_inside_a_part_of_a_split_batch():
    """Inside a part there are no OpenBLAS threads to share im2col's one big product: Winograd wins earlier.
    The step is told it computes a part (``split``), explicitly, not by the thread it runs on."""
    layer = make_conv(16, 16, (3, 3), (1, 1), "same", "relu", True, 8, 8, "float32")
    shape = (convolution.WINOGRAD_MIN_TILES_IN_PART // 16, 8, 8, 16)  # 16 tiles per 8x8 image
    assert not winograd_applies(layer, shape)
    assert winograd_applies(layer, shape, split=True)
    assert not winograd_applies(layer, (shape[0] - 1, *shape[1:]), split=True)
    assert parallel.map_parts(lambda s: winograd_applies(layer, s), [shape, shape]) == [False, False]


@pytest.mark.parametrize("per_part, split_expected", [(lambda k: 2 * k - 1, False), (lambda k: 2 * k, True)])
def test_cnn_predict_splits_the_whole_forward_pass_once_from_two_parts_of_min_items(per_part, split_expected,
                                                                                     monkeypatch):
    """A CNN batch of at least 2 x MIN_ITEMS_PER_PART["convolutional"] images runs the whole network
    once per part, one part per core (no per-layer splits inside, none below); the numbers are Keras'."""
    import keras
    import scratch_models
    L = keras.layers
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    kmodel = keras.Sequential([keras.Input((16, 16, 3)),
                               L.Conv2D(16, 3, padding="same", use_bias=False), L.BatchNormalization(),
                               L.Activation("relu"), L.MaxPooling2D(),
                               L.Conv2D(16, 3, padding="same", use_bias=False), L.BatchNormalization(),
                               L.Activation("relu"), L.MaxPooling2D(), L.Flatten(), L.Dense(4, activation="softmax")])
    _randomize(kmodel, 8)
    model = scratch_models.from_keras(kmodel)
    calls, real = [], parallel.map_parts
    monkeypatch.setattr(parallel, "map_parts", lambda fn, parts: calls.append(len(parts)) or real(fn, parts))
    n = per_part(split_policy.MIN_ITEMS_PER_PART["convolutional"])
    x = RNG.random((n, 16, 16, 3), dtype=np.float32)
    out = model.predict(x)
    assert np.abs(out - np.asarray(kmodel(x, training=False))).max() <= 1e-5
    assert calls == ([2] if split_expected else [])


def test_models_without_recurrent_or_conv_layers_are_not_split(monkeypatch):
    import keras
    import scratch_models
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    kmodel = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model = scratch_models.from_keras(kmodel)
    calls, real = [], parallel.map_parts
    monkeypatch.setattr(parallel, "map_parts", lambda fn, parts: calls.append(len(parts)) or real(fn, parts))
    x = RNG.random((4096, 8), dtype=np.float32)
    assert np.abs(model.predict(x) - np.asarray(kmodel(x, training=False))).max() <= 1e-5
    assert calls == []


@pytest.mark.parametrize("n, most, step", [(8, 7, 4), (32, 7, 7), (8, 14, 8), (1, 3, 1), (10, 3, 3), (5, 0, 1),
                                           (256, 16, 16), (9, 4, 3)])
def test_chunks_are_as_equal_as_possible(n, most, step):
    """The fewest chunks of at most ``most`` items, of near-equal sizes (8 by 7 is 4 + 4, not 7 + 1)."""
    assert convolution.balanced_step(n, most) == step
    chunks = -(-n // step)
    assert chunks == -(-n // max(1, min(n, most))) and n - (chunks - 1) * step >= step - chunks + 1
