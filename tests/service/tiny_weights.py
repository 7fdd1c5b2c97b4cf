"""Build a tiny but complete weights folder per arch (the production layout), from random Keras models.

    weights/<arch>/model.keras, architecture.json, weights.npz, [vectorizer.json], manifest.json

The models have the real input/output contract (cnn: float32 (N, 32, 32, 3) -> 10 classes; rnn/lstm:
int32 ids (N, L) -> 3 classes) so the service cannot tell them from the trained ones.
"""
from __future__ import annotations

import json
from pathlib import Path

from scratch_models.datasets import CIFAR10_CLASSES, NUSAX_CLASSES
from scratch_models.io_utils import atomic_write_json, sha256_file

SEQUENCE_LENGTH = 12
TEXTS = ["Makanannya enak dan pelayanannya ramah sekali",
         "Saya kecewa, pesanan datang terlambat dan dingin",
         "Tempatnya biasa saja, tidak ada yang istimewa",
         "Harga mahal tapi rasanya tidak sebanding",
         "Pemandangan indah dan udaranya sejuk",
         "Dia sedang jaga warung di dekat hotel",
         "Pelayanan buruk, saya tidak akan kembali lagi",
         "Hotel ini bersih, nyaman, dan dekat dengan pantai"]


def _keras_model(arch: str, vocab_size: int):
    import keras

    if arch == "cnn":
        return keras.Sequential([keras.Input((32, 32, 3), dtype="float32"),
                                 keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                                 keras.layers.MaxPooling2D(2),
                                 keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
                                 keras.layers.MaxPooling2D(2),
                                 keras.layers.Flatten(),
                                 keras.layers.Dense(10, activation="softmax")])
    rnn = (keras.layers.SimpleRNN(8) if arch == "rnn"
           else keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True)))
    layers = [keras.Input((SEQUENCE_LENGTH,), dtype="int32"),
              keras.layers.Embedding(vocab_size, 8, mask_zero=True), rnn]
    if arch == "lstm":
        layers.append(keras.layers.GlobalAveragePooling1D())
    return keras.Sequential(layers + [keras.layers.Dense(3, activation="softmax")])


def build_arch(root: Path, arch: str, seed: int = 0) -> Path:
    """Write ``root/<arch>/`` with both backends' files and a manifest; returns the folder."""
    import keras
    import scratch_models

    keras.utils.set_random_seed(seed)
    out = Path(root) / arch
    out.mkdir(parents=True, exist_ok=True)
    vec_layer = None
    if arch != "cnn":
        vec_layer = keras.layers.TextVectorization(max_tokens=60, output_sequence_length=SEQUENCE_LENGTH)
        vec_layer.adapt(TEXTS)
    model = _keras_model(arch, len(vec_layer.get_vocabulary()) if vec_layer is not None else 0)
    model.save(out / "model.keras")
    scratch = scratch_models.from_keras(model)
    if vec_layer is not None:
        scratch.vectorizer = scratch_models.TextVectorizer.from_keras(vec_layer)
    scratch_models.save(scratch, out)
    files = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != "manifest.json"}
    image = arch == "cnn"
    manifest = {
        "arch": arch, "classes": list(CIFAR10_CLASSES if image else NUSAX_CLASSES),
        "input": ({"kind": "image", "shape": [32, 32, 3], "dtype": "float32", "range": [0, 1]} if image else
                  {"kind": "text", "shape": [SEQUENCE_LENGTH], "dtype": "int32", "sequence_length": SEQUENCE_LENGTH}),
        "config_name": "tiny-test", "config": {}, "seed": seed, "data": {"test": 0},
        "versions": {"keras": keras.__version__}, "params": int(model.count_params()), "files": files,
        "metrics": {"test": {"keras": {"accuracy": 0.1, "macro_f1": 0.1}, "scratch": {"accuracy": 0.1, "macro_f1": 0.1},
                             "agreement": 1.0, "max_abs_prob_diff": 0.0}},
        "training": {"epochs_run": 0}}
    atomic_write_json(out / "manifest.json", manifest)
    return out


def build_weights(root: Path) -> Path:
    for arch in ("cnn", "rnn", "lstm"):
        build_arch(root, arch)
    return Path(root)


def read_manifest(arch_dir: Path) -> dict:
    return json.loads((Path(arch_dir) / "manifest.json").read_text())
