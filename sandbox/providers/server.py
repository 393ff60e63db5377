"""HTTP front of the sandbox: the providers' routes, the FaceID pages, and the `/_sandbox/` control API.

`ProviderSandbox` runs a keep-alive (HTTP/1.1) threading server on a background thread and counts the TCP
connections it accepts, so a client's connection reuse can be measured.
"""

from __future__ import annotations

import contextlib
import html
import json
import socket
import struct
import sys
import threading
import traceback
from dataclasses import asdict, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.providers import faces
from sandbox.providers import identities as registry
from sandbox.providers.config import SandboxConfig
from sandbox.providers.engine import Engine, FaultRaised, Request, dumps
from sandbox.providers.faceid import message_page, verify_page
from sandbox.providers.forms import FormError, parse_form
from sandbox.providers.state import ANSWER_FAULT, API_BY_PATH, API_PATHS, FAULT_KINDS, Fault

MAX_BODY = 20 * 1024 * 1024

_ERROR_PAGE = (
    "<html>\r\n<head><title>{status} {text}</title></head>\r\n<body>\r\n<center><h1>{status} {text}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: ProviderSandbox) -> None:
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.accepted = 0
        self.open_sockets: set[socket.socket] = set()
        self.requests: dict[str, int] = {}
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Responses go out as two writes (headers, body): without TCP_NODELAY, Nagle plus the client's
        # delayed ACK stall every keep-alive response by ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.accepted += 1
            self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.sandbox.engine.stopping.is_set():
            exc = sys.exc_info()[1]
            if not isinstance(exc, (ConnectionError, TimeoutError)):
                super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this
    server: _Server

    # ------------------------------------------------------------ plumbing

    @property
    def sandbox(self) -> ProviderSandbox:
        return self.server.sandbox

    def log_message(self, format: str, *args: Any) -> None:
        if self.sandbox.verbose:
            super().log_message(format, *args)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:  # tell the client, or it may reuse a socket we are about to close
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(
            status, json.dumps(obj, ensure_ascii=False, indent=1).encode("utf-8"), "application/json;charset=utf-8"
        )

    def _html(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode("utf-8"), "text/html;charset=utf-8", headers)

    def _error_page(self, status: int) -> None:
        text = {
            404: "Not Found",
            405: "Not Allowed",
            413: "Request Entity Too Large",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(status, "Error")
        self._html(status, _ERROR_PAGE.format(status=status, text=text))

    def _count(self, route: str) -> None:
        with self.server.lock:
            self.server.requests[route] = self.server.requests.get(route, 0) + 1

    # ------------------------------------------------------------ routing

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        try:
            body = self._body()  # always drained, so a keep-alive connection stays in step
        except ValueError:
            self.close_connection = True
            self._error_page(413)
            return
        try:
            if path in API_BY_PATH:
                self._count(path)
                if self.command != "POST":
                    self._html(405, _ERROR_PAGE.format(status=405, text="Not Allowed"), {"Allow": "POST"})
                else:
                    self._api(API_BY_PATH[path], body, url.query)
            elif path.startswith("/faceid/h5/"):
                self._count("/faceid/h5")
                self._verify_page(path.removeprefix("/faceid/h5/"), body)
            elif path.startswith("/faceid/img/"):
                self._count("/faceid/img")
                self._image(path.removeprefix("/faceid/img/").removesuffix(".jpeg"))
            elif path.startswith("/_sandbox/") or path in ("/_sandbox", "/"):
                self._count("/_sandbox")
                self._control(path, body, url.query)
            else:
                self._count("other")
                self._error_page(404)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(500, {"error": "sandbox internal error (see its log)"})

    # ------------------------------------------------------------ provider APIs

    def _api(self, api: str, body: bytes, query: str) -> None:
        engine = self.sandbox.engine
        try:
            form_fields, files = parse_form(self.headers.get("Content-Type", ""), body, query)
            form_error = None
        except FormError as exc:
            form_fields, files, form_error = {}, {}, exc.kind
        key = form_fields.get("app_key" if api == "apetime" else "key", "")
        fault = engine.faults.take(api, form_fields.get("jhOrderId") or form_fields.get("orderId"))
        if fault and fault.fault == "latency":
            engine.wait((fault.ms or self.sandbox.config.latency_fault_ms) / 1000)
            fault = None
        if fault is not None:
            self._deliver(api, key, fault)
            return
        try:
            answer = engine.call(Request(api, form_fields, files, form_error))
        except FaultRaised as raised:
            self._deliver(api, key, raised.fault)
            return
        engine.record(api, key, answer)
        self._send(200, dumps(answer), "application/json;charset=utf-8")

    def _deliver(self, api: str, key: str, fault: Fault) -> None:
        engine = self.sandbox.engine
        if fault.fault == ANSWER_FAULT:  # any answer, verbatim (a body no parser expects)
            text = fault.body if isinstance(fault.body, str) else json.dumps(fault.body, ensure_ascii=False)
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            engine.record(api, key, parsed if isinstance(parsed, dict) else None, fault)
            self._send(200, text.encode("utf-8"), "application/json;charset=utf-8")
            return
        body = engine.fault_body(api, fault)
        engine.record(api, key, body, fault)
        if body is not None:
            self._send(200, dumps(body), "application/json;charset=utf-8")
        elif fault.fault == "read_timeout":
            engine.wait(fault.seconds if fault.seconds is not None else self.sandbox.config.read_timeout_fault_s)
            self._drop(reset=False)
        elif fault.fault == "reset":
            self._drop(reset=True)
        elif fault.fault in ("http_500", "http_502"):
            self._error_page(int(fault.fault[-3:]))
        else:  # non_json: a proxy's or a busy page instead of JSON
            self._html(
                200, "<html><head><title>系统繁忙</title></head><body><h1>系统繁忙，请稍后再试</h1></body></html>"
            )

    def _drop(self, *, reset: bool) -> None:
        """Close the connection without an answer; with reset, abortively (SO_LINGER 0 sends a TCP RST)."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass

    # ------------------------------------------------------------ FaceID pages

    def _verify_page(self, token: str, body: bytes) -> None:
        engine = self.sandbox.engine
        session = engine.sessions.by_token(token.strip("/"))
        if session is None:
            self._html(404, message_page("链接无效", "认证链接不存在，请重新发起认证。"))
            return
        now = engine.now()
        with engine.sessions.lock:
            state = session.state
        if state == "completed":
            self._html(410, message_page("链接已失效", "该认证已提交过，认证链接只能使用一次。"))
            return
        if session.expired(now):
            self._html(410, message_page("链接已过期", "认证链接已超过 30 分钟有效期，请重新发起认证。"))
            return
        if self.command == "GET" or self.command == "HEAD":
            with engine.sessions.lock:
                if session.state in ("created", "abandoned"):
                    session.state = "opened"
            self._html(
                200,
                verify_page(session, engine.default_camera(session), f"/faceid/h5/{token}", session.expires_at - now),
            )
            return
        if self.command != "POST":
            self._error_page(405)
            return
        try:
            form, files = parse_form(self.headers.get("Content-Type", ""), body)
        except FormError:
            form, files = {}, {}
        action = form.get("action", "")
        if action == "abandon":
            with engine.sessions.lock:
                if session.state != "completed":
                    session.state = "abandoned"
            self._html(200, message_page("已放弃认证", "您已放弃本次认证，未提交任何结果。"))
            return
        if action not in ("pass", "fail"):
            self._html(400, message_page("请求无效", "请选择通过、不通过或放弃。"))
            return
        with engine.sessions.lock:  # one submission only, even when two arrive together
            if session.state == "completed":
                self._html(410, message_page("链接已失效", "该认证已提交过，认证链接只能使用一次。"))
                return
            session.state = "completed"
        location = engine.complete(
            session, action, form.get("live_code", ""), form.get("camera", ""), files.get("photo")
        )
        self._html(302, message_page("认证完成", "正在返回业务页面。", location), {"Location": location})

    def _image(self, nonce: str) -> None:
        got = self.sandbox.engine.faceid_image(nonce)
        if got is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        elif got == "expired":
            self._send(
                403,
                b"<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                "application/xml",
            )
        else:
            assert isinstance(got, bytes)
            self._send(200, got, "image/jpeg")

    # ------------------------------------------------------------ control API

    def _control(self, path: str, body: bytes, query: str) -> None:
        sb, method = self.sandbox, self.command
        q = {k: v[0] for k, v in parse_qs(query).items()}
        route = path.removeprefix("/_sandbox").strip("/")
        if route == "" and method in ("GET", "HEAD"):
            self._html(200, _index_page(sb))
        elif route == "health":
            self._json(200, {"ok": True, "url": sb.url})
        elif route == "ledger" and method == "GET":
            self._json(200, sb.ledger())
        elif route == "reset" and method == "POST":
            sb.reset()
            self._json(200, {"reset": True})
        elif route == "stats":
            self._json(200, sb.stats())
        elif route == "faults":
            self._faults(method, body)
        elif route == "notifications":
            self._json(200, sb.notifications())
        elif route == "faceid/sessions":
            self._json(200, sb.sessions())
        elif route == "clock":
            if method == "POST":
                try:
                    sb.advance_clock(float(_json_body(body).get("advance_s", 0)))
                except (ValueError, TypeError) as exc:
                    self._json(400, {"error": str(exc)})
                    return
            self._json(200, {"now": sb.engine.now(), "offset_s": sb.engine.clock_offset})
        elif route == "config":
            self._json(200, {f.name: getattr(sb.config, f.name) for f in fields(sb.config) if f.name != "clock"})
        elif route == "identities":
            self._json(200, registry.registry_summary())
        elif route.startswith("identities/"):
            self._identity(route.removeprefix("identities/"), q)
        elif route == "images/other_person.jpg":
            self._send(200, registry.other_person_jpeg(int(q.get("seed", "0"))), "image/jpeg")
        elif route == "images/no_face.jpg":
            kind = q.get("kind", "landscape")
            if kind not in ("landscape", "gradient", "noise", "text"):
                self._json(404, {"error": "kind: landscape, gradient, noise or text"})
            else:
                self._send(200, registry.no_face_jpeg(kind), "image/jpeg")
        else:
            self._json(404, {"error": f"no control endpoint {method} {path}"})

    def _faults(self, method: str, body: bytes) -> None:
        sb = self.sandbox
        if method == "GET":
            self._json(200, sb.faults())
        elif method == "DELETE":
            sb.clear_faults()
            self._json(200, [])
        elif method == "POST":
            try:
                spec = _json_body(body)
                fault = sb.set_fault(
                    str(spec["fault"]),
                    api=str(spec.get("api", "*")),
                    count=None if spec.get("count", 1) is None else int(spec.get("count", 1)),
                    ms=None if spec.get("ms") is None else int(spec["ms"]),
                    seconds=None if spec.get("seconds") is None else float(spec["seconds"]),
                    code=spec.get("code"),
                    body=spec.get("body"),
                    order=None if spec.get("order") is None else str(spec["order"]),
                )
            except (KeyError, ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc), "faults": list(FAULT_KINDS), "apis": list(API_PATHS)})
                return
            self._json(201, fault)
        else:
            self._error_page(405)

    def _identity(self, rest: str, q: dict[str, str]) -> None:
        scenario, _, image = rest.partition("/")
        try:
            ident = registry.identity(scenario)
        except KeyError as exc:
            self._json(404, {"error": str(exc.args[0])})
            return
        if not image:
            self._json(200, ident.as_dict())
            return
        data: bytes | None
        if image == "selfie.jpg":
            data = registry.selfie_jpeg(ident, int(q.get("variant", "0")))
        elif image == "scenario_selfie.jpg":
            data = registry.scenario_selfie_jpeg(ident)
        elif image == "reference.jpg":
            data = registry.reference_jpeg(ident)
        elif image == "lookalike.jpg":
            data = registry.lookalike_jpeg(ident, float(q.get("target", "50")))
        elif image == "small.jpg":
            data = registry.small_face_jpeg(ident)
        else:
            data = None
        if data is None:
            self._json(404, {"error": f"no image {image!r} for {scenario}"})
        else:
            self._send(200, data, "image/jpeg")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    return obj


def _index_page(sb: ProviderSandbox) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(i.scenario)}</td><td>{html.escape(i.name)}</td><td>{i.id_number}</td>"
        f"<td>{i.mobile}</td><td>{html.escape(i.summary)}</td></tr>"
        for i in registry.IDENTITIES
    )
    apis = "".join(f"<li>POST {p}</li>" for p in API_PATHS.values())
    return (
        "<!doctype html><meta charset=utf-8><title>provider sandbox</title>"
        "<style>body{font-family:sans-serif;margin:2rem}td{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
        f"<h1>Provider sandbox</h1><p>{html.escape(sb.url)}</p><ul>{apis}</ul>"
        "<p>Control: /_sandbox/ledger, /_sandbox/stats, /_sandbox/faults, /_sandbox/identities, /_sandbox/reset, "
        "/_sandbox/notifications, /_sandbox/faceid/sessions, /_sandbox/clock, /_sandbox/config</p>"
        f"<table><tr><th>scenario</th><th>name</th><th>id_number</th><th>mobile</th><th>what</th></tr>{rows}</table>"
    )


class ProviderSandbox:
    """The four provider APIs on a local port.

    with ProviderSandbox() as sb:           # ephemeral loopback port, background thread
        requests.post(sb.url + "/verifyface/verify", data={...})
        sb.ledger()["charged"]              # {"verifyface": {"sandbox-juhe-verifyface-key": 1}}
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, config: SandboxConfig | None = None, *, verbose: bool = False
    ) -> None:
        self.config = config or SandboxConfig()
        self.verbose = verbose
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.engine = Engine(self.config, lambda: self.config.public_url or self.url)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ProviderSandbox:
        if self._server is not None:
            return self
        self.engine.stopping.clear()
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="provider-sandbox", daemon=True
        )
        self._thread.start()
        threading.Thread(target=faces.mean_face, name="sandbox-warmup", daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.engine.stopping.set()  # wakes stalled faults and notify retries
        server.shutdown()
        with server.lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # idle keep-alive connections would otherwise wait for their timeout
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProviderSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running (call start())")
        host, port = self._server.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("localhost" if host == "::" else str(host))
        return f"http://{shown}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running (call start())")
        return int(self._server.server_address[1])

    # ------------------------------------------------------------ inspection and control

    def ledger(self) -> dict[str, Any]:
        """{"charged": {api: {key: n}}, "calls": {...}, "total_charged", "total_calls", "entries": [...]}."""
        return self.engine.ledger.snapshot()

    def charged(self, api: str | None = None, key: str | None = None) -> int:
        return self.engine.ledger.charged(api, key)

    def calls(self, api: str | None = None, key: str | None = None) -> int:
        return self.engine.ledger.calls(api, key)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (or the last reset)."""
        return self._server.accepted if self._server else 0

    def stats(self) -> dict[str, Any]:
        server = self._server
        if server is None:
            return {"connections_accepted": 0, "connections_open": 0, "requests": {}, "requests_total": 0}
        with server.lock:
            return {
                "connections_accepted": server.accepted,
                "connections_open": len(server.open_sockets),
                "requests": dict(server.requests),
                "requests_total": sum(server.requests.values()),
            }

    def reset(self) -> None:
        """Forget calls, charges, faults, FaceID sessions, notifications, counters and clock offset."""
        self.engine.ledger.reset()
        self.engine.faults.clear()
        self.engine.sessions.clear()
        self.engine.notifications.clear()
        self.engine.clock_offset = 0.0
        if self._server is not None:
            with self._server.lock:
                self._server.accepted = 0
                self._server.requests.clear()

    def set_fault(
        self,
        fault: str,
        api: str = "*",
        count: int | None = 1,
        *,
        ms: int | None = None,
        seconds: float | None = None,
        code: str | int | None = None,
        body: Any = None,
        order: str | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` calls to `api` fail with `fault` (count None: until cleared); with
        `order`, only calls for that jhOrderId / orderId; "answer" answers `body` verbatim."""
        return self.engine.faults.add(
            fault, api, count, ms=ms, seconds=seconds, code=code, body=body, order=order
        ).as_dict()

    def clear_faults(self) -> None:
        self.engine.faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        return self.engine.faults.list()

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward (FaceID expiry, img URLs, Apetime's timestamp window)."""
        self.engine.clock_offset += seconds

    def notifications(self) -> list[dict[str, Any]]:
        """Every notify POST attempt: jh_order_id, url, attempt, status or error, at."""
        return list(self.engine.notifications)

    def sessions(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self.engine.sessions.all()]

    def session(self, jh_order_id: str) -> dict[str, Any] | None:
        s = self.engine.sessions.by_order(jh_order_id)
        return None if s is None else {**asdict(s), "image": bool(s.image)}
