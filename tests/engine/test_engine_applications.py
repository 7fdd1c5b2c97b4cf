"""Whole Keras Applications (``weights=None``, 32x32 inputs, 10 classes) converted and run against Keras:
argmax agreement 100 % and max |Δp| <= 1e-4 (issue 14 item 2). Figures go to reports/engine_applications.json.

Weights: Keras' own initialisers (what ``weights=None`` builds: random kernels), then every
BatchNormalization given non-trivial statistics (gamma, beta, moving mean and variance perturbed),
Normalization layers given a mean and variance, and the classifier kernel rescaled so the logits have a
standard deviation of about 2 on the test batch: the softmax is then far from saturated and |Δp| is a
sensitive measure of the whole network's agreement.
"""
from __future__ import annotations

import json
import time

import keras
import numpy as np
import pytest
from engine_helpers import MODEL_TOL, REPORTS, keras_out

import scratch_models

A = keras.applications
SHAPE, BATCH, CLASSES = (32, 32, 3), 4, 10
APPLICATIONS = {
    "MobileNet": A.MobileNet, "MobileNetV2": A.MobileNetV2, "MobileNetV3Small": A.MobileNetV3Small,
    "EfficientNetB0": A.EfficientNetB0, "ResNet50": A.ResNet50, "DenseNet121": A.DenseNet121,
    "NASNetMobile": A.NASNetMobile,
}
SLOW = {"NASNetMobile"}  # > ~20 s to build and run on 2 cores (25 s; ResNet50 18 s, DenseNet121 16 s)
RESULTS: dict[str, dict] = {}


def perturb_statistics(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.8, 1.2, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.8, 1.2, var.shape)])
        elif kind == "Normalization" and layer.weights:
            mean, var, count = layer.get_weights()
            layer.set_weights([rng.uniform(0.3, 0.6, mean.shape), rng.uniform(0.05, 0.1, var.shape), count])
            layer.finalize_state()


def calibrate_head(model, x, seed: int) -> None:
    """Rescale the last kernel (Dense or the 1x1 Conv2D head) so the logits' std on ``x`` is about 2."""
    head = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None][-1]
    features = np.asarray(keras.Model(model.inputs, head.input)(x, training=False))
    kernel, *rest = head.get_weights()
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal(kernel.shape) * 2 / (np.sqrt(kernel.shape[-2]) * max(features.std(), 1e-6))
    head.set_weights([kernel.astype(np.float32), *[np.zeros_like(r) for r in rest]])


@pytest.fixture(scope="module")
def report():
    yield RESULTS
    if RESULTS:  # merged into the report: a run without the slow ones keeps their last figures
        REPORTS.mkdir(exist_ok=True)
        path = REPORTS / "engine_applications.json"
        old = json.loads(path.read_text()).get("models", {}) if path.is_file() else {}
        summary = {"input_shape": list(SHAPE), "batch": BATCH, "classes": CLASSES, "tolerance": MODEL_TOL,
                   "models": {**old, **RESULTS}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
        tmp.replace(path)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in APPLICATIONS])
def test_application_matches_keras(name, report):
    t0 = time.perf_counter()
    seed = sum(map(ord, name))
    keras.utils.set_random_seed(seed)  # Keras' initialisers draw from it: the same kernels every run
    model = APPLICATIONS[name](weights=None, input_shape=SHAPE, classes=CLASSES)
    perturb_statistics(model, seed)
    x = np.random.default_rng(seed).uniform(0, 255 if name.startswith(("Efficient", "MobileNetV3")) else 1,
                                            (BATCH, *SHAPE)).astype(np.float32)
    calibrate_head(model, x, seed)
    ref = keras_out(model, x)
    ours = scratch_models.from_keras(model).predict(x)
    assert ours.shape == ref.shape == (BATCH, CLASSES)
    dp = float(np.abs(ours - ref).max())
    agreement = float(np.mean(ours.argmax(1) == ref.argmax(1)))
    report[name] = {"layers": len(model.layers), "params": int(model.count_params()), "agreement": agreement,
                    "max_abs_dp": dp, "max_p": float(ref.max()), "seconds": round(time.perf_counter() - t0, 1)}
    assert 0.3 < ref.max(axis=1).mean() < 0.99, f"softmax saturated or flat: {ref.max(axis=1)}"
    assert agreement == 1.0, f"argmax disagrees: {ours.argmax(1)} vs {ref.argmax(1)}"
    assert dp <= MODEL_TOL, f"max |Δp| = {dp:.3g}"


# ------------------------------------------------------------------------------ text classifiers
TEXT_T, TEXT_VOCAB, TEXT_BATCH = 24, 200, 32


def gru_classifier():
    L = keras.layers
    return keras.Sequential([keras.Input((TEXT_T,), dtype="int32"), L.Embedding(TEXT_VOCAB, 16, mask_zero=True),
                             L.Bidirectional(L.GRU(12, return_sequences=True)), L.GRU(8, reset_after=False),
                             L.Dropout(0.3), L.Dense(3, activation="softmax")], name="gru_classifier")


def conv1d_classifier():
    L = keras.layers
    return keras.Sequential([keras.Input((TEXT_T,), dtype="int32"), L.Embedding(TEXT_VOCAB, 16),
                             L.Conv1D(24, 5, padding="same", activation="relu"), L.MaxPooling1D(2),
                             L.Conv1D(16, 3, dilation_rate=2, activation="relu"), L.GlobalMaxPooling1D(),
                             L.Dense(16, activation="relu"), L.Dense(3, activation="softmax")], name="conv1d_classifier")


def transformer_classifier():
    L, ops = keras.layers, keras.ops
    inp = keras.Input((TEXT_T,), dtype="int32")
    x = L.Embedding(TEXT_VOCAB, 16, mask_zero=True)(inp) + L.Embedding(TEXT_T, 16)(ops.arange(0, TEXT_T))
    for _ in range(2):
        att = L.MultiHeadAttention(4, 4, dropout=0.1)(x, x)
        x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(0.1)(att)]))
        h = L.Dense(32, activation="gelu")(x)
        x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dense(16)(h)]))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(3, activation="softmax")(L.Dropout(0.1)(x)), name="transformer_classifier")


TEXT_MODELS = {"GRU text classifier": gru_classifier, "Conv1D text classifier": conv1d_classifier,
               "transformer text classifier": transformer_classifier}


@pytest.mark.parametrize("name", list(TEXT_MODELS))
def test_text_classifier_matches_keras(name, report):
    from engine_helpers import padded_ids
    from test_engine_random_architectures import scaled_random_weights
    t0 = time.perf_counter()
    seed = sum(map(ord, name))
    keras.utils.set_random_seed(seed)  # the folded position embedding is a constant from Keras' initialiser
    model = TEXT_MODELS[name]()
    scaled_random_weights(model, seed)
    x = padded_ids(np.random.default_rng(seed), TEXT_BATCH, TEXT_T, TEXT_VOCAB, "right")
    ref = keras_out(model, x)
    ours = scratch_models.from_keras(model).predict(x)
    dp = float(np.abs(ours - ref).max())
    agreement = float(np.mean(ours.argmax(1) == ref.argmax(1)))
    report[name] = {"layers": len(model.layers), "params": int(model.count_params()), "agreement": agreement,
                    "max_abs_dp": dp, "max_p": float(ref.max()), "batch": TEXT_BATCH,
                    "seconds": round(time.perf_counter() - t0, 1)}
    assert 0.34 < ref.max(axis=1).mean() < 0.99, f"softmax saturated or flat: {ref.max(axis=1)}"
    assert agreement == 1.0 and dp <= MODEL_TOL, (agreement, dp)
