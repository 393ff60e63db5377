"""Running a check: validate → prepare the image → claim → call the provider → finish (`idv.claims`).

Used by the synchronous API functions and by the upload worker, so both behave the same. Input is
refused before anything is paid for; a provider failure after the request left is stored as an
`error` record (with what is known about the charge) whose answer carries the verification id.
The `Verification Completed` event leaves through the table's stream (the outbox), not from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idv import claims, clock, errors, privacy, providers, records
from idv.config import Settings, get_settings
from idv.idempotency import Answer, Key
from idv.observability import count_decision, count_provider_call, logger
from idv.provider_secret import ProviderSecrets, get_provider_secrets
from idv.results import CheckResult

PROVIDER_OF = {"compare": "juhe", "four_factor": "juhe", "portrait": "apetime", "faceid": "juhe"}


@dataclass(frozen=True, slots=True)
class Person:
    """Validated identity data of the person being checked (never logged, never stored raw)."""

    name: str
    id_number: str
    mobile: str | None = None

    def __repr__(self) -> str:
        return "Person(<redacted>)"


@dataclass(frozen=True, slots=True)
class CheckRequest:
    check: str
    person: Person
    consent: dict[str, Any]
    threshold: float
    client_reference: str | None = None
    image_b64: str | None = None  # provider-ready JPEG, base64
    image_digest: str | None = None  # sha256 of the decoded image (only ever inside the dedupe HMAC)

    def __repr__(self) -> str:
        return f"CheckRequest(check={self.check!r}, <redacted>)"


def image_target(check: str) -> Any:
    from idv import images

    return images.APETIME if PROVIDER_OF[check] == "apetime" else images.JUHE


def person_of(body: Any) -> Person:
    """The person of a validated request (`idv.schemas`): name, ID number, and mobile where it has one."""
    return Person(name=body.name, id_number=body.id_number, mobile=getattr(body, "mobile", None))


def consent_of(body: Any) -> dict[str, Any]:
    return {"granted": True, "text_version": body.consent.text_version}


def check_request(check: str, body: Any) -> CheckRequest:
    """A synchronous check from its validated request; the image is prepared last (the costly part)."""
    from idv import images

    threshold = getattr(body, "threshold", None)
    if threshold is None:  # four-factor has none: its decision is the provider's `res`
        threshold = get_settings().face_score_threshold
    from idv.controls import image_digest

    raw = images.decode_base64_image(body.image)
    prepared = images.prepare_image(raw, image_target(check))
    return CheckRequest(
        check, person_of(body), consent_of(body), threshold, body.client_reference, prepared.base64(), image_digest(raw)
    )


def dedupe_id(request: CheckRequest, secret: ProviderSecrets, settings: Settings) -> str | None:
    """The dedupe key of a request without an Idempotency-Key (DESIGN §8): HMAC of the route, the person,
    the decoded image's digest and every option that changes the answer; None when dedupe is off."""
    from idv import controls

    if not settings.dedupe_window_seconds or request.image_digest is None:
        return None
    person = request.person
    parts = {
        "name": person.name,
        "id_number": person.id_number,
        "mobile": person.mobile,
        "image": request.image_digest,
        "threshold": request.threshold,
        "mode": settings.juhe_compare_mode if request.check == "compare" else None,
        "consent": request.consent.get("text_version"),
        "client_reference": request.client_reference,
    }
    return controls.dedupe_id(secret.pii_hmac_key, request.check, parts)


def call_provider(
    request: CheckRequest, verification_id: str, secret: ProviderSecrets, settings: Settings
) -> CheckResult:
    """One provider call for a prepared request; returns the normalized CheckResult."""
    person, image = request.person, request.image_b64
    if image is None:
        raise errors.InvalidRequest("the check has no prepared image")
    if request.check == "compare":
        return providers.juhe_client().verifyface(
            key=secret.juhe_verifyface_key,
            name=person.name,
            id_number=person.id_number,
            image_b64=image,
            threshold=request.threshold,
            encrypted=settings.juhe_compare_mode == "aes",
            openid=secret.juhe_openid,
        )
    if request.check == "four_factor":
        if person.mobile is None:
            raise errors.InvalidRequest("four-factor needs a mobile number")
        return providers.juhe_client().four_factor(
            key=secret.juhe_four_factor_key,
            name=person.name,
            id_number=person.id_number,
            mobile=person.mobile,
            image_b64=image,
        )
    if request.check == "portrait":
        return providers.apetime_client().portrait(
            app_key=secret.apetime_app_key,
            app_secret=secret.apetime_app_secret,
            request_id=verification_id,
            name=person.name,
            id_number=person.id_number,
            image_b64=image,
            threshold=request.threshold,
        )
    raise errors.InvalidRequest(f"unknown check {request.check!r}")


def pending_record(
    request: CheckRequest, verification_id: str, secret: ProviderSecrets, created: float
) -> dict[str, Any]:
    """The stored item for a check about to run: masked subject, ID-number HMAC, TTL."""
    settings = get_settings()
    person = request.person
    record = records.new_record(
        verification_id=verification_id,
        check=request.check,
        provider=PROVIDER_OF[request.check],
        subject=privacy.mask_subject(name=person.name, id_number=person.id_number, mobile=person.mobile),
        created=created,
        client_reference=request.client_reference,
        consent={**request.consent, "granted_at": clock.iso(created)},
    )
    record["id_hash"] = privacy.hmac_id_number(secret.pii_hmac_key, person.id_number)
    record["expires_at"] = int(created) + settings.retention_seconds
    return record


def run_check(request: CheckRequest, *, key: Key | None = None, lease: float = 30.0) -> Answer:
    """A synchronous check: claim (with the Idempotency-Key, if any), call once, finish; the answer."""
    settings = get_settings()
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    record = pending_record(request, clock.new_verification_id(created), secret, created)
    if key is None:
        found = dedupe_id(request, secret, settings)
        if found is not None:
            record["dedupe_id"] = found  # the stream consumer publishes it once the record completes
    claimed = claims.begin(record, key, lease=lease)
    if isinstance(claimed, Answer):
        return claimed  # a replay (the key's stored answer) or a dedupe hit (the first completed answer)
    done = call_check(request, record, secret, settings)
    settled = claims.finish(claimed, done)
    if settled.here:
        log_outcome(request.check, done.record)
    return settled.answer


def call_check(
    request: CheckRequest, record: dict[str, Any], secret: ProviderSecrets, settings: Settings
) -> claims.Finish:
    """Call the provider once for a claimed record; the record's terminal state and the answer."""
    from idv import http

    verification_id = record["verification_id"]
    provider = PROVIDER_OF[request.check]
    http.take_sent()
    try:
        result = call_provider(request, verification_id, secret, settings)
    except (errors.ProviderError, errors.InvalidInput) as exc:
        charged = exc.charged if isinstance(exc, errors.ProviderError) else False
        count_provider_call(provider, request.check, charged)
        failed = failed_finish(record, exc, charged)
        failed.extra.update(usage_of(charged, http.take_sent()))
        return failed
    except Exception as exc:  # a bug or an answer no parser expected, after the request may have left
        logger.exception("provider answer not usable", extra={"verification_id": verification_id})
        count_provider_call(provider, request.check, None)
        unusable = errors.ProviderUnavailable(
            f"the provider's answer could not be used ({type(exc).__name__}); its charge is unknown",
            provider=provider,
            charged=None,
        )
        failed = failed_finish(record, unusable, None)
        failed.extra.update(usage_of(None, max(1, http.take_sent())))
        return failed
    count_provider_call(provider, request.check, result.charged)
    done = records.apply_result(record, result, clock.now())
    return claims.Finish(done, Answer(200, records.public_view(done)), extra=usage_of(result.charged, http.take_sent()))


def failed_finish(
    record: dict[str, Any], exc: errors.IdvError, charged: bool | None, *, called: bool = True
) -> claims.Finish:
    """An `error` record for a failed call; its answer is the problem, with the verification id.

    A failure that cost nothing frees the Idempotency-Key (a retry with it runs the check again).
    `called=False`: refused before anything was sent (an upload's image), no provider call to count.
    """
    failed = records.apply_error(record, exc.code, exc.detail, charged, clock.now())
    exc.extra["verification_id"] = record["verification_id"]
    extra = usage_of(charged) if called else {}
    return claims.Finish(failed, Answer.of_error(exc), extra=extra, keep_key=charged is not False)


def usage_of(charged: bool | None, calls: int = 1) -> dict[str, int]:
    """The record's usage attributes for one check's call (the usage report's source, `idv.controls`):
    the requests that reached the provider (`http.take_sent`: a retried refusal is one more), and whether
    the call that counted was charged (refusals that were retried cost nothing)."""
    return {"usage_calls": calls, "usage_charged": int(charged is True), "usage_unknown": int(charged is None)}


def log_outcome(check: str, record: dict[str, Any]) -> None:
    """Metrics and the log line of a record this invocation ended (counted once, by the one that ended it)."""
    if record.get("status") == "completed":
        count_decision(check, record.get("decision"))
        logger.info(
            "check completed",
            extra={
                "verification_id": record["verification_id"],
                "check": check,
                "decision": record.get("decision"),
                "reasons": list(record.get("reasons") or ()),
                "charged": record.get("charged"),
            },
        )
    else:
        error = record.get("error") or {}
        logger.warning(
            "check failed",
            extra={
                "verification_id": record["verification_id"],
                "check": check,
                "code": error.get("code"),
                "detail": error.get("detail"),  # details name codes, fields and settings, never personal data
                "charged": record.get("charged"),
            },
        )


def worth_redelivery(record: dict[str, Any]) -> bool:
    """A failure that cost nothing and may pass later (rate limit, outage): retry rather than finish."""
    error = record.get("error") or {}
    return record.get("charged") is False and error.get("code") in ("provider_rate_limited", "provider_unavailable")
