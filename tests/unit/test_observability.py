"""observability reads Powertools' documented switches itself (no private Powertools API at run time);
these tests pin that reading to Powertools' own answer, so an upgrade that changes the rule fails here."""

from __future__ import annotations

import itertools

import pytest

ENV = {
    "POWERTOOLS_TRACE_DISABLED": (None, "true", "false", "1", "0"),
    "LAMBDA_TASK_ROOT": (None, "/var/task"),
    "AWS_SAM_LOCAL": (None, "true"),
}


@pytest.mark.parametrize("values", list(itertools.product(*ENV.values())))
def test_tracing_switch_is_powertools_rule(monkeypatch: pytest.MonkeyPatch, values: tuple[str | None, ...]) -> None:
    from aws_lambda_powertools import Tracer

    from idv import observability

    for name, value in zip(ENV, values, strict=True):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("CHALICE_LOCAL", raising=False)
    assert observability.tracing_disabled() is bool(Tracer._is_tracer_disabled())


@pytest.mark.parametrize("dev", [None, "true", "false"])
@pytest.mark.parametrize("value", [None, "true", "false", "1", "0", "TRUE"])
def test_metrics_switch_is_powertools_rule(monkeypatch: pytest.MonkeyPatch, value: str | None, dev: str | None) -> None:
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    from idv import observability

    for name, setting in (("POWERTOOLS_DEV", dev), ("POWERTOOLS_METRICS_DISABLED", value)):
        if setting is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, setting)
    assert observability.metrics_disabled() is bool(is_metrics_disabled())


def test_metric_listener_sees_every_point_and_can_be_removed() -> None:
    from idv import observability

    seen: list[tuple[str, dict[str, str]]] = []
    remove = observability.add_metric_listener(lambda name, dims: seen.append((name, dims)))
    observability.count_provider_call("juhe", "compare", None)
    remove()
    observability.count_provider_call("juhe", "compare", True)
    assert seen == [
        ("ProviderCalls", {"provider": "juhe", "check": "compare"}),
        ("UncertainCharges", {"provider": "juhe", "check": "compare"}),
    ]
