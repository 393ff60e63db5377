"""Test set-up shared by every suite.

- Fake AWS credentials and Powertools settings before any import.
- One local stack per session (moto server provisioned from template.yaml + provider sandbox + local
  API), started on first use; every event published on its bus is copied to a capture queue.
- Every log record of the session is kept, so the last test (`@pytest.mark.last`) can scan logs,
  stored items, objects left and published events for raw personal data.
"""

import logging
import os

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "idv-gateway")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "IdvGateway")

CAPTURED_LOGS: list[str] = []
CONTROLS_OFF = {"SubjectDailyLimit": "0", "DedupeWindowSeconds": "0", "DailySpendLimit": ""}


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            CAPTURED_LOGS.append(self.format(record))
        except Exception:  # a log line that cannot be formatted is still kept raw
            CAPTURED_LOGS.append(str(record.__dict__))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: runs after every other test (session-wide scans)")
    handler = _Capture(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    logging.getLogger().addHandler(handler)
    from aws_lambda_powertools import Logger

    powertools = Logger(service="idv-gateway")
    formatter = powertools.registered_formatter
    json_handler = _Capture(level=logging.DEBUG)
    json_handler.setFormatter(formatter)
    logging.getLogger("idv-gateway").addHandler(json_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the reliability suites and the personal-data scan recorded (tests/reliability/figures.py)."""
    from tests.reliability import figures

    lines = figures.render()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
    figures.write()


@pytest.fixture(scope="session")
def stack():
    from sandbox.stack.local import LocalStack, StackOptions

    # The suites send the same sandbox people and bodies many times a day: the money controls are off
    # here, and their own tests (tests/reliability/test_money_controls.py) switch them on for themselves.
    running = LocalStack(StackOptions(log_level="INFO", parameters=CONTROLS_OFF)).start()
    events = running.client("events")
    sqs = running.client("sqs")
    queue_url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = running.resource_name("EventBus")
    events.put_rule(Name="capture-all", EventBusName=bus, EventPattern='{"source": [{"prefix": ""}]}')
    events.put_targets(Rule="capture-all", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    running.captured_events_queue = queue_url
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api(stack):
    from tests.stack import Api

    return Api(stack)
