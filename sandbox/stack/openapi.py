"""The OpenAPI document of the public API, generated from the handlers' own routes and models.

python -m sandbox.stack.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sandbox.stack import template as tpl


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """Merge the per-function OpenAPI documents of every API function into one (Powertools' OpenAPIMerge)."""
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    template = tpl.load_template()
    merge = OpenAPIMerge(
        title="idv-gateway", version="1.0.0", description="Real-name identity verification gateway", on_conflict="error"
    )
    for code_dir in sorted({route.code_dir for route in tpl.routes(template)}):
        merge.add_file(tpl.ROOT / code_dir / "app.py", resolver_name="app")
    document: dict[str, Any] | None = json.loads(merge.get_openapi_json_schema())
    assert document is not None
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    from idv.schemas import Problem

    schemas["Problem"] = Problem.model_json_schema()
    document["components"]["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
    document["security"] = [{"ApiKey": []}]
    for path, operations in document["paths"].items():
        if path.startswith("/v1/faceid/callback"):
            for operation in operations.values():
                operation["security"] = []
        for status, response in _operation_responses(operations):
            # Powertools gives every response an empty application/json content; a 204 or a redirect has no body.
            if (status == "204" or status.startswith("3")) and response.get("content") == {"application/json": {}}:
                del response["content"]
    document["servers"] = [{"url": server_url}] if server_url else []
    return document


def _operation_responses(operations: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(str(status), r) for op in operations.values() for status, r in op.get("responses", {}).items()]


if __name__ == "__main__":
    json.dump(openapi_document(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
