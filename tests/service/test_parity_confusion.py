"""/parity's confusion matrices (added for the web page's heat maps): scikit-learn's counts, per backend."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from service_helpers import app_client, make_settings
from service.app import create_app
from service.parity import confusion_matrix
from test_parity import FakeSplit

pytestmark = pytest.mark.anyio


def test_confusion_matrix_matches_scikit_learn():
    rng = np.random.default_rng(11)
    for n_classes in (2, 3, 10):
        y, p = rng.integers(0, n_classes, 500), rng.integers(0, n_classes, 500)
        p[:3] = n_classes - 1  # a class present in the predictions only still gets its row and column
        expected = sk_confusion_matrix(y, p, labels=list(range(n_classes)))
        assert confusion_matrix(y, p, n_classes) == expected.tolist()


@pytest.mark.parametrize("arch", ["cnn", "rnn"])
async def test_parity_reports_both_confusion_matrices(weights_dir, registry, arch):
    split = FakeSplit()
    app = create_app(make_settings(weights_dir), registry=registry, test_split_loader=split)
    async with app_client(app) as c:
        r = await c.get("/parity", params={"arch": arch, "limit": 30})
        assert r.status_code == 200, r.text
        body = r.json()
    x, y, classes = split(arch, None)
    x, y = x[:30], np.asarray(y[:30])
    keras_b, scratch_b = registry.backend(arch, "keras"), registry.backend(arch, "scratch")
    if arch != "cnn":
        x = scratch_b.encode_texts(x)
    assert body["classes"] == list(classes)
    for name, backend in (("keras", keras_b), ("scratch", scratch_b)):
        pred = backend.predict_proba(x).argmax(1)
        matrix = np.array(body["confusion_matrices"][name])
        assert matrix.tolist() == sk_confusion_matrix(y, pred, labels=list(range(len(classes)))).tolist()
        assert matrix.sum() == body["n"] == 30
        # the diagonal is the backend's own accuracy
        assert np.trace(matrix) / 30 == pytest.approx(body[name]["accuracy"])
