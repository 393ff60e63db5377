"""The FaceID H5 flow: start a session, take the browser return / provider notify, reconcile.

Nothing from the browser is trusted: the callback must carry a valid `sign` (md5(response + key),
compared in constant time) for the stored `jh_order_id`, and even then the result is fetched from
`faceid/search`. A session moves from pending to completed, error or expired exactly once
(conditional write); a forged, replayed or expired callback changes nothing.

Money: the start goes claim → call → finish like every check (`idv.claims`). One session gets at
most one `faceid/search` at a time and at most `MAX_SEARCHES` in all: the browser return, the
notify, a double click and the reconciler share one search lease (`search_until`/`search_token`,
`search_count`); whoever loses it answers from the record (a callback waits a few seconds for the
winner). The reconciler looks at a session when it is due (`reconcile_at`: 10 and 20 minutes after
the start, then once after its 30 minutes), isolates sessions from each other, and ends a session
whose search answer cannot be used as `error`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from idv import checks, claims, clock, errors, http, providers, records
from idv.config import get_settings
from idv.idempotency import Answer, Key
from idv.observability import count_provider_call, count_signature_form, logger
from idv.provider_secret import get_provider_secrets

SESSION_SECONDS = 30 * 60
SEARCH_LEASE_MARGIN_SECONDS = 5
MAX_SEARCHES = 6  # per session, callbacks and reconciler together
RECONCILE_FIRST_SECONDS = 10 * 60  # the reconciler's first look after the start
RECONCILE_EVERY_SECONDS = 10 * 60
CALLBACK_WAIT_SECONDS = 8.0  # a callback that lost the search lease waits this long for the winner
TRANSIENT_SEARCH_ERRORS = ("provider_rate_limited", "provider_timeout")


def callback_url(base_url: str, verification_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/faceid/callback/{verification_id}"


def start_session(body: Any, base_url: str, *, key: Key | None = None, lease: float = 30.0) -> Answer:
    """From a validated request (`schemas.FaceIdSessionRequest`): claim, call faceid/query once, store the
    pending session; the 201 answer for the client."""
    settings = get_settings()
    person = checks.person_of(body)
    threshold = body.threshold
    redirect, model, device_type = body.redirect_url, body.model, body.device_type
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    verification_id = clock.new_verification_id(created)
    request = checks.CheckRequest("faceid", person, checks.consent_of(body), threshold, body.client_reference)
    record = checks.pending_record(request, verification_id, secret, created)
    claimed = claims.begin(record, key, lease=lease)
    if isinstance(claimed, Answer):
        return claimed
    url = callback_url(base_url, verification_id)
    http.take_sent()
    try:
        session = providers.juhe_client().faceid_start(
            key=secret.juhe_faceid_key,
            name=person.name,
            id_number=person.id_number,
            order_id=verification_id,
            return_url=url,
            notify_url=url,
            model=model,
            device_type=device_type,
        )
    except errors.ProviderError as exc:
        count_provider_call("juhe", "faceid", exc.charged)
        done = checks.failed_finish(record, exc, exc.charged)
        done.extra.update(checks.usage_of(exc.charged, http.take_sent()))
    else:
        count_provider_call("juhe", "faceid", True)
        opened = {**record, "charged": True, "provider_order_id": session.jh_order_id}
        expires = int(created) + SESSION_SECONDS
        answer = Answer(
            201,
            {
                "verification_id": verification_id,
                "status": "pending",
                "verify_url": session.verify_url,
                "expires_at": clock.iso(created + SESSION_SECONDS),
            },
        )
        extra = {
            "pending_faceid": "1",
            "session_expires_at": expires,
            "reconcile_at": int(created) + RECONCILE_FIRST_SECONDS,
            "jh_order_id": session.jh_order_id,
            "redirect_url": redirect,
            "threshold": threshold,
            "search_count": 0,
            # faceid/query was billed; each search adds its own (usage report)
            **checks.usage_of(True, http.take_sent()),
        }
        done = claims.Finish(opened, answer, extra=extra, remove=claims.CLAIM_ATTRIBUTES)
    settled = claims.finish(claimed, done)
    if settled.here:
        if done.record["status"] == "pending":
            logger.info("faceid session started", extra={"verification_id": verification_id})
        else:
            checks.log_outcome("faceid", done.record)
    return settled.answer


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    record: dict[str, Any]
    redirect_url: str | None
    changed: bool
    searched: bool = False  # this call asked faceid/search


def handle_callback(verification_id: str, response: Any, sign: Any) -> CallbackOutcome:
    """Check the signed return, confirm with faceid/search, finish the record at most once."""
    from idv.providers.juhe import return_signature_form

    settings = get_settings()
    if not records.is_verification_id(verification_id):
        raise errors.NotFound("no such verification")
    repository = claims.repository()
    item = repository.get(verification_id)
    if item is None or item.get("check") != "faceid":
        raise errors.NotFound("no such verification")
    secret = get_provider_secrets(settings.provider_secret_id)
    form = (
        return_signature_form(response, sign, secret.juhe_faceid_key)
        if isinstance(response, str) and isinstance(sign, str)
        else None
    )
    if form is None:
        logger.warning("faceid callback with a bad signature", extra={"verification_id": verification_id})
        raise errors.InvalidCallback("the callback signature does not verify")
    count_signature_form(form)  # operators learn which reading of md5(response + key) the provider uses
    try:
        returned = json.loads(response)
    except ValueError:
        raise errors.InvalidCallback("the callback response is not the documented JSON") from None
    result = returned.get("result") if isinstance(returned, dict) else None
    returned_order = result.get("jh_order_id") if isinstance(result, dict) else None
    # A signed response without a result (or without its order id) is "no result yet": faceid/search,
    # the only trusted source, decides. One that names another order belongs to another session.
    if returned_order is not None and returned_order != item.get("jh_order_id"):
        logger.warning("faceid callback for another session", extra={"verification_id": verification_id})
        raise errors.InvalidCallback("the callback belongs to another session")
    redirect = item.get("redirect_url")
    if item.get("status") != "pending" or not item.get("jh_order_id"):
        return CallbackOutcome(records.public_view(item), redirect, False)  # final already (a replay)
    if clock.now() > float(item.get("session_expires_at", 0)):
        return CallbackOutcome(records.public_view(item), redirect, False)  # expired: the reconciler settles it
    return confirm(item, wait=CALLBACK_WAIT_SECONDS)


def search_lease_seconds() -> float:
    """How long one search may take at most (every attempt's connect and read timeouts, the backoff
    between them, a margin): a lease never ends while its holder can still be waiting for an answer."""
    from idv.http import CONNECT_TIMEOUT, RetryPolicy
    from idv.providers.juhe import DEFAULT_READ_TIMEOUTS

    policy = RetryPolicy()
    read = get_settings().provider_read_timeout or DEFAULT_READ_TIMEOUTS["faceid_search"]
    return (
        policy.attempts * (CONNECT_TIMEOUT + read)
        + (policy.attempts - 1) * policy.max_delay
        + SEARCH_LEASE_MARGIN_SECONDS
    )


def _claim_search(item: dict[str, Any], now: float) -> str | None:
    """Take the session's search lease (one search at a time, MAX_SEARCHES in all); None when not given."""
    token = secrets.token_hex(8)
    taken = claims.repository().apply(
        records.update(
            claims.repository().table,
            records.record_key(item["verification_id"]),
            sets={"search_until": int(now + search_lease_seconds()) + 1, "search_token": token},
            adds={"search_count": 1},
            condition=(
                "#status = :pending AND attribute_exists(jh_order_id)"
                " AND (attribute_not_exists(search_until) OR search_until < :now)"
                " AND (attribute_not_exists(search_count) OR search_count < :max)"
            ),
            names={"#status": "status"},
            values={":pending": "pending", ":now": int(now), ":max": MAX_SEARCHES},
        )
    )
    return token if taken else None


def _release_search(
    verification_id: str, token: str, reconcile_at: int | None, usage: dict[str, int] | None = None
) -> None:
    sets = {"reconcile_at": reconcile_at} if reconcile_at is not None else {}
    claims.repository().apply(
        records.update(
            claims.repository().table,
            records.record_key(verification_id),
            sets=sets,
            adds=usage or {},  # the search's call, for the usage report (in the same write)
            removes=("search_until", "search_token"),
            condition="#token = :token",
            names={"#token": "search_token"},
            values={":token": token},
        )
    )


def _wait_for_winner(verification_id: str, wait: float) -> dict[str, Any] | None:
    """The record once the search lease's holder is done with it (or after `wait` seconds)."""
    deadline = time.monotonic() + wait
    item = claims.repository().get(verification_id)
    while item is not None and item.get("status") == "pending" and item.get("search_token"):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
        item = claims.repository().get(verification_id)
    return item


def _next_look(item: dict[str, Any], now: float) -> int | None:
    """When the reconciler should look again at a session without a result (None: never, expire it)."""
    expires = float(item.get("session_expires_at", 0))
    if now > expires:
        return None
    return int(min(now + RECONCILE_EVERY_SECONDS, expires + 1))


def confirm(
    item: dict[str, Any], *, wait: float = 0.0, by_reconciler: bool = False, now: float | None = None
) -> CallbackOutcome:
    """Under the session's search lease, ask faceid/search (the only trusted source) and finish the record.

    Without the lease (another search is running, or the bound is reached) nothing is called: the
    outcome is read from the record (after waiting up to `wait` seconds for the winner).
    """
    settings = get_settings()
    verification_id = item["verification_id"]
    redirect = item.get("redirect_url")
    now = clock.now() if now is None else now
    token = _claim_search(item, now)
    if token is None:
        if by_reconciler and now > float(item.get("session_expires_at", 0)):
            current = claims.repository().get(verification_id) or item
            if int(current.get("search_count") or 0) >= MAX_SEARCHES and not current.get("search_token"):
                return _end(current, None, None, now)  # no search left: the session ends expired
        waited = _wait_for_winner(verification_id, wait) if wait else None
        return CallbackOutcome(records.public_view(waited or item), redirect, False)
    secret = get_provider_secrets(settings.provider_secret_id)
    threshold = float(settings.face_score_threshold if item.get("threshold") is None else item["threshold"])
    http.take_sent()
    try:
        result = providers.juhe_client().faceid_result(
            key=secret.juhe_faceid_key, jh_order_id=item["jh_order_id"], threshold=threshold
        )
    except errors.NotFound:
        count_provider_call("juhe", "faceid", False)
        result = None
        used = checks.usage_of(False, http.take_sent())
    except errors.ProviderError as exc:
        count_provider_call("juhe", "faceid", exc.charged)
        used = checks.usage_of(exc.charged, http.take_sent())
        if exc.code in TRANSIENT_SEARCH_ERRORS or type(exc) is errors.ProviderUnavailable:
            logger.warning("faceid search failed", extra={"verification_id": verification_id, "code": exc.code})
            _release_search(verification_id, token, _next_look(item, now) if by_reconciler else None, used)
            return CallbackOutcome(records.public_view(item), redirect, False, True)
        return _end(item, token, exc, now, used)
    except Exception as exc:  # an answer no parser expected: never searched again for this session
        logger.exception("faceid search answer not usable", extra={"verification_id": verification_id})
        count_provider_call("juhe", "faceid", None)
        unusable = errors.ProviderUnavailable(
            f"the faceid/search answer could not be used ({type(exc).__name__})", provider="juhe", charged=None
        )
        return _end(item, token, unusable, now, checks.usage_of(None, max(1, http.take_sent())))
    else:
        count_provider_call("juhe", "faceid", result.charged if result else False)
        used = checks.usage_of(result.charged if result else False, http.take_sent())
    if result is None:
        next_look = _next_look(item, now)
        if by_reconciler and next_look is None:
            return _end(item, token, None, now, used)  # the one look after the 30 minutes found nothing
        _release_search(verification_id, token, next_look if by_reconciler else None, used)
        return CallbackOutcome(records.public_view(item), redirect, False, True)
    done = records.apply_result(item, result, now)
    done["charged"] = True  # faceid/query was billed when the session started
    done["provider_order_id"] = item.get("jh_order_id")
    return _finish(done, token, redirect, used)


def _end(
    item: dict[str, Any],
    token: str | None,
    exc: errors.IdvError | None,
    now: float,
    used: dict[str, int] | None = None,
) -> CallbackOutcome:
    """End a session without a result: `expired` (no result in time) or `error` (an unusable answer)."""
    done = dict(item)
    if exc is None:
        done.update(
            status="expired",
            decision=None,
            completed_at=clock.iso(now),
            error={"code": "session_expired", "detail": "the person did not finish liveness in time"},
        )
    else:
        done = records.apply_error(item, exc.code, exc.detail, True, now)  # faceid/query was billed
    return _finish(done, token, item.get("redirect_url"), used)


def _finish(
    done: dict[str, Any], token: str | None, redirect: str | None, used: dict[str, int] | None = None
) -> CallbackOutcome:
    """The session's one transition, under the search lease (or, without one, while no search runs).

    `used`: the search this holder made, added to the record's usage counts in the same write (the
    lease excludes every other writer of them)."""
    repository = claims.repository()
    usage = {name: int(done.get(name) or 0) + amount for name, amount in (used or {}).items()}
    write = repository.finish_write(done, claim_token=token, token_attribute="search_token", extra=usage)  # noqa: S106
    changed = False
    for attempt in range(claims.FINISH_ATTEMPTS):
        try:
            changed = repository.apply(write)
            break
        except Exception as exc:
            if not claims.is_storage_error(exc) or attempt + 1 == claims.FINISH_ATTEMPTS:
                raise
            time.sleep(claims.backoff(attempt))
    verification_id = done["verification_id"]
    searched = token is not None
    if not changed:
        current = repository.get(verification_id) or done
        return CallbackOutcome(records.public_view(current), redirect, False, searched)
    if done["status"] != "expired":
        checks.log_outcome("faceid", done)
    logger.info(
        "faceid session finished",
        extra={"verification_id": verification_id, "status": done["status"], "decision": done.get("decision")},
    )
    return CallbackOutcome(records.public_view(done), redirect, True, searched)


def reconcile(now: float | None = None, limit: int = 200) -> dict[str, int]:
    """Look at every open session that is due: confirm it, or end it once its time is up.

    Each session is isolated: a failure (storage, an unexpected answer) is logged and counted, and the
    run goes on with the next one.
    """
    repository = claims.repository()
    now = clock.now() if now is None else now
    stats = {"seen": 0, "searched": 0, "completed": 0, "expired": 0, "error": 0, "unchanged": 0, "failed": 0}
    for verification_id, expires in repository.pending_faceid_ids(expired_before=now + SESSION_SECONDS + 1):
        if stats["searched"] >= limit:
            break
        try:
            item = repository.get(verification_id)
            if item is None or item.get("status") != "pending":
                continue
            # Due at its next look, and always once its 30 minutes are over (the one look after them).
            due = min(expires if item.get("reconcile_at") is None else float(item["reconcile_at"]), expires)
            if due > now:
                continue
            stats["seen"] += 1
            outcome = confirm(item, by_reconciler=True, now=now)
            stats["searched"] += outcome.searched
            status = outcome.record["status"] if outcome.changed else "unchanged"
            stats[status if status in stats else "unchanged"] += 1
        except Exception as exc:
            stats["failed"] += 1
            logger.exception(
                "faceid session not reconciled", extra={"verification_id": verification_id, "error": type(exc).__name__}
            )
    logger.info("reconciled faceid sessions", extra=stats)
    return stats
