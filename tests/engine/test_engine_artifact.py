"""save/load: a bit-identical round trip, tampered files refused, and no TensorFlow/Keras on load."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from engine_helpers import REPO, TEXT_T, TEXT_VOCAB, padded_ids

import scratch_models
from scratch_models import IntegrityError, TextVectorizer


@pytest.fixture
def cnn_artifact(keras_cnn, tmp_path):
    model = scratch_models.from_keras(keras_cnn)
    scratch_models.save(model, tmp_path / "cnn")
    return model, tmp_path / "cnn"


@pytest.fixture
def text_artifact(keras_bitext, tmp_path):
    model = scratch_models.from_keras(keras_bitext)
    model.vectorizer = TextVectorizer(["", "[UNK]", "saya", "suka", "über", "😀"], output_sequence_length=TEXT_T)
    scratch_models.save(model, tmp_path / "text")
    return model, tmp_path / "text"


def _assert_identical(a, b, x):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes()
    assert a.predict(x).tobytes() == b.predict(x).tobytes()


def test_round_trip_cnn_is_bit_identical(cnn_artifact):
    model, path = cnn_artifact
    loaded = scratch_models.load(path)
    assert loaded.vectorizer is None
    _assert_identical(model, loaded, np.random.default_rng(0).random((33, 16, 16, 3), dtype=np.float32))


def test_round_trip_text_is_bit_identical_with_vectorizer(text_artifact):
    model, path = text_artifact
    loaded = scratch_models.load(path)
    ids = padded_ids(np.random.default_rng(1), 17, TEXT_T, TEXT_VOCAB, "middle")
    _assert_identical(model, loaded, ids)
    assert loaded.vectorizer.get_config() == model.vectorizer.get_config()
    texts = ["Saya SUKA über 😀 apa", ""]
    np.testing.assert_array_equal(loaded.vectorizer.transform(texts), model.vectorizer.transform(texts))


def test_save_overwrites_and_round_trips_again(cnn_artifact, keras_text):
    _, path = cnn_artifact
    other = scratch_models.from_keras(keras_text)
    scratch_models.save(other, path)  # same folder, different model
    ids = padded_ids(np.random.default_rng(2), 5, TEXT_T, TEXT_VOCAB, "right")
    _assert_identical(other, scratch_models.load(path), ids)


def _flip_one_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_weights_are_refused(cnn_artifact):
    _, path = cnn_artifact
    _flip_one_byte(path / "weights.npz")
    with pytest.raises(IntegrityError, match="weights.npz"):
        scratch_models.load(path)


def test_tampered_vectorizer_is_refused(text_artifact):
    _, path = text_artifact
    vec = path / "vectorizer.json"
    text = vec.read_text("utf-8")
    assert '"saya"' in text
    vec.write_text(text.replace('"saya"', '"saja"'), "utf-8")  # one byte changed, still valid JSON
    with pytest.raises(IntegrityError, match="vectorizer.json"):
        scratch_models.load(path)


def test_tampered_checksum_in_architecture_is_refused(cnn_artifact):
    _, path = cnn_artifact
    arch = path / "architecture.json"
    spec = json.loads(arch.read_text())
    digest = spec["weights"]["sha256"]
    spec["weights"]["sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    arch.write_text(json.dumps(spec))
    with pytest.raises(IntegrityError):
        scratch_models.load(path)


def test_load_does_not_import_tensorflow_or_keras(text_artifact, cnn_artifact):
    """In a fresh interpreter: import scratch_models, load both artifacts, predict; no TF/Keras module."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import scratch_models
        cnn = scratch_models.load({str(cnn_artifact[1])!r})
        text = scratch_models.load({str(text_artifact[1])!r})
        cnn.predict(np.zeros((2, 16, 16, 3), np.float32))
        text.predict(text.vectorizer.transform(["saya suka"]))
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax", "torch"))
        print("LOADED:", bad)
        sys.exit(1 if bad else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LOADED: []" in proc.stdout


def _zoo():
    """Every layer class the loader knows that the CNN/text fixtures lack, plus a functional op node."""
    import keras
    from engine_helpers import randomize_weights
    from test_engine_weights import MODELS
    L = keras.layers
    acts = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(4, 2, padding="same"), L.ReLU(),
                             L.LeakyReLU(negative_slope=0.1), L.GaussianNoise(0.1), L.GaussianDropout(0.1),
                             L.AlphaDropout(0.1), L.SpatialDropout2D(0.1), L.GlobalMaxPooling2D(),
                             L.Dense(3), L.Softmax()])
    randomize_weights(acts, 8)
    return {"activation-classes": (acts, np.random.default_rng(8).random((3, 6, 6, 2), dtype=np.float32)),
            "functional-not-equal": (MODELS["functional-not-equal"](),
                                     padded_ids(np.random.default_rng(9), 4, 9, 30, "left")),
            "explicit-backward": (MODELS["explicit-backward"](), padded_ids(np.random.default_rng(10), 4, 7, 20, "middle")),
            "bn-variants": (MODELS["bn-variants"](), np.random.default_rng(11).random((3, 6, 6, 2), dtype=np.float32))}


@pytest.mark.parametrize("name", ["activation-classes", "functional-not-equal", "explicit-backward", "bn-variants"])
def test_round_trip_every_layer_class(name, tmp_path):
    kmodel, x = _zoo()[name]
    model = scratch_models.from_keras(kmodel)
    scratch_models.save(model, tmp_path)
    _assert_identical(model, scratch_models.load(tmp_path), x)
