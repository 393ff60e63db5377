"""`make demo`: every flow through the embedded default, over HTTP, as a client would drive it.

Starts the local stack (moto server provisioned from template.yaml, the provider sandbox, the local
API, the upload worker), runs compare (plain and AES), four-factor, portrait, FaceID (initiate →
H5 page → callback → result), an upload (presigned POST → S3 → SQS → worker → result), a bad input
and an idempotent replay, prints a table, stops everything and exits 0 (1 if a flow went wrong).
"""

from __future__ import annotations

import base64
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from sandbox.stack import h5

CONSENT = {"granted": True, "text_version": "demo-2026-01"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Demo:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.http = requests.Session()
        self.http.headers["x-api-key"] = stack.api_key
        self.rows: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def call(
        self,
        label: str,
        expect: Callable[[requests.Response], bool],
        send: Callable[[], requests.Response],
        record: Callable[[requests.Response], dict[str, Any]] | None = None,
    ) -> requests.Response:
        started = time.perf_counter()
        response = send()
        elapsed = (time.perf_counter() - started) * 1000
        body = record(response) if record else _json(response)
        face = body.get("face") or {}
        self.rows.append(
            {
                "flow": label,
                "http": response.status_code,
                "check": body.get("check") or "-",
                "decision": body.get("decision") or body.get("code") or body.get("status") or "-",
                "reasons": ",".join(body.get("reasons") or []) or "-",
                "score": "-" if face.get("score") is None else f"{face['score']:g}",
                "charged": "-" if "charged" not in body else str(body.get("charged")).lower(),
                "ms": f"{elapsed:.0f}",
            }
        )
        if not expect(response):
            self.failures.append(f"{label}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return self.http.post(self.stack.api_url + path, json=body, headers=headers, timeout=60)

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.stack.api_url + path, timeout=60)

    def wait(self, verification_id: str) -> requests.Response:
        deadline = time.monotonic() + 30
        while True:
            response = self.get(f"/v1/verifications/{verification_id}")
            if _json(response).get("status") != "pending" or time.monotonic() > deadline:
                return response
            time.sleep(0.2)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def run(demo: Demo) -> None:
    from sandbox.providers import identities as people

    match = people.identity("match")
    selfie = people.selfie_jpeg(match)
    ok = lambda r: r.status_code == 200  # noqa: E731

    def person_body(person: Any, image: bytes | None = None, **extra: Any) -> dict[str, Any]:
        data = {"name": person.name, "id_number": person.id_number, "consent": CONSENT, **extra}
        if image is not None:
            data["image"] = _b64(image)
        return data

    demo.call("compare (plain)", ok, lambda: demo.post("/v1/compare", person_body(match, selfie)))
    demo.call(
        "compare, another person", ok, lambda: demo.post("/v1/compare", person_body(match, people.other_person_jpeg(7)))
    )
    os.environ["JUHE_COMPARE_MODE"] = "aes"
    from idv.config import get_settings

    get_settings.cache_clear()
    demo.call("compare (AES)", ok, lambda: demo.post("/v1/compare", person_body(match, selfie)))
    os.environ["JUHE_COMPARE_MODE"] = "plain"
    get_settings.cache_clear()

    four = people.identity("match")
    demo.call(
        "four-factor",
        ok,
        lambda: demo.post("/v1/four-factor", person_body(four, people.selfie_jpeg(four), mobile=four.mobile)),
    )
    demo.call("portrait (Apetime)", ok, lambda: demo.post("/v1/portrait", person_body(match, selfie)))

    # FaceID: initiate -> the sandbox's H5 page -> pass liveness -> signed return -> result.
    redirect = "http://127.0.0.1/after-verification"
    session = demo.call(
        "faceid initiate",
        lambda r: r.status_code == 201,
        lambda: demo.post("/v1/faceid/sessions", person_body(match, redirect_url=redirect)),
    )
    data = _json(session)
    if "verify_url" in data:
        browser = requests.Session()
        landing = h5.complete(browser, data["verify_url"], outcome="pass")
        demo.call(
            "faceid result",
            lambda r: _json(r).get("status") == "completed",
            lambda: demo.get(f"/v1/verifications/{data['verification_id']}"),
        )
        if not landing.startswith(redirect):
            demo.failures.append(f"faceid: browser landed on {landing}, not the redirect page")

    # Upload: ticket -> presigned POST to S3 -> SQS -> worker -> result.
    ticket = demo.call(
        "upload ticket",
        lambda r: r.status_code == 201,
        lambda: demo.post("/v1/uploads", person_body(match, check="compare")),
    )
    data = _json(ticket)
    if "upload" in data:
        upload = data["upload"]
        posted = requests.post(
            upload["url"], data=upload["fields"], files={"file": ("selfie.jpg", selfie, "image/jpeg")}, timeout=60
        )
        if posted.status_code >= 300:
            demo.failures.append(f"upload POST: HTTP {posted.status_code}")
        demo.call(
            "upload result", lambda r: _json(r).get("status") == "completed", lambda: demo.wait(data["verification_id"])
        )

    bad = person_body(match, selfie)
    bad["id_number"] = match.id_number[:-1] + ("0" if match.id_number[-1] != "0" else "1")
    demo.call("bad input (ID check digit)", lambda r: r.status_code == 422, lambda: demo.post("/v1/compare", bad))

    key = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
    body = person_body(match, selfie)
    first = demo.call("idempotent: first", ok, lambda: demo.post("/v1/compare", body, key))
    again = demo.call("idempotent: replay", ok, lambda: demo.post("/v1/compare", body, key))
    if _json(first).get("verification_id") != _json(again).get("verification_id"):
        demo.failures.append("idempotent replay returned another verification")


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["flow", "http", "check", "decision", "reasons", "score", "charged", "ms"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def todays_usage(demo: Demo, calls: int, timeout: float = 15.0) -> dict[str, Any]:
    """GET /v1/usage for today (UTC+8), once the outbox's reader has written every finished record's row."""
    import time

    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(
            f"{demo.stack.api_url}/v1/usage?from={day}&to={day}", headers={"x-api-key": demo.stack.api_key}, timeout=30
        )
        report: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        if report.get("totals", {}).get("provider_calls") == calls or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def print_usage(report: dict[str, Any]) -> None:
    print("\ntoday's usage (GET /v1/usage; spend at the template's placeholder prices):")
    columns = ["check", "provider", "provider_calls", "charged_calls", "unknown_charge_calls", "spend", "decisions"]
    rows = [
        *report.get("days", []),
        {"check": "total", "provider": "", **report.get("totals", {})},
    ]
    shown = [
        {c: (" ".join(f"{k}={v}" for k, v in r[c].items()) if c == "decisions" else r.get(c, "")) for c in columns}
        for r in rows
    ]
    widths = {c: max(len(c), *(len(str(r[c])) for r in shown)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in shown:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def main() -> int:
    from sandbox.stack.local import LocalStack, StackOptions

    with LocalStack(StackOptions(log_level="ERROR", print_metrics=False)).start() as stack:
        demo = Demo(stack)
        run(demo)
        ledger = stack.sandbox.ledger() if stack.sandbox else {"calls": {}, "charged": {}}
        calls = sum(sum(keys.values()) for keys in ledger["calls"].values())
        usage = todays_usage(demo, calls)
        if usage.get("totals", {}).get("provider_calls") != calls:
            demo.failures.append(f"usage report: {usage.get('totals')} vs {calls} provider calls in the ledger")
    print_table(demo.rows)
    print_usage(usage)
    print(f"\nprovider ledger (charged calls): {ledger['charged']}")
    if demo.failures:
        print("\nFAILED:\n  " + "\n  ".join(demo.failures))
        return 1
    print("\nall flows behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
