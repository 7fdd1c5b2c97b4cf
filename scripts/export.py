#!/usr/bin/env python
"""Publish a finished training run to ``weights/<arch>/`` for both backends.

    DATA_DIR=../shared/data python scripts/export.py runs/lstm/default-seed0 weights/lstm

Writes ``model.keras`` (no optimizer state), the scratch artifact (``architecture.json``,
``weights.npz``, ``vectorizer.json`` for text), ``history.json``, ``loss.png`` and
``manifest.json`` (arch, classes, input spec, config, seed, split, versions, test metrics of both
backends, sha256 of every file) into a temporary folder, then swaps it into place in one atomic step
(``scratch_models.io_utils.replace_dir``): an export killed at any point leaves the old folder or the new one.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import scratch_models  # noqa: E402
from scratch_models.datasets import DEFAULT_SPLIT_SEED, load_dataset_for  # noqa: E402
from scratch_models.io_utils import atomic_write_json, recover_dir, replace_dir, sha256_file  # noqa: E402


def backend_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score
    pred = probs.argmax(1)
    return {"accuracy": float(accuracy_score(y_true, pred)), "macro_f1": float(f1_score(y_true, pred, average="macro"))}


def compare_backends(keras_model, scratch_model, x: np.ndarray, y: np.ndarray) -> dict:
    """Test-split metrics of both backends on the same network inputs, their agreement and max |Δp|."""
    p_keras = keras_model.predict(x, batch_size=256, verbose=0)
    p_scratch = scratch_model.predict(x)
    return {"n": int(len(y)), "keras": backend_metrics(y, p_keras), "scratch": backend_metrics(y, p_scratch),
            "agreement": float((p_keras.argmax(1) == p_scratch.argmax(1)).mean()),
            "max_abs_prob_diff": float(np.abs(p_keras - p_scratch).max())}


def library_versions() -> dict:
    import keras
    import sklearn
    import tensorflow as tf
    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "scikit-learn": sklearn.__version__, "scratch_models": scratch_models.__version__}


def export_run(run_dir: Path, target: Path, data_dir: str | None = None) -> dict:
    import keras

    run_dir, target = Path(run_dir), Path(target)
    if recover_dir(target):
        print(f"[export] {target} was missing after an interrupted export: restored its previous files", flush=True)
    result = json.loads((run_dir / "result.json").read_text())
    arch = result["arch"]
    keras_model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    scratch = scratch_models.from_keras(keras_model)
    data = load_dataset_for(arch, data_dir)
    if arch == "cnn":
        x_test = data.test.x
        input_spec = {"kind": "image", "shape": [32, 32, 3], "dtype": "float32", "range": [0.0, 1.0],
                      "layout": "NHWC, RGB, pixels / 255"}
    else:
        vec_cfg = json.loads((run_dir / "vectorizer.json").read_text())
        scratch.vectorizer = scratch_models.TextVectorizer(vec_cfg["vocabulary"], vec_cfg["output_sequence_length"],
                                                           max_tokens=vec_cfg["max_tokens"])
        x_test = scratch.vectorizer.transform(list(data.test.x))
        keras_vec = keras.layers.TextVectorization(max_tokens=vec_cfg["max_tokens"],
                                                   output_sequence_length=vec_cfg["output_sequence_length"],
                                                   vocabulary=vec_cfg["vocabulary"][2:])
        all_texts = [t for s in ("train", "valid", "test") for t in getattr(data, s).x]
        if not np.array_equal(np.asarray(keras_vec(all_texts)), scratch.vectorizer.transform(all_texts)):
            raise RuntimeError("The scratch TextVectorizer does not reproduce Keras' ids on the NusaX texts")
        input_spec = {"kind": "text", "shape": [vec_cfg["output_sequence_length"]], "dtype": "int32",
                      "sequence_length": vec_cfg["output_sequence_length"],
                      "vocabulary_size": len(vec_cfg["vocabulary"]),
                      "standardize": "lower_and_strip_punctuation (ASCII lowercase only)",
                      "split": "ASCII whitespace", "truncation": "keeps the first tokens, pads with 0"}
    t0 = time.time()
    comparison = compare_backends(keras_model, scratch, x_test, data.test.y)
    print(f"[export] {arch}: keras macro-F1 {comparison['keras']['macro_f1']:.4f}, scratch "
          f"{comparison['scratch']['macro_f1']:.4f}, agreement {comparison['agreement']:.4f}, "
          f"max|dp| {comparison['max_abs_prob_diff']:.2e} ({time.time() - t0:.1f} s)", flush=True)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    os.chmod(staging, 0o755)
    try:
        shutil.copyfile(run_dir / "model.keras", staging / "model.keras")
        scratch_models.save(scratch, staging)
        for name in ("history.json", "loss.png"):
            shutil.copyfile(run_dir / name, staging / name)
        manifest = {
            "arch": arch, "classes": list(data.classes), "input": input_spec,
            "config_name": result["config_name"], "config": result["config"], "seed": result["seed"],
            "data": {"dataset": data.name, "source": os.path.relpath(data.source, ROOT) if os.path.isabs(data.source) else data.source,
                     "split": result["split"], "split_seed": DEFAULT_SPLIT_SEED if arch == "cnn" else None,
                     "split_rule": ("train 40,000 / valid 10,000 stratified from the 50,000 training images; test 10,000"
                                    if arch == "cnn" else "NusaX's own train / valid / test CSVs")},
            "params": int(keras_model.count_params()),
            "training": {"epochs_run": result["epochs_run"], "best_epoch": result["best_epoch"],
                         "seconds": round(result["train_seconds"], 1), "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
                         "command": result.get("command") or f"python scripts/train.py --arch {arch} --config {result['config_name']} --seed {result['seed']} --export"},
            "metrics": {"test": comparison, **({"valid_keras": result["valid_metrics_keras"]} if "valid_metrics_keras" in result else {})},
            "versions": library_versions(),
            "files": {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()},
        }
        atomic_write_json(staging / "manifest.json", manifest)
        replace_dir(staging, target)  # killed at any point: the old folder or the new one, never none
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"[export] wrote {target} ({sum(p.stat().st_size for p in target.iterdir()) / 1e6:.2f} MB)", flush=True)
    return manifest


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("target", type=Path, nargs="?")
    args = p.parse_args(argv)
    arch = json.loads((args.run_dir / "result.json").read_text())["arch"]
    export_run(args.run_dir, args.target or ROOT / "weights" / arch)


if __name__ == "__main__":
    main()
