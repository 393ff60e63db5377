"""Session-wide scan (runs last): no raw ID number, name, mobile or image in any log line, stored item,
object left in the bucket or published event of the whole test session."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CAPTURED_LOGS

pytestmark = pytest.mark.last

JPEG_BASE64_PREFIX = "/9j/"  # every base64-encoded JPEG starts so


def raw_values() -> list[str]:
    from sandbox.providers import identities as people

    values = []
    for person in people.IDENTITIES:
        values += [person.name, person.id_number]
        if person.mobile:
            values.append(person.mobile)
    return [v for v in values if v]


def hits(text: str, values: list[str]) -> list[str]:
    found = [v for v in values if v in text]
    if JPEG_BASE64_PREFIX in text:
        found.append("base64 JPEG")
    return found


def test_no_personal_data_in_logs_items_objects_or_events(stack):
    values = raw_values()
    assert values, "the sandbox registry must list its identities"
    assert len(CAPTURED_LOGS) > 20, "the session's logs were not captured"
    logs = "\n".join(CAPTURED_LOGS)
    assert hits(logs, values) == []

    ddb = stack.client("dynamodb")
    for table in ("VerificationsTable", "IdempotencyTable"):
        items = ddb.scan(TableName=stack.resource_name(table))["Items"]
        assert hits(json.dumps(items, default=str, ensure_ascii=False), values) == [], table

    s3 = stack.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.resource_name("UploadBucket")).get("Contents", [])
    for obj in listed:
        data = s3.get_object(Bucket=stack.resource_name("UploadBucket"), Key=obj["Key"])["Body"].read()
        assert not data.startswith(b"\xff\xd8"), f"an uploaded selfie was left behind: {obj['Key']}"

    sqs = stack.client("sqs")
    events = []
    while True:
        batch = sqs.receive_message(QueueUrl=stack.captured_events_queue, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=1).get("Messages", [])
        if not batch:
            break
        events += [json.loads(m["Body"]) for m in batch]
    assert events, "no Verification Completed event was captured"
    assert {e["detail-type"] for e in events} == {"Verification Completed"}
    assert all(e["detail"]["status"] == "completed" for e in events)
    assert hits(json.dumps(events, ensure_ascii=False), values) == []
