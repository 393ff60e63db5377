"""GET/POST /v1/faceid/callback/{verification_id}: browser return and provider notify (no API key).

The signature and the session are checked and the result is confirmed with faceid/search before
anything changes; the browser is sent back to the customer's redirect_url (or shown a small page).
"""

import html
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response

from idv import api, faceid
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
    if outcome.redirect_url:
        location = faceid.browser_return_location(outcome.redirect_url, outcome.record)
        return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"}, body="")
    page = PAGE.format(status=html.escape(status))
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page)


@app.post(
    "/v1/faceid/callback/<verification_id>",
    summary="Provider notify after liveness",
    responses=NOTIFY_RESPONSES,
)
def provider_notify(verification_id: str):
    try:
        form = parse_qs(app.current_event.decoded_body or "", keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise faceid.InvalidCallback("the notify body is not a UTF-8 form") from None
    outcome = faceid.handle_callback(verification_id, _first(form, "response"), _first(form, "sign"))
    return api.json_response(200, {"verification_id": verification_id, "status": outcome.record["status"]})


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


lambda_handler = api.http_handler(app)
