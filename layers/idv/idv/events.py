"""`Verification Completed` events on the EventBridge bus, carrying the public (masked) record."""

from __future__ import annotations

import json
from typing import Any

from idv import aws
from idv.observability import logger

SOURCE = "idv.gateway"
DETAIL_TYPE = "Verification Completed"


def publish_completed(record: dict[str, Any], bus_name: str) -> None:
    """Put one event; a failure is logged, not raised (the record is already stored and readable)."""
    if not bus_name:
        logger.warning(
            "event not published: EVENT_BUS_NAME is not set",
            extra={"verification_id": record.get("verification_id")},
        )
        return
    try:
        answer = aws.client("events").put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(record, ensure_ascii=False),
                    "EventBusName": bus_name,
                    "Resources": [],
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            logger.warning("event not published", extra={"verification_id": record.get("verification_id")})
    except Exception as exc:  # publishing must never undo a stored result
        logger.warning(
            "event not published",
            extra={"verification_id": record.get("verification_id"), "error": type(exc).__name__},
        )
