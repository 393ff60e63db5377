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
        (415, "The body is not JSON"),
        (422, "Invalid input (ID number, mobile, name, consent, image)"),
        (429, "Provider rate limit, the person's daily limit or the day's spend limit (Retry-After)"),
        (500, "Gateway misconfigured"),
        (502, "Provider rejected the request"),
        (503, "Provider or storage unavailable, result not stored, or check interrupted"),
        (504, "Provider timed out"),
    )
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers,
    )


def problem_response(exc: errors.IdvError) -> Response[str]:
    retry_after = getattr(exc, "retry_after", None)
    headers = (
        {"Retry-After": str(retry_after)}
        if retry_after is not None
        else {"Retry-After": "1"}
        if isinstance(exc, errors.ProviderRateLimited)
        else None
    )
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


def request_problem(problems: Any) -> errors.IdvError:
    """The one problem a refused request body answers with.

    A structural fault (not JSON, not an object, a missing, unknown or wrong-typed field) is a 400
    naming the fields; otherwise the first field's domain error keeps its own code and detail
    (`idv.schemas.domain`), e.g. 422 `invalid_id_number`.
    """
    found = list(problems)
    kinds = {str(e.get("type")) for e in found}
    if "json_invalid" in kinds:
        return errors.InvalidRequest("the request body is not valid JSON")

    def where(e: dict[str, Any]) -> str:
        return ".".join(str(p) for p in e.get("loc", ())[1:]) or "body"

    structural = [e for e in found if errors.class_of(str(e.get("type"))) is None]
    if any(where(e) == "body" for e in structural):
        return errors.InvalidRequest("the request body must be a JSON object")
    unknown = sorted({where(e) for e in structural if e.get("type") == "extra_forbidden"})
    if unknown:
        return errors.InvalidRequest(f"unknown fields: {', '.join(unknown)} (this route does not define them)")
    if structural:
        return errors.InvalidRequest(f"invalid or missing fields: {', '.join(sorted({where(e) for e in structural}))}")
    first = found[0]
    cls = errors.class_of(str(first.get("type"))) or errors.InvalidRequest
    return cls(str((first.get("ctx") or {}).get("detail") or first.get("msg") or cls.title))


def json_media_type(value: str | None) -> bool | None:
    """Whether a Content-Type is JSON (case-insensitive, parameters allowed, `+json` suffixes too);
    None when there is none."""
    if value is None or not value.strip():
        return None
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def refuse_media_type(event: dict[str, Any]) -> dict[str, Any] | None:
    """415 `unsupported_media_type` for a body that is not JSON; a JSON one's header is normalized (in
    place) to `application/json`, which is what Powertools' request validation parses."""
    if not event.get("body"):
        return None
    names = [k for k in event.get("headers") or {} if k.lower() == "content-type"]
    value = (event.get("headers") or {})[names[0]] if names else None
    is_json = json_media_type(value)
    if is_json is None or is_json:
        for name in names:
            del event["headers"][name]
            (event.get("multiValueHeaders") or {}).pop(name, None)
        event.setdefault("headers", {})["content-type"] = "application/json"
        if event.get("multiValueHeaders") is not None:
            event["multiValueHeaders"]["content-type"] = ["application/json"]
        return None
    hint = " (curl -d sends a form unless you add -H 'content-type: application/json')" if "form" in str(value) else ""
    problem = errors.UnsupportedMediaType(f"send the body as JSON with Content-Type: application/json{hint}")
    return {
        "statusCode": problem.status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": json.dumps(problem.to_problem(), ensure_ascii=False),
        "isBase64Encoded": False,
    }


def _idv_error(exc: errors.IdvError) -> Response[str]:
    if exc.status >= 500:  # details name codes, fields and settings, never personal data
        logger.warning("request failed", extra={"code": exc.code, "status": exc.status, "detail": exc.detail})
    return problem_response(exc)


def _invalid(exc: RequestValidationError) -> Response[str]:
    return problem_response(request_problem(exc.errors()))


def _not_found(_exc: NotFoundError) -> Response[str]:
    return problem_response(errors.NotFound("no such route"))


def _unexpected(exc: Exception) -> Response[str]:
    from idv.claims import is_storage_error

    misconfigured = aws.configuration_error(exc)
    if misconfigured is not None:
        logger.error("gateway misconfigured", extra={"code": misconfigured.code, "detail": misconfigured.detail})
        return problem_response(misconfigured)
    if is_storage_error(exc):
        logger.warning("storage unavailable", extra={"error": type(exc).__name__})
        return problem_response(errors.StorageUnavailable("storage is unavailable; retry shortly"))
    logger.exception("unexpected error", extra={"error": type(exc).__name__})
    return problem_response(errors.IdvError("an unexpected error occurred; it has been logged"))


def new_resolver() -> APIGatewayRestResolver:
    """A REST resolver with request validation and the error mapping installed (one place for all)."""
    app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_parse_json_body)
    app.exception_handler(errors.IdvError)(_idv_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.not_found(_not_found)
    app.exception_handler(Exception)(_unexpected)
    return app


def idempotency_key(app: APIGatewayRestResolver, scope: str, payload: Any) -> Key | None:
    """The stored form of the request's Idempotency-Key header (None when it has none)."""
    from idv.provider_secret import get_provider_secrets

    value = app.current_event.headers.get("Idempotency-Key")  # case-insensitive in Powertools v3
    if value is None:
        return None
    hmac_key = get_provider_secrets(get_settings().provider_secret_id).pii_hmac_key
    return idempotency.key_for(scope, value, payload, hmac_key)


def answer(result: Answer) -> Response[str]:
    """The HTTP response of a (possibly replayed) answer."""
    if result.problem:
        return Response(
            status_code=result.status,
            content_type=PROBLEM_JSON,
            body=json.dumps(result.body, ensure_ascii=False),
            headers={"Retry-After": "1"} if result.status == 429 else None,
        )
    return json_response(result.status, result.body)


def post_route(
    app: APIGatewayRestResolver, scope: str, run: Callable[[Any, Key | None, float], Answer]
) -> Response[str]:
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


def run_check_route(app: APIGatewayRestResolver, check: str, body: Any) -> Response[str]:
    """A synchronous check route: the validated body, then claim → call → finish once per Idempotency-Key."""
    from idv import checks

    def run(_payload: Any, key: Key | None, lease: float) -> Answer:
        return checks.run_check(checks.check_request(check, body), key=key, lease=lease)

    return post_route(app, check, run)


def http_handler(
    app: APIGatewayRestResolver, *, json_bodies: bool = True
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point of an HTTP function: correlation id, tracing, the media type, the resolver.

    `json_bodies`: the function's bodies are JSON (415 for anything else); the FaceID callback takes
    the provider's notify in whatever form it comes.
    """
    from aws_lambda_powertools.logging import correlation_paths

    from idv.observability import logger, tracer

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        refused = refuse_media_type(event) if json_bodies else None
        return refused or app.resolve(event, context)

    return lambda_handler
