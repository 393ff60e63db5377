"""idv.redirects: hostile return URLs are refused, and every Location we send lands on an allowed host.

"Lands on" is judged independently of the module: by a small reading of the WHATWG URL rules that
browsers apply to a Location header (written here, not shared with the code under test), by
urllib.parse, and, when Debian's chromium is installed, by the browser's own `new URL()`.
"""

from __future__ import annotations

import ipaddress
import queue
import re
import shutil
import threading
from urllib.parse import parse_qsl, unquote, urlsplit

import idna
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from idv import errors
from idv.redirects import check_redirect_url, return_location

ALLOWED = ("example.com", ".example.com", "127.0.0.1", "localhost", "::1")
HTTPS_ONLY = ("example.com", ".example.com")
# The 302 is answered by the callback: a relative Location would resolve against this URL.
CALLBACK = "https://gateway.example.net/v1/faceid/callback/01J0000000000000000000000"
RECORD = {"verification_id": "01J0000000000000000000000", "status": "completed", "decision": "pass"}
C0_OR_SPACE = "".join(chr(c) for c in range(0x21))


# --- an independent reading of a Location, after the WHATWG URL Standard ------------------------


def whatwg_hostname(location: str, base: str = CALLBACK) -> str | None:
    """The host a browser navigates to for this Location (None: no http(s) navigation at all)."""
    text = location.strip(C0_OR_SPACE)  # leading / trailing C0 controls and spaces are dropped
    text = re.sub("[\t\n\r]", "", text)  # tabs and newlines anywhere are removed
    base_parts = urlsplit(base)
    scheme_match = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", text)
    if scheme_match is None:
        return base_parts.hostname if not re.match(r"[/\\]{2}", text) else _authority_host(text)
    scheme = scheme_match.group()[:-1].lower()
    rest = text[scheme_match.end() :]
    if scheme not in ("http", "https"):
        return None
    if scheme == base_parts.scheme and rest[:1] not in ("/", "\\"):
        return base_parts.hostname  # "https:evil.com" is a path relative to the base
    return _authority_host(rest)


def _authority_host(rest: str) -> str | None:
    rest = rest.lstrip("/\\")  # special schemes: any number of slashes or backslashes
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    authority = authority.rpartition("@")[2]  # the last @ ends the user info
    if authority.startswith("["):
        return ipaddress.IPv6Address(authority[1 : authority.index("]")]).compressed
    host = unquote(authority.partition(":")[0])
    host = idna.encode(host, uts46=True).decode("ascii") if host else ""
    labels = host.rstrip(".").split(".") if host.endswith(".") and host != "." else host.split(".")
    last = labels[-1]
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", last):
        return _whatwg_ipv4(labels)
    return host


def _whatwg_ipv4(parts: list[str]) -> str | None:
    numbers = []
    for part in parts:
        if part.startswith("0x"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            numbers.append(int(part[1:], 8))
        else:
            numbers.append(int(part))
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = sum(n * 256 ** (3 - i) for i, n in enumerate(numbers[:-1])) + numbers[-1]
    return str(ipaddress.IPv4Address(value))


def is_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    if not host:
        return False
    for entry in allowed:
        if host == entry or (entry.startswith(".") and host.endswith(entry) and len(host) > len(entry)):
            return True
    return False


def assert_lands_on_allowed(location: str, allowed: tuple[str, ...]) -> str:
    """The Location's host by the WHATWG reading and by urllib agree and is on the allow list."""
    assert re.fullmatch(r"[\x21-\x5b\x5d-\x7e]+", location), "only visible ASCII, no backslash"
    host = whatwg_hostname(location)
    assert is_allowed(host, allowed), (location, host)
    parsed = urlsplit(location)
    assert parsed.scheme in ("https", "http")
    assert parsed.username is None and parsed.password is None
    python_host = parsed.hostname
    if python_host and ":" in python_host:
        python_host = ipaddress.IPv6Address(python_host).compressed
    assert python_host == host, (location, python_host, host)
    if parsed.scheme == "http":
        assert host in ("127.0.0.1", "localhost", "::1")
    return host


# --- the hostile table: every one is refused -----------------------------------------------------

HOSTILE = [
    # the reproduced attacks: backslash and leading whitespace
    "https://evil.com\\.example.com/phish",
    "HTTPS://EVIL.COM\\.EXAMPLE.COM/phish",
    " https://evil.com\\.example.com/phish",
    "\thttps://example.com/",
    "\x00https://example.com/",
    "https://example.com/ ",
    "https:/\\evil.com",
    "https:\\\\evil.com",
    "https://example.com\\@evil.com",
    # look-alike suffixes and hosts
    "https://example.com.evil.com/",
    "https://evilexample.com/",
    "https://evil.com/.example.com",
    "https://evil.com#.example.com",
    "https://evil.com?.example.com",
    "https://evil.com:443.example.com/",
    # not an absolute https URL
    "https:evil.com",
    "//evil.com",
    "/relative/path",
    "https:///evil.com",
    "https:////example.com",
    "https://",
    "http://example.com/",
    "http://shop.example.com/",
    "javascript:alert(1)//.example.com",
    "data:text/html,<script>alert(1)</script>",
    "ftp://example.com/",
    "file:///etc/passwd",
    # user info
    "https://example.com@evil.com/",
    "https://user:pass@example.com/",
    "https://@example.com/",
    "https://[::1]@evil.com/",
    # percent-escapes in the authority
    "https://example.com%2eevil.com/",
    "https://evil%2ecom.example.com/",
    "https://ex%61mple.com/",
    "https://example.com%00.evil.com/",
    "https://example.com%40evil.com/",
    "https://[fe80::1%25eth0]/",
    # dots and labels
    "https://example.com./",
    "https://.example.com/",
    "https://a..example.com/",
    "https://-a.example.com/",
    "https://a-.example.com/",
    "https://ex_ample.com/",
    "https://" + "a" * 64 + ".example.com/",
    # control characters, whitespace, invisible marks
    "https://example.com\x00.evil.com/",
    "https://example.com/\x00",
    "https://example.com/\r\nSet-Cookie: a=b",
    "https://example.com/\n",
    "https://ex\tample.com/",
    "https://example.com/\x7f",
    "https://example.com/\x85",
    "https://example.com\u202e/moc.live",
    "https://example.com\u200b/",
    "https://example.com/\u3000",
    "https://example.com/\u00a0",
    "https://example.com/\ud800",
    # non-ASCII hosts (U-labels are refused, homographs with them)
    "https://exаmple.com/",  # Cyrillic а
    "https://ｅxample.com/",  # fullwidth e
    "https://example。com/",  # ideographic full stop
    "https://evil.com．example.com/",  # fullwidth full stop
    "https://example.com／@evil.com/",  # fullwidth solidus
    "https://straße.example.com/",
    # IP addresses: non-canonical IPv4 forms, IPv6 not on the list, loopback not on the list
    "https://0x7f.0.0.1/",
    "https://2130706433/",
    "https://127.1/",
    "https://0177.0.0.1/",
    "https://127.0.0.01/",
    "https://1.2.3.4.5/",
    "https://example.0x1/",
    "https://[::2]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::1/",
    "https://[::1]x/",
    # ports
    "https://example.com:99999/",
    "https://example.com:0/",
    "https://example.com:/",
    "https://example.com:abc/",
    "https://example.com:443:443/",
    "https://example.com:+443/",
    # length
    "https://example.com/" + "a" * 2100,
    "https://example.com/" + "é" * 400,  # fine as text, too long once percent-encoded
    # an invalid punycode label
    "https://xn--a-ecp.example.com/",
    "https://xn--.example.com/",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        check_redirect_url(url, ALLOWED)


def test_the_hostile_table_is_large() -> None:
    assert len(HOSTILE) >= 30
    assert len(set(HOSTILE)) == len(HOSTILE)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:3000/cb", HTTPS_ONLY),
        ("http://localhost/cb", HTTPS_ONLY),
        ("http://[::1]/cb", HTTPS_ONLY),
        ("https://localhost/cb", HTTPS_ONLY),
    ],
)
def test_loopback_needs_its_own_entry(url: str, allowed: tuple[str, ...]) -> None:
    with pytest.raises(errors.InvalidRequest, match="not allowed"):
        check_redirect_url(url, allowed)


def test_bare_domain_is_not_matched_by_its_suffix_entry() -> None:
    with pytest.raises(errors.InvalidRequest, match="not allowed"):
        check_redirect_url("https://example.com/", (".example.com",))
    assert check_redirect_url("https://a.example.com/", (".example.com",)) == "https://a.example.com/"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/", "must be https (http only for an allowed loopback host"),
        ("ftp://example.com/", "must be https"),
        ("https://evil.com\\.example.com/", "backslash"),
        (" https://example.com/", "whitespace or control"),
        ("https://u@example.com/", "credentials"),
        ("https://ex%61mple.com/", "percent-escapes"),
        ("https://exаmple.com/", "xn--"),
        ("https://example.com./", "trailing dots"),
        ("https://127.1/", "four decimal numbers"),
        ("https://evil.com/", "AllowedRedirectHosts"),
        ("https://example.com:0/", "1 to 65535"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_messages_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        check_redirect_url(url, ALLOWED)
    assert message in caught.value.detail
    assert caught.value.status == 400 and caught.value.code == "invalid_request"


@pytest.mark.parametrize("value", [123, 1.5, b"https://example.com/", ["https://example.com/"], {"u": 1}, True])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(errors.InvalidRequest, match="must be a string"):
        check_redirect_url(value, ALLOWED)


@pytest.mark.parametrize("value", [None, ""])
def test_no_redirect(value: object) -> None:
    assert check_redirect_url(value, ALLOWED) is None


# --- accepted URLs: normalized, and the Location lands on an allowed host ------------------------

ACCEPTED = [
    ("https://example.com", "https://example.com/"),
    ("https://example.com/done", "https://example.com/done"),
    ("https://shop.example.com/return?order=42&x=", "https://shop.example.com/return?order=42&x="),
    ("https://EXAMPLE.com/Path", "https://example.com/Path"),
    ("HTTPS://A.B.Example.COM/", "https://a.b.example.com/"),
    ("https://a.example.com:8443/x", "https://a.example.com:8443/x"),
    ("https://example.com:443/x", "https://example.com/x"),
    ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb"),
    ("http://localhost:8080/", "http://localhost:8080/"),
    ("http://LOCALHOST/", "http://localhost/"),
    ("http://[::1]:8080/cb", "http://[::1]:8080/cb"),
    ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
    ("https://127.0.0.1/", "https://127.0.0.1/"),
    ("http://127.0.0.1:80/", "http://127.0.0.1/"),
    ("https://example.com/路径?q=值#完成", "https://example.com/%E8%B7%AF%E5%BE%84?q=%E5%80%BC#%E5%AE%8C%E6%88%90"),
    ("https://example.com/?a=1&status=forged", "https://example.com/?a=1&status=forged"),
    ("https://xn--fiqs8s.example.com/", "https://xn--fiqs8s.example.com/"),
    ("https://example.com#@evil.com", "https://example.com/#@evil.com"),
    ("https://example.com/@evil.com", "https://example.com/@evil.com"),
    ("https://example.com//evil.com", "https://example.com//evil.com"),
    ("https://example.com/%2e%2e/%2F?x=%23#a#b", "https://example.com/%2e%2e/%2F?x=%23#a#b"),
    ("https://example.com?", "https://example.com/"),
    ("https://example.com/#", "https://example.com/#"),
    ("https://1-2.example.com/", "https://1-2.example.com/"),
]


@pytest.mark.parametrize(("url", "normalized"), ACCEPTED)
def test_accepted_urls_are_normalized(url: str, normalized: str) -> None:
    stored = check_redirect_url(url, ALLOWED)
    assert stored == normalized
    assert check_redirect_url(stored, ALLOWED) == stored  # idempotent
    assert_lands_on_allowed(stored, ALLOWED)
    assert_lands_on_allowed(return_location(stored, RECORD), ALLOWED)


def test_gateway_parameters_replace_the_customers() -> None:
    stored = check_redirect_url(
        "https://example.com/r?status=approved&a=1&decision=pass&verification%5Fid=x&b=2&status=x#top", ALLOWED
    )
    record = {"verification_id": "01J0000000000000000000000", "status": "expired", "decision": None}
    location = return_location(stored, record)
    assert location == "https://example.com/r?a=1&b=2&verification_id=01J0000000000000000000000&status=expired#top"
    query = parse_qsl(urlsplit(location).query)
    assert [v for k, v in query if k == "status"] == ["expired"]
    assert [k for k, _ in query if k == "decision"] == []  # a forged decision never survives


def test_decision_is_added_when_set() -> None:
    location = return_location("https://example.com/", RECORD)
    assert location == "https://example.com/?verification_id=01J0000000000000000000000&status=completed&decision=pass"


def test_return_location_refuses_a_hostile_stored_url() -> None:
    # A record stored before this check could hold the reproduced attack: no Location is produced.
    for stored in ("https://evil.com\\.example.com/phish", " https://example.com/", "https://u@example.com/"):
        with pytest.raises(errors.InvalidRequest):
            return_location(stored, RECORD)
    with pytest.raises(errors.InvalidRequest, match="must be https"):
        return_location("http://example.com/", RECORD)
    with pytest.raises(errors.InvalidRequest, match="not allowed"):
        return_location("https://evil.com/", RECORD, allowed_hosts=ALLOWED)
    assert return_location("https://a.example.com/", RECORD, allowed_hosts=ALLOWED).startswith(
        "https://a.example.com/?"
    )


def test_allow_list_entries_are_normalized() -> None:
    assert check_redirect_url("https://a.example.com/", (" .Example.COM ",)) == "https://a.example.com/"
    assert check_redirect_url("http://[::1]/", ("[::1]",)) == "http://[::1]/"
    with pytest.raises(errors.InvalidRequest):
        check_redirect_url("https://example.com/", ("", ".", "  "))


def test_independent_reader_sees_the_reproduced_attack() -> None:
    # The checker itself is sound: the old answer would land on evil.com.
    assert whatwg_hostname("https://evil.com\\.example.com/phish") == "evil.com"
    assert whatwg_hostname(" \thttps://evil.com/") == "evil.com"
    assert whatwg_hostname("https:/\\evil.com") == "evil.com"
    assert whatwg_hostname("https:///evil.com") == "evil.com"
    assert whatwg_hostname("https:evil.com") == "gateway.example.net"
    assert whatwg_hostname("https://0x7f.1/") == "127.0.0.1"
    assert whatwg_hostname("https://ex%61mple.com/") == "example.com"


# --- properties ---------------------------------------------------------------------------------

PIECES = [
    *("https://", "http://", "HTTPS://", "https:", "//", "/", "\\", ":", "@", "?", "#", "&", "=", "."),
    *("evil.com", "example.com", ".example.com", "example", "com", "a", "xn--fiqs8s", "-", "_", "1", "0x7f"),
    *("127.0.0.1", "localhost", "[::1]", "[", "]", ":443", ":8443", ":0", "%2e", "%40", "%", "status=x"),
    *("decision=pass", "verification_id=v", "\t", "\n", "\r", " ", "\x00", "\x7f", "\u3002", "\uff0e"),
    *("\uff0f", "ｅ", "а", "ß", "\u200b", "\u202e", "\u00a0", "é", "路"),
]
SCHEMES = st.sampled_from(["https://", "http://", "HTTPS://", "https:", "", " https://", "https:///"])
HOSTS = st.sampled_from(["example.com", "a.example.com", "127.0.0.1", "localhost", "[::1]", "evil.com", ""])
NOISE = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)
LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
SUBDOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + ".example.com")
PORT = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
TAIL = st.tuples(st.sampled_from(["", "/", "?", "#", "/x?"]), st.text(max_size=20), NOISE).map("".join)
# Mostly well-formed URLs (many accepted) with hostile pieces in host, port and tail.
WELL_FORMED = st.builds(
    lambda s, h, p, t: s + h + p + t,
    st.sampled_from(["https://", "HTTPS://", "http://"]),
    st.one_of(HOSTS, SUBDOMAIN, st.builds(lambda a, b: a + b, SUBDOMAIN, NOISE)),
    PORT,
    TAIL,
)
CLEAN_TEXT = st.text(st.sampled_from([*(chr(c) for c in range(0x21, 0x7F) if chr(c) != "\\"), "é", "路"]), max_size=30)
# Well-formed URLs whose host is allowed or nearly so: most are accepted, so the properties bite.
CLEAN = st.builds(
    lambda s, h, p, t: s + h + p + t,
    st.sampled_from(["https://", "HTTPS://", "https://", "http://"]),
    st.one_of(SUBDOMAIN, st.sampled_from(["example.com", "127.0.0.1", "localhost", "[::1]", "EXAMPLE.COM"])),
    PORT,
    st.tuples(st.sampled_from(["", "/", "?", "#"]), CLEAN_TEXT).map("".join),
)
URLS = st.one_of(
    CLEAN,
    WELL_FORMED,
    st.builds(lambda s, a, h, b: s + a + h + b, SCHEMES, NOISE, HOSTS, NOISE),
    st.builds(lambda s, h, b: s + h + b, SCHEMES, HOSTS, NOISE),
    st.text(max_size=60).map(lambda t: "https://" + t),
)


def _accepted(url: str) -> str | None:
    try:
        return check_redirect_url(url, ALLOWED)
    except errors.InvalidRequest:
        return None


@settings(max_examples=1500, deadline=None)
@given(URLS)
def test_no_accepted_url_lands_outside_the_allow_list(url: str) -> None:
    stored = _accepted(url)
    event("accepted" if stored else "refused")
    if stored is None:
        return
    assert check_redirect_url(stored, ALLOWED) == stored
    assert_lands_on_allowed(stored, ALLOWED)
    location = return_location(stored, RECORD)
    host = assert_lands_on_allowed(location, ALLOWED)
    assert host == urlsplit(stored).hostname.lower().strip("[]").replace("0:0:0:0:0:0:0:1", "::1")
    query = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    for name in ("verification_id", "status", "decision"):
        assert [v for k, v in query if k == name] == [RECORD[name]]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_lands_outside_the_allow_list(url: str) -> None:
    stored = _accepted(url)
    if stored is not None:
        assert_lands_on_allowed(return_location(stored, RECORD), ALLOWED)


# --- the real browser: Chromium's own URL parser reads each Location -----------------------------

BROWSER_CORPUS = [url for url, _ in ACCEPTED]


class _PageInThread:
    """Chromium driven from a thread of its own: Playwright's sync API refuses a thread that already runs
    an asyncio loop (the session's other browser tests may leave one), so every call goes through here."""

    def __init__(self, sync_api, executable: str) -> None:
        self._calls: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sync_api, executable), daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error

    def _run(self, sync_api, executable: str) -> None:
        try:
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=executable, args=["--no-sandbox", "--disable-gpu"], headless=True
                )
                page = browser.new_page()
                page.set_content("<!doctype html><title>url</title>")
                self._ready.set()
                while (call := self._calls.get()) is not None:
                    args, reply = call
                    try:
                        reply.put((page.evaluate(*args), None))
                    except Exception as exc:
                        reply.put((None, exc))
                browser.close()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def evaluate(self, *args):
        reply: queue.Queue = queue.Queue()
        self._calls.put((args, reply))
        value, error = reply.get(timeout=60)
        if error is not None:
            raise error
        return value

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def url_page():
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (make browser)")
    sync_api = pytest.importorskip("playwright.sync_api")
    page = _PageInThread(sync_api, shutil.which("chromium"))
    yield page
    page.close()


def browser_hostname(page, location: str) -> str | None:
    host = page.evaluate(
        "([u, b]) => { try { return new URL(u, b).hostname } catch (e) { return null } }", [location, CALLBACK]
    )
    return host.strip("[]") if host else host


@pytest.mark.browser
def test_browser_confirms_the_independent_reader(url_page) -> None:
    # Chromium reads the reproduced attacks the way whatwg_hostname() does.
    for hostile in (
        "https://evil.com\\.example.com/phish",
        " https://evil.com/",
        "https:/\\evil.com",
        "https://127.1/",
    ):
        assert browser_hostname(url_page, hostile) == whatwg_hostname(hostile)


@pytest.mark.browser
@pytest.mark.parametrize("url", BROWSER_CORPUS)
def test_browser_lands_on_an_allowed_host(url_page, url: str) -> None:
    stored = check_redirect_url(url, ALLOWED)
    location = return_location(stored, RECORD)
    host = browser_hostname(url_page, location)
    assert is_allowed(host, ALLOWED), (location, host)
    assert host == assert_lands_on_allowed(location, ALLOWED)


@pytest.mark.browser
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=st.one_of(CLEAN, WELL_FORMED))
def test_browser_property(url_page, url: str) -> None:
    stored = _accepted(url)
    event("accepted" if stored else "refused")
    if stored is None:
        return
    location = return_location(stored, RECORD)
    host = browser_hostname(url_page, location)
    assert is_allowed(host, ALLOWED), (location, host)
