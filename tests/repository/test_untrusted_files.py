"""Files and names people give us are untrusted: model names are validated before any file is opened,
symlinks may not lead outside the repository, a Lambda layer's Python code is never executed (both backends
refuse it, with the reason), files have a size limit, and a bad folder never stops the others."""
from __future__ import annotations

import os

import numpy as np
import pytest

from repository_helpers import TOKEN, add_version, app_client, make_settings
from service.app import create_app
from service.repository import ModelRepository
from service.repository.names import name_problem, parse_version

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", "a\\b", "/abs", ".hidden", "a..b", "", "x" * 65, "sp ace",
                                  "nul\x00", "é"])
def test_bad_model_names(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["cnn", "my-model_2", "v1.2", "A" * 64])
def test_good_model_names(name):
    assert name_problem(name) is None


def test_versions_are_positive_integers_without_leading_zeros():
    assert [parse_version(v) for v in ("1", "12", "0", "01", "-1", "1.0", "١", "x", str(2**31))] == \
           [1, 12, None, None, None, None, None, None, None]


async def test_traversal_and_symlinks_are_refused(tmp_path):
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    add_version(repo, "good", None)
    add_version(outside, "secret", None)
    os.symlink(outside / "secret", repo / "escape")                 # a model folder leading outside
    add_version(repo, "linked", None)
    (repo / "linked" / "weights.npz").unlink()
    os.symlink(outside / "secret" / "weights.npz", repo / "linked" / "weights.npz")  # one file leading outside
    registry = ModelRepository(repo).load_all()
    assert "escape" not in {n for n, e in registry.entries.items() if e.ready}
    assert "outside the model repository" in registry.get("escape").reason
    assert "outside the model repository" in registry.get("linked").reason
    async with app_client(create_app(make_settings(repo, admin_token=TOKEN), registry=registry)) as c:
        for path in ("/predict/..%2F..%2Fetc", "/predict/%2E%2E", "/predict/escape"):
            r = await c.post(path, json={"images": [np.zeros((32, 32, 3)).tolist()]})
            assert r.status_code in (404, 503), (path, r.text)
            if r.status_code == 503:
                assert "outside the model repository" in r.json()["error"]["reason"]
        for name in ("..", "a..b", ".hidden", "x" * 65):
            r = await c.post(f"/repository/models/{name}/load", headers=AUTH)
            assert r.status_code in (404, 422), (name, r.status_code)
        r = await c.post("/repository/models/..%2F..%2Fetc/load", headers=AUTH)
        assert r.status_code in (404, 422)
        rows = {row["name"]: row for row in (await c.post("/repository/index", headers=AUTH)).json()}
        assert rows["escape"]["state"] == "UNAVAILABLE" and rows["good"]["state"] == "READY"
        assert (await c.post("/predict/good", json={"images": [np.zeros((32, 32, 3)).tolist()]})).status_code == 200


def _lambda_model(marker):
    import keras

    def side_effect(x):  # would leave a file behind if anyone ran it
        marker.write_text("executed")
        return x * 2.0

    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: side_effect(t))(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_lambda_layer_is_refused_and_never_executed(tmp_path, suffix):
    repo, marker = tmp_path / "repo", tmp_path / "marker.txt"
    (repo / "lam").mkdir(parents=True)
    model = _lambda_model(marker)
    model.save(repo / "lam" / f"model{suffix}")
    marker.unlink(missing_ok=True)   # building and saving ran it; from now on nothing may
    add_version(repo, "ok", None)
    registry = ModelRepository(repo).load_all()
    entry = registry.get("lam")
    assert entry.state == "failed" and not entry.backends
    assert "Lambda" in entry.reason and "never executed" in entry.reason
    assert set(entry.failures) == {"scratch", "keras"}
    assert not marker.exists()
    assert registry.get("ok").ready


def test_size_limit_and_garbage_files(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "big", None)
    (repo / "junk").mkdir()
    (repo / "junk" / "model.keras").write_bytes(b"not a model at all" * 10)
    (repo / "empty").mkdir()
    registry = ModelRepository(repo, max_bytes=10_000).load_all()
    assert "MAX_MODEL_FILE_BYTES=10000" in registry.get("big").reason
    assert "neither a Keras 3 .keras zip nor a legacy HDF5" in registry.get("junk").reason
    assert "no Keras file" in registry.get("empty").reason
    assert not registry.ready  # nothing loaded
    assert ModelRepository(repo).load_all().get("big").ready
