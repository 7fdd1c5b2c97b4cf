"""The seeded random-architecture generator extended to issue 14's layers: 100 % argmax agreement with
Keras and max |Δp| <= 1e-4 for every model. Seeds 0..N-1 cycle through four families:

* seed % 4 == 0, image blocks (functional): Rescaling, Conv2D with dilation/groups, DepthwiseConv2D,
  SeparableConv2D, ZeroPadding2D/Cropping2D/UpSampling2D, residual Add, Concatenate, a squeeze-and-excite
  Multiply, ReLU(max_value)/hard_swish/gelu, LayerNormalization/UnitNormalization, global pooling head;
* seed % 4 == 1, GRU text: Embedding (mask_zero or not), one or two GRU layers (reset_after both ways,
  go_backwards, uni/bidirectional, every merge mode), optionally with return_state feeding the head;
* seed % 4 == 2, Conv1D text: Conv1D (valid/same/causal, strides, dilation), Max/AveragePooling1D,
  Global pooling (mask-aware average after a masked Embedding), Dense head;
* seed % 4 == 3, transformer text: token + position embedding, one or two encoder blocks
  (MultiHeadAttention with padding masks, Add, LayerNormalization, Dense), pooled head.

The worst |Δp| goes to reports/engine_random_architectures_extended.json.
"""
from __future__ import annotations

import json
import random

import keras
import numpy as np
import pytest
from engine_helpers import MODEL_TOL, REPORTS, keras_out, padded_ids
from keras import ops
from test_engine_random_architectures import ACTS, BATCH, MERGES, scaled_random_weights

import scratch_models

L = keras.layers
N_ARCHITECTURES = 48
NEW_ACTS = ["gelu", "hard_swish", "relu6", "mish", "silu"]
RESULTS: dict[int, dict] = {}


def _act(r):
    return r.choice(ACTS + NEW_ACTS)


def build_image(r: random.Random, seed: int):
    h, w, c = r.randint(8, 14), r.randint(8, 14), r.choice([1, 3, 4])
    inp = keras.Input((h, w, c))
    y, feats = inp, ["image"]
    if r.random() < 0.4:
        y = L.Rescaling(r.choice([1 / 255, 2.0, 0.5]), offset=r.choice([0.0, -1.0]))(y)
        feats.append("rescaling")
    for _ in range(r.randint(1, 3)):
        kind = r.choice(["dilated", "grouped", "depthwise", "separable", "residual", "concat", "se", "resize"])
        ch = y.shape[-1]
        if kind == "dilated":
            y = L.Conv2D(r.randint(2, 6), r.choice([2, 3]), dilation_rate=r.choice([2, (1, 2)]), padding="same",
                         activation=_act(r))(y)
        elif kind == "grouped":
            g = r.choice([g for g in (1, 2, 3, 4) if ch % g == 0])
            y = L.Conv2D(g * r.randint(1, 3), 3, groups=g, padding=r.choice(["same", "valid"]), activation=_act(r))(y)
        elif kind == "depthwise":
            y = L.DepthwiseConv2D(r.choice([3, 5]), strides=r.choice([1, 2]), padding="same",
                                  depth_multiplier=r.choice([1, 2]), use_bias=r.random() < 0.5)(y)
            y = L.BatchNormalization()(y) if r.random() < 0.5 else y
            y = L.ReLU(max_value=6.0)(y) if r.random() < 0.5 else L.Activation(_act(r))(y)
        elif kind == "separable":
            y = L.SeparableConv2D(r.randint(2, 6), 3, padding=r.choice(["same", "valid"]),
                                  dilation_rate=r.choice([1, 1, 2]), activation=_act(r))(y)
        elif kind == "residual":
            z = L.Conv2D(ch, 3, padding="same", use_bias=False)(y)
            z = L.BatchNormalization()(z)
            y = L.Activation(_act(r))(L.Add()([y, z]))
        elif kind == "concat":
            a = L.Conv2D(r.randint(1, 4), 1)(y)
            b = L.MaxPooling2D(3, strides=1, padding="same")(y)
            y = L.Concatenate(axis=-1)([a, b])
        elif kind == "se":
            s = L.GlobalAveragePooling2D(keepdims=True)(y)
            s = L.Conv2D(max(1, ch // 2), 1, activation="relu")(s)
            s = L.Conv2D(ch, 1, activation=r.choice(["sigmoid", "hard_sigmoid"]))(s)
            y = L.Multiply()([y, s])
        else:
            op = r.choice(["pad", "crop", "up"])
            if op == "pad" or min(y.shape[1:3]) < 5:
                y = L.ZeroPadding2D(r.choice([1, ((0, 1), (1, 0))]))(y)
            elif op == "crop":
                y = L.Cropping2D(r.choice([1, ((1, 0), (0, 2))]))(y)
            else:
                y = L.UpSampling2D(r.choice([2, (1, 2)]))(y)
            op and feats.append(op)
        feats.append(kind)
        if min(y.shape[1:3]) >= 6 and r.random() < 0.3:
            y = L.AveragePooling2D(2)(y)
    if r.random() < 0.3:
        y = L.LayerNormalization()(y) if r.random() < 0.5 else L.UnitNormalization()(y)
        feats.append(type(y._keras_history[0]).__name__)
    y = r.choice([L.GlobalAveragePooling2D(), L.GlobalMaxPooling2D(), L.Flatten()])(y)
    y = L.Dense(r.choice([3, 10]), activation="softmax")(y)
    x = np.random.default_rng(seed).random((BATCH, h, w, c)).astype(np.float32)
    return keras.Model(inp, y), x, feats


def build_gru_text(r: random.Random, seed: int):
    t, vocab = r.randint(5, 12), r.randint(15, 40)
    masked = r.random() < 0.7
    inp = keras.Input((t,), dtype="int32")
    y = L.Embedding(vocab, r.randint(3, 8), mask_zero=masked)(inp)
    feats = ["text", "gru", f"mask:{masked}"]
    n = r.choice([1, 2])
    states = []
    for i in range(n):
        last = i == n - 1
        reset_after = r.random() < 0.6
        bidirectional = r.random() < 0.4
        return_state = last and not bidirectional and r.random() < 0.4
        cell = L.GRU(r.randint(2, 6), return_sequences=not last, reset_after=reset_after, return_state=return_state,
                     go_backwards=not bidirectional and r.random() < 0.25,
                     activation=r.choice(["tanh", "tanh", "relu", "sigmoid"]))
        if bidirectional:
            merge = MERGES[(seed // 4 + i) % 4]
            y = L.Bidirectional(cell, merge_mode=merge)(y)
            feats.append(f"BiGRU-{merge}")
        else:
            y = cell(y)
            if return_state:
                y, *states = y
            feats.append("GRU" + ("-reset_after" if reset_after else "") + ("-state" if return_state else ""))
    if states:
        y = L.Concatenate()([y, *states])
    if r.random() < 0.5:
        y = L.Dense(r.randint(3, 8), activation=_act(r))(y)
    y = L.Dense(3, activation="softmax")(y)
    pattern = r.choice(["right", "left", "middle"]) if masked else "none"
    return keras.Model(inp, y), padded_ids(np.random.default_rng(seed), BATCH, t, vocab, pattern), feats + [pattern]


def build_conv1d_text(r: random.Random, seed: int):
    t, vocab = r.randint(10, 20), r.randint(15, 40)
    masked = r.random() < 0.4
    layers = [L.Embedding(vocab, r.randint(3, 8), mask_zero=masked)]
    feats = ["text", "conv1d", f"mask:{masked}"]
    length = t
    if not masked:
        for _ in range(r.randint(1, 2)):
            padding = r.choice(["valid", "same", "causal"])
            k, s, d = r.choice([2, 3, 5]), r.choice([1, 1, 2]), 1
            if s == 1 and r.random() < 0.4:
                d = 2
            if padding == "valid" and length - (k - 1) * d < 2:
                padding = "same"
            layers.append(L.Conv1D(r.randint(3, 8), k, strides=s, dilation_rate=d, padding=padding, activation=_act(r)))
            length = -(-length // s) if padding != "valid" else (length - (k - 1) * d - 1) // s + 1
            feats.append(f"conv{k}s{s}d{d}{padding[0]}")
            if length >= 4 and r.random() < 0.5:
                layers.append(r.choice([L.MaxPooling1D, L.AveragePooling1D])(2, padding=r.choice(["valid", "same"])))
                length = length // 2 if layers[-1].padding == "valid" else -(-length // 2)
                feats.append(type(layers[-1]).__name__)
        layers.append(r.choice([L.GlobalMaxPooling1D(), L.GlobalAveragePooling1D(), L.Flatten()]))
    else:  # after a masked Embedding: mask-aware average pooling
        layers += [L.Dense(r.randint(3, 8), activation=_act(r)), L.GlobalAveragePooling1D()]
    feats.append(type(layers[-1]).__name__)
    layers.append(L.Dense(3, activation="softmax"))
    model = keras.Sequential([keras.Input((t,), dtype="int32"), *layers])
    pattern = r.choice(["right", "left"]) if masked else r.choice(["none", "right"])
    return model, padded_ids(np.random.default_rng(seed), BATCH, t, vocab, pattern), feats + [pattern]


def build_transformer(r: random.Random, seed: int):
    t, vocab, d = r.randint(5, 10), r.randint(15, 40), r.choice([4, 6, 8])
    masked = r.random() < 0.6
    inp = keras.Input((t,), dtype="int32")
    y = L.Embedding(vocab, d, mask_zero=masked)(inp)
    feats = ["text", "transformer", f"mask:{masked}"]
    if r.random() < 0.6:
        y = y + L.Embedding(t, d)(ops.arange(0, t))
        feats.append("position")
    for _ in range(r.choice([1, 2])):
        heads = r.choice([1, 2, 3])
        att = L.MultiHeadAttention(heads, r.choice([2, 4]), value_dim=r.choice([None, 3]),
                                   dropout=r.choice([0.0, 0.1]), use_bias=r.random() < 0.8)(y, y)
        y = L.LayerNormalization(epsilon=r.choice([1e-6, 1e-3]))(L.Add()([y, att]))
        h = L.Dense(r.choice([8, 16]), activation=r.choice(["relu", "gelu"]))(y)
        y = L.LayerNormalization()(y + L.Dense(d)(h))
        feats.append(f"mha{heads}")
    y = L.GlobalAveragePooling1D()(y) if r.random() < 0.7 else ops.mean(y, axis=1)
    y = L.Dense(3, activation="softmax")(y)
    pattern = r.choice(["right", "left"]) if masked else "none"
    return keras.Model(inp, y), padded_ids(np.random.default_rng(seed), BATCH, t, vocab, pattern), feats + [pattern]


BUILDERS = [build_image, build_gru_text, build_conv1d_text, build_transformer]


def build(seed: int):
    keras.utils.set_random_seed(seed)  # a folded position embedding is a constant drawn by Keras' initialiser
    return BUILDERS[seed % 4](random.Random(1000 + seed), seed)


@pytest.fixture(scope="module")
def report():
    yield RESULTS
    if not RESULTS:
        return
    worst = max(RESULTS, key=lambda s: RESULTS[s]["max_abs_dp"])
    summary = {"architectures": len(RESULTS), "worst_max_abs_dp": RESULTS[worst]["max_abs_dp"], "worst_seed": worst,
               "agreement": float(np.mean([r["agreement"] for r in RESULTS.values()])), "tolerance": MODEL_TOL,
               "batch": BATCH, "models": {str(s): RESULTS[s] for s in sorted(RESULTS)}}
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "engine_random_architectures_extended.json").write_text(json.dumps(summary, indent=1) + "\n")


@pytest.mark.parametrize("seed", range(N_ARCHITECTURES))
def test_random_architecture_matches_keras(seed, report):
    model, x, features = build(seed)
    scaled_random_weights(model, seed)
    ref = keras_out(model, x)
    ours = scratch_models.from_keras(model).predict(x)
    assert ours.shape == ref.shape
    dp = float(np.abs(ours - ref).max())
    agreement = float(np.mean(ours.argmax(1) == ref.argmax(1)))
    report[seed] = {"features": features, "max_abs_dp": dp, "agreement": agreement}
    assert agreement == 1.0, f"argmax disagrees ({features})"
    assert dp <= MODEL_TOL, f"max |Δp| = {dp:.3g} ({features})"


def test_generator_covers_the_new_layers():
    """The sweep includes every family and new layer (features recorded by the sweep, else rebuilt)."""
    joined = " ".join(f for seed in range(N_ARCHITECTURES)
                      for f in (RESULTS[seed]["features"] if seed in RESULTS else build(seed)[2]))
    for needed in ["dilated", "grouped", "depthwise", "separable", "residual", "concat", "se", "gru", "BiGRU",
                   "GRU-reset_after", "-state", "conv1d", "MaxPooling1D", "AveragePooling1D", "transformer",
                   "position", "mask:True", "mask:False"]:
        assert needed in joined, f"no random architecture has {needed!r}"
