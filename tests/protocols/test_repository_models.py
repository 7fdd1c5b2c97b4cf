"""Every model of a model repository, every version of it, is reachable through both protocols: a repository with
a versioned export (two versions), an unversioned text export, and people's bare Keras files (a CNN, a functional
LSTM taking token ids; converted on load), answered by /v2 and /v1 exactly as /predict answers the same version."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from protocol_helpers import app_client, create_app, make_settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
PEER_DIR = ROOT.parent / "shared" / "fixtures" / "peer-models"
PEERS = {"peer_cnn": "cnn_3_layers_legacy_h5.keras", "peer_lstm": "lstm_functional_masked.keras"}


def _repository_tests():
    spec = importlib.util.spec_from_file_location("repository_helpers", ROOT / "tests/repository/repository_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    add_version = _repository_tests().add_version  # the repository tests' builder of tiny exports
    repo = tmp_path_factory.mktemp("repo") / "models"
    repo.mkdir()
    add_version(repo, "shapes", 1, arch="cnn", seed=1)
    add_version(repo, "shapes", 2, arch="cnn", seed=2)
    add_version(repo, "sentiment", None, arch="rnn", seed=3)
    if PEER_DIR.is_dir():
        for name, file in PEERS.items():
            (repo / name).mkdir()
            shutil.copy(PEER_DIR / file, repo / name / file)
    return repo


def tensor_request(name: str, arr: np.ndarray, backend: str) -> tuple[bytes, dict]:
    """A v2 request carrying ``arr`` as Triton binary tensor data, outputs as JSON."""
    datatype = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64"}[arr.dtype.name]
    header = json.dumps({"parameters": {"backend": backend}, "inputs": [
        {"name": name, "shape": list(arr.shape), "datatype": datatype,
         "parameters": {"binary_data_size": arr.nbytes}}]}).encode()
    return header + arr.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                    "Content-Type": "application/octet-stream"}


async def test_every_model_and_version_through_both_protocols(repository):
    from service.protocols import network
    from service.protocols.repository import resolve
    from service.repository.convert import random_inputs

    app = create_app(make_settings(repository))
    async with app_client(app) as c:
        registry = app.state.registry
        assert registry.wait(600), "the repository did not finish loading"
        expected = {"shapes", "sentiment"} | (set(PEERS) if PEER_DIR.is_dir() else set())
        assert expected <= set(registry.models), registry.models
        assert {str(v) for v in registry.models["shapes"]} == {"1", "2"}
        checked = []
        for name, versions in sorted(registry.models.items()):
            for version, entry in sorted(versions.items()):
                if entry.state != "ready":
                    continue
                ref = resolve(registry, name, str(version))
                backend = "scratch" if "scratch" in entry.backends else next(iter(entry.backends))
                meta = (await c.get(f"/v2/models/{name}/versions/{version}")).json()
                assert meta["name"] == name and str(version) in meta["versions"]
                in_name, datatype, shape = network.metadata_input(ref)
                assert meta["inputs"] == [{"name": in_name, "datatype": datatype, "shape": shape}]
                status = (await c.get(f"/v1/models/{name}/versions/{version}")).json()["model_version_status"]
                assert [s["version"] for s in status] == [str(version)]
                tf_meta = (await c.get(f"/v1/models/{name}/versions/{version}/metadata")).json()
                assert tf_meta["model_spec"]["version"] == str(version)

                arr = random_inputs(entry.input_spec, n=2, seed=version)
                ref_r = await c.post(f"/predict/{name}/versions/{version}?backend={backend}",
                                     json={"inputs": arr.tolist()})
                assert ref_r.status_code == 200, ref_r.text
                expected_probs = np.array([p["probabilities"] for p in ref_r.json()["predictions"]])
                tensor_name = network.TOKEN_INPUT if entry.input_spec.kind == "text" else in_name
                body, headers = tensor_request(tensor_name, arr, backend)
                r = await c.post(f"/v2/models/{name}/versions/{version}/infer", content=body, headers=headers)
                assert r.status_code == 200, r.text
                out = {o["name"]: o for o in r.json()["outputs"]}
                assert r.json()["model_version"] == str(version)
                got = np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
                np.testing.assert_array_equal(got, expected_probs)
                r = await c.post(f"/v1/models/{name}/versions/{version}:predict?backend={backend}",
                                 json={"instances": arr.tolist()})
                assert r.status_code == 200, r.text
                np.testing.assert_array_equal(np.array(r.json()["predictions"]), expected_probs)
                checked.append((name, version))
        assert {("shapes", 1), ("shapes", 2), ("sentiment", 1)} <= set(checked), checked
        if PEER_DIR.is_dir():
            assert {n for n, _ in checked} >= set(PEERS), checked
        # without a version: the highest that loaded, as /predict serves
        assert (await c.get("/v2/models/shapes")).json()["versions"] == ["1", "2"]
        r = await c.get("/v1/models/shapes")
        assert [s["version"] for s in r.json()["model_version_status"]] == ["1", "2"]
