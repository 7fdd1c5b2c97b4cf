"""Model.get_weights / set_weights: Keras' order and shapes; wrong shapes named in the error."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import make_keras_cnn, make_keras_text, randomize_weights

import scratch_models

L = keras.layers


def functional_not_equal_lstm():
    inp = keras.Input((9,), dtype="int32")
    mask = keras.ops.not_equal(inp, 0)
    y = L.Embedding(30, 5)(inp)
    y = L.LSTM(6, return_sequences=True)(y, mask=mask)
    y = L.Bidirectional(L.LSTM(4), merge_mode="sum")(y, mask=mask)
    model = keras.Model(inp, L.Dense(3, activation="softmax")(L.Dense(5, use_bias=False)(y)))
    randomize_weights(model, 5)
    return model


def bn_variants():
    model = keras.Sequential([keras.Input((6, 6, 2)), L.BatchNormalization(center=False),
                              L.Conv2D(3, 2, use_bias=False), L.BatchNormalization(scale=False),
                              L.BatchNormalization(center=False, scale=False), L.GlobalAveragePooling2D(),
                              L.Dense(4, activation="softmax")])
    randomize_weights(model, 6)
    return model


def explicit_backward():
    model = keras.Sequential([keras.Input((7,), dtype="int32"), L.Embedding(20, 4, mask_zero=True),
                              L.Bidirectional(L.LSTM(3), backward_layer=L.SimpleRNN(3, go_backwards=True)),
                              L.Dense(2, activation="softmax")])
    randomize_weights(model, 7)
    return model


MODELS = {"cnn": make_keras_cnn, "text": make_keras_text, "bitext": lambda: make_keras_text(9, True),
          "functional-not-equal": functional_not_equal_lstm, "bn-variants": bn_variants,
          "explicit-backward": explicit_backward}


@pytest.mark.parametrize("name", list(MODELS))
def test_get_weights_order_shapes_values_match_keras(name):
    kmodel = MODELS[name]()
    ours = scratch_models.from_keras(kmodel).get_weights()
    ref = kmodel.get_weights()
    assert [w.shape for w in ours] == [w.shape for w in ref]
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b, err_msg=f"weight {i} ({kmodel.weights[i].path})")


@pytest.mark.parametrize("name", ["cnn", "functional-not-equal"])
def test_set_weights_from_keras_order_reproduces_keras(name):
    source, target = MODELS[name](), MODELS[name]()
    randomize_weights(target, 99)
    model = scratch_models.from_keras(target)
    model.set_weights(source.get_weights())  # Keras' list goes straight in
    x = (np.random.default_rng(3).random((4, 16, 16, 3), dtype=np.float32) if name == "cnn"
         else np.random.default_rng(3).integers(0, 30, (4, 9)).astype(np.int32))
    np.testing.assert_allclose(model.predict(x), np.asarray(source(x)), atol=1e-6)


def test_set_weights_wrong_shape_names_both_shapes():
    model = scratch_models.from_keras(make_keras_cnn())
    weights = model.get_weights()
    expected = weights[0].shape  # conv kernel (3, 3, 3, 8)
    weights[0] = np.zeros((3, 3, 8, 3), np.float32)
    with pytest.raises(ValueError) as info:
        model.set_weights(weights)
    message = str(info.value)
    assert str(expected) in message and "(3, 3, 8, 3)" in message, message
    assert "expected" in message and "received" in message


def test_set_weights_wrong_bias_shape_in_bidirectional():
    model = scratch_models.from_keras(make_keras_text(9, True))
    weights = model.get_weights()
    i = next(i for i, w in enumerate(weights) if w.ndim == 1)
    good = weights[i].shape
    weights[i] = np.zeros((good[0] + 1,), np.float32)
    with pytest.raises(ValueError) as info:
        model.set_weights(weights)
    assert str(good) in str(info.value) and str((good[0] + 1,)) in str(info.value)


def test_set_weights_wrong_count():
    model = scratch_models.from_keras(make_keras_cnn())
    n = len(model.get_weights())
    with pytest.raises(ValueError, match=f"expected {n} weight arrays, received {n - 1}"):
        model.set_weights(model.get_weights()[:-1])


def test_failed_set_weights_leaves_model_usable():
    model = scratch_models.from_keras(make_keras_cnn())
    before = model.get_weights()
    bad = [w.copy() for w in before]
    bad[-1] = np.zeros((3,), np.float32)
    with pytest.raises(ValueError):
        model.set_weights(bad)
    x = np.random.default_rng(4).random((2, 16, 16, 3), dtype=np.float32)
    model.set_weights(before)
    assert model.predict(x).shape == (2, 10)
