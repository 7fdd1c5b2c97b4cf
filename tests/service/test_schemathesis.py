"""Property-based run over /openapi.json (schemathesis, in process), every check included: no operation
answers 5xx, responses match their documented status codes, content type and schema, schema-valid bodies are
accepted (``positive_data_acceptance``) and invalid ones refused (``negative_data_rejection``). The document
has one /predict operation per model and version with that model's exact body, so a body valid by the schema
is one the model takes; the same holds for the protocol routes' per-model operations (``/v2/models/<m>/infer``,
``/v1/models/<m>:predict``, and versioned), which are run here too. Bounded: EXAMPLES per operation
(PROTOCOL_EXAMPLES for the protocol ones, so that the whole run stays about as long as before), both times
PROPERTY_EXAMPLES_FACTOR (default 1). The
repository endpoints run with ADMIN_TOKEN set and the token supplied (their 401/403 are tested in tests/repository).

(The schemathesis pytest plugin's lazy ``from_fixture`` loader does not run under pytest 9, so each
operation's hypothesis strategy is driven here with ``@given``.)
"""
from __future__ import annotations

import os
from collections import Counter

import schemathesis
import schemathesis_hooks  # noqa: F401  (registers the image-base64 format)
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from service_helpers import make_settings
from service.app import create_app
from test_parity import FakeSplit

# PROPERTY_EXAMPLES_FACTOR=10 multiplies every example count (the 10x run; give pytest --timeout 0)
FACTOR = int(os.environ.get("PROPERTY_EXAMPLES_FACTOR", "1"))
EXAMPLES = 15 * FACTOR
PROTOCOL_EXAMPLES = 8 * FACTOR
TOKEN = "test-admin-token"
# The protocol routers' metadata and health routes are tested by their own suites (tests/protocols); their
# inference operations, one per model and version in the document, are run here.
PROTOCOL_OPERATIONS = ("/v2/models/cnn/infer", "/v2/models/rnn/infer", "/v2/models/lstm/versions/1/infer",
                       "/v1/models/cnn:predict", "/v1/models/lstm:predict", "/v1/models/rnn/versions/1:predict")
SKIP = ("/v2", "/v1/")


def test_openapi_operations_pass_every_check(weights_dir, registry):
    # /parity runs on a small split made here, so that every generated `limit` is cheap to compute.
    app = create_app(make_settings(weights_dir, max_batch=4, admin_token=TOKEN), registry=registry,
                     test_split_loader=FakeSplit())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/predict/cnn", "/predict/rnn", "/predict/lstm", "/predict/rnn/versions/1", "/parity", "/health",
            "/ready", "/models", "/metrics", "/repository/index"} <= paths
    assert set(PROTOCOL_OPERATIONS) | {"/v2/models/rnn/versions/1/infer", "/v1/models/cnn/versions/1:predict"} <= paths
    assert not {"/v2/models/{name}/infer", "/v1/models/{name}:predict"} & paths  # replaced by the concrete ones
    operations = [op for op in operations if op.path in PROTOCOL_OPERATIONS or
                  (not op.path.startswith(SKIP) and not op.path.endswith("/unload"))]
    for operation in operations:
        examples = PROTOCOL_EXAMPLES if operation.path in PROTOCOL_OPERATIONS else EXAMPLES
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
                statuses[(operation.path, mode.value, response.status_code)] += 1

            try:
                check()
            except Unsatisfiable:  # an operation that takes nothing has no invalid request to make
                assert mode is GenerationMode.NEGATIVE, operation.path
    print(f"schemathesis: {sum(statuses.values())} calls, statuses {dict(sorted(statuses.items()))}")
    per_path = Counter()
    for (path, mode, status), n in statuses.items():
        per_path[path, mode, status // 100] += n
    for path in ("/predict/cnn", "/predict/rnn", "/predict/lstm/versions/1", *PROTOCOL_OPERATIONS):
        assert per_path[path, "positive", 2] > 0 and per_path[path, "negative", 4] > 0, statuses
        assert per_path[path, "positive", 4] == 0, statuses
