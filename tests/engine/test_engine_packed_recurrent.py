"""Inference over length-sorted ("packed") rows in SimpleRNN/LSTM (scratch_models/inference/recurrent.py):
the same numbers as Keras' masking.

``packed_order`` is checked on hand-written masks; the packed loop is checked against Keras on post-,
pre- and mixed padding, forwards and backwards, with and without sequences, and it must really be
the path taken for padding masks (and not for masks with holes).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine_helpers import LAYER_TOL, compare, keras, padded_ids, randomize_weights, single_layer_model
from scratch_models.inference import recurrent
from scratch_models.layers import recurrent as recurrent_layers


def test_packed_order_of_post_padding():
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]], bool)
    order, active = recurrent.packed_order(mask)
    assert order.tolist() == [1, 0, 3, 2]  # by decreasing length, ties keep their order
    assert active.tolist() == [3, 2, 1, 1]


def test_packed_order_of_pre_padding():
    mask = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]], bool)
    order, active = recurrent.packed_order(mask)
    assert order.tolist() == [2, 1, 0]
    assert active.tolist() == [1, 2, 3, 3]


@pytest.mark.parametrize("mask", [
    [[1, 0, 1, 1]],                      # a hole inside a row
    [[1, 1, 0, 0], [0, 0, 1, 1]],        # post- and pre-padding mixed
])
def test_packed_order_refuses_other_masks(mask):
    assert recurrent.packed_order(np.array(mask, bool)) is None


@pytest.mark.parametrize("pattern", ["right", "left", "full", "middle"])
@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("options", [{}, {"go_backwards": True}, {"return_sequences": True},
                                     {"bidirectional": True}])
def test_packed_inference_matches_keras(cell, options, pattern, monkeypatch):
    options = dict(options)
    bidirectional = options.pop("bidirectional", False)
    layer = getattr(keras.layers, cell)(7, return_sequences=bidirectional or options.pop("return_sequences", False),
                                        **options)
    if bidirectional:  # the backward copy runs go_backwards; return_sequences sets zero_output_for_mask
        layer = keras.layers.Bidirectional(layer)
    model = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(30, 5, mask_zero=True), layer])
    randomize_weights(model, seed=7, scale=0.4)
    taken = []
    real = recurrent.packed_order
    monkeypatch.setattr(recurrent, "packed_order", lambda mask: taken.append(real(mask) is not None) or real(mask))
    ids = padded_ids(np.random.default_rng(3), 33, 12, 30, pattern)
    compare(model, ids, LAYER_TOL)
    assert taken and all(taken) == (pattern != "middle")


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_into_gives_the_numbers_of_step(cell, dtype):
    """The plan's in-place inference step and the layer's training step are the same arithmetic, bit for bit."""
    layer = getattr(recurrent_layers, cell)(6)
    layer.build((None, 4, 5))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
    layer.astype(dtype)
    xw_t = rng.standard_normal((9, layer.gates * 6)).astype(dtype)
    state = tuple(rng.standard_normal((9, 6)).astype(dtype) for _ in layer.initial_state(9))
    _, expected, _ = layer.step(xw_t, state)
    inplace = tuple(s.copy() for s in state)
    # The plan's step works in its own column order (the LSTM's gate blocks i, f, o, c): find the
    # permutation by where each recurrent-kernel column went, and feed xw_t in that order.
    step = recurrent.RecurrentStep(layer)
    rec = step.recurrent_kernel
    own = layer.weights["recurrent_kernel"]
    cols = [int(np.flatnonzero((own == rec[:, [j]]).all(axis=0))[0]) for j in range(rec.shape[1])]
    assert sorted(cols) == list(range(own.shape[1]))
    h, c = inplace if cell == "LSTM" else (inplace[0], None)
    (step._lstm_step if cell == "LSTM" else step._rnn_step)(xw_t[:, cols], h, c, np.empty((9, layer.gates * 6), dtype))
    for got, want in zip(inplace, expected):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_predict_splits_large_text_batches_across_threads(monkeypatch):
    """A batch of 300 texts runs as 2 parts in 2 threads: the numbers of one part, and of Keras."""
    from engine_helpers import TEXT_T, TEXT_VOCAB, keras_out, make_keras_text
    import scratch_models
    from scratch_models import parallel

    kmodel = make_keras_text(bidirectional=True)
    model = scratch_models.from_keras(kmodel)
    ids = padded_ids(np.random.default_rng(5), 300, TEXT_T, TEXT_VOCAB, "right")
    calls = []
    real_map = parallel.map_parts
    monkeypatch.setattr(parallel, "map_parts", lambda fn, parts: calls.append(len(parts)) or real_map(fn, parts))
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    split = model.predict(ids)
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "1")
    whole = model.predict(ids)
    assert calls == [2]
    assert np.abs(split - whole).max() <= 1e-6
    assert np.abs(split - keras_out(kmodel, ids)).max() <= 1e-5


def test_threads_setting_is_checked(monkeypatch):
    from scratch_models import parallel
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "two")
    with pytest.raises(ValueError, match="SCRATCH_MODELS_THREADS.*'two'"):
        parallel.cores()


def test_map_parts_called_from_a_pool_worker_runs_there_instead_of_waiting_on_itself(monkeypatch):
    """A part that splits again (a conv inside a split batch) must not queue behind itself in the pool."""
    import threading

    from scratch_models import parallel
    monkeypatch.setenv("SCRATCH_MODELS_THREADS", "2")
    x = np.arange(8.0)
    result = {}

    def outer_part(part):
        return np.concatenate(parallel.map_parts(lambda p: p * 2, [part[:2], part[2:]]))

    worker = threading.Thread(target=lambda: result.update(out=parallel.map_parts(outer_part, [x[:4], x[4:]])))
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "map_parts deadlocked: a pool worker waited on the pool"
    np.testing.assert_array_equal(np.concatenate(result["out"]), x * 2)
