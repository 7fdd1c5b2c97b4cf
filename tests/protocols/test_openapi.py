"""OpenAPI documents both protocols' routes, and a property-based run (schemathesis, in process) over them finds
no 5xx and no response outside what is documented (status, content type, schema). Inference has one operation
per model and version (service/openapi.py) whose body schema is what that model takes, so there
``positive_data_acceptance`` runs too (a schema-valid request is never refused); it is left out for the generic
``{name}`` metadata routes, where a generated name is an unknown model."""
from __future__ import annotations

import os
from collections import Counter

import pytest
from fastapi.testclient import TestClient

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from protocol_helpers import create_app, make_settings  # noqa: E402

# PROPERTY_EXAMPLES_FACTOR=10 multiplies the example count (the issue's 10x run; give pytest --timeout 0)
EXAMPLES = 25 * int(os.environ.get("PROPERTY_EXAMPLES_FACTOR", "1"))
PROTOCOL_PATHS = {
    "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/cnn/infer", "/v2/models/rnn/versions/1/infer",
    "/v1/models/{name}", "/v1/models/{name}/versions/{version}", "/v1/models/{name}/metadata",
    "/v1/models/{name}/versions/{version}/metadata", "/v1/models/lstm:predict",
    "/v1/models/cnn/versions/1:predict"}
WITH_BODIES = {"/v2/models/cnn/infer", "/v2/models/rnn/versions/1/infer", "/v1/models/lstm:predict",
               "/v1/models/cnn/versions/1:predict"}


def test_openapi_lists_every_protocol_route(weights_dir, registry):
    with TestClient(create_app(make_settings(weights_dir), registry=registry)) as client:  # the lifespan runs
        spec = client.get("/openapi.json").json()
    assert PROTOCOL_PATHS <= set(spec["paths"])
    assert not {"/v2/models/{name}/infer", "/v1/models/{name}:predict"} & set(spec["paths"])  # one per model
    infer = spec["paths"]["/v2/models/cnn/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json"}
    assert "application/octet-stream" in infer["description"]  # the binary extension, described
    assert set(infer["responses"]) >= {"200", "400", "404", "413", "503"}
    tensor = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]["oneOf"][0]
    assert tensor["properties"]["name"] == {"const": "images"} and tensor["properties"]["shape"] == {
        "const": [1, 32, 32, 3]}
    predict = spec["paths"]["/v1/models/lstm:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "signature_name" in predict["properties"]
    assert [set(branch["required"]) for branch in predict["oneOf"]] == [{"instances"}, {"inputs"}]


def test_protocol_operations_never_answer_5xx_or_undocumented(weights_dir, registry):
    app = create_app(make_settings(weights_dir, max_batch=16), registry=registry)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path in PROTOCOL_PATHS]
    assert {op.path for op in operations} == PROTOCOL_PATHS
    statuses: Counter = Counter()
    for operation in operations:
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if operation.path in WITH_BODIES else \
            (GenerationMode.POSITIVE,)
        excluded = [] if operation.path in WITH_BODIES else [positive_data_acceptance]
        for mode in modes:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call_and_validate(excluded_checks=excluded)
                statuses[(operation.path, response.status_code)] += 1
                assert response.status_code < 500, response.text

            check()
    print(f"schemathesis over the protocol routes: {sum(statuses.values())} calls, {dict(sorted(statuses.items()))}")
    assert statuses[("/v2", 200)] > 0 and statuses[("/v2/health/live", 200)] > 0
    for path in WITH_BODIES:
        assert statuses[(path, 200)] > 0 and any(400 <= s < 500 for (p, s) in statuses if p == path), path
