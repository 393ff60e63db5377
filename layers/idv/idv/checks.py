"""Running a check end to end: validate → prepare the image → call the provider → store → publish.

Used by the synchronous API functions and by the upload worker, so both behave the same. Input is
refused before anything is paid for; a provider failure after the request left is stored as an
`error` record (with what is known about the charge) and raised with the verification id attached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from idv import clock, errors, events, privacy, records, validation
from idv.config import Settings, get_settings
from idv.observability import count_decision, count_provider_call, logger
from idv.provider_secret import ProviderSecrets, get_provider_secrets

CHECKS = ("compare", "four_factor", "portrait")
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

    def __repr__(self) -> str:
        return f"CheckRequest(check={self.check!r}, <redacted>)"


def parse_person(payload: dict[str, Any], *, with_mobile: bool) -> Person:
    name = validation.validate_name(validation.require_string(payload, "name"))
    id_number = validation.validate_id_number(validation.require_string(payload, "id_number"))
    mobile = validation.validate_mobile(validation.require_string(payload, "mobile")) if with_mobile else None
    return Person(name=name, id_number=id_number, mobile=mobile)


def parse_common(payload: Any, settings: Settings) -> tuple[dict[str, Any], float, str | None]:
    """Consent, threshold and client reference, shared by every check's request."""
    if not isinstance(payload, dict):
        raise errors.InvalidRequest("the request body must be a JSON object")
    consent = validation.validate_consent(payload.get("consent"))
    threshold = validation.validate_threshold(payload.get("threshold"), settings.face_score_threshold)
    reference = validation.validate_client_reference(payload.get("client_reference"))
    return consent, threshold, reference


def image_target(check: str) -> Any:
    from idv import images

    return images.APETIME if PROVIDER_OF[check] == "apetime" else images.JUHE


def parse_check_request(check: str, payload: Any, settings: Settings | None = None) -> CheckRequest:
    """Validate a synchronous check request; cheap field checks first, the image last."""
    from idv import images

    settings = settings or get_settings()
    consent, threshold, reference = parse_common(payload, settings)
    person = parse_person(payload, with_mobile=check == "four_factor")
    prepared = images.prepare_base64_image(validation.require_string(payload, "image"), image_target(check))
    return CheckRequest(check, person, consent, threshold, reference, prepared.base64())


@cache
def juhe_client() -> Any:
    from idv.providers.juhe import DEFAULT_READ_TIMEOUTS, JuheClient

    settings = get_settings()
    timeout = settings.provider_read_timeout
    timeouts = dict.fromkeys(DEFAULT_READ_TIMEOUTS, timeout) if timeout else None
    return JuheClient(base_url=settings.juhe_base_url, read_timeouts=timeouts)


@cache
def apetime_client() -> Any:
    from idv.providers.apetime import DEFAULT_READ_TIMEOUT, ApetimeClient

    settings = get_settings()
    return ApetimeClient(
        base_url=settings.apetime_base_url, read_timeout=settings.provider_read_timeout or DEFAULT_READ_TIMEOUT
    )


def call_provider(request: CheckRequest, verification_id: str, secret: ProviderSecrets, settings: Settings) -> Any:
    """One provider call for a prepared request; returns the normalized CheckResult."""
    person, image = request.person, request.image_b64
    if request.check == "compare":
        return juhe_client().verifyface(
            key=secret.juhe_verifyface_key,
            name=person.name,
            id_number=person.id_number,
            image_b64=image,
            threshold=request.threshold,
            encrypted=settings.juhe_compare_mode == "aes",
            openid=secret.juhe_openid,
        )
    if request.check == "four_factor":
        return juhe_client().four_factor(
            key=secret.juhe_four_factor_key,
            name=person.name,
            id_number=person.id_number,
            mobile=person.mobile,
            image_b64=image,
        )
    if request.check == "portrait":
        return apetime_client().portrait(
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


def run_check(
    request: CheckRequest, *, verification_id: str | None = None, stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one check and return its public record.

    Without `stored`, the record is created here (synchronous API). With `stored` (the upload worker's
    pending item), the pending record is finished with a conditional write.
    """
    settings = get_settings()
    secret = get_provider_secrets(settings.provider_secret_id)
    created = clock.now()
    verification_id = verification_id or clock.new_verification_id(created)
    record = stored or pending_record(request, verification_id, secret, created)
    repository = records.Repository(settings.verifications_table)
    provider = PROVIDER_OF[request.check]
    try:
        result = call_provider(request, verification_id, secret, settings)
    except (errors.ProviderError, errors.InvalidInput) as exc:
        charged = exc.charged if isinstance(exc, errors.ProviderError) else False
        count_provider_call(provider, request.check, charged)
        if stored is not None and worth_redelivery(exc):
            raise  # the upload worker lets the queue retry; the record stays pending
        failed = records.apply_error(record, exc.code, exc.detail, charged, clock.now())
        _store(repository, failed, created_here=stored is None)
        logger.warning(
            "check failed",
            extra={
                "verification_id": verification_id,
                "check": request.check,
                "code": exc.code,
                "provider_code": getattr(exc, "provider_code", None),
                "charged": charged,
            },
        )
        exc.extra["verification_id"] = verification_id
        raise
    count_provider_call(provider, request.check, result.charged)
    count_decision(request.check, result.decision)
    done = records.apply_result(record, result, clock.now())
    try:
        finished_here = _store(repository, done, created_here=stored is None)
    except errors.IdvError:
        raise
    except Exception as exc:  # storage failed after the provider answered (and may have billed)
        logger.exception("result not stored", extra={"verification_id": verification_id, "error": type(exc).__name__})
        raise errors.ResultNotStored(
            "the provider answered but the result could not be stored; replay with the same Idempotency-Key",
            charged=result.charged,
            verification_id=verification_id,
        ) from None
    if not finished_here:
        logger.info("record already finished", extra={"verification_id": verification_id})
        current = repository.get(verification_id)
        return records.public_view(current or done)
    public = records.public_view(done)
    events.publish_completed(public, settings.event_bus_name)
    logger.info(
        "check completed",
        extra={
            "verification_id": verification_id,
            "check": request.check,
            "decision": result.decision,
            "reasons": list(result.reasons),
            "charged": result.charged,
        },
    )
    return public


def worth_redelivery(exc: Exception) -> bool:
    """A failure that cost nothing and may pass later (rate limit, outage): retry rather than finish."""
    return isinstance(exc, (errors.ProviderRateLimited, errors.ProviderUnavailable)) and exc.charged is False


def _store(repository: records.Repository, record: dict[str, Any], *, created_here: bool) -> bool:
    if created_here:
        repository.create(record)
        return True
    return repository.finish(record)
