"""Request and response models of the public API: one request model per route, validated once.

Each field carries its domain validator (`idv.validation`, `idv.redirects`), which raises the typed
error of its field; `domain` keeps that error's problem code through pydantic (as the error `type`),
and `api`'s RequestValidationError handler turns it back into the same problem+json. Fields a route
does not define are refused (`extra="forbid"`). Handlers use the validated `body`.

The public record shape is `Verification`; `records.PUBLIC_FIELDS` is derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

from idv import errors, validation

Check = Literal["compare", "four_factor", "portrait", "faceid"]
UploadCheck = Literal["compare", "four_factor", "portrait"]
UploadContentType = Literal["image/jpeg", "image/png", "image/webp"]


def domain(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`check` as a pydantic validator: its IdvError leaves as a pydantic error typed with the problem code."""

    def run(value: Any) -> Any:
        try:
            return check(value)
        except errors.InvalidInput as exc:  # a ConfigurationError is not the request's fault: it propagates
            raise PydanticCustomError(exc.code, "{detail}", {"detail": exc.detail}) from None

    return run


def _threshold(value: Any) -> float:
    from idv.config import get_settings

    return validation.validate_threshold(value, get_settings().face_score_threshold)


def _redirect_url(value: Any) -> str | None:
    from idv import redirects
    from idv.config import get_settings

    return redirects.check_redirect_url(value, get_settings().allowed_redirect_hosts)


class Consent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    granted: bool = Field(description="Must be true: the person agreed to this face check")
    text_version: str = Field(description="Version of the consent text the person saw", max_length=64)


Name = Annotated[
    str,
    Field(description="Name as on the ID card (Chinese characters, · for minority names)", max_length=64),
    AfterValidator(domain(validation.validate_name)),
]
IdNumber = Annotated[
    str,
    Field(description="18-character resident ID number", max_length=32),
    AfterValidator(domain(validation.validate_id_number)),
]
Mobile = Annotated[
    str,
    Field(description="Mainland mobile number (+86, spaces and dashes tolerated)", max_length=32),
    AfterValidator(domain(validation.validate_mobile)),
]
ConsentField = Annotated[
    Consent,
    BeforeValidator(domain(validation.validate_consent)),
    Field(description="Separate consent to face recognition (required)"),
]
Threshold = Annotated[
    StrictFloat | StrictInt | None,
    AfterValidator(domain(_threshold)),
    Field(description="Face score threshold, from the deployment's FACE_SCORE_THRESHOLD up to 100 (default: it)"),
]
# Length limits sit on the `str` inside the optional type: on `str | None` pydantic would apply
# `max_length` to None too (a TypeError, found by the fuzzer).
ClientReference = Annotated[
    Annotated[str, Field(max_length=128)] | None,
    AfterValidator(domain(validation.validate_client_reference)),
    Field(description="Your own opaque reference, echoed back (never personal data)"),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Cheap checks first: pydantic validates in this order.
    consent: ConsentField = Field(default=None, validate_default=True)
    client_reference: ClientReference = None
    name: Name
    id_number: IdNumber


class _FaceRequest(_Request):
    threshold: Threshold = Field(default=None, validate_default=True)


class CompareRequest(_FaceRequest):
    image: str = Field(description="Selfie, base64 (a data:image/...;base64, prefix is tolerated)")


class PortraitRequest(CompareRequest):
    pass


class FourFactorRequest(_Request):
    """No `threshold`: the four-factor decision is the provider's `res` (DESIGN §4), not a score cut-off."""

    mobile: Mobile
    image: str = Field(description="Selfie, base64 (a data:image/...;base64, prefix is tolerated)")


class FaceIdSessionRequest(_FaceRequest):
    redirect_url: Annotated[
        Annotated[str, Field(max_length=2048)] | None,
        Field(description="https URL on an allowed host the browser returns to"),
        AfterValidator(domain(_redirect_url)),
    ] = None
    model: StrictInt = Field(default=1, ge=1, le=5, description="Juhe liveness model 1–5")
    device_type: Literal["H5", "WEB"] = Field(default="H5")


class UploadRequest(_FaceRequest):
    check: UploadCheck = Field(default="compare")
    mobile: Mobile | None = Field(default=None, description="Required when check is four_factor")
    content_type: UploadContentType = Field(default="image/jpeg")

    @model_validator(mode="before")
    @classmethod
    def _four_factor_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("check") == "four_factor":
            if data.get("mobile") is None:
                raise PydanticCustomError("invalid_request", "mobile is required when check is four_factor")
            if "threshold" in data:
                raise PydanticCustomError("invalid_request", "threshold does not apply to check four_factor")
        return data


PageLimit = Annotated[StrictInt, Field(ge=1, le=100, description="Most records in one page (1–100)")]
NextToken = Annotated[
    str | None,
    Field(description="The `next_token` of the previous page (opaque); absent for the first page", max_length=256),
]


class SubjectSearchRequest(BaseModel):
    """POST /v1/subjects/search (DESIGN §9): the ID number travels in the body, never in a URL."""

    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber
    limit: PageLimit = 50
    next_token: NextToken = None


class SubjectEraseRequest(BaseModel):
    """POST /v1/subjects/erase (DESIGN §9)."""

    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber


class FaceResult(BaseModel):
    result: str
    score: float | None = None
    provider_score: str | None = None
    threshold: float | None = None


class MobileResult(BaseModel):
    result: str
    carrier: str | None = None


class LivenessResult(BaseModel):
    passed: bool
    code: str | None = None
    score: float | None = None


class Verification(BaseModel):
    """The verification record (DESIGN §4)."""

    verification_id: str
    check: Check
    provider: Literal["juhe", "apetime"]
    status: Literal["pending", "completed", "error", "expired"]
    decision: Literal["pass", "fail", "review"] | None = None
    reasons: list[str] = []
    identity: str | None = None
    face: FaceResult | None = None
    mobile: MobileResult | None = None
    liveness: LivenessResult | None = None
    charged: bool | None = None
    provider_order_id: str | None = None
    subject: dict[str, str | None] | None = None
    client_reference: str | None = None
    consent: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: str | None = None
    completed_at: str | None = None


class VerificationPage(BaseModel):
    """A page of records, newest first; `next_token` is null on the last page."""

    items: list[Verification]
    next_token: str | None = None


class SubjectErasure(BaseModel):
    erased: int = Field(description="Records erased by this call (0 when there was nothing left)")


class UsageDecisions(BaseModel):
    pass_: int = Field(alias="pass", description="Completed checks that passed")
    fail: int
    review: int


class UsageCounts(BaseModel):
    provider_calls: int = Field(description="Calls sent to the provider (FaceID: the start and every search)")
    charged_calls: int = Field(description="Calls the provider billed")
    unknown_charge_calls: int = Field(description="Calls whose charge is unknown (counted as charged in spend)")
    spend: str = Field(description="CNY, a decimal string: (charged + unknown) x PROVIDER_PRICES of the check")
    decisions: UsageDecisions


class UsageDay(UsageCounts):
    date: str = Field(description="The day, YYYY-MM-DD in UTC+8 (the record's creation day)")
    check: str
    provider: str


class UsageReport(BaseModel):
    days: list[UsageDay] = Field(description="One row per day x check x provider that had any use")
    totals: UsageCounts


class FaceIdSession(BaseModel):
    verification_id: str
    status: str
    verify_url: str
    expires_at: str


class UploadTicket(BaseModel):
    verification_id: str
    status: str
    upload: dict[str, Any] = Field(description="Presigned POST: url and form fields; send the file as field 'file'")
    max_bytes: int
    expires_at: str


class CallbackAck(BaseModel):
    """The answer to the provider's notify POST (the document defines no acknowledgement)."""

    verification_id: str
    status: Literal["pending", "completed", "error", "expired"]


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
