"""Our own saved format: ``architecture.json`` (graph, layer configs, checksums) + ``weights.npz``
(+ ``vectorizer.json`` for text models). Loading needs NumPy only and verifies every checksum.

Files are written to a temporary folder beside the target and moved into place, so a reader sees
the old artifact or the new one, never a mixture.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import IntegrityError
from .io_utils import atomic_write_bytes, sha256_file
from .model import Model
from .text import TextVectorizer

FORMAT = "scratch_models/1"
ARCHITECTURE, WEIGHTS, VECTORIZER = "architecture.json", "weights.npz", "vectorizer.json"


def save(model: Model, directory: str | os.PathLike) -> Path:
    """Write the artifact files into ``directory`` (created if needed; other files there are kept)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".save-"))
    try:
        arrays = {f"{i:03d}": w for i, w in enumerate(model.get_weights())}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (staging / WEIGHTS).write_bytes(buf.getvalue())
        spec = {"format": FORMAT, "model": model.to_json(),
                "weights": {"file": WEIGHTS, "sha256": sha256_file(staging / WEIGHTS),
                            "count": len(arrays), "shapes": [list(a.shape) for a in arrays.values()]},
                "vectorizer": None}
        if model.vectorizer is not None:
            (staging / VECTORIZER).write_text(json.dumps(model.vectorizer.get_config(), ensure_ascii=False), "utf-8")
            spec["vectorizer"] = {"file": VECTORIZER, "sha256": sha256_file(staging / VECTORIZER)}
        (staging / ARCHITECTURE).write_text(json.dumps(spec, indent=1), "utf-8")
        # The JSON goes last: it names the checksums of files already in place.
        for name in (WEIGHTS, VECTORIZER, ARCHITECTURE):
            if (staging / name).exists():
                os.replace(staging / name, directory / name)
        if model.vectorizer is None and (directory / VECTORIZER).exists():
            (directory / VECTORIZER).unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _verified(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"Missing artifact file {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(f"{path}: sha256 {actual} does not match {expected} recorded in {ARCHITECTURE}; "
                             "the file was modified or corrupted")
    return path


def load(directory: str | os.PathLike) -> Model:
    """Load an artifact written by :func:`save`, refusing any file whose checksum does not match."""
    directory = Path(directory)
    arch_path = directory / ARCHITECTURE
    if not arch_path.is_file():
        raise FileNotFoundError(f"No {ARCHITECTURE} in {directory}: not a scratch_models artifact")
    try:
        spec = json.loads(arch_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{arch_path} is not valid JSON: {exc}") from exc
    if spec.get("format") != FORMAT:
        raise ValueError(f"{arch_path}: expected format {FORMAT!r}, received {spec.get('format')!r}")
    weights_path = _verified(directory / spec["weights"]["file"], spec["weights"]["sha256"])
    model = Model.from_json(spec["model"])
    with np.load(weights_path, allow_pickle=False) as z:
        weights = [z[f"{i:03d}"] for i in range(spec["weights"]["count"])]
    model.set_weights(weights)
    if spec.get("vectorizer"):
        vec_path = _verified(directory / spec["vectorizer"]["file"], spec["vectorizer"]["sha256"])
        model.vectorizer = TextVectorizer(**json.loads(vec_path.read_text("utf-8")))
    return model


__all__ = ["save", "load", "atomic_write_bytes"]
