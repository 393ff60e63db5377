"""POST /v1/portrait: Apetime portrait verification (identity + face vs the ID photo)."""

from idv import api
from idv.schemas import PortraitRequest, Verification

app = api.new_resolver()


@app.post("/v1/portrait", summary="Identity and face vs the ID photo (Apetime)", responses=api.responses(Verification))
def portrait(body: PortraitRequest):
    return api.run_check_route(app, "portrait", body)


lambda_handler = api.http_handler(app)
