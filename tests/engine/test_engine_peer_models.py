"""Real Keras models trained by other teams (../shared/fixtures/peer-models/, see its README) vs Keras.

Each is loaded with ``scratch_models.load_keras`` and, independently, with Keras (given a copy whose
extension matches its content, since Keras picks its reader by extension), then both are fed the same
real inputs: CIFAR-10 test JPEGs scaled to [0, 1] (30 per class) or the 400 NusaX test texts as token
ids. Required: 100 % argmax agreement, max |Δp| <= 1e-4. Results go to reports/engine_peer_models.json.
"""
from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
from engine_helpers import DATA_DIR, MODEL_TOL, REPORTS, keras_out

import scratch_models
from scratch_models import TextVectorizer
from scratch_models.datasets import CIFAR10_CLASSES

IMAGES_PER_CLASS = 30
RESULTS: dict[str, dict] = {}


def keras_load_by_content(path, tmp_path):
    """Keras' own loader on a copy named for what the file is (HDF5 signature -> .h5, else .keras)."""
    with open(path, "rb") as fh:
        ext = "h5" if fh.read(8) == b"\x89HDF\r\n\x1a\n" else "keras"
    target = tmp_path / f"{path.stem}.{ext}"
    shutil.copyfile(path, target)
    return keras.saving.load_model(target, compile=False)


@pytest.fixture(scope="module")
def cifar_images():
    """30 test JPEGs per class read with Pillow, float32 (300, 32, 32, 3) in [0, 1]."""
    from PIL import Image
    root = DATA_DIR / "cifar10" / "test"
    if not root.is_dir():
        pytest.skip(f"CIFAR-10 test images not found under {root} (set DATA_DIR)")
    images = []
    for name in CIFAR10_CLASSES:
        for path in sorted((root / name).iterdir())[:IMAGES_PER_CLASS]:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB"), np.uint8))
    return np.stack(images).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def report():
    yield RESULTS
    if RESULTS:
        REPORTS.mkdir(exist_ok=True)
        path = REPORTS / "engine_peer_models.json"  # merged: a run of some of the tests keeps the others' rows
        merged = {**(json.loads(path.read_text()) if path.exists() else {}), **RESULTS}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(merged, indent=1) + "\n")
        tmp.replace(path)
        for name, r in RESULTS.items():
            print(f"\n{name}: agreement {r['agreement']:.0%}, max|Δp| {r['max_abs_dp']:.3g}, n={r['n']}")


def check_peer(name, ours, kmodel, x, report):
    ref = keras_out(kmodel, x)
    got = ours.predict(x)
    assert got.shape == ref.shape
    dp = float(np.abs(got - ref).max())
    agreement = float(np.mean(got.argmax(1) == ref.argmax(1)))
    report[name] = {"agreement": agreement, "max_abs_dp": dp, "n": int(len(x)),
                    "input": "CIFAR-10 test JPEGs" if x.ndim == 4 else "NusaX test token ids"}
    assert agreement == 1.0, f"{name}: argmax agreement {agreement:.2%}"
    assert dp <= MODEL_TOL, f"{name}: max |Δp| = {dp:.3g}"
    return got


@pytest.mark.parametrize("filename", ["cnn_3_layers_legacy_h5.keras", "cnn_fixed_batch64.h5"])
def test_peer_cnn(filename, peer_dir, cifar_images, tmp_path, report):
    ours = scratch_models.load_keras(peer_dir / filename)
    kmodel = keras_load_by_content(peer_dir / filename, tmp_path)
    probs = check_peer(filename, ours, kmodel, cifar_images, report)
    # A fixed batch size in the saved input shape (64 for one of them) must not restrict ours.
    assert ours.input_shape[0] is None
    for batch_size in (1, 7, 64):
        np.testing.assert_allclose(ours.predict(cifar_images[:70], batch_size=batch_size), probs[:70], atol=1e-6)


@pytest.fixture(scope="module")
def rnn_vectorizer_layer(peer_dir):
    holder = keras.saving.load_model(peer_dir / "rnn_bi24_spatialdropout_vectorizer.keras", compile=False)
    (layer,) = [l for l in holder.layers if isinstance(l, keras.layers.TextVectorization)]
    return layer


def test_peer_rnn_vectorizer_matches_keras(rnn_vectorizer_layer, nusax):
    texts = [*nusax.train.x, *nusax.valid.x, *nusax.test.x]
    ref = np.asarray(rnn_vectorizer_layer(texts))
    ours = TextVectorizer.from_keras(rnn_vectorizer_layer)
    assert ours.vocabulary == rnn_vectorizer_layer.get_vocabulary()
    got = ours.transform(texts)
    assert got.dtype == np.int32 and got.shape == ref.shape == (len(texts), 80)
    np.testing.assert_array_equal(got, ref)


def test_peer_rnn_bidirectional_simple_rnn(peer_dir, rnn_vectorizer_layer, nusax, report):
    name = "rnn_bi24_spatialdropout.keras"
    ours = scratch_models.load_keras(peer_dir / name)
    kmodel = keras.saving.load_model(peer_dir / name, compile=False)
    ids = np.asarray(rnn_vectorizer_layer(list(nusax.test.x)))
    assert ids.shape == (400, 80) and (ids == 0).any(), "expected padded NusaX test ids"
    check_peer(name, ours, kmodel, ids, report)


def test_peer_lstm_functional_not_equal_mask(peer_dir, nusax, report):
    name = "lstm_functional_masked.keras"
    ours = scratch_models.load_keras(peer_dir / name)
    kmodel = keras.saving.load_model(peer_dir / name, compile=False)
    assert any(node.layer and type(ours.layers[node.layer]).__name__ == "Op" for node in ours.nodes), \
        "expected the NotEqual op node of the README"
    vectorizer = keras.layers.TextVectorization(max_tokens=5000, output_sequence_length=100)
    vectorizer.adapt(list(nusax.train.x))
    ids = np.asarray(vectorizer(list(nusax.test.x)))
    assert ids.shape == (400, 100)
    np.testing.assert_array_equal(TextVectorizer.from_keras(vectorizer).transform(list(nusax.test.x)), ids)
    check_peer(name, ours, kmodel, ids, report)
