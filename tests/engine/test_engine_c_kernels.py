"""The compiled direct convolution of the inference plan (scratch_models/inference/_kernels.c via
inference/kernels.py): every variant this CPU supports against a float64 direct reference over odd shapes,
RGB input, 1x1 images, pooling, 'valid'/'same', strides and filter counts that are not whole blocks; threads
and the batch split giving the same numbers; the committed CNN against Keras at 1e-5; the NumPy fallback
when the extension is absent or switched off; and the argument checks of the C function."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratch_models.inference import kernels
from scratch_models.inference import split as split_policy
from scratch_models.inference.conv import ConvStep, direct_threads
from scratch_models.inference.memory import Arenas, Fresh
from scratch_models.inference.split import Part
from test_engine_cnn_fused import pool_reference
from test_engine_fast_paths import conv_reference, make_conv, tol

ROOT = Path(__file__).resolve().parents[2]
CNN_DIR = ROOT / "weights" / "cnn"
RNG = np.random.default_rng(97531)
NOT_BUILT = ("the compiled extension scratch_models.inference._kernels is not built here (pip install -e . "
             "builds it when a C compiler and the Python headers are present)")
needs_kernels = pytest.mark.skipif(not kernels.VARIANTS, reason=NOT_BUILT)
VARIANT_NAMES = [v[1] for v in kernels.VARIANTS] or ["none"]

# (n, h, w, c, filters, kernel, strides, padding, use_bias): the committed CNN's shapes; odd sizes; RGB;
# 1x1 and 2x3 images; filters that are not a whole block of 8, 16 or 32; 'valid'; strides; 5x3 and 1x1 kernels.
CASES = [(3, 32, 32, 3, 32, (3, 3), (1, 1), "same", False), (2, 16, 16, 32, 64, (3, 3), (1, 1), "same", True),
         (5, 8, 8, 128, 128, (3, 3), (1, 1), "same", False), (4, 7, 9, 5, 6, (3, 3), (1, 1), "same", True),
         (1, 1, 1, 4, 3, (3, 3), (1, 1), "same", True), (3, 2, 3, 16, 17, (3, 3), (1, 1), "same", False),
         (9, 11, 13, 3, 40, (3, 3), (1, 1), "valid", True), (2, 12, 10, 7, 33, (5, 3), (2, 1), "same", True),
         (6, 9, 9, 16, 48, (1, 1), (1, 1), "valid", True), (7, 15, 14, 8, 20, (3, 3), (2, 2), "valid", False)]


def reference(x, layer, activation, pool):
    z = conv_reference(x, layer.weights["kernel"], layer.weights.get("bias"), layer.strides, layer.padding)
    z = np.maximum(z, 0) if activation == "relu" else z
    return pool_reference(z) if pool else z


def winograd_applies(case) -> bool:
    """3x3, stride 1, 'same' on an even-sized image: what the kernel's Winograd F(2x2, 3x3) takes."""
    _, h, w, _, _, k, strides, padding, _ = case
    return k == (3, 3) and strides == (1, 1) and padding == "same" and h % 2 == 0 and w % 2 == 0


def case_id(c) -> str:
    return "x".join(map(str, c[:5])) + f"-k{c[5][0]}{c[5][1]}s{c[6][0]}{c[6][1]}-{c[7]}"


ALGORITHM_CASES = [(c, a) for c in CASES for a in ("direct", "direct-winograd") if a == "direct" or winograd_applies(c)]


@needs_kernels
@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("case, algorithm", ALGORITHM_CASES, ids=[f"{case_id(c)}-{a}" for c, a in ALGORITHM_CASES])
def test_direct_conv_matches_the_float64_reference(case, activation, pool, variant, algorithm, monkeypatch):
    """The compiled kernel's direct tile and its Winograd F(2x2, 3x3) (3x3, stride 1, 'same', even sizes; here
    from any channel count) against float64."""
    from scratch_models.inference import conv
    n, h, w, c, f, k, strides, padding, use_bias = case
    layer = make_conv(c, f, k, strides, padding, activation, use_bias, h, w, "float32")
    ho, wo = layer.compute_output_shape((n, h, w, c))[1:3]
    if pool and (ho < 2 or wo < 2):
        pytest.skip(f"2x2 pooling needs an output of at least 2x2, this case's is {(ho, wo)}")
    winograd = algorithm == "direct-winograd"
    monkeypatch.setattr(conv, "COMPILED_WINOGRAD_MIN_CHANNELS", 1 if winograd else 10**9)
    x = (RNG.standard_normal((n, h, w, c)) * 2).astype(np.float32)
    with kernels.selected(variant):
        step = ConvStep(layer, activation=activation, pool=pool)
    assert step.choose(x.shape) == algorithm and step.direct.name == variant
    out = np.array(step(x, Part(Fresh())))
    ref = reference(x, layer, activation, pool)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert np.abs(out - ref).max() <= tol(np.float32, ref)


@needs_kernels
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_a_non_pooling_activation_is_applied_after_the_kernel(variant):
    layer = make_conv(5, 19, (3, 3), (1, 1), "same", "tanh", True, 6, 7, "float32")
    x = RNG.standard_normal((3, 6, 7, 5)).astype(np.float32)
    with kernels.selected(variant):
        out = np.array(ConvStep(layer)(x))
    ref = np.tanh(conv_reference(x, layer.weights["kernel"], layer.weights["bias"], (1, 1), "same"))
    assert np.abs(out - ref).max() <= tol(np.float32, ref)


@needs_kernels
@pytest.mark.parametrize("pool", [False, True])
def test_threads_and_the_batch_split_give_the_same_numbers(pool):
    """The C call's own threads (a batch the split policy leaves whole) and the split policy's parts
    (Python threads, GIL released) compute each output exactly as one thread does."""
    layer = make_conv(24, 40, (3, 3), (1, 1), "same", "relu", True, 10, 12, "float32")
    x = RNG.standard_normal((9, 10, 12, 24)).astype(np.float32)
    step = ConvStep(layer, pool=pool)
    assert step.choose(x.shape) == "direct-winograd"  # 24 channels: the plan takes Winograd
    shape = step(x[:1]).shape[1:]
    for algorithm in ("direct", "winograd"):
        outs = {}
        for threads in (1, 2, 3, 7):
            out = np.empty((9, *shape), np.float32)
            if algorithm == "direct":
                step.direct(x, out, (1, 1, 1, 1), True, pool, threads)
            else:
                step.winograd(x, out, True, pool, threads)
            outs[threads] = out
        for out in outs.values():
            np.testing.assert_array_equal(out, outs[1])
    split = split_policy.run_split(lambda xs, part: step(xs, part), x, 2, Arenas())
    np.testing.assert_array_equal(split, outs[1])
    assert direct_threads(Part(Fresh(), count=2), 1e12) == 1  # a part: the other cores have the other parts
    assert direct_threads(Part(Fresh()), 1e3) == 1  # too little work to start a thread for


@needs_kernels
@pytest.mark.parametrize("batch", [1, 3, 8, 33])
def test_committed_cnn_with_the_direct_conv_matches_keras(batch):
    keras = pytest.importorskip("keras")
    import scratch_models
    model = scratch_models.load(CNN_DIR)
    kmodel = keras.saving.load_model(CNN_DIR / "model.keras", compile=False)
    x = np.random.default_rng(batch).random((batch, 32, 32, 3), dtype=np.float32)
    steps = [s.fn for s in model.plan().steps if isinstance(s.fn, ConvStep)]
    convs = sum(type(layer).__name__ == "Conv2D" for layer in model.layers.values())
    assert len(steps) == convs >= 1 and all(s.choose((batch, 8, 8, s.kernel.shape[2])).startswith("direct")
                                            for s in steps)
    assert sum(s.choose((batch, 8, 8, s.kernel.shape[2])) == "direct-winograd" for s in steps) == convs - 1
    ref = np.asarray(kmodel(x, training=False))
    fast = model.predict(x)
    assert np.abs(fast - ref).max() <= 1e-5
    assert np.abs(fast - model(x)).max() <= 1e-5  # the plain graph walk (the layers' textbook forward)


def test_numpy_selection_turns_the_kernel_off():
    layer = make_conv(8, 12, (3, 3), (1, 1), "same", "relu", True, 8, 8, "float32")
    x = RNG.standard_normal((4, 8, 8, 8)).astype(np.float32)
    with kernels.selected("numpy") as chosen:
        step = ConvStep(layer, pool=True)
    assert chosen is None and step.direct is None and step.choose(x.shape) != "direct"
    ref = reference(x, layer, "relu", True)
    assert np.abs(np.array(step(x)) - ref).max() <= tol(np.float32, ref)
    float64 = make_conv(8, 12, (3, 3), (1, 1), "same", "relu", True, 8, 8, "float64")
    assert ConvStep(float64).direct is None  # the kernel is float32 only


def test_an_unknown_selection_is_refused():
    with pytest.raises(ValueError, match=r"SCRATCH_KERNELS: expected 'auto', 'numpy' or a compiled variant .*"
                                         r"received 'avx9000'"):
        kernels.configure("avx9000")


def _run_isolated(code: str, env_extra: dict) -> dict:
    """``code`` in a fresh interpreter (the selection is read at import); its last stdout line as JSON."""
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


CNN_PROBE = """
import json, sys
{block}
import numpy as np, scratch_models
from scratch_models.inference import kernels
from scratch_models.inference.conv import ConvStep
model = scratch_models.load({cnn!r})
x = np.random.default_rng(5).random((3, 32, 32, 3), dtype=np.float32)
algorithms = [s.fn.choose(x.shape) for s in model.plan().steps if isinstance(s.fn, ConvStep)]
convs = sum(type(layer).__name__ == "Conv2D" for layer in model.layers.values())
print(json.dumps({{"variant": kernels.variant, "convs": convs, "built": kernels._kernels is not None, "algorithms": algorithms,
                  "p": model.predict(x).tolist(), "walk": model(x).tolist()}}))
"""
BLOCK_IMPORT = ("import importlib.abc\n"
                "class NoKernels(importlib.abc.MetaPathFinder):\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name == 'scratch_models.inference._kernels':\n"
                "            raise ImportError('blocked by the test: as if never built')\n"
                "sys.meta_path.insert(0, NoKernels())\n")


STALE_BUILD = ("import types, warnings\n"
               "warnings.simplefilter('error', RuntimeWarning)\n"
               "stale = types.ModuleType('scratch_models.inference._kernels')\n"
               "stale.API = 1\n"
               "sys.modules['scratch_models.inference._kernels'] = stale\n"
               "try:\n"
               "    import scratch_models.inference.kernels\n"
               "except RuntimeWarning as w:\n"
               f"    assert 'stale build (API 1, expected {kernels.API})' in str(w), w\n"
               "else:\n"
               "    raise AssertionError('no warning')\n"
               "warnings.simplefilter('ignore', RuntimeWarning)\n")


@pytest.mark.parametrize("how", ["extension absent", "stale build", "SCRATCH_KERNELS=numpy"])
def test_the_numpy_fallback_runs_the_committed_cnn(how):
    """Without the extension (an install without a compiler), with a build of another API version (the C
    source edited without a reinstall: warned) or with it switched off, the plan takes the NumPy algorithms
    and gives the plain graph walk's answer."""
    block = {"extension absent": BLOCK_IMPORT, "stale build": STALE_BUILD}.get(how, "")
    env = {"SCRATCH_KERNELS": "numpy"} if how.startswith("SCRATCH") else {"SCRATCH_KERNELS": "auto"}
    got = _run_isolated(CNN_PROBE.format(block=block, cnn=str(CNN_DIR)), env)
    assert got["variant"] is None and not any(a.startswith("direct") for a in got["algorithms"])
    assert len(got["algorithms"]) == got["convs"] >= 1
    assert got["built"] is (how == "SCRATCH_KERNELS=numpy" and bool(kernels.VARIANTS))
    assert np.abs(np.array(got["p"]) - np.array(got["walk"])).max() <= 1e-5


@needs_kernels
def test_the_environment_picks_a_variant():
    name = kernels.VARIANTS[-1][1]  # the baseline, supported everywhere the extension builds
    got = _run_isolated(CNN_PROBE.format(block="", cnn=str(CNN_DIR)), {"SCRATCH_KERNELS": name})
    assert got["variant"][1] == name and got["convs"] >= 1 and len(got["algorithms"]) == got["convs"]
    assert all(a in ("direct", "direct-winograd") for a in got["algorithms"]) and "direct" in got["algorithms"]
    assert np.abs(np.array(got["p"]) - np.array(got["walk"])).max() <= 1e-5


# ------------------------------------------------------------------------------------------ the C argument checks

def _args(**change):
    """conv2d's arguments for a valid 3x3 'same' call of (2, 6, 5, 4) -> 10 filters, with ``change``."""
    index, _, block, _ = kernels.VARIANTS[0]
    a = dict(variant=index, x=np.zeros((2, 6, 5, 4), np.float32), w=np.zeros((1, 3, 3, 4, block), np.float32),
             bias=np.zeros(block, np.float32), out=np.zeros((2, 6, 5, 10), np.float32), kh=3, kw=3, sy=1, sx=1,
             pt=1, pb=1, pl=1, pr=1, relu=True, pool=False)
    a.update(change)
    return list(a.values())


@needs_kernels
def test_the_c_function_accepts_the_valid_call():
    assert kernels._kernels.conv2d(*_args()) is None
    assert kernels._kernels.conv2d(*_args(), 2) is None


@needs_kernels
@pytest.mark.parametrize("change, error, message", [
    ({"x": np.zeros((2, 6, 5, 4), np.float64)}, TypeError, r"expected `x` of dtype float32 \(format 'f'\), received format 'd'"),
    ({"x": np.zeros((2, 6, 10, 4), np.float32)[:, :, ::2]}, TypeError, r"expected `x` to be a C-contiguous float32 array"),
    ({"x": [[1.0]]}, TypeError, r"expected `x` to be a C-contiguous float32 array, received list"),
    ({"x": np.zeros((6, 5, 4), np.float32)}, ValueError, r"expected `x` with 4 dimensions, received 3"),
    ({"out": np.zeros((2, 6, 5, 10), np.float32)[::-1]}, TypeError, r"expected `out` to be a C-contiguous, writable"),
    ({"out": np.zeros((2, 3, 2, 10), np.float32)}, ValueError,
     r"expected `out` of shape \(2, 6, 5, F\) with \d+ < F <= \d+, received \(2, 3, 2, 10\)"),
    ({"w": np.zeros((1, 3, 3, 5, kernels.VARIANTS[0][2] if kernels.VARIANTS else 8), np.float32)}, ValueError, r"expected `w` of shape \(FB, 3, 3, 4, \d+\) \(variant \w+\), received \(1, 3, 3, 5, \d+\)"),
    ({"bias": np.zeros(3, np.float32)}, ValueError, r"expected `bias` of shape \(\d+,\), received \(3,\)"),
    ({"kh": 0}, ValueError, r"expected kernel sizes and strides >= 1 and paddings >= 0, received kernel \(0, 3\)"),
    ({"pt": 0, "pb": 0, "x": np.zeros((2, 1, 5, 4), np.float32)}, ValueError,
     r"a padded image of at least the kernel \(3, 3\), received \(2, 1, 5, 4\)"),
    ({"pool": True, "x": np.zeros((2, 1, 5, 4), np.float32), "out": np.zeros((2, 0, 2, 10), np.float32)},
     ValueError, r"2x2 max pooling needs an output of at least 2x2, received \(1, 5\)"),
    ({"variant": 99}, ValueError, r"expected a variant index this CPU supports \(see variants\(\)\), received 99"),
])
def test_the_c_function_names_what_it_expected(change, error, message):
    with pytest.raises(error, match=message):
        kernels._kernels.conv2d(*_args(**change))


@needs_kernels
def test_the_c_function_refuses_overlapping_output_and_bad_thread_counts():
    out = np.zeros((2, 6, 5, 10), np.float32)
    inside = out.reshape(-1)[:2 * 6 * 5 * 4].reshape(2, 6, 5, 4)  # a valid input, in out's memory
    with pytest.raises(ValueError, match="expected `out` not to share memory with `x`, `w` or `bias`"):
        kernels._kernels.conv2d(*_args(x=inside, out=out))
    with pytest.raises(ValueError, match=r"expected threads between 1 and \d+, received 0"):
        kernels._kernels.conv2d(*_args(), 0)


def _wino_args(**change):
    """winograd2d's arguments for a valid call of (2, 6, 4, 4) -> 10 filters, with ``change``."""
    index, _, block, _ = kernels.VARIANTS[0]
    a = dict(variant=index, x=np.zeros((2, 6, 4, 4), np.float32), u=np.zeros((1, 16, 4, block), np.float32),
             bias=np.zeros(block, np.float32), out=np.zeros((2, 6, 4, 10), np.float32), relu=True, pool=False)
    a.update(change)
    return list(a.values())


@needs_kernels
@pytest.mark.parametrize("change, error, message", [
    ({}, None, None),
    ({"x": np.zeros((2, 5, 4, 4), np.float32)}, ValueError, r"winograd2d: expected `x` \(N, H, W, C\) with H and W even"),
    ({"x": np.zeros((2, 6, 4, 4), np.float64)}, TypeError, r"winograd2d: expected `x` of dtype float32"),
    ({"u": np.zeros((1, 9, 4, kernels.VARIANTS[0][2] if kernels.VARIANTS else 8), np.float32)}, ValueError,
     r"winograd2d: expected `u` of shape \(FB, 16, 4, \d+\) \(variant \w+\), received \(1, 9, 4, \d+\)"),
    ({"bias": np.zeros(3, np.float32)}, ValueError, r"winograd2d: expected `bias` of shape \(\d+,\), received \(3,\)"),
    ({"pool": True}, ValueError, r"winograd2d: expected `out` of shape \(2, 3, 2, F\) with \d+ < F <= \d+, received \(2, 6, 4, 10\)"),
    ({"variant": 99}, ValueError, r"winograd2d: expected a variant index this CPU supports, received 99"),
])
def test_the_winograd_c_function_names_what_it_expected(change, error, message):
    if error is None:
        assert kernels._kernels.winograd2d(*_wino_args()) is None and kernels._kernels.winograd2d(*_wino_args(), 2) is None
        return
    with pytest.raises(error, match=message):
        kernels._kernels.winograd2d(*_wino_args(**change))


@needs_kernels
def test_the_winograd_c_function_refuses_overlapping_output_and_bad_thread_counts():
    out = np.zeros((2, 6, 4, 10), np.float32)
    inside = out.reshape(-1)[:2 * 6 * 4 * 4].reshape(2, 6, 4, 4)
    with pytest.raises(ValueError, match="winograd2d: expected `out` not to share memory with `x`, `u` or `bias`"):
        kernels._kernels.winograd2d(*_wino_args(x=inside, out=out))
    with pytest.raises(ValueError, match=r"winograd2d: expected threads between 1 and \d+, received 0"):
        kernels._kernels.winograd2d(*_wino_args(), 0)


# ------------------------------------------------------------------------------------ the LSTM gate step (C)

def gates_reference(z, xw, c):
    """float64: i, f, o = sigmoid(-(z + xw)) (the plan negates those columns), g = tanh; c' = f c + i g,
    h = o tanh(c')."""
    u = c.shape[-1]
    a = z.astype(np.float64) + xw
    i, f, o = (1 / (1 + np.exp(a[..., q * u:(q + 1) * u])) for q in range(3))
    g = np.tanh(a[..., 3 * u:])
    c_new = f * c + i * g
    return c_new, o * np.tanh(c_new)


@needs_kernels
@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize("k, u", [(1, 64), (5, 19), (3, 5), (8, 32), (2, 1)])
def test_lstm_gates_match_the_float64_reference(variant, k, u):
    """Rows of buffers larger than k (the loop's views: a prefix of rows, strided first axis), u not a whole
    vector (tails), pre-activations from -100 to 100 (saturated gates)."""
    index = [v[0] for v in kernels.VARIANTS if v[1] == variant][0]
    n = k + 3
    z_buf = (RNG.standard_normal((2, n, 4 * u)) * 4).astype(np.float32)
    z_buf[0, 0, :4] = [-100, 100, 60, -60]
    xw_buf = RNG.standard_normal((2, n + 4, 4 * u)).astype(np.float32)
    c_buf = RNG.standard_normal((2, n, u)).astype(np.float32)
    h_buf = np.zeros((2, n + 2, u), np.float32)
    z, xw, c, h = z_buf[:, :k], xw_buf[:, 2:2 + k], c_buf[:, :k], h_buf[:, 1:1 + k]
    c_ref, h_ref = gates_reference(z, xw, c)
    kernels._kernels.lstm_gates(index, z, xw, c, h)
    assert np.abs(c - c_ref).max() <= 1e-5 * max(1, np.abs(c_ref).max())
    assert np.abs(h - h_ref).max() <= 1e-5
    assert not h_buf[:, 0].any() and not h_buf[:, 1 + k:].any()  # nothing written outside the view


@needs_kernels
@pytest.mark.parametrize("batch", [1, 8, 33])
def test_committed_lstm_with_the_compiled_gates_matches_keras(batch):
    keras = pytest.importorskip("keras")
    import scratch_models
    from scratch_models.inference.recurrent import BidirectionalStep
    lstm_dir = ROOT / "weights" / "lstm"
    model = scratch_models.load(lstm_dir)
    kmodel = keras.saving.load_model(lstm_dir / "model.keras", compile=False)
    steps = [s.fn for s in model.plan().steps if isinstance(s.fn, BidirectionalStep)]
    assert steps and all(s.compiled_gates for s in steps)
    rng = np.random.default_rng(batch)
    x = rng.integers(1, 1000, (batch, 64)).astype(np.int32)
    x[: batch // 2, rng.integers(1, 63):] = 0  # padded rows: the loop's prefixes of active rows
    ref = np.asarray(kmodel(x, training=False))
    fast = model.predict(x)
    assert np.abs(fast - ref).max() <= 1e-5
    assert np.abs(fast - model(x)).max() <= 1e-5
    with kernels.selected("numpy"):
        assert not BidirectionalStep(steps[0].layer).compiled_gates


@needs_kernels
@pytest.mark.parametrize("name, value, error, message", [
    ("z", np.zeros((2, 3, 16), np.float64), ValueError, r"expected `z` of dtype float32 with k=3, cols=16"),
    ("xw", np.zeros((2, 3, 12), np.float32), ValueError, r"expected `xw` of shape \(2, k, cols\) with k=3, cols=16, "
                                                         r"received shape \(2, 3, 12\)"),
    ("h", np.zeros((2, 3, 8), np.float32)[:, :, ::2], ValueError, r"expected `h` with contiguous rows"),
    ("c", np.zeros((3, 4), np.float32), ValueError, r"expected `c` with 3 dimensions \(2, k, u\), received 2"),
    ("xw", "text", TypeError, r"expected `xw` to be a float32 array, received str"),
])
def test_lstm_gates_name_what_they_expected(name, value, error, message):
    args = {"z": np.zeros((2, 3, 16), np.float32), "xw": np.zeros((2, 3, 16), np.float32),
            "c": np.zeros((2, 3, 4), np.float32), "h": np.zeros((2, 3, 4), np.float32)}
    args[name] = value
    with pytest.raises(error, match=message):
        kernels._kernels.lstm_gates(kernels.VARIANTS[0][0], *args.values())


# ------------------------------------------------------------------------------------------ threads of a compiled plan
@needs_kernels
def test_a_compiled_cnn_is_not_split_its_kernel_takes_the_cores(monkeypatch):
    """Every convolution on the kernel: the batch runs whole (no parts in Python threads) and each kernel call
    big enough gets the cores (the pool's workers); the answer is the plain graph walk's."""
    import scratch_models
    from scratch_models import parallel
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    model = scratch_models.load(CNN_DIR)
    assert model.plan().kind == "compiled-convolutional"
    parts, threads, real = [], [], kernels._kernels.conv2d
    monkeypatch.setattr(parallel, "map_parts", lambda fn, ps: parts.append(len(ps)) or [fn(p) for p in ps])
    monkeypatch.setattr(kernels._kernels, "conv2d", lambda *a: threads.append(a[-1]) or real(*a))
    for n in (1, 8, 32):
        x = RNG.random((n, 32, 32, 3), dtype=np.float32)
        assert np.abs(model.predict(x) - model(x)).max() <= 1e-5
    assert parts == [] and max(threads) == 2 and min(threads) == 1  # batch 1's first layer is too small to share


@needs_kernels
def test_concurrent_callers_share_the_kernel_pool_safely():
    """Several Python threads predicting at once: one call at a time has the pool's workers, the others run
    alone; every answer is exactly the one computed alone."""
    import threading

    import scratch_models
    model = scratch_models.load(CNN_DIR)
    xs = [RNG.random((n, 32, 32, 3), dtype=np.float32) for n in (1, 2, 3, 5, 1, 4)]
    alone = [model.predict(x) for x in xs]
    got, errors = {}, []

    def run(i):
        try:
            for _ in range(20):
                p = model.predict(xs[i])
                if not np.array_equal(p, alone[i]):
                    got[i] = p
        except Exception as exc:  # reported below
            errors.append(exc)
    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    [w.start() for w in workers]
    [w.join() for w in workers]
    assert errors == [] and got == {}
