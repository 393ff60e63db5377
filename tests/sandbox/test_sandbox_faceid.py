"""Juhe H5 FaceID: faceid/query, the verify page, the signed return, the notify, faceid/search, expiry."""

from __future__ import annotations

import io
import json
import queue
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from PIL import Image

from sandbox.providers import ProviderSandbox, SandboxConfig, identity, other_person_jpeg
from tests.sandbox.helpers import FACEID_KEY, VERIFYFACE_KEY, NotifySink, faceid_form, md5

QUERY, SEARCH = "/faceid/query", "/faceid/search"


def start(sb, http, scenario="match", **kw):
    r = http.post(sb.url + QUERY, data=faceid_form(identity(scenario), **kw), timeout=10)
    body = r.json()
    assert body["error_code"] == 0, body
    assert list(body) == ["reason", "result", "error_code"] and body["reason"] == "SUCCESS"
    return body["result"]


def search(sb, http, jh_order_id, key=FACEID_KEY):
    return http.post(sb.url + SEARCH, data={"key": key, "jhOrderId": jh_order_id}, timeout=10).json()


def finish(http, verify_url, **form):
    r = http.post(verify_url, data=form, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    return location, query["response"][0], query["sign"][0]


def test_full_pass_flow_with_signed_return_notify_search_and_image(sb, http):
    with NotifySink() as sink:
        started = start(
            sb, http, "minority_name", return_url="https://example.com/aaa/#bbb", notify_url=sink.url + "/notify/1"
        )
        jh, verify_url = started["jh_order_id"], started["verify_url"]
        assert jh.startswith("JH793") and len(jh) == 24
        assert verify_url.startswith(sb.url + "/")
        assert search(sb, http, jh)["error_code"] == 279307  # not opened yet
        page = http.get(verify_url, timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert "阿*******" in page.text and identity("minority_name").id_number not in page.text  # masked
        for element in ('id="pass"', 'id="fail"', 'id="abandon"', 'id="live_code"', 'id="camera"'):
            assert element in page.text
        assert search(sb, http, jh)["error_code"] == 279306  # opened, not finished

        location, response, sign = finish(http, verify_url, action="pass")
        parts = urlsplit(location)
        assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("https", "example.com", "/aaa", "bbb")
        assert sign == md5(response + FACEID_KEY)
        doc = json.loads(response)
        assert list(doc) == ["error_code", "reason", "result"] and doc["error_code"] == 0
        result = doc["result"]
        assert (result["passed"], result["jh_order_id"]) == ("T", jh)
        assert result["message"] == "身份证号与姓名匹配，且比对成功"
        detail = result["detail"]
        assert list(detail) == [
            "live_passed",
            "live_code",
            "live_message",
            "live_score",
            "certify_passed",
            "certify_code",
            "certify_message",
            "certify_res",
            "certify_score",
        ]
        assert (detail["live_passed"], detail["live_code"], detail["certify_passed"], detail["certify_code"]) == (
            "T",
            "200",
            "T",
            "200",
        )
        assert detail["certify_res"] == "1" and int(detail["certify_score"]) >= 80
        assert 85 <= float(detail["live_score"]) < 100 and len(detail["live_score"].split(".")[1]) == 5

        notify = sink.received.get(timeout=5)
        assert notify["path"] == "/notify/1"
        assert notify["content_type"] == "application/x-www-form-urlencoded"
        form = parse_qs(notify["body"].decode())
        assert form["response"] == [response] and form["sign"] == [sign]

    found = search(sb, http, jh)
    assert found["error_code"] == 0 and list(found) == ["reason", "result", "error_code"]
    img = found["result"]["detail"].pop("img")
    assert found["result"] == result
    picture = http.get(img, timeout=10)
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/jpeg"
    Image.open(io.BytesIO(picture.content)).verify()

    # the verify_url works once
    assert http.get(verify_url, timeout=10).status_code == 410
    assert http.post(verify_url, data={"action": "pass"}, allow_redirects=False, timeout=10).status_code == 410
    assert sb.notifications()[0]["status"] == 200
    assert sb.ledger()["charged"]["faceid_query"] == {FACEID_KEY: 1}


@pytest.mark.parametrize(
    ("scenario", "live", "certify", "passed"),
    [
        ("match", "200", "200", "T"),
        ("face_mismatch", "200", "203", "F"),
        ("face_review", "200", "203", "F"),
        ("name_mismatch", "200", "204", "F"),
        ("not_found", "200", "204", "F"),
        ("no_face_selfie", "200", "202", "F"),
        ("no_face_reference", "200", "201", "F"),
        ("no_reference_photo", "200", "201", "F"),
        ("four_factor_115", "200", "205", "F"),
        ("low_quality_selfie", "203", "206", "F"),
        ("liveness_risk", "201", "206", "F"),
        ("liveness_policy", "202", "206", "F"),
        ("liveness_low_quality", "203", "206", "F"),
        ("liveness_source_error", "204", "206", "F"),
        ("liveness_intent", "205", "206", "F"),
    ],
)
def test_scenarios_pass_through_the_page(sb, http, scenario, live, certify, passed):
    started = start(sb, http, scenario)
    _, response, _ = finish(http, started["verify_url"], action="pass")
    result = json.loads(response)["result"]
    detail = result["detail"]
    assert (detail["live_code"], detail["certify_code"], result["passed"]) == (live, certify, passed)
    assert detail["live_passed"] == ("T" if live == "200" else "F")
    assert detail["certify_passed"] == ("T" if certify == "200" else "F")
    assert detail["certify_res"] == {"200": "1", "203": "1", "204": "3"}.get(certify, "2")
    if certify in ("200", "203"):
        assert 0 < int(detail["certify_score"]) <= 100
    else:
        assert detail["certify_score"] == "0"


def test_failing_liveness_on_the_page(sb, http):
    started = start(sb, http, "match")
    _, response, sign = finish(http, started["verify_url"], action="fail", live_code="205")
    result = json.loads(response)["result"]
    assert (result["passed"], result["message"], result["detail"]["live_code"]) == ("F", "意愿判定不通过", "205")
    assert sign == md5(response + FACEID_KEY)


def test_uploaded_photo_is_what_the_camera_saw(sb, http):
    started = start(sb, http, "match")
    r = http.post(
        started["verify_url"],
        data={"action": "pass", "camera": "upload"},
        allow_redirects=False,
        files={"photo": ("me.jpg", other_person_jpeg(2), "image/jpeg")},
        timeout=30,
    )
    response = parse_qs(urlsplit(r.headers["Location"]).query)["response"][0]
    assert json.loads(response)["result"]["detail"]["certify_code"] == "203"


def test_abandon_sends_nothing_and_search_stays_not_submitted(sb, http):
    with NotifySink() as sink:
        started = start(sb, http, "match", notify_url=sink.url + "/n")
        http.get(started["verify_url"], timeout=10)
        r = http.post(started["verify_url"], data={"action": "abandon"}, allow_redirects=False, timeout=10)
        assert r.status_code == 200 and "放弃" in r.text
        assert search(sb, http, started["jh_order_id"])["error_code"] == 279307
        with pytest.raises(queue.Empty):
            sink.received.get(timeout=0.5)
    assert http.get(started["verify_url"], timeout=10).status_code == 200  # not submitted: still usable


def test_notify_failures_are_tolerated_and_retried(sb, http):
    with NotifySink(status=500) as sink:
        started = start(sb, http, "match", notify_url=sink.url + "/n")
        _location, _, _ = finish(http, started["verify_url"], action="pass")
        for _ in range(3):  # notify_attempts
            sink.received.get(timeout=5)
    started = start(sb, http, "match", notify_url="http://127.0.0.1:9/refused")
    finish(http, started["verify_url"], action="pass")
    assert search(sb, http, started["jh_order_id"])["result"]["passed"] == "T"


def test_expiry_on_the_sandbox_clock(clocked, http):
    sb, clock = clocked
    started = start(sb, http, "match")
    done = start(sb, http, "match", order_id="order0002")
    finish(http, done["verify_url"], action="pass")
    img = search(sb, http, done["jh_order_id"])["result"]["detail"]["img"]
    clock.advance(599)
    assert http.get(img, timeout=10).status_code == 200
    clock.advance(2)  # img URLs live 10 minutes
    assert http.get(img, timeout=10).status_code == 403
    clock.advance(1800 - 601 - 1)
    assert http.get(started["verify_url"], timeout=10).status_code == 200
    clock.advance(2)  # verify_url lives 30 minutes
    page = http.get(started["verify_url"], timeout=10)
    assert page.status_code == 410 and "过期" in page.text
    assert http.post(started["verify_url"], data={"action": "pass"}, allow_redirects=False).status_code == 410
    assert search(sb, http, started["jh_order_id"])["error_code"] == 279302
    assert search(sb, http, done["jh_order_id"])["result"]["passed"] == "T"  # a result stays readable


def test_http_clock_control_moves_expiry(sb, http):
    started = start(sb, http, "match")
    assert http.post(sb.url + "/_sandbox/clock", json={"advance_s": 1801}, timeout=10).json()["offset_s"] == 1801
    assert http.get(started["verify_url"], timeout=10).status_code == 410


@pytest.mark.parametrize(
    "change",
    [
        {"certName": ""},
        {"certNo": ""},
        {"orderId": ""},
        {"returnUrl": ""},
        {"certNo": "110101199003071239"},
        {"certName": "A1"},
        {"orderId": "short"},
        {"orderId": "x" * 33},
        {"orderId": "has-dash-1234"},
        {"returnUrl": "javascript:alert(1)"},
        {"notifyUrl": "ftp://example.com/n"},
        {"model": "6"},
        {"deviceType": "APP"},
        {"deviceType": "h5"},
        {"deviceType": "web"},
        {"deviceType": "Web"},
        {"deviceType": " H5"},
    ],
)
def test_query_parameter_errors_are_279301(sb, http, change):
    form = {**faceid_form(identity("match")), **change}
    body = http.post(sb.url + QUERY, data=form, timeout=10).json()
    assert body["error_code"] == 279301 and body["reason"].startswith("参数异常"), body
    assert sb.charged() == 0


def test_query_accepts_every_documented_option(sb, http):
    for model in "12345":
        for device in ("WEB", "H5"):
            form = {**faceid_form(identity("match")), "model": model, "deviceType": device}
            assert http.post(sb.url + QUERY, data=form, timeout=10).json()["error_code"] == 0


def test_search_errors(sb, http):
    assert search(sb, http, "JH79320240517095231mUzn9")["error_code"] == 279302
    assert http.post(sb.url + SEARCH, data={"key": FACEID_KEY}, timeout=10).json()["error_code"] == 279301
    assert search(sb, http, "x", key=VERIFYFACE_KEY)["error_code"] == 10002
    assert search(sb, http, "x", key="")["error_code"] == 10001


def test_unknown_verify_url(sb, http):
    assert http.get(sb.url + "/faceid/h5/nope", timeout=10).status_code == 404


def test_sign_form_decoded_by_default(sb, http):
    _, response, sign = finish(http, start(sb, http, "match")["verify_url"], action="pass")
    assert sign == md5(response + FACEID_KEY)
    assert sign != md5(quote(response, safe="") + FACEID_KEY)


def test_sign_form_encoded_option_signs_the_url_encoded_value(http):
    with NotifySink() as sink, ProviderSandbox(config=SandboxConfig(faceid_sign_form="encoded")) as sb:
        started = start(sb, http, "match", notify_url=sink.url + "/n")
        location, response, sign = finish(http, started["verify_url"], action="pass")
        as_sent = urlsplit(location).query.split("&")[0].removeprefix("response=")
        assert as_sent == quote(response, safe="")
        assert sign == md5(as_sent + FACEID_KEY) and sign != md5(response + FACEID_KEY)
        notify = parse_qs(sink.received.get(timeout=5)["body"].decode())
        assert notify["response"] == [response] and notify["sign"] == [sign]


def test_sign_form_option_is_checked():
    with pytest.raises(ValueError, match="faceid_sign_form"):
        SandboxConfig(faceid_sign_form="hex")
    with pytest.raises(ValueError, match="apetime_base64"):
        SandboxConfig(apetime_base64="standard")
