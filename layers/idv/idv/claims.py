"""Claim → call → finish: the one path of every billable provider call (DESIGN §5).

1. claim   The pending record is written with a lease (`claimed_until`, `claim_token`) *before* the
           provider is called. With an Idempotency-Key the key's item (`idv.idempotency`) is written
           first, naming the record, so a retry with the key finds the claim again (`begin`). The
           upload worker claims the record its ticket created (`take`).
2. call    The provider, once (the caller's code: `checks.call_check`, `faceid`).
3. finish  The record's new state and its answer (`answer`, unless it is the plain 200 record) in
           one conditional write (`finish`), retried with jittered backoff. If storage still fails,
           the client gets 503 `result_not_stored` with the verification id and the computed record.

Round trips: 2 writes without a key, 3 with one (no transactions: each write is conditional on
its own, and every crash between two of them leaves a state a replay resolves without a call).

A claim found again whose lease has run out may have been called (a crash, a Lambda timeout, a
storage outage right after the call): it is never called again. It settles as a stored `error`
answer (`check_interrupted`, `charged: null`) that every replay returns (`settle_interrupted`).
A claim whose lease still runs belongs to a running request: a replay waits for its answer.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from idv import clock, errors, records
from idv.config import get_settings
from idv.idempotency import Answer, Key, Store
from idv.observability import logger

FINISH_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
REPLAY_WAIT_SECONDS = 25.0
REPLAY_POLL_SECONDS = 0.1
CLAIM_ATTRIBUTES = ("claimed_until", "claim_token")
INTERRUPTED_DETAIL = (
    "an earlier attempt of this check stopped after the provider may have been called; it was not repeated,"
    " and its charge is unknown (a new check needs a new Idempotency-Key)"
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A held lease on a record: only its holder may call the provider and finish the record."""

    verification_id: str
    token: str
    key: Key | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """What a call produced: the record to store, the client's answer, and how the key is kept."""

    record: dict[str, Any]
    answer: Answer
    extra: dict[str, Any] = field(default_factory=dict)  # bookkeeping set in the same write
    remove: tuple[str, ...] = records.PENDING_ATTRIBUTES
    keep_key: bool = True  # False: nothing was charged, the Idempotency-Key is freed for a retry


@dataclass(frozen=True, slots=True)
class Settled:
    answer: Answer
    here: bool  # this call made the transition (False: another one had ended the record first)


def repository() -> records.Repository:
    return records.Repository(get_settings().verifications_table)


def store() -> Store:
    return Store(get_settings().idempotency_table)


def lease_seconds(lambda_context: Any, default: float = 30.0) -> float:
    """A claim outlives the invocation that holds it (after that the invocation is surely gone)."""
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    return (remaining() / 1000.0 + 1.0) if callable(remaining) else default


def is_storage_error(exc: BaseException) -> bool:
    """An AWS failure that may pass (an outage, throttling, a dropped connection), not a misconfiguration."""
    from botocore.exceptions import BotoCoreError, ClientError

    from idv import aws

    return isinstance(exc, (ClientError, BotoCoreError)) and aws.configuration_error(exc) is None


def backoff(attempt: int) -> float:
    """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def begin(record: dict[str, Any], key: Key | None, *, lease: float) -> Claim | Answer:
    """Write the claim for a new record; with a key already claimed, the key's answer instead.

    With money controls on (`idv.controls`), the Idempotency-Key's item, the dedupe check and the
    counters go in one write before the record's: a replay or a dedupe hit is found by that write
    (and counts nothing), a refusal (429) leaves nothing written. The reservation is stored on the
    record (`usage_day`, `reserved_fen`) so whoever finishes it can settle it.

    Storage failing here is `storage_unavailable` (nothing was sent to a provider).
    """
    from idv import controls

    repo = repository()
    verification_id = record["verification_id"]
    plan = controls.plan(record)
    contended = False
    for attempt in range(FINISH_ATTEMPTS):
        now = clock.now()
        token = secrets.token_hex(8)
        key_write = store().claim_write(key, verification_id, now, lease) if key is not None else None
        reserved: controls.Reservation | None = None
        if plan is None:
            if key is not None and key_write is not None and not _write_before_call(key_write, verification_id):
                answer = replay(key)
                if answer is not None:
                    return answer
                continue  # the key was freed meanwhile (its attempt cost nothing): claim it again
        else:
            try:
                outcome = _reserve(plan, key_write, now, verification_id)
            except controls.Retry:
                contended = True
                time.sleep(backoff(attempt))
                continue
            contended = False
            if outcome == controls.KEY_TAKEN and key is not None:
                answer = replay(key)
                if answer is not None:
                    return answer
                continue
            if isinstance(outcome, controls.DedupeHit):
                answer = dedupe_answer(outcome.verification_id)
                if answer is not None:
                    return answer
                plan = plan.without_dedupe()  # its record is gone or not reusable: run the check
                continue
            if isinstance(outcome, controls.Reservation):
                reserved = outcome
                record.update(reserved.attributes())
        item = {**record, "claimed_until": int(now + lease) + 1, "claim_token": token}
        if key is not None:
            item["idempotency_id"] = key.item_id
        try:
            created = _write_before_call(repo.create_write(item), verification_id)
        except errors.StorageUnavailable:
            if key is not None:
                _forget_key(key.item_id, verification_id)
            if reserved is not None:
                controls.unreserve(reserved, verification_id)
            raise
        if not created:
            raise errors.IdvError("a new verification id collided with a stored one")
        return Claim(verification_id, token, key)
    if contended:
        raise errors.StorageUnavailable("the day's counters stayed busy; nothing was charged; retry")
    raise errors.IdempotencyInProgress("a request with this Idempotency-Key is still running; retry shortly")


def _reserve(plan: Any, key_write: records.Write | None, now: float, verification_id: str) -> Any:
    from idv import controls

    try:
        return controls.reserve(plan, key_write, now)
    except (errors.IdvError, controls.Retry):
        raise
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        logger.warning("reservation not written", extra={"verification_id": verification_id, "error": _code(exc)})
        raise errors.StorageUnavailable("the request could not be recorded; nothing was charged; retry") from None


def dedupe_answer(verification_id: str) -> Answer | None:
    """The first answer of an identical completed request (DESIGN §8); None when it cannot be reused."""
    item = repository().get(verification_id)
    if item is None or item.get("status") != "completed":
        return None
    return stored_answer(item)


def _write_before_call(write: records.Write, verification_id: str) -> bool:
    try:
        return repository().apply(write)
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        logger.warning("claim not written", extra={"verification_id": verification_id, "error": _code(exc)})
        raise errors.StorageUnavailable("the request could not be recorded; nothing was charged; retry") from None


def _forget_key(item_id: str, verification_id: str) -> None:
    """Free a key whose claim never wrote its record (nothing was called); a failure is left to the lease."""
    try:
        repository().apply(store().release_write(item_id, verification_id))
    except Exception as exc:
        if not is_storage_error(exc):
            raise


def replay(key: Key, *, wait: float = REPLAY_WAIT_SECONDS) -> Answer | None:
    """The stored answer of a key's claim (waiting while its lease runs); None when the key is free."""
    deadline = time.monotonic() + wait
    while True:
        found = store().get(key)
        if found is None:
            return None
        if found.get("state") == "erased":
            raise errors.VerificationErased(
                "the verification this Idempotency-Key made was erased; nothing was replayed"
            )
        if found.get("fingerprint") != key.fingerprint:
            raise errors.IdempotencyKeyReused("this Idempotency-Key was already used with a different request body")
        verification_id = found["verification_id"]
        item = repository().get(verification_id)
        if item is None:
            if float(found.get("claimed_until") or 0) < clock.now():
                _forget_key(key.item_id, verification_id)  # its holder stopped before writing the record
                return None
        elif stranded(item):
            settled = settle_interrupted(item)
            if settled is not None:
                return settled
            continue
        elif not item.get("claim_token"):
            return stored_answer(item)
        if time.monotonic() >= deadline:
            raise errors.IdempotencyInProgress(
                "a request with this Idempotency-Key is still running; retry shortly",
                verification_id=verification_id,
            )
        time.sleep(REPLAY_POLL_SECONDS)


def stored_answer(item: dict[str, Any]) -> Answer:
    """The answer a finished claim gave: its stored `answer`, else the record itself (200)."""
    text = item.get("answer")
    return Answer.from_json(text) if text else Answer(200, records.public_view(item))


def take(item: dict[str, Any], *, lease: float) -> Claim | None:
    """Claim an existing pending record (an upload ticket); None when someone holds or held it."""
    token = secrets.token_hex(8)
    if repository().claim(item["verification_id"], lease, clock.now(), token):
        return Claim(item["verification_id"], token)
    return None


def finish(
    claim: Claim, done: Finish, *, store_answer: bool = True, retry: Callable[[int], float] = backoff
) -> Settled:
    """Store the call's outcome under the claim (retried); 503 `result_not_stored` when storage keeps failing.

    `store_answer=False` keeps the record's stored answer as it is (the upload worker: a replay of the
    upload request answers with its ticket, not with the check's outcome).
    """
    repo = repository()
    extra = dict(done.extra)
    if store_answer and done.answer.status != 200:  # a 200 answer is the record itself
        extra["answer"] = done.answer.to_json()
    write = repo.finish_write(done.record, claim_token=claim.token, extra=extra, remove=done.remove)
    failure = ""
    for attempt in range(FINISH_ATTEMPTS):
        try:
            changed = repo.apply(write)
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            failure = _code(exc)
            if attempt + 1 < FINISH_ATTEMPTS:
                time.sleep(retry(attempt))
            continue
        if not changed:  # the claim was ended by someone else (settled as interrupted, or erased)
            current = repo.get(claim.verification_id)
            if current is None:
                return Settled(Answer.of_error(errors.VerificationErased("this verification was erased")), False)
            return Settled(stored_answer(current), False)
        if claim.key is not None and not done.keep_key:
            _forget_key(claim.key.item_id, claim.verification_id)
        settle(done.record)
        return Settled(done.answer, True)
    logger.error(
        "result not stored", extra={"verification_id": claim.verification_id, "error": failure, "attempts": attempt + 1}
    )
    computed = done.record if done.record.get("status") in ("completed", "error", "expired") else None
    raise errors.ResultNotStored(
        "the provider answered but the result could not be stored; it is in this answer (`verification`)"
        if computed
        else "the provider answered but the result could not be stored",
        charged=done.record.get("charged"),
        verification_id=claim.verification_id,
        verification=records.public_view(computed) if computed else None,
    )


def settle(record: dict[str, Any]) -> None:
    """After a record's terminal write: a call that was not charged gives its reserved price back
    (charged or unknown keeps it: unknown counts as charged)."""
    if record.get("status") != "pending" and record.get("charged") is False and record.get("reserved_fen"):
        from idv import controls

        controls.release(record)


def stranded(item: dict[str, Any], now: float | None = None) -> bool:
    """A pending record whose claim's lease ran out: its call may have happened, its holder is gone."""
    until = item.get("claimed_until")
    if item.get("status") != "pending" or until is None:
        return False
    return float(until) < (clock.now() if now is None else now)


def settle_interrupted(item: dict[str, Any]) -> Answer | None:
    """End a stranded claim as `error` / `check_interrupted` / `charged: null` (never called again).

    None when the record changed meanwhile (another request settled it first: read it again).
    """
    verification_id = item["verification_id"]
    exc = errors.CheckInterrupted(INTERRUPTED_DETAIL, verification_id=verification_id)
    failed = records.apply_error(item, exc.code, exc.detail, None, clock.now())
    answer = Answer.of_error(exc)
    usage = {"usage_calls": 1, "usage_charged": 0, "usage_unknown": 1}  # the call may have happened
    write = repository().finish_write(
        failed, claim_token=item.get("claim_token"), extra={"answer": answer.to_json(), **usage}
    )
    try:
        changed = repository().apply(write)
    except Exception as exc2:
        if not is_storage_error(exc2):
            raise
        raise errors.StorageUnavailable("the interrupted check could not be settled; retry") from None
    if changed:
        logger.warning("interrupted check settled, not repeated", extra={"verification_id": verification_id})
        return answer
    return None


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__
