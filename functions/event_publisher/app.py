"""DynamoDB Streams (the verifications table) → `Verification Completed` on the bus: the outbox's reader.

The event source mapping passes only pending → completed transitions (its filter), retries a record
that failed (partial batch failures, bisection) and sends what never succeeds to the on-failure
queue, so an event is published at least once and never lost to a failed PutEvents.

Its filter also passes pending → error and pending → expired. For every finished record it writes the
record's usage row (GET /v1/usage: calls, charges, decision; DESIGN §8), and for a completed one its
dedupe item (an identical request without a key within DEDUPE_WINDOW_SECONDS gets this answer), both
idempotent puts, before the event — unless the record has been erased since (one consistent read).
Errors and expiries publish no event.
"""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from idv import claims, controls, events, records
from idv.config import get_settings
from idv.observability import logger, tracer

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def handle_record(record: DynamoDBRecord) -> None:
    item = records.from_stream_image(record.raw_event["dynamodb"]["NewImage"])
    controls.remember_usage(item)  # every finished record: its calls, charges and decision (GET /v1/usage)
    if item.get("status") != "completed":
        return  # errors and expiries publish nothing
    if claims.repository().get(item["verification_id"]) is None:
        # Erased since (a stream delivery may come late, up to 24 h while the bus fails): its answer is
        # neither published nor kept for an identical request (DESIGN §9: nothing replays erased data).
        logger.info("erased record not published", extra={"verification_id": item.get("verification_id")})
        return
    controls.remember_completed(item)
    events.publish_completed(item, get_settings().event_bus_name)
    logger.info("event published", extra={"verification_id": item.get("verification_id")})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
