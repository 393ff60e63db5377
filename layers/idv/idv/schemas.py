"""Request and response models of the public API: they drive validation and the OpenAPI document.

Types are checked here; meaning (ID check digit, mobile format, name script, consent, image) is
checked by `idv.validation` / `idv.images` so each failure keeps its own stable problem code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Consent(BaseModel):
    granted: bool = Field(description="Must be true: the person agreed to this face check")
    text_version: str = Field(description="Version of the consent text the person saw", max_length=64)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="Name as on the ID card (Chinese characters, · for minority names)", max_length=64)
    id_number: str = Field(description="18-character resident ID number", max_length=32)
    consent: Consent | None = Field(default=None, description="Separate consent to face recognition (required)")
    threshold: float | None = Field(default=None, description="Face score threshold 0–100 (deployment default)")
    client_reference: str | None = Field(default=None, description="Your own reference, echoed back", max_length=128)


class CompareRequest(_Request):
    image: str = Field(description="Selfie, base64 (a data:image/...;base64, prefix is tolerated)")


class FourFactorRequest(CompareRequest):
    mobile: str = Field(description="Mainland mobile number (+86, spaces and dashes tolerated)", max_length=32)


class PortraitRequest(CompareRequest):
    pass


class FaceIdSessionRequest(_Request):
    redirect_url: str | None = Field(
        default=None, description="https URL on an allowed host the browser returns to", max_length=2048
    )
    model: int = Field(default=1, ge=1, le=5, description="Juhe liveness model 1–5")
    device_type: Literal["H5", "WEB"] = Field(default="H5")


class UploadRequest(_Request):
    check: Literal["compare", "four_factor", "portrait"] = Field(default="compare")
    mobile: str | None = Field(default=None, description="Required when check is four_factor", max_length=32)
    content_type: Literal["image/jpeg", "image/png", "image/webp"] = Field(default="image/jpeg")


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
    check: Literal["compare", "four_factor", "portrait", "faceid"]
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
