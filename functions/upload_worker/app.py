"""SQS (S3 ObjectCreated on uploads/) → run the check for each uploaded selfie; partial batch failures.

Records of a batch run one after another, so provider concurrency is bounded by the event source's
MaximumConcurrency. A record whose check should be retried (rate limit, outage) is reported as a
batch item failure: SQS redelivers it, and after five receives it moves to the DLQ. A record is not
started when too little of the invocation is left to finish it: it is put back as a new message
(`uploads.defer`), so the deferral does not count as one of its five receives and a timeout cannot
cut a possibly billed check in half. A message carrying a result handed off after a storage failure
(`uploads.hand_off`) is stored.
"""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from idv import uploads
from idv.observability import logger, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def handle_record(record: SQSRecord, lambda_context=None) -> None:
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < uploads.MIN_REMAINING_MS:
        uploads.defer(record.body)
        logger.info("upload deferred to a new message", extra={"message_id": record.message_id})
        return
    handed_off = _handed_off(record.body)
    if handed_off is not None:
        outcome = uploads.finish_handed_off(handed_off)
        logger.info("upload processed", extra={"message_id": record.message_id, "outcome": outcome})
        return
    for bucket, key in uploads.s3_objects(record):
        outcome = uploads.process_object(bucket, key)
        logger.info("upload processed", extra={"message_id": record.message_id, "outcome": outcome})


def _handed_off(body: str):
    try:
        message = json.loads(body)
    except ValueError:
        return None
    return message.get(uploads.FINISH_MESSAGE) if isinstance(message, dict) else None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
