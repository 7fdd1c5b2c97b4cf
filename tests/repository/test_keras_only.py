"""A Keras file the scratch engine refuses (a layer it does not implement) is served by the keras backend only,
and /models says why the scratch backend is not there; with the default backend unavailable, a request
without ``?backend=`` is told to name one (422), as the OpenAPI document (backend required) says."""
from __future__ import annotations

import numpy as np
import pytest

from repository_helpers import app_client, make_settings
from service.app import create_app
from service.repository import ModelRepository
from scratch_models.layers import LAYERS

pytestmark = pytest.mark.anyio
CANDIDATES = {"Conv2DTranspose": lambda k: k.layers.Conv2DTranspose(2, 3, padding="same"),
              "PReLU": lambda k: k.layers.PReLU(), "ELU": lambda k: k.layers.ELU(),
              "Conv3D": None}


async def test_an_unsupported_layer_is_served_by_keras_only(tmp_path):
    import keras

    name = next((n for n, make in CANDIDATES.items() if make is not None and n not in LAYERS), None)
    if name is None:
        pytest.skip("the scratch engine now implements every candidate layer")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), CANDIDATES[name](keras), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    repo = tmp_path / "repo"
    (repo / "konly").mkdir(parents=True)
    model.save(repo / "konly" / "model.keras")
    registry = ModelRepository(repo).load_all()
    entry = registry.get("konly")
    assert entry.ready and list(entry.backends) == ["keras"]
    assert name in entry.failures["scratch"] and "served by keras only" in entry.failures["scratch"]
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    async with app_client(create_app(make_settings(repo), registry=registry)) as c:
        info = (await c.get("/models")).json()["models"]["konly"]
        assert info["available_backends"] == ["keras"] and name in info["backends"]["scratch"]["reason"]
        r = await c.post("/predict/konly", json={"inputs": x.tolist()})
        assert r.status_code == 422 and r.json()["error"]["field"] == "backend"
        r = await c.post("/predict/konly?backend=keras", json={"images": x.tolist()})
        assert r.status_code == 200, r.text
        got = np.array([p["probabilities"] for p in r.json()["predictions"]])
        spec = (await c.get("/openapi.json")).json()["paths"]["/predict/konly"]["post"]
        backend = next(p for p in spec["parameters"] if p["name"] == "backend")
        assert backend["required"] is True and backend["schema"]["enum"] == ["keras"]
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-6)
