"""Data-subject rights (DESIGN §9, issue 14) against the whole local stack.

- A mixed population — every check (compare, four-factor, portrait, FaceID start), uploads pending
  and done, FaceID pending and done, replays stored under Idempotency-Keys — of one person and of two
  others: `POST /v1/subjects/search` returns exactly that person's records (paged, newest first),
  `GET /v1/verifications?client_reference=` exactly that reference's; `POST /v1/subjects/erase` erases
  every trace of that person (every table, the bucket and the queues scanned for the person's HMAC,
  masked forms, verification ids and sealed data: 0 left), replays answer 410 and pay nothing, the
  others' records are untouched, a `Subject Erased` event carries the count only, and a second call
  erases 0.
- The routes refuse what they do not define (unknown fields and query parameters, bad tokens, limits).

The people are sandbox registry identities no other suite uses, chosen so that none of their masked
forms is shared with anybody else in the registry (asserted), so a masked form found is theirs.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from sandbox.stack import h5
from tests.integration.test_personal_data import binaries, drain, scan_table
from tests.reliability import figures
from tests.stack import body

PERSON = "four_factor_102"
OTHERS = ("four_factor_103", "four_factor_104")


def masked_forms(person: Any) -> list[str]:
    from idv import privacy

    return [
        privacy.mask_name(person.name),
        privacy.mask_id_number(person.id_number),
        privacy.mask_mobile(person.mobile),
    ]


def id_hash(person: Any) -> str:
    from idv import privacy
    from idv.config import get_settings
    from idv.provider_secret import get_provider_secrets

    key = get_provider_secrets(get_settings().provider_secret_id).pii_hmac_key
    return privacy.hmac_id_number(key, person.id_number)


def assert_masks_are_unique(person: Any) -> None:
    from sandbox.providers import identities

    mine = masked_forms(person)
    for other in identities.IDENTITIES:
        if other.id_number != person.id_number:
            shared = set(mine) & set(masked_forms(other))
            assert not shared, f"{other.scenario} shares the masked form(s) {shared}: pick another person"


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"subject-{uuid.uuid4()}"}


def upload_selfie(ticket: dict[str, Any], image: bytes) -> None:
    upload = ticket["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("s.jpg", image, "image/jpeg")}, timeout=30
    )
    assert posted.status_code < 300, posted.text


def populate(api: Any, people: Any, who: Any, reference: str) -> dict[str, Any]:
    """Every kind of record for one person; returns their verification ids, keyed replays and pending tickets."""
    selfie = people.selfie_jpeg(who)
    made: dict[str, Any] = {"ids": [], "replays": []}

    def keyed(route: str, payload: dict[str, Any], status: int) -> dict[str, Any]:
        headers = key()
        answer = api.post(route, payload, headers=headers)
        assert answer.status_code == status, answer.text
        replay = api.post(route, payload, headers=headers)
        assert replay.json() == answer.json()  # stored under the key
        made["replays"].append((route, payload, headers))
        made["ids"].append(answer.json()["verification_id"])
        return answer.json()

    keyed("/v1/compare", body(who, selfie, client_reference=reference), 200)
    four = api.post("/v1/four-factor", body(who, selfie, mobile=who.mobile))
    assert four.status_code == 200, four.text
    made["ids"].append(four.json()["verification_id"])
    keyed("/v1/portrait", body(who, selfie), 200)
    keyed("/v1/faceid/sessions", body(who), 201)  # stays pending
    done = keyed("/v1/faceid/sessions", body(who, redirect_url="http://127.0.0.1/done"), 201)
    h5.complete(requests.Session(), done["verify_url"], outcome="pass")
    assert api.wait_for(done["verification_id"])["status"] != "pending"
    pending = keyed("/v1/uploads", body(who, check="compare"), 201)  # a ticket nobody uploaded to
    made["pending_ticket"] = pending["verification_id"]
    uploaded = keyed("/v1/uploads", body(who, check="portrait"), 201)
    upload_selfie(uploaded, selfie)
    assert api.wait_for(uploaded["verification_id"])["status"] == "completed"
    return made


def items_of(stack: Any, table: str) -> list[dict[str, Any]]:
    return scan_table(stack.client("dynamodb"), stack.resource_name(table))


def traces(stack: Any, needles: list[str], sealed: list[bytes]) -> dict[str, Any]:
    """Where any needle (or sealed blob) still is: every table, the bucket, the gateway's queues."""
    found: dict[str, list[str]] = {}
    scanned = {"items": 0, "objects": 0, "messages": 0}
    for table in ("VerificationsTable", "IdempotencyTable"):
        for item in items_of(stack, table):
            scanned["items"] += 1
            text = json.dumps(item, default=str, ensure_ascii=False)
            hit = [n for n in needles if n in text] + ["sealed data" for b in binaries(item) if b in sealed]
            if hit:
                found.setdefault(table, []).extend(hit)
    s3 = stack.client("s3")
    bucket = stack.resource_name("UploadBucket")
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        scanned["objects"] += 1
        data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8", "replace")
        hit = [n for n in needles if n in obj["Key"] + data]
        if hit:
            found.setdefault("UploadBucket", []).extend(hit)
    sqs = stack.client("sqs")
    for queue in ("UploadQueue", "UploadDLQ", "EventsDLQ"):
        for message in drain(sqs, stack.resource_name(queue), keep=True):
            scanned["messages"] += 1
            hit = [n for n in needles if n in message["Body"]]
            if hit:
                found.setdefault(queue, []).extend(hit)
    return {"found": found, **scanned}


def subject_erased_events(stack: Any) -> list[dict[str, Any]]:
    """The captured `Subject Erased` events (removed from the capture queue; every other event is put back
    as it was, for the session's personal-data scan)."""
    sqs = stack.client("sqs")
    url = stack.captured_events_queue
    erased, others = [], []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not batch:
            if erased:
                break
            time.sleep(0.2)
            continue
        for message in batch:
            event = json.loads(message["Body"])
            if event.get("detail-type") == "Subject Erased":
                erased.append(event)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                others.append(message)
    for message in others:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return erased


def search_all(api: Any, person: Any, limit: int) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    token, pages = None, 0
    while True:
        request: dict[str, Any] = {"id_number": person.id_number, "limit": limit}
        if token:
            request["next_token"] = token
        answer = api.post("/v1/subjects/search", request)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        token = page["next_token"]
        if token is None:
            return items, pages
        assert person.id_number not in token and id_hash(person) not in token  # opaque, nothing of the person


@pytest.fixture(scope="module")
def people():
    from sandbox.providers import identities

    return identities


@pytest.fixture(scope="module")
def population(api, stack, people):
    person = people.identity(PERSON)
    others = [people.identity(s) for s in OTHERS]
    for who in (person, *others):
        assert_masks_are_unique(who)
        # A clean slate: what earlier suites may have left of these people (none use them today).
        assert api.post("/v1/subjects/erase", {"id_number": who.id_number}).status_code == 200
    subject_erased_events(stack)
    reference = f"ref-{uuid.uuid4().hex[:12]}"
    mine = populate(api, people, person, reference)
    theirs = [populate(api, people, who, reference) for who in others]
    return {"person": person, "others": others, "reference": reference, "mine": mine, "theirs": theirs}


def test_search_returns_exactly_that_persons_records_newest_first(api, population):
    person, mine = population["person"], population["mine"]
    items, pages = search_all(api, person, limit=3)
    ids = [i["verification_id"] for i in items]
    assert sorted(ids) == sorted(mine["ids"]) and len(ids) == len(set(ids)) == 7
    assert ids == sorted(ids, reverse=True)  # verification ids are ULIDs: newest first
    assert pages == 3
    assert {i["check"] for i in items} == {"compare", "four_factor", "portrait", "faceid"}
    assert {i["status"] for i in items} >= {"pending", "completed"}
    for item in items:
        assert item["subject"]["id_number"] == masked_forms(person)[1]  # masked as always
        assert set(item) == set(json.loads(json.dumps(item))) and "id_hash" not in item and "pending_data" not in item
    one_page = api.post("/v1/subjects/search", {"id_number": person.id_number}).json()
    assert [i["verification_id"] for i in one_page["items"]] == ids and one_page["next_token"] is None
    figures.record("subject_rights_search", person_records=len(ids), pages_of_3=pages)


def test_listing_by_client_reference_is_that_references_records(api, population):
    reference = population["reference"]
    expected = [population["mine"]["ids"][0]] + [t["ids"][0] for t in population["theirs"]]
    answer = api.get("/v1/verifications", params={"client_reference": reference, "limit": 2})
    assert answer.status_code == 200, answer.text
    first = answer.json()
    assert first["next_token"]
    rest = api.get("/v1/verifications", params={"client_reference": reference, "next_token": first["next_token"]})
    ids = [i["verification_id"] for i in first["items"] + rest.json()["items"]]
    assert ids == sorted(expected, reverse=True)
    assert all(i["client_reference"] == reference for i in first["items"] + rest.json()["items"])
    assert api.get("/v1/verifications", params={"client_reference": "ref-nobody"}).json() == {
        "items": [],
        "next_token": None,
    }


VALID = "110105199003071239"  # a valid synthetic ID number (the README's example)


@pytest.mark.parametrize(
    ("method", "path", "payload", "params", "status", "code"),
    [
        ("post", "/v1/subjects/search", {"id_number": "110105199003071230"}, None, 422, "invalid_id_number"),
        ("post", "/v1/subjects/erase", {"id_number": VALID, "name": "张三"}, None, 400, "invalid_request"),
        ("post", "/v1/subjects/search", {"id_number": VALID, "limit": 0}, None, 400, "invalid_request"),
        ("post", "/v1/subjects/search", {"id_number": VALID, "next_token": "x!"}, None, 400, "invalid_request"),
        ("post", "/v1/subjects/erase", {}, None, 400, "invalid_request"),
        ("get", "/v1/verifications", None, {}, 400, "invalid_request"),
        ("get", "/v1/verifications", None, {"client_reference": "r", "id_number": "1"}, 400, "invalid_request"),
        ("get", "/v1/verifications", None, {"client_reference": "r", "limit": "101"}, 400, "invalid_request"),
        ("get", "/v1/verifications", None, {"client_reference": "r", "next_token": "bm9wZQ"}, 400, "invalid_request"),
    ],
)
def test_data_subject_routes_refuse_what_they_do_not_define(api, method, path, payload, params, status, code):
    answer = api.post(path, payload) if method == "post" else api.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert "110105199003071239" not in answer.text


def test_erase_removes_every_trace_of_the_person_and_nothing_else(api, stack, population):
    from tests.reliability.conftest import stored_item

    person, mine, theirs = population["person"], population["mine"], population["theirs"]
    before = {i["verification_id"]["S"]: i for i in items_of(stack, "VerificationsTable")}
    mine_items = [before[v] for v in mine["ids"]]
    sealed = [b for item in mine_items for b in binaries(item)]
    assert sealed, "the pending ticket's sealed data was not found before the erasure"
    their_items = {v: before[v] for t in theirs for v in t["ids"]}
    keys_before = {i["id"]["S"]: i for i in items_of(stack, "IdempotencyTable")}
    needles = [id_hash(person), *masked_forms(person), *mine["ids"]]
    assert traces(stack, needles, sealed)["found"], "the scan must see the person before the erasure"

    calls = stack.sandbox.calls()
    erased = api.post("/v1/subjects/erase", {"id_number": person.id_number})
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"erased": len(mine["ids"])}

    # Nothing of the person is left anywhere; a second erasure finds nothing.
    left = traces(stack, needles, sealed)
    assert left["found"] == {}, left["found"]
    assert api.post("/v1/subjects/erase", {"id_number": person.id_number}).json() == {"erased": 0}
    assert api.post("/v1/subjects/search", {"id_number": person.id_number}).json() == {"items": [], "next_token": None}
    for verification_id in mine["ids"]:
        assert api.get(f"/v1/verifications/{verification_id}").status_code == 404
    # Replays answer without the data and pay nothing.
    for route, payload, headers in mine["replays"]:
        replay = api.post(route, payload, headers=headers)
        assert replay.status_code == 410 and replay.json()["code"] == "verification_erased", replay.text
        assert not any(n in replay.text for n in needles)
    assert stack.sandbox.calls() == calls
    # The keys are tombstones (no fingerprint, no record id); nobody else's key changed.
    keys_after = {i["id"]["S"]: i for i in items_of(stack, "IdempotencyTable")}
    tombstones = [k for k in keys_after if keys_before.get(k) != keys_after[k]]
    assert len(tombstones) == len(mine["replays"])
    assert all(set(keys_after[k]) <= {"id", "state", "expiration"} for k in tombstones)
    assert set(keys_before) == set(keys_after)
    # Everyone else's records are exactly as they were.
    for verification_id, item in their_items.items():
        assert stored_item(stack, verification_id) == item, verification_id
    for other, made in zip(population["others"], theirs, strict=True):
        found, _ = search_all(api, other, limit=100)
        assert sorted(i["verification_id"] for i in found) == sorted(made["ids"])

    # The audit trail: one event per erasure request, the count only.
    events = subject_erased_events(stack)
    assert [e["detail"]["erased"] for e in events] == [len(mine["ids"]), 0]
    for event in events:
        assert set(event["detail"]) == {"erased", "erasure_id", "event_id", "erased_at"}
        assert event["source"] == "idv.gateway"
        assert not any(n in json.dumps(event, ensure_ascii=False) for n in needles)

    figures.record(
        "subject_rights_erasure",
        person_records_erased=erased.json()["erased"],
        keyed_replays_410=len(mine["replays"]),
        provider_calls_after=stack.sandbox.calls() - calls,
        others_records_untouched=len(their_items),
        items_scanned=left["items"],
        objects_scanned=left["objects"],
        messages_scanned=left["messages"],
        needles=len(needles) + len(sealed),
        hits=0,
    )
