"""GET/DELETE /v1/verifications/{verification_id} and POST /v1/uploads (presigned selfie upload), and the
data-subject routes (DESIGN §9): GET /v1/verifications?client_reference=, POST /v1/subjects/search and
POST /v1/subjects/erase. This is the one function allowed to read the person and reference indexes and
to delete."""

import base64
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from idv import api, claims, erasure, errors, privacy, records, uploads, validation
from idv.config import get_settings
from idv.provider_secret import get_provider_secrets
from idv.schemas import (
    SubjectEraseRequest,
    SubjectErasure,
    SubjectSearchRequest,
    UploadRequest,
    UploadTicket,
    Verification,
    VerificationPage,
)

app = api.new_resolver()


def _repository() -> records.Repository:
    return records.Repository(get_settings().verifications_table)


@app.get("/v1/verifications/<verification_id>", summary="Read a verification", responses=api.responses(Verification))
def get_verification(verification_id: str):
    item = _repository().get(verification_id) if records.is_verification_id(verification_id) else None
    if item is None:
        raise errors.NotFound("no such verification")
    if claims.stranded(item) and "pending_data" not in item:  # upload claims are the worker's to settle
        claims.settle_interrupted(item)
        item = _repository().get(verification_id) or item
    return api.json_response(200, records.public_view(item))


@app.delete(
    "/v1/verifications/<verification_id>",
    summary="Erase a verification (right to deletion)",
    responses={204: {"description": "Erased (record and any uploaded object)"}, **api.problems(404, 422, 500)},
)
def delete_verification(verification_id: str):
    if not records.is_verification_id(verification_id) or not erasure.erase_verification(verification_id):
        raise errors.NotFound("no such verification")
    return Response(status_code=204, body="")


@app.post(
    "/v1/uploads",
    summary="Start a check on a selfie uploaded to S3",
    responses=api.responses(UploadTicket, "The upload ticket", status=201),
)
def create_upload(body: UploadRequest):
    return api.post_route(app, "upload", lambda _payload, key, lease: uploads.create_upload(body, key=key, lease=lease))


# ---------------------------------------------------------------- data-subject rights (DESIGN §9)
LIST_PARAMETERS = {"client_reference", "limit", "next_token"}


def _encode_token(verification_id: str | None) -> str | None:
    """The opaque page token: where the next page starts (never the index key: no HMAC leaves)."""
    if verification_id is None:
        return None
    return base64.urlsafe_b64encode(f"p1:{verification_id}".encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        text = ""
    verification_id = text[3:] if text.startswith("p1:") else ""
    if not (8 <= len(verification_id) <= 32 and verification_id.isascii() and verification_id.isalnum()):
        raise errors.InvalidRequest("next_token is not a token this API returned")
    return verification_id


def _page(index: str, value: str, limit: int, next_token: str | None) -> Response:
    items, last = _repository().page(index, value, limit=limit, after=_decode_token(next_token))
    return api.json_response(200, {"items": items, "next_token": _encode_token(last)})


def _id_hash(id_number: str) -> str:
    secret = get_provider_secrets(get_settings().provider_secret_id)
    return privacy.hmac_id_number(secret.pii_hmac_key, id_number)


@app.get(
    "/v1/verifications",
    summary="List the verifications of a client_reference, newest first",
    responses=api.responses(VerificationPage, "A page of records", status=200),
)
def list_verifications(
    client_reference: Annotated[str, Query(min_length=1, max_length=128, description="Your client_reference")],
    limit: Annotated[int, Query(ge=1, le=records.PAGE_LIMIT_MAX, description="Most records in one page")] = 50,
    next_token: Annotated[str | None, Query(max_length=256, description="From the previous page")] = None,
):
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - LIST_PARAMETERS)
    if unknown:
        raise errors.InvalidRequest(f"unknown query parameters: {', '.join(unknown)} (this route does not define them)")
    reference = validation.validate_client_reference(client_reference)
    if reference is None:
        raise errors.InvalidRequest("client_reference is required")
    return _page(records.REFERENCE_INDEX, reference, limit, next_token)


@app.post(
    "/v1/subjects/search",
    summary="Every verification of one person (right to know), newest first",
    responses=api.responses(VerificationPage, "A page of records", status=200),
)
def search_subject(body: SubjectSearchRequest):
    return _page(records.SUBJECT_INDEX, _id_hash(body.id_number), body.limit, body.next_token)


@app.post(
    "/v1/subjects/erase",
    summary="Erase every verification of one person and its copies (right to deletion)",
    responses=api.responses(SubjectErasure, "How many records were erased", status=200),
)
def erase_subject(body: SubjectEraseRequest):
    return api.json_response(200, {"erased": erasure.erase_subject(_id_hash(body.id_number))})


lambda_handler = api.http_handler(app)
