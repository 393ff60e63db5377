"""API plumbing shared by the HTTP functions: the resolver, problem+json errors, Idempotency-Key.

Every error leaves as `application/problem+json` with a stable `code`; unexpected exceptions become a
500 `internal_error` whose body carries no trace (a storage failure is 503 `storage_unavailable`).
`Idempotency-Key` goes with the claim of the claim → call → finish path (`idv.idempotency`,
`idv.claims`): a replay returns the first answer without a provider call, and the same key with
another body is a 409 `idempotency_key_reused`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from idv import aws, errors, idempotency
from idv.config import get_settings
from idv.idempotency import Answer, Key
from idv.observability import logger

PROBLEM_JSON = "application/problem+json"

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": title, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, title in (
        (400, "Malformed request"),
        (404, "Not found"),
        (409, "Idempotency key reused or in progress"),
        (410, "The verification this Idempotency-Key made was erased"),
        (413, "Image too large"),
        (422, "Invalid input (ID number, mobile, name, consent, image)"),
        (429, "Provider rate limit"),
        (500, "Gateway misconfigured"),
        (502, "Provider rejected the request"),
        (503, "Provider or storage unavailable, result not stored, or check interrupted"),
        (504, "Provider timed out"),
    )
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers,
    )


def problem_response(exc: errors.IdvError) -> Response:
    headers = {"Retry-After": "1"} if isinstance(exc, errors.ProviderRateLimited) else None
    return Response(
        status_code=exc.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(exc.to_problem(), ensure_ascii=False),
        headers=headers,
    )


def _parse_json_body(text: str) -> Any:
    """json.loads whose every failure (huge numbers, deep nesting too) is a JSONDecodeError → 400."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise json.JSONDecodeError(f"unreadable JSON ({type(exc).__name__})", "", 0) from None


def new_resolver() -> APIGatewayRestResolver:
    """A REST resolver with request validation and the error mapping installed."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_parse_json_body)

    @app.exception_handler(errors.IdvError)
    def _idv_error(exc: errors.IdvError) -> Response:
        if exc.status >= 500:  # details name codes, fields and settings, never personal data
            logger.warning("request failed", extra={"code": exc.code, "status": exc.status, "detail": exc.detail})
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) or "body" for e in exc.errors()})
        kinds = sorted({str(e.get("type")) for e in exc.errors()})
        if "json_invalid" in kinds:
            return problem_response(errors.InvalidRequest("the request body is not valid JSON"))
        return problem_response(errors.InvalidRequest(f"invalid or missing fields: {', '.join(fields)}"))

    @app.not_found
    def _not_found(_exc: NotFoundError) -> Response:
        return problem_response(errors.NotFound("no such route"))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        misconfigured = aws.configuration_error(exc)
        if misconfigured is not None:
            logger.error("gateway misconfigured", extra={"code": misconfigured.code, "detail": misconfigured.detail})
            return problem_response(misconfigured)
        from idv.claims import is_storage_error

        if is_storage_error(exc):
            logger.warning("storage unavailable", extra={"error": type(exc).__name__})
            return problem_response(errors.StorageUnavailable("storage is unavailable; retry shortly"))
        logger.exception("unexpected error", extra={"error": type(exc).__name__})
        return problem_response(errors.IdvError("an unexpected error occurred; it has been logged"))

    return app


def idempotency_key(app: APIGatewayRestResolver, scope: str, payload: Any) -> Key | None:
    """The stored form of the request's Idempotency-Key header (None when it has none)."""
    from idv.provider_secret import get_provider_secrets

    value = app.current_event.headers.get("Idempotency-Key")  # case-insensitive in Powertools v3
    if value is None:
        return None
    hmac_key = get_provider_secrets(get_settings().provider_secret_id).pii_hmac_key
    return idempotency.key_for(scope, value, payload, hmac_key)


def answer(result: Answer) -> Response:
    """The HTTP response of a (possibly replayed) answer."""
    if result.problem:
        return Response(
            status_code=result.status,
            content_type=PROBLEM_JSON,
            body=json.dumps(result.body, ensure_ascii=False),
            headers={"Retry-After": "1"} if result.status == 429 else None,
        )
    return json_response(result.status, result.body)


def post_route(app: APIGatewayRestResolver, scope: str, run: Callable[[Any, Key | None, float], Answer]) -> Response:
    """Every POST route that creates a verification: `run(payload, key, lease)` once per Idempotency-Key."""
    from idv import claims

    payload = app.current_event.json_body
    key = idempotency_key(app, scope, payload)
    return answer(run(payload, key, claims.lease_seconds(app.lambda_context)))


def responses(
    model: Any, description: str = "The verification record", status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route: its success model (200, or 201 for what it creates) plus every problem."""
    return {
        status: {"description": description, "content": {"application/json": {"model": model}}},
        **PROBLEM_RESPONSES,
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI problem responses of these statuses (routes that cannot answer every problem)."""
    return {status: PROBLEM_RESPONSES[status] for status in statuses}


def base_url(app: APIGatewayRestResolver) -> str:
    """Public base of this API (PUBLIC_BASE_URL, else the API Gateway domain and stage)."""
    configured = get_settings().public_base_url
    if configured:
        return configured
    context = app.current_event.request_context
    return f"https://{context.domain_name}/{context.stage}"


def run_check_route(app: APIGatewayRestResolver, check: str) -> Response:
    """A synchronous check route: validate, then claim → call → finish once per Idempotency-Key."""
    from idv import checks

    def run(payload: Any, key: Key | None, lease: float) -> Answer:
        return checks.run_check(checks.parse_check_request(check, payload), key=key, lease=lease)

    return post_route(app, check, run)


def http_handler(app: APIGatewayRestResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point of an HTTP function: correlation id, tracing, then the resolver."""
    from aws_lambda_powertools.logging import correlation_paths

    from idv.observability import logger, tracer

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return lambda_handler
