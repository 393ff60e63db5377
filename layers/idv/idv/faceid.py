"""The FaceID H5 flow: start a session, take the browser return / provider notify, reconcile.

Nothing from the browser is trusted: the callback must carry a valid `sign` (md5(response + key),
compared in constant time) for the stored `jh_order_id`, and even then the result is fetched from
`faceid/search`. A session moves from pending to completed or expired exactly once (conditional
write); a forged, replayed or expired callback changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from idv import checks, clock, errors, events, privacy, records
from idv.config import get_settings
from idv.observability import count_decision, count_provider_call, logger
from idv.provider_secret import get_provider_secrets

SESSION_SECONDS = 30 * 60
# Plain http is accepted only for loopback hosts (local development, as OAuth allows: RFC 8252 §7.3),
# and only when such a host is on ALLOWED_REDIRECT_HOSTS.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class InvalidCallback(errors.InvalidInput):
    status = 400
    code = "invalid_callback"
    title = "Invalid FaceID callback"


def check_redirect_url(url: Any, allowed_hosts: tuple[str, ...]) -> str | None:
    """The customer's return URL: https and on ALLOWED_REDIRECT_HOSTS (exact host or `.suffix`)."""
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise errors.InvalidRequest("redirect_url must be a string")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise errors.InvalidRequest("redirect_url is not a valid URL") from None
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)
    if not secure or not host or parts.username or parts.password:
        raise errors.InvalidRequest("redirect_url must be an https URL without credentials")
    if not any(host == h or (h.startswith(".") and host.endswith(h)) for h in allowed_hosts):
        raise errors.InvalidRequest(
            "redirect_url host is not allowed; add it to the AllowedRedirectHosts parameter (ALLOWED_REDIRECT_HOSTS)"
        )
    return url


def callback_url(base_url: str, verification_id: str) -> str:
    return f"{base_url.rstrip('/')}/v1/faceid/callback/{verification_id}"


def start_session(payload: Any, base_url: str) -> dict[str, Any]:
    """Validate, call faceid/query, store the pending session; returns the session for the client."""
    settings = get_settings()
    consent, threshold, reference = checks.parse_common(payload, settings)
    person = checks.parse_person(payload, with_mobile=False)
    redirect = check_redirect_url(payload.get("redirect_url"), settings.allowed_redirect_hosts)
    model = payload.get("model", 1)
    device_type = payload.get("device_type", "H5")
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    verification_id = clock.new_verification_id(created)
    url = callback_url(base_url, verification_id)
    try:
        session = checks.juhe_client().faceid_start(
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
        # As for the other checks: the failed start is stored as an `error` record (with what is known
        # about the charge) and the problem carries its verification_id.
        failed = records.apply_error(
            _session_record(verification_id, person, consent, reference, secret, created),
            exc.code,
            exc.detail,
            exc.charged,
            clock.now(),
        )
        records.Repository(settings.verifications_table).create(failed)
        logger.warning(
            "faceid session start failed",
            extra={
                "verification_id": verification_id,
                "code": exc.code,
                "provider_code": exc.provider_code,
                "charged": exc.charged,
            },
        )
        exc.extra["verification_id"] = verification_id
        raise
    count_provider_call("juhe", "faceid", True)
    record = _session_record(verification_id, person, consent, reference, secret, created)
    record.update(
        charged=True,
        provider_order_id=session.jh_order_id,
        pending_faceid="1",
        session_expires_at=int(created) + SESSION_SECONDS,
        jh_order_id=session.jh_order_id,
        redirect_url=redirect,
        threshold=threshold,
    )
    records.Repository(settings.verifications_table).create(record)
    logger.info("faceid session started", extra={"verification_id": verification_id})
    return {
        "verification_id": verification_id,
        "status": "pending",
        "verify_url": session.verify_url,
        "expires_at": clock.iso(created + SESSION_SECONDS),
    }


def _session_record(
    verification_id: str,
    person: checks.Person,
    consent: dict[str, Any],
    reference: str | None,
    secret: Any,
    created: float,
) -> dict[str, Any]:
    """A FaceID record with the masked subject, ID-number HMAC and TTL (no session fields yet)."""
    record = records.new_record(
        verification_id=verification_id,
        check="faceid",
        provider="juhe",
        subject=privacy.mask_subject(name=person.name, id_number=person.id_number),
        created=created,
        client_reference=reference,
        consent={**consent, "granted_at": clock.iso(created)},
    )
    record.update(
        id_hash=privacy.hmac_id_number(secret.pii_hmac_key, person.id_number),
        expires_at=int(created) + get_settings().retention_seconds,
    )
    return record


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    record: dict[str, Any]
    redirect_url: str | None
    changed: bool


def handle_callback(verification_id: str, response: Any, sign: Any) -> CallbackOutcome:
    """Check the signed return, confirm with faceid/search, finish the record at most once."""
    from idv.providers.juhe import verify_return_signature

    settings = get_settings()
    if not clock.is_verification_id(verification_id):
        raise errors.NotFound("no such verification")
    repository = records.Repository(settings.verifications_table)
    item = repository.get(verification_id)
    if item is None or item.get("check") != "faceid":
        raise errors.NotFound("no such verification")
    secret = get_provider_secrets(settings.provider_secret_id)
    if (
        not isinstance(response, str)
        or not isinstance(sign, str)
        or not verify_return_signature(response, sign, secret.juhe_faceid_key)
    ):
        logger.warning("faceid callback with a bad signature", extra={"verification_id": verification_id})
        raise InvalidCallback("the callback signature does not verify")
    try:
        returned = json.loads(response)
        returned_order = returned["result"]["jh_order_id"]
    except (ValueError, KeyError, TypeError):
        raise InvalidCallback("the callback response is not the documented JSON") from None
    if returned_order != item.get("jh_order_id"):
        logger.warning("faceid callback for another session", extra={"verification_id": verification_id})
        raise InvalidCallback("the callback belongs to another session")
    outcome = CallbackOutcome(records.public_view(item), item.get("redirect_url"), False)
    if item.get("status") != "pending":
        return outcome  # replay: the record is final already
    if clock.now() > float(item.get("session_expires_at", 0)):
        return outcome  # expired: only the reconciler settles it
    confirmed = confirm(item)
    if confirmed is not None:
        return confirmed
    # Nothing changed here: the provider has no result yet, or the other callback (browser return and
    # notify arrive together) finished the record first; answer with what is stored now.
    current = repository.get(verification_id) or item
    return CallbackOutcome(records.public_view(current), item.get("redirect_url"), False)


def confirm(item: dict[str, Any], *, expire_if_unfinished: bool = False) -> CallbackOutcome | None:
    """Ask faceid/search (the only trusted source) and finish the record; None when nothing changed."""
    settings = get_settings()
    secret = get_provider_secrets(settings.provider_secret_id)
    repository = records.Repository(settings.verifications_table)
    verification_id = item["verification_id"]
    threshold = float(settings.face_score_threshold if item.get("threshold") is None else item["threshold"])
    try:
        result = checks.juhe_client().faceid_result(
            key=secret.juhe_faceid_key, jh_order_id=item["jh_order_id"], threshold=threshold
        )
    except errors.NotFound:
        result = None
    except errors.ProviderError as exc:
        count_provider_call("juhe", "faceid", exc.charged)
        logger.warning("faceid search failed", extra={"verification_id": verification_id, "code": exc.code})
        return None
    else:
        count_provider_call("juhe", "faceid", result.charged if result else False)
    now = clock.now()
    if result is None:
        if not expire_if_unfinished:
            return None
        done = dict(item)
        done.update(
            status="expired",
            decision=None,
            completed_at=clock.iso(now),
            error={"code": "session_expired", "detail": "the person did not finish liveness in time"},
        )
    else:
        done = records.apply_result(item, result, now)
        done["charged"] = True  # faceid/query was billed when the session started
        done["provider_order_id"] = item.get("jh_order_id")
    if not repository.finish(done):
        return None
    public = records.public_view(done)
    if done["status"] == "completed":
        count_decision("faceid", public["decision"])
        events.publish_completed(public, settings.event_bus_name)
    logger.info(
        "faceid session finished",
        extra={"verification_id": verification_id, "status": done["status"], "decision": public.get("decision")},
    )
    return CallbackOutcome(public, item.get("redirect_url"), True)


def reconcile(now: float | None = None, limit: int = 200) -> dict[str, int]:
    """Settle sessions whose time is up and whose callback never came: completed or expired."""
    settings = get_settings()
    repository = records.Repository(settings.verifications_table)
    now = clock.now() if now is None else now
    stats = {"seen": 0, "completed": 0, "expired": 0, "unchanged": 0}
    for verification_id, _expires in repository.pending_faceid_ids(expired_before=now):
        if stats["seen"] >= limit:
            break
        stats["seen"] += 1
        item = repository.get(verification_id)
        if item is None or item.get("status") != "pending":
            stats["unchanged"] += 1
            continue
        outcome = confirm(item, expire_if_unfinished=True)
        if outcome is None:
            stats["unchanged"] += 1
        else:
            stats["completed" if outcome.record["status"] == "completed" else "expired"] += 1
    logger.info("reconciled faceid sessions", extra=stats)
    return stats


def browser_return_location(redirect_url: str, record: dict[str, Any]) -> str:
    """redirect_url with verification_id and status added to its query (no personal data)."""
    parts = urlsplit(redirect_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [("verification_id", record["verification_id"]), ("status", record["status"])]
    if record.get("decision"):
        query.append(("decision", record["decision"]))
    return urlunsplit(parts._replace(query=urlencode(query)))
