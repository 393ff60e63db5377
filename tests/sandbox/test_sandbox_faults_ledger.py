"""Faults (control endpoint and per identity), the billing ledger, connection counting, the control API, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox.providers import FAULTS, identity, scenario_selfie_jpeg
from tests.sandbox.helpers import (
    APP_KEY,
    FACEID_KEY,
    FOUR_FACTOR_KEY,
    VERIFYFACE_KEY,
    apetime_form,
    faceid_form,
    four_factor_form,
    provider_ready,
    verifyface_form,
)

ROOT = Path(__file__).resolve().parents[2]
PATHS = {
    "verifyface": "/verifyface/verify",
    "four_factor": "/verifyface_mobile/query",
    "faceid_query": "/faceid/query",
    "faceid_search": "/faceid/search",
    "apetime": "/api/identity/portrait_verification",
}


def valid_call(api: str, scenario: str = "match") -> tuple[str, dict]:
    ident = identity(scenario)
    image = provider_ready(scenario_selfie_jpeg(ident))
    form = {
        "verifyface": lambda: verifyface_form(ident, image),
        "four_factor": lambda: four_factor_form(ident, image),
        "faceid_query": lambda: faceid_form(ident),
        "faceid_search": lambda: {"key": FACEID_KEY, "jhOrderId": "JH79320240517095231mUzn9"},
        "apetime": lambda: apetime_form(ident, image),
    }[api]()
    return PATHS[api], form


CODE_FAULTS = {  # fault -> answer per API
    "rate_limit": {
        "verifyface": 10011,
        "four_factor": 10011,
        "faceid_query": 10011,
        "faceid_search": 10011,
        "apetime": "1006",
    },
    "maintenance": {
        "verifyface": 10020,
        "four_factor": 10020,
        "faceid_query": 10020,
        "faceid_search": 10020,
        "apetime": "2000",
    },
    "source_timeout": {
        "verifyface": 226401,
        "four_factor": 280105,
        "faceid_query": 279303,
        "faceid_search": 279303,
        "apetime": "2000",
    },
}


def code_of(body: dict):
    return body["code"] if "trace_id" in body else body["error_code"]


@pytest.mark.parametrize("api", list(PATHS))
@pytest.mark.parametrize("fault", list(CODE_FAULTS))
def test_code_faults_via_the_control_endpoint(sb, http, api, fault):
    r = http.post(sb.url + "/_sandbox/faults", json={"api": api, "fault": fault, "count": 1}, timeout=10)
    assert r.status_code == 201 and r.json()["fault"] == fault
    path, form = valid_call(api)
    body = http.post(sb.url + path, data=form, timeout=30).json()
    assert code_of(body) == CODE_FAULTS[fault][api]
    if api == "apetime":
        assert body["charge"] == 2
    assert sb.charged() == 0
    again = http.post(sb.url + path, data=form, timeout=30).json()  # count 1: the next call is normal
    assert code_of(again) != CODE_FAULTS[fault][api]


@pytest.mark.parametrize("api", ["verifyface", "apetime"])
def test_transport_faults(sb, api):
    path, form = valid_call(api)
    url = sb.url + path
    sb.set_fault("http_500", api)
    assert requests.post(url, data=form, timeout=10).status_code == 500
    sb.set_fault("http_502", api)
    r = requests.post(url, data=form, timeout=10)
    assert r.status_code == 502 and "text/html" in r.headers["Content-Type"]
    sb.set_fault("non_json", api)
    r = requests.post(url, data=form, timeout=10)
    assert r.status_code == 200 and r.text.lstrip().startswith("<html")
    with pytest.raises(ValueError):
        r.json()
    sb.set_fault("reset", api)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=form, timeout=10)
    sb.set_fault("read_timeout", api, seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, data=form, timeout=(2, 0.3))
    sb.set_fault("latency", api, ms=400)
    began = time.monotonic()
    r = requests.post(url, data=form, timeout=10)
    assert time.monotonic() - began >= 0.4 and r.status_code == 200
    assert sb.charged() == 1  # only the delayed call was billed
    entries = sb.ledger()["entries"]
    assert [e["fault"] for e in entries] == ["http_500", "http_502", "non_json", "reset", "read_timeout", None]


def test_error_fault_answers_any_documented_code(sb, http):
    sb.set_fault("error", "four_factor", code=10012)
    path, form = valid_call("four_factor")
    assert http.post(sb.url + path, data=form, timeout=30).json()["error_code"] == 10012
    sb.set_fault("error", "apetime", code="1007")
    path, form = valid_call("apetime")
    body = http.post(sb.url + path, data=form, timeout=30).json()
    assert (body["code"], body["msg"], body["charge"]) == ("1007", "免费次数用尽", 2)


def test_fault_counts_selectors_and_clearing(sb, http):
    sb.set_fault("rate_limit", "verifyface", count=2)  # the family covers verifyEncry too
    sb.set_fault("maintenance", "juhe", count=None)
    path, form = valid_call("verifyface")
    codes = [http.post(sb.url + path, data=form, timeout=30).json()["error_code"] for _ in range(4)]
    assert codes == [10011, 10011, 10020, 10020]
    assert [f["fault"] for f in http.get(sb.url + "/_sandbox/faults", timeout=10).json()] == ["maintenance"]
    assert http.delete(sb.url + "/_sandbox/faults", timeout=10).json() == []
    assert http.post(sb.url + path, data=form, timeout=30).json()["error_code"] == 0
    bad = http.post(sb.url + "/_sandbox/faults", json={"fault": "meteor"}, timeout=10)
    assert bad.status_code == 400 and "latency" in bad.json()["faults"]
    assert http.post(sb.url + "/_sandbox/faults", json={"fault": "reset", "api": "nope"}).status_code == 400


IDENTITY_FAULTS = {
    "rate_limit": (10011, "1006"),
    "maintenance": (10020, "2000"),
    "source_timeout": (226401, "2000"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_is_reachable_per_identity(sb, fault):
    scenario = f"fault_{fault}"
    for api in ("verifyface", "apetime", "faceid_query"):
        path, form = valid_call(api, scenario)
        url = sb.url + path
        if fault == "reset":
            with pytest.raises(requests.ConnectionError):
                requests.post(url, data=form, timeout=10)
        elif fault == "read_timeout":
            with pytest.raises(requests.ReadTimeout):
                requests.post(url, data=form, timeout=(2, 0.3))
        elif fault in ("http_500", "http_502"):
            assert requests.post(url, data=form, timeout=10).status_code == int(fault[-3:])
        elif fault == "non_json":
            assert requests.post(url, data=form, timeout=10).headers["Content-Type"].startswith("text/html")
        elif fault == "latency":
            began = time.monotonic()
            body = requests.post(url, data=form, timeout=10).json()
            assert time.monotonic() - began >= 0.3 and code_of(body) in (0, "0000")  # config.latency_fault_ms
        else:
            body = requests.post(url, data=form, timeout=10).json()
            juhe, apetime = IDENTITY_FAULTS[fault]
            if api == "faceid_query" and fault == "source_timeout":
                juhe = 279303
            assert code_of(body) == (apetime if api == "apetime" else juhe)
    charged = sb.ledger()["total_charged"]
    assert charged == (3 if fault == "latency" else 0)


def test_ledger_counts_exactly_what_the_documents_bill(sb, http):
    def call(api, scenario="match", **change):
        path, form = valid_call(api, scenario)
        return http.post(sb.url + path, data={**form, **change}, timeout=30).json()

    call("verifyface")  # error_code 0: charged
    call("verifyface", "name_mismatch")  # res 3, still error_code 0: charged
    call("verifyface", "not_found")  # 226402: not charged
    call("verifyface", key="wrong")  # 10001: not charged
    call("four_factor", "four_factor_116")  # charged
    call("four_factor", "not_found")  # 280105: not charged
    call("apetime")  # code 0000, result 1, charge 1
    call("apetime", "name_mismatch")  # id_name 2, charge 1
    call("apetime", "low_quality_selfie")  # result 2: charge 2
    call("apetime", sign="0" * 32)  # 1000: charge 2
    started = call("faceid_query")  # error_code 0: charged
    http.post(sb.url + "/faceid/search", data={"key": FACEID_KEY, "jhOrderId": started["result"]["jh_order_id"]})

    ledger = http.get(sb.url + "/_sandbox/ledger", timeout=10).json()
    assert ledger["charged"] == {
        "apetime": {APP_KEY: 2},
        "faceid_query": {FACEID_KEY: 1},
        "four_factor": {FOUR_FACTOR_KEY: 1},
        "verifyface": {VERIFYFACE_KEY: 2},
    }
    assert ledger["calls"]["verifyface"] == {VERIFYFACE_KEY: 3, "wron***": 1}  # unknown keys are masked
    assert ledger["calls"]["apetime"] == {APP_KEY: 4}
    assert ledger["calls"]["faceid_search"] == {FACEID_KEY: 1}  # 279307: not charged
    assert (ledger["total_charged"], ledger["total_calls"]) == (6, 12)
    assert sb.charged("apetime") == 2 and sb.charged(key=VERIFYFACE_KEY) == 2
    entry = ledger["entries"][0]
    assert set(entry) >= {"at", "api", "key", "code", "charged", "order_id"}
    assert entry["order_id"].startswith("JH2641") and entry["charged"] is True
    assert http.post(sb.url + "/_sandbox/reset", timeout=10).json() == {"reset": True}
    assert sb.ledger()["total_calls"] == 0


def test_connections_are_counted_so_keep_alive_can_be_measured(sb):
    path, form = valid_call("faceid_search")
    with requests.Session() as session:
        for _ in range(5):
            assert session.post(sb.url + path, data=form, timeout=10).status_code == 200
        assert sb.connections == 1
        for _ in range(3):  # the first still rides the open connection, which the server then closes
            session.post(sb.url + path, data=form, headers={"Connection": "close"}, timeout=10)
        assert sb.connections == 3
    stats = requests.get(sb.url + "/_sandbox/stats", timeout=10).json()
    assert stats["connections_accepted"] == 4
    assert stats["requests"]["/faceid/search"] == 8


def test_identities_and_images_are_served(sb, http):
    rows = http.get(sb.url + "/_sandbox/identities", timeout=10).json()
    match = next(r for r in rows if r["scenario"] == "match")
    assert match["id_number"] == identity("match").id_number and match["expected"]["faceid"] == "passed T"
    for image in ("selfie", "scenario_selfie", "reference"):
        r = http.get(sb.url + match["images"][image], timeout=30)
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert http.get(sb.url + "/_sandbox/identities/no_reference_photo/reference.jpg").status_code == 404
    assert http.get(sb.url + "/_sandbox/identities/nobody", timeout=10).status_code == 404
    config = http.get(sb.url + "/_sandbox/config", timeout=10).json()
    assert config["juhe_openid"] == "sandbox-juhe-openid" and config["apetime_window_s"] == 300


def test_standalone_cli_prints_its_url_and_identities():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_JUHE_FACEID_KEY": "cli-faceid-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.providers", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("provider sandbox listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        rest = "".join(proc.stdout.readline() for _ in range(10))
        assert "sandbox-apetime-app-secret" in rest and "scenario" in rest
        assert requests.get(url + "/_sandbox/health", timeout=10).json()["ok"] is True
        assert requests.get(url + "/_sandbox/config", timeout=10).json()["juhe_faceid_key"] == "cli-faceid-key"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
