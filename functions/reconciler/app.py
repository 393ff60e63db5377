"""Scheduled: settle FaceID sessions whose time is up and whose callback never came, and expire upload
tickets abandoned without an upload (their sealed data goes within the hour, DESIGN §9)."""

from idv import faceid, uploads
from idv.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    # The sweep first and on its own: a failing FaceID run (it raises, so the schedule shows it) never
    # keeps sealed data past its hour. Each job isolates its own items.
    try:
        swept = uploads.expire_abandoned()
    except Exception as exc:
        logger.exception("abandoned upload tickets not swept", extra={"error": type(exc).__name__})
        swept = {"failed": 1}
    return {**faceid.reconcile(), "abandoned_uploads": swept}
