"""Juhe verifyface_mobile/query (人脸四要素): every documented `res`, 280101-280105, carriers, scores."""

from __future__ import annotations

import pytest

from sandbox.providers import FOUR_FACTOR_PARTS, identity, other_person_jpeg, scenario_selfie_jpeg, selfie_jpeg
from tests.sandbox.helpers import FOUR_FACTOR_KEY, VERIFYFACE_KEY, b64, four_factor_form, provider_ready

PATH = "/verifyface_mobile/query"
RESMSG = {
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


def post(sb, http, form):
    r = http.post(sb.url + PATH, data=form, timeout=30)
    assert r.status_code == 200
    return r.json()


@pytest.mark.parametrize("res", sorted(RESMSG))
def test_every_res_code_is_reachable_with_its_identity(sb, http, res):
    ident = identity(f"four_factor_{res}")
    body = post(sb, http, four_factor_form(ident, provider_ready(scenario_selfie_jpeg(ident))))
    assert list(body) == ["reason", "result", "error_code"] and body["error_code"] == 0
    result = body["result"]
    assert list(result) == ["orderid", "res", "resmsg", "score", "type"]
    assert result["res"] == res and result["resmsg"] == RESMSG[res]
    assert result["orderid"].startswith("JH801") and len(result["orderid"]) == 22
    assert result["type"] == ident.carrier
    assert isinstance(result["score"], float)
    face_part = FOUR_FACTOR_PARTS[res][1]
    if face_part == "match":
        assert 800 <= result["score"] <= 1000  # 0-1000 scale, like the document's 982.7
    elif face_part == "mismatch":
        assert 0 < result["score"] < 600  # "人像核验不通过时不为0"
    else:
        assert result["score"] == 0.0
    assert sb.charged("four_factor", FOUR_FACTOR_KEY) == 1


def test_face_part_is_computed_from_the_image_not_the_identity(sb, http):
    ident = identity("four_factor_100")
    assert post(sb, http, four_factor_form(ident, provider_ready(other_person_jpeg(5))))["result"]["res"] == 102
    assert post(sb, http, four_factor_form(ident, b64(b"garbage").encode()))["result"]["res"] == 104
    review = identity("face_review")
    lookalike = post(sb, http, four_factor_form(review, provider_ready(scenario_selfie_jpeg(review))))["result"]
    assert lookalike["res"] == 102 and 400 <= lookalike["score"] < 600


def test_mobile_part_depends_on_who_owns_the_number(sb, http):
    ident = identity("match")
    image = provider_ready(selfie_jpeg(ident))
    someone_elses = identity("minority_name").mobile
    assert post(sb, http, four_factor_form(ident, image, mobile=someone_elses))["result"]["res"] == 101
    unknown = post(sb, http, four_factor_form(ident, image, mobile="13912345678"))["result"]
    assert unknown["res"] == 109 and unknown["type"] == "移动"
    assert identity("mobile_no_record").scenario == "four_factor_109"


def test_unknown_identity_with_unchecked_mobile_is_280105_and_not_charged(sb, http):
    ident = identity("not_found")
    body = post(sb, http, four_factor_form(ident, provider_ready(selfie_jpeg(ident))))
    assert body["error_code"] == 280105 and body["reason"] == "身份核验失败、手机号核验失败"
    assert body["result"]["orderid"].startswith("JH801")
    assert sb.charged() == 0 and sb.calls("four_factor") == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"mobile": ""}, 280101),
        ({"image": ""}, 280101),
        ({"realname": ""}, 280101),
        ({"idcard": "11010119900307123"}, 280102),
        ({"idcard": "110101199003071230"}, 280102),
        ({"mobile": "1380000000"}, 280103),
        ({"mobile": "23800000000"}, 280103),
        ({"realname": "Zhang San"}, 280104),
        ({"realname": "张3"}, 280104),
    ],
)
def test_format_errors_have_their_own_codes(sb, http, change, code):
    ident = identity("match")
    form = {**four_factor_form(ident, b"x"), **change}
    if form["idcard"] == "110101199003071230" and ident.id_number == form["idcard"]:
        pytest.skip("collision with a valid number")
    body = post(sb, http, form)
    assert body["error_code"] == code and body["result"] is None
    assert sb.charged() == 0


def test_keys(sb, http):
    ident = identity("match")
    form = four_factor_form(ident, provider_ready(selfie_jpeg(ident)))
    assert post(sb, http, {**form, "key": VERIFYFACE_KEY})["error_code"] == 10002
    assert post(sb, http, {**form, "key": "live-key-0123456789"})["error_code"] == 10001
    # a key the sandbox does not know may be a real one sent by mistake: the ledger keeps it masked
    assert sb.ledger()["calls"]["four_factor"] == {VERIFYFACE_KEY: 1, "live***": 1}
