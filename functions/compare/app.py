"""POST /v1/compare: Juhe face vs ID photo comparison (plain or AES, by JUHE_COMPARE_MODE)."""

from idv import api
from idv.schemas import CompareRequest, Verification

app = api.new_resolver()


@app.post("/v1/compare", summary="Compare a selfie with the ID photo (Juhe)", responses=api.responses(Verification))
def compare(body: CompareRequest):
    return api.run_check_route(app, "compare", body)


lambda_handler = api.http_handler(app)
