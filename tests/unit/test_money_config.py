"""The money controls' settings (DESIGN §3): integer fen from decimal strings, never floats; bad values
are a ConfigurationError naming the variable; the template's parameters reach every function."""

from __future__ import annotations

import json

import pytest

from idv import config, controls
from idv.errors import ConfigurationError
from sandbox.stack import template as tpl

PRICES = {"compare": "0.60", "four_factor": "1.00", "portrait": "0.50", "faceid": "1.50"}


@pytest.fixture
def env(monkeypatch):
    for name in ("SUBJECT_DAILY_LIMIT", "DEDUPE_WINDOW_SECONDS", "DAILY_SPEND_LIMIT", "PROVIDER_PRICES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(env):
    settings = config.settings_from_env()
    assert settings.subject_daily_limit == 10 and settings.dedupe_window_seconds == 600
    assert settings.daily_spend_limit_fen is None
    assert dict(settings.prices_fen) == {"compare": 60, "four_factor": 100, "portrait": 50, "faceid": 150}
    assert settings.controls_on


def test_amounts_are_integer_fen(env):
    env.setenv("DAILY_SPEND_LIMIT", "1234.5")
    env.setenv("PROVIDER_PRICES", json.dumps({**PRICES, "compare": "0.1"}))
    settings = config.settings_from_env()
    assert settings.daily_spend_limit_fen == 123450 and isinstance(settings.daily_spend_limit_fen, int)
    assert settings.price_fen("compare") == 10


def test_everything_off(env):
    env.setenv("SUBJECT_DAILY_LIMIT", "0")
    env.setenv("DEDUPE_WINDOW_SECONDS", "0")
    env.setenv("DAILY_SPEND_LIMIT", "")
    assert not config.settings_from_env().controls_on


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DAILY_SPEND_LIMIT", "0.001"),
        ("DAILY_SPEND_LIMIT", "-5"),
        ("DAILY_SPEND_LIMIT", "abc"),
        ("DAILY_SPEND_LIMIT", "NaN"),
        ("DAILY_SPEND_LIMIT", "Infinity"),
        ("SUBJECT_DAILY_LIMIT", "-1"),
        ("SUBJECT_DAILY_LIMIT", "ten"),
        ("DEDUPE_WINDOW_SECONDS", "86401"),
        ("PROVIDER_PRICES", "not json"),
        ("PROVIDER_PRICES", json.dumps({"compare": "0.60"})),  # a check missing
        ("PROVIDER_PRICES", json.dumps({**PRICES, "compare": 0.6})),  # a float, not a decimal string
        ("PROVIDER_PRICES", json.dumps({**PRICES, "extra": "1"})),
        ("PROVIDER_PRICES", json.dumps({**PRICES, "faceid": "1.505"})),
    ],
)
def test_bad_values_are_configuration_errors(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        config.settings_from_env()
    assert name.split("[")[0] in str(raised.value)


def test_days_are_utc_plus_8():
    # 2026-11-30T16:00:00Z is midnight in Beijing: the next day there.
    midnight = 1796054400.0
    assert controls.day_of(midnight - 1) == "20261130" and controls.day_of(midnight) == "20261201"
    assert controls.seconds_to_next_day(midnight - 1) == 1 and controls.seconds_to_next_day(midnight) == 86400


def test_dedupe_ids_are_hmacs():
    a = controls.dedupe_id("key-1", "compare", {"id_number": "110101199001011234"})
    assert a != controls.dedupe_id("key-2", "compare", {"id_number": "110101199001011234"})
    assert a != controls.dedupe_id("key-1", "portrait", {"id_number": "110101199001011234"})
    assert "110101199001011234" not in a and a.startswith("dedupe#")


def test_every_function_gets_the_settings_from_the_template():
    template = tpl.load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["USAGE_TABLE"] == {"Ref": "UsageTable"}
    for name, parameter in {
        "SUBJECT_DAILY_LIMIT": "SubjectDailyLimit",
        "DEDUPE_WINDOW_SECONDS": "DedupeWindowSeconds",
        "DAILY_SPEND_LIMIT": "DailySpendLimit",
        "PROVIDER_PRICES": "ProviderPrices",
    }.items():
        assert variables[name] == {"Ref": parameter}
    parameters = template["Parameters"]
    assert parameters["SubjectDailyLimit"]["Default"] == 10 and parameters["DedupeWindowSeconds"]["Default"] == 600
    assert parameters["DailySpendLimit"]["Default"] == ""
    assert json.loads(parameters["ProviderPrices"]["Default"]) == PRICES
    assert "PLACEHOLDER" in parameters["ProviderPrices"]["Description"]
