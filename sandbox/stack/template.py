"""Reading template.yaml: CloudFormation tags, intrinsic functions, routes and function environments.

The local stack and the tests build everything from the template itself, so they cannot drift from
what is deployed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml as plain data, read by cfn-lint's CloudFormation decoder (short-form tags such as
    `!Sub` become `{"Fn::Sub": ...}`); a template cfn-lint cannot read is an error here too."""
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    if problems or template is None:
        raise ValueError(f"{path.name} cannot be read: {problems}")
    return json.loads(json.dumps(template))  # cfn-lint's node classes → plain dicts and lists


@dataclass
class Context:
    """What intrinsic functions resolve against: parameters, pseudo parameters, physical resources."""

    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "123456789012"
    stack_name: str = "idv-local"
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    arns: dict[str, str] = field(default_factory=dict)  # logical id -> Arn

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }

    def parameter(self, name: str) -> Any:
        spec = self.template.get("Parameters", {}).get(name, {})
        value = self.parameters.get(name, spec.get("Default"))
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            return [v.strip() for v in value.split(",")]
        return value

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        if name in self.physical:
            return self.physical[name]
        raise KeyError(f"unresolved Ref {name}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                if attribute == "Arn":
                    return self.arns[logical]
                if f"{logical}.{attribute}" in self.arns:  # e.g. a table's StreamArn
                    return self.arns[f"{logical}.{attribute}"]
                return self.physical[logical]
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub(m.group(1), variables)), text)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(i) for i in self.resolve(items))
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, variables: dict[str, Any]) -> Any:
        if name in variables:
            return variables[name]
        if "." in name:
            logical, attribute = name.split(".", 1)
            return self.resolve({"Fn::GetAtt": [logical, attribute]})
        return self.ref(name)


@dataclass(frozen=True)
class Route:
    function: str  # logical id
    code_dir: str  # functions/<dir>
    method: str
    path: str  # /v1/verifications/{verification_id}
    api_key_required: bool


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == "AWS::Serverless::Function"}


def routes(template: dict[str, Any]) -> list[Route]:
    """Every API event of every function, with whether the API key is required."""
    api_auth = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Api":
            api_auth[logical] = resource.get("Properties", {}).get("Auth", {}).get("ApiKeyRequired", False)
    found = []
    for logical, resource in functions(template).items():
        props = resource.get("Properties", {})
        for event in props.get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            ep = event["Properties"]
            rest_api = ep.get("RestApiId", {}).get("Ref") if isinstance(ep.get("RestApiId"), dict) else None
            required = ep.get("Auth", {}).get("ApiKeyRequired", api_auth.get(rest_api, False))
            found.append(Route(logical, props["CodeUri"].rstrip("/"), ep["Method"].upper(), ep["Path"], bool(required)))
    return found


def event_sources(template: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(function logical id, event properties) of every event of the given type (SQS, Schedule, ...)."""
    found = []
    for logical, resource in functions(template).items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == kind:
                found.append((logical, event.get("Properties", {})))
    return found


def function_environment(template: dict[str, Any], logical: str, ctx: Context) -> dict[str, str]:
    """Globals + the function's own environment variables, resolved."""
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = functions(template)[logical].get("Properties", {}).get("Environment", {}).get("Variables", {})
    variables.update(own)
    return {k: str(ctx.resolve(v)) for k, v in variables.items()}


@dataclass(frozen=True)
class GatewayResponse:
    """One entry of an `AWS::Serverless::Api`'s `GatewayResponses` (API Gateway's own answers)."""

    response_type: str  # INVALID_API_KEY, DEFAULT_5XX, ...
    status: int | None  # None: the status of the error it answers (DEFAULT_4XX/5XX without StatusCode)
    headers: dict[str, str]  # header name -> mapping expression ("'static'", "method.request.header.x")
    templates: dict[str, str]  # content type -> body template ($context.* variables)


def gateway_responses(template: dict[str, Any], api: str | None = None) -> dict[str, GatewayResponse]:
    """The `GatewayResponses` of the REST API `api` (default: the template's first AWS::Serverless::Api)."""
    apis = {k: v for k, v in template["Resources"].items() if v.get("Type") == "AWS::Serverless::Api"}
    if not apis:
        return {}
    resource = apis[api] if api else next(iter(apis.values()))
    found = {}
    for kind, spec in (resource.get("Properties", {}).get("GatewayResponses") or {}).items():
        spec = spec or {}
        status = spec.get("StatusCode")
        headers = (spec.get("ResponseParameters") or {}).get("Headers") or {}
        found[kind] = GatewayResponse(
            kind,
            int(status) if status not in (None, "") else None,
            {str(name): str(value) for name, value in headers.items() if not isinstance(value, dict)},
            {str(ct): str(body) for ct, body in (spec.get("ResponseTemplates") or {}).items()},
        )
    return found
