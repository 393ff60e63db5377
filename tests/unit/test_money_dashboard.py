"""The money controls' dashboard and alarms (issue 13): what they show and alarm on is what the code emits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sandbox.stack import template as tpl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return tpl.load_template()


def emitted_by_controls() -> set[str]:
    source = (ROOT / "layers" / "idv" / "idv" / "controls.py").read_text()
    body = source[source.index("def usage_metrics") : source.index("def cny")]
    return set(re.findall(r'\("([A-Z][A-Za-z]+)", ', body))


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", body))


def test_the_dashboard_shows_calls_charges_spend_decisions_errors_and_latency(template):
    widgets = dashboard(template)["widgets"]
    text = json.dumps(widgets)
    for metric in ("ProviderCalls", "ChargedCalls", "UncertainCharges", "Decisions"):  # idv.observability
        assert f'MetricName=\\"{metric}\\"' in text, metric
    for metric in ("SpendCNY", "SpendOfCapPercent", "FailedChecks", "FinishedChecks", "PassedChecks"):
        assert metric in text and metric in emitted_by_controls(), metric
    latency = next(w for w in widgets if "p99" in w["properties"]["title"])
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for function in tpl.functions(template):  # every function's p99 duration
        assert f'"FunctionName", "${{{function}}}"' in body, function
    assert latency["properties"]["stat"] == "p99"


def test_the_alarms(template):
    resources = template["Resources"]
    spend = resources["SpendAlarm"]
    assert spend["Condition"] == "HasSpendCap"
    assert spend["Properties"]["MetricName"] == "SpendOfCapPercent" and spend["Properties"]["Threshold"] == 80
    assert spend["Properties"]["Statistic"] == "Sum" and spend["Properties"]["Period"] == 86400
    for name, metrics in (
        ("ProviderErrorRateAlarm", {"FailedChecks", "FinishedChecks"}),
        ("PassRateAlarm", {"PassedChecks", "CompletedChecks"}),
    ):
        props = resources[name]["Properties"]
        used = {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
        assert used == metrics and used <= emitted_by_controls(), name
        assert [m["Id"] for m in props["Metrics"] if m.get("ReturnData")] == ["rate"]
    assert resources["ProviderErrorRateAlarm"]["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert resources["PassRateAlarm"]["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    for name in ("SpendAlarm", "ProviderErrorRateAlarm", "PassRateAlarm"):
        assert resources[name]["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    ctx = tpl.Context(template)
    assert not ctx.condition("HasSpendCap")  # no cap by default: no spend alarm
    ctx.parameters["DailySpendLimit"] = "500.00"
    assert ctx.condition("HasSpendCap")


def test_the_metrics_carry_the_service_dimension_the_alarms_name(template, monkeypatch, capsys):
    from idv import controls
    from idv.config import settings_from_env

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "idv-gateway")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("DAILY_SPEND_LIMIT", "10.00")
    item = {"status": "completed", "decision": "pass", "usage_calls": 1}
    controls.usage_metrics(item, 60, settings_from_env())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    names = {m["Name"] for line in lines for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"FinishedChecks", "CompletedChecks", "PassedChecks", "SpendCNY", "SpendOfCapPercent"} <= names
    assert all(line["service"] == "idv-gateway" for line in lines)
    share = next(line for line in lines if "SpendOfCapPercent" in line)
    assert share["SpendOfCapPercent"] == [6.0]  # 0.60 of 10.00
