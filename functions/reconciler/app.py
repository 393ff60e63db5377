"""Scheduled: settle FaceID sessions whose time is up and whose callback never came."""

from idv import faceid
from idv.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return faceid.reconcile()
