"""Typed errors of the idv layer; each carries the HTTP status and stable problem `code` we answer with.

    IdvError                          (status, code, title, detail)
    ├── InvalidInput                  422/400  bad request data, refused before any provider call
    │   ├── InvalidIdNumber           422  invalid_id_number
    │   ├── InvalidMobile             422  invalid_mobile
    │   ├── InvalidName               422  invalid_name
    │   ├── ConsentRequired           422  consent_required
    │   ├── ThresholdTooLow           422  threshold_too_low (below the deployment's FACE_SCORE_THRESHOLD)
    │   ├── InvalidRequest            400  invalid_request (malformed JSON, missing / wrong-typed field)
    │   ├── InvalidCallback           400  invalid_callback (FaceID return/notify: bad signature, foreign order)
    │   ├── UnsupportedMediaType      415  unsupported_media_type (a body that is not JSON)
    │   └── ImageError                422  image_unreadable
    │       ├── ImageTooSmall         422  image_too_small
    │       └── ImageTooLarge         413  image_too_large (bytes or pixels: decompression bomb)
    ├── NotFound                      404  not_found
    ├── IdempotencyKeyReused          409  idempotency_key_reused
    ├── IdempotencyInProgress         409  idempotency_in_progress (same key still running; retry)
    ├── VerificationErased            410  verification_erased (the request's record was erased; nothing replayed)
    ├── ResultNotStored               503  result_not_stored (provider answered, storage failed; result in the body)
    ├── CheckInterrupted              503  check_interrupted (an earlier attempt may have been charged; not repeated)
    ├── StorageUnavailable            503  storage_unavailable (storage failed before any provider call)
    ├── ConfigurationError            500  configuration_error (missing/malformed secret or setting; says what to fix)
    └── ProviderError                 (provider, provider_code, charged, auto_retry)
        ├── ProviderRateLimited       429  provider_rate_limited   (10011, 10012, 1006)
        ├── ProviderUnavailable       503  provider_unavailable    (maintenance, 5xx, non-JSON, connect failure, ...)
        │   └── ProviderAnswerMalformed 503 provider_unavailable  (answered, but not in the documented shape, or a
        │                                                          number DynamoDB cannot hold: unusable, never retried
        │                                                          for the same session; charged from the body)
        ├── ProviderTimeout           504  provider_timeout        (read timeout: may have been charged, never retried)
        └── ProviderRejected          502  provider_rejected       (credentials, permissions, parameters we sent)

`charged` is True, False, or None when it cannot be known (read timeout after the request was sent).
`auto_retry` is True only where nothing can have been charged (connection never established, explicit
rate-limit or maintenance answers); the HTTP client retries those and nothing else.
Messages never contain personal data: callers pass field names and codes, never values.
"""

from __future__ import annotations

from typing import Any


class IdvError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def to_problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error (no personal data by construction)."""
        problem: dict[str, Any] = {
            "type": f"https://idv.example/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        problem.update({k: v for k, v in self.extra.items() if v is not None})
        return problem


class InvalidInput(IdvError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class InvalidIdNumber(InvalidInput):
    code = "invalid_id_number"
    title = "Invalid ID number"


class InvalidMobile(InvalidInput):
    code = "invalid_mobile"
    title = "Invalid mobile number"


class InvalidName(InvalidInput):
    code = "invalid_name"
    title = "Invalid name"


class ConsentRequired(InvalidInput):
    code = "consent_required"
    title = "Consent required"


class ThresholdTooLow(InvalidInput):
    code = "threshold_too_low"
    title = "Threshold below the deployment's"


class InvalidRequest(InvalidInput):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class InvalidCallback(InvalidInput):
    status = 400
    code = "invalid_callback"
    title = "Invalid FaceID callback"


class UnsupportedMediaType(InvalidInput):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ImageError(InvalidInput):
    code = "image_unreadable"
    title = "Image unreadable"


class ImageTooSmall(ImageError):
    code = "image_too_small"
    title = "Image too small"


class ImageTooLarge(ImageError):
    status = 413
    code = "image_too_large"
    title = "Image too large"


class NotFound(IdvError):
    status = 404
    code = "not_found"
    title = "Not found"


class IdempotencyKeyReused(IdvError):
    status = 409
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class IdempotencyInProgress(IdvError):
    status = 409
    code = "idempotency_in_progress"
    title = "A request with this idempotency key is in progress"


class VerificationErased(IdvError):
    status = 410
    code = "verification_erased"
    title = "Verification erased"


class ResultNotStored(IdvError):
    """The provider answered (and may have billed) but the result could not be stored.

    The problem carries the verification id and, when the result was computed, the public record
    (`verification`) so the client holds what was paid for even though storage failed.
    """

    status = 503
    code = "result_not_stored"
    title = "Result could not be stored"

    def __init__(
        self,
        detail: str | None = None,
        *,
        charged: bool | None,
        verification_id: str,
        verification: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, verification_id=verification_id, verification=verification)
        self.charged = charged


class CheckInterrupted(IdvError):
    """A claim was found whose provider call may have happened (a crash, a timeout, a storage outage
    right after the call): it is never called again, and this is its stored answer."""

    status = 503
    code = "check_interrupted"
    title = "Check interrupted"


class StorageUnavailable(IdvError):
    """Storage failed before anything was sent to a provider: nothing was charged; retry."""

    status = 503
    code = "storage_unavailable"
    title = "Storage unavailable"


class ConfigurationError(IdvError):
    status = 500
    code = "configuration_error"
    title = "Gateway misconfigured"


class ProviderError(IdvError):
    status = 502
    code = "provider_error"
    title = "Provider error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        provider: str,
        provider_code: str | None = None,
        charged: bool | None = False,
        auto_retry: bool = False,
        provider_order_id: str | None = None,
    ) -> None:
        super().__init__(detail, provider=provider, provider_code=provider_code)
        self.provider = provider
        self.provider_code = provider_code
        self.charged = charged
        self.auto_retry = auto_retry
        self.provider_order_id = provider_order_id


class ProviderRateLimited(ProviderError):
    status = 429
    code = "provider_rate_limited"
    title = "Provider rate limit reached"


class ProviderUnavailable(ProviderError):
    status = 503
    code = "provider_unavailable"
    title = "Provider unavailable"


class ProviderAnswerMalformed(ProviderUnavailable):
    """The provider answered, but not in the documented shape (a missing or odd field, a number DynamoDB
    cannot hold): the answer cannot be used. Same status and problem code as ProviderUnavailable, so
    existing handlers keep working; a caller that must settle rather than wait (the FaceID reconciler)
    catches this class. `charged` says what the body says about billing."""


class ProviderTimeout(ProviderError):
    status = 504
    code = "provider_timeout"
    title = "Provider timed out"


class ProviderRejected(ProviderError):
    status = 502
    code = "provider_rejected"
    title = "Provider rejected the request"


def class_of(code: str) -> type[IdvError] | None:
    """The error class whose problem `code` this is (the first in the tree, breadth first), or None."""
    pending: list[type[IdvError]] = [IdvError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return None
