"""Powertools Logger, Metrics and Tracer shared by the handlers; what may be logged is decided here.

Log lines carry ids, check names, decisions and codes — never a name, ID number, mobile or image.
Metrics: ProviderCalls, ChargedCalls (dimensions provider, check), Decisions (decision) and
CallbackSignatures (form: which reading of the FaceID return `sign` matched).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class _NoTracing(BaseProvider):
    """The provider of a disabled Tracer: records nothing, imports nothing."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Any) -> None: ...
    def patch_all(self) -> None: ...


_TRUTHY = ("1", "true", "yes", "on", "y", "t")


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def tracing_disabled() -> bool:
    """Powertools' documented rule for a disabled Tracer: POWERTOOLS_TRACE_DISABLED, or outside Lambda
    (no LAMBDA_TASK_ROOT), or in SAM local / Chalice local. Powertools has no public function for it
    (`Tracer._is_tracer_disabled` is private), so the rule is written here and pinned by a test against
    Powertools' own answer (tests/unit/test_observability.py)."""
    if _truthy("POWERTOOLS_TRACE_DISABLED"):
        return True
    return not os.environ.get("LAMBDA_TASK_ROOT") or bool(
        os.environ.get("AWS_SAM_LOCAL") or os.environ.get("CHALICE_LOCAL")
    )


def metrics_disabled() -> bool:
    """POWERTOOLS_METRICS_DISABLED, or POWERTOOLS_DEV without it set, as Powertools reads them (its helper
    is not public API; pinned by the same test)."""
    if "POWERTOOLS_METRICS_DISABLED" in os.environ:
        return _truthy("POWERTOOLS_METRICS_DISABLED")
    return _truthy("POWERTOOLS_DEV")


def _new_tracer() -> Tracer:
    """Powertools' Tracer; when tracing is off it gets a no-op provider (a public extension point,
    `BaseProvider`). Powertools would otherwise build the X-Ray recorder only to disable it: that
    import creates two botocore X-Ray clients, ~0.2 s of every cold start. Same rule, same behaviour."""
    if tracing_disabled():
        return Tracer(disabled=True, provider=_NoTracing())
    return Tracer()


logger = Logger()
metrics = Metrics()
tracer = _new_tracer()


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


SIGNATURE_FORMS = ("decoded", "encoded")


def count_signature_form(form: str) -> None:
    """One `CallbackSignatures` data point (dimension `form`: `decoded` | `encoded`) per FaceID callback
    whose `sign` verified, with the reading it matched (`idv.providers.juhe.return_signature_form`)."""
    if form not in SIGNATURE_FORMS:
        raise ValueError(f"form must be one of {SIGNATURE_FORMS}")
    _emit("CallbackSignatures", {"form": form})


_LISTENERS: list[Callable[[str, dict[str, str]], None]] = []


def add_metric_listener(listener: Callable[[str, dict[str, str]], None]) -> Callable[[], None]:
    """Call `listener(name, dimensions)` for every metric data point of this process (tests, the local
    stack's figures); returns the function that removes it."""
    _LISTENERS.append(listener)
    return lambda: _LISTENERS.remove(listener)


def _emit(name: str, dimensions: dict[str, str]) -> None:
    """One EMF line with its own dimensions (honours POWERTOOLS_METRICS_DISABLED like Metrics does)."""
    for listener in list(_LISTENERS):
        listener(name, dict(dimensions))
    if metrics_disabled():
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
