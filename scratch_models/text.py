"""TextVectorizer: Keras ``TextVectorization`` (output_mode='int') reproduced token for token.

Standardize ``lower_and_strip_punctuation`` as TensorFlow does it: ``tf.strings.lower`` changes
ASCII letters only, the regex strips ``string.punctuation``; split on ASCII whitespace only
(space, \\t, \\n, \\r, \\v, \\f -- a non-breaking space stays inside a token). Vocabulary index 0 is
``""`` (padding), 1 is ``[UNK]``; ids are padded with 0 or truncated (keeping the first tokens) to
``output_sequence_length``.
"""
from __future__ import annotations

import re
import string

import numpy as np

ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
ASCII_WHITESPACE = re.compile(r"[ \t\n\r\v\f]+")
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SPLIT = ("whitespace", "character", None)


class TextVectorizer:
    """texts (list of str) -> int32 ids (N, output_sequence_length)."""

    def __init__(self, vocabulary: list[str], output_sequence_length: int | None = None,
                 standardize: str | None = "lower_and_strip_punctuation", split: str | None = "whitespace",
                 max_tokens: int | None = None):
        if standardize not in STANDARDIZE:
            raise ValueError(f"Expected `standardize` in {STANDARDIZE}, received: {standardize!r}")
        if split not in SPLIT:
            raise ValueError(f"Expected `split` in {SPLIT}, received: {split!r}")
        vocabulary = list(vocabulary)
        if vocabulary[:2] != ["", "[UNK]"]:
            raise ValueError(f"Expected a vocabulary starting with ['', '[UNK]'], received {vocabulary[:2]}")
        if output_sequence_length is not None and int(output_sequence_length) <= 0:
            raise ValueError(f"Expected a positive `output_sequence_length`, received: {output_sequence_length!r}")
        self.vocabulary = vocabulary
        self.index = {tok: i for i, tok in enumerate(vocabulary) if i > 0}
        self.output_sequence_length = None if output_sequence_length is None else int(output_sequence_length)
        self.standardize, self.split, self.max_tokens = standardize, split, max_tokens

    @classmethod
    def from_keras(cls, layer) -> "TextVectorizer":
        """From a fitted ``keras.layers.TextVectorization`` (output_mode='int', no n-grams)."""
        cfg = layer.get_config()
        for key, ok in (("output_mode", ("int",)), ("ngrams", (None,)), ("pad_to_max_tokens", (False, None)),
                        ("vocabulary_size", None), ("ragged", (False, None))):
            if ok is not None and key in cfg and cfg[key] not in ok:
                raise ValueError(f"TextVectorization {layer.name!r}: `{key}`={cfg[key]!r} is not supported (expected {ok})")
        for key in ("standardize", "split"):
            if not (cfg.get(key) is None or isinstance(cfg.get(key), str)):
                raise ValueError(f"TextVectorization {layer.name!r}: a custom `{key}` callable is not supported")
        return cls(layer.get_vocabulary(), cfg.get("output_sequence_length"), cfg.get("standardize"),
                   cfg.get("split"), cfg.get("max_tokens"))

    def get_config(self) -> dict:
        return {"vocabulary": self.vocabulary, "output_sequence_length": self.output_sequence_length,
                "standardize": self.standardize, "split": self.split, "max_tokens": self.max_tokens}

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def standardize_text(self, text: str) -> str:
        if self.standardize in ("lower_and_strip_punctuation", "lower"):
            text = text.translate(ASCII_LOWER)
        if self.standardize in ("lower_and_strip_punctuation", "strip_punctuation"):
            text = PUNCTUATION.sub("", text)
        return text

    def tokenize(self, text: str) -> list[str]:
        text = self.standardize_text(text)
        if self.split == "whitespace":
            return [t for t in ASCII_WHITESPACE.split(text) if t]
        if self.split == "character":
            return list(text)
        return [text]

    def transform(self, texts) -> np.ndarray:
        if isinstance(texts, str):
            raise ValueError("Expected a list of strings, received a single str")
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"Expected a str at index {i}, received {type(text).__name__}")
            rows.append([self.index.get(tok, 1) for tok in self.tokenize(text)])
        length = self.output_sequence_length or max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), length), np.int32)
        for i, row in enumerate(rows):  # ragged lists -> padded matrix
            row = row[:length]
            out[i, :len(row)] = row
        return out

    __call__ = transform
