"""Create the template's data resources in emulated AWS (moto), from template.yaml's own properties.

Tables (keys, indexes, SSE, TTL), the KMS key and alias, the provider secret, the event bus, the
queues (DLQ redrive), the bucket (public access block, encryption, lifecycle, CORS, the S3 → SQS
notification) and the policies. Functions, the API, alarms and log groups are not data: the local
API runs the functions itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.stack.template import Context

HANDLED = (
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::Events::EventBus",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
)


@dataclass
class Provisioned:
    context: Context
    created: list[str] = field(default_factory=list)

    def ref(self, logical: str) -> str:
        return self.context.physical[logical]

    def arn(self, logical: str) -> str:
        return self.context.arns[logical]


def _refs(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= _refs(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if not isinstance(v, str):
                    found |= _refs(v[1])
            else:
                found |= _refs(v)
    return found


def _order(resources: dict[str, Any]) -> list[str]:
    wanted = [k for k, v in resources.items() if v.get("Type") in HANDLED]
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done or name not in wanted or name in path:
            return
        resource = resources[name]
        deps = _refs(resource.get("Properties", {}))
        depends = resource.get("DependsOn", [])
        deps |= set([depends] if isinstance(depends, str) else depends)
        for dep in sorted(deps):
            visit(dep, (*path, name))
        done.append(name)

    for name in wanted:
        visit(name)
    return done


def provision(ctx: Context, clients: Any, secret_values: dict[str, str] | None = None) -> Provisioned:
    """Create every handled resource; `clients(service)` returns a boto3 client for the emulator."""
    resources = ctx.template["Resources"]
    result = Provisioned(ctx)
    # The bucket needs the queue's ARN, and the queue policy needs the bucket's deterministic name.
    for name in _order(resources):
        resource = resources[name]
        kind = resource["Type"]
        handler = _HANDLERS[kind]
        handler(name, resource.get("Properties", {}), ctx, clients, secret_values or {})
        result.created.append(name)
    return result


def _kms_key(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    kms = clients("kms")
    meta = kms.create_key(Description=str(ctx.resolve(props.get("Description", name))))["KeyMetadata"]
    if ctx.resolve(props.get("EnableKeyRotation")):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    ctx.physical[name] = meta["KeyId"]
    ctx.arns[name] = meta["Arn"]


def _kms_alias(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    alias = ctx.resolve(props["AliasName"])
    clients("kms").create_alias(AliasName=alias, TargetKeyId=ctx.resolve(props["TargetKeyId"]))
    ctx.physical[name] = alias


def _table(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    ddb = clients("dynamodb")
    table_name = ctx.resolve(props.get("TableName")) or f"{ctx.stack_name}-{name}"
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": ctx.resolve(props["AttributeDefinitions"]),
        "KeySchema": ctx.resolve(props["KeySchema"]),
        "BillingMode": ctx.resolve(props.get("BillingMode", "PAY_PER_REQUEST")),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = ctx.resolve(props["GlobalSecondaryIndexes"])
    sse = ctx.resolve(props.get("SSESpecification"))
    if sse and sse.get("SSEEnabled"):
        kwargs["SSESpecification"] = {"Enabled": True, "SSEType": sse.get("SSEType", "KMS")}
        if sse.get("KMSMasterKeyId"):
            kwargs["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    stream = ctx.resolve(props.get("StreamSpecification"))
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    description = ddb.create_table(**kwargs)["TableDescription"]
    if stream:
        ctx.arns[f"{name}.StreamArn"] = description["LatestStreamArn"]
    ttl = ctx.resolve(props.get("TimeToLiveSpecification"))
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    pitr = ctx.resolve(props.get("PointInTimeRecoverySpecification"))
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=table_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    ctx.physical[name] = table_name
    ctx.arns[name] = description["TableArn"]


def _secret(name: str, props: dict[str, Any], ctx: Context, clients: Any, values: dict[str, str]) -> None:
    secret_name = ctx.resolve(props.get("Name")) or f"{ctx.stack_name}/{name}"
    generate = ctx.resolve(props.get("GenerateSecretString")) or {}
    body = json.loads(generate.get("SecretStringTemplate", "{}"))
    if generate.get("GenerateStringKey"):
        import secrets

        body[generate["GenerateStringKey"]] = secrets.token_hex(32)
    body.update(values)
    arn = clients("secretsmanager").create_secret(Name=secret_name, SecretString=json.dumps(body))["ARN"]
    ctx.physical[name] = arn  # Ref of a secret is its ARN
    ctx.arns[name] = arn


def _bus(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    bus_name = ctx.resolve(props["Name"])
    arn = clients("events").create_event_bus(Name=bus_name)["EventBusArn"]
    ctx.physical[name] = bus_name
    ctx.arns[name] = arn


def _queue(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    sqs = clients("sqs")
    queue_name = ctx.resolve(props.get("QueueName")) or f"{ctx.stack_name}-{name}"
    attributes = {}
    for key in (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
        "SqsManagedSseEnabled",
    ):
        if key in props:
            attributes[key] = str(ctx.resolve(props[key])).lower()
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(ctx.resolve(props["RedrivePolicy"]))
    url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ctx.physical[name] = url  # Ref of a queue is its URL
    ctx.arns[name] = arn


def _queue_policy(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    policy = json.dumps(ctx.resolve(props["PolicyDocument"]))
    for url in ctx.resolve(props["Queues"]):
        clients("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    ctx.physical[name] = name


def _bucket(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    s3 = clients("s3")
    bucket = str(ctx.resolve(props.get("BucketName")) or f"{ctx.stack_name}-{name}").lower()
    create: dict[str, Any] = {"Bucket": bucket}
    if ctx.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    s3.create_bucket(**create)
    ctx.physical[name] = bucket
    ctx.arns[name] = f"arn:aws:s3:::{bucket}"
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=ctx.resolve(props["PublicAccessBlockConfiguration"])
        )
    if "BucketEncryption" in props:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(r.get("BucketKeyEnabled", False)),
            }
            for r in ctx.resolve(props["BucketEncryption"])["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
    if "LifecycleConfiguration" in props:
        rules = []
        for rule in ctx.resolve(props["LifecycleConfiguration"])["Rules"]:
            converted: dict[str, Any] = {
                "ID": rule.get("Id", "rule"),
                "Status": rule["Status"],
                "Filter": {"Prefix": rule.get("Prefix", "")},
            }
            if "ExpirationInDays" in rule:
                converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in rule:
                converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            rules.append(converted)
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    if "CorsConfiguration" in props:
        cors = ctx.resolve(props["CorsConfiguration"])
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": r["AllowedMethods"],
                        "AllowedOrigins": r["AllowedOrigins"],
                        "AllowedHeaders": r.get("AllowedHeaders", []),
                        "MaxAgeSeconds": int(r.get("MaxAge", 0)),
                    }
                    for r in cors["CorsRules"]
                ]
            },
        )
    notification = ctx.resolve(props.get("NotificationConfiguration"))
    if notification and notification.get("QueueConfigurations"):
        configs = []
        for q in notification["QueueConfigurations"]:
            config: dict[str, Any] = {"QueueArn": q["Queue"], "Events": [q["Event"]]}
            rules = q.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                config["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            configs.append(config)
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configs}
        )


def _bucket_policy(name: str, props: dict[str, Any], ctx: Context, clients: Any, _s: dict) -> None:
    """The bucket policy, less TLS-only statements: the emulator speaks plain HTTP on loopback."""
    document = ctx.resolve(props["PolicyDocument"])
    document["Statement"] = [
        st for st in document["Statement"] if "aws:SecureTransport" not in json.dumps(st.get("Condition", {}))
    ]
    if document["Statement"]:
        clients("s3").put_bucket_policy(Bucket=ctx.resolve(props["Bucket"]), Policy=json.dumps(document))
    ctx.physical[name] = name


_HANDLERS = {
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::DynamoDB::Table": _table,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::Events::EventBus": _bus,
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
}
