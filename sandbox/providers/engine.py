"""The four provider protocols, independent of HTTP: parameters in, documented JSON (or a fault) out.

Checks run in the order a careful provider would: key, parameters (presence, format), then the identity's
own fault, then the registry and the face comparison. Every call is written to the ledger with whether the
provider would bill it (Juhe: error_code 0; Apetime: charge 1).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import string
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sandbox.providers import codes
from sandbox.providers.config import SandboxConfig
from sandbox.providers.crypto import (
    FieldDecryptError,
    aes_decrypt_field,
    apetime_sign,
    apetime_sign_matches,
    faceid_sign,
)
from sandbox.providers.faceid import CAMERAS, Session, SessionStore, place_result, response_document, send_notify
from sandbox.providers.identities import (
    FOUR_FACTOR_MESSAGES,
    LIVENESS_MESSAGES,
    Identity,
    by_id_number,
    by_mobile,
    four_factor_res,
    lookalike_jpeg,
    no_face_jpeg,
    other_person_jpeg,
    selfie_jpeg,
    small_face_jpeg,
)
from sandbox.providers.matcher import FaceMatcher, FaceResult, decode_image
from sandbox.providers.state import PROVIDER_OF, Fault, FaultBoard, Ledger, LedgerEntry
from sandbox.providers.validation import (
    carrier_of,
    id_number_problem,
    mobile_ok,
    name_ok,
    normalize_id_number,
    valid_order_id,
)

CN_TZ = dt.timezone(dt.timedelta(hours=8))
APETIME_MAX_IMAGE = 2 * 1024 * 1024


class FaultRaised(Exception):
    """The call hit a fault; the transport delivers it (reset, 500, stall...) or its JSON body."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.fault)
        self.fault = fault


@dataclass
class Request:
    """A provider call as the transport saw it: form fields (str) and uploaded files (bytes)."""

    api: str
    fields: Mapping[str, str]
    files: Mapping[str, bytes]
    form_error: str | None = None  # "encoding" (not UTF-8) or "syntax" (unparseable body)


class Engine:
    def __init__(self, config: SandboxConfig, base_url: Any) -> None:
        self.config = config
        self._base_url = base_url  # callable returning the public base URL
        self.ledger = Ledger()
        self.faults = FaultBoard()
        self.sessions = SessionStore()
        self.matcher = FaceMatcher()
        self.notifications: deque[dict[str, Any]] = deque(maxlen=500)
        self.clock_offset = 0.0
        self.stopping = threading.Event()

    # ------------------------------------------------------------ shared

    def now(self) -> float:
        return self.config.clock() + self.clock_offset

    def base_url(self) -> str:
        return str(self._base_url()).rstrip("/")

    def wait(self, seconds: float) -> bool:
        """Sleep, waking early when the sandbox stops; True when stopping."""
        return self.stopping.wait(max(0.0, seconds))

    def _stamp(self, fmt: str) -> str:
        return dt.datetime.fromtimestamp(self.now(), CN_TZ).strftime(fmt)

    def juhe_order_id(self, api: str) -> str:
        alnum = string.ascii_letters + string.digits
        if api.startswith("verifyface"):
            return "JH2641" + self._stamp("%y%m%d%H%M%S") + "".join(secrets.choice(string.digits) for _ in range(8))
        if api == "four_factor":
            return "JH801" + self._stamp("%y%m%d%H%M%S") + "".join(secrets.choice(alnum) for _ in range(5))
        return "JH793" + self._stamp("%Y%m%d%H%M%S") + "".join(secrets.choice(alnum) for _ in range(5))

    def identity_fault(self, ident: Identity | None) -> None:
        """Apply the identity's own fault: latency sleeps here, anything else is raised for the transport."""
        if ident is None or not ident.fault:
            return
        fault = Fault(ident.fault, "*", None, source=f"identity:{ident.scenario}")
        if fault.fault == "latency":
            self.wait((fault.ms or self.config.latency_fault_ms) / 1000)
            return
        raise FaultRaised(fault)

    def ledger_key(self, api: str, key: str) -> str:
        known = {*self.config.juhe_keys(), self.config.apetime_app_key}
        if not key or key in known:
            return key
        return key[:4] + "***" if len(key) > 4 else "***"

    def record(self, api: str, key: str, body: Mapping[str, Any] | None, fault: Fault | None = None) -> None:
        if body is None:
            code, charged = (fault.fault if fault else "none"), False
        elif PROVIDER_OF[api] == "apetime":
            code, charged = str(body.get("code")), body.get("charge") == 1
        else:
            code, charged = str(body.get("error_code")), body.get("error_code") == 0
        result = (body or {}).get("result") or (body or {}).get("data") or {}
        order_id = (result.get("orderid") or result.get("jh_order_id")) if isinstance(result, dict) else None
        if api == "apetime" and body is not None:
            order_id = body.get("trace_id")
        self.ledger.record(
            LedgerEntry(
                self.now(), api, self.ledger_key(api, key), code, charged, order_id, fault.fault if fault else None
            )
        )

    # ------------------------------------------------------------ dispatch

    def call(self, req: Request) -> dict[str, Any]:
        """Answer one provider call (raises FaultRaised for faults); the transport records it in the ledger."""
        handler = {
            "verifyface": self.verifyface,
            "verifyface_aes": self.verifyface,
            "four_factor": self.four_factor,
            "faceid_query": self.faceid_query,
            "faceid_search": self.faceid_search,
            "apetime": self.apetime,
        }[req.api]
        return handler(req)

    def fault_body(self, api: str, fault: Fault) -> dict[str, Any] | None:
        """The JSON a code fault answers with (None for transport faults)."""
        if api == "apetime":
            code = {
                "rate_limit": "1006",
                "maintenance": "2000",
                "source_timeout": "2000",
                "error": fault.code or "9999",
            }.get(fault.fault)
            return None if code is None else apetime_error(code)
        family = codes.juhe_family(api)
        if fault.fault == "source_timeout":
            if family == "four_factor":
                return juhe_error(api, 280105, result={"orderid": self.juhe_order_id(api)})
            return juhe_error(api, 226401 if family == "verifyface" else 279303)
        code = {"rate_limit": 10011, "maintenance": 10020}.get(fault.fault)
        if fault.fault == "error":
            code = int(fault.code) if (fault.code or "").isdigit() else 10014
        return None if code is None else juhe_error(api, code)

    def _key_problem(self, api: str, key: str) -> dict[str, Any] | None:
        family = self.config.juhe_keys().get(key)
        if family is None:
            return juhe_error(api, 10001)
        if family != codes.juhe_family(api):
            return juhe_error(api, 10002)
        return None

    # ------------------------------------------------------------ verifyface (plain and AES)

    def verifyface(self, req: Request) -> dict[str, Any]:
        api, f = req.api, req.fields
        key = f.get("key", "")
        if problem := self._key_problem(api, key):
            return problem
        if req.form_error:
            return juhe_error(api, 226403, detail="请求参数编码错误")
        for name in ("idcard", "realname", "image"):
            if not f.get(name, "").strip():
                return juhe_error(api, 226403, detail=f"{name}不能为空")
        idcard, realname, image_b64 = f["idcard"], f["realname"], f["image"]
        if api == "verifyface_aes":
            try:
                idcard = aes_decrypt_field(idcard, self.config.juhe_openid).decode("utf-8")
                realname = aes_decrypt_field(realname, self.config.juhe_openid).decode("utf-8")
                image_b64 = aes_decrypt_field(image_b64, self.config.juhe_openid).decode("ascii")
            except (FieldDecryptError, UnicodeDecodeError) as exc:
                return juhe_error(api, 226403, detail=f"AES解密失败({exc})")
        if problem := id_number_problem(idcard):
            return juhe_error(api, 226403, detail=problem)
        if not name_ok(realname):
            return juhe_error(api, 226403, detail="姓名格式错误")
        try:
            image = base64.b64decode(image_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            return juhe_error(api, 226403, detail="image不是有效的base64编码(不含data:image/...;base64,前缀)")
        limit = self.config.juhe_max_image_bytes
        if limit and len(image) > limit:
            return juhe_error(api, 226403, detail=f"图片大小{len(image) // 1024}K超过{limit // 1024}K")
        picture = decode_image(image)
        if picture is None:
            return juhe_error(api, 226403, detail="image不是可识别的图片")
        ident = by_id_number(normalize_id_number(idcard))
        self.identity_fault(ident)
        if ident is None or not ident.in_registry:
            return juhe_error(api, 226402)
        if ident.identity_check == "unverified":
            return juhe_error(api, 226401)
        order = self.juhe_order_id(api)
        if realname != ident.real_name:
            result: dict[str, Any] = {"res": 3, "message": codes.VERIFYFACE_RES_MESSAGES[3], "orderid": order}
            return juhe_ok(result, reason="成功")
        face = self.matcher.compare(self.matcher.examine(picture), ident)
        if face.verdict == "compared":
            result = {
                "res": 1,
                "score": str(round(face.score)),
                "message": codes.VERIFYFACE_RES_MESSAGES[1],
                "orderid": order,
            }
        else:
            sub = {"no_face": "3004", "small_face": "3005"}.get(face.verdict, "3003")
            result = {
                "res": 2,
                "code": sub,
                "message": codes.VERIFYFACE_RES_MESSAGES[2],
                "desc": codes.VERIFYFACE_FACE_CODES[sub],
                "orderid": order,
            }
        return juhe_ok(result, reason="成功")

    # ------------------------------------------------------------ four-factor

    def four_factor(self, req: Request) -> dict[str, Any]:
        api, f = req.api, req.fields
        if problem := self._key_problem(api, f.get("key", "")):
            return problem
        if req.form_error:
            return juhe_error(api, 280101)
        values = {n: f.get(n, "").strip() for n in ("realname", "idcard", "mobile", "image")}
        if not all(values.values()):
            return juhe_error(api, 280101)
        if id_number_problem(values["idcard"]):
            return juhe_error(api, 280102)
        if not mobile_ok(values["mobile"]):
            return juhe_error(api, 280103)
        if not name_ok(values["realname"]):
            return juhe_error(api, 280104)
        ident = by_id_number(normalize_id_number(values["idcard"]))
        self.identity_fault(ident)
        mobile = values["mobile"]
        owner = by_mobile(mobile)
        if owner is None:
            mobile_part = "no_record"
        elif ident is not None and owner.id_number == ident.id_number:
            mobile_part = ident.mobile_check
        else:
            mobile_part = "mismatch"
        if ident is None or not ident.in_registry or ident.identity_check == "unverified":
            ident_part = "unverified"
        elif values["realname"] != ident.real_name:
            ident_part = "mismatch"
        else:
            ident_part = "match"
        face_part, score = "-", 0.0
        if ident_part == "match":
            assert ident is not None
            face = self._face_from_base64(values["image"], ident)
            if face.verdict == "compared":
                face_part = "match" if face.score >= self.config.face_pass_score else "mismatch"
                score = round(face.score * 10, 1)
            else:
                face_part = "unverified"
        res = four_factor_res(ident_part, face_part, mobile_part)
        order = self.juhe_order_id(api)
        if res is None:
            return juhe_error(api, 280105, result={"orderid": order})
        return juhe_ok(
            {
                "orderid": order,
                "res": res,
                "resmsg": FOUR_FACTOR_MESSAGES[res],
                "score": score,
                "type": carrier_of(mobile),
            },
            reason="成功",
        )

    def _face_from_base64(self, value: str, ident: Identity) -> FaceResult:
        try:
            picture = decode_image(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            picture = None
        return self.matcher.compare(self.matcher.examine(picture), ident)

    # ------------------------------------------------------------ FaceID

    def faceid_query(self, req: Request) -> dict[str, Any]:
        api, f = req.api, req.fields
        key = f.get("key", "")
        if problem := self._key_problem(api, key):
            return problem
        if req.form_error:
            return juhe_error(api, 279301, detail="请求参数编码错误")
        for name in ("certName", "certNo", "orderId", "returnUrl"):
            if not f.get(name, "").strip():
                return juhe_error(api, 279301, detail=f"{name}不能为空")
        cert_name, cert_no = f["certName"].strip(), normalize_id_number(f["certNo"])
        if problem := id_number_problem(cert_no):
            return juhe_error(api, 279301, detail=f"certNo:{problem}")
        if not name_ok(cert_name):
            return juhe_error(api, 279301, detail="certName格式错误")
        if not valid_order_id(f["orderId"]):
            return juhe_error(api, 279301, detail="orderId须为8-32位字母数字组合")
        return_url, notify_url = f["returnUrl"].strip(), f.get("notifyUrl", "").strip()
        for name, url in (("returnUrl", return_url), ("notifyUrl", notify_url)):
            if url and not _http_url(url):
                return juhe_error(api, 279301, detail=f"{name}须为http(s)地址")
        model = f.get("model", "").strip() or "1"
        if model not in {"1", "2", "3", "4", "5"}:
            return juhe_error(api, 279301, detail="model取值1-5")
        device = f.get("deviceType", "") or "H5"  # optional; 取值WEB或者H5, exactly (no case folding)
        if device not in {"H5", "WEB"}:
            return juhe_error(api, 279301, detail="deviceType取值WEB或H5")
        self.identity_fault(by_id_number(cert_no))
        now = self.now()
        session = Session(
            jh_order_id=self.juhe_order_id(api),
            token=secrets.token_urlsafe(12),
            key=key,
            cert_name=cert_name,
            cert_no=cert_no,
            order_id=f["orderId"],
            model=model,
            return_url=return_url,
            notify_url=notify_url,
            device_type=device,
            created_at=now,
            expires_at=now + self.config.faceid_session_ttl_s,
        )
        self.sessions.add(session)
        return juhe_ok(
            {"jh_order_id": session.jh_order_id, "verify_url": f"{self.base_url()}/faceid/h5/{session.token}"},
            reason="SUCCESS",
        )

    def faceid_search(self, req: Request) -> dict[str, Any]:
        api, f = req.api, req.fields
        if problem := self._key_problem(api, f.get("key", "")):
            return problem
        if req.form_error:
            return juhe_error(api, 279301, detail="请求参数编码错误")
        order = f.get("jhOrderId", "").strip()
        if not order:
            return juhe_error(api, 279301, detail="jhOrderId不能为空")
        session = self.sessions.by_order(order)
        if session is None:
            return juhe_error(api, 279302)
        self.identity_fault(by_id_number(session.cert_no))
        with self.sessions.lock:
            state, result = session.state, session.result
            expired = session.expired(self.now())
        if state == "completed" and result is not None:
            detail = dict(result["detail"])
            if session.image is not None:
                detail["img"] = self._image_url(session)
            return juhe_ok({**result, "detail": detail}, reason="SUCCESS")
        if state == "completed":  # submitted a moment ago, the result is being computed
            return juhe_error(api, 279306)
        if expired:
            return juhe_error(api, 279302, detail="认证已过期")
        if state == "opened":
            return juhe_error(api, 279306)
        return juhe_error(api, 279307)

    def _image_url(self, session: Session) -> str:
        nonce = secrets.token_urlsafe(16)
        expires = self.now() + self.config.faceid_img_ttl_s
        with self.sessions.lock:
            self.sessions.images[nonce] = (session.jh_order_id, expires)
        return f"{self.base_url()}/faceid/img/{nonce}.jpeg?Expires={int(expires)}"

    def faceid_image(self, nonce: str) -> bytes | str | None:
        """The captured picture for an img URL; "expired" when its 10 minutes are over; None if unknown."""
        with self.sessions.lock:
            entry = self.sessions.images.get(nonce)
        if entry is None:
            return None
        if self.now() >= entry[1]:
            return "expired"
        session = self.sessions.by_order(entry[0])
        return session.image if session else None

    def default_camera(self, session: Session) -> str:
        ident = by_id_number(session.cert_no)
        return ident.selfie if ident else "self"

    def captured_picture(self, session: Session, camera: str, upload: bytes | None) -> bytes:
        who: Identity | str = by_id_number(session.cert_no) or session.cert_no
        seed = (
            who.seed if isinstance(who, Identity) else int(hashlib.sha256(session.cert_no.encode()).hexdigest()[:6], 16)
        )
        if camera == "upload" and upload:
            return upload
        return {
            "other": lambda: other_person_jpeg(seed),
            "lookalike": lambda: lookalike_jpeg(who),
            "no_face": lambda: no_face_jpeg("landscape"),
            "small": lambda: small_face_jpeg(who),
        }.get(camera, lambda: selfie_jpeg(who, variant=1))()

    def complete(self, session: Session, action: str, live_code: str, camera: str, upload: bytes | None) -> str:
        """Finish the session (pass or fail liveness): compute the result, sign it, start the notify.
        Returns the URL the browser goes back to."""
        ident = by_id_number(session.cert_no)
        if camera not in CAMERAS or (camera == "upload" and not upload):
            camera = self.default_camera(session)  # what the page preselects for this person
        picture_bytes = self.captured_picture(session, camera, upload)
        probe = self.matcher.examine(decode_image(picture_bytes))
        if action == "fail":
            live = live_code if live_code in LIVENESS_MESSAGES and live_code != "200" else "201"
        else:
            live = ident.liveness if ident else "200"
            if probe is None or (probe.found and probe.face_px < 128):
                live = "203"  # the camera frame is unusable for liveness
        digest = int(hashlib.sha256(session.jh_order_id.encode()).hexdigest()[:8], 16)
        live_score = 85 + (digest % 1400000) / 100000 if live == "200" else 30 + (digest % 2500000) / 100000
        certify, certify_score = "206", "0"
        if live == "200":
            if ident is None or not ident.in_registry or session.cert_name != ident.real_name:
                certify = "204"
            elif ident.identity_check == "unverified":
                certify = "205"
            else:
                face = self.matcher.compare(probe, ident)
                if face.verdict == "compared":
                    certify = "200" if face.score >= self.config.face_pass_score else "203"
                    certify_score = str(round(face.score))
                else:
                    certify = {"no_face": "202", "undecodable": "202", "small_face": "202"}.get(face.verdict, "201")
        live_passed = "T" if live == "200" else "F"
        certify_passed = "T" if certify == "200" else "F"
        passed = "T" if live_passed == certify_passed == "T" else "F"
        result = {
            "passed": passed,
            "message": codes.CERTIFY_MESSAGES[certify] if live == "200" else LIVENESS_MESSAGES[live],
            "jh_order_id": session.jh_order_id,
            "detail": {
                "live_passed": live_passed,
                "live_code": live,
                "live_message": LIVENESS_MESSAGES[live],
                "live_score": f"{live_score:.5f}",
                "certify_passed": certify_passed,
                "certify_code": certify,
                "certify_message": codes.CERTIFY_MESSAGES[certify],
                "certify_res": codes.CERTIFY_RES[certify],
                "certify_score": certify_score,
            },
        }
        with self.sessions.lock:
            session.state, session.result, session.image = "completed", result, picture_bytes
            session.completed_at = self.now()
        response = response_document(result)
        sign = faceid_sign(response, session.key, self.config.faceid_sign_form)
        if session.notify_url:
            threading.Thread(
                target=send_notify,
                name=f"notify-{session.jh_order_id}",
                args=(session, response, sign),
                kwargs={
                    "attempts": max(1, self.config.notify_attempts),
                    "backoff_s": self.config.notify_backoff_s,
                    "timeout_s": self.config.notify_timeout_s,
                    "wait": self.wait,
                    "clock": self.now,
                    "log": self.notifications.append,
                },
                daemon=True,
            ).start()
        return place_result(session.return_url, response, sign)

    # ------------------------------------------------------------ Apetime

    def apetime(self, req: Request) -> dict[str, Any]:
        f = req.fields
        if req.form_error == "encoding":
            return apetime_error("1001")
        if req.form_error:
            return apetime_error("1002", "请求体无法解析")
        for name in ("app_key", "request_id", "id_number", "name", "timestamp", "sign"):
            if not f.get(name, "").strip():
                return apetime_error("1002", f"缺少参数{name}")
        if f["app_key"] != self.config.apetime_app_key:
            return apetime_error("1009")
        expected = apetime_sign(
            f["app_key"], f["id_number"], f["name"], f["request_id"], f["timestamp"], self.config.apetime_app_secret
        )
        if not apetime_sign_matches(expected, f["sign"]):
            return apetime_error("1000")
        try:
            stamp_ms = int(f["timestamp"])
        except ValueError:
            return apetime_error("1002", "timestamp须为毫秒时间戳")
        if abs(self.now() * 1000 - stamp_ms) > self.config.apetime_window_s * 1000:
            return apetime_error("1010")
        selfie_b64 = f.get("selfie_base64", "").strip()
        if selfie_b64:
            try:
                raw = _apetime_b64decode(selfie_b64, standard=self.config.apetime_base64 == "both")
            except (binascii.Error, ValueError):
                return apetime_error("1002", "selfie_base64不是有效的base64编码")
        elif req.files.get("selfie_file"):
            raw = req.files["selfie_file"]
        else:
            return apetime_error("1002", "selfie_file与selfie_base64必须二选一")
        if id_number_problem(f["id_number"]):
            return apetime_error("1002", "id_number格式错误")
        if not name_ok(f["name"]):
            return apetime_error("1002", "name格式错误")
        ident = by_id_number(normalize_id_number(f["id_number"]))
        self.identity_fault(ident)
        probe = self.matcher.examine(decode_image(raw)) if len(raw) <= APETIME_MAX_IMAGE else None
        if probe is None or (probe.found and probe.face_px < 128):
            return apetime_ok({"result": 2}, charge=2)  # 图片前置校验不通过
        if ident is not None and ident.in_registry and ident.identity_check == "unverified":
            return apetime_error("2000")
        if ident is None or not ident.in_registry or f["name"] != ident.real_name:
            return apetime_ok({"result": 1, "id_name": 2}, charge=1)
        face = self.matcher.compare(probe, ident)
        if face.verdict in ("no_reference", "no_face_reference"):
            return apetime_ok({"result": 1, "id_name": 1, "photo": 2}, charge=1)
        if face.verdict != "compared":
            return apetime_ok({"result": 1, "id_name": 1, "photo": 3}, charge=1)
        return apetime_ok({"result": 1, "id_name": 1, "photo": 1, "score": round(face.score, 2)}, charge=1)


# ---------------------------------------------------------------- bodies


def juhe_ok(result: dict[str, Any], *, reason: str) -> dict[str, Any]:
    return {"reason": reason, "result": result, "error_code": 0}


def juhe_error(api: str, code: int, *, detail: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
    reason = codes.juhe_reason(api, code)
    return {"reason": f"{reason}:{detail}" if detail else reason, "result": result, "error_code": code}


def apetime_ok(data: dict[str, Any], *, charge: int) -> dict[str, Any]:
    return {"trace_id": _trace_id(), "code": "0000", "msg": codes.APETIME["0000"], "data": data, "charge": charge}


def apetime_error(code: str, detail: str = "") -> dict[str, Any]:
    msg = codes.APETIME.get(code, "其他错误")
    return {"trace_id": _trace_id(), "code": code, "msg": f"{msg}:{detail}" if detail else msg, "charge": 2}


def _trace_id() -> str:
    return "TID" + uuid.uuid4().hex


def _apetime_b64decode(value: str, *, standard: bool = False) -> bytes:
    """URL-safe base64 as Java's Base64.getUrlDecoder() reads it (padding optional; '+' and '/' refused):
    the document's Java sample encodes with Base64.getUrlEncoder(). With `standard` the standard alphabet
    is tolerated too (SandboxConfig.apetime_base64 = "both")."""
    if ("+" in value or "/" in value) and not standard:
        raise ValueError("standard base64 alphabet")
    value = value.translate(str.maketrans("-_", "+/"))
    value += "=" * (-len(value) % 4)
    return base64.b64decode(value, validate=True)


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
