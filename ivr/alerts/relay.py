"""`hotline alert-relay`: Alertmanager's webhooks in, chat-robot messages out.

Alertmanager (monitoring/alertmanager.yml) posts each notification to
`http://127.0.0.1:9347/alerts/<channel>`; the relay renders it for that channel's robot
(ivr.alerts.render) and posts it on. It answers Alertmanager only after the robot accepted the
message: 200 when delivered, 502 when the robot refused or could not be reached — Alertmanager
retries 5xx, so a chat platform's bad minute delays an alert instead of losing it.

The channels (robot URLs, DingTalk signing secrets, people to @) are in a YAML file kept out of
git with mode 0600 (`var/alert-relay.yml`; monitoring/alert-relay.example.yml shows every key):

    listen: 127.0.0.1:9347
    channels:
      duty:   {format: wecom,    url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."}
      oncall: {format: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=...",
               secret: "SEC...", at_mobiles: ["13800000000"]}
      screen: {format: json,     url: "http://127.0.0.1:8080/hotline-alerts"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from ivr.alerts import render
from ivr.errors import AlertDeliveryError as DeliveryError
from ivr.errors import ConfigError, RoutesError
from ivr.routing.yamlsrc import Source

log = structlog.get_logger()

DEFAULT_LISTEN = ("127.0.0.1", 9347)
SEND_TIMEOUT = aiohttp.ClientTimeout(total=10)
# The robots answer HTTP 200 with {"errcode": 0, ...}; anything else in errcode is a refusal.
ROBOT_FORMATS = ("wecom", "dingtalk")
SESSION = web.AppKey("session", aiohttp.ClientSession)


@dataclass(frozen=True)
class Channel:
    name: str
    format: str
    url: str
    secret: str = ""  # DingTalk 加签: the robot's SEC... secret
    at_mobiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelayConfig:
    listen: tuple[str, int]
    channels: dict[str, Channel]


def load_config(path: str | Path) -> RelayConfig:
    """Read the relay's YAML; every problem is reported as FILE:LINE, all of them at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the alert relay's config: {exc.strerror}") from None
    try:
        return parse_config(str(path), text)
    except RoutesError as exc:
        raise ConfigError(str(exc)) from None


def parse_config(name: str, text: str) -> RelayConfig:
    src = Source(name, text)
    top = src.root().mapping(allowed=("listen", "channels"), required=("channels",)) or {}
    listen = DEFAULT_LISTEN
    if "listen" in top:
        value = top["listen"].string(r"[^\s:]+:[0-9]{1,5}", "HOST:PORT")
        if value is not None:
            host, _, port = value.rpartition(":")
            listen = (host, int(port))
    channels: dict[str, Channel] = {}
    for name_, node in top["channels"].items() if "channels" in top else ():
        if not all(c.isalnum() or c in "-_" for c in name_):
            node.problem(f"channel name '{name_}' may use only letters, digits, - and _ (it is a URL path)")
            continue
        fields = node.mapping(allowed=("format", "url", "secret", "at_mobiles"), required=("format", "url")) or {}
        fmt = fields["format"].choice(render.FORMATS) if "format" in fields else None
        url = fields["url"].string(r"https?://\S+", "an http(s) URL") if "url" in fields else None
        secret = fields["secret"].string() if "secret" in fields else ""
        mobiles: list[str] = []
        for m in (fields["at_mobiles"].sequence() or []) if "at_mobiles" in fields else []:
            number = m.string(r"\+?[0-9]{5,15}", "a phone number")
            if number is not None:
                mobiles.append(number)
        if secret and fmt != "dingtalk":
            fields["secret"].problem(f"channels.{name_}.secret: only a dingtalk robot signs its requests")
        if mobiles and fmt != "dingtalk":
            fields["at_mobiles"].problem(f"channels.{name_}.at_mobiles: only a dingtalk robot can @ people")
        if fmt is not None and url is not None:
            channels[name_] = Channel(name_, fmt, url, secret or "", tuple(mobiles))
    if "channels" in top and not channels and not src.problems:
        top["channels"].problem("channels: at least one channel is needed")
    src.raise_if_problems()
    return RelayConfig(listen, channels)


def dingtalk_signed_url(url: str, secret: str, now_ms: int | None = None) -> str:
    """DingTalk's 加签: timestamp (ms) and sign = base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}"))."""
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


async def deliver(session: aiohttp.ClientSession, channel: Channel, message: dict[str, Any]) -> None:
    url = dingtalk_signed_url(channel.url, channel.secret) if channel.secret else channel.url
    body = json.dumps(message, ensure_ascii=False).encode()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json; charset=utf-8"}) as resp:
            text = await resp.text()
            if resp.status // 100 != 2:
                raise DeliveryError(f"HTTP {resp.status}: {text[:200]}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if channel.format in ROBOT_FORMATS:
        try:
            errcode = json.loads(text).get("errcode")
        except (ValueError, AttributeError):
            raise DeliveryError(f"not the robot's JSON answer: {text[:200]}") from None
        if errcode != 0:
            raise DeliveryError(f"robot refused: {text[:200]}")


def make_app(config: RelayConfig) -> web.Application:
    async def relay(request: web.Request) -> web.Response:
        name = request.match_info["channel"]
        channel = config.channels.get(name)
        if channel is None:
            return web.json_response({"error": f"no channel '{name}'", "channels": sorted(config.channels)}, status=404)
        try:
            notification = render.parse(await request.json())
        except (ValueError, render.PayloadError) as exc:
            return web.json_response({"error": f"not an Alertmanager webhook: {exc}"}, status=400)
        message = render.render(channel.format, notification, channel.at_mobiles)
        try:
            await deliver(request.app[SESSION], channel, message)
        except DeliveryError as exc:
            log.warning("alert_relay_failed", channel=name, status=notification.status, error=str(exc))
            return web.json_response({"error": str(exc)}, status=502)  # Alertmanager retries 5xx
        log.info(
            "alert_relayed",
            channel=name,
            format=channel.format,
            status=notification.status,
            alerts=len(notification.alerts),
            title=render.title(notification),
        )
        return web.json_response({"delivered": True})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "channels": sorted(config.channels)})

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(timeout=SEND_TIMEOUT)
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/alerts/{channel}", relay)
    app.router.add_get("/health", health)
    return app
