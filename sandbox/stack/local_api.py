"""The local HTTP API: routes like the template's REST API to the real handlers, with the API key.

Requests become API Gateway REST proxy events (v1) and handler answers become HTTP responses, so
the handlers run exactly as behind API Gateway. Routes without `ApiKeyRequired` (the FaceID
callback) are open; every other route answers 403 `{"message": "Forbidden"}` without the key, as
API Gateway does.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.stack.runtime import Function
from sandbox.stack.template import Route

STAGE = "local"
TEXT_TYPES = ("application/json", "application/problem+json", "application/x-www-form-urlencoded", "text/")


class LocalApi:
    def __init__(
        self, routes: list[Route], functions: dict[str, Function], api_key: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.routes = [(r, _pattern(r.path)) for r in routes]
        self.functions = functions
        self.api_key = api_key
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
            "requestId": str(uuid.uuid4()),
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
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route, params, known = api.match(self.command, split.path)
        if route is None:
            self._send(
                403 if not known else 405,
                {"Content-Type": "application/json"},
                json.dumps({"message": "Missing Authentication Token" if not known else "Method Not Allowed"}).encode(),
            )
            return
        headers = {k: v for k, v in self.headers.items()}
        lower = {k.lower(): v for k, v in headers.items()}
        if route.api_key_required and lower.get("x-api-key") != api.api_key:
            self._send(403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
            return
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
        )
        try:
            answer = api.functions[route.function].invoke(event)
        except Exception:  # an unhandled error is a 502 from API Gateway, as in AWS
            self._send(502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}')
            return
        status = int(answer.get("statusCode", 200))
        out_headers = dict(answer.get("headers") or {})
        for key, values in (answer.get("multiValueHeaders") or {}).items():
            out_headers[key] = values[-1] if values else ""
        payload = answer.get("body") or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode("utf-8")
        self._send(status, out_headers, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:  # tell the client, or it may reuse a socket we are about to close
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle
