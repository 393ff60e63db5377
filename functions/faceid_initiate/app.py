"""POST /v1/faceid/sessions: start a Juhe H5 liveness session and return its verify_url."""

from idv import api, faceid
from idv.schemas import FaceIdSession, FaceIdSessionRequest

app = api.new_resolver()


@app.post(
    "/v1/faceid/sessions",
    summary="Start an H5 liveness session (Juhe FaceID)",
    responses=api.responses(FaceIdSession, "The pending session", status=201),
)
def create_session(body: FaceIdSessionRequest):
    base = api.base_url(app)
    return api.post_route(
        app, "faceid", lambda _payload, key, lease: faceid.start_session(body, base, key=key, lease=lease)
    )


lambda_handler = api.http_handler(app)
