"""A study run on Dask workers repeats the sequential study bit for bit (issue 20).

The reference is the same runs made one after another in this process (``--sequential``, the way the
committed study was made): the records (test metrics, every per-epoch loss and accuracy, the scratch
engine's check) and the saved weights must be equal, not close. Before the fix they were not: a Dask
worker's event-loop thread draws from Python's global ``random`` (``dask.sizeof`` samples the items
of every message it sends) while the task thread takes Keras' default seeds from it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install -e '.[dev]')")
import study  # noqa: E402

pytestmark = pytest.mark.slow

# Everything a record says about the training and the test split; not timings, paths or the worker.
SAME = ("test_macro_f1", "test_accuracy", "params", "epochs_run", "best_epoch", "config", "split", "environment")
SAME_HISTORY = ("loss", "val_loss", "accuracy", "val_accuracy")
SAME_SCRATCH = ("agreement", "max_abs_prob_diff", "test_macro_f1", "test_accuracy", "n_test")


def run(out: Path, *extra: str) -> dict[str, dict]:
    args = ["--only", "rnn,lstm", "--variants", "base", "--seeds", "1", "--epochs", "2", "--out", str(out)]
    assert study.main([*args, *extra]) == 0
    return {f"{p.parent.name}/{p.stem}": json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/*.json"))}


def saved_weights(record: dict) -> list[np.ndarray]:
    import keras
    return keras.saving.load_model(Path(record["keras_run_dir"]) / "model.keras", compile=False).get_weights()


def test_a_study_on_two_dask_workers_repeats_the_sequential_records_bit_for_bit(tiny_env):
    sequential = run(tiny_env["out"] / "sequential", "--sequential")
    on_dask = run(tiny_env["out"] / "dask", "--workers", "2")

    assert sorted(sequential) == sorted(on_dask) == ["lstm/base-seed0", "rnn/base-seed0"]
    for name, ref in sequential.items():
        got = on_dask[name]
        assert ref["worker"]["pid"] == os.getpid() and got["worker"]["pid"] != os.getpid()
        assert {k: got[k] for k in SAME} == {k: ref[k] for k in SAME}, name
        assert {k: got["history"][k] for k in SAME_HISTORY} == {k: ref["history"][k] for k in SAME_HISTORY}, name
        assert {k: got["scratch"][k] for k in SAME_SCRATCH} == {k: ref["scratch"][k] for k in SAME_SCRATCH}, name
        for a, b in zip(saved_weights(got), saved_weights(ref), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
