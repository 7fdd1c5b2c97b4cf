"""Property-based run over /openapi.json (schemathesis, in process): no operation answers 5xx, and every
response matches its documented status codes, content type and schema. Bounded: EXAMPLES per operation.

``positive_data_acceptance`` is left out on purpose: one request schema serves three archs, so a
schema-valid body can still be wrong for the arch in the path (`texts` sent to the cnn), and item rules
(a 32x32x3 list, a decodable image, a non-blank text, MAX_BATCH) are checked item by item with a 4xx.

(The schemathesis pytest plugin's lazy ``from_fixture`` loader does not run under pytest 9, so each
operation's hypothesis strategy is driven here with ``@given``.)
"""
from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from schemathesis.specs.openapi.checks import positive_data_acceptance

from service_helpers import make_settings
from service.app import create_app
from test_parity import FakeSplit

EXAMPLES = 40


def test_openapi_operations_never_answer_5xx(weights_dir, registry):
    # /parity runs on a small split made here, so that every generated `limit` is cheap to compute.
    app = create_app(make_settings(weights_dir, max_batch=16), registry=registry, test_split_loader=FakeSplit())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/predict/{arch}", "/parity", "/health", "/ready", "/models", "/metrics"}
    with_inputs = {"/predict/{arch}", "/parity"}  # the others take nothing to make invalid
    runs = [(op, m) for op in operations
            for m in ((GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if op.path in with_inputs else (GenerationMode.POSITIVE,))]
    for operation, mode in runs:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses[(operation.path, mode.value, response.status_code)] += 1
            assert response.status_code < 500, response.text

        check()
    total = sum(statuses.values())
    print(f"schemathesis: {total} calls, statuses {dict(sorted(statuses.items()))}")
    per_path = Counter()
    for (path, _, status), n in statuses.items():
        per_path[path, status // 100] += n
    assert per_path["/predict/{arch}", 2] > 0 and per_path["/predict/{arch}", 4] > 0, statuses
    assert per_path["/parity", 2] > 0 and per_path["/parity", 4] > 0, statuses
