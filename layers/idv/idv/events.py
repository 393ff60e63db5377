"""`Verification Completed` events: the verifications table's stream is the outbox.

A record's transition pending → completed is written once (a conditional write) and that write is
the event: DynamoDB Streams deliver it at least once to `event_publisher` (a Lambda event source
mapping filtered to that transition, with retries, bisection and an on-failure queue), which puts it
on the bus. A failed publish is retried by the stream, never lost. `event_id` (verification id +
status) is the same on every delivery, so consumers de-duplicate on it.
"""

from __future__ import annotations

import json
from typing import Any

from idv import aws, records

SOURCE = "idv.gateway"
DETAIL_TYPE = "Verification Completed"


class PublishFailed(Exception):
    """EventBridge refused the entry: the stream delivers the record again."""


def event_id(record: dict[str, Any]) -> str:
    return f"{record['verification_id']}:{record['status']}"


def detail(item: dict[str, Any]) -> dict[str, Any]:
    """The event's detail: the public (masked) record and its stable `event_id`."""
    public = records.public_view(item)
    return {**public, "event_id": event_id(public)}


def publish_completed(item: dict[str, Any], bus_name: str) -> None:
    """Put one `Verification Completed` event; raises when EventBridge did not take it."""
    from idv.config import require

    answer = aws.client("events").put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(detail(item), ensure_ascii=False),
                "EventBusName": require(bus_name, "EVENT_BUS_NAME"),
                "Resources": [],
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        code = (answer.get("Entries") or [{}])[0].get("ErrorCode")
        raise PublishFailed(f"EventBridge refused the event ({code})")
