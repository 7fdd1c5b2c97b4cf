"""The two data sets of the product: CIFAR-10 and NusaX-Sentiment (Indonesian).

Where the data comes from, in order:
  1. ``data_dir`` (or the ``DATA_DIR`` environment variable): ``cifar10/{train,test}/<class>/*.jpg|png``
     (an image folder) or ``cifar-10-batches-py/`` (the original pickles), and
     ``nusax-sentiment/indonesian/{train,valid,test}.csv``;
  2. no ``DATA_DIR``: the canonical public sources a user would download -- Keras'
     ``cifar10.load_data()`` and the NusaX CSVs from the IndoNLP repository;
  3. neither: :class:`DataNotFoundError` naming every path tried and how to provide the data.

Decoded arrays are cached (``.npz`` under ``$CACHE_DIR`` or ``~/.cache/scratch_models``) so that
repeated runs start in a second. NumPy only at import time; Pillow and Keras are imported lazily.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
NUSAX_CLASSES = ("negative", "neutral", "positive")
NUSAX_URL = ("https://raw.githubusercontent.com/IndoNLP/nusax/main/"
             "datasets/sentiment/indonesian/{split}.csv")
CIFAR_VALIDATION_SIZE = 10_000
DEFAULT_SPLIT_SEED = 1234


class DataNotFoundError(FileNotFoundError):
    """The data set is neither in ``DATA_DIR`` nor reachable at its public source."""


@dataclass(frozen=True)
class Split:
    """One split of a data set: ``x`` (N, ...) and integer labels ``y`` (N,)."""
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    valid: Split
    test: Split
    source: str


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    value = data_dir if data_dir is not None else os.environ.get("DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    path = Path(os.environ.get("CACHE_DIR", Path.home() / ".cache" / "scratch_models"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --------------------------------------------------------------------------- CIFAR-10
def _read_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """``root/<class>/*`` -> uint8 (N, 32, 32, 3), int64 labels in CIFAR-10's class order."""
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        folder = root / name
        if not folder.is_dir():
            raise DataNotFoundError(f"CIFAR-10 image folder {root} has no class folder {name!r}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for path in files:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
            if arr.shape != (32, 32, 3):
                raise ValueError(f"{path}: expected a 32x32 RGB image, received shape {arr.shape}")
            images.append(arr)
        labels.extend([label] * len(files))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _read_cifar_batches(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The original ``cifar-10-batches-py`` pickles -> (train, test) as uint8 NHWC + labels."""
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(root / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return data, np.asarray(batch[b"labels"], dtype=np.int64)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, read("test_batch")


def _cifar_raw(data_dir: Path | None) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    tried = []
    if data_dir is not None:
        folder = data_dir / "cifar10"
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return _read_image_folder(folder / "train"), _read_image_folder(folder / "test"), str(folder)
        tried.append(str(folder / "{train,test}/<class>/*.jpg"))
        for pickles in (data_dir / "cifar-10-batches-py", folder / "cifar-10-batches-py"):
            if (pickles / "data_batch_1").is_file():
                train, test = _read_cifar_batches(pickles)
                return train, test, str(pickles)
            tried.append(str(pickles))
        raise DataNotFoundError(_missing_message("CIFAR-10", tried))
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "cifar-10-batches-py"
    if (keras_home / "data_batch_1").is_file():
        train, test = _read_cifar_batches(keras_home)
        return train, test, str(keras_home)
    tried.append(str(keras_home))
    try:  # the canonical download a real user gets
        from keras.datasets import cifar10
        (xtr, ytr), (xte, yte) = cifar10.load_data()
        return (xtr, ytr.reshape(-1).astype(np.int64)), (xte, yte.reshape(-1).astype(np.int64)), "keras.datasets.cifar10"
    except Exception as exc:  # no network, no keras
        tried.append(f"keras.datasets.cifar10.load_data() ({type(exc).__name__}: {exc})")
    raise DataNotFoundError(_missing_message("CIFAR-10", tried))


def _missing_message(name: str, tried: list[str]) -> str:
    return (f"{name} data not found. Tried: " + "; ".join(tried) + ". Provide it by setting DATA_DIR to a "
            "folder holding cifar10/{train,test}/<class>/*.jpg (or cifar-10-batches-py/) and "
            "nusax-sentiment/indonesian/{train,valid,test}.csv -- e.g. DATA_DIR=../shared/data -- or "
            "let the loader download the public copy (needs network access).")


def stratified_split(labels: np.ndarray, n_valid: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, valid): ``n_valid`` items drawn per class in proportion, shuffled with ``seed``."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = np.floor(counts / counts.sum() * n_valid).astype(int)
    per_class[: n_valid - per_class.sum()] += 1  # distribute the remainder
    valid = []
    for cls, k in zip(classes, per_class):
        idx = np.flatnonzero(labels == cls)
        valid.append(rng.choice(idx, size=k, replace=False))
    valid_idx = np.sort(np.concatenate(valid))
    train_idx = np.setdiff1d(np.arange(len(labels)), valid_idx)
    return rng.permutation(train_idx), rng.permutation(valid_idx)


def load_cifar10(data_dir: str | os.PathLike | None = None, seed: int = DEFAULT_SPLIT_SEED,
                 splits: tuple[str, ...] = ("train", "valid", "test")) -> Dataset:
    """CIFAR-10 as float32 NHWC in [0, 1]; train 40,000 / valid 10,000 (stratified, ``seed``) / test 10,000."""
    root = resolve_data_dir(data_dir)
    key = hashlib.sha256(f"cifar10|{root}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"cifar10-{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            xtr, ytr, xte, yte, source = z["xtr"], z["ytr"], z["xte"], z["yte"], str(z["source"])
    else:
        (xtr, ytr), (xte, yte), source = _cifar_raw(root)
        _atomic_savez(cached, xtr=xtr, ytr=ytr, xte=xte, yte=yte, source=np.asarray(source))
    train_idx, valid_idx = stratified_split(ytr, CIFAR_VALIDATION_SIZE, seed)
    empty = Split(np.zeros((0, 32, 32, 3), np.float32), np.zeros((0,), np.int64))

    def scaled(x: np.ndarray, y: np.ndarray, name: str) -> Split:
        return Split(x.astype(np.float32) / 255.0, y) if name in splits else empty

    return Dataset("cifar10", CIFAR10_CLASSES,
                   scaled(xtr[train_idx], ytr[train_idx], "train"),
                   scaled(xtr[valid_idx], ytr[valid_idx], "valid"),
                   scaled(xte, yte, "test"), source)


# --------------------------------------------------------------------------- NusaX
def parse_nusax_csv(text: str, origin: str = "<csv>") -> tuple[list[str], np.ndarray]:
    """CSV with columns ``id,text,label`` -> (texts, int64 labels with negative=0, neutral=1, positive=2)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"text", "label"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{origin}: expected columns id,text,label, missing {sorted(missing)}")
    texts, labels = [], []
    for row_no, row in enumerate(reader, start=2):
        label = (row["label"] or "").strip()
        if label not in NUSAX_CLASSES:
            raise ValueError(f"{origin} line {row_no}: label {label!r} is not one of {NUSAX_CLASSES}")
        texts.append(row["text"])
        labels.append(NUSAX_CLASSES.index(label))
    return texts, np.asarray(labels, dtype=np.int64)


def _nusax_split_text(root: Path | None, split: str, tried: list[str]) -> str | None:
    if root is not None:
        path = root / "nusax-sentiment" / "indonesian" / f"{split}.csv"
        if path.is_file():
            return path.read_text(encoding="utf-8")
        tried.append(str(path))
        return None
    cached = cache_dir() / f"nusax-indonesian-{split}.csv"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    url = NUSAX_URL.format(split=split)
    try:
        import urllib.request
        with urllib.request.urlopen(url, timeout=20) as resp:
            text = resp.read().decode("utf-8")
    except Exception as exc:
        tried.append(f"{url} ({type(exc).__name__}: {exc})")
        return None
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, cached)
    return text


def load_nusax(data_dir: str | os.PathLike | None = None) -> Dataset:
    """NusaX-Sentiment (Indonesian): texts as a NumPy array of str; train 500 / valid 100 / test 400."""
    root = resolve_data_dir(data_dir)
    tried: list[str] = []
    parts = {}
    for split in ("train", "valid", "test"):
        text = _nusax_split_text(root, split, tried)
        if text is None:
            raise DataNotFoundError(_missing_message("NusaX-Sentiment", tried))
        texts, labels = parse_nusax_csv(text, origin=f"{split}.csv")
        parts[split] = Split(np.asarray(texts, dtype=object), labels)
    source = str(root / "nusax-sentiment" / "indonesian") if root else NUSAX_URL.format(split="*")
    return Dataset("nusax-sentiment-indonesian", NUSAX_CLASSES, parts["train"], parts["valid"], parts["test"], source)


def load_dataset_for(arch: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The data set an architecture is trained on: ``cnn`` -> CIFAR-10, ``rnn``/``lstm`` -> NusaX."""
    if arch == "cnn":
        return load_cifar10(data_dir)
    if arch in ("rnn", "lstm"):
        return load_nusax(data_dir)
    raise ValueError(f"Expected arch in ('cnn', 'rnn', 'lstm'), received {arch!r}")
