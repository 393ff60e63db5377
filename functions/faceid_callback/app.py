"""GET/POST /v1/faceid/callback/{verification_id}: browser return and provider notify (no API key).

The signature and the session are checked and the result is confirmed with faceid/search before
anything changes; the browser is sent back to the customer's redirect_url (or shown a small page).
"""

import html
import json
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response

from idv import api, errors, faceid, redirects
from idv.config import get_settings
from idv.schemas import CallbackAck

app = api.new_resolver()

RETURN_RESPONSES = {
    302: {
        "description": "Back to the session's redirect_url with verification_id, status and decision added",
        "headers": {"Location": {"description": "The customer's page", "schema": {"type": "string"}}},
    },
    200: {"description": "A small page when the session has no redirect_url", "content": {"text/html": {}}},
    **api.problems(400, 404, 422, 500),
}
NOTIFY_RESPONSES = {
    200: {"description": "Acknowledged", "content": {"application/json": {"model": CallbackAck}}},
    **api.problems(400, 404, 422, 500),
}

PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>Verification</title></head>
<body><main><h1>认证已提交 / Verification received</h1><p id="status">{status}</p></main></body></html>"""


@app.get(
    "/v1/faceid/callback/<verification_id>",
    summary="Browser return from the H5 liveness page",
    responses=RETURN_RESPONSES,
)
def browser_return(verification_id: str):
    params = app.current_event.query_string_parameters or {}
    outcome = faceid.handle_callback(verification_id, params.get("response"), params.get("sign"))
    status = outcome.record["status"]
    location = _location(outcome)
    if location:
        return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"}, body="")
    page = PAGE.format(status=html.escape(status))
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page)


def _location(outcome: faceid.CallbackOutcome) -> str | None:
    """The customer's page, rebuilt from its checked parts; None (the small page) when the stored URL no
    longer passes the rules (stored by an older release, or its host was removed from the allow list)."""
    if not outcome.redirect_url:
        return None
    try:
        return redirects.return_location(
            outcome.redirect_url, outcome.record, allowed_hosts=get_settings().allowed_redirect_hosts
        )
    except errors.InvalidRequest:
        return None


@app.post(
    "/v1/faceid/callback/<verification_id>",
    summary="Provider notify after liveness",
    responses=NOTIFY_RESPONSES,
)
def provider_notify(verification_id: str):
    response, sign = _notify_fields()
    outcome = faceid.handle_callback(verification_id, response, sign)
    return api.json_response(200, {"verification_id": verification_id, "status": outcome.record["status"]})


def _notify_fields() -> tuple[str | None, str | None]:
    """`response` and `sign` of a notify: the document defines no method, media type or fields, so a
    form body, a JSON body and the query string are all read (the signature decides what counts)."""
    event = app.current_event
    try:
        text = event.decoded_body or ""
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidCallback("the notify body is not UTF-8") from None
    fields: dict[str, Any] = {}
    if text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise errors.InvalidCallback("the notify body is not valid JSON") from None
        fields = parsed if isinstance(parsed, dict) else {}
    elif text:
        try:
            fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, strict_parsing=False).items()}
        except ValueError:
            raise errors.InvalidCallback("the notify body is not a form") from None
    query = event.query_string_parameters or {}
    response = fields.get("response", query.get("response"))
    if isinstance(response, dict):  # a JSON body may carry the response as an object, not a string
        response = None
    return response, fields.get("sign", query.get("sign"))


lambda_handler = api.http_handler(app, json_bodies=False)
