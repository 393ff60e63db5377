"""Provider sandbox: a local HTTP emulator of Juhe verifyface / verifyEncry / four-factor / FaceID and
Apetime portrait_verification, strictly as their documents describe them, with synthetic test identities,
computed face matching, injectable faults, a billing ledger and connection counting.

    from sandbox.providers import ProviderSandbox, identity, scenario_selfie_jpeg

    with ProviderSandbox() as sb:
        ident = identity("match")
        ...  # point JUHE_BASE_URL / APETIME_BASE_URL at sb.url

See docs/sandbox.md.
"""

from sandbox.providers.config import DEFAULT_CREDENTIALS, SandboxConfig
from sandbox.providers.crypto import aes_encrypt_field, apetime_sign, faceid_sign, juhe_aes_key
from sandbox.providers.faceid import place_result
from sandbox.providers.identities import (
    ALIASES,
    FAULTS,
    FOUR_FACTOR_PARTS,
    IDENTITIES,
    Identity,
    by_id_number,
    expected,
    identity,
    lookalike_jpeg,
    make_id_number,
    no_face_jpeg,
    other_person_jpeg,
    reference_jpeg,
    scenario_selfie_jpeg,
    scenarios,
    selfie_jpeg,
    small_face_jpeg,
)
from sandbox.providers.server import ProviderSandbox
from sandbox.providers.state import API_PATHS, FAULT_KINDS

__all__ = [
    "ALIASES",
    "API_PATHS",
    "DEFAULT_CREDENTIALS",
    "FAULTS",
    "FAULT_KINDS",
    "FOUR_FACTOR_PARTS",
    "IDENTITIES",
    "Identity",
    "ProviderSandbox",
    "SandboxConfig",
    "aes_encrypt_field",
    "apetime_sign",
    "by_id_number",
    "expected",
    "faceid_sign",
    "identity",
    "juhe_aes_key",
    "lookalike_jpeg",
    "make_id_number",
    "no_face_jpeg",
    "other_person_jpeg",
    "place_result",
    "reference_jpeg",
    "scenario_selfie_jpeg",
    "scenarios",
    "selfie_jpeg",
    "small_face_jpeg",
]
