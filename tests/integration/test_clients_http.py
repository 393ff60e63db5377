"""The provider clients over real HTTP against a small local server (stdlib, HTTP/1.1 keep-alive).

Checks what goes over the wire (exact form fields, AES fields, sign, multipart), the retry policy
(what is retried and what never is), timeouts, resets, bad answers and connection reuse.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from idv import errors, http
from idv.providers.apetime import ApetimeClient
from idv.providers.juhe import FaceIdSession, JuheClient

# --------------------------------------------------------------------------------------------------
# The local server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def form(self) -> dict[str, str]:
        """The urlencoded form, each field exactly once."""
        assert self.content_type == "application/x-www-form-urlencoded"
        parsed = parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        assert all(len(v) == 1 for v in parsed.values()), "a field was sent twice"
        return {k: v[0] for k, v in parsed.items()}

    def multipart(self) -> dict[str, tuple[str | None, str | None, bytes]]:
        """name -> (filename, content type, bytes) of a multipart/form-data body."""
        assert self.content_type.startswith("multipart/form-data; boundary=")
        raw = f"Content-Type: {self.content_type}\r\n\r\n".encode() + self.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        assert message.is_multipart()
        parts: dict[str, tuple[str | None, str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            assert name not in parts, "a field was sent twice"
            filename = part.get_filename()
            ctype = part.get_content_type() if part.get("content-type") else None
            parts[name] = (filename, ctype, part.get_payload(decode=True))
        return parts


@dataclass
class Script:
    """What the server answers, per path, in order; `default` once the queue for a path is empty."""

    queues: dict[str, deque[tuple[Any, ...]]] = field(default_factory=dict)
    default: tuple[Any, ...] = ("json", {"error_code": 0})

    def add(self, path: str, *actions: tuple[Any, ...]) -> None:
        self.queues.setdefault(path, deque()).extend(actions)

    def next(self, path: str) -> tuple[Any, ...]:
        queue = self.queues.get(path)
        return queue.popleft() if queue else self.default


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.received: list[Received] = []
        self.script = Script()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: ProviderServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        action = self.server.script.next(self.path)
        kind = action[0]
        if kind == "json":
            self._send(200, json.dumps(action[1], ensure_ascii=False).encode(), "application/json;charset=utf-8")
        elif kind == "raw":
            _, status, payload, ctype = action
            self._send(status, payload, ctype)
        elif kind == "sleep":
            time.sleep(action[1])
            with contextlib.suppress(OSError):  # the client has gone (that is the point)
                self._send(200, json.dumps(action[2]).encode(), "application/json")
        elif kind == "reset":
            # abortive close after the whole request was read: the client sees a reset, no answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:  # pragma: no cover
            raise AssertionError(kind)

    def _send(self, status: int, payload: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    srv = ProviderServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@dataclass
class Sleeps:
    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> http.RetryPolicy:
    return http.RetryPolicy(attempts=3, sleep=sleeps, rand=lambda: 0.5)


@pytest.fixture
def juhe(server: ProviderServer, retry: http.RetryPolicy) -> JuheClient:
    return JuheClient(base_url=server.url, retry=retry)


@pytest.fixture
def ape(server: ProviderServer, retry: http.RetryPolicy) -> ApetimeClient:
    return ApetimeClient(base_url=server.url, retry=retry, clock=lambda: 1732269600123)


# --------------------------------------------------------------------------------------------------
# Test data and independent helpers

OPENID = "JH0123456789abcdef0123456789abcd"
NAME = "张三丰"
ID_NUMBER = "11010519491231002X"
MOBILE = "13800138000"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 20 + b"\xff\xd9"
IMAGE_B64 = base64.b64encode(JPEG).decode()  # contains '+' and '/': must survive urlencoding
assert "+" in IMAGE_B64 and "/" in IMAGE_B64

VERIFY_OK = {"reason": "成功", "result": {"res": 1, "score": "96", "orderid": "JH1"}, "error_code": 0}
FOUR_OK = {
    "reason": "成功",
    "result": {"orderid": "JH2", "res": 100, "resmsg": "ok", "score": 982.7, "type": "联通"},
    "error_code": 0,
}
QUERY_OK = {
    "reason": "SUCCESS",
    "result": {"jh_order_id": "JH3", "verify_url": "http://m.alyms.cn/F4"},
    "error_code": 0,
}
SEARCH_OK = {
    "reason": "SUCCESS",
    "result": {
        "passed": "T",
        "jh_order_id": "JH3",
        "detail": {
            "live_passed": "T",
            "live_code": "200",
            "live_score": "91.11730",
            "certify_passed": "T",
            "certify_code": "200",
            "certify_score": "87",
            "img": "https://oss.example/verify/face.jpeg?sig=abc",
        },
    },
    "error_code": 0,
}
APE_OK = {
    "trace_id": "TID1",
    "code": "0000",
    "msg": "调用成功",
    "data": {"result": 1, "id_name": 1, "photo": 1, "score": 88},
    "charge": 1,
}


def aes_decrypt(ciphertext: str, openid: str) -> str:
    key = hashlib.md5(openid.encode()).hexdigest()[:16].encode()
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305 - the provider's protocol
    padded = dec.update(base64.b64decode(ciphertext, validate=True)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------------------
# Exactly the documented fields


def test_verifyface_plain_fields(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verify", ("json", VERIFY_OK))
    result = juhe.verifyface(key="kv", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert result.decision == "pass" and result.charged is True
    (req,) = server.received
    assert req.path == "/verifyface/verify"
    assert req.form() == {"key": "kv", "idcard": ID_NUMBER, "realname": NAME, "image": IMAGE_B64}


def test_verifyface_aes_fields_decrypt_to_originals(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verifyEncry", ("json", VERIFY_OK))
    juhe.verifyface(
        key="kv", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60, encrypted=True, openid=OPENID
    )
    (req,) = server.received
    assert req.path == "/verifyface/verifyEncry"
    form = req.form()
    assert set(form) == {"key", "idcard", "realname", "image"}
    assert form["key"] == "kv"
    assert NAME not in req.body.decode() and ID_NUMBER not in req.body.decode()
    assert aes_decrypt(form["idcard"], OPENID) == ID_NUMBER
    assert aes_decrypt(form["realname"], OPENID) == NAME
    assert aes_decrypt(form["image"], OPENID) == IMAGE_B64


def test_four_factor_fields(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface_mobile/query", ("json", FOUR_OK))
    result = juhe.four_factor(key="k4", name=NAME, id_number=ID_NUMBER, mobile=MOBILE, image_b64=IMAGE_B64)
    assert result.decision == "pass" and result.mobile is not None and result.mobile.carrier == "联通"
    (req,) = server.received
    assert req.path == "/verifyface_mobile/query"
    assert req.form() == {"key": "k4", "realname": NAME, "idcard": ID_NUMBER, "mobile": MOBILE, "image": IMAGE_B64}


def test_faceid_query_fields(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/faceid/query", ("json", QUERY_OK), ("json", QUERY_OK))
    session = juhe.faceid_start(
        key="kf",
        name=NAME,
        id_number=ID_NUMBER,
        order_id="v01JD3K4T9Q2V8X6Z0ABCDEFGH",
        return_url="https://gw.example/v1/faceid/callback/v01JD3K4T9Q2V8X6Z0ABCDEFGH?x=1&y=2",
        notify_url="https://gw.example/v1/faceid/callback/v01JD3K4T9Q2V8X6Z0ABCDEFGH",
    )
    assert session == FaceIdSession(jh_order_id="JH3", verify_url="http://m.alyms.cn/F4")
    juhe.faceid_start(
        key="kf",
        name=NAME,
        id_number=ID_NUMBER,
        order_id="abcd1234",
        return_url="https://r",
        model=5,
        device_type="WEB",
    )
    first, second = server.requests_to("/faceid/query")
    assert first.form() == {
        "key": "kf",
        "certName": NAME,
        "certNo": ID_NUMBER,
        "orderId": "v01JD3K4T9Q2V8X6Z0ABCDEFGH",
        "model": "1",
        "returnUrl": "https://gw.example/v1/faceid/callback/v01JD3K4T9Q2V8X6Z0ABCDEFGH?x=1&y=2",
        "notifyUrl": "https://gw.example/v1/faceid/callback/v01JD3K4T9Q2V8X6Z0ABCDEFGH",
        "deviceType": "H5",
    }
    assert second.form() == {
        "key": "kf",
        "certName": NAME,
        "certNo": ID_NUMBER,
        "orderId": "abcd1234",
        "model": "5",
        "returnUrl": "https://r",
        "deviceType": "WEB",
    }


def test_faceid_search_fields_and_img_dropped(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/faceid/search", ("json", SEARCH_OK), ("json", {"error_code": 279306, "reason": "未完成"}))
    result = juhe.faceid_result(key="kf", jh_order_id="JH3", threshold=60)
    assert result is not None and result.decision == "pass" and result.provider_order_id == "JH3"
    assert "oss.example" not in repr(result)
    assert juhe.faceid_result(key="kf", jh_order_id="JH3", threshold=60) is None  # pending: a body, not an error
    assert [r.form() for r in server.received] == [{"key": "kf", "jhOrderId": "JH3"}] * 2


def test_apetime_base64_fields_and_sign(server: ProviderServer, ape: ApetimeClient) -> None:
    server.script.add("/api/identity/portrait_verification", ("json", APE_OK))
    result = ape.portrait(
        app_key="ak", app_secret="s3cr3t", request_id="v01ABCDEFGH", name=NAME, id_number=ID_NUMBER,
        image_b64=IMAGE_B64, threshold=60,
    )  # fmt: skip
    assert (result.decision, result.charged, result.provider_order_id) == ("pass", True, "TID1")
    (req,) = server.received
    form = req.form()
    assert set(form) == {"app_key", "request_id", "id_number", "name", "timestamp", "selfie_base64", "sign"}
    assert form["timestamp"] == "1732269600123"
    assert (form["app_key"], form["request_id"], form["name"], form["id_number"]) == (
        "ak",
        "v01ABCDEFGH",
        NAME,
        ID_NUMBER,
    )
    # URL-safe, as the document's only working example sends it (docs/provider-decisions.md)
    assert form["selfie_base64"] == IMAGE_B64.replace("+", "-").replace("/", "_")
    signed = form["app_key"] + form["id_number"] + form["name"] + form["request_id"] + form["timestamp"] + "s3cr3t"
    assert form["sign"] == hashlib.md5(signed.encode("utf-8")).hexdigest()


def test_apetime_multipart_upload(server: ProviderServer, ape: ApetimeClient) -> None:
    server.script.add("/api/identity/portrait_verification", ("json", APE_OK))
    result = ape.portrait(
        app_key="ak", app_secret="s3cr3t", request_id="v01ABCDEFGH", name=NAME, id_number=ID_NUMBER,
        image_b64=IMAGE_B64, threshold=60, multipart=True,
    )  # fmt: skip
    assert result.decision == "pass"
    (req,) = server.received
    parts = req.multipart()
    assert set(parts) == {"app_key", "request_id", "id_number", "name", "timestamp", "sign", "selfie_file"}
    assert parts["selfie_file"] == ("selfie.jpg", "image/jpeg", JPEG)
    text = {k: v[2].decode("utf-8") for k, v in parts.items() if k != "selfie_file"}
    assert text["name"] == NAME and text["timestamp"] == "1732269600123"
    signed = "ak" + ID_NUMBER + NAME + "v01ABCDEFGH" + "1732269600123" + "s3cr3t"
    assert text["sign"] == hashlib.md5(signed.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Outcome codes come back as results over HTTP; classified errors are raised


def test_outcome_codes_are_results_not_errors(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verify", ("json", {"error_code": 226402, "reason": "查无记录", "result": None}))
    server.script.add(
        "/verifyface_mobile/query", ("json", {"error_code": 280105, "reason": "x", "result": {"orderid": "JH8"}})
    )
    server.script.add("/faceid/search", ("json", {"error_code": 279305, "reason": "活体检测异常"}))
    compare = juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    four = juhe.four_factor(key="k", name=NAME, id_number=ID_NUMBER, mobile=MOBILE, image_b64=IMAGE_B64)
    faceid = juhe.faceid_result(key="k", jh_order_id="JH3", threshold=60)
    assert (compare.identity, compare.charged) == ("not_found", False)
    assert (four.identity, four.mobile.result, four.charged) == ("unverified", "unverified", False)  # type: ignore[union-attr]
    assert faceid is not None and faceid.liveness is not None and faceid.liveness.passed is False
    assert len(server.received) == 3


def test_provider_side_format_rejection_is_our_invalid_input(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface_mobile/query", ("json", {"error_code": 280103, "reason": "手机号格式错误"}))
    with pytest.raises(errors.InvalidMobile):
        juhe.four_factor(key="k", name=NAME, id_number=ID_NUMBER, mobile=MOBILE, image_b64=IMAGE_B64)
    assert len(server.received) == 1


def test_faceid_not_found(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/faceid/search", ("json", {"error_code": 279302, "reason": "查询不到认证记录"}))
    with pytest.raises(errors.NotFound):
        juhe.faceid_result(key="k", jh_order_id="JH404", threshold=60)


# --------------------------------------------------------------------------------------------------
# Retry policy


def test_connection_refused_is_retried_then_unavailable(sleeps: Sleeps, retry: http.RetryPolicy) -> None:
    client = JuheClient(base_url=f"http://127.0.0.1:{free_port()}", retry=retry)
    with pytest.raises(errors.ProviderUnavailable) as info:
        client.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert info.value.charged is False
    assert len(sleeps.delays) == retry.attempts - 1  # every attempt made, backoff between them
    assert sleeps.delays == [retry.delay(0), retry.delay(1)]
    ape = ApetimeClient(base_url=f"http://127.0.0.1:{free_port()}", retry=retry)
    with pytest.raises(errors.ProviderUnavailable):
        ape.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60,
        )  # fmt: skip
    assert len(sleeps.delays) == 2 * (retry.attempts - 1)


@pytest.mark.parametrize("code", [10011, 10012, 10020])
def test_juhe_rate_limit_and_maintenance_retried_then_success(
    server: ProviderServer, juhe: JuheClient, sleeps: Sleeps, code: int
) -> None:
    server.script.add("/verifyface/verify", ("json", {"error_code": code, "reason": "x"}), ("json", VERIFY_OK))
    result = juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert result.decision == "pass"
    assert len(server.received) == 2
    assert len(sleeps.delays) == 1


def test_juhe_retry_exhausted_raises_rate_limited(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/faceid/search", *[("json", {"error_code": 10011, "reason": "x"})] * 5)
    with pytest.raises(errors.ProviderRateLimited) as info:
        juhe.faceid_result(key="k", jh_order_id="JH3", threshold=60)
    assert (info.value.provider_code, info.value.charged) == ("10011", False)
    assert len(server.received) == 3


def test_apetime_1006_retried_then_success(server: ProviderServer, ape: ApetimeClient, sleeps: Sleeps) -> None:
    path = "/api/identity/portrait_verification"
    server.script.add(path, ("json", {"trace_id": "T0", "code": "1006", "msg": "调用频率过高", "charge": 2}))
    server.script.add(path, ("json", APE_OK))
    result = ape.portrait(
        app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
        image_b64=IMAGE_B64, threshold=60,
    )  # fmt: skip
    assert result.decision == "pass"
    assert len(server.requests_to(path)) == 2 and len(sleeps.delays) == 1


def test_apetime_1006_that_says_charged_is_not_retried(server: ProviderServer, ape: ApetimeClient) -> None:
    path = "/api/identity/portrait_verification"
    server.script.add(path, ("json", {"trace_id": "T0", "code": "1006", "msg": "x", "charge": 1}))
    with pytest.raises(errors.ProviderRateLimited) as info:
        ape.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60,
        )  # fmt: skip
    assert info.value.charged is True
    assert len(server.received) == 1


@pytest.mark.parametrize("code", [10001, 10014, 226401, 226403])
def test_other_juhe_errors_not_retried(server: ProviderServer, juhe: JuheClient, sleeps: Sleeps, code: int) -> None:
    server.script.add("/verifyface/verify", ("json", {"error_code": code, "reason": "x"}), ("json", VERIFY_OK))
    with pytest.raises(errors.ProviderError) as info:
        juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert info.value.provider_code == str(code)
    assert len(server.received) == 1 and sleeps.delays == []


def test_read_timeout_is_not_retried(server: ProviderServer, retry: http.RetryPolicy, sleeps: Sleeps) -> None:
    server.script.add("/verifyface_mobile/query", ("sleep", 1.5, FOUR_OK))
    client = JuheClient(base_url=server.url, retry=retry, read_timeouts={"four_factor": 0.3})
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeout) as info:
        client.four_factor(key="k", name=NAME, id_number=ID_NUMBER, mobile=MOBILE, image_b64=IMAGE_B64)
    assert time.monotonic() - started < 1.4
    assert info.value.charged is None
    assert len(server.received) == 1 and sleeps.delays == []


def test_apetime_read_timeout_is_not_retried(server: ProviderServer, retry: http.RetryPolicy) -> None:
    server.script.add("/api/identity/portrait_verification", ("sleep", 1.5, APE_OK))
    client = ApetimeClient(base_url=server.url, retry=retry, read_timeout=0.3)
    with pytest.raises(errors.ProviderTimeout) as info:
        client.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60,
        )  # fmt: skip
    assert info.value.charged is None
    assert len(server.received) == 1


def test_reset_after_request_is_timeout_not_retried(server: ProviderServer, juhe: JuheClient, sleeps: Sleeps) -> None:
    server.script.add("/verifyface/verify", ("reset",), ("json", VERIFY_OK))
    with pytest.raises(errors.ProviderTimeout) as info:
        juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert info.value.charged is None
    assert len(server.received) == 1 and sleeps.delays == []


def test_apetime_reset_after_request_is_timeout_not_retried(server: ProviderServer, ape: ApetimeClient) -> None:
    server.script.add("/api/identity/portrait_verification", ("reset",), ("json", APE_OK))
    with pytest.raises(errors.ProviderTimeout):
        ape.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60, multipart=True,
        )  # fmt: skip
    assert len(server.received) == 1


BAD_ANSWERS = {
    "http_500": ("raw", 500, b'{"error_code": 0}', "application/json"),
    "http_502": ("raw", 502, b"<html>Bad Gateway</html>", "text/html"),
    "http_503": ("raw", 503, b"", "text/plain"),
    "html_200": ("raw", 200, b"<html>maintenance</html>", "text/html"),
    "truncated_json": ("raw", 200, b'{"error_code": 0, "result": {', "application/json"),
    "json_array": ("raw", 200, b"[1, 2]", "application/json"),
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_bad_answers_are_unavailable_not_retried(
    server: ProviderServer, juhe: JuheClient, ape: ApetimeClient, sleeps: Sleeps, answer: tuple[Any, ...]
) -> None:
    server.script.add("/verifyface/verify", answer, ("json", VERIFY_OK))
    server.script.add("/api/identity/portrait_verification", answer, ("json", APE_OK))
    with pytest.raises(errors.ProviderUnavailable) as info:
        juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert info.value.auto_retry is False
    with pytest.raises(errors.ProviderUnavailable):
        ape.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60,
        )  # fmt: skip
    assert len(server.received) == 2 and sleeps.delays == []


def test_malformed_billed_body_is_unavailable_and_charged(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verify", ("json", {"error_code": 0, "result": {"res": 7, "orderid": "JH5"}}))
    with pytest.raises(errors.ProviderUnavailable) as info:
        juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert (info.value.charged, info.value.provider_order_id) == (True, "JH5")
    assert len(server.received) == 1


# --------------------------------------------------------------------------------------------------
# Keep-alive


def test_one_connection_for_many_calls(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verify", *[("json", VERIFY_OK)] * 3)
    server.script.add("/verifyface_mobile/query", ("json", FOUR_OK))
    server.script.add("/faceid/query", ("json", QUERY_OK))
    server.script.add("/faceid/search", ("json", SEARCH_OK))
    for _ in range(3):
        juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    juhe.four_factor(key="k", name=NAME, id_number=ID_NUMBER, mobile=MOBILE, image_b64=IMAGE_B64)
    juhe.faceid_start(key="k", name=NAME, id_number=ID_NUMBER, order_id="abcd1234", return_url="https://r")
    juhe.faceid_result(key="k", jh_order_id="JH3", threshold=60)
    assert len(server.received) == 6
    assert server.connections == 1


def test_apetime_one_connection_for_many_calls(server: ProviderServer, ape: ApetimeClient) -> None:
    server.script.add("/api/identity/portrait_verification", *[("json", APE_OK)] * 4)
    for multipart in (False, True, False, True):
        ape.portrait(
            app_key="a", app_secret="s", request_id="r1234567", name=NAME, id_number=ID_NUMBER,
            image_b64=IMAGE_B64, threshold=60, multipart=multipart,
        )  # fmt: skip
    assert len(server.received) == 4
    assert server.connections == 1


def test_retries_reuse_the_connection(server: ProviderServer, juhe: JuheClient) -> None:
    server.script.add("/verifyface/verify", ("json", {"error_code": 10020, "reason": "维护"}), ("json", VERIFY_OK))
    juhe.verifyface(key="k", name=NAME, id_number=ID_NUMBER, image_b64=IMAGE_B64, threshold=60)
    assert len(server.received) == 2 and server.connections == 1
