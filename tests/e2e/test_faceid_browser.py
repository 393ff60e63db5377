"""FaceID in a real headless browser: verify_url → sandbox H5 page → click → signed return to our
callback → the customer's redirect page; then the completed record is read through the API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.stack import body

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def start_session(api, person, customer_site):
    answer = api.post("/v1/faceid/sessions", body(person, redirect_url=f"{customer_site}/verified?order=42"))
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_person_passes_liveness_in_the_browser(api, browser, customer_site):
    from sandbox.providers import identities

    person = identities.identity("match")
    session = start_session(api, person, customer_site)
    page = browser.new_page()
    page.goto(session["verify_url"])
    assert person.name not in page.content()  # the page shows the masked subject only
    page.click("#pass")
    page.wait_for_url(f"{customer_site}/verified*")
    assert page.locator("#thanks").is_visible()
    landed = parse_qs(urlsplit(page.url).query)
    assert landed["order"] == ["42"]
    assert landed["verification_id"] == [session["verification_id"]]
    assert landed["status"] == ["completed"]
    assert person.id_number not in page.url and person.name not in page.url
    record = api.get(f"/v1/verifications/{session['verification_id']}").json()
    assert record["status"] == "completed" and record["decision"] == "pass"
    assert record["liveness"]["passed"] is True
    page.close()


def test_failed_liveness_lands_with_a_fail_decision(api, browser, customer_site):
    from sandbox.providers import identities

    person = identities.identity("match")
    session = start_session(api, person, customer_site)
    page = browser.new_page()
    page.goto(session["verify_url"])
    page.select_option("#live_code", "205")
    page.click("#fail")
    page.wait_for_url(f"{customer_site}/verified*")
    record = api.get(f"/v1/verifications/{session['verification_id']}").json()
    assert record["status"] == "completed" and record["decision"] == "fail"
    assert record["liveness"] == {"passed": False, "code": "205", "score": record["liveness"]["score"]}
    assert "liveness_intent_failed" in record["reasons"]
    page.goto(session["verify_url"])  # the link is single-use
    assert "链接已失效" in page.content()
    page.close()
