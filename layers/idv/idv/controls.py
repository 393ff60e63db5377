"""Money controls (DESIGN §8): per-person daily limit, deduplication without a key, daily spend cap.

They live inside the claim → call → finish path (`idv.claims.begin`), so no billable route can
bypass them: compare, four-factor, portrait, FaceID starts and upload tickets (an upload counts when
its ticket is issued: the worker must not be refused after the person uploaded their selfie).

The counters live in USAGE_TABLE (key `pk` + `sk`, small: one item per person and day, one per day,
one per deduplicated answer; TTL `expires_at`):

    pk = "subject#{id_hash}"  sk = day   count        checks reserved for that person that day (UTC+8)
    pk = "spend"              sk = day   reserved_fen fen reserved by calls that day (released if not charged)
    pk = "dedupe#{hmac}"      sk = "-"   verification_id, until   a completed answer an identical request reuses

The usage report's rows (one per finished record) live in USAGE_REPORT_TABLE (`UsageRows`), not here.

Reserve: one write before the record's claim, a TransactWriteItems over USAGE_TABLE (plus the
Idempotency-Key's item when there is one, so a replay is found by the same write and counts nothing):
the key's Put (attribute_not_exists), a ConditionCheck that no live dedupe item exists, the
person's `count < limit` (ADD 1) and the day's `reserved_fen <= cap - price` (ADD price). A cancelled
transaction changes nothing; its CancellationReasons (in item order) say why: the key is taken (a
replay), a dedupe hit (the first answer), `subject_rate_limited` or `spend_limit_reached` (429). A
single action is a single conditional write (same semantics, cheaper).

Settle: a call that was not charged (`charged: false`) releases its price (ADD -price); a charged
or unknown (`None`) one keeps it. The person's count is not released: the provider answered (or was
asked) about that person, which is what the limit bounds.

No transaction touches VERIFICATIONS_TABLE: moto's TransactWriteItems deep-copies every table it
touches and restores the copy when a condition fails (undoing concurrent writes too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from idv import errors, records
from idv.config import Settings, get_settings
from idv.observability import logger

CHINA_OFFSET_SECONDS = 8 * 3600
COUNTER_TTL_SECONDS = 3 * 86400  # a day's counters outlive the day (and its time zone) by two days
USAGE_TTL_SECONDS = 400 * 86400  # usage rows: a year and a month of reports
MAX_REPORT_DAYS = 92
DECISIONS = ("pass", "fail", "review")


class SubjectRateLimited(errors.IdvError):
    status = 429
    code = "subject_rate_limited"
    title = "Too many checks of this person today"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SpendLimitReached(errors.IdvError):
    status = 429
    code = "spend_limit_reached"
    title = "The day's spend limit is reached"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def day_of(now: float) -> str:
    """The day (UTC+8) of a time, as yyyymmdd."""
    return time.strftime("%Y%m%d", time.gmtime(now + CHINA_OFFSET_SECONDS))


def seconds_to_next_day(now: float) -> int:
    """Seconds until the next midnight in UTC+8 (at least 1): a refused client's Retry-After."""
    return max(1, 86400 - int(now + CHINA_OFFSET_SECONDS) % 86400)


def dedupe_id(hmac_key: str, scope: str, parts: dict[str, Any]) -> str:
    """The dedupe item's id: HMAC(pii_hmac_key, route + canonical request); never a plain hash of personal data."""
    canonical = json.dumps({"scope": scope, **parts}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "dedupe#" + hmac.new(hmac_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def image_digest(raw: bytes) -> str:
    """sha256 of the decoded image bytes (only ever inside a dedupe HMAC)."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a claim reserved: written on the record (`usage_day`, `reserved_fen`) so any finisher can settle it."""

    day: str
    price_fen: int  # 0 without a spend cap
    subject: str | None = None  # the person's id_hash when their count was taken

    def attributes(self) -> dict[str, Any]:
        return {"usage_day": self.day, "reserved_fen": self.price_fen} if self.price_fen else {"usage_day": self.day}


@dataclass(frozen=True, slots=True)
class DedupeHit:
    verification_id: str


KEY_TAKEN = "key_taken"


def _item_key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


class Counters(records.Table):
    """The items of USAGE_TABLE."""

    setting = "USAGE_TABLE"

    # -- the reservation's actions
    def subject_write(self, id_hash: str, day: str, limit: int, now: float) -> records.Write:
        return records.update(
            self.table,
            _item_key(f"subject#{id_hash}", day),
            sets={"expires_at": int(now) + COUNTER_TTL_SECONDS},
            adds={"count": 1},
            condition="attribute_not_exists(#count) OR #count < :limit",
            names={"#count": "count"},
            values={":limit": limit},
        )

    def spend_write(self, day: str, price_fen: int, cap_fen: int, now: float) -> records.Write:
        return records.update(
            self.table,
            _item_key("spend", day),
            sets={"expires_at": int(now) + COUNTER_TTL_SECONDS},
            adds={"reserved_fen": price_fen},
            condition="attribute_not_exists(#reserved) OR #reserved <= :room",
            names={"#reserved": "reserved_fen"},
            values={":room": cap_fen - price_fen},
        )

    def dedupe_check(self, item_id: str, now: float) -> records.Write:
        return records.Write(
            "ConditionCheck",
            {
                "TableName": self.table,
                "Key": _item_key(item_id, "-"),
                "ConditionExpression": "attribute_not_exists(pk) OR #until < :now",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
            },
        )

    def release_write(self, day: str, price_fen: int) -> records.Write:
        return records.update(
            self.table,
            _item_key("spend", day),
            adds={"reserved_fen": -price_fen},
            condition="attribute_exists(pk)",
        )

    # -- dedupe items
    def dedupe_put(self, item_id: str, verification_id: str, until: int) -> records.Write:
        """The completed answer an identical request reuses (idempotent: the stream may deliver twice; a
        later completion of the same request takes the item over)."""
        return records.Write(
            "Put",
            {
                "TableName": self.table,
                "Item": {
                    **_item_key(item_id, "-"),
                    "verification_id": {"S": verification_id},
                    "until": {"N": str(until)},
                    "expires_at": {"N": str(until)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR verification_id = :vid OR #until < :until",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": {":vid": {"S": verification_id}, ":until": {"N": str(until)}},
            },
        )

    def dedupe_delete(self, item_id: str) -> records.Write:
        return records.Write("Delete", {"TableName": self.table, "Key": _item_key(item_id, "-")})

    def get_dedupe(self, item_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=_item_key(item_id, "-"), ConsistentRead=True).get("Item")
        return records.from_stream_image(found) if found else None

    def spent_reserved(self, day: str) -> int:
        found = self.client.get_item(TableName=self.table, Key=_item_key("spend", day), ConsistentRead=True).get("Item")
        return int(found["reserved_fen"]["N"]) if found and "reserved_fen" in found else 0

    def run(self, writes: list[records.Write]) -> list[bool]:
        """Apply the writes at once (one conditional write, or one transaction): [True] * n, or which failed."""
        from botocore.exceptions import ClientError

        try:
            if len(writes) == 1:
                method = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}[writes[0].action]
                getattr(self.client, method)(**writes[0].params)
            else:
                self.client.transact_write_items(TransactItems=[w.transact_item() for w in writes])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return [False]
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                failed = [r.get("Code") == "ConditionalCheckFailed" for r in reasons]
                if len(failed) == len(writes) and any(failed):
                    return [not f for f in failed]  # a condition that does not hold is the answer
                if any(r.get("Code") == "TransactionConflict" for r in reasons):
                    # Another transaction held one of the items (the day's spend item is shared by every
                    # check): nothing was written; the caller reserves again (botocore does not retry it).
                    raise Retry() from None
            raise
        return [True] * len(writes)


def counters(settings: Settings | None = None) -> Counters:
    return Counters((settings or get_settings()).usage_table)


class UsageRows(records.Table):
    """The usage report's rows in USAGE_REPORT_TABLE (pk `usage#{day}`, sk verification id): one per finished
    record, written by the outbox's reader. Their own table, so USAGE_TABLE stays small: the reservation's
    TransactWriteItems costs moto a copy of every table it touches (see the module docstring)."""

    setting = "USAGE_REPORT_TABLE"

    def put(self, row: dict[str, Any]) -> None:
        """One record's usage (idempotent: the same row on every delivery)."""
        item: dict[str, Any] = {
            **_item_key(f"usage#{row['day']}", str(row["verification_id"])),
            "check": {"S": str(row["check"])},
            "provider": {"S": str(row["provider"])},
            "calls": {"N": str(int(row["calls"]))},
            "charged": {"N": str(int(row["charged"]))},
            "unknown": {"N": str(int(row["unknown"]))},
            "spend_fen": {"N": str(int(row["spend_fen"]))},
            "expires_at": {"N": str(int(row["expires_at"]))},
        }
        if row.get("decision"):
            item["decision"] = {"S": str(row["decision"])}
        self.client.put_item(TableName=self.table, Item=item)

    def of_day(self, day: str) -> list[dict[str, Any]]:
        """Every usage row of one day (UTC+8): a Query of its partition, all pages."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"usage#{day}"}},
        )
        return [records.from_stream_image(item) for page in pages for item in page.get("Items", [])]


def usage_rows(settings: Settings | None = None) -> UsageRows:
    return UsageRows((settings or get_settings()).usage_report_table)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the claim of one record must check and reserve (None from `plan`: nothing)."""

    check: str
    id_hash: str | None
    dedupe_id: str | None
    settings: Settings

    def without_dedupe(self) -> Plan:
        return Plan(self.check, self.id_hash, None, self.settings)


def plan(record: dict[str, Any], settings: Settings | None = None) -> Plan | None:
    settings = settings or get_settings()
    if not settings.controls_on:
        return None
    dedupe = record.get("dedupe_id") if settings.dedupe_window_seconds else None
    limited = record.get("id_hash") if settings.subject_daily_limit else None
    if dedupe is None and limited is None and settings.daily_spend_limit_fen is None:
        return None
    return Plan(record["check"], limited, dedupe, settings)


def reserve(p: Plan, key_write: records.Write | None, now: float) -> Reservation | DedupeHit | str | None:
    """The reservation's one write. Returns the Reservation (None: nothing to reserve money for),
    KEY_TAKEN (the Idempotency-Key's claim exists: a replay), or a DedupeHit; raises the 429s."""
    store = counters(p.settings)
    settings = p.settings
    day = day_of(now)
    price = settings.price_fen(p.check)
    cap = settings.daily_spend_limit_fen
    if cap is not None and price > cap:
        raise SpendLimitReached(
            f"one {p.check} check costs more than the whole daily spend limit", seconds_to_next_day(now)
        )
    writes: list[records.Write] = []
    roles: list[str] = []
    if key_write is not None:
        writes.append(key_write)
        roles.append("key")
    if p.dedupe_id is not None:
        if len(writes) == 0 and p.id_hash is None and cap is None:  # a check alone is a read
            found = store.get_dedupe(p.dedupe_id)
            if found and int(found.get("until") or 0) >= int(now):
                return DedupeHit(str(found["verification_id"]))
        else:
            writes.append(store.dedupe_check(p.dedupe_id, now))
            roles.append("dedupe")
    if p.id_hash is not None:
        writes.append(store.subject_write(p.id_hash, day, settings.subject_daily_limit, now))
        roles.append("subject")
    if cap is not None:
        writes.append(store.spend_write(day, price, cap, now))
        roles.append("spend")
    if not writes:
        return None
    held = dict(zip(roles, store.run(writes), strict=True))
    if not held.get("key", True):
        return KEY_TAKEN
    if not held.get("dedupe", True):
        found = store.get_dedupe(p.dedupe_id or "")
        if found is not None:
            return DedupeHit(str(found["verification_id"]))
        raise Retry()  # the dedupe item went meanwhile: reserve again
    if not held.get("subject", True):
        logger.info("subject daily limit reached", extra={"check": p.check})
        raise SubjectRateLimited(
            f"this person was checked {settings.subject_daily_limit} times today (UTC+8), the deployment's limit;"
            " nothing was charged",
            seconds_to_next_day(now),
        )
    if not held.get("spend", True):
        logger.warning("daily spend limit reached", extra={"check": p.check, "price_fen": price})
        raise SpendLimitReached(
            "this check would take today's spend (UTC+8) past the deployment's limit; nothing was charged",
            seconds_to_next_day(now),
        )
    return Reservation(day, price if cap is not None else 0, p.id_hash)


class Retry(Exception):
    """The reservation must be tried again: a dedupe item vanished between the write and the read, or the
    transaction was cancelled by a concurrent one (TransactionConflict). Nothing was written."""


def release(record: dict[str, Any]) -> None:
    """Give back the price a record reserved (its call was not charged); a failure is logged, not raised."""
    fen = int(record.get("reserved_fen") or 0)
    day = record.get("usage_day")
    if not fen or not day:
        return
    try:
        counters().run([counters().release_write(str(day), fen)])
    except Exception as exc:
        logger.warning(
            "reservation not released", extra={"verification_id": record.get("verification_id"), "error": str(exc)}
        )


def unreserve(reserved: Reservation, verification_id: str) -> None:
    """Undo a reservation whose record was never written (nothing was called); best effort."""
    try:
        store = counters()
        if reserved.price_fen:
            store.run([store.release_write(reserved.day, reserved.price_fen)])
        if reserved.subject is not None:
            store.run(
                [
                    records.update(
                        store.table,
                        _item_key(f"subject#{reserved.subject}", reserved.day),
                        adds={"count": -1},
                        condition="attribute_exists(pk)",
                    )
                ]
            )
    except Exception as exc:
        logger.warning("reservation not undone", extra={"verification_id": verification_id, "error": str(exc)})


def remember_completed(item: dict[str, Any], settings: Settings | None = None) -> bool:
    """Publish a completed record's dedupe item (`dedupe_id` → verification_id until completed_at + window).

    Called by the outbox's reader for every pending → completed transition (at least once: the put is
    idempotent). False when the record has no dedupe id or the window is off.
    """
    from datetime import UTC, datetime

    settings = settings or get_settings()
    item_id = item.get("dedupe_id")
    if not item_id or not settings.dedupe_window_seconds or item.get("status") != "completed":
        return False
    try:
        completed = datetime.strptime(str(item.get("completed_at")), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        at = completed.timestamp()
    except ValueError:
        at = time.time()
    store = counters(settings)
    store.run([store.dedupe_put(str(item_id), str(item["verification_id"]), int(at) + settings.dedupe_window_seconds)])
    return True


def _timestamp(iso: Any) -> float | None:
    from datetime import UTC, datetime

    try:
        return datetime.strptime(str(iso), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def remember_usage(item: dict[str, Any], settings: Settings | None = None) -> bool:
    """Write a finished record's usage row (the outbox's reader, for every pending → terminal transition;
    idempotent). Its day is the record's creation day (UTC+8); its spend is what its calls cost at the
    prices in force: (charged + unknown) × price, unknown counting as charged. False: nothing to count."""
    settings = settings or get_settings()
    calls = int(item.get("usage_calls") or 0)
    decision = item.get("decision") if item.get("status") == "completed" else None
    if not calls and not decision:
        return False
    created = _timestamp(item.get("created_at")) or time.time()
    charged, unknown = int(item.get("usage_charged") or 0), int(item.get("usage_unknown") or 0)
    row = {
        "day": day_of(created),
        "verification_id": item["verification_id"],
        "check": item.get("check"),
        "provider": item.get("provider"),
        "calls": calls,
        "charged": charged,
        "unknown": unknown,
        "spend_fen": (charged + unknown) * settings.price_fen(str(item.get("check"))),
        "decision": decision,
        "expires_at": int(created) + USAGE_TTL_SECONDS,
    }
    usage_rows(settings).put(row)
    usage_metrics(item, row["spend_fen"], settings)
    return True


def usage_metrics(item: dict[str, Any], spend_fen: int, settings: Settings) -> None:
    """The dashboard's and the alarms' money metrics of one finished record (namespace of the layer's
    metrics, dimension `service` only): FinishedChecks, FailedChecks (ended `error` after a provider
    call), CompletedChecks / PassedChecks (the pass rate), SpendCNY and, with a cap, SpendOfCapPercent
    (its daily sum is the share of the cap spent: the 80 % alarm needs no arithmetic on the parameter).
    At least once, like the stream that carries them."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from idv.observability import metrics, metrics_disabled

    if metrics_disabled():
        return
    points: list[tuple[str, float, Any]] = [("FinishedChecks", 1, MetricUnit.Count)]
    if item.get("status") == "error" and int(item.get("usage_calls") or 0):
        points.append(("FailedChecks", 1, MetricUnit.Count))
    if item.get("status") == "completed":
        points.append(("CompletedChecks", 1, MetricUnit.Count))
        points.append(("PassedChecks", 1 if item.get("decision") == "pass" else 0, MetricUnit.Count))
    points.append(("SpendCNY", spend_fen / 100, MetricUnit.NoUnit))
    cap = settings.daily_spend_limit_fen
    if cap:
        points.append(("SpendOfCapPercent", 100 * spend_fen / cap, MetricUnit.Percent))
    for name, value, unit in points:
        with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace):
            pass


def cny(fen: int) -> str:
    """Integer fen as a decimal string of CNY ("12.30")."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def report_days(first: str, last: str) -> list[str]:
    """The days (yyyymmdd) of an inclusive range given as YYYY-MM-DD; InvalidRequest when it is not one."""
    from datetime import date, timedelta

    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise errors.InvalidRequest("from and to must be dates as YYYY-MM-DD (days in UTC+8)") from None
    if len(first) != 10 or len(last) != 10:
        raise errors.InvalidRequest("from and to must be dates as YYYY-MM-DD (days in UTC+8)")
    if end < start:
        raise errors.InvalidRequest("to must not be before from")
    count = (end - start).days + 1
    if count > MAX_REPORT_DAYS:
        raise errors.InvalidRequest(f"a report covers at most {MAX_REPORT_DAYS} days")
    return [(start + timedelta(days=i)).strftime("%Y%m%d") for i in range(count)]


def usage_report(first: str | None, last: str | None, now: float | None = None) -> dict[str, Any]:
    """GET /v1/usage (DESIGN §8): per day × check × provider and totals, from the usage rows (a Query per
    day, never a Scan). Without dates: today (UTC+8); with one, that day."""
    today = day_of(time.time() if now is None else now)
    today_iso = f"{today[:4]}-{today[4:6]}-{today[6:]}"
    days = report_days(first or last or today_iso, last or first or today_iso)
    rows = usage_rows()
    out: list[dict[str, Any]] = []
    totals = _empty()
    for day in days:
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows.of_day(day):
            key = (str(row.get("check")), str(row.get("provider")))
            group = groups.setdefault(key, _empty())
            for target in (group, totals):
                _add(target, row)
        for (check, provider), group in sorted(groups.items()):
            out.append(
                {"date": f"{day[:4]}-{day[4:6]}-{day[6:]}", "check": check, "provider": provider, **_public(group)}
            )
    return {"days": out, "totals": _public(totals)}


def _empty() -> dict[str, Any]:
    return {"calls": 0, "charged": 0, "unknown": 0, "spend_fen": 0, "decisions": dict.fromkeys(DECISIONS, 0)}


def _add(target: dict[str, Any], row: dict[str, Any]) -> None:
    for name in ("calls", "charged", "unknown", "spend_fen"):
        target[name] += int(row.get(name) or 0)
    if row.get("decision") in DECISIONS:
        target["decisions"][row["decision"]] += 1


def _public(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider_calls": group["calls"],
        "charged_calls": group["charged"],
        "unknown_charge_calls": group["unknown"],
        "spend": cny(group["spend_fen"]),
        "decisions": dict(group["decisions"]),
    }
