"""A FaceID session driven to the point where the browser comes back: start it through the API, pass
the sandbox's H5 liveness page, and return the signed `response` and `sign` the browser carries.

The sandbox's notify to the callback is switched off for these sessions, so the browser return is the
first arrival (as when the browser is faster than the provider's notify) and the cold handler does the
whole job: signature, session check, faceid/search, conditional write, event.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


def completed_session(scenarios: Any) -> tuple[str, str, str]:
    """(verification_id, response, sign) of a session whose liveness has just passed."""
    started = scenarios.api("POST", "/v1/faceid/sessions", json=scenarios.faceid_body()).json()
    verify_url = started["verify_url"]
    token = urlsplit(verify_url).path.rsplit("/", 1)[-1]
    session = scenarios.stack.sandbox.engine.sessions.by_token(token)
    if session is None:
        raise RuntimeError("the sandbox does not know the session it just started")
    session.notify_url = ""  # see the module docstring
    page = requests.post(verify_url, data={"action": "pass"}, allow_redirects=False, timeout=30)
    if page.status_code != 302:
        raise RuntimeError(f"H5 page answered {page.status_code}")
    location = urlsplit(page.headers["Location"])
    query = parse_qs(location.query)
    verification_id = location.path.rstrip("/").rsplit("/", 1)[-1]
    if verification_id != started["verification_id"]:
        raise RuntimeError("the browser return is for another verification")
    return verification_id, query["response"][0], query["sign"][0]
