"""`hotline alert-relay`: its config, DingTalk signing, and relaying to a robot that accepts or
refuses — against real HTTP servers on loopback standing in for the 政务微信 / 钉钉 robots."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from ivr.alerts import relay
from ivr.cli import main
from ivr.errors import ConfigError

PAYLOAD = json.loads(Path(__file__).with_name("payload.json").read_text(encoding="utf-8"))
EXAMPLE = Path(__file__).resolve().parents[3] / "monitoring" / "alert-relay.example.yml"


def test_the_shipped_example_config_is_valid_and_names_the_channels_alertmanager_posts_to() -> None:
    config = relay.load_config(EXAMPLE)
    assert config.listen == ("127.0.0.1", 9347)
    assert {c.name: c.format for c in config.channels.values()} == {
        "duty": "wecom",
        "units": "wecom",
        "oncall": "dingtalk",
        "screen": "json",
    }
    result = CliRunner().invoke(main, ["alert-relay", "--config", str(EXAMPLE), "--check"])
    assert result.exit_code == 0, result.output
    assert "channels: duty, oncall, screen, units" in result.output


def test_config_problems_are_all_listed_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "relay.yml"
    bad.write_text(
        "listen: localhost\n"  # 1
        "channels:\n"  # 2
        "  duty:\n"  # 3
        "    format: slack\n"  # 4
        "    url: https://example.invalid/robot\n"  # 5
        "  oncall:\n"  # 6
        "    format: wecom\n"  # 7
        "    url: not-a-url\n"  # 8
        "    secret: SECabc\n"  # 9
        "  screen:\n"  # 10
        "    format: json\n",  # 11
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        relay.load_config(bad)
    lines = str(exc.value).splitlines()
    assert lines == [
        f"{bad}:1: listen 'localhost' is not HOST:PORT",
        f"{bad}:4: channels.duty.format must be one of json, wecom, dingtalk, got 'slack'",
        f"{bad}:8: channels.oncall.url 'not-a-url' is not an http(s) URL",
        f"{bad}:9: channels.oncall.secret: only a dingtalk robot signs its requests",
        f"{bad}:11: channels.screen: missing required key 'url'",
    ]
    result = CliRunner().invoke(main, ["alert-relay", "--config", str(bad), "--check"])
    assert result.exit_code == 1 and f"{bad}:4:" in result.output


def test_dingtalk_signature_is_hmac_sha256_of_timestamp_newline_secret() -> None:
    url = relay.dingtalk_signed_url("https://robot.invalid/send?access_token=t", "SECxyz", now_ms=1764900000000)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["access_token"] == ["t"] and query["timestamp"] == ["1764900000000"]
    mac = hmac.new(b"SECxyz", b"1764900000000\nSECxyz", hashlib.sha256).digest()
    assert base64.b64decode(query["sign"][0]) == mac


class Robot:
    """A chat robot on loopback: records what it got, answers with a chosen errcode."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.errcode = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.query_string, await request.json()))
        return web.json_response({"errcode": self.errcode, "errmsg": "ok" if not self.errcode else "bad"})


@pytest.fixture
async def robot_and_relay() -> AsyncIterator[tuple[Robot, TestClient[web.Request, web.Application]]]:
    robot = Robot()
    app = web.Application()
    app.router.add_post("/send", robot.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}/send"
        config = relay.parse_config(
            "relay.yml",
            f"channels:\n"
            f"  duty: {{format: wecom, url: '{base}?key=k'}}\n"
            f"  oncall: {{format: dingtalk, url: '{base}?access_token=t', secret: SECx,\n"
            f"           at_mobiles: ['13800000000']}}\n",
        )
        async with TestClient(TestServer(relay.make_app(config), host="127.0.0.1")) as client:
            yield robot, client


async def test_relays_alertmanagers_webhook_as_the_channels_robot_message(
    robot_and_relay: tuple[Robot, TestClient[web.Request, web.Application]],
) -> None:
    robot, client = robot_and_relay
    resp = await client.post("/alerts/duty", json=PAYLOAD)
    assert resp.status == 200 and await resp.json() == {"delivered": True}
    resp = await client.post("/alerts/oncall", json=PAYLOAD)
    assert resp.status == 200
    (wecom_query, wecom), (ding_query, ding) = robot.received
    assert wecom_query == "key=k" and wecom["msgtype"] == "markdown"
    assert wecom["markdown"]["content"].startswith("## 【告警】HotlineUnitAnswerRateLow · 市住建局")
    assert ding["markdown"]["title"] == "【告警】HotlineUnitAnswerRateLow · 市住建局"
    assert ding["at"]["atMobiles"] == ["13800000000"]
    assert "timestamp=" in ding_query and "sign=" in ding_query  # signed: the channel has a secret


async def test_a_robots_refusal_is_a_502_so_alertmanager_retries(
    robot_and_relay: tuple[Robot, TestClient[web.Request, web.Application]],
) -> None:
    robot, client = robot_and_relay
    robot.errcode = 93000
    resp = await client.post("/alerts/duty", json=PAYLOAD)
    assert resp.status == 502
    assert "robot refused" in (await resp.json())["error"]


async def test_unknown_channel_and_a_foreign_body_are_client_errors(
    robot_and_relay: tuple[Robot, TestClient[web.Request, web.Application]],
) -> None:
    robot, client = robot_and_relay
    resp = await client.post("/alerts/nobody", json=PAYLOAD)
    assert resp.status == 404 and (await resp.json())["channels"] == ["duty", "oncall"]
    resp = await client.post("/alerts/duty", json={"hello": 1})
    assert resp.status == 400 and "'alerts' must be a list" in (await resp.json())["error"]
    assert robot.received == []
