"""TextVectorizer vs Keras TextVectorization: identical ids, token for token.

The Keras layers are adapted on the NusaX train split plus the adversarial strings and their Python
``str.lower()`` forms, so that a wrong lowercasing (TensorFlow lowercases ASCII letters only), a wrong
punctuation set or a wrong whitespace split would map a token to a *different known id*, not just to
[UNK], and be caught.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

from scratch_models import TextVectorizer

ADVERSARIAL = [
    "ÉCOLE Über Ñandú école über ñandú",
    "ПРИВЕТ Мир ΑΘΗΝΑ Σοφία",
    "東京 タワー 北京欢迎你 서울",
    "emoji 😀 👍🏽 ❤️ test😀",
    "!!! ??? ... ,,, ;:'\"()[]{}<>@#$%^&*-_=+|\\/~`",
    "",
    "tab\tseparated\ttokens",
    "new\nline\nand\r\ncrlf\rcarriage",
    "vertical\vtab and form\ffeed",
    "non\u00a0breaking\u00a0space and em\u2003space thin\u2009space ideographic\u3000space",
    "runs     of      spaces   ",
    "   leading and trailing   ",
    "[UNK] literally [UNK]",
    "unicode punctuation “quoted” ‘single’ … — – « » ¡hola! ¿qué?",
    "MiXeD CaSe ASCII and Straße İstanbul ǅemal",
    "digits 123 4.56 7,890 1e-3",
    "hy-phen ated don't it's e-mail",
    " ",
    "\t\n",
]
LONG = " ".join(["kata"] * 1500 + ["sangat", "bagus", "Über", "\u00a0x"] * 400)[:10_000]


@pytest.fixture(scope="module")
def corpus(nusax):
    texts = list(nusax.train.x) + list(nusax.valid.x) + list(nusax.test.x)
    assert len(texts) == 1000
    return texts


def keras_vectorizer(adapt_on, **kwargs):
    layer = keras.layers.TextVectorization(**kwargs)
    layer.adapt(adapt_on)
    return layer


def assert_same_ids(layer, texts):
    ref = np.asarray(layer(texts))
    ours = TextVectorizer.from_keras(layer)
    assert ours.vocabulary == layer.get_vocabulary()
    got = ours.transform(texts)
    assert got.dtype == np.int32
    assert got.shape == ref.shape, f"shape {got.shape} != Keras {ref.shape}"
    bad = np.flatnonzero((got != ref).any(axis=1))
    assert bad.size == 0, (f"{bad.size} texts differ, first {texts[bad[0]]!r}: ours {got[bad[0]].tolist()[:20]} "
                           f"Keras {ref[bad[0]].tolist()[:20]}")


@pytest.mark.parametrize("output_sequence_length", [None, 100, 8], ids=lambda v: f"len={v}")
@pytest.mark.parametrize("max_tokens", [None, 5000, 30], ids=lambda v: f"max_tokens={v}")
def test_all_nusax_texts(corpus, max_tokens, output_sequence_length):
    layer = keras_vectorizer(corpus[:500], max_tokens=max_tokens, output_sequence_length=output_sequence_length)
    if max_tokens is not None:
        assert len(layer.get_vocabulary()) <= max_tokens
    assert_same_ids(layer, corpus)


@pytest.mark.parametrize("output_sequence_length", [None, 12], ids=lambda v: f"len={v}")
@pytest.mark.parametrize("max_tokens", [None, 40], ids=lambda v: f"max_tokens={v}")
def test_adversarial_strings(corpus, max_tokens, output_sequence_length):
    adapt_on = corpus[:500] + ADVERSARIAL + [t.lower() for t in ADVERSARIAL] + ADVERSARIAL * 5
    layer = keras_vectorizer(adapt_on, max_tokens=max_tokens, output_sequence_length=output_sequence_length)
    assert_same_ids(layer, ADVERSARIAL + [LONG])


@pytest.mark.parametrize("text", ADVERSARIAL + [LONG], ids=lambda t: repr(t[:20]))
def test_each_adversarial_string_alone(corpus, text):
    """One string per batch: with no output_sequence_length the row length is its own token count."""
    layer = _adversarial_layer(corpus)
    assert_same_ids(layer, [text])


_CACHE: dict = {}


def _adversarial_layer(corpus):
    if "layer" not in _CACHE:
        _CACHE["layer"] = keras_vectorizer(corpus[:500] + ADVERSARIAL + [t.lower() for t in ADVERSARIAL])
    return _CACHE["layer"]


@pytest.mark.parametrize("split", ["whitespace", "character"])
@pytest.mark.parametrize("standardize", ["lower_and_strip_punctuation", "lower", "strip_punctuation", None],
                         ids=str)
def test_standardize_and_split_options(corpus, standardize, split):
    texts = corpus[:60] + ADVERSARIAL
    layer = keras_vectorizer(texts + [t.lower() for t in ADVERSARIAL], standardize=standardize, split=split,
                             output_sequence_length=50)
    assert_same_ids(layer, texts)


def test_hand_checked_ids():
    layer = keras.layers.TextVectorization(vocabulary=["saya", "suka", "über", "Über"], output_sequence_length=6)
    ours = TextVectorizer.from_keras(layer)
    # vocabulary: "" 0, [UNK] 1, saya 2, suka 3, über 4, Über 5; "SAYA" -> saya, "Über" stays, "!" stripped
    expected = [[2, 3, 5, 4, 1, 0]]
    np.testing.assert_array_equal(ours.transform(["SAYA suka! Über über apa"]), expected)
    np.testing.assert_array_equal(np.asarray(layer(["SAYA suka! Über über apa"])), expected)


def test_transform_refuses_non_strings():
    ours = TextVectorizer(["", "[UNK]", "a"])
    with pytest.raises(ValueError, match="list of strings"):
        ours.transform("a single string")
    with pytest.raises(ValueError, match="str at index 1"):
        ours.transform(["a", 3])
