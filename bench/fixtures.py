"""Test people and pictures for the benchmarks, from the provider sandbox's registry.

The selfie every check sends is the sandbox's phone photo of the `match` identity, made provider-ready
once by `idv.images.prepare_image(JUHE)`: a ~20 KB, 600x800 JPEG. The handler prepares it again (its
normal work) and the baselines send it as it is, so both sides carry the same image.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str
    mobile: str


@cache
def person(scenario: str = "match") -> Person:
    from sandbox.providers import identities

    ident = identities.identity(scenario)
    return Person(ident.name, ident.id_number, ident.mobile)


@cache
def selfie(scenario: str = "match") -> bytes:
    """A ~20 KB provider-ready selfie of the scenario's person."""
    from idv import images
    from sandbox.providers import identities

    return images.prepare_image(identities.selfie_jpeg(scenario), images.JUHE).jpeg


def selfie_b64(scenario: str = "match") -> str:
    return base64.b64encode(selfie(scenario)).decode("ascii")


def check_body(check: str = "compare", scenario: str = "match", **extra: object) -> dict[str, object]:
    """A request body for POST /v1/compare, /v1/four-factor or /v1/portrait."""
    who = person(scenario)
    body: dict[str, object] = {
        "name": who.name,
        "id_number": who.id_number,
        "image": selfie_b64(scenario),
        "consent": {"granted": True, "text_version": "bench-2026-01"},
        "client_reference": "bench",
    }
    if check == "four_factor":
        body["mobile"] = who.mobile
    body.update(extra)
    return body
