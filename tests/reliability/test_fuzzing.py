"""Fuzzing the public API: schemathesis cases from the generated OpenAPI document, sent through the
local API (so the real handlers, layer, moto and the provider sandbox answer them).

Per operation: positive cases (schema-valid bodies), negative cases (schema-violating bodies; not for
path-only operations, where every string is valid), and for body operations "seeded" cases — positive
bodies carrying a valid sandbox person and consent, so they get past the field validators into the
image pipeline, redirect and upload checks and the provider clients.

Checks on every response: no server error (any 5xx fails, except a documented provider failure — 502
`provider_rejected`, 503 `provider_unavailable`, 504 `provider_timeout` problem documents — which a
fuzz case cannot cause unless the sandbox is faulted, so in practice none is allowed), and response
conformance — status code documented, content type documented, body valid against its schema, documented
headers present — plus: an error body never carries a trace. Hypothesis runs derandomized without an
example database, so the cases are the same on every run; the counts are bounded by MAX_EXAMPLES.

Requests carry the x-api-key header from the session (the copy of the document used here drops the
security requirement, so schemathesis' negative mode never strips the key: API-key enforcement is
tested in tests/integration/test_api_flows.py::test_api_key_is_required). Property tests of the
validators and image decoding live in tests/unit (test_validation.py, test_images.py, test_privacy.py).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
import requests

from tests.reliability import figures
from tests.stack import CONSENT

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 40  # per operation and mode
PROVIDER_FAILURES = {502: "provider_rejected", 503: "provider_unavailable", 504: "provider_timeout"}


@pytest.fixture(scope="module")
def fuzz_schema(stack):
    import schemathesis

    from sandbox.stack.openapi import openapi_document

    document = copy.deepcopy(openapi_document(stack.api_url))
    document.pop("security", None)
    document["components"].pop("securitySchemes", None)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return schemathesis.openapi.from_dict(document)


def seed_person(case: Any, people: Any) -> None:
    """A valid person and consent in a positive body (the other fields stay fuzzed)."""
    if not isinstance(case.body, dict):
        return
    person = people.identity("match")
    case.body.update(name=person.name, id_number=person.id_number, consent=dict(CONSENT))
    if "mobile" in case.body or case.path == "/v1/four-factor":
        case.body["mobile"] = person.mobile


def server_error(response: Any) -> str | None:
    if response.status_code < 500:
        return None
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    if PROVIDER_FAILURES.get(response.status_code) == code:
        return None
    return f"server error {response.status_code}: {response.text[:200]}"


class Tally:
    """What the fuzz run saw: cases per operation and mode, statuses, distinct failures."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.failures: dict[tuple[str, str, int, str], str] = {}
        self.server_errors = 0
        self.schema_violations = 0


def fuzz_run(
    operation: Any, mode: Any, label: str, seeded: bool, send: Any, checks: list[Any], people: Any, tally: Tally
) -> Any:
    """A derandomized hypothesis test of one operation in one mode (called without arguments)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if seeded:
            seed_person(case, people)
        name = case.operation.label
        response = send(case)
        tally.cases[f"{name} {label}"] += 1
        tally.statuses[response.status_code] += 1
        problem = server_error(response)
        if problem:
            tally.server_errors += 1
            tally.failures.setdefault((name, label, response.status_code, "5xx"), problem)
        if "Traceback" in response.text:
            tally.failures.setdefault((name, label, response.status_code, "trace"), response.text[:300])
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:
            tally.schema_violations += 1
            tally.failures.setdefault((name, label, response.status_code, type(exc).__name__), str(exc))

    return run


def test_fuzz_the_public_api(stack, people, fuzz_schema):
    from hypothesis import errors as hypothesis_errors
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi import checks as openapi_checks

    conformance = [
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
        openapi_checks.response_headers_conformance,
    ]
    session = requests.Session()
    session.headers["x-api-key"] = stack.api_key

    def send(case: Any) -> Any:
        return case.call(base_url=stack.api_url, session=session, timeout=60)

    tally = Tally()
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        runs = [("positive", GenerationMode.POSITIVE, False)]
        if operation.body:
            runs += [("negative", GenerationMode.NEGATIVE, False), ("seeded", GenerationMode.POSITIVE, True)]
        for label, mode, seeded in runs:
            try:
                fuzz_run(operation, mode, label, seeded, send, conformance, people, tally)()
            except hypothesis_errors.Unsatisfiable:  # pragma: no cover - the document changed shape
                pytest.fail(f"no {label} cases can be generated for {operation.label}")

    total = sum(tally.cases.values())
    figures.record(
        "fuzzing",
        cases=total,
        operations=len({key.rsplit(" ", 1)[0] for key in tally.cases}),
        runs=len(tally.cases),
        server_errors=tally.server_errors,
        schema_violations=tally.schema_violations,
        statuses=" ".join(f"{s}:{n}" for s, n in sorted(tally.statuses.items())),
    )
    report = "\n".join(f"{key}: {text[:600]}" for key, text in tally.failures.items())
    assert not tally.failures, f"{len(tally.failures)} distinct fuzz failures:\n{report}"
    assert total >= 500, f"only {total} fuzz cases ran"
