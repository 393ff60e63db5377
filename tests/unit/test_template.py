"""template.yaml keeps the contracts of DESIGN §2–3 and issue 4, and events/ fits it for `sam local invoke`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
EVENTS = ROOT / "events"

# logical id -> (function dir, [(method, path, api key required)])
FUNCTIONS: dict[str, tuple[str, list[tuple[str, str, bool]]]] = {
    "CompareFunction": ("compare", [("post", "/v1/compare", True)]),
    "FourFactorFunction": ("four_factor", [("post", "/v1/four-factor", True)]),
    "ApetimeVerifyFunction": ("apetime_verify", [("post", "/v1/portrait", True)]),
    "FaceIdInitiateFunction": ("faceid_initiate", [("post", "/v1/faceid/sessions", True)]),
    "FaceIdCallbackFunction": (
        "faceid_callback",
        [
            ("get", "/v1/faceid/callback/{verification_id}", False),
            ("post", "/v1/faceid/callback/{verification_id}", False),
        ],
    ),
    "VerificationsFunction": (
        "verifications",
        [
            ("get", "/v1/verifications/{verification_id}", True),
            ("delete", "/v1/verifications/{verification_id}", True),
            ("post", "/v1/uploads", True),
            ("get", "/v1/verifications", True),
            ("post", "/v1/subjects/search", True),
            ("post", "/v1/subjects/erase", True),
        ],
    ),
    "UploadWorkerFunction": ("upload_worker", []),
    "ReconcilerFunction": ("reconciler", []),
    "EventPublisherFunction": ("event_publisher", []),
    "UsageFunction": ("usage", [("get", "/v1/usage", True)]),
}

DESIGN_ENV = (
    "VERIFICATIONS_TABLE",
    "IDEMPOTENCY_TABLE",
    "PROVIDER_SECRET_ID",
    "UPLOAD_BUCKET",
    "EVENT_BUS_NAME",
    "DATA_KEY_ID",
    "JUHE_BASE_URL",
    "APETIME_BASE_URL",
    "JUHE_COMPARE_MODE",
    "FACE_SCORE_THRESHOLD",
    "RETENTION_DAYS",
    "PUBLIC_BASE_URL",
    "ALLOWED_REDIRECT_HOSTS",
    "USAGE_TABLE",
    "USAGE_REPORT_TABLE",
    "SUBJECT_DAILY_LIMIT",
    "DEDUPE_WINDOW_SECONDS",
    "PROVIDER_PRICES",
)
SECRET_FIELDS = (
    "juhe_verifyface_key",
    "juhe_four_factor_key",
    "juhe_faceid_key",
    "juhe_openid",
    "apetime_app_key",
    "apetime_app_secret",
    "pii_hmac_key",
)
OUTPUTS = (
    "ApiUrl",
    "ApiKeyId",
    "VerificationsTableName",
    "IdempotencyTableName",
    "UploadBucketName",
    "ProviderSecretArn",
    "EventBusName",
    "UploadQueueUrl",
    "UploadDLQUrl",
    "DataKeyArn",
)

# event file -> (function logical id, method, resource)
API_EVENTS = {
    "compare.json": ("CompareFunction", "POST", "/v1/compare"),
    "four_factor.json": ("FourFactorFunction", "POST", "/v1/four-factor"),
    "portrait.json": ("ApetimeVerifyFunction", "POST", "/v1/portrait"),
    "faceid_session.json": ("FaceIdInitiateFunction", "POST", "/v1/faceid/sessions"),
    "faceid_callback_get.json": ("FaceIdCallbackFunction", "GET", "/v1/faceid/callback/{verification_id}"),
    "faceid_callback_post.json": ("FaceIdCallbackFunction", "POST", "/v1/faceid/callback/{verification_id}"),
    "get_verification.json": ("VerificationsFunction", "GET", "/v1/verifications/{verification_id}"),
    "delete_verification.json": ("VerificationsFunction", "DELETE", "/v1/verifications/{verification_id}"),
    "create_upload.json": ("VerificationsFunction", "POST", "/v1/uploads"),
    "list_verifications.json": ("VerificationsFunction", "GET", "/v1/verifications"),
    "search_subject.json": ("VerificationsFunction", "POST", "/v1/subjects/search"),
    "erase_subject.json": ("VerificationsFunction", "POST", "/v1/subjects/erase"),
    "usage.json": ("UsageFunction", "GET", "/v1/usage"),
}
OTHER_EVENTS = {
    "upload_worker.json": "UploadWorkerFunction",
    "reconciler.json": "ReconcilerFunction",
    "event_publisher.json": "EventPublisherFunction",
}
LOCAL_ENV_FILE = "env.json"  # --env-vars for sam local invoke, not an event


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # cfn-lint's loader understands the short intrinsic tags (!Ref, !Sub, !GetAtt, ...).
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE_PATH))))


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def strings(node: Any) -> list[str]:
    """Every string anywhere in a parsed template node."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [key, *strings(value)]]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def api_routes(resources: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(method, path) -> (function logical id, event properties) for every Api event."""
    routes = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                key = (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
                assert key not in routes, f"route {key} defined twice"
                routes[key] = (logical_id, event["Properties"])
    return routes


def test_template_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_the_functions_with_their_code_dirs_and_handler(resources: dict[str, Any]) -> None:
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == set(FUNCTIONS)
    for logical_id, (directory, _) in FUNCTIONS.items():
        p = props(resources, logical_id)
        assert p["CodeUri"] == f"functions/{directory}/"
        assert p["Handler"] == "app.lambda_handler"
        assert (ROOT / "functions" / directory).is_dir(), f"functions/{directory}/ is missing"


def test_globals_runtime_architecture_tracing_and_layer(template: dict[str, Any], resources: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    assert function["Layers"] == [{"Ref": "IdvLayer"}]
    layer = resources["IdvLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/idv/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"


def test_every_design_environment_variable_is_set_for_every_function(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for name in (*DESIGN_ENV, "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"):
        assert variables.get(name) not in (None, ""), name
    assert variables["VERIFICATIONS_TABLE"] == {"Ref": "VerificationsTable"}
    assert variables["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert variables["PROVIDER_SECRET_ID"] == {"Ref": "ProviderSecret"}
    assert variables["UPLOAD_BUCKET"] == {"Ref": "UploadBucket"}
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBus"}


def test_parameters_are_described_and_constrained(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name in (
        "Stage",
        "FaceScoreThreshold",
        "RetentionDays",
        "JuheCompareMode",
        "AllowedRedirectHosts",
        "UploadMaxConcurrency",
        "LogRetentionDays",
        "JuheBaseUrl",
        "ApetimeBaseUrl",
        "PublicBaseUrl",
    ):
        assert name in parameters, name
    for name, parameter in parameters.items():
        assert parameter.get("Description"), f"{name} has no Description"
    assert parameters["Stage"]["AllowedValues"] == ["dev", "prod"]
    assert parameters["JuheCompareMode"]["AllowedValues"] == ["plain", "aes"]
    assert (parameters["FaceScoreThreshold"]["MinValue"], parameters["FaceScoreThreshold"]["MaxValue"]) == (0, 100)
    assert parameters["FaceScoreThreshold"]["Default"] == 60
    assert parameters["UploadMaxConcurrency"]["MinValue"] == 2  # the SQS event source's minimum
    assert parameters["UploadMaxConcurrency"]["MaxValue"] == 1000
    assert 30 in parameters["LogRetentionDays"]["AllowedValues"]
    assert parameters["JuheBaseUrl"]["Default"] == "https://apis.juhe.cn"
    assert parameters["ApetimeBaseUrl"]["Default"] == "https://api.apetime.cn"
    assert parameters["PublicBaseUrl"]["Default"] == ""


@pytest.mark.parametrize(
    ("pattern_of", "value", "ok"),
    [
        ("AllowedRedirectHosts", "example.com", True),
        ("AllowedRedirectHosts", "example.com,app.example.cn", True),
        ("AllowedRedirectHosts", "", True),
        ("AllowedRedirectHosts", "https://example.com", False),
        ("AllowedRedirectHosts", "a.com, b.com", False),
        ("PublicBaseUrl", "", True),
        ("PublicBaseUrl", "https://idv.example.com", True),
        ("PublicBaseUrl", "http://idv.example.com", False),
        ("JuheBaseUrl", "http://127.0.0.1:8080", True),
        ("JuheBaseUrl", "apis.juhe.cn", False),
        ("DailySpendLimit", "", True),
        ("DailySpendLimit", "500", True),
        ("DailySpendLimit", "500.25", True),
        ("DailySpendLimit", "500.255", False),
        ("DailySpendLimit", "-1", False),
        ("DailySpendLimit", "1e3", False),
        ("ProviderPrices", '{"compare": "0.60", "four_factor": "1.00", "portrait": "0.50", "faceid": "1.50"}', True),
        ("ProviderPrices", "", False),
    ],
)
def test_parameter_patterns(template: dict[str, Any], pattern_of: str, value: str, ok: bool) -> None:
    pattern = template["Parameters"][pattern_of]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is ok


def test_every_route_and_its_api_key_requirement(template: dict[str, Any], resources: dict[str, Any]) -> None:
    api = props(resources, "Api")
    assert api["Auth"]["ApiKeyRequired"] is True
    assert api["Auth"]["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    assert api["Auth"]["UsagePlan"]["Throttle"]
    assert api["StageName"] == {"Ref": "Stage"}
    assert api["TracingEnabled"] is True
    expected = {
        (method, path): (logical_id, needs_key)
        for logical_id, (_, routes) in FUNCTIONS.items()
        for method, path, needs_key in routes
    }
    routes = api_routes(resources)
    assert set(routes) == set(expected)
    for key, (logical_id, needs_key) in expected.items():
        function, event = routes[key]
        assert function == logical_id, key
        assert event["RestApiId"] == {"Ref": "Api"}, key
        # The API default requires the key; only the callback turns it off.
        assert event.get("Auth", {}).get("ApiKeyRequired", True) is needs_key, key


def test_gateway_responses_are_problem_json(resources: dict[str, Any]) -> None:
    responses = props(resources, "Api")["GatewayResponses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "INVALID_API_KEY", "THROTTLED"} <= set(responses)
    for name, response in responses.items():
        assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/problem+json'", name
        body = response["ResponseTemplates"]["application/json"]
        # API Gateway substitutes variables (messageString comes quoted); the rest must be JSON already.
        rendered = body.replace("$context.error.messageString", '"message"').replace("$context.", "")
        problem = json.loads(rendered)
        assert {"type", "title", "detail", "code"} <= set(problem), name
        if "StatusCode" in response:
            assert problem["status"] == int(response["StatusCode"]), name


def test_verifications_table(resources: dict[str, Any]) -> None:
    table = props(resources, "VerificationsTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "verification_id", "KeyType": "HASH"}]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "DataKey"}}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {
        "verification_id": "S",
        "pending_faceid": "S",
        "session_expires_at": "N",
        "id_hash": "S",
        "reference_key": "S",
        "pending_upload": "S",
        "upload_expires_at": "N",
    }
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"pending-faceid", "subject-id-hash", "client-reference", "pending-uploads"}
    keys = {name: [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]] for name, i in indexes.items()}
    assert keys == {
        "pending-faceid": [("pending_faceid", "HASH"), ("session_expires_at", "RANGE")],
        "subject-id-hash": [("id_hash", "HASH"), ("verification_id", "RANGE")],
        "client-reference": [("reference_key", "HASH"), ("verification_id", "RANGE")],
        "pending-uploads": [("pending_upload", "HASH"), ("upload_expires_at", "RANGE")],
    }
    for name in ("pending-faceid", "pending-uploads"):
        assert indexes[name]["Projection"]["ProjectionType"] in ("KEYS_ONLY", "INCLUDE")
    # The data-subject indexes carry the public (masked) fields only: no sealed data, no stored answer.
    from idv.records import PUBLIC_FIELDS, REFERENCE_INDEX, SUBJECT_INDEX

    for name in (SUBJECT_INDEX, REFERENCE_INDEX):
        projection = indexes[name]["Projection"]
        assert projection["ProjectionType"] == "INCLUDE"
        assert set(projection["NonKeyAttributes"]) == set(PUBLIC_FIELDS) - {"verification_id"}


def test_sparse_index_name_matches_the_layer(resources: dict[str, Any]) -> None:
    records = ROOT / "layers" / "idv" / "idv" / "records.py"
    if not records.exists():
        pytest.skip("layer records module not written yet")
    index = props(resources, "VerificationsTable")["GlobalSecondaryIndexes"][0]["IndexName"]
    assert f'PENDING_FACEID_INDEX = "{index}"' in records.read_text(encoding="utf-8")


def test_idempotency_table(resources: dict[str, Any]) -> None:
    table = props(resources, "IdempotencyTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_data_key_rotates(resources: dict[str, Any]) -> None:
    key = props(resources, "DataKey")
    assert key["EnableKeyRotation"] is True
    assert resources["DataKeyAlias"]["Properties"]["TargetKeyId"] == {"Ref": "DataKey"}


def test_provider_secret_has_the_design_fields_and_a_generated_hmac_key(resources: dict[str, Any]) -> None:
    generate = props(resources, "ProviderSecret")["GenerateSecretString"]
    placeholders = json.loads(generate["SecretStringTemplate"])
    assert generate["GenerateStringKey"] == "pii_hmac_key"
    assert set(placeholders) | {"pii_hmac_key"} == set(SECRET_FIELDS)
    assert all(value == "REPLACE_ME" for value in placeholders.values())
    assert generate["PasswordLength"] >= 32
    assert generate["ExcludePunctuation"] is True


def test_upload_bucket(resources: dict[str, Any]) -> None:
    bucket = props(resources, "UploadBucket")
    assert bucket["BucketName"] == {"Fn::Sub": "${AWS::StackName}-uploads-${AWS::AccountId}-${AWS::Region}"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["BucketKeyEnabled"] is True
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == ("uploads/", 1, "Enabled")
    assert "POST" in bucket["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    assert resources["UploadBucket"]["DependsOn"] == "UploadQueuePolicy"
    (deny,) = props(resources, "UploadBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_upload_queue_policy_names_the_bucket_without_a_cycle(resources: dict[str, Any]) -> None:
    (statement,) = props(resources, "UploadQueuePolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    source = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert source == "arn:${AWS::Partition}:s3:::${AWS::StackName}-uploads-${AWS::AccountId}-${AWS::Region}"
    text = json.dumps(statement)
    assert '"Ref": "UploadBucket"' not in text and '["UploadBucket"' not in text and "${UploadBucket" not in text
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_upload_queue_redrives_to_the_dlq_after_five_receives(resources: dict[str, Any]) -> None:
    queue = props(resources, "UploadQueue")
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["UploadDLQ", "Arn"]}, "maxReceiveCount": 5}
    # S3 cannot send to a queue encrypted with the AWS-managed aws/sqs key.
    assert queue["SqsManagedSseEnabled"] is True
    assert props(resources, "UploadDLQ")["SqsManagedSseEnabled"] is True
    assert props(resources, "UploadDLQ")["MessageRetentionPeriod"] == 14 * 86400
    worker_timeout = props(resources, "UploadWorkerFunction")["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * worker_timeout


def test_upload_worker_reports_partial_batch_failures_with_bounded_concurrency(resources: dict[str, Any]) -> None:
    (event,) = props(resources, "UploadWorkerFunction")["Events"].values()
    assert event["Type"] == "SQS"
    source = event["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert source["BatchSize"] == 10
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "UploadMaxConcurrency"}}


def test_reconciler_runs_on_a_schedule(resources: dict[str, Any]) -> None:
    (event,) = props(resources, "ReconcilerFunction")["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"].startswith("rate(")


def test_reconciler_failures_reach_a_dead_letter_queue(resources: dict[str, Any]) -> None:
    reconciler = props(resources, "ReconcilerFunction")
    (event,) = reconciler["Events"].values()
    dlq = {"Fn::GetAtt": ["ReconcilerDLQ", "Arn"]}
    assert event["Properties"]["DeadLetterConfig"] == {"Arn": dlq}  # EventBridge could not invoke it
    assert event["Properties"]["RetryPolicy"]["MaximumEventAgeInSeconds"] < 300  # within the period
    invoke = reconciler["EventInvokeConfig"]  # the invocation failed
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == dlq
    (statement,) = props(resources, "ReconcilerDLQPolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert event["Properties"]["Name"]["Fn::Sub"] in statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    alarm = props(resources, "ReconcilerDLQAlarm")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ReconcilerDLQ", "QueueName"]}}]


def test_every_function_has_a_log_group_with_retention(resources: dict[str, Any]) -> None:
    groups = {
        json.dumps(r["Properties"]["LogGroupName"]): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    for logical_id in FUNCTIONS:
        group = groups.get(json.dumps({"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}))
        assert group is not None, f"no log group for {logical_id}"
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_least_privilege_policies(resources: dict[str, Any]) -> None:
    """The shape; tests/unit/test_least_privilege.py checks every action against the code's AWS calls."""
    for logical_id in FUNCTIONS:
        policies = props(resources, logical_id)["Policies"]
        assert all(set(policy) == {"Statement"} for policy in policies), f"{logical_id}: explicit statements only"
        for statement in (s for policy in policies for s in policy["Statement"]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any("*" in action for action in actions), (logical_id, statement["Sid"])
            assert statement["Resource"] != "*", (logical_id, statement["Sid"])
    # Events leave through the outbox, except the audit event of an erasure by person (nothing to write it
    # with: the records are gone). Only the data-subject function queries the person and reference indexes.
    for logical_id in FUNCTIONS:
        text = json.dumps(props(resources, logical_id)["Policies"])
        assert ("events:PutEvents" in text) == (logical_id in {"VerificationsFunction", "EventPublisherFunction"})
        assert ("/index/subject-id-hash" in text) == (logical_id == "VerificationsFunction"), logical_id
        assert ("/index/pending-faceid" in text) == (logical_id == "ReconcilerFunction"), logical_id
        assert "dynamodb:Scan" not in text and "dynamodb:Batch" not in text, logical_id
    # The callback has no API key and nothing to do with uploads, the idempotency table or inserts.
    callback = json.dumps(props(resources, "FaceIdCallbackFunction")["Policies"])
    assert "IdempotencyTable" not in callback
    assert "s3:" not in callback
    assert "dynamodb:PutItem" not in callback and "dynamodb:DeleteItem" not in callback


def test_the_key_is_used_through_dynamodb_and_s3_by_the_function_roles_only(resources: dict[str, Any]) -> None:
    root, *uses = props(resources, "DataKey")["KeyPolicy"]["Statement"]
    assert root["Action"] == "kms:*"  # the account keeps the key manageable (and IAM-delegated direct use)
    for statement in uses:
        assert statement["Principal"] == {"AWS": "*"}
        condition = statement["Condition"]
        assert condition["StringEquals"]["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
        assert condition["StringEquals"]["kms:ViaService"]
        for arn in condition["ArnLike"]["aws:PrincipalArn"]:
            assert re.fullmatch(
                r"arn:\$\{AWS::Partition\}:iam::\$\{AWS::AccountId\}:role/\$\{AWS::StackName\}/[A-Za-z]+Function/\*",
                arn["Fn::Sub"],
            ), arn


def test_api_access_logs_carry_no_path_query_or_body(resources: dict[str, Any]) -> None:
    setting = props(resources, "Api")["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(setting["Format"])
    assert {"requestId", "ip", "httpMethod", "resourcePath", "status", "responseLatency"} <= set(fields)
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", setting["Format"]))
    assert fields["resourcePath"] == "$context.resourcePath"  # the route template, never the values
    for unsafe in ("$context.path", "$context.requestOverride", "$context.identity.userAgent", "$input", "$util"):
        assert not any(v == unsafe or v.startswith(unsafe + ".") for v in variables), unsafe
    assert "$input" not in setting["Format"] and "querystring" not in setting["Format"].lower()
    group = props(resources, "ApiAccessLogGroup")
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    account = resources["ApiGatewayAccount"]
    assert account["Condition"] == "CreatesApiGatewayLoggingRole"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayLoggingRole", "Arn"]}
    assert resources["ApiGatewayLoggingRole"]["DeletionPolicy"] == "Retain"


def test_every_arn_names_the_partition(template: dict[str, Any]) -> None:
    hardcoded = [s for s in strings(template) if "arn:aws:" in s or "arn:aws-cn:" in s]
    assert hardcoded == [], "build ARNs with ${AWS::Partition} so the stack deploys in China regions"
    for s in strings(template):
        if "execute-api." in s:
            assert "${AWS::URLSuffix}" in s, s


def test_alarms_on_dlq_depth_and_api_5xx(resources: dict[str, Any]) -> None:
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") not in (None, "ApproximateNumberOfMessagesVisible")
    }
    queues = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert set(queues) == {"UploadDLQ", "EventsDLQ", "ReconcilerDLQ"}  # every dead-letter queue alarms
    for dlq in queues.values():
        assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    api = alarms["5XXError"]
    assert (api["Namespace"], api["Period"], api["Threshold"]) == ("AWS/ApiGateway", 300, 0)


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for name in OUTPUTS:
        assert name in outputs, name
        assert outputs[name].get("Description"), name
    # SAM names the PER_API usage plan's key <ApiLogicalId>ApiKey.
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "ApiApiKey"}
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    }


def test_function_dirs_declare_that_the_layer_brings_the_dependencies() -> None:
    for directory, _ in FUNCTIONS.values():
        requirements = ROOT / "functions" / directory / "requirements.txt"
        if requirements.exists():
            lines = [ln for ln in requirements.read_text(encoding="utf-8").splitlines() if ln.strip()]
            assert all(ln.startswith("#") for ln in lines), f"{requirements}: dependencies belong to the layer"


def cfn_lint_command() -> list[str]:
    local = Path(sys.executable).with_name("cfn-lint")
    if local.exists():
        return [str(local)]
    found = shutil.which("cfn-lint")
    if found:
        return [found]
    return [sys.executable, "-m", "cfnlint"]


def test_cfn_lint_finds_nothing() -> None:
    """cfn-lint with AWS's serverless rules (cfn-lint-serverless), as `make validate` runs it."""
    result = subprocess.run(
        [*cfn_lint_command(), str(TEMPLATE_PATH), "--append-rules", "cfn_lint_serverless.rules"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- events/


def test_every_function_and_route_has_a_sample_event(resources: dict[str, Any]) -> None:
    covered = {(method.lower(), resource) for _, method, resource in API_EVENTS.values()}
    assert covered == set(api_routes(resources))
    assert set(OTHER_EVENTS.values()) | {f for f, _, _ in API_EVENTS.values()} == set(FUNCTIONS)
    on_disk = {p.name for p in EVENTS.glob("*.json")} - {LOCAL_ENV_FILE}
    assert on_disk == set(API_EVENTS) | set(OTHER_EVENTS)


@pytest.mark.parametrize("name", sorted(API_EVENTS))
def test_api_events_carry_what_sam_local_invoke_and_the_resolver_need(resources: dict[str, Any], name: str) -> None:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    logical_id, method, resource = API_EVENTS[name]
    assert (method.lower(), resource) in api_routes(resources)
    assert api_routes(resources)[(method.lower(), resource)][0] == logical_id
    assert event["httpMethod"] == method
    assert event["resource"] == resource
    context = event["requestContext"]
    assert context["httpMethod"] == method
    assert context["resourcePath"] == resource
    assert context["stage"] and context["requestId"]
    assert isinstance(event["headers"], dict)
    assert event["isBase64Encoded"] is False
    # The concrete path is the resource with its path parameters filled in.
    parameters = event["pathParameters"] or {}
    assert set(parameters) == set(re.findall(r"{(\w+)}", resource))
    assert event["path"] == resource.format(**parameters)
    headers = {k.lower(): v for k, v in event["headers"].items()}
    needs_key = resource != "/v1/faceid/callback/{verification_id}"
    assert ("x-api-key" in headers) is needs_key
    if event["body"] is not None:
        assert headers["content-type"] in ("application/json", "application/x-www-form-urlencoded")
        if headers["content-type"] == "application/json":
            body = json.loads(event["body"])
            # Routes that create a verification take a key; the data-subject routes (§9) have none.
            assert ("idempotency-key" in headers) is not resource.startswith("/v1/subjects/")
            if "name" in body:
                assert body["consent"]["granted"] is True


@pytest.mark.parametrize("name", ["compare.json", "four_factor.json", "portrait.json", "create_upload.json"])
def test_identity_events_use_a_valid_synthetic_id_number(name: str) -> None:
    body = json.loads(json.loads((EVENTS / name).read_text(encoding="utf-8"))["body"])
    id_number = body["id_number"]
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(id_number[:17], weights, strict=True)) % 11]
    assert len(id_number) == 18 and id_number[17] == check
    assert body["name"] == "张三"


@pytest.mark.parametrize("name", ["compare.json", "four_factor.json", "portrait.json"])
def test_image_events_carry_a_real_jpeg(name: str) -> None:
    import base64
    import io

    from PIL import Image

    image = json.loads(json.loads((EVENTS / name).read_text(encoding="utf-8"))["body"])["image"]
    data = base64.b64decode(image.split(",", 1)[-1])
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG"
        assert min(picture.size) >= 128


def test_upload_worker_event_is_sqs_carrying_an_s3_object_created_record() -> None:
    event = json.loads((EVENTS / "upload_worker.json").read_text(encoding="utf-8"))
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["messageId"] and record["receiptHandle"]
    (s3_record,) = json.loads(record["body"])["Records"]
    assert s3_record["eventSource"] == "aws:s3"
    assert s3_record["eventName"].startswith("ObjectCreated:")
    assert s3_record["s3"]["object"]["key"].startswith("uploads/v01")


def test_reconciler_event_is_a_scheduled_event() -> None:
    event = json.loads((EVENTS / "reconciler.json").read_text(encoding="utf-8"))
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")


def test_local_env_file_sets_the_design_variables(template: dict[str, Any]) -> None:
    env = json.loads((EVENTS / LOCAL_ENV_FILE).read_text(encoding="utf-8"))
    for name in DESIGN_ENV:
        assert name in env["Parameters"], name
    # sam local invoke only overrides variables the template declares; anything else is silently dropped.
    declared = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(env["Parameters"]) <= set(declared)
