"""The compiled fused convolution of issue 16's experiment (benchmarks/experiment_numba_conv.py, Numba; not
wired into the engine: it was not faster): Conv2D 3x3/1 'same' [+ bias or folded BatchNormalization]
[+ ReLU] [+ 2x2/2 max pooling], whole batch (prange) and inside the parts of a split batch, against the
float64 direct reference, the NumPy path and Keras, at 1e-5: the measured kernel computes the right thing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sys

from scratch_models.inference import conv as convolution
from scratch_models.inference import split as split_policy
from scratch_models.inference.conv import ConvStep
from scratch_models.inference.memory import Arenas, Fresh
from scratch_models.inference.split import Part
from test_engine_cnn_fused import pool_reference
from test_engine_fast_paths import conv_reference, make_conv, tol

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import experiment_numba_conv as compiled  # noqa: E402

pytestmark = pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed (in the `bench` and `dev` extras)")

RNG = np.random.default_rng(2468)
CNN_DIR = ROOT / "weights" / "cnn"

# (n, h, w, c, filters, use_bias): the committed CNN's shapes, odd sizes, 1x1 and 2x2 images, RGB.
CASES = [(3, 32, 32, 3, 32, False), (2, 16, 16, 32, 64, True), (5, 8, 8, 128, 128, False),
         (4, 7, 9, 5, 6, True), (2, 1, 1, 4, 3, True), (3, 2, 3, 16, 8, False)]


@pytest.fixture(autouse=True)
def use_compiled(monkeypatch):
    """ConvStep runs the compiled kernel for this test only (the patch is undone afterwards)."""
    monkeypatch.setattr(ConvStep, "__call__", ConvStep.__call__)
    compiled.patched_conv_steps()
    monkeypatch.setattr(compiled, "USE_COMPILED", True)


def run_step(layer, x, activation, pool, mode):
    """The plan's step: whole batch (the parallel kernel) or in 2 parts in threads (the serial one)."""
    step = ConvStep(layer, activation=activation, pool=pool)
    assert compiled.supports(step, x.shape)
    if mode == "split" and len(x) >= 2:
        return split_policy.run_split(lambda xs, part: step(xs, part), x, 2, Arenas())
    return np.array(step(x, Part(Fresh())))


@pytest.mark.parametrize("mode", ["whole", "split"])
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:5])))
def test_compiled_conv_matches_float64_reference(case, activation, pool, mode):
    n, h, w, c, f, use_bias = case
    if pool and (h < 2 or w < 2):
        pytest.skip("2x2 pooling needs a 2x2 output")
    layer = make_conv(c, f, (3, 3), (1, 1), "same", activation, use_bias, h, w, "float32")
    x = (RNG.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    z = conv_reference(x, layer.weights["kernel"], layer.weights.get("bias"), (1, 1), "same")
    ref = np.maximum(z, 0) if activation == "relu" else z
    ref = pool_reference(ref) if pool else ref
    out = run_step(layer, x, activation, pool, mode)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() <= tol(np.float32, ref)


def test_compiled_conv_agrees_with_the_numpy_path(monkeypatch):
    layer = make_conv(64, 64, (3, 3), (1, 1), "same", "relu", True, 16, 16, "float32")
    x = np.maximum(RNG.standard_normal((9, 16, 16, 64)), 0).astype(np.float32)
    fast = run_step(layer, x, None, True, "whole")
    monkeypatch.setattr(compiled, "USE_COMPILED", False)
    step = ConvStep(layer, pool=True)
    numpy_out = np.array(step(x, Part(Fresh())))
    assert np.abs(fast - numpy_out).max() <= tol(np.float32, numpy_out)


def test_compiled_conv_is_not_chosen_where_it_does_not_apply():
    for kernel, strides, padding, dtype in [((5, 5), (1, 1), "same", "float32"), ((3, 3), (2, 2), "same", "float32"),
                                            ((3, 3), (1, 1), "valid", "float32"), ((3, 3), (1, 1), "same", "float64")]:
        layer = make_conv(4, 4, kernel, strides, padding, "relu", True, 8, 8, dtype)
        assert not compiled.supports(ConvStep(layer), (2, 8, 8, 4)), (kernel, strides, padding, dtype)
    layer = make_conv(4, 4, (3, 3), (1, 1), "same", "tanh", True, 8, 8, "float32")
    assert not compiled.supports(ConvStep(layer), (2, 8, 8, 4))  # the kernel applies only linear and ReLU
    layer = make_conv(4, 4, (3, 3), (1, 1), "same", "relu", True, 1, 8, "float32")
    assert not compiled.supports(ConvStep(layer, pool=True), (2, 1, 8, 4))  # a 2x2 pool needs 2 rows


def test_compiled_conv_checks_shapes():
    x = np.zeros((2, 8, 8, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected a kernel \(3, 3, 4, F\) and an output \(2, 4, 4, 6\)"):
        compiled.conv3x3(x, np.zeros((3, 3, 4, 6), np.float32), None, True, True,
                         np.zeros((2, 8, 8, 6), np.float32), parallel=False)


@pytest.mark.parametrize("batch", [1, 8, 33])
def test_committed_cnn_with_the_compiled_conv_matches_keras(batch):
    keras = pytest.importorskip("keras")
    import scratch_models
    model = scratch_models.load(CNN_DIR)
    kmodel = keras.saving.load_model(CNN_DIR / "model.keras", compile=False)
    x = np.random.default_rng(batch).random((batch, 32, 32, 3), dtype=np.float32)
    steps = [s.fn for s in model.plan().steps if isinstance(getattr(s, "fn", None), ConvStep)]
    n_convs = sum(type(model.layers[n.layer]).__name__ == "Conv2D" for n in model.nodes)
    assert len(steps) == n_convs >= 5 and all(compiled.supports(s, (batch, 8, 8, s.kernel.shape[2])) for s in steps)
    ref = np.asarray(kmodel(x, training=False))
    assert np.abs(model.predict(x) - ref).max() <= 1e-5


def test_kernel_compiles_without_a_writable_cache_dir(monkeypatch):
    """No cache locator (e.g. a read-only install, no NUMBA_CACHE_DIR): Numba refuses cache=True at
    decoration time, and the kernel is compiled once per process instead."""
    from numba.core import caching
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def add_one(a):
        return a + 1
    with pytest.raises(RuntimeError, match="no locator available"):
        compiled.numba.njit(cache=True)(add_one)
    assert compiled._jit(add_one)(np.float32(2)) == 3
