"""The test population and the pure pieces: ID numbers, carriers, redirect placement, AES, forms."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sandbox.providers import (
    FAULTS,
    FOUR_FACTOR_PARTS,
    IDENTITIES,
    aes_encrypt_field,
    by_id_number,
    expected,
    identity,
    make_id_number,
    place_result,
    scenarios,
)
from sandbox.providers.crypto import FieldDecryptError, aes_decrypt_field
from sandbox.providers.forms import FormError, parse_form
from sandbox.providers.validation import carrier_of, id_number_problem, mobile_ok, name_ok

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def gb11643_ok(v: str) -> bool:  # written from the standard, not from the sandbox
    total = sum(int(c) * w for c, w in zip(v[:17], WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == v[17]


def test_every_identity_has_a_valid_id_number_plausible_birth_date_and_mobile():
    ids = [i.id_number for i in IDENTITIES]
    assert len(set(ids)) == len(ids)
    assert len({i.mobile for i in IDENTITIES}) == len(IDENTITIES)
    for ident in IDENTITIES:
        assert gb11643_ok(ident.id_number), ident
        assert id_number_problem(ident.id_number) is None
        assert dt.date(1940, 1, 1) < ident.birth_date < dt.date(2008, 1, 1)
        assert mobile_ok(ident.mobile) and ident.carrier in ("移动", "联通", "电信")
        assert name_ok(ident.name) and name_ok(ident.real_name)
        assert by_id_number(ident.id_number) is ident


def test_carriers_and_names_cover_the_variety_we_promise():
    assert {i.carrier for i in IDENTITIES} == {"移动", "联通", "电信"}
    minority = identity("minority_name")
    assert minority.name == "阿依古丽·买买提" and "\u00b7" in minority.name
    assert all("测" in i.name for i in IDENTITIES if i is not minority)  # clearly fake names
    assert carrier_of("13800000000") == "移动" and carrier_of("18600000000") == "联通"
    assert carrier_of("18900000000") == "电信"


def test_make_id_number_computes_the_check_digit():
    v = make_id_number("110101", dt.date(1990, 3, 7), 123)
    assert v.startswith("11010119900307123") and gb11643_ok(v)
    assert id_number_problem(v[:17] + ("0" if v[17] != "0" else "1")) == "身份证号校验位错误"
    assert id_number_problem("110101199013071231") is not None  # month 13
    assert id_number_problem("990101199001011234") is not None  # no such province


def test_every_outcome_has_an_identity():
    names = set(scenarios())
    core = {
        "match",
        "minority_name",
        "face_mismatch",
        "name_mismatch",
        "not_found",
        "no_face_selfie",
        "no_face_reference",
        "no_reference_photo",
        "low_quality_selfie",
        "face_review",
    }
    assert core <= names
    assert {f"four_factor_{res}" for res in FOUR_FACTOR_PARTS} <= names
    assert {f"liveness_{x}" for x in ("risk", "policy", "low_quality", "source_error", "intent")} <= names
    assert {f"fault_{f}" for f in FAULTS} <= names
    assert identity("mobile_no_record").scenario == "four_factor_109"
    with pytest.raises(KeyError, match="known"):
        identity("nobody")


def test_expected_outcomes_are_documented_for_every_identity_and_api():
    for ident in IDENTITIES:
        e = expected(ident)
        assert set(e) == {"verifyface", "four_factor", "apetime", "faceid"}
        assert all(e.values())
    assert expected(identity("match"))["faceid"] == "passed T"
    assert expected(identity("not_found"))["four_factor"] == "error_code 280105 (not charged)"
    assert expected(identity("four_factor_113"))["four_factor"] == "res 113"


# ---------------------------------------------------------------- FaceID returnUrl placement (document table)

RESPONSE = '{"error_code":0,"reason":"SUCCESS","result":{"passed":"T","message":"身份证号与姓名匹配，且比对成功"}}'
SIGN = "3428ce63117ccf4ff4bc36e686131fb8"


@pytest.mark.parametrize(
    ("return_url", "expected_url"),
    [
        ("https://example.com", "https://example.com?response=R&sign=S"),
        ("https://example.com/index.html", "https://example.com/index.html?response=R&sign=S"),
        ("https://example.com/aaa/", "https://example.com/aaa?response=R&sign=S"),
        ("https://example.com/aaa/#bbb", "https://example.com/aaa?response=R&sign=S#bbb"),
        ("https://example.com/#/aaa/bbb", "https://example.com/?response=R&sign=S#aaa/bbb"),
        ("https://example.com/cb?state=1", "https://example.com/cb?state=1&response=R&sign=S"),
    ],
)
def test_return_url_placement_follows_the_document_table(return_url, expected_url):
    placed = place_result(return_url, RESPONSE, SIGN)
    encoded = placed.replace(_quote(RESPONSE), "R").replace(SIGN, "S")
    assert encoded == expected_url
    query = parse_qs(urlsplit(placed).query)
    assert query["response"] == [RESPONSE] and query["sign"] == [SIGN]


def _quote(text: str) -> str:
    from urllib.parse import quote

    out = quote(text, safe="")
    assert unquote(out) == text
    return out


# ---------------------------------------------------------------- AES (checked against the `cryptography` package)


def _independent_encrypt(plaintext: bytes, openid: str) -> str:
    key = hashlib.md5(openid.encode()).hexdigest()[:16].encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the provider's documented mode
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def test_aes_fields_match_an_independent_implementation():
    for text in ("110101199003071234", "阿依古丽·买买提", "x" * 16, ""):
        assert aes_encrypt_field(text, "some-openid") == _independent_encrypt(text.encode(), "some-openid")
        assert aes_decrypt_field(_independent_encrypt(text.encode(), "some-openid"), "some-openid") == text.encode()


@pytest.mark.parametrize("garbage", ["not base64!", base64.b64encode(b"short").decode(), "", "QUJD"])
def test_aes_garbage_is_rejected(garbage):
    with pytest.raises(FieldDecryptError):
        aes_decrypt_field(garbage, "some-openid")


# ---------------------------------------------------------------- forms


def test_forms_urlencoded_multipart_and_encoding_errors():
    fields, files = parse_form("application/x-www-form-urlencoded", b"a=1&name=%E5%BC%A0&a=2")
    assert fields == {"a": "1", "name": "张"} and files == {}
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xe5\xbc\xa0\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="selfie_file"; filename="s.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\r\n\x00\xff\r\n--XyZ--\r\n"
    )
    fields, files = parse_form("multipart/form-data; boundary=XyZ", body)
    assert fields == {"name": "张"} and files == {"selfie_file": b"\xff\xd8\r\n\x00\xff"}
    with pytest.raises(FormError) as err:
        parse_form("application/x-www-form-urlencoded", "name=张".encode("gbk"))
    assert err.value.kind == "encoding"


def test_registry_faces_are_pairwise_strangers():
    from sandbox.providers import faces
    from sandbox.providers.identities import reference_image

    feats = {}
    for ident in IDENTITIES:
        if ident.reference == "face":
            analysis = faces.analyze(reference_image(ident))
            assert analysis.found, ident.scenario
            feats[ident.scenario] = analysis.features
    worst = max(faces.score(a, b) for a, b in itertools.combinations(feats.values(), 2))
    assert worst < 32


def test_people_cli_prints_pictures_and_the_registry(capsys):
    from sandbox.providers.people import main

    assert main(["selfie", "match"]) == 0
    assert base64.b64decode(capsys.readouterr().out.strip())[:2] == b"\xff\xd8"
    assert main(["list"]) == 0
    assert '"scenario": "face_review"' in capsys.readouterr().out
    assert main(["reference", "no_reference_photo"]) == 1
    assert main(["selfie", "nobody"]) == 2
