"""One provider sandbox for the sandbox contract tests (reset before each test), plus helpers."""

from __future__ import annotations

import pytest
import requests

from sandbox.providers import ProviderSandbox, SandboxConfig
from tests.sandbox.helpers import FakeClock


@pytest.fixture(scope="session")
def sandbox_server():
    # short fault timings so the suite stays fast; notify retries quickly
    config = SandboxConfig(read_timeout_fault_s=1.5, latency_fault_ms=300, notify_backoff_s=0.05, notify_timeout_s=2)
    with ProviderSandbox(config=config) as sb:
        yield sb


@pytest.fixture
def sb(sandbox_server):
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def clocked():
    """A sandbox of its own on a fake clock: (sandbox, clock)."""
    clock = FakeClock()
    with ProviderSandbox(config=SandboxConfig(clock=clock, notify_attempts=1)) as sb:
        yield sb, clock
