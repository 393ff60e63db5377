"""The whole embedded default in one object: moto server + template resources + provider sandbox +
local API + the upload queue poller + the table stream poller (the outbox → event_publisher) + the
reconciler schedule, with the same environment as in AWS.

    with LocalStack().start() as stack:
        requests.post(f"{stack.api_url}/v1/compare", headers={"x-api-key": stack.api_key}, json=...)

Differences from AWS, all deliberate: moto's DynamoDB writes are made atomic (one lock: moto checks a
condition and writes without one, DynamoDB does not race), the emulator speaks plain HTTP (the bucket's TLS-only policy
statement is not applied), a failed queue message becomes visible again after
`retry_visibility_seconds` instead of the queue's visibility timeout, and the reconciler runs every
`schedule_seconds` (None: only when `run_reconciler()` is called), and a stream record whose
function failed is retried after `stream_retry_seconds` (Lambda backs off up to a minute).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.stack import template as tpl
from sandbox.stack.local_api import LocalApi
from sandbox.stack.resources import provision
from sandbox.stack.runtime import Function

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@dataclass
class StackOptions:
    api_port: int = 0
    provider_url: str | None = None  # None: start the provider sandbox in-process
    compare_mode: str = "plain"
    api_key: str | None = None
    allowed_redirect_hosts: str = "127.0.0.1,localhost"
    schedule_seconds: float | None = None
    retry_visibility_seconds: int = 1
    stream_retry_seconds: float = 0.2
    worker_concurrency: int = 2
    function_concurrency: int = 8
    stack_name: str = "idv-local"
    log_level: str | None = None  # overrides POWERTOOLS_LOG_LEVEL (the demo keeps its table readable)
    print_metrics: bool = True  # False sets POWERTOOLS_METRICS_DISABLED (EMF lines on stdout)
    # Template parameter overrides (e.g. {"SubjectDailyLimit": "0"}), applied like `sam deploy --parameter-overrides`.
    parameters: dict[str, str] = field(default_factory=dict)


_WRITE_LOCK = threading.RLock()


def atomic_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are: moto evaluates a ConditionExpression and
    applies the write in plain Python without a lock, so two threads of the emulator can both pass
    `count < limit` (or both create an item) and one write is lost. Each write (and each transaction)
    runs under one lock here; reads are not serialised. Idempotent."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_idv_atomic", False):
        return
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _WRITE_LOCK:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    DynamoDBBackend._idv_atomic = True  # type: ignore[attr-defined]


def sandbox_secret(config: Any) -> dict[str, str]:
    """The provider secret for the sandbox's documented credentials (pii_hmac_key is generated)."""
    return {
        "juhe_verifyface_key": config.juhe_verifyface_key,
        "juhe_four_factor_key": config.juhe_four_factor_key,
        "juhe_faceid_key": config.juhe_faceid_key,
        "juhe_openid": config.juhe_openid,
        "apetime_app_key": config.apetime_app_key,
        "apetime_app_secret": config.apetime_app_secret,
    }


def reset_layer_caches() -> None:
    """Forget per-container state of the layer (settings, clients, secret) after the env changed."""
    import idv

    idv.reset()


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.api_key = self.options.api_key or secrets.token_urlsafe(24)
        self.template = tpl.load_template()
        self.moto: Any = None
        self.sandbox: Any = None
        self.api: LocalApi | None = None
        self.functions: dict[str, Function] = {}
        self.context: tpl.Context | None = None
        self.env: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env: dict[str, str | None] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer

        atomic_dynamodb_writes()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.aws_url = f"http://{host}:{port}"
        self._set_env(
            {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.aws_url}
        )

        from sandbox.providers import ProviderSandbox, SandboxConfig

        provider_config = SandboxConfig()
        self.provider_config = provider_config
        if self.options.provider_url is None:
            self.sandbox = ProviderSandbox(config=provider_config).start()
            provider_url = self.sandbox.url
        else:
            provider_url = self.options.provider_url.rstrip("/")

        self.context = tpl.Context(self.template, stack_name=self.options.stack_name, region=REGION)
        provision(self.context, self.client, sandbox_secret(provider_config))

        routes = tpl.routes(self.template)
        for logical, resource in tpl.functions(self.template).items():
            props = resource["Properties"]
            self.functions[logical] = Function(
                logical, props["CodeUri"].rstrip("/"), max_concurrency=self.options.function_concurrency
            )
        self.api = LocalApi(routes, self.functions, self.api_key, port=self.options.api_port)

        self.context.parameters.update(
            JuheBaseUrl=provider_url,
            ApetimeBaseUrl=provider_url,
            JuheCompareMode=self.options.compare_mode,
            PublicBaseUrl=self.api.url,
            AllowedRedirectHosts=self.options.allowed_redirect_hosts,
        )
        self.context.parameters.update(self.options.parameters)
        env = tpl.function_environment(self.template, next(iter(self.functions)), self.context)
        for logical in self.functions:  # one process holds every container: their own variables don't clash
            env.update(tpl.function_environment(self.template, logical, self.context))
        env.update(
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_NAMESPACE=env.get("POWERTOOLS_METRICS_NAMESPACE", "IdvGateway"),
            AWS_LAMBDA_FUNCTION_NAME="idv-local",
        )
        if self.options.log_level:
            env["POWERTOOLS_LOG_LEVEL"] = self.options.log_level
        if not self.options.print_metrics:
            env["POWERTOOLS_METRICS_DISABLED"] = "true"
        self.env = env
        self._set_env(env)
        reset_layer_caches()
        self.api.start()
        self._start_thread(self._poll_uploads, "upload-poller", self.options.worker_concurrency)
        for mapping in stream_mappings(self.template, self.context):
            self._start_thread(lambda m=mapping: self._poll_stream(m), f"stream-{mapping.function}", 1)
        if self.options.schedule_seconds:
            self._start_thread(self._schedule, "reconciler", 1)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.api:
            self.api.stop()
        if self.sandbox:
            self.sandbox.stop()
        if self.moto:
            self.moto.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_layer_caches()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    @property
    def api_url(self) -> str:
        assert self.api is not None
        return self.api.url

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, endpoint_url=self.aws_url, region_name=REGION)

    def resource_name(self, logical: str) -> str:
        assert self.context is not None
        return self.context.physical[logical]

    def run_reconciler(self) -> Any:
        fn = next(f for name, f in self.functions.items() if f.code_dir.endswith("reconciler"))
        return fn.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _start_thread(self, target: Any, name: str, count: int) -> None:
        for i in range(max(1, count)):
            thread = threading.Thread(target=target, name=f"{name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _schedule(self) -> None:
        while not self._stop.wait(self.options.schedule_seconds or 60):
            try:
                self.run_reconciler()
            except Exception:  # keep the schedule alive, as EventBridge would
                logging.getLogger(__name__).exception("reconciler run failed")

    def _poll_stream(self, mapping: StreamMapping) -> None:
        """Drive a function from a table's stream like Lambda's DynamoDB event source: in order, filtered,
        a failed batch retried from its first failed record, then sent to the on-failure queue."""
        streams = self.client("dynamodbstreams")
        function = self.functions[mapping.function]
        shard = streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(
            StreamArn=mapping.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        pending: list[dict[str, Any]] = []
        attempts = 0
        while not self._stop.is_set():
            if not pending:
                try:
                    answer = streams.get_records(ShardIterator=iterator, Limit=mapping.batch_size)
                except Exception:
                    if self._stop.wait(0.5):
                        return
                    continue
                iterator = answer.get("NextShardIterator") or iterator
                pending = [
                    {**r, "eventSourceARN": mapping.stream_arn}
                    for r in answer.get("Records", [])
                    if not mapping.patterns or any(matches(p, r) for p in mapping.patterns)
                ]
                attempts = 0
                if not pending:
                    self._stop.wait(0.1)
                    continue
            try:
                result = function.invoke({"Records": pending}) or {}
                failed = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
            except Exception:
                logging.getLogger(__name__).exception("stream function invocation failed")
                failed = [pending[0]["dynamodb"]["SequenceNumber"]]
            if not failed:
                pending = []
                continue
            attempts += 1
            first = min(int(seq) for seq in failed)
            pending = [r for r in pending if int(r["dynamodb"]["SequenceNumber"]) >= first]
            if 0 <= mapping.max_retries < attempts:
                self._stream_failed(mapping, pending)
                pending = []
                continue
            self._stop.wait(self.options.stream_retry_seconds)

    def _stream_failed(self, mapping: StreamMapping, records: list[dict[str, Any]]) -> None:
        """What Lambda sends to the on-failure destination: where the records are, not the records."""
        if mapping.on_failure_queue is None or not records:
            return
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": mapping.function},
            "DDBStreamBatchInfo": {
                "streamArn": mapping.stream_arn,
                "startSequenceNumber": sequence[0],
                "endSequenceNumber": sequence[-1],
                "batchSize": len(records),
            },
        }
        self.client("sqs").send_message(QueueUrl=mapping.on_failure_queue, MessageBody=json.dumps(body))

    def _poll_uploads(self) -> None:
        """Drive upload_worker from the queue like Lambda's SQS event source (partial batch failures)."""
        sqs = self.client("sqs")
        queue_url = self.resource_name("UploadQueue")
        arn = self.context.arns["UploadQueue"] if self.context else ""
        worker = next(f for f in self.functions.values() if f.code_dir.endswith("upload_worker"))
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
                ).get("Messages", [])
            except Exception:
                if self._stop.wait(0.5):
                    return
                continue
            if not messages:
                continue
            event = {"Records": [_sqs_record(m, arn) for m in messages]}
            try:
                answer = worker.invoke(event) or {}
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            except Exception:
                logging.getLogger(__name__).exception("upload worker invocation failed")
                failed = {m["MessageId"] for m in messages}
            for message in messages:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.options.retry_visibility_seconds,
                    )
                else:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@dataclass
class StreamMapping:
    """A DynamoDB event source mapping of the template (stream → function, filter, retries, DLQ)."""

    function: str
    stream_arn: str
    batch_size: int
    max_retries: int
    patterns: list[dict[str, Any]]
    on_failure_queue: str | None


def stream_mappings(template: dict[str, Any], context: tpl.Context) -> list[StreamMapping]:
    found = []
    for logical, resource in tpl.functions(template).items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            props = event["Properties"]
            filters = (props.get("FilterCriteria") or {}).get("Filters", [])
            destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            queue = None
            if destination is not None:
                arn = context.resolve(destination)
                queue = next(context.physical[k] for k, v in context.arns.items() if v == arn)
            found.append(
                StreamMapping(
                    function=logical,
                    stream_arn=context.resolve(props["Stream"]),
                    batch_size=int(props.get("BatchSize", 100)),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    patterns=[json.loads(f["Pattern"]) for f in filters],
                    on_failure_queue=queue,
                )
            )
    return found


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge-style matching as Lambda's filter criteria use it (lists of exact values, nesting)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        return value in pattern
    return pattern == value


def _sqs_record(message: dict[str, Any], arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }


def describe(stack: LocalStack) -> str:
    return json.dumps({"api_url": stack.api_url, "api_key": stack.api_key}, indent=2)
