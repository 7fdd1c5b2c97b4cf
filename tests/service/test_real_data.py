"""The committed weights on real inputs: the two backends give the same answers for real CIFAR-10 test
images and NusaX test texts, and /parity reports it. Skips (with the reason) without weights/ or DATA_DIR."""
from __future__ import annotations

import base64
import csv

import numpy as np
import pytest

from service_helpers import app_client, make_settings
from scratch_models.datasets import CIFAR10_CLASSES
from service.app import create_app
from service.registry import ModelRegistry

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def real_registry(real_weights):
    registry = ModelRegistry(real_weights).load_all()
    assert registry.ready, registry.status()
    return registry


@pytest.fixture
async def real_client(real_weights, real_registry, data_dir):
    async with app_client(create_app(make_settings(real_weights, data_dir=data_dir), registry=real_registry)) as c:
        yield c


def real_images(data_dir, per_class: int = 2) -> tuple[list[str], list[int]]:
    """Base64 of the JPEG files themselves, ``per_class`` per class, and their labels."""
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for path in sorted((data_dir / "cifar10" / "test" / name).iterdir())[:per_class]:
            images.append(base64.b64encode(path.read_bytes()).decode())
            labels.append(label)
    return images, labels


def real_texts(data_dir, n: int = 24) -> list[str]:
    with open(data_dir / "nusax-sentiment" / "indonesian" / "test.csv", encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)][:n]


async def predict_both(client, arch: str, body: dict) -> dict[str, np.ndarray]:
    out = {}
    for backend in ("scratch", "keras"):
        r = await client.post(f"/predict/{arch}?backend={backend}", json=body)
        assert r.status_code == 200, r.text
        out[backend] = np.array([p["probabilities"] for p in r.json()["predictions"]])
    return out


async def test_backends_agree_on_real_images(real_client, data_dir):
    images, labels = real_images(data_dir)
    probs = await predict_both(real_client, "cnn", {"images": images})
    assert np.abs(probs["scratch"] - probs["keras"]).max() < 1e-4
    assert (probs["scratch"].argmax(1) == probs["keras"].argmax(1)).all()
    assert len(labels) == len(probs["keras"]) == 20


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
async def test_backends_agree_on_real_texts(real_client, data_dir, arch):
    probs = await predict_both(real_client, arch, {"texts": real_texts(data_dir)})
    assert np.abs(probs["scratch"] - probs["keras"]).max() < 1e-4
    assert (probs["scratch"].argmax(1) == probs["keras"].argmax(1)).all()


@pytest.mark.parametrize("arch", ["cnn", "rnn", "lstm"])
async def test_parity_on_the_real_test_split(real_client, arch):
    r = await real_client.get(f"/parity?arch={arch}&limit=200")
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["n"] == 200 and first["agreement"] >= 0.995 and first["max_abs_prob_diff"] < 1e-4
    assert 0 <= first["keras"]["macro_f1"] <= 1 and first["scratch"]["accuracy"] == pytest.approx(
        first["keras"]["accuracy"], abs=0.01)
    again = (await real_client.get(f"/parity?arch={arch}&limit=200")).json()
    assert again["cached"] is True and again["elapsed_s"] < 0.05
