"""Session-wide scan (runs last): no raw ID number, name, mobile or image in any log line, stored item,
object left in the bucket, queue message or published event of the whole test session.

What is looked for: every sandbox identity's name (and registered name, and the middle-dot spellings
a caller may send), ID number (upper- and lower-case check character) and mobile number; images as
base64 (the opening of a JPEG, PNG, GIF, WebP or TIFF, a data: URL, a fragment from the middle of the
test selfies) and as raw bytes (JPEG, PNG, GIF, WebP magic at the start of an object, a binary
attribute or a message). The counts of what was scanned are reported in the reliability figures.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import CAPTURED_LOGS
from tests.reliability import figures

pytestmark = pytest.mark.last

# How every base64-encoded image of these formats starts.
BASE64_IMAGE_OPENINGS = {
    "/9j/": "base64 JPEG",
    "iVBORw0KGgo": "base64 PNG",
    "R0lGOD": "base64 GIF",
    "UklGR": "base64 RIFF/WebP",
    "SUkqAA": "base64 TIFF",
    "TU0AKg": "base64 TIFF",
    "data:image/": "data: URL",
}
IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"RIFF": "RIFF/WebP"}
MIDDLE_DOTS = ("•", "・", "．", ".", "‧", "･", "⋅", "∙")


def raw_values() -> list[str]:
    from sandbox.providers import identities as people

    values = []
    for person in people.IDENTITIES:
        for name in {person.name, person.real_name}:
            values.append(name)
            if "·" in name:
                values += [name.replace("·", dot) for dot in MIDDLE_DOTS]
        values += [person.id_number, person.id_number.lower()]
        if person.mobile:
            values.append(person.mobile)
    return sorted({v for v in values if v})


def image_fragments() -> dict[str, str]:
    """40 base64 characters from the middle of the selfies the suites send most (aligned to 3 bytes)."""
    from sandbox.providers import identities as people

    fragments = {}
    for scenario in ("match", "four_factor_100"):
        data = people.selfie_jpeg(people.identity(scenario))
        middle = (len(data) // 2) // 3 * 3
        fragments[base64.b64encode(data[middle : middle + 30]).decode()] = f"selfie of {scenario} (base64)"
    return fragments


def hits(text: str, values: list[str], fragments: dict[str, str]) -> list[str]:
    found = [v for v in values if v in text]
    found += [what for opening, what in BASE64_IMAGE_OPENINGS.items() if opening in text]
    found += [what for fragment, what in fragments.items() if fragment in text]
    return found


def binary_hits(data: bytes) -> list[str]:
    return [what for magic, what in IMAGE_MAGIC.items() if data.startswith(magic)]


def binaries(value: Any) -> list[bytes]:
    """Every binary attribute of a DynamoDB item (low-level form)."""
    if isinstance(value, dict):
        if set(value) == {"B"}:
            blob = value["B"]
            return [blob if isinstance(blob, bytes) else base64.b64decode(blob)]
        return [b for v in value.values() for b in binaries(v)]
    if isinstance(value, list):
        return [b for v in value for b in binaries(v)]
    return []


def scan_table(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def drain(sqs: Any, queue_url: str, *, keep: bool) -> list[dict[str, Any]]:
    """Every message of a queue (keep: left visible, for queues other consumers own)."""
    messages: dict[str, dict[str, Any]] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0 if keep else 1,
            VisibilityTimeout=0 if keep else 30,
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in messages]
        if not fresh:
            return list(messages.values())
        messages.update({m["MessageId"]: m for m in fresh})


def test_no_personal_data_in_logs_items_objects_or_events(stack):
    values = raw_values()
    fragments = image_fragments()
    assert values, "the sandbox registry must list its identities"
    assert len(CAPTURED_LOGS) > 20, "the session's logs were not captured"
    logs = "\n".join(CAPTURED_LOGS)
    assert hits(logs, values, fragments) == []

    ddb = stack.client("dynamodb")
    item_counts = {}
    from sandbox.stack import template as tpl

    tables = sorted(k for k, v in tpl.load_template()["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table")
    assert {"VerificationsTable", "IdempotencyTable"} <= set(tables)
    for table in tables:  # every table of the template (the money controls' counters and usage rows too)
        items = scan_table(ddb, stack.resource_name(table))
        item_counts[table] = len(items)
        assert hits(json.dumps(items, default=str, ensure_ascii=False), values, fragments) == [], table
        for item in items:
            for blob in binaries(item):
                assert binary_hits(blob) == [], f"an image in a binary attribute of {table}"

    s3 = stack.client("s3")
    bucket = stack.resource_name("UploadBucket")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    for obj in listed:
        answer = s3.get_object(Bucket=bucket, Key=obj["Key"])
        data = answer["Body"].read()
        assert binary_hits(data) == [], f"an uploaded selfie was left behind: {obj['Key']}"
        text = data.decode("utf-8", "replace") + json.dumps(answer.get("Metadata", {}), ensure_ascii=False)
        assert hits(obj["Key"] + text, values, fragments) == [], obj["Key"]

    sqs = stack.client("sqs")
    queued = []
    for queue in ("UploadQueue", "UploadDLQ", "EventsDLQ", "ReconcilerDLQ"):  # every queue of the template
        queued += drain(sqs, stack.resource_name(queue), keep=True)
    for message in queued:
        assert hits(message["Body"], values, fragments) == []

    events = [json.loads(m["Body"]) for m in drain(sqs, stack.captured_events_queue, keep=False)]
    assert events, "no Verification Completed event was captured"
    assert {e["detail-type"] for e in events} <= {"Verification Completed", "Subject Erased"}
    assert all(e["detail"]["status"] == "completed" for e in events if e["detail-type"] == "Verification Completed")
    erasures = [e["detail"] for e in events if e["detail-type"] == "Subject Erased"]
    assert all(set(d) == {"erased", "erasure_id", "event_id", "erased_at"} for d in erasures), erasures
    assert hits(json.dumps(events, ensure_ascii=False), values, fragments) == []

    figures.record(
        "personal_data_scan",
        log_lines=len(CAPTURED_LOGS),
        log_bytes=len(logs.encode()),
        verification_items=item_counts["VerificationsTable"],
        idempotency_items=item_counts["IdempotencyTable"],
        s3_objects=len(listed),
        queue_messages=len(queued),
        events=len(events),
        values_searched=len(values),
        image_patterns=len(BASE64_IMAGE_OPENINGS) + len(fragments) + len(IMAGE_MAGIC),
        hits=0,
    )
