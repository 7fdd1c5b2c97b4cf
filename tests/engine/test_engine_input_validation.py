"""Bad input to Model.predict raises ValueError naming the expected shape, dtype or range."""
from __future__ import annotations

import re

import numpy as np
import pytest
from engine_helpers import TEXT_T, TEXT_VOCAB

import scratch_models


@pytest.fixture(scope="module")
def cnn(keras_cnn):
    return scratch_models.from_keras(keras_cnn)


@pytest.fixture(scope="module")
def text(keras_text):
    return scratch_models.from_keras(keras_text)


def good_images(n=2):
    return np.random.default_rng(0).random((n, 16, 16, 3), dtype=np.float32)


def with_value(x, value):
    x = x.copy()
    x.flat[5] = value
    return x


IMAGE_CASES = {
    "rank3-no-batch": (lambda: good_images()[0], [r"\(None, 16, 16, 3\)", r"\(16, 16, 3\)"]),
    "rank5": (lambda: good_images()[None], [r"\(None, 16, 16, 3\)"]),
    "wrong-size": (lambda: np.zeros((2, 32, 32, 3), np.float32), [r"\(None, 16, 16, 3\)", r"\(2, 32, 32, 3\)"]),
    "wrong-channels": (lambda: np.zeros((2, 16, 16, 1), np.float32), [r"\(None, 16, 16, 3\)"]),
    "flat": (lambda: np.zeros((2, 768), np.float32), [r"\(None, 16, 16, 3\)"]),
    "strings": (lambda: np.full((1, 16, 16, 3), "a"), ["float32", "<U1|str"]),
    "objects": (lambda: np.empty((1, 16, 16, 3), object), ["numeric", r"\(None, 16, 16, 3\)"]),
    "uint8": (lambda: (good_images() * 255).astype(np.uint8), ["float32", "uint8"]),
    "int64": (lambda: np.zeros((1, 16, 16, 3), np.int64), ["float32", "int64"]),
    "bool": (lambda: np.zeros((1, 16, 16, 3), bool), ["float32", "bool"]),
    "nan": (lambda: with_value(good_images(), np.nan), ["finite", "nan"]),
    "+inf": (lambda: with_value(good_images(), np.inf), ["finite", "inf"]),
    "-inf": (lambda: with_value(good_images(), -np.inf), ["finite", "-inf"]),
    "nested-list-ragged": (lambda: [[0.0] * 3, [0.0]], [r"\(None, 16, 16, 3\)|numeric"]),
}


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_images(cnn, case):
    make, patterns = IMAGE_CASES[case]
    with pytest.raises(ValueError) as info:
        cnn.predict(make())
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {info.value}"


def good_ids(n=3):
    return np.random.default_rng(1).integers(0, TEXT_VOCAB, size=(n, TEXT_T)).astype(np.int32)


TEXT_CASES = {
    "too-long": (lambda: np.ones((2, TEXT_T + 1), np.int32), [rf"\(None, {TEXT_T}\)"]),
    "too-short": (lambda: np.ones((2, TEXT_T - 5), np.int32), [rf"\(None, {TEXT_T}\)"]),
    "rank1": (lambda: np.ones((TEXT_T,), np.int32), [rf"\(None, {TEXT_T}\)"]),
    "rank3": (lambda: np.ones((2, TEXT_T, 1), np.int32), [rf"\(None, {TEXT_T}\)"]),
    "out-of-range": (lambda: with_value(good_ids(), TEXT_VOCAB), [rf"\[0, {TEXT_VOCAB - 1}\]", str(TEXT_VOCAB)]),
    "far-out-of-range": (lambda: with_value(good_ids(), 10**9), [rf"\[0, {TEXT_VOCAB - 1}\]"]),
    "negative": (lambda: with_value(good_ids(), -1), [rf"\[0, {TEXT_VOCAB - 1}\]", "-1"]),
    "strings": (lambda: np.full((1, TEXT_T), "kata"), ["integer token ids"]),
    "objects": (lambda: np.empty((1, TEXT_T), object), ["numeric"]),
    "non-integral-floats": (lambda: good_ids().astype(np.float32) + 0.5, ["integer token ids", "non-integral"]),
    "nan": (lambda: with_value(good_ids().astype(np.float32), np.nan), ["integer token ids", "non-finite"]),
    "inf": (lambda: with_value(good_ids().astype(np.float64), np.inf), ["integer token ids", "non-finite"]),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_bad_token_ids(text, case):
    make, patterns = TEXT_CASES[case]
    with pytest.raises(ValueError) as info:
        text.predict(make())
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {info.value}"


def test_good_inputs_still_work(cnn, text):
    assert cnn.predict(good_images(3)).shape == (3, 10)
    assert cnn.predict(good_images(3).astype(np.float64)).dtype == np.float32  # float64 is cast
    assert text.predict(good_ids()).shape == (3, 3)
    assert text.predict(good_ids().astype(np.uint8)).shape == (3, 3)
    np.testing.assert_array_equal(text.predict(good_ids().astype(np.float32)), text.predict(good_ids()))
