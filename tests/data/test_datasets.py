"""Data loaders on small fixtures the tests make, and the real splits when DATA_DIR is set."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from scratch_models import datasets
from scratch_models.datasets import (CIFAR10_CLASSES, DataNotFoundError, load_cifar10, load_nusax,
                                     parse_nusax_csv, stratified_split)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Fixture data must not land in (or be read from) the shared decode cache."""
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))


def make_image_folder(root, per_class_train=6, per_class_test=2, fmt="png"):
    rng = np.random.default_rng(0)
    pixels = {}
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i:04d}.{fmt}")
                pixels[(split, label, i)] = img
    return pixels


def test_image_folder_pixels_labels_and_class_order(tmp_path):
    pixels = make_image_folder(tmp_path)
    # 60 training images: the 10,000-image validation split cannot be drawn, so use the raw reader.
    (x, y), (xt, yt), source = datasets._cifar_raw(tmp_path)
    assert x.shape == (60, 32, 32, 3) and xt.shape == (20, 32, 32, 3)
    assert list(np.bincount(y)) == [6] * 10 and list(np.bincount(yt)) == [2] * 10
    # Lossless PNG: exact pixels, label = position in CIFAR-10's class list, files in name order.
    np.testing.assert_array_equal(x[6 * 3 + 4], pixels[("train", 3, 4)])
    np.testing.assert_array_equal(xt[2 * 9 + 1], pixels[("test", 9, 1)])


def test_fake_cifar_batches_are_read_as_nhwc(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    originals = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, 4))
        originals[name] = (data, labels)
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    (x, y), (xt, yt), _ = datasets._cifar_raw(tmp_path)
    assert x.shape == (20, 32, 32, 3) and xt.shape == (4, 32, 32, 3)
    data, labels = originals["data_batch_2"]
    # Row layout of the pickles: 1024 red, 1024 green, 1024 blue values, each row-major.
    np.testing.assert_array_equal(x[4, 0, 1], [data[0, 1], data[0, 1024 + 1], data[0, 2048 + 1]])
    assert list(y[4:8]) == labels
    np.testing.assert_array_equal(xt[3, 31, 31], originals["test_batch"][0][3, [1023, 2047, 3071]])


def test_csv_with_quoted_commas_and_quotes():
    text = ('id,text,label\n1,"Enak, murah, dan ""mantap""!",positive\n'
            '2,biasa saja,neutral\n3,"Buruk sekali,\ntidak lagi",negative\n')
    texts, labels = parse_nusax_csv(text)
    assert texts == ['Enak, murah, dan "mantap"!', "biasa saja", "Buruk sekali,\ntidak lagi"]
    assert list(labels) == [2, 1, 0]


def test_csv_unknown_label_names_the_line():
    with pytest.raises(ValueError, match=r"line 3: label 'bad'"):
        parse_nusax_csv("id,text,label\n1,a,positive\n2,b,bad\n", origin="x.csv")


def test_missing_data_names_paths_and_how_to_fix(tmp_path, private_cache):
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(tmp_path)
    assert str(tmp_path / "cifar10") in str(err.value) and "DATA_DIR" in str(err.value)
    with pytest.raises(DataNotFoundError) as err:
        load_nusax(tmp_path)
    assert "train.csv" in str(err.value) and "DATA_DIR" in str(err.value)


def test_stratified_split_sizes_balance_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), 500)
    tr, va = stratified_split(labels, 1000, seed=7)
    assert len(tr) == 4000 and len(va) == 1000
    assert not set(tr) & set(va) and len(set(tr) | set(va)) == 5000
    assert list(np.bincount(labels[va])) == [100] * 10
    tr2, va2 = stratified_split(labels, 1000, seed=7)
    np.testing.assert_array_equal(va, va2)
    _, va3 = stratified_split(labels, 1000, seed=8)
    assert set(va) != set(va3)


def test_real_cifar10_split(data_dir):
    d = load_cifar10(data_dir)
    assert (len(d.train), len(d.valid), len(d.test)) == (40_000, 10_000, 10_000)
    assert list(np.bincount(d.valid.y)) == [1000] * 10 and list(np.bincount(d.test.y)) == [1000] * 10
    assert d.train.x.dtype == np.float32 and 0.0 <= d.train.x.min() and d.train.x.max() <= 1.0
    # No image of the validation split is in the training split (whole images, exact bytes);
    # CIFAR-10 itself holds a few exact duplicates, so allow that handful and no more.
    train_hashes = {hash(img.tobytes()) for img in d.train.x}
    overlap = sum(hash(img.tobytes()) in train_hashes for img in d.valid.x)
    assert overlap <= 10
    again = load_cifar10(data_dir)
    np.testing.assert_array_equal(again.valid.y, d.valid.y)


def test_real_nusax_sizes_and_labels(data_dir):
    d = load_nusax(data_dir)
    assert (len(d.train), len(d.valid), len(d.test)) == (500, 100, 400)
    assert list(np.bincount(d.test.y)) == [153, 96, 151]
    assert all(isinstance(t, str) and t for t in d.test.x)
