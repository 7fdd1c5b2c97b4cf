"""One version folder -> its :class:`ModelFiles`, :class:`InputSpec` and vectorizer file: our export
(``manifest.json`` + ``model.keras`` + ``architecture.json`` + ``weights.npz``) or a person's bare Keras file.

A bare Keras file is converted once (:mod:`.convert`) into ``<version folder>/.scratch-serve/<key>/``, or,
when that folder is read-only (a container's read-only mount), into ``CONVERT_CACHE/<key>/``; ``<key>`` is
the sha256 of the Keras file (and of its vectorizer file), so a changed file is converted again and an
unchanged one never is: later starts need no TensorFlow for the scratch backend. When neither place is
writable the conversion is kept in memory for this process only (and /models says so).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scratch_models.io_utils import sha256_file

from ..backends.base import BackendLoadError, InputSpec, ModelFiles
from . import convert as conversion
from .keras_files import KERAS_SUFFIXES
from .names import inside

log = logging.getLogger("service.repository")

MANIFEST = "manifest.json"
LABELS = "labels.txt"
CONVERTED_DIR = ".scratch-serve"


@dataclass(frozen=True)
class Resolved:
    files: ModelFiles
    input_spec: InputSpec
    vectorizer_file: Path | None     # vectorizer.json both backends use (None: ids only)
    source: str                      # "export" | "converted" | "converted (cache)" | "converted (memory)"
    note: str | None = None


def _checked(path: Path, root: Path, max_bytes: int) -> Path:
    """``path`` if it stays inside the repository and is at most ``max_bytes``; else a reason."""
    if not inside(root, path):
        raise BackendLoadError(f"{path.name} is a symlink leading outside the model repository; refused")
    size = path.stat().st_size
    if size > max_bytes:
        raise BackendLoadError(f"{path.name} is {size} bytes; the limit is MAX_MODEL_FILE_BYTES={max_bytes}")
    return path


def keras_files(folder: Path) -> tuple[Path | None, Path | None]:
    """(the model's Keras file, a separate vectorizer file) among the folder's visible files."""
    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in KERAS_SUFFIXES]
    vectorizers = [p for p in candidates if "vectorizer" in p.stem.lower()]
    models = [p for p in candidates if p not in vectorizers]
    if len(models) > 1:
        raise BackendLoadError(f"several Keras files ({', '.join(p.name for p in models)}); keep one model per "
                               "folder, or put each version in a numbered sub-folder")
    if len(vectorizers) > 1:
        raise BackendLoadError(f"several vectorizer files ({', '.join(p.name for p in vectorizers)})")
    return (models[0] if models else None), (vectorizers[0] if vectorizers else None)


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendLoadError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BackendLoadError(f"{path.name} must hold a JSON object")
    return value


def check_classes(manifest: dict, where: str) -> None:
    classes = manifest.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise BackendLoadError(f"{where}: 'classes' must be a list of at least two names")


def resolve(name: str, version: int, folder: Path, root: Path, *, cache_dir: Path | None,
            max_bytes: int) -> Resolved:
    """Raises :class:`BackendLoadError` with the reason when the folder holds no servable model."""
    if not inside(root, folder):
        raise BackendLoadError(f"{folder.name} leads outside the model repository; refused")
    for path in folder.iterdir():
        if path.is_symlink() or path.is_file():
            _checked(path, root, max_bytes)
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        return _export(name, version, folder, read_json(manifest_path))
    model_file, vectorizer_file = keras_files(folder)
    if model_file is None:
        raise BackendLoadError(f"{MANIFEST} not found and no Keras file (.keras, .h5) in {folder.name}/")
    return _bare(name, version, folder, model_file, vectorizer_file, cache_dir)


def _export(name: str, version: int, folder: Path, manifest: dict) -> Resolved:
    check_classes(manifest, MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BackendLoadError(f"{MANIFEST} lists no files with their sha256")
    spec = InputSpec.from_manifest(manifest.get("input") or {})
    vectorizer = folder / "vectorizer.json" if spec.kind == "text" else None
    if vectorizer is not None and not files.get("vectorizer.json"):
        try:  # a manifest older than the file list entry: the checksum the scratch artifact records
            recorded = read_json(folder / "architecture.json")["vectorizer"]["sha256"]
            files = {**files, "vectorizer.json": recorded}
        except (BackendLoadError, KeyError, TypeError) as exc:
            raise BackendLoadError(f"no checksum for vectorizer.json in {MANIFEST} or architecture.json ({exc})") from None
    if manifest.get("format") == conversion.FORMAT:  # written by `scratch-serve convert`: the source file beside it
        scratch = manifest.get("scratch") or {}
        source = folder / str((manifest.get("source") or {}).get("file", "model.keras"))
        vectorizer = folder / "vectorizer.json" if "vectorizer.json" in files else None
        return Resolved(ModelFiles(name, version, manifest, source if source.exists() else None,
                                   folder if scratch.get("status") == "ok" else None, files,
                                   scratch_reason=scratch.get("reason")), spec, vectorizer, "converted")
    keras_file = folder / "model.keras"
    return Resolved(ModelFiles(name, version, manifest, keras_file if keras_file.exists() else None, folder, files),
                    spec, vectorizer, "export")


def conversion_key(model_file: Path, vectorizer_file: Path | None) -> str:
    h = hashlib.sha256(sha256_file(model_file).encode())
    if vectorizer_file is not None:
        h.update(sha256_file(vectorizer_file).encode())
    return h.hexdigest()


def _usable(candidate: Path, model_file: Path) -> dict | None:
    """The manifest of a finished conversion of ``model_file`` at ``candidate``, or None."""
    path = candidate / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = read_json(path)
    except BackendLoadError:
        return None
    source = manifest.get("source") or {}
    if manifest.get("format") != conversion.FORMAT or source.get("file") != model_file.name:
        return None
    return manifest


def _writable_dir(parent: Path) -> Path | None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=parent, prefix=".probe-")
        probe.close()
        return parent
    except OSError:
        return None


def _bare(name: str, version: int, folder: Path, model_file: Path, vectorizer_file: Path | None,
          cache_dir: Path | None) -> Resolved:
    key = conversion_key(model_file, vectorizer_file)
    places = [(folder / CONVERTED_DIR / key, "converted")]
    if cache_dir is not None:
        places.append((Path(cache_dir) / key, "converted (cache)"))
    manifest, artifact_dir, source, note = None, None, None, None
    for candidate, label in places:
        manifest = _usable(candidate, model_file)
        if manifest is not None:
            artifact_dir, source = candidate, label
            break
    if manifest is None:
        target = None
        for candidate, label in places:
            if _writable_dir(candidate.parent) is not None:
                target, source = candidate, label
                break
        if target is None:
            target = Path(tempfile.mkdtemp(prefix="scratch-serve-convert-")) / key
            source, note = "converted (memory)", ("the model folder and CONVERT_CACHE are read-only: converted for "
                                                  "this process only; run `scratch-serve convert` to keep it")
        try:
            manifest = conversion.convert(model_file, target, name=name, vectorizer_file=vectorizer_file,
                                          labels_file=None)
        except BackendLoadError as exc:
            if str(exc).startswith("TensorFlow/Keras is not installed"):
                raise BackendLoadError(f"{model_file.name} is a bare Keras file, converted once with TensorFlow "
                                       f"(or run `scratch-serve convert` elsewhere): {exc}") from None
            raise
        except OSError:
            manifest = _usable(target, model_file)   # another process finished the same conversion first
            if manifest is None:
                raise
        artifact_dir = target
    manifest = dict(manifest)
    check_classes(manifest, f"{artifact_dir.name}/{MANIFEST}")
    labels = folder / LABELS
    if labels.is_file():
        manifest["classes"], manifest["classes_from"] = conversion.read_labels(labels, len(manifest["classes"]))
    spec = InputSpec.from_manifest(manifest.get("input") or {})
    checksums = dict(manifest.get("files") or {})
    scratch = manifest.get("scratch") or {}
    vectorizer = artifact_dir / "vectorizer.json" if "vectorizer.json" in checksums else None
    files = ModelFiles(name, version, manifest, model_file, artifact_dir if scratch.get("status") == "ok" else None,
                       checksums, scratch_reason=scratch.get("reason"))
    return Resolved(files, spec, vectorizer, source, note)
