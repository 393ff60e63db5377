"""The sandbox's population: synthetic test identities, one per scenario, and the pictures that go with them.

Every identity has a valid GB 11643 ID number (check digit computed here), a plausible birth date, a clearly
fake name, a mobile number with its carrier, and a face (a deterministic drawing from its `seed`). The
registry is what the sandbox's "public security" and "carrier" databases know; the scenario attributes say
which part of a check goes which way. Face results are never scripted: they come from comparing the image
you send with the identity's reference photo (see `faces`), and `scenario_selfie_jpeg` gives the picture
that produces each scenario's face outcome.

    >>> ident = identity("match")
    >>> ident.name, ident.id_number, ident.mobile
    >>> selfie_jpeg(ident)            # a phone photo of that person (variant 0)
    >>> scenario_selfie_jpeg("face_mismatch")   # a photo of somebody else
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from PIL import Image

from sandbox.providers import faces
from sandbox.providers.validation import carrier_of, id_check_char

SelfieKind = Literal["self", "other", "no_face", "lookalike", "small"]
MobileCheck = Literal["match", "mismatch", "unverified", "no_record"]

# The four-factor `res` codes: (identity part, face part, mobile part) as the document words them.
FOUR_FACTOR_PARTS: dict[int, tuple[str, str, str]] = {
    100: ("match", "match", "match"),
    101: ("match", "match", "mismatch"),
    102: ("match", "mismatch", "match"),
    103: ("match", "mismatch", "mismatch"),
    104: ("match", "unverified", "match"),
    105: ("mismatch", "-", "match"),
    106: ("match", "unverified", "mismatch"),
    107: ("mismatch", "-", "mismatch"),
    108: ("match", "match", "unverified"),
    109: ("match", "match", "no_record"),
    110: ("match", "mismatch", "unverified"),
    111: ("match", "mismatch", "no_record"),
    112: ("match", "unverified", "unverified"),
    113: ("match", "unverified", "no_record"),
    114: ("mismatch", "-", "unverified"),
    115: ("unverified", "-", "match"),
    116: ("unverified", "-", "mismatch"),
}

FOUR_FACTOR_MESSAGES: dict[int, str] = {
    100: "身份、人像核验通过，手机号核验通过",
    101: "身份、人像核验通过，手机号核验不通过",
    102: "身份、手机核验通过，人像核验不通过",
    103: "身份核验通过，手机、人像核验不通过",
    104: "身份、手机号核验成功，人像核验失败",
    105: "身份核验不通过，手机号核验通过",
    106: "身份核验成功，手机号核验不通过，人像核验失败",
    107: "身份核验不通过、手机号核验不通过",
    108: "身份、人像核验通过，手机号核验失败",
    109: "身份、人像核验通过，手机号查询无记录",
    110: "身份核验通过，人像核验不通过，手机号核验失败",
    111: "身份核验通过，人像核验不通过，手机号查询无记录",
    112: "身份核验成功，手机号、人像核验失败",
    113: "身份核验成功，手机号查询无记录，人像核验失败",
    114: "身份核验不通过、手机号核验失败",
    115: "手机号核验通过，身份核验失败",
    116: "手机号核验不通过，身份核验失败",
}

LIVENESS_MESSAGES = {
    "200": "活体检测通过",
    "201": "活体检测存在风险",
    "202": "业务策略限制",
    "203": "活体照片质量较低",
    "204": "权威比对源异常",
    "205": "意愿判定不通过",
}

FAULTS = (
    "latency",
    "read_timeout",
    "reset",
    "http_500",
    "http_502",
    "non_json",
    "rate_limit",
    "maintenance",
    "source_timeout",
)


@dataclass(frozen=True, slots=True)
class Identity:
    """One synthetic person and the scenario they stand for.

    `name` is what a caller submits for the scenario; `registered_name` is what the registry holds (they
    differ only for name/ID-mismatch scenarios, and any other name submitted with this ID number is a
    mismatch too).
    """

    scenario: str
    name: str
    id_number: str
    mobile: str
    seed: int
    summary: str
    registered_name: str = ""
    in_registry: bool = True
    identity_check: Literal["ok", "unverified"] = "ok"
    reference: Literal["face", "no_face", "none"] = "face"
    mobile_check: MobileCheck = "match"
    selfie: SelfieKind = "self"
    liveness: str = "200"
    fault: str | None = None

    @property
    def real_name(self) -> str:
        return self.registered_name or self.name

    @property
    def carrier(self) -> str:
        return carrier_of(self.mobile)

    @property
    def birth_date(self) -> dt.date:
        v = self.id_number
        return dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))

    def as_dict(self) -> dict[str, object]:
        """The JSON form served by GET /_sandbox/identities."""
        return {
            "scenario": self.scenario,
            "summary": self.summary,
            "name": self.name,
            "registered_name": self.real_name if self.in_registry else None,
            "id_number": self.id_number,
            "mobile": self.mobile,
            "carrier": self.carrier,
            "selfie": self.selfie,
            "fault": self.fault,
            "expected": expected(self),
            "images": {
                "selfie": f"/_sandbox/identities/{self.scenario}/selfie.jpg",
                "scenario_selfie": f"/_sandbox/identities/{self.scenario}/scenario_selfie.jpg",
                "reference": f"/_sandbox/identities/{self.scenario}/reference.jpg",
            },
        }


def make_id_number(region: str, born: dt.date, sequence: int) -> str:
    """An ID number with a valid check digit (region: 6 digits; sequence: 0-999, odd = male)."""
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + id_check_char(first17)


_REGIONS = [
    "110101",
    "310104",
    "440305",
    "330106",
    "510107",
    "420106",
    "320102",
    "370202",
    "610113",
    "500103",
    "430104",
    "350203",
    "210102",
    "120101",
    "230103",
    "530102",
    "450103",
    "460106",
    "520102",
    "620102",
    "140105",
    "130102",
    "410105",
    "340104",
    "360102",
]
_MOBILE_PREFIXES = ("138", "186", "189", "150", "166", "199", "187", "130", "133", "139", "155", "180")
_ORDINALS = "一二三四五六七八九十甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥天地玄黄宇宙洪荒日月盈昃"
_SURNAMES = "张李王刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"


# Faces are drawn from `1000 + 13 * i`; these few were moved so that no two registry faces score 30 or more
# against each other (tests/sandbox check it).
_SEED_OVERRIDES = {
    "name_mismatch": 1053,
    "no_face_reference": 1092,
    "no_reference_photo": 1105,
    "four_factor_101": 1274,
    "four_factor_106": 1339,
    "four_factor_111": 1405,
    "four_factor_112": 1417,
    "four_factor_113": 1431,
    "four_factor_114": 1444,
    "four_factor_116": 1469,
    "liveness_risk": 1521,
    "fault_latency": 1653,
    "fault_reset": 1677,
    "fault_http_500": 1693,
    "fault_non_json": 1716,
    "fault_rate_limit": 1731,
    "fault_maintenance": 1743,
    "fault_source_timeout": 1756,
}


def _row(i: int, scenario: str, summary: str, **attrs: object) -> Identity:
    born = dt.date(1962 + (i * 7) % 40, 1 + (i * 5) % 12, 1 + (i * 11) % 28)
    sequence = 100 + (i * 37) % 800
    region = str(attrs.pop("region", _REGIONS[i % len(_REGIONS)]))
    name = str(attrs.pop("name", f"{_SURNAMES[i % len(_SURNAMES)]}测{_ORDINALS[i % len(_ORDINALS)]}"))
    mobile = str(attrs.pop("mobile", f"{_MOBILE_PREFIXES[i % len(_MOBILE_PREFIXES)]}0000{i:04d}"))
    return Identity(
        scenario=scenario,
        name=name,
        id_number=make_id_number(region, born, sequence),
        mobile=mobile,
        seed=_SEED_OVERRIDES.get(scenario, 1000 + i * 13),
        summary=summary,
        **attrs,  # type: ignore[arg-type]
    )


def _four_factor(i: int, res: int) -> Identity:
    ident_part, face_part, mobile_part = FOUR_FACTOR_PARTS[res]
    attrs: dict[str, object] = {"mobile_check": mobile_part}
    if ident_part == "mismatch":
        surname = _SURNAMES[(i + 7) % len(_SURNAMES)]
        attrs["registered_name"] = f"{surname}测{_ORDINALS[i % len(_ORDINALS)]}"
    elif ident_part == "unverified":
        attrs["identity_check"] = "unverified"
    attrs["selfie"] = {"match": "self", "mismatch": "other", "unverified": "no_face", "-": "self"}[face_part]
    return _row(i, f"four_factor_{res}", f"four-factor res {res}: {FOUR_FACTOR_MESSAGES[res]}", **attrs)


def _build() -> tuple[Identity, ...]:
    rows = [
        _row(1, "match", "everything matches: identity, face, mobile, liveness"),
        _row(
            2,
            "minority_name",
            "everything matches; a name with a middle dot (U+00B7)",
            name="阿依古丽·买买提",
            region="650102",
        ),
        _row(3, "face_mismatch", "identity matches; the selfie is somebody else", selfie="other"),
        _row(
            4,
            "name_mismatch",
            "the name submitted is not the one registered for this ID number",
            name="王测三",
            registered_name="汪测三",
        ),
        _row(
            5,
            "not_found",
            "a valid ID number that the registry has no record of",
            in_registry=False,
            mobile_check="no_record",
        ),
        _row(6, "no_face_selfie", "the selfie has no face in it", selfie="no_face"),
        _row(7, "no_face_reference", "the registry photo has no detectable face", reference="no_face"),
        _row(8, "no_reference_photo", "the registry has no photo for this person", reference="none"),
        _row(9, "low_quality_selfie", "the face in the selfie is smaller than 128 px", selfie="small", liveness="203"),
        _row(10, "face_review", "a lookalike: the face score lands in [40, 60)", selfie="lookalike"),
    ]
    rows += [_four_factor(20 + n, res) for n, res in enumerate(sorted(FOUR_FACTOR_PARTS))]
    for n, code in enumerate(("201", "202", "203", "204", "205")):
        label = {"201": "risk", "202": "policy", "203": "low_quality", "204": "source_error", "205": "intent"}[code]
        rows.append(
            _row(
                40 + n,
                f"liveness_{label}",
                f"FaceID liveness fails with live_code {code} ({LIVENESS_MESSAGES[code]})",
                liveness=code,
            )
        )
    for n, fault in enumerate(FAULTS):
        rows.append(
            _row(
                50 + n,
                f"fault_{fault}",
                f"every call naming this person gets the '{fault}' fault",
                fault=fault,
            )
        )
    return tuple(rows)


IDENTITIES: tuple[Identity, ...] = _build()
_BY_SCENARIO = {i.scenario: i for i in IDENTITIES}
ALIASES = {"mobile_no_record": "four_factor_109", "identity_unverified": "four_factor_115"}
_BY_ID = {i.id_number: i for i in IDENTITIES}
_BY_MOBILE = {i.mobile: i for i in IDENTITIES}


def identity(scenario: str | Identity) -> Identity:
    """The identity for a scenario name (or an Identity, returned as is)."""
    if isinstance(scenario, Identity):
        return scenario
    try:
        return _BY_SCENARIO[ALIASES.get(scenario, scenario)]
    except KeyError:
        raise KeyError(f"no sandbox identity for scenario {scenario!r}; known: {', '.join(_BY_SCENARIO)}") from None


def by_id_number(id_number: str) -> Identity | None:
    return _BY_ID.get(id_number.strip().upper())


def by_mobile(mobile: str) -> Identity | None:
    return _BY_MOBILE.get(mobile.strip())


def scenarios() -> list[str]:
    return list(_BY_SCENARIO)


# ---------------------------------------------------------------- expected outcomes (documentation)


def expected(ident: Identity) -> dict[str, str]:
    """What each API answers for this identity when called with its scenario selfie (docs and CLI)."""
    if ident.fault:
        return dict.fromkeys(("verifyface", "four_factor", "apetime", "faceid"), f"fault: {ident.fault}")
    face = {
        "self": ("res 1, score >= 80", "match", "photo 1, score >= 80", "certify 200"),
        "other": ("res 1, score < 40", "mismatch", "photo 1, score < 40", "certify 203"),
        "lookalike": ("res 1, score 40-59", "mismatch", "photo 1, score in [40, 60) (review)", "certify 203"),
        "no_face": ("res 2, code 3004", "unverified", "photo 3", "certify 202"),
        "small": ("res 2, code 3005", "unverified", "result 2, charge 2", "live_code 203"),
    }[ident.selfie]
    if ident.reference != "face" and ident.selfie == "self":
        face = ("res 2, code 3003", "unverified", "photo 2", "certify 201")
    if not ident.in_registry:
        ff = four_factor_res("unverified", "-", ident.mobile_check)
        out = {"verifyface": "error_code 226402 (not charged)", "apetime": "id_name 2", "faceid": "certify 204"}
    elif ident.identity_check == "unverified":
        ff = four_factor_res("unverified", "-", ident.mobile_check)
        out = {
            "verifyface": "error_code 226401 (not charged)",
            "apetime": "code 2000 (charge 2)",
            "faceid": "certify 205",
        }
    elif ident.registered_name:
        ff = four_factor_res("mismatch", "-", ident.mobile_check)
        out = {"verifyface": "res 3", "apetime": "id_name 2", "faceid": "certify 204"}
    else:
        ff = four_factor_res("match", face[1], ident.mobile_check)
        out = {"verifyface": face[0], "apetime": face[2], "faceid": face[3]}
    out["four_factor"] = f"res {ff}" if ff else "error_code 280105 (not charged)"
    faceid = f"live_code {ident.liveness}" if ident.liveness != "200" else out["faceid"]
    out["faceid"] = "passed T" if faceid == "certify 200" else f"passed F, {faceid}"
    return {k: out[k] for k in ("verifyface", "four_factor", "apetime", "faceid")}


def four_factor_res(ident_part: str, face_part: str, mobile_part: str) -> int | None:
    """The `res` for the three parts, or None when the document has no `res` for it (error 280105).

    Identity "unverified" (核验失败) with a mobile that failed or has no record has no code: the service
    answers 280105 (身份核验失败、手机号核验失败). Identity mismatch with a mobile without record is reported
    as 114 (the mobile could not be checked).
    """
    if ident_part == "unverified":
        return {"match": 115, "mismatch": 116}.get(mobile_part)
    if ident_part == "mismatch":
        return {"match": 105, "mismatch": 107}.get(mobile_part, 114)
    for res, parts in FOUR_FACTOR_PARTS.items():
        if parts == ("match", face_part, mobile_part):
            return res
    raise ValueError(f"no four-factor code for {(ident_part, face_part, mobile_part)}")


# ---------------------------------------------------------------- pictures

_lock = threading.Lock()


def _jpeg(img: Image.Image, quality: int = 88) -> bytes:
    return faces.to_jpeg(img, quality)


def _seed_of(who: Identity | str | int) -> int:
    if isinstance(who, int):
        return who
    if isinstance(who, Identity):
        return who.seed
    if who in _BY_SCENARIO or who in ALIASES:
        return identity(who).seed
    # an ID number nobody registered: a stable stranger of its own
    return 500_000 + int(hashlib.sha256(who.encode()).hexdigest()[:8], 16) % 400_000


def person_params(who: Identity | str | int) -> faces.FaceParams:
    """The face of an identity (or scenario name, or unregistered ID number, or raw seed)."""
    return faces.face_params(_seed_of(who))


@lru_cache(maxsize=256)
def _reference_image(seed: int, kind: str) -> Image.Image | None:
    if kind == "none":
        return None
    p = faces.face_params(seed)
    return faces.draw_person(p if kind == "face" else replace(p, face_visible=False))


def reference_image(ident: Identity) -> Image.Image | None:
    """The registry photo (600x800, ID-photo style), None when the registry has no photo."""
    with _lock:
        return _reference_image(ident.seed, ident.reference)


def reference_jpeg(scenario: str | Identity) -> bytes | None:
    img = reference_image(identity(scenario))
    return _jpeg(img, 92) if img else None


@lru_cache(maxsize=512)
def _selfie(seed: int, variant: int) -> bytes:
    return _jpeg(faces.photograph(faces.face_params(seed), variant, seed=seed))


def selfie_jpeg(who: str | Identity | int, variant: int = 0) -> bytes:
    """A phone photo (900x1200 JPEG) of that person: the reference face, framed, lit and exposed differently
    for each `variant`. `who` is a scenario name, an Identity, an unregistered ID number or a face seed."""
    return _selfie(_seed_of(who), variant)


def other_person_jpeg(seed: int = 0) -> bytes:
    """A phone photo of somebody who is not in the registry (a different face for each seed)."""
    return _selfie(50_000 + seed, 0)


@lru_cache(maxsize=8)
def no_face_jpeg(kind: str = "landscape") -> bytes:
    """A photo with no face in it: "landscape", "gradient", "noise" or "text"."""
    return _jpeg(faces.no_face_image(kind))


@lru_cache(maxsize=64)
def _small(seed: int) -> bytes:
    img = faces.photograph(faces.face_params(seed), 0, seed=seed)
    img.thumbnail((240, 320))
    return _jpeg(img, 90)


def small_face_jpeg(who: str | Identity | int) -> bytes:
    """A photo of that person so small that the face is under 128 px (too small to compare)."""
    return _small(_seed_of(who))


def _reencoded(img: Image.Image, side: int, quality: int) -> Image.Image:
    small = img.copy()
    small.thumbnail((side, side))
    return Image.open(io.BytesIO(_jpeg(small, quality)))


@lru_cache(maxsize=64)
def _lookalike(seed: int, target: float) -> bytes:
    ref = faces.analyze(faces.draw_person(faces.face_params(seed)))
    assert ref.features is not None
    a, stranger = faces.face_params(seed), faces.face_params(70_000 + seed)

    def scores(img: Image.Image) -> list[float]:
        # as sent, and as a gateway would re-encode it (800 px at quality 50, 640 px at quality 70)
        out = []
        for version in (img, _reencoded(img, 800, 50), _reencoded(img, 640, 70)):
            probe = faces.analyze(version)
            out.append(faces.score(probe.features, ref.features) if probe.features else 0.0)
        return out

    best: tuple[float, bytes] | None = None
    lo, hi = 0.0, 0.6
    for _ in range(10):  # bisect the blend until the face score sits at the target however it is encoded
        t = (lo + hi) / 2
        data = _jpeg(faces.photograph(faces.lookalike(a, stranger, t), 0, seed=seed))
        got = scores(Image.open(io.BytesIO(data)))
        miss = max(abs(x - target) for x in got)
        if best is None or miss < best[0]:
            best = (miss, data)
        if miss < 4:
            break
        lo, hi = (t, hi) if sum(got) / len(got) > target else (lo, t)
    t = 0.0
    while best is not None and best[0] >= 6 and t < 0.6:  # the score is not monotonic everywhere: scan
        t += 0.02
        data = _jpeg(faces.photograph(faces.lookalike(a, stranger, t), 0, seed=seed))
        miss = max(abs(x - target) for x in scores(Image.open(io.BytesIO(data))))
        if miss < best[0]:
            best = (miss, data)
    assert best is not None
    return best[1]


def lookalike_jpeg(who: str | Identity | int, target: float = 50.0) -> bytes:
    """A photo of someone who resembles that person: the face score against them is close to `target`
    (default 50, the middle of Apetime's [40, 60) "not sure" band). Found by bisecting a blend of the
    person's face with a stranger's, scoring each candidate with the sandbox's own matcher."""
    return _lookalike(_seed_of(who), float(target))


def scenario_selfie_jpeg(scenario: str | Identity) -> bytes:
    """The picture that produces the identity's scenario face outcome (own face, someone else, none...)."""
    ident = identity(scenario)
    return {
        "self": lambda: selfie_jpeg(ident),
        "other": lambda: other_person_jpeg(ident.seed),
        "no_face": lambda: no_face_jpeg("landscape"),
        "lookalike": lambda: lookalike_jpeg(ident),
        "small": lambda: small_face_jpeg(ident),
    }[ident.selfie]()


def registry_summary() -> list[Mapping[str, object]]:
    return [i.as_dict() for i in IDENTITIES]
