"""Sandbox settings: documented sandbox credentials, time windows, fault timings, the clock.

Every field can also come from the environment (`SandboxConfig.from_env()`): `SANDBOX_` + the field name in
upper case, e.g. `SANDBOX_JUHE_OPENID`, `SANDBOX_APETIME_WINDOW_S`, `SANDBOX_PUBLIC_URL`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

DEFAULT_CREDENTIALS = {
    "juhe_verifyface_key": "sandbox-juhe-verifyface-key",
    "juhe_four_factor_key": "sandbox-juhe-four-factor-key",
    "juhe_faceid_key": "sandbox-juhe-faceid-key",
    "juhe_openid": "sandbox-juhe-openid",
    "apetime_app_key": "sandbox-apetime-app-key",
    "apetime_app_secret": "sandbox-apetime-app-secret",
}


APETIME_BASE64_CHOICES = ("urlsafe", "both")
FACEID_SIGN_FORMS = ("decoded", "encoded")


@dataclass
class SandboxConfig:
    juhe_verifyface_key: str = DEFAULT_CREDENTIALS["juhe_verifyface_key"]
    juhe_four_factor_key: str = DEFAULT_CREDENTIALS["juhe_four_factor_key"]
    juhe_faceid_key: str = DEFAULT_CREDENTIALS["juhe_faceid_key"]
    juhe_openid: str = DEFAULT_CREDENTIALS["juhe_openid"]
    apetime_app_key: str = DEFAULT_CREDENTIALS["apetime_app_key"]
    apetime_app_secret: str = DEFAULT_CREDENTIALS["apetime_app_secret"]
    # Apetime accepts a request whose timestamp is within this many seconds of the sandbox clock.
    apetime_window_s: float = 300.0
    # Alphabets `selfie_base64` may use: "urlsafe" (default: only what the document's Java sample proves,
    # Base64.getUrlEncoder(); decoded as getUrlDecoder() does, padding optional, '+' and '/' refused) or
    # "both" (also the standard alphabet, for clients that have not been proven against the provider).
    apetime_base64: str = "urlsafe"
    # What the FaceID return `sign` = md5(response + key) is computed over: "decoded" (the JSON text,
    # default) or "encoded" (the value as placed in the returnUrl, quote(response, safe="")).
    faceid_sign_form: str = "decoded"
    # FaceID: verify_url / jh_order_id life, and how long a search result's `img` URL works.
    faceid_session_ttl_s: float = 1800.0
    faceid_img_ttl_s: float = 600.0
    # FaceID notify: attempts, pause before the n-th retry (n * backoff), timeout of one POST.
    notify_attempts: int = 3
    notify_backoff_s: float = 1.0
    notify_timeout_s: float = 5.0
    # Faults: how long a "read_timeout" stalls before dropping the connection (longer than any client's
    # read timeout), and the delay a "latency" fault adds when it does not say.
    read_timeout_fault_s: float = 30.0
    latency_fault_ms: int = 800
    # Providers' face rules: verifyface wants images "大小100K以内" (0 turns the check off); the face score
    # at or above which four-factor and FaceID count a face as the same person.
    juhe_max_image_bytes: int = 100 * 1024
    face_pass_score: float = 60.0
    # Base of the URLs the sandbox hands out (verify_url, img). Default: the address it listens on.
    public_url: str = ""
    # Wall clock in seconds (tests inject a fake one; POST /_sandbox/clock moves it forward).
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.apetime_base64 not in APETIME_BASE64_CHOICES:
            raise ValueError(f"apetime_base64 must be one of {APETIME_BASE64_CHOICES}")
        if self.faceid_sign_form not in FACEID_SIGN_FORMS:
            raise ValueError(f"faceid_sign_form must be one of {FACEID_SIGN_FORMS}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> SandboxConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "clock":
                continue
            raw = env.get(f"SANDBOX_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls, f.name, ""))
            values[f.name] = kind(raw) if kind in (int, float) else raw
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def juhe_keys(self) -> dict[str, str]:
        """key -> the Juhe API family it belongs to."""
        return {
            self.juhe_verifyface_key: "verifyface",
            self.juhe_four_factor_key: "four_factor",
            self.juhe_faceid_key: "faceid",
        }
