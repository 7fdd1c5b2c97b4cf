"""OpenAPI documents both protocols' routes, and a property-based run (schemathesis, in process) over them finds
no 5xx and no response outside what is documented (status, content type, schema). ``positive_data_acceptance``
is left out as in tests/service/test_schemathesis.py: a schema-valid tensor can still disagree with its own
``shape`` or the model (that is a 400 by design)."""
from __future__ import annotations

from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from protocol_helpers import create_app, make_settings  # noqa: E402

EXAMPLES = 25
PROTOCOL_PATHS = {
    "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
    "/v1/models/{name}", "/v1/models/{name}/versions/{version}", "/v1/models/{name}/metadata",
    "/v1/models/{name}/versions/{version}/metadata", "/v1/models/{name}:predict",
    "/v1/models/{name}/versions/{version}:predict"}


def test_openapi_lists_every_protocol_route(weights_dir, registry):
    spec = create_app(make_settings(weights_dir), registry=registry).openapi()
    assert PROTOCOL_PATHS <= set(spec["paths"])
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"application/json", "application/octet-stream"} <= set(infer["requestBody"]["content"])
    assert set(infer["responses"]) >= {"200", "400", "404", "413", "503"}
    assert "inputs" in infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    predict = spec["paths"]["/v1/models/{name}:predict"]["post"]
    assert {"instances", "inputs", "signature_name"} <= set(
        predict["requestBody"]["content"]["application/json"]["schema"]["properties"])


def test_protocol_operations_never_answer_5xx_or_undocumented(weights_dir, registry):
    app = create_app(make_settings(weights_dir, max_batch=16), registry=registry)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path in PROTOCOL_PATHS]
    assert {op.path for op in operations} == PROTOCOL_PATHS
    statuses: Counter = Counter()
    with_bodies = {"/v2/models/{name}/infer", "/v1/models/{name}:predict"}
    for operation in operations:
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if operation.path in with_bodies else \
            (GenerationMode.POSITIVE,)
        for mode in modes:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
                statuses[(operation.path, response.status_code)] += 1
                assert response.status_code < 500, response.text

            check()
    print(f"schemathesis over the protocol routes: {sum(statuses.values())} calls, {dict(sorted(statuses.items()))}")
    assert statuses[("/v2", 200)] > 0 and statuses[("/v2/health/live", 200)] > 0
    assert any(400 <= s < 500 for (p, s) in statuses if p == "/v2/models/{name}/infer")
