"""schemathesis over the OpenAPI document: no request, valid or not, gets a 5xx or `internal`.

Every operation is driven with schema-valid and schema-violating data (schemathesis' positive
and negative modes), as a fan, as a creator, and with a server API key for `/publish`.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.fuzz.support import COUNTER, EXAMPLES, FuzzNode

# A live node in its own process (tests/fuzz/support.py).
pytestmark = pytest.mark.slow

_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def _identities(path: str) -> list[str]:
    if path == "/api/v1/publish":
        return ["apikey", "fan"]
    return ["fan", "creator"]


def _check(case: Any, response: requests.Response) -> None:
    what = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    assert response.status_code < 500, what
    if response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            assert body["error"].get("code") != "internal", what


def test_no_request_the_document_describes_gets_a_5xx_or_internal(fuzz_node: FuzzNode) -> None:
    with urllib.request.urlopen(f"{fuzz_node.url}/api/v1/openapi.json", timeout=10) as response:
        document = json.loads(response.read())
    schema = schemathesis.openapi.from_dict(document)
    with requests.Session() as session:
        _fuzz(fuzz_node, schema, document, session)


def _fuzz(fuzz_node: FuzzNode, schema: Any, document: Any, session: requests.Session) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            who = st.sampled_from(_identities(operation.path))

            @_SETTINGS
            @given(case=strategy, who=who)
            def run(case: Any, who: str) -> None:
                response = case.call(
                    base_url=fuzz_node.url,
                    session=session,
                    headers=fuzz_node.headers(who),
                    timeout=10,
                )
                COUNTER.add("http")
                _check(case, response)

            try:
                run()
            except Unsatisfiable:
                # Nothing in this operation can be made schema-invalid (no parameters, no body).
                assert mode is GenerationMode.NEGATIVE, operation.label
        fuzz_node.assert_healthy()
