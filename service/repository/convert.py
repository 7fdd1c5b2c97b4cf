"""A person's bare Keras file -> our scratch artifact + a manifest, once (TensorFlow needed for this step only).

The Keras file is read with ``safe_mode=True`` by content; a TextVectorization layer inside it (or a fitted
one in a separate vectorizer file) becomes ``vectorizer.json``; the network is converted by the scratch
engine and checked against Keras on random inputs (a parity line, as frugally-deep stores a test case with
its model). If the engine refuses a layer or differs from Keras, the manifest records why and the model is
served by the keras backend only.

Everything is written into a staging folder beside ``out_dir`` and renamed into place: a reader sees the
complete conversion or none.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from scratch_models.io_utils import atomic_write_json, sha256_file

from ..backends.base import BackendLoadError, InputSpec

log = logging.getLogger("service.repository.convert")

FORMAT = "scratch-serve/converted/1"
PARITY_N = 64
PARITY_TOL = 1e-4
PARITY_SEED = 0
SAMPLE_TEXTS = ["Makanannya enak dan pelayanannya ramah sekali!", "Saya kecewa, pesanan datang terlambat.",
                "The quick brown fox; jumps over 13 lazy dogs?", "", "   ", "UPPER lower MiXeD ... ,,,"]


def random_inputs(spec: InputSpec, n: int = PARITY_N, seed: int = PARITY_SEED) -> np.ndarray:
    """A reproducible batch the network can take: pixels uniform in the value range, token ids in
    [1, vocabulary) with random lengths and zero padding (to exercise masking), or standard normals."""
    rng = np.random.default_rng(seed)
    if spec.kind == "image":
        lo, hi = spec.value_range or (0.0, 1.0)
        return rng.uniform(lo, hi, size=(n, *spec.shape)).astype(spec.numpy_dtype)
    if spec.kind == "text":
        vocab = spec.vocabulary_size or 2
        ids = rng.integers(1, max(vocab, 2), size=(n, spec.sequence_length)).astype(np.int32)
        lengths = rng.integers(1, spec.sequence_length + 1, size=n)
        ids[np.arange(spec.sequence_length)[None, :] >= lengths[:, None]] = 0
        return ids
    if spec.is_integer:
        return rng.integers(0, 10, size=(n, *spec.shape)).astype(spec.numpy_dtype)
    return rng.standard_normal((n, *spec.shape)).astype(spec.numpy_dtype)


def compare_probs(reference: np.ndarray, other: np.ndarray) -> dict:
    return {"n": int(len(reference)), "agreement": float(np.mean(reference.argmax(1) == other.argmax(1))),
            "max_abs_prob_diff": float(np.max(np.abs(reference.astype(np.float64) - other)))}


def read_labels(path: Path | None, n_classes: int) -> tuple[list[str], str]:
    """Class names from ``labels.txt`` (one per line), else ``class_0..``; raises on a count mismatch."""
    if path is None or not path.is_file():
        return [f"class_{i}" for i in range(n_classes)], "default (class_<i>)"
    try:
        names = [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendLoadError(f"{path.name} cannot be read as UTF-8 text ({exc})") from None
    if len(names) != n_classes:
        raise BackendLoadError(f"{path.name} names {len(names)} classes, the model outputs {n_classes}")
    if len(set(names)) != len(names):
        raise BackendLoadError(f"{path.name} repeats a class name")
    return names, path.name


def _versions() -> dict:
    import keras
    import tensorflow as tf

    import scratch_models
    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "scratch_models": scratch_models.__version__}


def convert(model_file: Path, out_dir: Path, *, name: str, vectorizer_file: Path | None = None,
            labels_file: Path | None = None, parity_n: int = PARITY_N) -> dict:
    """Convert ``model_file`` into ``out_dir`` (which must not exist yet; created atomically). Returns the
    manifest. Raises :class:`BackendLoadError` when the file is not a model both backends could ever serve
    (Keras cannot read it, a Lambda layer, no fixed input shape, outputs that are not probabilities)."""
    from .keras_files import (describe_input, keras_input_dtype, load_keras_model, sniff_format, split_network,
                              vectorizer_from_holder)

    import scratch_models

    model_file, out_dir = Path(model_file), Path(out_dir)
    fmt = sniff_format(model_file)
    kmodel = load_keras_model(model_file)
    network, inner_vectorizer = split_network(kmodel)
    spec = describe_input(network)
    x = random_inputs(spec, parity_n)
    reference = np.asarray(network(x.astype(keras_input_dtype(network)), training=False))
    if reference.ndim != 2 or reference.shape[1] < 2:
        raise BackendLoadError(f"the model outputs shape {reference.shape[1:]}; a classifier of at least two "
                               "classes (N, C) is needed")
    sums = reference.sum(axis=1)
    if (reference < -1e-6).any() or not np.allclose(sums, 1.0, atol=1e-3):
        raise BackendLoadError(f"the outputs are not probabilities (rows of a random batch sum to "
                               f"{sums.min():.3g}..{sums.max():.3g}); end the model with a softmax")
    classes, classes_from = read_labels(labels_file, reference.shape[1])

    vec_layer, vec_source = inner_vectorizer, "inside the model" if inner_vectorizer is not None else None
    if vec_layer is None and vectorizer_file is not None:
        vec_layer, vec_source = vectorizer_from_holder(vectorizer_file), vectorizer_file.name
    vectorizer = None
    if vec_layer is not None:
        if spec.kind != "text":
            raise BackendLoadError(f"a text vectorizer ({vec_source}) for a model whose input is {spec.kind}")
        try:
            vectorizer = scratch_models.TextVectorizer.from_keras(vec_layer)
        except (ValueError, TypeError) as exc:
            raise BackendLoadError(f"the TextVectorization layer ({vec_source}) is not supported: {exc}") from None
        if vectorizer.output_sequence_length != spec.sequence_length:
            raise BackendLoadError(f"the vectorizer ({vec_source}) pads to {vectorizer.output_sequence_length} "
                                   f"tokens, the network takes {spec.sequence_length}")
        keras_ids = np.asarray(vec_layer(SAMPLE_TEXTS))
        if not np.array_equal(vectorizer.transform(SAMPLE_TEXTS), keras_ids):
            raise BackendLoadError(f"the vectorizer ({vec_source}) does not reproduce Keras' token ids")

    scratch_status, scratch_reason, parity, smodel = "ok", None, None, None
    try:
        smodel = scratch_models.from_keras(network)
        got = np.asarray(smodel.predict(x))
        parity = {"inputs": f"random ({spec.kind}), seed {PARITY_SEED}", **compare_probs(reference, got)}
        if got.shape != reference.shape or parity["agreement"] < 1.0 or parity["max_abs_prob_diff"] > PARITY_TOL:
            scratch_status = "differs"
            scratch_reason = (f"the scratch engine differs from Keras on {parity['n']} random inputs "
                              f"(agreement {parity['agreement']:.2%}, max |dp| {parity['max_abs_prob_diff']:.3g} "
                              f"> {PARITY_TOL}); served by keras only")
    except Exception as exc:  # UnsupportedLayerError or anything else the engine refuses
        scratch_status = "unsupported"
        scratch_reason = f"the scratch engine cannot run this model ({type(exc).__name__}: {exc}); served by keras only"

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-"))
    try:
        files = {}
        if scratch_status == "ok":
            smodel.vectorizer = vectorizer
            scratch_models.save(smodel, staging)
        elif vectorizer is not None:
            (staging / "vectorizer.json").write_text(json.dumps(vectorizer.get_config(), ensure_ascii=False), "utf-8")
        for path in sorted(staging.iterdir()):
            files[path.name] = sha256_file(path)
        source_sha = sha256_file(model_file)
        files[model_file.name] = source_sha
        manifest = {
            "format": FORMAT, "name": name, "classes": classes, "classes_from": classes_from,
            "input": spec.to_manifest(), "params": int(network.count_params()),
            "source": {"file": model_file.name, "sha256": source_sha, "format": fmt,
                       "bytes": model_file.stat().st_size},
            "vectorizer": vec_source and {"from": vec_source,
                                          "sha256": sha256_file(vectorizer_file) if vec_source == getattr(vectorizer_file, "name", None) else None},
            "scratch": {"status": scratch_status, "reason": scratch_reason}, "parity": parity,
            "files": files, "versions": _versions(),
            "converted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(staging / "manifest.json", manifest)
        os.chmod(staging, 0o755)
        os.rename(staging, out_dir)   # atomic: the whole conversion appears at once
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("converted", extra={"fields": {"model": name, "source": model_file.name, "out": str(out_dir),
                                            "scratch": scratch_status, "parity": parity}})
    return manifest
