"""The Keras loader refuses any option a layer does not implement, whatever its value (issue 16): the old
rule let an unknown option through when it equalled None, False, 0 or 1 (and so True, as True == 1)."""
from __future__ import annotations

import pytest

from scratch_models import UnsupportedLayerError
from scratch_models.layers import Dense, Flatten, layer_from_keras_config
from scratch_models.layers.base import is_one_of, same_value


@pytest.mark.parametrize("value", [None, False, True, 0, 1, 0.0, "channels_last", (1, 1)])
def test_an_unknown_option_is_refused_whatever_its_value(value):
    with pytest.raises(UnsupportedLayerError, match=r"option `made_up_option`"):
        Dense.from_keras_config({"name": "d", "units": 3, "made_up_option": value})


def test_a_listed_harmless_option_passes_at_its_harmless_value_only():
    assert isinstance(Flatten.from_keras_config({"name": "f", "data_format": "channels_last"}), Flatten)
    with pytest.raises(UnsupportedLayerError, match=r"`data_format`='channels_first'.*harmless at"):
        Flatten.from_keras_config({"name": "f", "data_format": "channels_first"})


def test_true_is_not_one_and_one_float_is_not_one():
    assert not same_value(True, 1) and not same_value(1.0, 1) and not same_value(None, False)
    assert same_value((1, 1), (1, 1)) and not same_value((1, 1), [1, 1]) and not same_value((True, 1), (1, 1))
    assert is_one_of([1, 1], (1, (1, 1), [1, 1])) and not is_one_of(True, (1, (1, 1), [1, 1]))


def test_a_listed_option_with_a_bool_for_an_int_is_refused():
    """An option listed with its supported values (here ``groups`` 1 only) refuses ``True``, which ``in`` accepts."""
    from scratch_models.layers.base import Layer

    class OnlyOneGroup(Layer):
        options = {"groups": (1,)}

        def __init__(self, groups=1, name=None):
            super().__init__(name)

    assert isinstance(OnlyOneGroup.from_keras_config({"name": "g", "groups": 1}), OnlyOneGroup)
    with pytest.raises(UnsupportedLayerError, match=r"`groups`=True \(supported: \(1,\)\)"):
        OnlyOneGroup.from_keras_config({"name": "g", "groups": True})


def test_every_option_a_keras_layer_writes_is_known():
    """Each supported Keras layer's default config loads: nothing it writes is unknown to us."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    for klayer in (L.Dense(3), L.Conv2D(2, 3), L.MaxPooling2D(), L.AveragePooling2D(2), L.BatchNormalization(),
                   L.Flatten(), L.Dropout(0.1), L.SpatialDropout2D(0.1), L.Embedding(10, 3), L.SimpleRNN(3),
                   L.LSTM(3), L.Activation("relu"), L.GlobalAveragePooling1D(), L.GlobalMaxPooling2D()):
        layer = layer_from_keras_config(type(klayer).__name__, klayer.get_config())
        assert type(layer).__name__ == type(klayer).__name__
