"""GET/DELETE /v1/verifications/{verification_id} and POST /v1/uploads (presigned selfie upload)."""

from aws_lambda_powertools.event_handler import Response

from idv import api, claims, erasure, errors, records, uploads
from idv.config import get_settings
from idv.schemas import UploadRequest, UploadTicket, Verification

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


lambda_handler = api.http_handler(app)
