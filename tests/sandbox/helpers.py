"""Helpers for the sandbox contract tests: provider-ready images, request builders, a notify receiver.

Everything here talks to the sandbox the way a client of the real providers would (plain `requests`);
nothing comes from the gateway's layer.
"""

from __future__ import annotations

import base64
import hashlib
import io
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from sandbox.providers import Identity

VERIFYFACE_KEY = "sandbox-juhe-verifyface-key"
FOUR_FACTOR_KEY = "sandbox-juhe-four-factor-key"
FACEID_KEY = "sandbox-juhe-faceid-key"
OPENID = "sandbox-juhe-openid"
APP_KEY = "sandbox-apetime-app-key"
APP_SECRET = "sandbox-apetime-app-secret"


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def resized(data: bytes, max_side: int = 800) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    img.thumbnail((max_side, max_side))
    return img


def at_quality(data: bytes, quality: int = 50, max_side: int = 800) -> bytes:
    return jpeg(resized(data, max_side), quality)


def provider_ready(data: bytes, max_side: int = 800, lo: int = 16_000, hi: int = 20_000) -> bytes:
    """What the providers ask for: longest side <= 800 px, a JPEG of 16-20 KB (quality searched)."""
    img = resized(data, max_side)
    low, high, best = 5, 95, jpeg(img, 50)
    while low <= high:
        q = (low + high) // 2
        out = jpeg(img, q)
        if lo <= len(out) <= hi:
            return out
        best = out
        low, high = (q + 1, high) if len(out) < lo else (low, q - 1)
    return best


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def urlsafe_b64(data: bytes) -> str:
    """What Apetime's document sends as selfie_base64: Java's Base64.getUrlEncoder() (padded)."""
    return base64.urlsafe_b64encode(data).decode("ascii")


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def verifyface_form(ident: Identity, image: bytes, *, name: str | None = None, key: str = VERIFYFACE_KEY) -> dict:
    return {"key": key, "idcard": ident.id_number, "realname": name or ident.name, "image": b64(image)}


def four_factor_form(
    ident: Identity, image: bytes, *, name: str | None = None, mobile: str | None = None, key: str = FOUR_FACTOR_KEY
) -> dict:
    return {
        "key": key,
        "realname": name or ident.name,
        "idcard": ident.id_number,
        "mobile": mobile or ident.mobile,
        "image": b64(image),
    }


def apetime_form(
    ident: Identity,
    image: bytes | None,
    *,
    name: str | None = None,
    timestamp_ms: int | None = None,
    app_key: str = APP_KEY,
    secret: str = APP_SECRET,
    request_id: str = "req0001",
) -> dict:
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    name = name or ident.name
    form = {
        "app_key": app_key,
        "request_id": request_id,
        "id_number": ident.id_number,
        "name": name,
        "timestamp": ts,
        "sign": md5(app_key + ident.id_number + name + request_id + ts + secret),
    }
    if image is not None:
        form["selfie_base64"] = urlsafe_b64(image)
    return form


def faceid_form(
    ident: Identity,
    *,
    return_url: str = "https://example.com/cb",
    notify_url: str = "",
    order_id: str = "order0001",
    key: str = FACEID_KEY,
    name: str | None = None,
) -> dict:
    form = {
        "key": key,
        "certName": name or ident.name,
        "certNo": ident.id_number,
        "orderId": order_id,
        "returnUrl": return_url,
    }
    if notify_url:
        form["notifyUrl"] = notify_url
    return form


class NotifySink:
    """A tiny HTTP server that records POSTs (the customer's notifyUrl)."""

    def __init__(self, status: int = 200) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.received.put({"path": self.path, "content_type": self.headers.get("Content-Type"), "body": body})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> NotifySink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
