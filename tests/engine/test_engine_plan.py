"""``Model.predict`` runs the inference plan (scratch_models/inference); ``Model.__call__`` is the plain graph
walk through each layer's textbook ``forward``. The two must agree, and the plan must follow weight changes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scratch_models

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def _inputs(model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if model.takes_token_ids:
        t = model.input_shape[1]
        ids = rng.integers(1, model.vectorizer.vocabulary_size if model.vectorizer else 50, (n, t))
        lengths = rng.integers(1, t + 1, n)
        ids[np.arange(t)[None, :] >= lengths[:, None]] = 0
        return ids.astype(np.int32)
    return rng.random((n, *model.input_shape[1:]), dtype=np.float32)


@pytest.mark.parametrize("batch", [1, 7, 40, 300])
@pytest.mark.parametrize("arch", ["cnn", "rnn", "lstm"])
def test_predict_plan_equals_the_plain_graph_walk_on_committed_models(arch, batch):
    if not (WEIGHTS / arch / "architecture.json").is_file():
        pytest.skip(f"weights/{arch} absent")
    model = scratch_models.load(WEIGHTS / arch)
    x = _inputs(model, batch)
    plain = model(model.check_input(x))
    assert np.abs(model.predict(x) - plain).max() <= 1e-5
    kinds = {st.name for st in model.plan().steps}
    assert ("conv" in kinds) if arch == "cnn" else ("bidirectional" in kinds)


def test_full_length_texts_plan_equals_the_walk():
    if not (WEIGHTS / "lstm" / "architecture.json").is_file():
        pytest.skip("weights/lstm absent")
    model = scratch_models.load(WEIGHTS / "lstm")
    x = np.random.default_rng(3).integers(2, 1200, (33, model.input_shape[1])).astype(np.int32)  # no padding
    assert np.abs(model.predict(x) - model(x)).max() <= 1e-5


def test_the_plan_is_compiled_once_and_dropped_when_weights_change():
    if not (WEIGHTS / "cnn" / "architecture.json").is_file():
        pytest.skip("weights/cnn absent")
    model = scratch_models.load(WEIGHTS / "cnn")
    x = _inputs(model, 4)
    before = model.predict(x)
    plan = model.plan()
    model.predict(x)
    assert model.plan() is plan  # compiled once
    weights = model.get_weights()
    model.set_weights([w * 1.5 if w.ndim == 4 else w for w in weights])  # every conv kernel scaled
    assert model.plan() is not plan
    changed = model.predict(x)
    assert np.abs(changed - model(x)).max() <= 1e-5 and np.abs(changed - before).max() > 1e-4
    model.set_weights(weights)
    assert np.abs(model.predict(x) - before).max() <= 1e-6


def test_training_invalidates_the_plan():
    keras = pytest.importorskip("keras")
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same", use_bias=False),
                               L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
                               L.Dense(3, activation="softmax")])
    model = scratch_models.from_keras(kmodel)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, 16)
    model.predict(x)
    model.compile(scratch_models.optimizers.SGD(0.5))
    model.train_step(x, y)
    assert np.abs(model.predict(x) - model(x)).max() <= 1e-5  # the folded BN and kernel are the trained ones


def test_optimizers_and_losses_are_package_attributes():
    assert scratch_models.optimizers.Adam and scratch_models.losses.SparseCategoricalCrossentropy


def test_training_does_not_import_the_model_module_at_import_time():
    import ast
    import inspect

    from scratch_models import training
    tree = ast.parse(inspect.getsource(training))
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not any(n.module == "model" for n in top)  # model.py <-> training.py: no import circle
