"""The customer's FaceID return URL: checked strictly when stored, rebuilt from its parts for the 302."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

from idv import errors

MAX_LENGTH = 2048
# Plain http only for these hosts, and only when they are on ALLOWED_REDIRECT_HOSTS (RFC 8252 §7.3).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Query parameters the gateway sets on the way back; the customer's own values of these are dropped.
GATEWAY_PARAMS = ("verification_id", "status", "decision")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HOST = re.compile(r"[a-z0-9.-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV4_PART = re.compile(r"0|[1-9][0-9]{0,2}")
_LABEL_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")  # WHATWG: a host "ends in a number" -> IPv4 parsing
# Printable ASCII except space: what stays as is in path, query and fragment (non-ASCII is percent-encoded).
_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
_DEFAULT_PORTS = {"https": 443, "http": 80}
_HTTPS_ONLY = "redirect_url must be https (http only for an allowed loopback host: 127.0.0.1, localhost, ::1)"
_NOT_ALLOWED = "redirect_url host is not allowed; add it to the AllowedRedirectHosts parameter (ALLOWED_REDIRECT_HOSTS)"


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    host: str  # lower-case name, dotted-quad IPv4 or compressed IPv6 (no brackets)
    kind: str  # "name", "ipv4" or "ipv6"
    port: int | None  # None for the scheme's default port
    path: str
    query: str | None
    fragment: str | None

    def unsplit(self, query: str | None) -> str:
        host = f"[{self.host}]" if self.kind == "ipv6" else self.host
        port = "" if self.port is None else f":{self.port}"
        url = f"{self.scheme}://{host}{port}{self.path}"
        if query:
            url += f"?{query}"
        if self.fragment is not None:
            url += f"#{self.fragment}"
        return url


def check_redirect_url(url: Any, allowed_hosts: tuple[str, ...]) -> str | None:
    """The normalized URL to store: https (http for an allowed loopback host) on ALLOWED_REDIRECT_HOSTS.

    None or "" means no redirect (None). An entry `.example.com` allows every subdomain of example.com
    but not example.com itself; any other entry is an exact host. Raises errors.InvalidRequest.
    """
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise errors.InvalidRequest("redirect_url must be a string")
    parts = _parse(url)
    _check_allowed(parts, allowed_hosts)
    normalized = parts.unsplit(parts.query)
    if len(normalized) > MAX_LENGTH:
        raise errors.InvalidRequest(f"redirect_url is longer than {MAX_LENGTH} characters once encoded")
    return normalized


def return_location(redirect_url: str, record: dict[str, Any], *, allowed_hosts: tuple[str, ...] | None = None) -> str:
    """The Location for the browser: redirect_url with verification_id, status and decision (when set).

    The URL is parsed again with the same strict rules and rebuilt from its parts; the customer's own
    verification_id / status / decision parameters are dropped so only the gateway's values remain.
    With allowed_hosts the allow list is checked again too. Raises errors.InvalidRequest for a stored
    URL those rules refuse (one stored before this check): the caller should then not redirect.
    """
    if not isinstance(redirect_url, str):
        raise errors.InvalidRequest("redirect_url must be a string")
    parts = _parse(redirect_url)
    if allowed_hosts is not None:
        _check_allowed(parts, allowed_hosts)
    elif parts.scheme != "https" and parts.host not in LOOPBACK_HOSTS:
        raise errors.InvalidRequest(_HTTPS_ONLY)
    kept = [
        piece
        for piece in (parts.query or "").split("&")
        if piece and unquote_plus(piece.partition("=")[0]) not in GATEWAY_PARAMS
    ]
    added = [("verification_id", str(record["verification_id"])), ("status", str(record["status"]))]
    if record.get("decision"):
        added.append(("decision", str(record["decision"])))
    return parts.unsplit("&".join([*kept, urlencode(added)]))


def _parse(url: str) -> _Url:
    """Split an absolute http(s) URL by the strict rules; raises errors.InvalidRequest."""
    if len(url) > MAX_LENGTH:
        raise errors.InvalidRequest(f"redirect_url is longer than {MAX_LENGTH} characters")
    for char in url:
        if char == "\\":
            raise errors.InvalidRequest("redirect_url must not contain backslashes")
        # Cc/Cf/Cs/Co/Cn (controls, bidi and zero-width marks, ...) and Zs/Zl/Zp (every kind of space).
        if char <= " " or unicodedata.category(char)[0] in "CZ":
            raise errors.InvalidRequest("redirect_url must not contain whitespace or control characters")
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        raise errors.InvalidRequest("redirect_url must be an absolute https URL (https://host/...)")
    scheme = scheme_match.group()[:-1].lower()
    if scheme not in _DEFAULT_PORTS:
        raise errors.InvalidRequest(_HTTPS_ONLY)
    rest = url[scheme_match.end() :]
    if not rest.startswith("//") or rest.startswith("///"):
        raise errors.InvalidRequest(f"redirect_url must start with {scheme}:// and the host")
    rest = rest[2:]
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    authority, rest = rest[:end], rest[end:]
    host, kind, port = _parse_authority(authority, scheme)
    rest = quote(rest, safe=_VISIBLE_ASCII)  # non-ASCII in path, query, fragment -> UTF-8 percent-escapes
    rest, hash_mark, fragment = rest.partition("#")
    path, question_mark, query = rest.partition("?")
    return _Url(
        scheme=scheme,
        host=host,
        kind=kind,
        port=port,
        path=path or "/",
        query=query if question_mark else None,
        fragment=fragment if hash_mark else None,
    )


def _parse_authority(authority: str, scheme: str) -> tuple[str, str, int | None]:
    if not authority:
        raise errors.InvalidRequest("redirect_url has no host")
    if not authority.isascii():
        raise errors.InvalidRequest(
            "redirect_url host must be ASCII; write an internationalized name in its xn-- (punycode) form"
        )
    if "@" in authority:
        raise errors.InvalidRequest("redirect_url must not contain credentials (user@)")
    if "%" in authority:
        raise errors.InvalidRequest("redirect_url host must not contain percent-escapes")
    if authority.startswith("["):
        literal, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise errors.InvalidRequest("redirect_url has a malformed IPv6 host")
        try:
            host = ipaddress.IPv6Address(literal).compressed
        except ValueError:
            raise errors.InvalidRequest("redirect_url has a malformed IPv6 host") from None
        return host, "ipv6", _parse_port(after[1:], scheme) if after else None
    name, colon, port_text = authority.partition(":")
    host, kind = _parse_name(name.lower())
    return host, kind, _parse_port(port_text, scheme) if colon else None


def _parse_name(host: str) -> tuple[str, str]:
    if not _HOST.fullmatch(host):
        raise errors.InvalidRequest("redirect_url host may contain only letters, digits, dots and hyphens")
    labels = host.split(".")
    if len(host) > 253 or any(not label or len(label) > 63 for label in labels):
        raise errors.InvalidRequest("redirect_url host must not have empty labels, leading or trailing dots")
    if _LABEL_NUMBER.fullmatch(labels[-1]):
        # Browsers read such a host as an IPv4 address (127.1, 0x7f.0.0.1, 2130706433 are 127.0.0.1):
        # only the plain dotted-quad form is accepted, so the allow list sees what the browser sees.
        if len(labels) != 4 or not all(_IPV4_PART.fullmatch(p) and int(p) <= 255 for p in labels):
            raise errors.InvalidRequest("redirect_url IPv4 host must be four decimal numbers (a.b.c.d)")
        return host, "ipv4"
    for label in labels:
        if label.startswith("-") or label.endswith("-"):
            raise errors.InvalidRequest("redirect_url host labels must not start or end with a hyphen")
        if label.startswith("xn--") and not _is_a_label(label):
            raise errors.InvalidRequest("redirect_url host has an invalid xn-- label")
    return host, "name"


def _is_a_label(label: str) -> bool:
    """Punycode that decodes to a non-ASCII, already-mapped name (no controls, spaces, NFKC changes).

    Stricter than IDNA needs, but a label it passes is read by browsers as this same A-label (or the URL
    fails to load): it never turns into another host.
    """
    try:
        name = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return False
    return (
        not name.isascii()
        and unicodedata.normalize("NFKC", name.casefold()) == name
        and all(unicodedata.category(char)[0] not in "CZ" and char not in "./:@%" for char in name)
    )


def _parse_port(text: str, scheme: str) -> int | None:
    if not _PORT.fullmatch(text) or not 0 < int(text) <= 65535:
        raise errors.InvalidRequest("redirect_url port must be a number from 1 to 65535")
    port = int(text)
    return None if port == _DEFAULT_PORTS[scheme] else port


def _check_allowed(parts: _Url, allowed_hosts: tuple[str, ...]) -> None:
    if not any(_matches(parts, entry) for entry in allowed_hosts):
        raise errors.InvalidRequest(_NOT_ALLOWED)
    if parts.scheme != "https" and parts.host not in LOOPBACK_HOSTS:
        raise errors.InvalidRequest(_HTTPS_ONLY)


def _matches(parts: _Url, entry: str) -> bool:
    """`.example.com` matches names below example.com; anything else matches exactly (IPs: exactly only)."""
    entry = entry.strip().lower().removeprefix("[").removesuffix("]")
    if not entry or entry == ".":
        return False
    if parts.kind == "ipv6":
        try:
            return ipaddress.IPv6Address(entry).compressed == parts.host
        except ValueError:
            return False
    if entry.startswith("."):
        return parts.kind == "name" and parts.host.endswith(entry)
    return parts.host == entry
