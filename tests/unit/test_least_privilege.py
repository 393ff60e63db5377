"""Least privilege (issue 12 item 7): each function's IAM actions are exactly the AWS calls its code makes.

Three readings must agree, per function, as a set of (IAM action, resource):

1. ``EXPECTED`` below: the curated table, the one place a reviewer reads.
2. The code: a static reading (``ast``) of ``functions/<dir>/app.py`` and the ``idv`` layer. From every
   function and method the handler module defines, calls are followed through the layer (names resolved
   through imports, ``self``, and the return annotations of factories such as ``claims.repository()``),
   and every AWS call reached is collected: boto3 client operations, the DynamoDB writes the layer builds
   (``records.put`` / ``records.update`` / ``records.Write``, whose table is the class that builds them),
   the paginated index queries, presigned POSTs (signed with the role: ``s3:PutObject``) and Powertools'
   ``SecretsProvider`` (``secretsmanager:GetSecretValue``). A function-level reading is still an upper
   bound; the one call it reaches that cannot run is listed in ``UNREACHABLE`` with the reason, and the
   reason's premise is checked against the code.
3. template.yaml: each function's ``Policies`` (hand-written statements; a SAM policy template is resolved
   to its actions only to say why it is refused), plus the on-failure destinations its events name.

The KMS key policy is checked from the same table: a function that touches a table (or reads its
stream) may use the key through DynamoDB, one that reads or presigns uploads through S3, and nobody
else; the account root keeps the key manageable.

What SAM attaches by itself is not in the table: AWSLambdaBasicExecutionRole (logs),
AWSXrayWriteOnlyAccess (``Tracing: Active``), AWSLambdaSQSQueueExecutionRole for the SQS event and
AWSLambdaDynamoDBExecutionRole for the stream event.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "idv" / "idv"
TEMPLATE_PATH = ROOT / "template.yaml"

Grant = tuple[str, str]  # (IAM action, resource: a logical id, optionally with a suffix)

VERIFICATIONS = "VerificationsTable"
IDEMPOTENCY = "IdempotencyTable"
USAGE = "UsageTable"
USAGE_REPORT = "UsageReportTable"
UPLOADS = "UploadBucket/uploads/*"
SECRET = "ProviderSecret"
KEY = "DataKey"
BUS = "EventBus"

# The curated table: function -> every (action, resource) it holds.
EXPECTED: dict[str, set[Grant]] = {
    # Synchronous checks: claim (PutItem) -> finish (UpdateItem) on the record, replay reads (GetItem);
    # with an Idempotency-Key: the key's claim (PutItem), its replay (GetItem), freeing it (DeleteItem).
    **{
        name: {
            ("dynamodb:PutItem", VERIFICATIONS),
            ("dynamodb:UpdateItem", VERIFICATIONS),
            ("dynamodb:GetItem", VERIFICATIONS),
            ("dynamodb:PutItem", IDEMPOTENCY),
            ("dynamodb:GetItem", IDEMPOTENCY),
            ("dynamodb:DeleteItem", IDEMPOTENCY),
            # Money controls: the reservation (counters, dedupe check), its release, a dedupe hit's read.
            ("dynamodb:UpdateItem", USAGE),
            ("dynamodb:ConditionCheckItem", USAGE),
            ("dynamodb:GetItem", USAGE),
            ("secretsmanager:GetSecretValue", SECRET),
        }
        for name in ("CompareFunction", "FourFactorFunction", "ApetimeVerifyFunction", "FaceIdInitiateFunction")
    },
    # No API key: reads the session, takes/releases the search lease and finishes it (UpdateItem). Nothing else.
    "FaceIdCallbackFunction": {
        ("dynamodb:GetItem", VERIFICATIONS),
        ("dynamodb:UpdateItem", VERIFICATIONS),
        ("secretsmanager:GetSecretValue", SECRET),
    },
    # Read, erase (record, key tombstone, uploaded object) and upload tickets (sealed data, presigned POST).
    "VerificationsFunction": {
        ("dynamodb:PutItem", VERIFICATIONS),
        ("dynamodb:UpdateItem", VERIFICATIONS),
        ("dynamodb:GetItem", VERIFICATIONS),
        ("dynamodb:DeleteItem", VERIFICATIONS),
        ("dynamodb:Query", f"{VERIFICATIONS}/index/subject-id-hash"),  # data-subject rights (DESIGN §9)
        ("dynamodb:Query", f"{VERIFICATIONS}/index/client-reference"),
        ("dynamodb:PutItem", IDEMPOTENCY),
        ("dynamodb:GetItem", IDEMPOTENCY),
        ("dynamodb:DeleteItem", IDEMPOTENCY),
        ("dynamodb:UpdateItem", IDEMPOTENCY),
        ("dynamodb:UpdateItem", USAGE),  # an upload ticket reserves when it is issued
        ("dynamodb:ConditionCheckItem", USAGE),
        ("dynamodb:GetItem", USAGE),
        ("dynamodb:DeleteItem", USAGE),  # an erasure deletes the record's dedupe item
        ("kms:Encrypt", KEY),
        ("events:PutEvents", BUS),  # the Subject Erased audit event (a count, no personal data)
        ("s3:PutObject", UPLOADS),
        ("s3:DeleteObject", UPLOADS),
        ("secretsmanager:GetSecretValue", SECRET),
    },
    # Claims the ticket's record, unseals its data, reads and removes the object, defers / hands off to
    # its own queue. No idempotency table: the upload request's key was settled when the ticket was issued.
    "UploadWorkerFunction": {
        ("dynamodb:UpdateItem", VERIFICATIONS),
        ("dynamodb:GetItem", VERIFICATIONS),
        ("dynamodb:UpdateItem", USAGE),  # a check that was not charged gives its reserved price back
        ("kms:Decrypt", KEY),
        ("s3:GetObject", UPLOADS),
        ("s3:DeleteObject", UPLOADS),
        ("sqs:SendMessage", "UploadQueue"),
        ("secretsmanager:GetSecretValue", SECRET),
    },
    # The only reader of the pending-faceid and pending-uploads indexes.
    "ReconcilerFunction": {
        ("dynamodb:Query", f"{VERIFICATIONS}/index/pending-faceid"),
        ("dynamodb:Query", f"{VERIFICATIONS}/index/pending-uploads"),
        ("dynamodb:GetItem", VERIFICATIONS),
        ("dynamodb:UpdateItem", VERIFICATIONS),
        ("dynamodb:UpdateItem", USAGE),  # an abandoned upload ticket gives its reserved price back
        ("secretsmanager:GetSecretValue", SECRET),
        ("sqs:SendMessage", "ReconcilerDLQ"),  # its asynchronous invocations' on-failure destination
    },
    # GET /v1/usage: one Query per day of the usage rows (never a Scan).
    "UsageFunction": {("dynamodb:Query", USAGE_REPORT)},
    # The outbox's reader: the bus, and the stream's on-failure queue.
    "EventPublisherFunction": {
        ("events:PutEvents", BUS),
        ("dynamodb:GetItem", VERIFICATIONS),  # a record erased since its stream record is not published
        ("dynamodb:PutItem", USAGE),  # a completed record's dedupe item (money controls)
        ("dynamodb:PutItem", USAGE_REPORT),  # every finished record's usage row (GET /v1/usage)
        ("sqs:SendMessage", "EventsDLQ"),
    },
}

# Calls the function-level reading reaches that cannot run in that function: (function, grant) -> why.
UNREACHABLE: dict[tuple[str, Grant], str] = {
    ("UploadWorkerFunction", ("dynamodb:DeleteItem", IDEMPOTENCY)): (
        "claims.finish frees an Idempotency-Key only for a claim that carries one (claim.key); the worker's"
        " claims come from claims.take, which never sets a key"
    ),
}

# boto3 operation -> IAM action (None: dispatches writes that are counted where they are built).
OPERATIONS: dict[str, str | None] = {
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "get_item": "dynamodb:GetItem",
    "query": "dynamodb:Query",
    "transact_write_items": None,  # IAM authorizes each item's own Put/Update/Delete/ConditionCheck
    "get_object": "s3:GetObject",
    "delete_object": "s3:DeleteObject",
    "put_object": "s3:PutObject",
    "generate_presigned_post": "s3:PutObject",  # the browser's upload is signed with the function's role
    "send_message": "sqs:SendMessage",
    "encrypt": "kms:Encrypt",
    "decrypt": "kms:Decrypt",
    "put_events": "events:PutEvents",
    "get_secret_value": "secretsmanager:GetSecretValue",
}
# What a client of each service works on (one resource per service in this stack).
RESOURCE_OF_SERVICE = {"s3": UPLOADS, "sqs": "UploadQueue", "kms": KEY, "events": BUS, "secretsmanager": SECRET}
# The classes that own a table (checked: their constructor requires the table's setting).
TABLE_OF_CLASS = {
    "idv.records.Repository": (VERIFICATIONS, "VERIFICATIONS_TABLE"),
    "idv.idempotency.Store": (IDEMPOTENCY, "IDEMPOTENCY_TABLE"),
    "idv.controls.Counters": (USAGE, "USAGE_TABLE"),
    "idv.controls.UsageRows": (USAGE_REPORT, "USAGE_REPORT_TABLE"),
}
WRITE_BUILDERS = {"idv.records.put": "dynamodb:PutItem", "idv.records.update": "dynamodb:UpdateItem"}
WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",  # an item of a TransactWriteItems
}
SECRETS_PROVIDER = "aws_lambda_powertools.utilities.parameters.SecretsProvider"


# ---------------------------------------------------------------- the code


@dataclass
class Module:
    name: str
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    constants: dict[str, str] = field(default_factory=dict)  # module-level string constants


@dataclass
class Definition:
    qualname: str
    module: Module
    node: ast.AST
    cls: str | None = None  # qualified class of a method


class Program:
    """The layer plus one handler module, with a function-level call graph and the AWS calls of each def."""

    def __init__(self, handler: Path) -> None:
        self.modules: dict[str, Module] = {}
        for path in sorted(LAYER.rglob("*.py")):
            parts = path.relative_to(LAYER.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            self._load(name, path)
        self.handler = self._load("app", handler)
        self.defs: dict[str, Definition] = {}
        self.returns: dict[str, str] = {}  # def -> qualified class it returns (annotation)
        for module in self.modules.values():
            self._collect(module)

    def _load(self, name: str, path: Path) -> Module:
        module = Module(name, ast.parse(path.read_text(), str(path)))
        package = name.rsplit(".", 1)[0] if "." in name else name
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = f"{base}.{alias.name}"
        for node in module.tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        module.constants[target.id] = node.value.value
        self.modules[name] = module
        return module

    def _collect(self, module: Module) -> None:
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._add(Definition(f"{module.name}.{node.name}", module, node))
            elif isinstance(node, ast.ClassDef):
                cls = f"{module.name}.{node.name}"
                self.defs[cls] = Definition(cls, module, ast.Module(body=[], type_ignores=[]))
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self._add(Definition(f"{cls}.{item.name}", module, item, cls))
        # Module-level code (assignments, decorators) runs at import.
        body: list[ast.stmt] = []
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                body.extend(ast.Expr(value=d) for d in node.decorator_list)
            elif not isinstance(node, (ast.Import, ast.ImportFrom)):
                body.append(node)
        top = ast.Module(body=body, type_ignores=[])
        self.defs[f"{module.name}.<module>"] = Definition(f"{module.name}.<module>", module, top)

    def _add(self, definition: Definition) -> None:
        self.defs[definition.qualname] = definition
        node = definition.node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            target = self._resolve(node.returns, definition, {})
            if isinstance(target, str):
                self.returns[definition.qualname] = target

    # -- names

    def _resolve(self, node: ast.AST, where: Definition, local: dict[str, Any]) -> Any:
        """A qualified name (str), ("instance", class), ("client", service), or None."""
        module = where.module
        if isinstance(node, ast.Name):
            if node.id in local:
                return local[node.id]
            if node.id == "self" and where.cls:
                return ("instance", where.cls)
            if f"{module.name}.{node.id}" in self.defs:
                return f"{module.name}.{node.id}"
            return module.imports.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._resolve(node.value, where, local)
            if isinstance(base, str):
                return f"{base}.{node.attr}"
            if isinstance(base, tuple) and base[0] == "instance":
                if node.attr == "client" and base[1] in TABLE_OF_CLASS:
                    return ("client", "dynamodb", base[1])
                if node.attr == "table" and base[1] in TABLE_OF_CLASS:
                    return ("table", TABLE_OF_CLASS[base[1]][0])
                return f"{base[1]}.{node.attr}"
            return None
        if isinstance(node, ast.Call):
            callee = self._resolve(node.func, where, local)
            if callee == "idv.aws.client" and node.args and isinstance(node.args[0], ast.Constant):
                return ("client", node.args[0].value, None)
            if isinstance(callee, str):
                if callee in self.returns:
                    return ("instance", self.returns[callee])
                if self._is_class(callee):
                    return ("instance", callee)  # a class called: its instance
        return None

    def _is_class(self, name: str) -> bool:
        found = self.defs.get(name)
        return found is not None and isinstance(found.node, ast.Module) and not name.endswith("<module>")

    def _locals(self, definition: Definition) -> dict[str, Any]:
        local: dict[str, Any] = {}
        node = definition.node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):  # annotated parameters
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                if arg.annotation is not None and arg.arg != "self":
                    target = self._resolve(arg.annotation, definition, {})
                    if (
                        isinstance(target, str)
                        and target in self.defs
                        and isinstance(self.defs[target].node, ast.Module)
                    ):
                        local[arg.arg] = ("instance", target)
        for _ in range(2):  # a variable assigned from another one
            for node in ast.walk(definition.node):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    value = self._resolve(node.value, definition, local)
                    if isinstance(value, tuple):
                        local[node.targets[0].id] = value
        return local

    # -- graph and effects

    def edges(self, definition: Definition) -> set[str]:
        local = self._locals(definition)
        found = set()
        for node in ast.walk(definition.node):
            if isinstance(node, (ast.Name, ast.Attribute)):
                target = self._resolve(node, definition, local)
                if isinstance(target, str) and target in self.defs:
                    found.add(target)
        return found

    def reachable(self) -> set[str]:
        todo = [q for q, d in self.defs.items() if d.module is self.handler]
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.edges(self.defs[name]) - seen)
        return seen

    def effects(self, definition: Definition) -> Iterator[tuple[Grant, str]]:
        """(grant, where) of every AWS call in one definition."""
        local = self._locals(definition)
        where = definition.qualname
        for node in ast.walk(definition.node):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            callee = self._resolve(func, definition, local)
            if callee == SECRETS_PROVIDER:
                yield ("secretsmanager:GetSecretValue", SECRET), where
                continue
            if callee in WRITE_BUILDERS:
                table = self._table(node.args[0] if node.args else None, definition, local)
                if table is None:
                    raise AssertionError(f"{where}: cannot tell which table {callee} writes to")
                yield (WRITE_BUILDERS[callee], table), where
                continue
            if callee == "idv.records.Write":
                action = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                params = node.args[1] if len(node.args) > 1 else None
                if where in WRITE_BUILDERS and not isinstance(params, ast.Dict):
                    continue  # the builders themselves: counted where they are called
                table_node = None
                if isinstance(params, ast.Dict):
                    for key, value in zip(params.keys, params.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "TableName":
                            table_node = value
                table = self._table(table_node, definition, local)
                if action not in WRITE_ACTIONS or table is None:
                    if where in WRITE_BUILDERS:
                        continue
                    raise AssertionError(f"{where}: cannot tell what records.Write({action!r}) writes to")
                yield (WRITE_ACTIONS[action], table), where
                continue
            # getattr(client, "put_item" | ...)(**params): the dispatch of a Write built elsewhere
            if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "getattr":
                target = self._resolve(func.args[0], definition, local)
                if isinstance(target, tuple) and target[0] == "client":
                    continue
            if not isinstance(func, ast.Attribute):
                continue
            client = self._resolve(func.value, definition, local)
            if not (isinstance(client, tuple) and client[0] == "client"):
                continue
            _, service, cls = client
            op = func.attr
            if op == "get_paginator":
                op = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
            if op not in OPERATIONS:
                raise AssertionError(f"{where}: {service}.{op} is not mapped to an IAM action in OPERATIONS")
            action = OPERATIONS[op]
            if action is None:
                continue
            if service == "dynamodb":
                table = TABLE_OF_CLASS[cls][0] if cls else None
                if table is None:
                    raise AssertionError(f"{where}: a DynamoDB call outside Repository/Store")
                indexes = self._indexes(definition, local) if op == "query" else None
                for resource in [f"{table}/index/{i}" for i in indexes] if indexes else [table]:
                    yield (action, resource), where
            else:
                if not action.startswith(f"{service}:"):
                    raise AssertionError(f"{where}: {service}.{op} mapped to {action}")
                yield (action, RESOURCE_OF_SERVICE[service]), where

    def _table(self, node: ast.AST | None, definition: Definition, local: dict[str, Any]) -> str | None:
        if node is None:
            return None
        value = self._resolve(node, definition, local)
        return value[1] if isinstance(value, tuple) and value[0] == "table" else None

    def _constant(self, node: ast.AST, definition: Definition, local: dict[str, Any]) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in definition.module.constants:
            return definition.module.constants[node.id]
        target = self._resolve(node, definition, local)
        if isinstance(target, str):
            module_name, _, constant = target.rpartition(".")
            module = self.modules.get(module_name)
            if module and constant in module.constants:
                return module.constants[constant]
        return None

    def _indexes(self, definition: Definition, local: dict[str, Any]) -> list[str] | None:
        """The index names a query of this definition may name (keyword or dict key `IndexName`); None: the table."""
        values = [n.value for n in ast.walk(definition.node) if isinstance(n, ast.keyword) and n.arg == "IndexName"]
        for node in ast.walk(definition.node):
            if isinstance(node, ast.Dict):
                values += [
                    v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value == "IndexName"
                ]
        if not values:
            return None
        names: list[str] = []
        for value in values:
            constant = self._constant(value, definition, local)
            if constant is not None:
                names.append(constant)
                continue
            # A parameter, allowed only as a key of a dict literal it is looked up in: those keys.
            keys = [
                self._constant(k, definition, local)
                for n in ast.walk(definition.node)
                if isinstance(n, ast.Subscript)
                and isinstance(n.value, ast.Dict)
                and isinstance(n.slice, ast.Name)
                and isinstance(value, ast.Name)
                and n.slice.id == value.id
                for k in n.value.keys
                if k is not None
            ]
            if not keys or None in keys:
                raise AssertionError(f"{definition.qualname}: cannot read the index it queries")
            names.extend(k for k in keys if k is not None)
        return names


def functions(template: dict[str, Any]) -> dict[str, Path]:
    """Function logical id -> its handler module (CodeUri functions/<dir>/, Handler app.lambda_handler)."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            assert properties["Handler"] == "app.lambda_handler", logical_id
            found[logical_id] = ROOT / properties["CodeUri"] / "app.py"
    return found


def code_grants(handler: Path) -> dict[Grant, set[str]]:
    """Every AWS call the handler can reach: grant -> where in the code."""
    program = Program(handler)
    grants: dict[Grant, set[str]] = {}
    for name in sorted(program.reachable()):
        for grant, where in program.effects(program.defs[name]):
            grants.setdefault(grant, set()).add(where)
    return grants


# ---------------------------------------------------------------- the template

# SAM policy templates, resolved only to tell what they would grant (the template uses none of them).
SAM_POLICY_TEMPLATES: dict[str, tuple[list[str], str, str]] = {
    "DynamoDBCrudPolicy": (
        [
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
        "TableName",
        "{}|{}/index/*",
    ),
    "DynamoDBReadPolicy": (
        [
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ],
        "TableName",
        "{}|{}/index/*",
    ),
    "AWSSecretsManagerGetSecretValuePolicy": (["secretsmanager:GetSecretValue"], "SecretArn", "{}"),
    "EventBridgePutEventsPolicy": (["events:PutEvents"], "EventBusName", "{}"),
    "SQSSendMessagePolicy": (["sqs:SendMessage*"], "QueueName", "{}"),
    "SQSPollerPolicy": (
        [
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        "QueueName",
        "{}",
    ),
    "KMSDecryptPolicy": (["kms:Decrypt"], "KeyId", "{}"),
}


def resource_id(value: Any) -> str:
    """A policy resource as a logical id (with any suffix): !GetAtt X.Arn, !Ref X, !Sub "...${X}/suffix"."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return (target[0] if isinstance(target, list) else target.split(".")[0]).strip()
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        text = re.sub(r"^arn:\$\{AWS::Partition\}:s3:::", "", text)
        text = re.sub(r"\$\{([A-Za-z0-9]+)(\.Arn)?\}", r"\1", text)
        return text
    if isinstance(value, dict) and "Fn::GetAtt" not in value:
        ((_, inner),) = value.items()  # a SAM template parameter such as {"TableName": {"Ref": ...}}
        return resource_id(inner)
    return str(value)


def policy_grants(properties: dict[str, Any]) -> set[Grant]:
    """The (action, resource) pairs of a function's Policies."""
    grants: set[Grant] = set()
    for policy in properties.get("Policies", []):
        assert isinstance(policy, dict), f"a managed policy by name is not least privilege: {policy!r}"
        for name, value in policy.items():
            if name == "Statement":
                for statement in value:
                    assert statement.get("Effect") == "Allow" and "Condition" not in statement, statement
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    resources = statement["Resource"]
                    resources = resources if isinstance(resources, list) else [resources]
                    assert "*" not in resources, f"Resource '*' in {statement.get('Sid')}"
                    grants |= {(a, resource_id(r)) for a in actions for r in resources}
            elif name in SAM_POLICY_TEMPLATES:
                actions, _parameter, shape = SAM_POLICY_TEMPLATES[name]
                target = resource_id(value)
                grants |= {(a, r.format(target, target)) for a in actions for r in shape.split("|")}
            else:
                raise AssertionError(f"policy template {name} is not resolved here: write an explicit Statement")
    return grants


def destination_grants(properties: dict[str, Any]) -> set[Grant]:
    """sqs:SendMessage for the on-failure queues the function's role delivers to (stream mapping, async)."""
    grants = set()
    configs = [e.get("Properties", {}).get("DestinationConfig", {}) for e in properties.get("Events", {}).values()]
    configs.append(properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}))
    for config in configs:
        destination = config.get("OnFailure", {}).get("Destination")
        if destination is not None:
            grants.add(("sqs:SendMessage", resource_id(destination)))
    return grants


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return json.loads(json.dumps(cfn_yaml.load(str(path))))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def handlers(template: dict[str, Any]) -> dict[str, Path]:
    return functions(template)


# ---------------------------------------------------------------- the tests


def test_the_table_names_every_function(handlers: dict[str, Path]) -> None:
    assert set(EXPECTED) == set(handlers)


@pytest.mark.parametrize("function", sorted(EXPECTED))
def test_the_table_is_what_the_code_calls(function: str, template: dict[str, Any], handlers: dict[str, Path]) -> None:
    calls = code_grants(handlers[function])
    platform = destination_grants(template["Resources"][function]["Properties"])
    from_code = {g for g in calls if (function, g) not in UNREACHABLE} | platform
    missing = {g: sorted(calls.get(g, ())) for g in from_code - EXPECTED[function]}
    unjustified = EXPECTED[function] - from_code
    assert not missing, f"{function} calls AWS for grants the table lacks (grant: where): {missing}"
    assert not unjustified, f"{function}'s table grants what no reachable code calls: {sorted(unjustified)}"
    for name, grant in UNREACHABLE:
        if name == function:
            assert grant in calls, f"UNREACHABLE lists {grant} for {name}, which the code no longer reaches: drop it"


def test_the_unreachable_premise_holds() -> None:
    """claims.take builds its Claim without a key, so claims.finish never frees one for the worker."""
    tree = ast.parse((LAYER / "claims.py").read_text())
    take = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "take")
    claims_made = [
        n for n in ast.walk(take) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Claim"
    ]
    assert claims_made and all(len(c.args) < 3 and not c.keywords for c in claims_made)
    worker = Program(ROOT / "functions" / "upload_worker" / "app.py")
    assert "idv.claims.begin" not in worker.reachable()  # the only other source of claims (it sets the key)


@pytest.mark.parametrize("function", sorted(EXPECTED))
def test_the_template_grants_exactly_the_table(function: str, template: dict[str, Any]) -> None:
    properties = template["Resources"][function]["Properties"]
    granted = policy_grants(properties)
    extra = granted - EXPECTED[function]
    missing = EXPECTED[function] - granted
    assert not extra, f"{function}'s Policies grant more than it calls: {sorted(extra)}"
    assert not missing, f"{function}'s Policies lack: {sorted(missing)}"


def test_the_landed_crud_policies_would_fail() -> None:
    """The checker itself: the template as it landed (CRUD on the tables everywhere) is refused."""
    landed = {
        "Policies": [
            {"DynamoDBCrudPolicy": {"TableName": {"Ref": VERIFICATIONS}}},
            {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": SECRET}}},
        ]
    }
    extra = policy_grants(landed) - EXPECTED["FaceIdCallbackFunction"]
    assert {("dynamodb:Scan", VERIFICATIONS), ("dynamodb:PutItem", VERIFICATIONS)} <= extra


def test_code_reading_sees_the_calls_it_should() -> None:
    """The static reading is not vacuous: known call sites are found where they are."""
    calls = code_grants(ROOT / "functions" / "verifications" / "app.py")
    assert "idv.vault.seal" in calls[("kms:Encrypt", KEY)]
    assert "idv.uploads.create_upload" in calls[("s3:PutObject", UPLOADS)]
    assert "idv.idempotency.Store.erase_write" in calls[("dynamodb:UpdateItem", IDEMPOTENCY)]
    assert "idv.provider_secret.secrets_provider" in calls[("secretsmanager:GetSecretValue", SECRET)]
    reconciler = code_grants(ROOT / "functions" / "reconciler" / "app.py")
    assert (
        "idv.records.Repository.pending_faceid_ids"
        in reconciler[("dynamodb:Query", f"{VERIFICATIONS}/index/pending-faceid")]
    )
    callback = code_grants(ROOT / "functions" / "faceid_callback" / "app.py")
    assert not any(resource == IDEMPOTENCY for _, resource in callback)


def test_table_classes_own_the_tables_they_are_said_to() -> None:
    for qualname, (_table, setting) in TABLE_OF_CLASS.items():
        module, cls = qualname.rsplit(".", 1)
        path = LAYER / f"{module.split('.', 1)[1]}.py"
        tree = ast.parse(path.read_text())
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        # `setting = "..."` names the table (records.Table reads it in its __init__)
        named = [
            a.value.value
            for a in node.body
            if isinstance(a, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "setting" for t in a.targets)
            and isinstance(a.value, ast.Constant)
        ]
        assert named == [setting], qualname


# ---------------------------------------------------------------- the KMS key policy


def role_path_arn(function: str) -> dict[str, Any]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/${{AWS::StackName}}/{function}/*"}


def key_users(template: dict[str, Any]) -> dict[str, set[str]]:
    """Service -> the functions that need the key through it (from the table and the stream events)."""
    users: dict[str, set[str]] = {"dynamodb": set(), "s3-read": set(), "s3-write": set()}
    for function, grants in EXPECTED.items():
        if any(a.startswith("dynamodb:") for a, _ in grants):
            users["dynamodb"].add(function)
        if ("s3:GetObject", UPLOADS) in grants:
            users["s3-read"].add(function)
        if ("s3:PutObject", UPLOADS) in grants:
            users["s3-write"].add(function)
        events = template["Resources"][function]["Properties"].get("Events", {})
        if any(e["Type"] == "DynamoDB" for e in events.values()):
            users["dynamodb"].add(function)  # the stream of an SSE-KMS table
    return users


def test_each_function_role_has_its_own_path(template: dict[str, Any]) -> None:
    for function in EXPECTED:
        path = template["Resources"][function]["Properties"].get("RolePath")
        assert path == {"Fn::Sub": f"/${{AWS::StackName}}/{function}/"}, function


def test_the_key_policy_names_the_function_roles_per_service(template: dict[str, Any]) -> None:
    statements = template["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    root, *uses = statements
    assert root["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert root["Action"] == "kms:*"
    wanted = {
        "dynamodb": ({"kms:Decrypt", "kms:GenerateDataKey"}, "dynamodb"),
        "s3-read": ({"kms:Decrypt"}, "s3"),
        "s3-write": ({"kms:GenerateDataKey"}, "s3"),
    }
    users = key_users(template)
    seen = set()
    for statement in uses:
        condition = statement["Condition"]
        services = {json.dumps(s) for s in condition["StringEquals"]["kms:ViaService"]}
        assert condition["StringEquals"]["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
        principals = condition["ArnLike"]["aws:PrincipalArn"]
        assert statement["Principal"] == {"AWS": "*"}  # narrowed by aws:PrincipalArn (the roles' paths)
        matched = [
            name
            for name, (actions, service) in wanted.items()
            if set(statement["Action"]) == actions
            and services
            == {
                json.dumps({"Fn::Sub": f"{service}.${{AWS::Region}}.amazonaws.com"}),
                json.dumps({"Fn::Sub": f"{service}.${{AWS::Region}}.${{AWS::URLSuffix}}"}),
            }
        ]
        assert len(matched) == 1, f"unexpected key policy statement {statement.get('Sid')}"
        (name,) = matched
        seen.add(name)
        assert principals == [role_path_arn(f) for f in sorted(users[name])], statement.get("Sid")
    assert seen == set(wanted)
    assert "AWS::Serverless::Function" not in json.dumps(statements)
    assert '"AWS": "*"' not in json.dumps([s for s in uses if "ArnLike" not in s.get("Condition", {})])


def test_the_landed_key_policy_would_fail() -> None:
    """Any principal of the account through DynamoDB/S3 (as landed) is not a list of function roles."""
    landed = copy.deepcopy(load())
    statement = landed["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"][1]
    statement["Condition"].pop("ArnLike", None)
    with pytest.raises((AssertionError, KeyError)):
        test_the_key_policy_names_the_function_roles_per_service(landed)
