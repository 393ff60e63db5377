"""The local HTTP API: routes like the template's REST API to the real handlers, with the API key.

Requests become API Gateway REST proxy events (v1) and handler answers become HTTP responses, so
the handlers run exactly as behind API Gateway. What API Gateway answers itself, it answers with the
template's `GatewayResponses` (status, headers, body template with `$context.*` filled in):

- body over 10 MB (API Gateway's REST payload quota) → REQUEST_TOO_LARGE, before anything else; the
  body is drained in small pieces (or, past `DRAIN_LIMIT`, the connection is closed), never buffered;
- unknown resource, or unknown method of a known resource → MISSING_AUTHENTICATION_TOKEN (REST APIs
  answer both alike), before the key is looked at;
- missing or wrong `x-api-key` on a route with `ApiKeyRequired` → INVALID_API_KEY (the FaceID
  callback is open);
- event JSON over 6 MB (Lambda's synchronous request payload; a base64 body counts 4/3) → Lambda
  refuses the invocation and API Gateway answers 413: REQUEST_TOO_LARGE here too;
- the function raised, or answered something that is not a proxy response → 502 with DEFAULT_5XX
  ("Internal server error");
- unreadable framing (a malformed Content-Length or chunk) → 400 with DEFAULT_4XX, connection closed.

Every answer carries `x-amzn-RequestId`, the `$context.requestId` of gateway responses and the event.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.stack import template as tpl
from sandbox.stack.runtime import Function
from sandbox.stack.template import GatewayResponse, Route

STAGE = "local"
TEXT_TYPES = ("application/json", "application/problem+json", "application/x-www-form-urlencoded", "text/")
BODY_LIMIT = 10 * 1024 * 1024  # API Gateway REST: request payload quota (10 MB)
EVENT_LIMIT = 6 * 1024 * 1024  # Lambda: synchronous invocation request payload (6 MB of event JSON)
DRAIN_LIMIT = 64 * 1024 * 1024  # a larger declared body is not read at all: answer, then close
DRAIN_SECONDS = 10.0  # a client that declares a body and stops sending is not waited for longer

# API Gateway's default status and message of each response type the local API answers with.
DEFAULT_STATUS = {
    "INVALID_API_KEY": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "REQUEST_TOO_LARGE": 413,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
    "THROTTLED": 429,
    "QUOTA_EXCEEDED": 429,
}
DEFAULT_MESSAGE = {
    "INVALID_API_KEY": "Forbidden",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "INTEGRATION_TIMEOUT": "Endpoint request timed out",
    "THROTTLED": "Too Many Requests",
    "QUOTA_EXCEEDED": "Limit Exceeded",
}
# API Gateway's own template when a gateway response defines none.
DEFAULT_TEMPLATE = '{"message":$context.error.messageString}'
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{(context(?:\.\w+)+)\}|(context(?:\.\w+)+))")


class _Refused(Exception):
    """API Gateway answers the request itself (before or instead of the function)."""

    def __init__(self, kind: str, status: int | None = None, message: str | None = None, close: bool = False):
        super().__init__(kind)
        self.kind = kind
        self.status = status
        self.message = message
        self.close = close


def render_gateway_response(
    responses: dict[str, GatewayResponse],
    kind: str,
    *,
    status: int | None = None,
    message: str | None = None,
    request_id: str,
    context: dict[str, Any] | None = None,
    request_headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of gateway response `kind` as API Gateway renders it from the template.

    A type the template does not customize falls back to its DEFAULT_4XX / DEFAULT_5XX; without
    those either, it is API Gateway's built-in `{"message": ...}`. `status` is the status of the error
    answered (needed for DEFAULT_4XX / DEFAULT_5XX, which keep it unless they set a StatusCode).
    """
    status = status or DEFAULT_STATUS.get(kind) or 500
    message = message or DEFAULT_MESSAGE.get(kind) or ("Internal server error" if status >= 500 else "Bad Request")
    spec = responses.get(kind) or responses.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX")
    if spec is not None and spec.status:
        status = spec.status
    variables = {
        "context.requestId": request_id,
        "context.extendedRequestId": request_id,
        "context.error.responseType": kind,
        "context.error.message": message,
        "context.error.messageString": json.dumps(message),
        "context.error.validationErrorString": "",
        **{f"context.{k}": str(v) for k, v in (context or {}).items()},
    }

    def substitute(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        if found.group(1):  # ${context.x}: the braces delimit the name
            return variables.get(name, "")
        # $context.a.b followed by text: the longest known name wins (".x" after it stays text)
        parts = name.split(".")
        for end in range(len(parts), 1, -1):
            candidate = ".".join(parts[:end])
            if candidate in variables:
                rest = ".".join(parts[end:])
                return variables[candidate] + ("." + rest if rest else "")
        return ""

    templates = spec.templates if spec is not None else {}
    template = templates.get("application/json") or next(iter(templates.values()), DEFAULT_TEMPLATE)
    body = _CONTEXT_VARIABLE.sub(substitute, template).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    lower_request = {k.lower(): v for k, v in (request_headers or {}).items()}
    for name, expression in (spec.headers if spec is not None else {}).items():
        if len(expression) >= 2 and expression[0] == expression[-1] == "'":
            headers[name] = expression[1:-1]
        elif expression.startswith("method.request.header."):
            value = lower_request.get(expression.removeprefix("method.request.header.").lower())
            if value is not None:
                headers[name] = value
    return status, headers, body


class LocalApi:
    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, Function],
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        gateway_responses: dict[str, GatewayResponse] | None = None,
    ) -> None:
        self.routes = [(r, _pattern(r.path)) for r in routes]
        self.functions = functions
        self.api_key = api_key
        if gateway_responses is None:
            gateway_responses = tpl.gateway_responses(tpl.load_template())
        self.gateway_responses = gateway_responses
        api = self

        class Handler(_RequestHandler):
            owner = api

        self.server = _Server((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path parameters, path known under another method)."""
        known = False
        for route, pattern in self.routes:
            found = pattern.fullmatch(path)
            if found:
                known = True
                if route.method == method:
                    return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
        return None, {}, known


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of clients (API Gateway takes thousands) would
    # see connection resets before the accept loop catches up.
    request_queue_size = 512


def _event_size(event: dict[str, Any], body: bytes, headers: dict[str, str], target: str) -> int:
    """The bytes of the event JSON Lambda receives; computed exactly only when it could be near the limit
    (JSON escaping at most sextuples a character, so small requests are not serialized twice)."""
    rough = 6 * (len(body) * 4 // 3 + 2 * sum(len(k) + len(v) for k, v in headers.items()) + 3 * len(target))
    if rough + 16 * 1024 < EVENT_LIMIT:
        return rough
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _proxy_response(answer: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a Lambda proxy response; anything else raises (a 502, as in AWS)."""
    if not isinstance(answer, dict):
        raise TypeError("not a Lambda proxy response")
    status = int(answer.get("statusCode", 200))
    out_headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        out_headers[key] = str(values[-1]) if values else ""
    payload = answer.get("body") or ""
    if not isinstance(payload, str):
        raise TypeError("body is not a string")
    data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode("utf-8")
    return status, out_headers, data


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def build_event(
    route: Route,
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    path_params: dict[str, str],
    host: str,
    source_ip: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event."""
    content_type = headers.get("content-type", headers.get("Content-Type", ""))
    is_text = not body or any(content_type.startswith(t) for t in TEXT_TYPES)
    multi_query = parse_qs(query, keep_blank_values=True) if query else {}
    return {
        "resource": route.path,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/{STAGE}{raw_path}",
            "stage": STAGE,
            "requestId": request_id or str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "domainName": host,
            "apiId": "local",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "apiKey": headers.get("x-api-key"),
                "userAgent": headers.get("user-agent"),
            },
        },
        "body": (body.decode("utf-8", "replace") if is_text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and not is_text,
    }


class _RequestHandler(BaseHTTPRequestHandler):
    owner: LocalApi
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms on every keep-alive request). TCP_NODELAY, as API Gateway's front ends behave.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # access logs would carry query strings
        return

    def _handle(self) -> None:
        api = self.owner
        self._request_id = str(uuid.uuid4())
        split = urlsplit(self.path)
        route = None
        try:
            body = self._read_body()
            route, params, _known = api.match(self.command, split.path)
            if route is None:
                raise _Refused("MISSING_AUTHENTICATION_TOKEN")
            headers = {k: v for k, v in self.headers.items()}
            lower = {k.lower(): v for k, v in headers.items()}
            if route.api_key_required and lower.get("x-api-key") != api.api_key:
                raise _Refused("INVALID_API_KEY")
            event = build_event(
                route,
                self.command,
                split.path,
                split.query,
                headers,
                body,
                params,
                self.headers.get("Host", "127.0.0.1"),
                self.client_address[0],
                self._request_id,
            )
            if _event_size(event, body, headers, self.path) > EVENT_LIMIT:
                raise _Refused("REQUEST_TOO_LARGE")  # Lambda: RequestEntityTooLargeException; API Gateway: 413
            try:
                answer = api.functions[route.function].invoke(event)
                status, out_headers, data = _proxy_response(answer)
            except Exception:  # an unhandled error (or no proxy response) is a 502 from API Gateway
                raise _Refused("DEFAULT_5XX", 502, "Internal server error") from None
        except _Refused as refused:
            if refused.close:
                self.close_connection = True
            self._send_gateway_response(refused, route, split.path)
            if self.close_connection:
                self._linger()
            return
        self._send(status, out_headers, data)

    def _read_body(self) -> bytes:
        """The request body, at most BODY_LIMIT bytes; larger ones are drained or the connection closed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not raw.isdigit():
            raise _Refused("DEFAULT_4XX", 400, "Bad Request: malformed Content-Length", close=True)
        length = int(raw)
        if length > BODY_LIMIT:
            self._discard(length)
            raise _Refused("REQUEST_TOO_LARGE")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Refused("DEFAULT_4XX", 400, "Bad Request: malformed chunk", close=True) from None
            if chunk == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(parts)
            size += chunk
            if size > BODY_LIMIT:  # the rest of the stream is not read: answer and close
                raise _Refused("REQUEST_TOO_LARGE", close=True)
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(1024)  # CRLF after the chunk

    def _discard(self, length: int) -> None:
        """Read and drop a too-large body in small pieces so the answer reaches the client (a close with
        unread data would reset the connection); past DRAIN_LIMIT or a stalled client, close instead."""
        self.close_connection = True
        if length > DRAIN_LIMIT:
            return
        previous = self.connection.gettimeout()
        self.connection.settimeout(DRAIN_SECONDS)
        try:
            while length > 0:
                piece = self.rfile.read(min(length, 64 * 1024))
                if not piece:
                    return
                length -= len(piece)
        except OSError:
            return
        finally:
            self.connection.settimeout(previous)
        self.close_connection = False

    def _linger(self) -> None:
        """Closing with unread request data would reset the connection and could destroy the answer in
        the client's buffers: end our side, then drop what still arrives for a moment (a lingering close)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + DRAIN_SECONDS / 5
            while time.monotonic() < deadline and self.connection.recv(64 * 1024):
                pass
        except OSError:
            pass

    def _send_gateway_response(self, refused: _Refused, route: Route | None, path: str) -> None:
        context = {
            "stage": STAGE,
            "apiId": "local",
            "httpMethod": self.command,
            "path": f"/{STAGE}{path}",
            "resourcePath": route.path if route else path,
            "domainName": self.headers.get("Host", "127.0.0.1"),
            "identity.sourceIp": self.client_address[0],
        }
        status, headers, data = render_gateway_response(
            self.owner.gateway_responses,
            refused.kind,
            status=refused.status,
            message=refused.message,
            request_id=self._request_id,
            context=context,
            request_headers=dict(self.headers.items()),
        )
        self._send(status, headers, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("x-amzn-RequestId", self._request_id)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:  # tell the client, or it may reuse a socket we are about to close
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle
