"""Batch invariance: predict with batch sizes 1, 7, 64 and 513 gives the outputs of one single pass.

600 items, so 513 leaves an uneven last batch of 87. The bound is 1e-6, not bit-exactness: the
matrix products go to BLAS (OpenBLAS/MKL through NumPy), whose kernel and blocking depend on the
number of rows (a 1-row product may take the gemv path, larger ones gemm with a different summation
order), so the same item can round differently by a few float32 ulps. Each case also records whether
it was bit-exact.
"""
from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import TEXT_T, TEXT_VOCAB, padded_ids

import scratch_models

N = 600
TOL = 1e-6


def inputs(kind: str):
    rng = np.random.default_rng(7)
    if kind == "cnn":
        return rng.random((N, 16, 16, 3), dtype=np.float32)
    ids = padded_ids(rng, N, TEXT_T, TEXT_VOCAB, "right")
    ids[::3] = padded_ids(rng, len(ids[::3]), TEXT_T, TEXT_VOCAB, "left")
    return ids


@pytest.fixture(scope="module", params=["cnn", "text", "bitext"])
def case(request):
    kmodel = request.getfixturevalue({"cnn": "keras_cnn", "text": "keras_text", "bitext": "keras_bitext"}[request.param])
    model = scratch_models.from_keras(kmodel)
    x = inputs("cnn" if request.param == "cnn" else "text")
    return model, x, model(model.check_input(x))


@pytest.mark.parametrize("batch_size", [1, 7, 64, 513])
def test_batch_sizes_match_a_single_pass(case, batch_size):
    model, x, single = case
    got = model.predict(x, batch_size=batch_size)
    assert got.shape == single.shape and got.dtype == np.float32
    delta = float(np.abs(got - single).max())
    print(f"batch_size={batch_size}: max |Δ| vs single pass = {delta:.3g} (bit-exact: {delta == 0})")
    assert delta <= TOL


def test_default_batch_size_and_uneven_tail(case):
    model, x, single = case
    np.testing.assert_allclose(model.predict(x), single, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict(x[:1]), single[:1], rtol=0, atol=TOL)


def test_batch_size_must_be_positive(case):
    model, x, _ = case
    with pytest.raises(ValueError, match="positive integer for `batch_size`"):
        model.predict(x[:2], batch_size=0)
