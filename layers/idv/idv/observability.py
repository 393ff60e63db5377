"""Powertools Logger, Metrics and Tracer shared by the handlers; what may be logged is decided here.

Log lines carry ids, check names, decisions and codes — never a name, ID number, mobile or image.
Metrics: ProviderCalls, ChargedCalls (dimensions provider, check) and Decisions (decision).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics()
tracer = Tracer()


def count_provider_call(provider: str, check: str, charged: bool | None) -> None:
    """One metric data point per provider call; an unknown charge (timeout) counts as `UncertainCharges`."""
    dims = {"provider": provider, "check": check}
    _emit("ProviderCalls", dims)
    if charged:
        _emit("ChargedCalls", dims)
    elif charged is None:
        _emit("UncertainCharges", dims)


def count_decision(check: str, decision: str | None) -> None:
    _emit("Decisions", {"check": check, "decision": decision or "none"})


def _emit(name: str, dimensions: dict[str, str]) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
