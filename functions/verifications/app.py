"""GET/DELETE /v1/verifications/{verification_id} and POST /v1/uploads (presigned selfie upload)."""

from aws_lambda_powertools.event_handler import Response

from idv import api, aws, clock, errors, records, uploads
from idv.config import get_settings
from idv.schemas import UploadRequest, UploadTicket, Verification

app = api.new_resolver()


def _repository() -> records.Repository:
    return records.Repository(get_settings().verifications_table)


@app.get("/v1/verifications/<verification_id>", summary="Read a verification", responses=api.responses(Verification))
def get_verification(verification_id: str):
    item = _repository().get(verification_id) if clock.is_verification_id(verification_id) else None
    if item is None:
        raise errors.NotFound("no such verification")
    return api.json_response(200, records.public_view(item))


@app.delete(
    "/v1/verifications/<verification_id>",
    summary="Erase a verification (right to deletion)",
    responses={204: {"description": "Erased (record and any uploaded object)"}, **api.problems(404, 422, 500)},
)
def delete_verification(verification_id: str):
    item = _repository().delete(verification_id) if clock.is_verification_id(verification_id) else None
    if item is None:
        raise errors.NotFound("no such verification")
    aws.client("s3").delete_object(Bucket=get_settings().upload_bucket, Key=uploads.object_key(verification_id))
    return Response(status_code=204, body="")


@app.post(
    "/v1/uploads",
    summary="Start a check on a selfie uploaded to S3",
    responses=api.responses(UploadTicket, "The upload ticket", status=201),
)
def create_upload(body: UploadRequest):
    payload = app.current_event.json_body

    def work() -> dict:
        return {"status": 201, "body": uploads.create_upload(payload)}

    return api.answer(api.idempotent_route(app, "upload", payload, work))


lambda_handler = api.http_handler(app)
