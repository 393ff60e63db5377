"""Provider clients: one module per provider, each a thin client plus pure parsers.

    juhe.py     JuheClient: verifyface (plain / AES), four-factor, faceid query + search,
                verify_return_signature / return_signature_form (which reading of the return `sign`),
                parse_faceid_payload (shared by search and the browser return)
    apetime.py  ApetimeClient: portrait_verification (md5 `sign`), apetime_sign

Clients build the documented form, post it through `idv.http.post_json` (the one session / retry
policy) with a classifier built from `idv.codes`, and hand the decoded JSON to a pure parser that
returns an `idv.results.CheckResult`. Parsers never raise KeyError/TypeError on odd bodies: a body
that does not have the documented shape (or carries a number DynamoDB cannot hold) is
`ProviderAnswerMalformed` (a `ProviderUnavailable`) with a detail saying what was wrong, and `charged`
set from what the body says about billing.
No request value (name, ID number, mobile, image) and no provider image URL is kept or logged.

`juhe_client()` / `apetime_client()` are the factories: one client per container, made on first use
from the settings, so warm calls reuse its connections.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from idv.providers.apetime import ApetimeClient
    from idv.providers.juhe import JuheClient


@cache
def juhe_client() -> JuheClient:
    from idv.config import get_settings
    from idv.providers.juhe import DEFAULT_READ_TIMEOUTS, JuheClient

    settings = get_settings()
    timeout = settings.provider_read_timeout
    timeouts = dict.fromkeys(DEFAULT_READ_TIMEOUTS, timeout) if timeout else None
    return JuheClient(base_url=settings.juhe_base_url, read_timeouts=timeouts)


@cache
def apetime_client() -> ApetimeClient:
    from idv.config import get_settings
    from idv.providers.apetime import DEFAULT_READ_TIMEOUT, ApetimeClient

    settings = get_settings()
    return ApetimeClient(
        base_url=settings.apetime_base_url, read_timeout=settings.provider_read_timeout or DEFAULT_READ_TIMEOUT
    )
