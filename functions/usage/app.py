"""GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD: what the deployment used and spent at the providers (DESIGN §8),
per day (UTC+8) x check x provider, from the usage rows the outbox's reader keeps (a Query per day)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from idv import api, controls, errors
from idv.schemas import UsageReport

app = api.new_resolver()
PARAMETERS = {"from", "to"}


@app.get(
    "/v1/usage",
    summary="Provider calls, charges, spend and decisions per day, check and provider",
    responses=api.responses(UsageReport, "The usage report", status=200),
)
def usage(
    first: Annotated[
        str | None, Query(alias="from", max_length=10, description="First day, YYYY-MM-DD (UTC+8)")
    ] = None,
    last: Annotated[
        str | None, Query(alias="to", max_length=10, description=f"Last day (at most {controls.MAX_REPORT_DAYS})")
    ] = None,
):
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - PARAMETERS)
    if unknown:
        raise errors.InvalidRequest(f"unknown query parameters: {', '.join(unknown)} (this route does not define them)")
    return api.json_response(200, controls.usage_report(first, last))


lambda_handler = api.http_handler(app)
