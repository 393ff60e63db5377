"""Lambda events for the benchmarks, built from the sample events in `events/` (API Gateway REST
proxy v1, SQS, EventBridge schedule) with the bodies, ids and keys of the running local stack."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


@cache
def _sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in ("headers", "multiValueHeaders"):
        headers = event.get(key) or {}
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = value if key == "headers" else [value]
        event[key] = headers


def api_event(
    sample: str,
    *,
    body: Any = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """A REST proxy event shaped like `events/<sample>.json`, with a fresh request id."""
    event = copy.deepcopy(_sample(sample))
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        event["isBase64Encoded"] = False
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
        path = event["resource"]
        for name, value in path_parameters.items():
            path = path.replace("{" + name + "}", value)
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext'].get('stage', 'dev')}{path}"
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    _set_header(event, "Idempotency-Key", idempotency_key)
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    return event


def check_event(check: str, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    sample = {"compare": "compare", "four_factor": "four_factor", "portrait": "portrait"}[check]
    return api_event(sample, body=body, idempotency_key=idempotency_key)


def sqs_s3_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    """An SQS batch of one S3 ObjectCreated notification, as the event source delivers it."""
    event = copy.deepcopy(_sample("upload_worker"))
    record = event["Records"][0]
    notification = json.loads(record["body"])
    s3 = notification["Records"][0]["s3"]
    s3["bucket"]["name"] = bucket
    s3["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    s3["object"]["key"] = key
    s3["object"]["size"] = size
    notification["Records"][0]["awsRegion"] = "us-east-1"
    record["body"] = json.dumps(notification)
    record["messageId"] = str(uuid.uuid4())
    record["awsRegion"] = "us-east-1"
    return event


def schedule_event() -> dict[str, Any]:
    event = copy.deepcopy(_sample("reconciler"))
    event["id"] = str(uuid.uuid4())
    return event
