"""Money controls (issue 13, DESIGN §8): the per-person daily limit, the daily spend cap (reserve, then
settle), deduplication without a key — over every billable route, through the local API, and across
processes at the limits.

The session stack runs with the controls off (tests/conftest.py); each test here switches them on for
itself (`controls(...)`: the environment + `idv.reset()`, as a new container would read it) and
starts from an empty USAGE_TABLE.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from sandbox.stack import template as tpl
from sandbox.stack.local_api import build_event
from tests.reliability import figures
from tests.reliability.conftest import ROUTES, SANDBOX_API, client
from tests.reliability.procs import Pool, Task, distinct_pids, start_spread
from tests.stack import body

SUITE = "money_controls"
CONTROL_VARIABLES = ("SUBJECT_DAILY_LIMIT", "DEDUPE_WINDOW_SECONDS", "DAILY_SPEND_LIMIT", "PROVIDER_PRICES")
PRICES = {"compare": "0.60", "four_factor": "1.00", "portrait": "0.50", "faceid": "1.50"}
BILLABLE = ("compare", "four_factor", "portrait", "faceid", "upload")
PROCESSES = 50


def clear_usage(stack: Any) -> None:
    ddb = client(stack, "dynamodb")
    for name in ("UsageTable", "UsageReportTable"):
        table = stack.resource_name(name)
        for page in ddb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk, sk"):
            for item in page["Items"]:
                ddb.delete_item(TableName=table, Key=item)


@pytest.fixture
def controls(stack):
    """controls(limit=, window=, cap=): the money controls as this test wants them (restored after)."""
    from sandbox.stack.local import reset_layer_caches

    saved = {name: os.environ.get(name) for name in CONTROL_VARIABLES}
    clear_usage(stack)

    def switch(limit: int = 0, window: int = 0, cap: str = "") -> dict[str, str]:
        env = {
            "SUBJECT_DAILY_LIMIT": str(limit),
            "DEDUPE_WINDOW_SECONDS": str(window),
            "DAILY_SPEND_LIMIT": cap,
            "PROVIDER_PRICES": json.dumps(PRICES),
        }
        os.environ.update(env)
        reset_layer_caches()
        return env

    yield switch
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_layer_caches()
    clear_usage(stack)


def payload(people, check: str, scenario: str = "match", marker: str | None = None, **extra: Any) -> dict[str, Any]:
    person = people.identity(scenario)
    if check == "four_factor" or (check == "upload" and extra.get("check") == "four_factor"):
        extra.setdefault("mobile", person.mobile)
    if check == "faceid":
        extra.setdefault("redirect_url", "http://127.0.0.1/done")
    image = None if check in ("faceid", "upload") else people.selfie_jpeg(person)
    if check == "upload":
        extra.setdefault("check", "compare")
    return body(person, image, client_reference=marker or f"mc-{uuid.uuid4().hex[:12]}", **extra)


def route(check: str) -> str:
    return "/v1/uploads" if check == "upload" else ROUTES[check]


def ok_status(check: str) -> int:
    return 201 if check in ("faceid", "upload") else 200


def records_with(stack, marker: str) -> list[dict[str, Any]]:
    return client(stack, "dynamodb").scan(
        TableName=stack.resource_name("VerificationsTable"),
        FilterExpression="client_reference = :m",
        ExpressionAttributeValues={":m": {"S": marker}},
    )["Items"]


def usage_item(stack, pk: str, sk: str) -> dict[str, Any] | None:
    return (
        client(stack, "dynamodb")
        .get_item(
            TableName=stack.resource_name("UsageTable"), Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        .get("Item")
    )


def today() -> str:
    from idv import controls

    return controls.day_of(time.time())


def reserved_fen(stack) -> int:
    found = usage_item(stack, "spend", today())
    return int(found["reserved_fen"]["N"]) if found else 0


def assert_refused(answer: requests.Response, code: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code
    retry_after = int(answer.headers["Retry-After"])
    from idv import controls

    expected = controls.seconds_to_next_day(time.time())
    assert 0 < retry_after <= 86400 and abs(retry_after - expected) <= 5


# ------------------------------------------------------------------ the per-person daily limit


@pytest.mark.parametrize("check", BILLABLE)
def test_the_person_limit_refuses_every_billable_route_before_the_call(api, stack, people, ledger, controls, check):
    controls(limit=2)
    for _ in range(2):
        first = api.post(route(check), payload(people, check))
        assert first.status_code == ok_status(check), first.text
    marker = f"mc-refused-{uuid.uuid4().hex[:8]}"
    delta = ledger()
    refused = api.post(route(check), payload(people, check, marker=marker))
    assert_refused(refused, "subject_rate_limited")
    assert delta.calls() == 0  # no provider call
    assert records_with(stack, marker) == []  # no record written
    count = usage_item(stack, f"subject#{_id_hash(people.identity('match').id_number)}", today())
    assert count is not None and int(count["count"]["N"]) == 2  # the refusal counted nothing
    other = api.post(route(check), payload(people, check, scenario="minority_name"))
    assert other.status_code == ok_status(check), other.text  # another person is not limited


def _id_hash(id_number: str) -> str:
    from idv import privacy
    from idv.config import get_settings
    from idv.provider_secret import get_provider_secrets

    return privacy.hmac_id_number(get_provider_secrets(get_settings().provider_secret_id).pii_hmac_key, id_number)


def test_one_count_per_person_across_every_route(api, people, ledger, controls):
    controls(limit=len(BILLABLE))
    for check in BILLABLE:
        answer = api.post(route(check), payload(people, check))
        assert answer.status_code == ok_status(check), (check, answer.text)
    delta = ledger()
    for check in BILLABLE:
        assert_refused(api.post(route(check), payload(people, check)), "subject_rate_limited")
    assert delta.calls() == 0


def test_replays_do_not_count_and_the_upload_worker_is_never_refused(api, stack, people, controls):
    controls(limit=1)
    person = people.identity("match")
    key = {"Idempotency-Key": f"mc-{uuid.uuid4()}"}
    request = payload(people, "upload")
    ticket = api.post("/v1/uploads", request, headers=key)
    assert ticket.status_code == 201, ticket.text
    again = api.post("/v1/uploads", request, headers=key)
    assert again.status_code == 201 and again.json() == ticket.json()  # a replay: not refused, not counted
    data = ticket.json()
    posted = requests.post(
        data["upload"]["url"],
        data=data["upload"]["fields"],
        files={"file": ("selfie.jpg", people.selfie_jpeg(person), "image/jpeg")},
        timeout=30,
    )
    assert posted.status_code < 300
    record = api.wait_for(data["verification_id"])
    assert record["status"] == "completed" and record["decision"] == "pass"  # the worker ran: counted at the ticket
    assert_refused(api.post("/v1/compare", payload(people, "compare")), "subject_rate_limited")


# ------------------------------------------------------------------ the daily spend cap


@pytest.mark.parametrize("check", BILLABLE)
def test_the_spend_cap_refuses_every_billable_route_before_the_call(api, stack, people, ledger, controls, check):
    priced = "compare" if check == "upload" else check
    controls(cap=PRICES[priced])  # room for exactly one check
    first = api.post(route(check), payload(people, check))
    assert first.status_code == ok_status(check), first.text
    assert reserved_fen(stack) == int(float(PRICES[priced]) * 100 + 0.5)
    marker = f"mc-refused-{uuid.uuid4().hex[:8]}"
    delta = ledger()
    refused = api.post(route(check), payload(people, check, scenario="minority_name", marker=marker))
    assert_refused(refused, "spend_limit_reached")
    assert delta.calls() == 0 and records_with(stack, marker) == []
    assert reserved_fen(stack) == int(float(PRICES[priced]) * 100 + 0.5)  # the refusal reserved nothing


def test_a_call_that_was_not_charged_gives_its_price_back(api, stack, people, ledger, controls):
    controls(cap="0.60")
    delta = ledger()
    answer = api.post("/v1/compare", payload(people, "compare", scenario="not_found"))  # 226402: not charged
    assert answer.status_code == 200 and answer.json()["charged"] is False, answer.text
    assert delta.calls() == 1 and delta.charged() == 0
    assert reserved_fen(stack) == 0  # released
    again = api.post("/v1/compare", payload(people, "compare"))
    assert again.status_code == 200 and again.json()["charged"] is True
    assert reserved_fen(stack) == 60
    assert_refused(api.post("/v1/compare", payload(people, "compare")), "spend_limit_reached")


def test_a_call_of_unknown_charge_keeps_its_reservation(api, stack, people, controls, short_read_timeout):
    controls(cap="1.20")
    stack.sandbox.set_fault("read_timeout", "verifyface")
    answer = api.post("/v1/compare", payload(people, "compare"))
    assert answer.status_code == 504, answer.text
    assert reserved_fen(stack) == 60  # unknown counts as charged
    stack.sandbox.clear_faults()


def test_a_price_above_the_cap_refuses_at_once(api, people, ledger, controls):
    controls(cap="0.10")
    delta = ledger()
    assert_refused(api.post("/v1/compare", payload(people, "compare")), "spend_limit_reached")
    assert delta.calls() == 0


# ------------------------------------------------------------------ concurrency across processes


@pytest.fixture(scope="module")
def pool(stack):
    with Pool(PROCESSES) as workers:
        yield workers


def compare_event(stack, person_payload: dict[str, Any]) -> dict[str, Any]:
    route_ = next(r for r in tpl.routes(stack.template) if r.path == "/v1/compare" and r.method == "POST")
    host = stack.api_url.split("//", 1)[1]
    headers = {"content-type": "application/json", "x-api-key": stack.api_key}
    data = json.dumps(person_payload).encode()
    return build_event(route_, "POST", "/v1/compare", "", headers, data, {}, host, "127.0.0.1")


def race(stack, pool, env: dict[str, str], events: list[dict[str, Any]]) -> tuple[Counter[int], list[Any]]:
    results = pool.run([Task("functions/compare", e, env=env, label="compare") for e in events], timeout=300)
    assert distinct_pids(results) == PROCESSES
    statuses: Counter[int] = Counter()
    bodies = []
    for result in results:
        assert result.ok, result.value
        status, _headers, answer = result.answer()
        statuses[status] += 1
        bodies.append(answer)
    return statuses, [start_spread(results)]


@pytest.mark.slow
def test_50_processes_at_the_spend_cap_make_exactly_10_calls(stack, people, ledger, controls, pool):
    env = controls(cap="6.00")  # compare costs 0.60: room for 10
    scenarios = ["match", "minority_name"]
    events = [compare_event(stack, payload(people, "compare", scenario=scenarios[i % 2])) for i in range(PROCESSES)]
    delta = ledger()
    statuses, spread = race(stack, pool, env, events)
    assert statuses == {200: 10, 429: PROCESSES - 10}, statuses
    assert delta.calls("verifyface") == 10 and delta.calls() == 10 and delta.charged() == 10
    assert reserved_fen(stack) == 600  # never above the cap
    figures.record(
        SUITE,
        cap_processes=PROCESSES,
        cap_room=10,
        cap_provider_calls=delta.calls(),
        cap_reserved_fen=reserved_fen(stack),
        cap_start_spread_ms=round(spread[0] * 1000, 1),
    )


@pytest.mark.slow
def test_50_processes_at_the_person_limit_make_exactly_10_calls(stack, people, ledger, controls, pool):
    env = controls(limit=10)
    events = [compare_event(stack, payload(people, "compare")) for _ in range(PROCESSES)]
    delta = ledger()
    statuses, spread = race(stack, pool, env, events)
    assert statuses == {200: 10, 429: PROCESSES - 10}, statuses
    assert delta.calls() == 10
    count = usage_item(stack, f"subject#{_id_hash(people.identity('match').id_number)}", today())
    assert count is not None and int(count["count"]["N"]) == 10
    figures.record(
        SUITE,
        limit_processes=PROCESSES,
        limit=10,
        limit_provider_calls=delta.calls(),
        limit_start_spread_ms=round(spread[0] * 1000, 1),
    )


# ------------------------------------------------------------------ deduplication without a key


def wait_for_dedupe_item(stack, verification_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The dedupe item the outbox's reader writes once the record completed (DynamoDB Streams → Lambda)."""
    deadline = time.monotonic() + timeout
    while True:
        items = client(stack, "dynamodb").scan(
            TableName=stack.resource_name("UsageTable"),
            FilterExpression="verification_id = :v",
            ExpressionAttributeValues={":v": {"S": verification_id}},
        )["Items"]
        if items:
            return items[0]
        assert time.monotonic() < deadline, "the dedupe item was not written"
        time.sleep(0.1)


def completed_first(api, stack, request: dict[str, Any], path: str = "/v1/compare") -> dict[str, Any]:
    first = api.post(path, request)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["status"] == "completed"
    wait_for_dedupe_item(stack, answer["verification_id"])
    return answer


@pytest.mark.parametrize("check", ["compare", "four_factor", "portrait"])
def test_an_identical_request_gets_the_first_answer_without_a_call(api, stack, people, ledger, controls, check):
    controls(window=600)
    request = payload(people, check)
    first = completed_first(api, stack, request, ROUTES[check])
    item = wait_for_dedupe_item(stack, first["verification_id"])
    assert item["pk"]["S"].startswith("dedupe#") and len(item["pk"]["S"]) == len("dedupe#") + 64  # an HMAC
    delta = ledger()
    for _ in range(3):
        again = api.post(ROUTES[check], request)
        assert again.status_code == 200 and again.json() == first  # the same record, the same verification_id
    assert delta.calls() == 0


DIFFERENCES = {
    "image": lambda people, p: {**p, "image": body(people.identity("match"), people.selfie_jpeg("match", 1))["image"]},
    "threshold": lambda people, p: {**p, "threshold": 75},
    "person": lambda people, p: {
        **p,
        **{k: body(people.identity("minority_name"))[k] for k in ("name", "id_number")},
        "image": body(people.identity("minority_name"), people.selfie_jpeg(people.identity("minority_name")))["image"],
    },
    "client_reference": lambda people, p: {**p, "client_reference": p["client_reference"] + "-2"},
    "consent": lambda people, p: {**p, "consent": {"granted": True, "text_version": "2026-02"}},
}


@pytest.mark.parametrize("field", sorted(DIFFERENCES))
def test_each_differing_field_is_a_new_call(api, stack, people, ledger, controls, field):
    controls(window=600)
    request = payload(people, "compare")
    first = completed_first(api, stack, request)
    delta = ledger()
    other = api.post("/v1/compare", DIFFERENCES[field](people, request))
    assert other.status_code == 200, other.text
    assert other.json()["verification_id"] != first["verification_id"]
    assert delta.calls("verifyface") == 1


def test_the_compare_mode_is_part_of_the_request(api, stack, people, ledger, controls):
    from sandbox.stack.local import reset_layer_caches

    controls(window=600)
    request = payload(people, "compare")
    first = completed_first(api, stack, request)
    saved = os.environ.get("JUHE_COMPARE_MODE")
    os.environ["JUHE_COMPARE_MODE"] = "aes"
    reset_layer_caches()
    try:
        delta = ledger()
        other = api.post("/v1/compare", request)
        assert other.status_code == 200 and other.json()["verification_id"] != first["verification_id"], other.text
        assert delta.calls() == 1
    finally:
        os.environ["JUHE_COMPARE_MODE"] = saved or "plain"
        reset_layer_caches()


def test_a_four_factor_mobile_is_part_of_the_request(api, stack, people, ledger, controls):
    controls(window=600)
    request = payload(people, "four_factor")
    first = completed_first(api, stack, request, "/v1/four-factor")
    delta = ledger()
    other = api.post("/v1/four-factor", {**request, "mobile": "13900000000"})
    assert other.status_code == 200 and other.json()["verification_id"] != first["verification_id"]
    assert delta.calls() == 1


def test_an_error_answer_is_never_reused(api, stack, people, ledger, controls):
    controls(window=600)
    request = payload(people, "compare")
    stack.sandbox.set_fault("http_500", "verifyface")
    failed = api.post("/v1/compare", request)
    assert failed.status_code >= 500, failed.text
    time.sleep(0.5)  # the outbox's reader would have written a dedupe item by now (it must not)
    delta = ledger()
    again = api.post("/v1/compare", request)
    assert again.status_code == 200 and again.json()["verification_id"] != failed.json().get("verification_id")
    assert delta.calls() == 1


def test_a_dedupe_hit_is_not_counted_and_a_refusal_still_dedupes(api, stack, people, ledger, controls):
    controls(limit=1, window=600, cap="0.60")
    request = payload(people, "compare")
    first = completed_first(api, stack, request)
    delta = ledger()
    again = api.post("/v1/compare", request)
    assert again.status_code == 200 and again.json() == first  # at the limit and the cap: still the first answer
    assert_refused(api.post("/v1/compare", payload(people, "compare")), "subject_rate_limited")
    assert delta.calls() == 0
    assert reserved_fen(stack) == 60


def test_the_window_ends(api, stack, people, ledger, controls):
    controls(window=1)
    request = payload(people, "compare")
    first = completed_first(api, stack, request)
    time.sleep(2.2)
    delta = ledger()
    later = api.post("/v1/compare", request)
    assert later.status_code == 200 and later.json()["verification_id"] != first["verification_id"]
    assert delta.calls() == 1


def test_a_request_with_a_key_is_not_deduplicated(api, stack, people, ledger, controls):
    """An Idempotency-Key says which requests are the same; a new key is a new check."""
    controls(window=600)
    request = payload(people, "compare")
    first = completed_first(api, stack, request)
    delta = ledger()
    keyed = api.post("/v1/compare", request, headers={"Idempotency-Key": f"mc-{uuid.uuid4()}"})
    assert keyed.status_code == 200 and keyed.json()["verification_id"] != first["verification_id"]
    assert delta.calls() == 1


@pytest.mark.parametrize("how", ["delete", "subject"])
def test_an_erased_answer_is_never_reused(api, stack, people, ledger, controls, how):
    controls(window=600)
    person = people.identity("face_review")  # a person of this test alone (its erasure takes all of theirs)
    request = body(person, people.selfie_jpeg(person), client_reference=f"mc-{uuid.uuid4().hex[:12]}")
    first = completed_first(api, stack, request)
    vid = first["verification_id"]
    if how == "delete":
        assert api.delete(f"/v1/verifications/{vid}").status_code == 204
    else:
        erased = api.post("/v1/subjects/erase", {"id_number": person.id_number})
        assert erased.status_code == 200 and erased.json()["erased"] >= 1
    leftover = client(stack, "dynamodb").scan(
        TableName=stack.resource_name("UsageTable"),
        FilterExpression="verification_id = :v",
        ExpressionAttributeValues={":v": {"S": vid}},
    )["Items"]
    assert leftover == []  # the dedupe copy went with the record
    delta = ledger()
    again = api.post("/v1/compare", request)
    assert again.status_code == 200 and again.json()["verification_id"] != vid
    assert delta.calls() == 1


# ------------------------------------------------------------------ the usage report


def usage_today(api) -> dict[str, Any]:
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    answer = api.get(f"/v1/usage?from={day}&to={day}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def quiet(api, still: float = 1.0, timeout: float = 15.0) -> None:
    """Until today's report stops changing for `still` seconds."""
    deadline = time.monotonic() + timeout
    last = usage_today(api)
    while time.monotonic() < deadline:
        time.sleep(still)
        now = usage_today(api)
        if now == last:
            return
        last = now


def test_the_usage_report_equals_the_sandbox_ledger_for_a_mixed_run(
    api, stack, people, ledger, controls, short_read_timeout
):
    from tests.reliability.test_callback_forgery import start, submit

    controls()  # the controls off; the usage rows are kept whatever they are
    quiet(api)  # the rows of earlier tests' checks have landed (the stream's reader lags a little)
    clear_usage(stack)
    delta = ledger()
    decisions: Counter[tuple[str, str]] = Counter()

    def run(check: str, scenario: str, fault: str | None = None) -> requests.Response:
        if fault:
            stack.sandbox.set_fault(fault, SANDBOX_API[check])
        answer = api.post(route(check), payload(people, check, scenario=scenario))
        stack.sandbox.clear_faults()
        if answer.status_code == 200 and answer.json().get("status") == "completed":
            decisions[(check, answer.json()["decision"])] += 1
        return answer

    for scenario in ("match", "face_mismatch", "not_found", "face_review"):
        run("compare", scenario)
    assert run("compare", "match", "http_500").status_code >= 500  # an error, not charged
    assert run("compare", "match", "read_timeout").status_code == 504  # unknown charge
    for scenario in ("four_factor_100", "four_factor_108", "four_factor_103"):
        run("four_factor", scenario)
    assert run("four_factor", "four_factor_100", "rate_limit").status_code == 200  # retried: two calls, one charge
    for scenario in ("match", "face_review", "face_mismatch"):
        run("portrait", scenario)
    session = start(api, people)  # FaceID: the start and its searches
    callback, query = submit(session["verify_url"], "pass")
    requests.get(callback, params=query, allow_redirects=False, timeout=30)
    record = api.wait_for(session["verification_id"])
    assert record["status"] == "completed"
    decisions[("faceid", record["decision"])] += 1
    ticket = api.post("/v1/uploads", payload(people, "upload"))  # an upload checked by the worker
    data = ticket.json()
    requests.post(
        data["upload"]["url"],
        data=data["upload"]["fields"],
        files={"file": ("selfie.jpg", people.selfie_jpeg(people.identity("match")), "image/jpeg")},
        timeout=30,
    )
    uploaded = api.wait_for(data["verification_id"])
    decisions[("compare", uploaded["decision"])] += 1

    apis = {"compare": ["verifyface"], "four_factor": ["four_factor"], "portrait": ["apetime"]}
    apis["faceid"] = ["faceid_query", "faceid_search"]
    deadline = time.monotonic() + 20
    while True:  # the usage rows come from the table's stream (the outbox's reader)
        report = usage_today(api)
        if report["totals"]["provider_calls"] == delta.calls() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    rows = {(r["check"], r["provider"]): r for r in report["days"]}
    assert set(rows) == {("compare", "juhe"), ("four_factor", "juhe"), ("portrait", "apetime"), ("faceid", "juhe")}
    prices = {check: round(float(price) * 100) for check, price in PRICES.items()}
    spend = 0
    for (check, _provider), row in rows.items():
        calls = sum(delta.calls(a) for a in apis[check])
        charged = sum(delta.charged(a) for a in apis[check])
        assert row["provider_calls"] == calls, (check, row, calls)
        assert row["charged_calls"] == charged, (check, row, charged)
        assert row["unknown_charge_calls"] == (1 if check == "compare" else 0), (check, row)
        assert row["decisions"] == {d: decisions[(check, d)] for d in ("pass", "fail", "review")}, (check, row)
        fen = (charged + row["unknown_charge_calls"]) * prices[check]
        assert row["spend"] == f"{fen // 100}.{fen % 100:02d}"
        spend += fen
    totals = report["totals"]
    assert totals["provider_calls"] == delta.calls() and totals["charged_calls"] == delta.charged()
    assert totals["spend"] == f"{spend // 100}.{spend % 100:02d}"
    figures.record(
        SUITE,
        usage_provider_calls=totals["provider_calls"],
        usage_ledger_calls=delta.calls(),
        usage_charged=totals["charged_calls"],
        usage_ledger_charged=delta.charged(),
        usage_unknown=totals["unknown_charge_calls"],
        usage_spend=totals["spend"],
    )


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 200),
        ("?from=2026-11-01", 200),
        ("?from=2026-11-01&to=2027-01-31", 200),  # 92 days
        ("?from=2026-11-01&to=2027-02-01", 400),  # 93
        ("?from=2026-11-02&to=2026-11-01", 400),
        ("?from=20261101", 400),
        ("?from=2026-13-01", 400),
        ("?day=2026-11-01", 400),
    ],
)
def test_the_usage_range(api, query, status):
    answer = api.get(f"/v1/usage{query}")
    assert answer.status_code == status, answer.text
    if status == 200:
        assert set(answer.json()) == {"days", "totals"}
        assert set(answer.json()["totals"]["decisions"]) == {"pass", "fail", "review"}


def test_the_money_tables_hold_no_personal_data(api, stack, people, controls):
    """UsageTable (counters, dedupe items) and UsageReportTable (usage rows) after every kind of write:
    HMACs, days, counts and verification ids — never a name, an ID number or a mobile, raw or hashed plainly."""
    import hashlib

    controls(limit=5, window=600, cap="100.00")
    request = payload(people, "four_factor")
    first = completed_first(api, stack, request, "/v1/four-factor")
    assert api.post("/v1/four-factor", request).json() == first  # a dedupe hit
    quiet(api)
    person = people.identity("match")
    secrets = {person.name, person.id_number, person.mobile}
    secrets |= {hashlib.sha256(v.encode()).hexdigest() for v in list(secrets)}
    ddb = client(stack, "dynamodb")
    dumped = ""
    for name in ("UsageTable", "UsageReportTable"):
        items = ddb.scan(TableName=stack.resource_name(name))["Items"]
        assert items, name
        dumped += json.dumps(items, ensure_ascii=False)
    for secret in secrets:
        assert secret not in dumped


def test_a_reservation_that_keeps_conflicting_is_refused_without_a_call(api, stack, people, ledger, controls):
    """TransactionConflict (a concurrent transaction on the day's spend item) is retried with backoff; if it
    never clears, 503 storage_unavailable: nothing called, nothing counted, no record."""
    from botocore.exceptions import ClientError

    from idv import aws

    controls(limit=5, cap="100.00")
    tries = {"n": 0}

    def conflict(**_: Any) -> None:
        tries["n"] += 1
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "[None, TransactionConflict]"},
                "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
            },
            "TransactWriteItems",
        )

    events = aws.client("dynamodb").meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", conflict)
    marker = f"mc-conflict-{uuid.uuid4().hex[:8]}"
    delta = ledger()
    try:
        answer = api.post("/v1/compare", payload(people, "compare", marker=marker))
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", conflict)
    assert answer.status_code == 503 and answer.json()["code"] == "storage_unavailable", answer.text
    from idv import claims

    assert tries["n"] == claims.FINISH_ATTEMPTS
    assert delta.calls() == 0 and records_with(stack, marker) == [] and reserved_fen(stack) == 0
