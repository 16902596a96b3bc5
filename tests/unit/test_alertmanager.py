"""monitoring/alertmanager.yml: amtool's checks, the routing tree, the e-mail templates, and an alert
carried all the way to a person's inbox — a real Prometheus evaluates alerts.yml, fires, sends to a
real Alertmanager, which delivers through `hotline alert-relay` to stand-in 政务微信 / 钉钉 robots and
the JSON receiver, and by e-mail to an SMTP server on loopback.

Alertmanager and amtool come with Debian's prometheus-alertmanager package (`./hotlinectl setup`
installs it); without them these tests fail, not skip. Everything listens on 127.0.0.1, on ports
the kernel picks, so the test runs beside another checkout's suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from ivr.alerts import relay

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
ALERTMANAGER_YML = MONITORING / "alertmanager.yml"
PAYLOAD = REPO / "tests" / "unit" / "alerts" / "payload.json"
WAIT = 90.0  # the bound on every wait below; on a quiet box the whole path takes ~5 s


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(
            f"{name} is not installed (it comes with Debian's `prometheus-alertmanager` / `prometheus` "
            "packages): run `./hotlinectl setup`, which installs them",
            pytrace=False,
        )
    return exe


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("amtool"), *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


# ---------------------------------------------------------------------------------------------
# amtool: the config, the routing tree, the e-mail template
# ---------------------------------------------------------------------------------------------
def test_amtool_check_config() -> None:
    result = amtool("check-config", str(ALERTMANAGER_YML.relative_to(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "3 receivers" in result.stdout and "1 templates" in result.stdout


def test_amtool_check_config_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    text = ALERTMANAGER_YML.read_text(encoding="utf-8").replace("receiver: oncall", "receiver: on-call", 1)
    broken.write_text(text.replace("templates/*.tmpl", str(MONITORING / "templates" / "*.tmpl")), encoding="utf-8")
    result = amtool("check-config", str(broken))
    assert result.returncode != 0 and 'undefined receiver "on-call"' in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # Everything reaches the duty supervisors; critical also pages on-call; a unit's alert
        # also goes to the unit liaisons.
        (["alertname=HotlineControllerDown", "severity=critical"], "oncall,duty-supervisor"),
        (["alertname=HotlineUnitAnswerRateLow", "severity=warning", "unit=市住建局"], "unit-liaison,duty-supervisor"),
        (["alertname=HotlineConnectionRateLow", "severity=warning"], "duty-supervisor"),
        (
            ["alertname=HotlineSomethingCritical", "severity=critical", "unit=市医保局"],
            "oncall,unit-liaison,duty-supervisor",
        ),
    ],
)
def test_routes_by_severity_and_unit(labels: list[str], receivers: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_every_receiver_url_is_a_channel_of_the_relays_example_config() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    channels = relay.load_config(MONITORING / "alert-relay.example.yml").channels
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls and all(u.startswith("http://127.0.0.1:9347/alerts/") for u in urls)
    assert {u.rsplit("/", 1)[1] for u in urls} == set(channels)


def render_template(text: str) -> str:
    result = amtool(
        "template",
        "render",
        f"--template.glob={MONITORING / 'templates' / '*.tmpl'}",
        f"--template.data={PAYLOAD}",
        f"--template.text={text}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_email_subject_and_body_from_the_template() -> None:
    assert render_template('{{ template "hotline.email.subject" . }}').strip() == (
        "[12345 告警] HotlineUnitAnswerRateLow · 市住建局"
    )
    body = render_template('{{ template "hotline.email.text" . }}')
    assert "告警中 FIRING (1)" in body and "已恢复 RESOLVED (1)" in body
    assert "市住建局 answers only 40% of transferred calls (接听率低)" in body
    assert "开始 started:  2026-12-05 09:02:03 (北京时间)" in body  # 01:02:03 UTC
    assert "恢复 resolved: 2026-12-05 08:30:00 (北京时间)" in body
    assert "单位 unit:     市住建局" in body


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What the stand-in robots, the JSON receiver and the SMTP server received."""

    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body)
    mails: list[EmailMessage] = field(default_factory=list)

    def on(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.posts if p == path]


async def smtp_server(inbox: Inbox) -> asyncio.Server:
    """Just enough SMTP for Alertmanager's client: EHLO, MAIL, RCPT, DATA, QUIT."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 localhost test SMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                writer.write(b"250-localhost\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                raw = data[: -len(b"\r\n.\r\n")].replace(b"\r\n..", b"\r\n.")
                mail = message_from_bytes(raw, policy=policy.default)
                assert isinstance(mail, EmailMessage)
                inbox.mails.append(mail)
                writer.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:  # HELO, MAIL FROM, RCPT TO, RSET, NOOP
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


@contextlib.contextmanager
def process(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, f"{args[0]} exited {proc.returncode}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{args[0]} not ready after {WAIT} s:\n{log.read_text()}"
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def eventually(what: str, check: Any, logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            raise AssertionError(f"no {what} within {WAIT} s\n{tails}")
        await asyncio.sleep(0.2)


def alertmanager_config(tmp_path: Path, relay_port: int, smtp_port: int) -> Path:
    """The shipped config with the test's ports and short group timings; routes, receivers,
    inhibitions and templates unchanged."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text(encoding="utf-8"))
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    config["templates"] = [str(MONITORING / t) for t in config["templates"]]

    def fast(route: dict[str, Any]) -> None:
        route.update({"group_wait": "1s", "group_interval": "1s"} if "group_wait" in route or route is top else {})
        for child in route.get("routes", []):
            fast(child)

    top = config["route"]
    fast(top)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace("127.0.0.1:9347", f"127.0.0.1:{relay_port}")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def prometheus_config(tmp_path: Path, alertmanager_port: int) -> Path:
    """The shipped prometheus.yml and alerts.yml, scraping a port where no controller listens,
    every second, with HotlineControllerDown's `for:` cut from 1m to 1s."""
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text(encoding="utf-8"))
    [down] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "HotlineControllerDown"]
    down["for"] = "1s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    [job] = config["scrape_configs"]
    job.update({"scrape_interval": "1s", "scrape_timeout": "500ms"})
    job["static_configs"] = [{"targets": [f"127.0.0.1:{free_port()}"]}]  # nothing listens: up == 0
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def robots_and_relay(inbox: Inbox) -> AsyncIterator[int]:
    """Stand-in robots (one aiohttp app: /wecom, /dingtalk, /json) and the relay; yields its port."""

    async def receive(request: web.Request) -> web.Response:
        inbox.posts.append((request.path, await request.json()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    robots = web.Application()
    for path in ("/wecom", "/dingtalk", "/json"):
        robots.router.add_post(path, receive)
    robots_runner = web.AppRunner(robots)
    await robots_runner.setup()
    robots_site = web.TCPSite(robots_runner, "127.0.0.1", 0)
    await robots_site.start()
    base = f"http://127.0.0.1:{robots_runner.addresses[0][1]}"
    config = relay.parse_config(
        "relay.yml",
        yaml.safe_dump(
            {
                "channels": {
                    "duty": {"format": "wecom", "url": f"{base}/wecom?key=duty"},
                    "units": {"format": "wecom", "url": f"{base}/wecom?key=units"},
                    "oncall": {"format": "dingtalk", "url": f"{base}/dingtalk", "at_mobiles": ["13800000000"]},
                    "screen": {"format": "json", "url": f"{base}/json"},
                }
            }
        ),
    )
    relay_runner = web.AppRunner(relay.make_app(config))
    await relay_runner.setup()
    await web.TCPSite(relay_runner, "127.0.0.1", 0).start()
    try:
        yield int(relay_runner.addresses[0][1])
    finally:
        await relay_runner.cleanup()
        await robots_runner.cleanup()


async def test_a_firing_rule_reaches_the_robots_and_the_inbox_and_inhibits_its_consequences(tmp_path: Path) -> None:
    inbox = Inbox()
    smtp = await smtp_server(inbox)
    smtp_port = smtp.sockets[0].getsockname()[1]
    am_port = free_port()
    am_log, prom_log = tmp_path / "alertmanager.log", tmp_path / "prometheus.log"
    logs = [am_log, prom_log]
    async with robots_and_relay(inbox) as relay_port:
        am_args = [
            tool("prometheus-alertmanager"),
            f"--config.file={alertmanager_config(tmp_path, relay_port, smtp_port)}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip port: a single Alertmanager
        ]
        prom_args = [
            tool("prometheus"),
            f"--config.file={prometheus_config(tmp_path, am_port)}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
        ]
        with (
            process(am_args, am_log, f"http://127.0.0.1:{am_port}/-/ready"),
            process(prom_args, prom_log, prom_args[-1].replace("--web.listen-address=", "http://") + "/-/ready"),
        ):
            # Prometheus cannot scrape the controller -> HotlineControllerDown (critical) fires ->
            # Alertmanager routes it to oncall (钉钉 + e-mail) and duty-supervisor (政务微信 + JSON).
            def delivered() -> bool:
                return bool(inbox.on("/dingtalk") and inbox.on("/wecom") and inbox.on("/json") and inbox.mails)

            await eventually("delivery to every receiver of a critical alert", delivered, logs)

            ding = inbox.on("/dingtalk")[0]
            assert ding["msgtype"] == "markdown"
            assert ding["markdown"]["title"] == "【告警】HotlineControllerDown"
            text = ding["markdown"]["text"]
            assert "**Hotline controller 127.0.0.1:" in text and "is not answering scrapes (热线控制器停止)**" in text
            assert "> 级别：紧急 critical" in text.splitlines()
            assert text.endswith("@13800000000") and ding["at"]["atMobiles"] == ["13800000000"]

            wecom = inbox.on("/wecom")[0]["markdown"]["content"]
            assert wecom.startswith("## 【告警】HotlineControllerDown\n")
            assert '> 级别：<font color="warning">紧急 critical</font>' in wecom.splitlines()

            [alert] = inbox.on("/json")[0]["alerts"]
            assert alert["name"] == "HotlineControllerDown"
            assert (alert["severity"], alert["status"]) == ("critical", "firing")
            assert alert["labels"]["service"] == "hotline12345"  # Prometheus' external label

            mail = inbox.mails[0]
            assert mail["Subject"] == "[12345 告警] HotlineControllerDown"
            assert mail["To"] == "hotline-oncall@localhost"
            body = mail.get_body(("plain",))
            assert body is not None and "告警中 FIRING (1)" in body.get_content()

            # Inhibition: while the controller is down, a unit's answer-rate alert from the same
            # centre is held back; the same alert from another service is not. Both go in together;
            # the one that arrives proves the other had its chance to.
            def post(unit: str, service: str) -> dict[str, Any]:
                return {
                    "labels": {
                        "alertname": "HotlineUnitAnswerRateLow",
                        "severity": "warning",
                        "unit": unit,
                        "service": service,
                    },
                    "annotations": {"summary": f"{unit} answers only 10% of transferred calls (接听率低)"},
                }

            async with (
                aiohttp.ClientSession() as client,
                client.post(
                    f"http://127.0.0.1:{am_port}/api/v2/alerts",
                    json=[post("市住建局", "hotline12345"), post("市医保局", "another-centre")],
                ) as resp,
            ):
                assert resp.status == 200, await resp.text()

            def unit_message(unit: str) -> bool:
                return any(f"> 单位：{unit}" in b["markdown"]["content"] for b in inbox.on("/wecom"))

            await eventually("the not-inhibited unit alert", lambda: unit_message("市医保局"), logs)
            await asyncio.sleep(2)  # two more group intervals
            assert not unit_message("市住建局"), "HotlineControllerDown did not inhibit the unit's alert"
    smtp.close()
    await smtp.wait_closed()
