"""The training script's options that change the maths: class weights, the cosine schedule, resuming.

Checked against hand-computed values and against Keras' own schedule; the resume test interrupts a
real (tiny) Keras fit and checks that the rerun continues from the backup instead of starting over.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import train  # noqa: E402


def test_balanced_class_weights_by_hand():
    y = np.array([0] * 192 + [1] * 119 + [2] * 189)  # NusaX train: negative, neutral, positive
    w = train.class_weights({"class_weight": "balanced"}, y)
    assert w == pytest.approx({0: 500 / (3 * 192), 1: 500 / (3 * 119), 2: 500 / (3 * 189)})
    assert train.class_weights({}, y) is None
    with pytest.raises(ValueError, match="class_weight 'balanced'.*'inverse'"):
        train.class_weights({"class_weight": "inverse"}, y)


def test_cosine_schedule_spans_the_whole_budget():
    cfg = {"learning_rate": 1e-3, "lr_schedule": "cosine", "batch_size": 64, "epochs": 30}
    schedule = train.learning_rate_for(cfg, 40_000)
    steps = 625 * 30  # ceil(40000 / 64) batches per epoch
    for step in (0, steps // 4, steps // 2, steps - 1, steps):
        expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert train.learning_rate_for({"learning_rate": 3e-4}, 100) == 3e-4
    with pytest.raises(ValueError, match="Expected lr_schedule 'constant', 'cosine' or 'warmup_cosine', received 'step'"):
        train.learning_rate_for({**cfg, "lr_schedule": "step"}, 100)


def test_an_interrupted_fit_resumes_from_its_backup(tmp_path):
    """Stop a fit after epoch 2 of 4, rerun the same fit: it must run only epochs 3-4, keep the first two
    epochs' history, and continue the optimizer (its step count) rather than start over."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((64, 5)).astype(np.float32)
    y = (x.sum(axis=1) > 2.5).astype(np.int32)

    def fit(stop_after=None):
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        epochs_seen = []

        class Stop(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                epochs_seen.append(epoch)

            def on_epoch_end(self, epoch, logs=None):
                if stop_after is not None and epoch + 1 == stop_after:
                    raise KeyboardInterrupt  # the process dies here

        callbacks = [keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                     train.JsonProgress.make(tmp_path, 4), Stop()]
        try:
            model.fit(x, y, epochs=4, batch_size=16, validation_data=(x, y), callbacks=callbacks, verbose=0)
        except KeyboardInterrupt:
            pass
        return model, epochs_seen, callbacks[1].history

    _, first, _ = fit(stop_after=2)
    assert first == [0, 1]
    model, second, history = fit()
    assert second == [2, 3]  # resumed: epochs 1-2 were not run again
    assert len(history["loss"]) == 4  # the first two epochs' history was kept
    assert int(model.optimizer.iterations.numpy()) == 4 * 4  # 4 epochs x 4 batches, not 2 x 4
    partial = json.loads((tmp_path / "history.partial.json").read_text())
    assert partial["loss"] == history["loss"]
