"""Driving the sandbox's FaceID H5 page without a browser (the demo and API tests; the e2e test
uses headless Chromium): open verify_url, submit an outcome, follow the signed return to our
callback, and report where the browser would land."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests


def complete(browser: requests.Session, verify_url: str, outcome: str = "pass", live_code: str = "201") -> str:
    """Submit `pass`, `fail` (with live_code) or `abandon`; returns the final Location (or page URL)."""
    page = browser.get(verify_url, timeout=30)
    page.raise_for_status()
    camera = re.search(r'<option value="([^"]+)" selected>', page.text)
    form = {"action": (None, outcome), "live_code": (None, live_code)}
    if camera:
        form["camera"] = (None, camera.group(1))
    answer = browser.post(verify_url, files=form, allow_redirects=False, timeout=30)
    location = verify_url
    hops = 0
    while answer.status_code in (301, 302, 303, 307) and hops < 5:
        location = urljoin(location, answer.headers["Location"])
        if not location.startswith(("http://127.0.0.1:", "http://localhost:")):
            return location  # the customer's page: a real browser would load it
        answer = browser.get(location, allow_redirects=False, timeout=30)
        hops += 1
    return location
