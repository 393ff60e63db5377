"""The provider secret (DESIGN §3): fetched with Powertools parameters, cached, checked field by field."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from idv import aws
from idv.errors import ConfigurationError

CACHE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ProviderSecrets:
    juhe_verifyface_key: str
    juhe_four_factor_key: str
    juhe_faceid_key: str
    juhe_openid: str
    apetime_app_key: str
    apetime_app_secret: str
    pii_hmac_key: str

    def __repr__(self) -> str:  # never print secret values
        return "ProviderSecrets(<redacted>)"

    @classmethod
    def from_mapping(cls, value: Any, source: str = "provider secret") -> ProviderSecrets:
        if not isinstance(value, dict):
            raise ConfigurationError(f"{source} must be a JSON object with the fields {_names()}")
        missing = [f.name for f in fields(cls) if not isinstance(value.get(f.name), str) or not value[f.name]]
        if missing:
            raise ConfigurationError(f"{source} lacks non-empty string fields: {', '.join(missing)}")
        placeholders = [
            f.name for f in fields(cls) if value[f.name].strip().upper() in {"REPLACE_ME", "CHANGEME", "TODO"}
        ]
        if placeholders:
            raise ConfigurationError(
                f"{source} still has placeholder values for: {', '.join(placeholders)}; put the provider "
                "credentials into the secret (see docs/deploy.md)"
            )
        return cls(**{f.name: value[f.name] for f in fields(cls)})


def _names() -> str:
    return ", ".join(f.name for f in fields(ProviderSecrets))


@cache
def secrets_provider() -> Any:
    """One Powertools SecretsProvider per container, on the shared lazily created client."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=aws.client("secretsmanager"))


def get_provider_secrets(secret_id: str, *, force_fetch: bool = False) -> ProviderSecrets:
    """The secret's fields, cached for CACHE_SECONDS per container (Powertools SecretsProvider)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

    if not secret_id:
        raise ConfigurationError("environment variable PROVIDER_SECRET_ID is not set")
    try:
        value = secrets_provider().get(secret_id, transform="json", max_age=CACHE_SECONDS, force_fetch=force_fetch)
    except TransformParameterError:
        raise ConfigurationError(f"secret {secret_id} is not valid JSON; expected the fields {_names()}") from None
    except GetParameterError as exc:
        raise ConfigurationError(
            f"secret {secret_id} could not be read ({_reason(exc)}); check PROVIDER_SECRET_ID and the"
            " function's secretsmanager:GetSecretValue permission"
        ) from None
    return ProviderSecrets.from_mapping(value, f"secret {secret_id}")


def _reason(exc: Exception) -> str:
    """The AWS error code behind a Powertools GetParameterError (it keeps only the message text)."""
    for text in (str(exc), str(exc.__cause__ or "")):
        found = re.search(r"An error occurred \((\w+)\)", text)
        if found:
            return found.group(1)
    return type(exc.__cause__).__name__ if exc.__cause__ is not None else "error"
