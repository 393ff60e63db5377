"""POST /v1/four-factor: Juhe four-factor check (name, ID number, mobile, face)."""

from idv import api
from idv.schemas import FourFactorRequest, Verification

app = api.new_resolver()


@app.post("/v1/four-factor", summary="Name, ID, mobile and face (Juhe)", responses=api.responses(Verification))
def four_factor(body: FourFactorRequest):
    return api.run_check_route(app, "four_factor", body)


lambda_handler = api.http_handler(app)
