"""Juhe H5 FaceID: sessions, the sandbox's own verify page, the signed browser return and the notify.

A session is created by faceid/query and lives `faceid_session_ttl_s` (30 min). Its verify_url is the page
`/faceid/h5/<token>`: opening it marks the session "opened" (search: 279306), the person then passes or
fails liveness (one submission only: the page is dead afterwards) or abandons (nothing is sent, search
keeps answering 279307 until the session expires). On completion the browser is sent (302) to returnUrl
with `response` and `sign` placed as the document's table shows (`place_result`), and the same pair is
POSTed to notifyUrl as a form.
"""

from __future__ import annotations

import html
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from sandbox.providers.validation import mask_id_number, mask_name

State = Literal["created", "opened", "abandoned", "completed"]

CAMERAS = {
    "self": "本人（登记照片的同一个人）",
    "other": "另一个人",
    "lookalike": "长得像的人（分数 40–60）",
    "no_face": "没有人脸的画面",
    "small": "人脸太小（低于 128 像素）",
    "upload": "上传照片",
}


def place_result(return_url: str, response: str, sign: str) -> str:
    """returnUrl with `response` (URL-encoded JSON) and `sign` placed as the FaceID document's table shows:

    | returnUrl                        | opened after verification                          |
    | https://example.com              | https://example.com?response=...&sign=...          |
    | https://example.com/index.html   | https://example.com/index.html?response=...&sign=...|
    | https://example.com/aaa/         | https://example.com/aaa?response=...&sign=...      |
    | https://example.com/aaa/#bbb     | https://example.com/aaa?response=...&sign=...#bbb  |
    | https://example.com/#/aaa/bbb    | https://example.com/?response=...&sign=...#aaa/bbb |

    i.e. the parameters always go into the query (after any query already there), a trailing slash of a
    non-root path is dropped (history routes), and a hash route loses the '/' after '#'.
    """
    parts = urlsplit(return_url)
    params = f"response={quote(response, safe='')}&sign={quote(sign, safe='')}"
    path = parts.path.rstrip("/") if parts.path.endswith("/") and parts.path != "/" else parts.path
    fragment = parts.fragment[1:] if parts.fragment.startswith("/") else parts.fragment
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit((parts.scheme, parts.netloc, path or "", query, fragment))


@dataclass
class Session:
    jh_order_id: str
    token: str
    key: str
    cert_name: str
    cert_no: str
    order_id: str
    model: str
    return_url: str
    notify_url: str
    device_type: str
    created_at: float
    expires_at: float
    state: State = "created"
    result: dict[str, Any] | None = None
    image: bytes | None = None
    completed_at: float | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def summary(self) -> dict[str, Any]:
        return {
            "jh_order_id": self.jh_order_id,
            "order_id": self.order_id,
            "state": self.state,
            "cert_name": mask_name(self.cert_name),
            "cert_no": mask_id_number(self.cert_no),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "passed": (self.result or {}).get("passed"),
            "notifications": list(self.notifications),
        }


class SessionStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_token: dict[str, Session] = {}
        self._by_order: dict[str, Session] = {}
        self.images: dict[str, tuple[str, float]] = {}  # img nonce -> (jh_order_id, expires_at)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def add(self, s: Session) -> None:
        with self._lock:
            self._by_token[s.token] = s
            self._by_order[s.jh_order_id] = s

    def by_token(self, token: str) -> Session | None:
        with self._lock:
            return self._by_token.get(token)

    def by_order(self, jh_order_id: str) -> Session | None:
        with self._lock:
            return self._by_order.get(jh_order_id)

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._by_order.values())

    def clear(self) -> None:
        with self._lock:
            self._by_token.clear()
            self._by_order.clear()
            self.images.clear()


def response_document(result: dict[str, Any]) -> str:
    """The `response` JSON text sent to returnUrl and notifyUrl (shape of the document's sample)."""
    return json.dumps(
        {"error_code": 0, "reason": "SUCCESS", "result": result}, ensure_ascii=False, separators=(",", ":")
    )


def send_notify(
    session: Session,
    response: str,
    sign: str,
    *,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    wait: Callable[[float], bool],
    clock: Callable[[], float],
    log: Callable[[dict[str, Any]], None],
) -> None:
    """POST `response` and `sign` as application/x-www-form-urlencoded to notifyUrl; retries on failure.
    `wait(seconds)` returns True when the sandbox is stopping."""
    body = urlencode({"response": response, "sign": sign}).encode("ascii")
    for attempt in range(1, attempts + 1):
        entry: dict[str, Any] = {"jh_order_id": session.jh_order_id, "url": session.notify_url, "attempt": attempt}
        try:
            req = urllib.request.Request(
                session.notify_url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "juhe-sandbox-notify/1.0"},
            )
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                entry["status"] = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            entry["status"] = exc.code
        except Exception as exc:  # refused, timeout, DNS...: the notify is best effort, as at the provider
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["at"] = clock()
        session.notifications.append(entry)
        log(entry)
        if 200 <= int(entry.get("status", 0)) < 300:
            return
        if attempt < attempts and wait(backoff_s * attempt):
            return


# ---------------------------------------------------------------- pages

_STYLE = """
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;max-width:30rem;margin:2rem auto;
  padding:0 1rem;color:#222}
h1{font-size:1.3rem} .who{background:#f3f6fa;border-radius:8px;padding:.8rem 1rem;margin:1rem 0}
fieldset{border:1px solid #ccd;border-radius:8px;margin:1rem 0}
button{font-size:1rem;padding:.6rem 1rem;margin:.3rem .3rem 0 0}
#pass{background:#1a7f37;color:#fff;border:0;border-radius:6px}
#fail{background:#cf222e;color:#fff;border:0;border-radius:6px}
#abandon{background:#eee;border:1px solid #bbb;border-radius:6px} small{color:#666}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def verify_page(s: Session, default_camera: str, action_url: str, remaining_s: float) -> str:
    cameras = "".join(
        f'<option value="{k}"{" selected" if k == default_camera else ""}>{html.escape(v)}</option>'
        for k, v in CAMERAS.items()
    )
    live_codes = "".join(
        f'<option value="{code}">{code} {html.escape(msg)}</option>'
        for code, msg in (
            ("201", "活体检测存在风险"),
            ("202", "业务策略限制"),
            ("203", "活体照片质量较低"),
            ("204", "权威比对源异常"),
            ("205", "意愿判定不通过"),
        )
    )
    body = f"""
<h1>实人认证（聚合 FaceID 沙箱）</h1>
<div class="who" id="subject">
  <div>姓名：<b id="cert-name">{html.escape(mask_name(s.cert_name))}</b></div>
  <div>身份证号：<b id="cert-no">{html.escape(mask_id_number(s.cert_no))}</b></div>
  <div><small>订单 <span id="jh-order-id">{html.escape(s.jh_order_id)}</span> · 活体模式 {html.escape(s.model)}
  · 剩余 {int(remaining_s // 60)} 分钟</small></div>
</div>
<form id="verify-form" method="post" action="{html.escape(action_url)}" enctype="multipart/form-data">
  <fieldset><legend>摄像头看到的人</legend>
    <select id="camera" name="camera">{cameras}</select>
    <div><small>选择“上传照片”时使用：</small> <input id="photo" type="file" name="photo" accept="image/*"></div>
  </fieldset>
  <fieldset><legend>活体检测</legend>
    <button id="pass" type="submit" name="action" value="pass">通过活体检测</button>
    <div style="margin-top:.6rem"><select id="live_code" name="live_code">{live_codes}</select>
    <button id="fail" type="submit" name="action" value="fail">活体检测不通过</button></div>
  </fieldset>
  <button id="abandon" type="submit" name="action" value="abandon">放弃认证</button>
</form>
<p><small>这是聚合实人认证的本地沙箱页面：认证只能提交一次，链接 30 分钟内有效。</small></p>
"""
    return _page("实人认证（沙箱）", body)


def message_page(title: str, text: str, link: str | None = None) -> str:
    extra = f'<p><a id="continue" href="{html.escape(link)}">继续</a></p>' if link else ""
    return _page(title, f'<h1 id="title">{html.escape(title)}</h1><p id="message">{html.escape(text)}</p>{extra}')
