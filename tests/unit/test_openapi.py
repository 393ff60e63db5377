"""The OpenAPI document is generated from the handlers, valid, complete, and committed up to date."""

import json
from pathlib import Path

from openapi_spec_validator import validate

from sandbox.stack.openapi import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_document_is_valid_and_covers_every_route():
    document = openapi_document()
    validate(document)
    assert set(document["paths"]) == {
        "/v1/compare",
        "/v1/four-factor",
        "/v1/portrait",
        "/v1/faceid/sessions",
        "/v1/faceid/callback/{verification_id}",
        "/v1/verifications/{verification_id}",
        "/v1/uploads",
        "/v1/verifications",
        "/v1/subjects/search",
        "/v1/subjects/erase",
        "/v1/usage",
    }
    assert set(document["paths"]["/v1/verifications/{verification_id}"]) == {"get", "delete"}
    callback = document["paths"]["/v1/faceid/callback/{verification_id}"]
    assert all(op["security"] == [] for op in callback.values())
    listing = {p["name"]: p for p in document["paths"]["/v1/verifications"]["get"]["parameters"]}
    assert set(listing) == {"client_reference", "limit", "next_token"} and listing["client_reference"]["required"]
    # The ID number of a data-subject request is in the body, never in the URL (DESIGN §9).
    for path in ("/v1/subjects/search", "/v1/subjects/erase"):
        assert set(document["paths"][path]) == {"post"} and "parameters" not in document["paths"][path]["post"]
    usage = document["paths"]["/v1/usage"]["get"]
    assert {p["name"] for p in usage["parameters"]} == {"from", "to"}
    assert "UsageReport" in json.dumps(usage["responses"]["200"])
    assert set(document["components"]["schemas"]["UsageDecisions"]["properties"]) == {"pass", "fail", "review"}
    problem = document["paths"]["/v1/compare"]["post"]["responses"]["422"]["content"]
    assert "application/problem+json" in problem


def test_committed_document_is_current():
    assert json.loads(COMMITTED.read_text()) == openapi_document(), "run `make openapi` and commit docs/openapi.json"
